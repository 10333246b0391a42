"""``unroll`` (static ``for`` loops, fully or by a factor; on ``lpu.kernel`` ops, regular runs
folded into ``repeat`` or written out) and ``inline`` (small functions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, SymbolRefAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from lpu.diagnostics import DiagnosticError, error
from lpu.dsl import dialect as D
from lpu.dsl.frontend import loc_of
from lpu.dsl.passes.build import Emitter


def _clone_body(block, mapping: dict[SSAValue, SSAValue], out: list[Operation], location=None) -> list[SSAValue]:
    """Clones a block's ops (not its terminator) under ``mapping``; the terminator's operands,
    mapped. Cloned ops keep their own locations unless ``location`` is given."""
    for op in block.ops:
        if op is block.last_op and op.has_trait(__import__("xdsl.traits", fromlist=["IsTerminator"]).IsTerminator):
            return [mapping.get(v, v) for v in op.operands]
        new = op.clone(value_mapper=mapping)
        if location is not None:
            for o in new.walk():
                o.location = location
        out.append(new)
    return []


def unroll_loop(loop: D.ForOp, factor: int) -> None:
    lo, hi, step = D.get_int(loop, "lower"), D.get_int(loop, "upper"), D.get_int(loop, "step")
    trips = loop.trip_count()
    body = loop.body.block
    if factor <= 0 or factor >= trips:
        e = Emitter(loop)
        values = list(loop.inits)
        ops: list[Operation] = []
        for i in range(lo, hi, step):
            e.ops = []
            counter = e.constant(np.asarray(i, dtype=np.int32), "i32")
            ops += e.ops
            values = _clone_body(body, {body.args[0]: counter, **dict(zip(body.args[1:], values))}, ops)
        Rewriter.replace_op(loop, ops, values) if ops else Rewriter.replace_op(loop, [], list(loop.inits))
        return
    if trips % factor:
        raise DiagnosticError(error(f"unroll factor {factor} does not divide the trip count {trips} of this loop",
                                    loc_of(loop)))
    new_body_ops: list[Operation] = []
    new_loop = loop.clone()
    nb = new_loop.body.block
    for op in list(nb.ops):
        op.detach()
        op.erase(safe_erase=False)
    values = list(nb.args[1:])
    e = Emitter(loop)
    for k in range(factor):
        e.ops = []
        counter = nb.args[0] if k == 0 else e.binary("add", nb.args[0], e.constant(np.asarray(k * step, np.int32), "i32"))
        new_body_ops += e.ops
        values = _clone_body(body, {body.args[0]: counter, **dict(zip(body.args[1:], values))}, new_body_ops)
    nb.add_ops(new_body_ops)
    y = D.YieldOp.create(operands=values)
    y.location = body.last_op.location
    nb.add_op(y)
    new_loop.attributes["step"] = D.int_attr(step * factor)
    Rewriter.replace_op(loop, [new_loop], list(new_loop.results))


@dataclass(frozen=True)
class UnrollPass(ModulePass):
    """unroll: for loops fully or by factor; on lpu.kernel ops, runs folded into repeat (full=true: written out)

    One pass, two levels of loops. On ``df`` functions: unrolls every ``for``, fully (``factor=0``, the default, or
    ``full=true``) or by ``factor``, which must divide each loop's trip count; inner loops first.

    On ``lpu.kernel`` ops (what ``schedule``/``schedule-general`` leave): the loops of the
    blocking are the kernel's runs of one instruction at a constant spacing. By default each
    run is folded into the instruction plus ``repeat N, D`` (MEM addresses advancing by their
    stride); ``factor=F`` keeps at most F repetitions per ``repeat`` (a partly unrolled run);
    ``full=true`` writes every ``repeat`` out, each instruction at its own cycle and address.
    No cycle changes (``lpu.dsl.codegen.unroll``)."""

    name = "unroll"
    factor: int = 0
    full: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.full and self.factor:
            raise DiagnosticError(error(f"unroll: full=true and factor={self.factor} contradict each other "
                                        "(full unrolls completely; factor keeps loops of that many iterations)"))
        loops = [o for o in op.walk(reverse=True) if isinstance(o, D.ForOp)]
        for loop in loops:
            unroll_loop(loop, self.factor)
        kernels = [o for o in op.ops if o.name == "lpu.kernel"]
        if kernels:
            _unroll_kernels(op, kernels, self.factor, self.full)


def _unroll_kernels(module: ModuleOp, kernels, factor: int, full: bool) -> None:
    # the code generator is imported only when a module holds machine code
    from lpu.arch.config import load_config
    from lpu.dsl.codegen.unroll import expand_kernel, fold_kernel

    target = module.attributes.get("df.target")
    for kop in kernels:
        name = kop.target.data if kop.target is not None else (target.data if target is not None else None)
        cfg = load_config(name)
        new = expand_kernel(kop, cfg) if full else fold_kernel(kop, cfg, factor)
        if new is not kop:
            Rewriter.replace_op(kop, new, [])


def substitute_symbols(ops: list[Operation], mapping: dict[str, str]) -> None:
    """Renames the ``@symbol`` references of ``ops`` (and the ops inside them) by ``mapping``:
    a ``get``/``store`` tensor, a call's symbol arguments and kernel tensors (never a callee)."""
    def renamed(a):
        if isinstance(a, SymbolRefAttr):
            new = mapping.get(a.root_reference.data)
            return SymbolRefAttr(new) if new is not None else a
        if isinstance(a, ArrayAttr) and a.data and all(isinstance(x, SymbolRefAttr) for x in a.data):
            items = [renamed(x) for x in a.data]
            return ArrayAttr(items) if any(x is not y for x, y in zip(items, a.data)) else a
        return a

    for top in ops:
        for o in top.walk():
            for key, a in list(o.attributes.items()):
                if key != "callee":
                    new = renamed(a)
                    if new is not a:
                        o.attributes[key] = new


def _size(func: D.FuncOp) -> int:
    return sum(1 for _ in func.body.walk())


@dataclass(frozen=True)
class InlinePass(ModulePass):
    """Inlines calls of functions with at most ``max_ops`` ops (kernels are never inlined),
    except calls of the functions ``keep`` names (comma-separated: the code generator compiles
    those once and calls them). The inlined ops carry the call's location. Functions are kept
    (they stay callable)."""

    name = "inline"
    max_ops: int = 32
    keep: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        kept = {k for k in self.keep.split(",") if k}
        funcs = {f.sym_name.data: f for f in op.ops if isinstance(f, D.FuncOp) and f.sym_name.data not in kept}
        for _round in range(8):  # inlined bodies may hold calls: a few rounds, not recursion
            calls = [c for c in op.walk() if isinstance(c, D.CallOp) and D.get_sym(c, "callee") in funcs]
            changed = False
            for call in calls:
                callee = funcs[D.get_sym(call, "callee")]
                if _size(callee) > self.max_ops or callee.is_ancestor(call):
                    continue
                body = callee.body.block
                ops: list[Operation] = []
                values = _clone_body(body, dict(zip(body.args, call.operands)), ops, call.location)
                params = [p for p, _t in callee.sym_param_list()]
                if params:  # the callee's symbol parameters name what the call passes
                    substitute_symbols(ops, dict(zip(params, D.get_syms(call, "sym_args") or [])))
                Rewriter.replace_op(call, ops, values)
                changed = True
            if not changed:
                return
