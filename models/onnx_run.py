"""``lpu run model.onnx``: an ONNX model imported (weights inline), compiled, linked and
simulated — ``--reference`` runs the import on the reference interpreter instead — and with
``--check`` compared with ``onnx.reference.ReferenceEvaluator`` on the same inputs.

Inputs are given by their ONNX names (``--input x=x.npy``); the others get seeded random values
of their ONNX type (normal floats, integers in [0, 8), random booleans). An input a node needs
known at import time (a Reshape's shape fed as an input) is bound to its value, as the
backend does (``onnx_backend.prepare_for``), and a note says so.
"""

from __future__ import annotations

import argparse
import io
import sys

import numpy as np

from lpu.diagnostics import DiagnosticError, SourceLoc, error


def _random(vi, rng: np.random.Generator) -> np.ndarray:
    from lpu.models.onnx_emit import onnx_dtype

    t = vi.type.tensor_type
    shape = [d.dim_value for d in t.shape.dim]
    dt = np.dtype(onnx_dtype(t.elem_type))
    if dt == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    if dt.kind in "iu":
        return rng.integers(0, 8, size=shape).astype(dt)
    return rng.standard_normal(size=shape).astype(dt)


def run(args: argparse.Namespace) -> int:
    from onnx.reference import ReferenceEvaluator

    from lpu.compile import matches, tolerance
    from lpu.dsl.run import _pairs, load_npy
    from lpu.files import write_atomic
    from lpu.models.onnx_backend import prepare_for
    from lpu.models.onnx_import import _dims, _set_shapes, load, parse_shapes

    path = args.program
    model = load(path)
    inits = {t.name for t in model.graph.initializer}
    _set_shapes(model, parse_shapes(getattr(args, "shape", None) or []), path, inits)
    graph_inputs = [vi for vi in model.graph.input if vi.name not in inits]
    given = {n: load_npy(p) for n, p in _pairs(args.input, "--input").items()}
    unknown = sorted(set(given) - {vi.name for vi in graph_inputs})
    if unknown:
        raise DiagnosticError(error(f"--input {unknown[0]}=...: the model has no input '{unknown[0]}' (inputs: "
                                    f"{', '.join(vi.name for vi in graph_inputs)})", SourceLoc(path)))
    rng = np.random.default_rng(args.seed)
    feeds = []
    for vi in graph_inputs:
        if vi.name in given:
            feeds.append(given[vi.name])
            continue
        dims = _dims(vi.type)
        if not all(isinstance(d, int) and d > 0 for d in dims):
            from lpu.models.onnx_import import _input_port

            _input_port(vi, path, set())  # the dynamic-dimension diagnostic
        feeds.append(_random(vi, rng))
        print(f"lpu run: note: input '{vi.name}': random {feeds[-1].dtype}{list(feeds[-1].shape)} (--seed {args.seed})",
              file=sys.stderr)
    device = "reference" if args.reference else "simulator"
    rep = prepare_for(model, feeds, device, name=path)
    for n in sorted(rep.frozen):
        print(f"lpu run: note: input '{n}' is bound at import time (a node needs its value to compile)",
              file=sys.stderr)
    got = rep.run(feeds)
    if rep.cycles is not None:
        print(f"lpu run: {path}: {rep.cycles} cycles, {len(rep.hazards)} hazards", file=sys.stderr)
    names = [p.name for p in rep.conversion.outputs]
    outputs = _pairs(args.output, "--output")
    missing = sorted(set(outputs) - set(names))
    if missing:
        raise DiagnosticError(error(f"no output named '{missing[0]}' (outputs: {', '.join(names)})"))
    for n, r in zip(names, got):
        if n in outputs:
            buf = io.BytesIO()
            np.save(buf, r, allow_pickle=False)
            write_atomic(outputs[n], buf.getvalue())
        if not args.quiet and not args.check:
            with np.printoptions(threshold=16, edgeitems=4, linewidth=100):
                print(f"{n}: {r.dtype}{list(r.shape)} = {r}")
    status = 1 if rep.hazards else 0
    if args.check:
        want = ReferenceEvaluator(model).run(None, {vi.name: a for vi, a in zip(graph_inputs, feeds)})
        where = "the simulator" if device == "simulator" else "the reference interpreter"
        for n, g, w in zip(names, got, want):
            w = np.asarray(w)
            same = matches(g, w.astype(g.dtype) if g.dtype != w.dtype else w)
            how = "equal to" if g.dtype.kind in "biu" else f"within {tolerance(g.dtype):g} (relative) of"
            cycles = f", {rep.cycles} cycles" if rep.cycles is not None else ""
            print(f"{n}: {how if same else 'DIFFERENT from'} onnx.reference.ReferenceEvaluator on {where} "
                  f"({g.dtype}{list(g.shape)}{cycles})")
            status = status or (0 if same else 1)
    return status
