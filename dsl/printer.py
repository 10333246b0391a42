"""Prints a ``df`` module as ``.lpu`` text, the syntax the frontend reads.

``parse_module(print_module(m))`` is structurally equal to ``m``: every result type and
attribute is written out, values keep their source names where those are unique, kernels are
printed as the source text they were parsed from.
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import ArrayAttr, DenseIntOrFPElementsAttr, FloatAttr, IntegerAttr, ModuleOp, StringAttr, SymbolRefAttr
from xdsl.ir import Attribute, Block, Operation, SSAValue

from lpu.dsl import dialect as D
from lpu.dsl import types as T


def quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def format_number(v) -> str:
    if isinstance(v, (float, np.floating)):
        r = repr(float(v))
        return r if r not in ("inf", "-inf", "nan") else r  # not expressible; kept readable
    return str(int(v))


def format_attr(a: Attribute) -> str:
    if isinstance(a, IntegerAttr):
        return str(a.value.data)
    if isinstance(a, FloatAttr):
        return format_number(a.value.data)
    if isinstance(a, SymbolRefAttr):
        return "@" + a.root_reference.data
    if isinstance(a, StringAttr):
        return quote(a.data)
    if isinstance(a, ArrayAttr):
        return "[" + ", ".join(format_attr(x) for x in a.data) + "]"
    if isinstance(a, DenseIntOrFPElementsAttr):
        values = D.dense_value(a).reshape(-1)
        if values.size and np.all(values == values[0]) and not (T.elem_of(a.type) in T.FLOATS and np.isnan(values[0])):
            return format_number(values[0].item())
        return "[" + ", ".join(format_number(v) for v in values.tolist()) + "]"
    return str(a)


class _Names:
    def __init__(self) -> None:
        self.names: dict[SSAValue, str] = {}
        self.taken: set[str] = set()
        self.next = 0

    def __call__(self, v: SSAValue) -> str:
        name = self.names.get(v)
        if name is None:
            hint = v.name_hint
            if hint is None or hint in self.taken:
                base = hint or ""
                while True:
                    name = f"{base}_{self.next}" if base else str(self.next)
                    self.next += 1
                    if name not in self.taken:
                        break
            else:
                name = hint
            self.taken.add(name)
            self.names[v] = name
        return "%" + name


def literal_text(const: Operation, user: Operation) -> str | None:
    """The number to print in place of ``const``'s result as an operand of ``user``, or None:
    a rank-0 finite constant with no other use, directly before ``user`` (a binary op, or one
    of select's two values), on the same chip — exactly what the parser makes of
    ``mul %x, 0.125``, so the printed text reads back as the same ops."""
    if not isinstance(const, D.ConstantOp) or not isinstance(user, (D.BinaryOp, D.SelectOp)) or \
            const.next_op is not user:
        return None
    r = const.result
    if T.shape_of(r.type) != () or not r.has_one_use():
        return None
    if set(const.attributes) - {"value", "chip"} or const.attributes.get("chip") != user.attributes.get("chip"):
        return None
    if user.lhs is not r and user.rhs is not r or isinstance(user, D.SelectOp) and user.cond is r:
        return None
    v = D.dense_value(const.value).reshape(()).item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return format_number(v)


def _op_line(op: Operation, names: _Names, literals: dict | None = None) -> str:
    cls = type(op)
    parts = []
    if op.results:
        parts.append(", ".join(names(r) for r in op.results) + " = ")
    parts.append(op.name[3:])
    operands = [literals[v] if literals and v in literals else names(v) for v in op.operands]
    sym = getattr(cls, "SYMBOL", None)
    if sym is not None and sym in op.attributes:
        head = format_attr(op.attributes[sym])
        if cls is D.CallOp:
            args = D.merge_positions(operands, ["@" + s for s in D.get_syms(op, "sym_args") or []],
                                     D.get_ints(op, "sym_arg_positions") or [])
            operands = [f"{head}({', '.join(args)})"]
        else:
            at = getattr(cls, "SYMBOL_AT", 0)
            operands = [*operands[:at], head, *operands[at:]]
    if operands:
        parts.append(" " + ", ".join(operands))
    attrs = [(k, op.attributes[k]) for k in [*cls.ATTRS, "chip"] if k in op.attributes and k != sym]
    if attrs:
        parts.append(" {" + ", ".join(f"{k} = {format_attr(v)}" for k, v in attrs) + "}")
    if op.results:
        parts.append(" : " + ", ".join(T.type_text(r.type) for r in op.results))
    notes = [(k, v) for k, v in op.attributes.items() if k.startswith("lpu.")]  # code generator's annotations
    if notes:
        parts.append("  // " + "; ".join(f"{k} = {format_attr(v)}" for k, v in notes))
    return "".join(parts)


def _block(block: Block, names: _Names, indent: str, out: list[str]) -> None:
    for op in block.ops:
        if isinstance(op, D.ForOp):
            body = op.body.block
            head = ""
            if op.results:
                head = ", ".join(names(r) for r in op.results) + " = "
            line = (f"{indent}{head}for {names(body.args[0])} = {D.get_int(op, 'lower')} to {D.get_int(op, 'upper')}"
                    f" step {D.get_int(op, 'step')}")
            if op.inits:
                line += " iter(" + ", ".join(f"{names(a)} = {names(v)}" for a, v in zip(body.args[1:], op.inits)) + ")"
                line += " : " + ", ".join(T.type_text(v.type) for v in op.inits)
            out.append(line + " {")
            _block(body, names, indent + "  ", out)
            out.append(indent + "}")
        elif isinstance(op, D.ConstantOp) and op.next_op is not None and literal_text(op, op.next_op) is not None:
            continue  # printed as a number operand of the next op
        else:
            literals = None
            if isinstance(op, (D.BinaryOp, D.SelectOp)) and op.prev_op is not None and op.prev_op.results:
                text = literal_text(op.prev_op, op)
                if text is not None:
                    literals = {op.prev_op.results[0]: text}
            out.append(indent + _op_line(op, names, literals))


def _placement(op: Operation) -> str:
    p = op.attributes.get("placement")
    if p is None:
        return ""
    a = op.attributes.get("address")
    return f" in {p.data}" + (f" at {a.value.data}" if a is not None else "")


def print_module(module: ModuleOp) -> str:
    out: list[str] = []
    target = module.attributes.get("df.target")
    if isinstance(target, StringAttr):
        out += [f"target {quote(target.data)}", ""]
    for op in module.ops:
        g = "global " if "global" in op.attributes else ""
        if isinstance(op, D.DataOp):
            kind = op.init_kind.data
            if kind == "load":
                init = f"load({quote(op.init.data)})"
            elif kind == "hex":
                init = f'hex"{op.init.data}"'
            else:
                values = D.dense_value(op.init).reshape(-1).tolist()
                init = "[" + ", ".join(format_number(v) for v in values) + "]"
            out.append(f"{g}data @{op.sym_name.data} : {T.type_text(op.type)}{_placement(op)} = {init}")
        elif isinstance(op, D.ReserveOp):
            out.append(f"{g}reserve @{op.sym_name.data} : {T.type_text(op.type)}{_placement(op)}")
        elif isinstance(op, D.ExternOp):
            out.append(f"extern @{op.sym_name.data}")
        elif isinstance(op, D.KernelOp):
            out += ["", op.text.data, ""]
        elif isinstance(op, D.FuncOp):
            names = _Names()
            params = [f"{names(a)}: {T.type_text(a.type)}" for a in op.body.block.args]
            syms = [f"@{n}: {T.type_text(t)}" for n, t in op.sym_param_list()]
            args = ", ".join(D.merge_positions(params, syms, op.sym_param_positions()))
            outs = op.function_type.outputs.data
            ret = (" -> " + ", ".join(T.type_text(t) for t in outs)) if outs else ""
            out += ["", f"func @{op.sym_name.data}({args}){ret} {{"]
            _block(op.body.block, names, "  ", out)
            out.append("}")
        elif hasattr(op, "print_lpu"):  # an lpu.kernel the schedule pass made
            out += ["", op.print_lpu(), ""]
        else:
            out.append(f"// (unprintable op {op.name})")
    text = "\n".join(out).strip("\n") + "\n"
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text
