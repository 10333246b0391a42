"""``lpu import model.onnx``: an ONNX graph to a ``.lpu`` module (one ``df`` function, ``@main``)
and its weights as ``.npy`` files beside it; ``--report``: the op-support table.

``convert(model)`` does the work in memory and returns a ``Conversion`` (the text, the arrays,
the signature, the node of every line); ``import_onnx`` writes it as ``lpu import`` of a GGUF
does: the weights' folder built under a temporary name and renamed into place, the module
written last, atomically. Nodes whose inputs are all known at import time are folded with
``onnx.reference`` (Shape, Constant, every shape computation of a static graph); the others go
through ``lpu.models.onnx_ops``. Any node that cannot is an error listing every such node,
and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from lpu.diagnostics import Diagnostic, DiagnosticError, SourceLoc, error
from lpu.files import write_atomic
from lpu.models.onnx_emit import (
    CARRIER, MATMUL_MODES, Builder, Const, NodeRef, Unsupported, Value, carrier, onnx_dtype, sanitize, to_carrier,
    type_name, type_text,
)
from lpu.models.onnx_ops import OPS, Node

MIN_OPSET = 13
DTYPES = ("f32", "f16", "bf16", "i8")
#: never folded: their results are not a function of their inputs
RANDOM = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial"}
#: folded from the input's static shape alone
SHAPE_OPS = {"Shape", "Size"}


def fail(path: str, message: str) -> DiagnosticError:
    return DiagnosticError(error(message, SourceLoc(path)))


@dataclass
class Port:
    """A graph input or output: its ONNX name, the df name, ONNX type and shape."""

    name: str
    arg: str
    onnx: int
    shape: tuple
    empty: bool = False   # an output of no elements: known at import, not a result of @main

    @property
    def dtype(self):
        from lpu.models.onnx_emit import onnx_dtype

        return onnx_dtype(self.onnx)


@dataclass
class OpRow:
    """One line of the op-support table."""

    op_type: str
    count: int = 0
    supported: int = 0
    folded: int = 0
    why_not: list[tuple[str, str]] = field(default_factory=list)   # (node label, reason)


@dataclass
class Conversion:
    text: str
    arrays: dict[str, np.ndarray]
    inputs: list[Port]
    outputs: list[Port]
    line_nodes: dict[int, str]          # line of the .lpu -> "Conv 'conv1'"
    rows: dict[str, OpRow]
    opset: int
    nodes: int
    unsupported: list[tuple[str, str]]  # (node label, reason)
    needs_constant: list[str] = field(default_factory=list)  # graph inputs an unsupported node needs known

    def node_at(self, line: int) -> str | None:
        return self.line_nodes.get(line)


# --- reading -------------------------------------------------------------------------------------
def load(path: str):
    import onnx

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise fail(path, f"cannot read '{path}': {e.strerror}") from None
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf's DecodeError and friends: the bytes are not a model
        raise fail(path, f"not an ONNX model ({type(e).__name__}: {str(e) or 'cannot parse'})") from None
    if not model.graph.node and not model.graph.output:
        raise fail(path, "not an ONNX model (no graph)")
    return model


def is_onnx(path: str) -> bool:
    if path.endswith(".onnx"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) not in (b"GGUF",) and path.endswith(".pb")
    except OSError:
        return False


def parse_shapes(items: list[str]) -> dict[str, list[int]]:
    """``--shape name=1x128`` options."""
    out = {}
    for item in items:
        name, sep, dims = item.rpartition("=")
        try:
            shape = [int(d) for d in dims.split("x")] if dims else []
        except ValueError:
            shape = None
        if not sep or not name or shape is None or any(d < 1 for d in shape):
            raise DiagnosticError(error(f"--shape '{item}' is not NAME=D0xD1x... (sizes of at least 1)"))
        out[name] = shape
    return out


def _opset(model, path: str):
    import onnx

    newest = onnx.defs.onnx_opset_version()
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if version is None:
        raise fail(path, "the model imports no version of the default ONNX domain")
    if version > newest:
        raise fail(path, f"opset {version} is newer than the newest this onnx package knows ({newest})")
    if version < MIN_OPSET:
        from onnx import version_converter

        try:  # ONNX's own converter: an older model's ops rewritten to opset 13
            model = version_converter.convert_version(model, MIN_OPSET)
        except Exception as e:
            raise fail(path, f"opset {version} could not be converted to opset {MIN_OPSET} by onnx's version "
                             f"converter ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        version = MIN_OPSET
    return model, version


def _dims(t) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.tensor_type.shape.dim]


def _set_shapes(model, shapes: dict[str, list[int]], path: str, inits: set[str]) -> None:
    names = [i.name for i in model.graph.input if i.name not in inits]
    for name, shape in shapes.items():
        if name not in names:
            raise fail(path, f"--shape {name}=...: the model has no input '{name}' (inputs: {', '.join(names)})")
        vi = next(i for i in model.graph.input if i.name == name)
        dims = vi.type.tensor_type.shape.dim
        if len(dims) and len(dims) != len(shape):
            raise fail(path, f"--shape {name}={'x'.join(map(str, shape))}: input '{name}' has rank {len(dims)}")
        vi.type.tensor_type.shape.ClearField("dim")
        for d in shape:
            vi.type.tensor_type.shape.dim.add().dim_value = d


def _input_port(vi, path: str, used: set[str]) -> Port:
    t = vi.type
    if not t.HasField("tensor_type"):
        raise fail(path, f"input '{vi.name}' is not a tensor (sequences, maps and optionals are not supported)")
    elem = t.tensor_type.elem_type
    if elem not in CARRIER:
        raise fail(path, f"input '{vi.name}' has type {type_name(elem)}, which is not supported (supported: "
                         f"{', '.join(type_name(k) for k in CARRIER)})")
    if not t.tensor_type.HasField("shape"):
        raise fail(path, f"input '{vi.name}' has no shape: give it one with --shape {vi.name}=D0xD1x...")
    dims = _dims(t)
    for axis, d in enumerate(dims):
        if not isinstance(d, int) or d < 1:
            shown = "x".join(str(x) if isinstance(x, int) and x > 0 else "N" for x in dims)
            raise fail(path, f"input '{vi.name}' has a dynamic dimension '{d}' (axis {axis} of "
                             f"[{', '.join(map(str, dims))}]): static shapes are required; give it a size with "
                             f"--shape {vi.name}={shown.replace('N', '1')}")
    arg = sanitize(vi.name)
    while arg in used:
        arg += "_"
    used.add(arg)
    return Port(vi.name, arg, elem, tuple(dims))


# --- folding -----------------------------------------------------------------------------------------
def _fold(proto, inputs: list, opset: int, domain_opsets) -> list[np.ndarray]:
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    if proto.op_type in SHAPE_OPS:
        shape = np.array(inputs[0].shape, np.int64)
        if proto.op_type == "Size":
            return [np.array(int(np.prod(shape)), np.int64)]
        attrs = {a.name: helper.get_attribute_value(a) for a in proto.attribute}
        start, end = attrs.get("start", 0), attrs.get("end", None)
        return [shape[slice(start, end)]]
    feeds = {n: x.array for n, x in zip(proto.input, inputs) if n}
    ref = ReferenceEvaluator(proto, opsets=domain_opsets)
    return [np.asarray(r) for r in ref.run(None, feeds)]


# --- the conversion ------------------------------------------------------------------------------------
def convert(model, path: str = "<model>", shapes: dict[str, list[int]] | None = None, dtype: str = "f32",
            embed: bool = False, folder: str = "model", target: str | None = None,
            frozen: dict[str, np.ndarray] | None = None) -> Conversion:
    """The module for ``model`` (a ModelProto). Raises ``DiagnosticError`` for a graph it cannot
    take (dynamic input shapes, unsupported input types); unsupported nodes are listed in the
    result's ``unsupported``. ``frozen``: graph inputs bound at import time (they become
    initializers), for inputs the machine needs known when it compiles (a Reshape's shape)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    from lpu.arch.config import DEFAULT_TARGET

    if dtype not in DTYPES:
        raise DiagnosticError(error(f"--dtype {dtype}: one of {', '.join(DTYPES)} for an ONNX model"))
    model = type(model).FromString(model.SerializeToString())  # shapes are set on a copy
    model, opset = _opset(model, path)
    if frozen:
        model = _freeze(model, frozen)
    inits = {t.name for t in model.graph.initializer}
    _set_shapes(model, shapes or {}, path, inits)
    used: set[str] = set()
    ports = [_input_port(vi, path, used) for vi in model.graph.input
             if vi.name not in inits and not (vi.type.HasField("tensor_type") and 0 in _dims(vi.type))]
    try:
        model = shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # best effort: the lowerings compute every shape themselves
        pass
    infos = {vi.name: vi for vi in [*model.graph.value_info, *model.graph.output, *model.graph.input]}
    domain_opsets = {o.domain: o.version for o in model.opset_import}
    domain_opsets[""] = opset

    b = Builder(embed=embed, folder=folder)
    env: dict[str, Value | Const] = {}
    for t in model.graph.initializer:
        env[t.name] = Const(numpy_helper.to_array(t), t.data_type, t.name)
    for p in ports:
        env[p.name] = Value(f"%{p.arg}", p.shape, CARRIER[p.onnx], p.onnx)
    for vi in model.graph.input:  # an empty input holds no values: it is known, a constant
        if vi.name not in inits and vi.type.HasField("tensor_type") and 0 in _dims(vi.type):
            env[vi.name] = Const(np.zeros(_dims(vi.type), onnx_dtype(vi.type.tensor_type.elem_type)),
                                 vi.type.tensor_type.elem_type, vi.name)
    rows: dict[str, OpRow] = {}
    unsupported: list[tuple[str, str]] = []
    needs: set[str] = set()
    mode = dtype

    for index, proto in enumerate(model.graph.node):
        key = proto.op_type if proto.domain in ("", "ai.onnx") else f"{proto.domain}.{proto.op_type}"
        row = rows.setdefault(key, OpRow(key))
        row.count += 1
        ref = NodeRef(index, proto.name, proto.op_type, proto.output[0] if proto.output else "")
        try:
            missing = [n for n in proto.input if n and n not in env]
            if missing:
                raise Unsupported(f"its input '{missing[0]}' comes from a node that is not supported")
            inputs = [env[n] if n else None for n in proto.input]
            if proto.domain not in ("", "ai.onnx"):
                raise Unsupported(f"domain '{proto.domain}' is not supported (the default ONNX domain only)")
            out_types = [_info_type(infos.get(n)) for n in proto.output]
            out_shapes = [_info_shape(infos.get(n)) for n in proto.output]
            known = all(x is None or isinstance(x, Const) for x in inputs)
            if (proto.op_type in SHAPE_OPS and inputs and inputs[0] is not None) or \
                    (known and proto.op_type not in RANDOM and not _has_graph(proto)):
                try:
                    results = _fold(proto, inputs, opset, domain_opsets)
                except Exception as e:
                    raise Unsupported(f"folding it at import time failed ({type(e).__name__}: {e})") from None
                for n, r, t in zip(proto.output, results, out_types):
                    if n:
                        env[n] = Const(r, t if t is not None else _np_onnx(r), n)
                row.supported += 1
                row.folded += 1
                continue
            lower = OPS.get(proto.op_type)
            if lower is None:
                raise Unsupported(f"op type {proto.op_type} is not supported")
            for n, x in zip(proto.input, inputs):
                if isinstance(x, Const) and x.onnx not in CARRIER:
                    raise Unsupported(f"input '{n}' has type {type_name(x.onnx)}, which is not supported")
            for n, t in zip(proto.output, out_types):
                if n and t is not None and t not in CARRIER:
                    raise Unsupported(f"output '{n}' has type {type_name(t)}, which is not supported")
            node = Node(proto, index, inputs, out_types, out_shapes, opset, mode)
            mark = b.mark()
            b.node = ref
            try:
                results = lower(b, node)
                unread = [a for a in node.attrs if a not in node.read]
                if unread:
                    raise Unsupported(f"attribute '{unread[0]}' is not supported")
                for k, (n, r) in enumerate(zip(proto.output, results)):
                    if not n:
                        continue
                    if r is None:
                        raise Unsupported(f"output {k} ('{n}') is not supported")
                    want = out_shapes[k]
                    if want is not None and tuple(want) != tuple(r.shape):
                        raise Unsupported(f"output '{n}' would be {list(r.shape)}, where ONNX infers {list(want)}")
                for k in range(len(results), len(proto.output)):
                    if proto.output[k]:
                        raise Unsupported(f"output {k} ('{proto.output[k]}') is not supported")
            except Unsupported:
                b.rollback(mark)
                raise
            finally:
                b.node = None
            for n, r, t in zip(proto.output, results, out_types):
                if n:
                    if isinstance(r, Value) and t is not None and r.onnx != t and CARRIER.get(t) == r.elem:
                        r = Value(r.name, r.shape, r.elem, t)
                    env[n] = r
            row.supported += 1
        except Unsupported as e:
            if e.needs is not None:
                needs.update(_graph_inputs_behind(model, e.needs, {p.name for p in ports}))
            row.why_not.append((ref.label(), str(e)))
            unsupported.append((ref.label(), str(e)))
            for n in proto.output:  # later nodes are still checked, on the shapes ONNX infers
                vi = infos.get(n)
                t, s = _info_type(vi), _info_shape(vi)
                if n and t in CARRIER and s is not None:
                    env[n] = Value("%unsupported", tuple(s), CARRIER[t], t)

    outputs = []
    if not unsupported:
        b.node = None
        for vi in model.graph.output:
            x = env.get(vi.name)
            if x is None:
                unsupported.append((f"output '{vi.name}'", "it is not computed by the graph"))
                continue
            if int(np.prod(x.shape)) == 0:  # no values: its shape and type are all there is to it
                t = x.onnx if x.onnx in CARRIER or isinstance(x, Value) else _info_type(vi) or x.onnx
                outputs.append((vi.name, Port(vi.name, "", t, tuple(x.shape), empty=True)))
                continue
            try:
                v = b.value(x)
            except Unsupported as e:
                unsupported.append((f"output '{vi.name}'", str(e)))
                continue
            outputs.append((vi.name, v))
    conv = Conversion("", dict(b.arrays), ports, [], {}, rows, opset, len(model.graph.node), unsupported,
                      sorted(needs))
    if unsupported:
        return conv
    _write_text(conv, b, model, path, outputs, dtype, target or DEFAULT_TARGET)
    return conv


def _freeze(model, frozen: dict[str, np.ndarray]):
    from onnx import numpy_helper

    model = type(model).FromString(model.SerializeToString())
    keep = [vi for vi in model.graph.input if vi.name not in frozen]
    for name, a in frozen.items():
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(a), name))
    del model.graph.input[:]
    model.graph.input.extend(keep)
    return model


def _graph_inputs_behind(model, name: str, inputs: set[str]) -> set[str]:
    producer = {o: n for n in model.graph.node for o in n.output}
    found, todo, seen = set(), [name], set()
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        if v in inputs:
            found.add(v)
        elif v in producer:
            todo.extend(i for i in producer[v].input if i)
    return found


def _has_graph(proto) -> bool:
    return any(a.type in (5, 10) for a in proto.attribute)  # GRAPH, GRAPHS: If, Loop, Scan


def _info_type(vi) -> int | None:
    if vi is None or not vi.type.HasField("tensor_type"):
        return None
    return vi.type.tensor_type.elem_type or None


def _info_shape(vi):
    if vi is None or not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    dims = _dims(vi.type)
    return tuple(dims) if all(isinstance(d, int) and d > 0 for d in dims) or not dims else None


def _np_onnx(a: np.ndarray) -> int:
    from onnx.helper import np_dtype_to_tensor_dtype

    return np_dtype_to_tensor_dtype(a.dtype)


def _write_text(conv: Conversion, b: Builder, model, path: str, outputs, dtype: str, target: str) -> None:
    import onnx

    empty = [(n, v) for n, v in outputs if isinstance(v, Port)]
    order = outputs
    outputs = [(n, v) for n, v in outputs if not isinstance(v, Port)]
    names: dict[str, str] = {}
    used = {p.arg for p in conv.inputs}
    for onnx_name, v in outputs:  # a result is named after its ONNX output
        if v.name in names.values() or v.name in [f"%{p.arg}" for p in conv.inputs] or v.name in names:
            continue
        n = sanitize(onnx_name)
        while n in used:
            n += "_"
        used.add(n)
        names[v.name] = f"%{n}"
    rename = lambda s: _rename(s, names)
    header = [f"// imported by `lpu import` from {os.path.basename(path)} (opset {conv.opset}, "
              f"{conv.nodes} nodes, producer {(model.producer_name or '?') + ' ' + (model.producer_version or '')}".rstrip() + ")",
              f"// one df op a line, each ending with the ONNX node it comes from; matmuls: "
              f"{_MODE_TEXT[dtype]} (docs/onnx.md)",
              *[f"// output '{n}' is empty ({type_name(p.onnx)}{list(p.shape)}): it holds no values, so it is no "
                f"result of @main" for n, p in empty],
              f'target "{target}"', ""]
    lines = header + b.data + ([""] if b.data else [])
    params = ", ".join(f"%{p.arg}: {type_text(p.shape, CARRIER[p.onnx])}" for p in conv.inputs)
    results = ", ".join(type_text(v.shape, v.elem) for _, v in outputs)
    lines.append(f"func @main({params}) -> {results} {{" if outputs else f"func @main({params}) {{")
    first = len(lines) + 1
    for k, (text, node) in enumerate(zip(b.lines, b.line_nodes)):
        lines.append(rename(text))
        if node is not None:
            conv.line_nodes[first + k] = node.label()
    lines.append(("  return " + ", ".join(names.get(v.name, v.name) for _, v in outputs)).rstrip())
    lines.append("}")
    conv.text = "\n".join(lines) + "\n"
    conv.outputs = [v if isinstance(v, Port) else Port(n, names.get(v.name, v.name)[1:], v.onnx, v.shape)
                    for n, v in order]
    conv.arrays = dict(b.arrays)


_MODE_TEXT = {"f32": "FLOAT as six products of bf16 parts", "f16": "operands in f16", "bf16": "operands in bf16",
              "i8": "i8 weights per output channel, rows of activations quantized at run time"}


def _rename(text: str, names: dict[str, str]) -> str:
    import re

    if not names:
        return text
    return re.sub(r"%t\d+\b", lambda m: names.get(m.group(0), m.group(0)), text)


def unsupported_error(conv: Conversion, path: str) -> DiagnosticError:
    diags = [error(f"node {label}: {why}", SourceLoc(path)) for label, why in conv.unsupported]
    n = len(conv.unsupported)
    diags.append(error(f"{n} of {conv.nodes} node{'s' if conv.nodes != 1 else ''} "
                       f"{'is' if n == 1 else 'are'} not supported; nothing was written "
                       f"(`lpu import --report` shows the op-support table)", SourceLoc(path)))
    return DiagnosticError(diags)


def report_text(conv: Conversion, path: str) -> str:
    """The op-support table: per op type, count, supported or not, and why not."""
    rows = sorted(conv.rows.values(), key=lambda r: (r.supported == r.count, r.op_type))
    w = max([len(r.op_type) for r in rows] + [7])
    out = [f"{path}: opset {conv.opset}, {conv.nodes} nodes", "",
           f"  {'op type':<{w}}  count  supported  why not"]
    for r in rows:
        yes = "yes" if r.supported == r.count else ("no" if r.supported == 0 else f"{r.supported}/{r.count}")
        why = r.why_not[0][1] if r.why_not else ("folded at import" if r.folded == r.count else "")
        out.append(f"  {r.op_type:<{w}}  {r.count:>5}  {yes:<9}  {why}".rstrip())
    ok = sum(r.supported for r in rows)
    types_ok = sum(1 for r in rows if r.supported == r.count)
    out += ["", f"{ok}/{conv.nodes} nodes supported ({types_ok}/{len(rows)} op types)"]
    for label, why in conv.unsupported:
        out.append(f"  node {label}: {why}")
    return "\n".join(out) + "\n"


# --- writing ----------------------------------------------------------------------------------------
@dataclass
class Imported:
    module: str
    folder: str
    conversion: Conversion
    files: list[str] = field(default_factory=list)


def import_onnx(path: str, out: str, shapes: dict[str, list[int]] | None = None, dtype: str = "f32",
                embed: bool = False, target: str | None = None, model=None) -> Imported:
    """Import the model at ``path`` to the module ``out`` and (unless ``embed``) its weights'
    folder beside it."""
    if not out.endswith(".lpu"):
        raise DiagnosticError(error(f"the output '{out}' must be a .lpu file (its weights go in the folder beside it)"))
    out_dir = os.path.dirname(os.path.abspath(out))
    stem = os.path.splitext(os.path.basename(out))[0]
    folder = os.path.join(out_dir, stem)
    conv = convert(model if model is not None else load(path), path, shapes, dtype, embed, stem, target)
    if conv.unsupported:
        raise unsupported_error(conv, path)
    if embed:
        _atomic(out, conv.text)
        return Imported(out, "", conv, [])
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise DiagnosticError(error(f"cannot write the weights' folder '{folder}': a file of that name is in the way",
                                    SourceLoc(out)))
    try:
        os.makedirs(out_dir, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".tmp-import-", dir=out_dir)
    except OSError as e:
        raise DiagnosticError(error(f"cannot write '{out}': {e.strerror}", SourceLoc(out))) from None
    try:
        new = os.path.join(staging, stem)
        os.mkdir(new)
        files = []
        for name, a in conv.arrays.items():
            np.save(os.path.join(new, name + ".npy"), a, allow_pickle=False)
            files.append(name + ".npy")
        meta = {"source": os.path.basename(path), "opset": conv.opset, "dtype": dtype, "module": os.path.basename(out),
                "inputs": [_port_json(p) for p in conv.inputs], "outputs": [_port_json(p) for p in conv.outputs],
                "lines": {str(k): v for k, v in sorted(conv.line_nodes.items())}}
        with open(os.path.join(new, "onnx.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(meta, indent=1) + "\n")
        files.append("onnx.json")
        if os.path.isdir(folder):
            os.rename(folder, os.path.join(staging, "previous"))
        os.rename(new, folder)
        write_atomic(out, conv.text)
    except OSError as e:
        raise DiagnosticError(error(f"cannot write '{out}': {e.strerror}", SourceLoc(out))) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Imported(out, folder, conv, files)


def _atomic(out: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_atomic(out, text)


def _port_json(p: Port) -> dict:
    return {"name": p.name, "arg": p.arg, "type": type_name(p.onnx), "shape": list(p.shape)}


# --- the command line (lpu import dispatches here for an .onnx file) ------------------------------------
def run(args: argparse.Namespace, sources) -> int:
    shapes = parse_shapes(args.shape or [])
    dtype = args.dtype or "f32"
    if args.report:
        conv = convert(load(args.model), args.model, shapes, dtype, embed=True, target=args.target)
        sys.stdout.write(report_text(conv, args.model))
        return 1 if conv.unsupported else 0
    if not args.output:
        raise DiagnosticError(error("the output is missing: -o OUT.lpu (or --report for the op-support table)"))
    r = import_onnx(args.model, args.output, shapes, dtype, args.embed, args.target)
    if args.verbose:
        c = r.conversion
        print(f"{r.module}: {c.nodes} nodes, {len(c.text.splitlines())} lines, {len(r.files)} files"
              + (f" in {r.folder}/" if r.folder else ""), file=sys.stderr)
    return 0
