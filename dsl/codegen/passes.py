"""The code generator's stages as ``lpu-opt`` passes, on IR:

- ``register-block{planes=N tile-rows=R}``: blocks each function's matmul (GEMV or GEMM) and
  annotates it: ``lpu.planes``, ``lpu.tile_rows`` (the decisions, which the later passes
  re-derive the plan from) and ``lpu.blocking`` (what they mean, for a reader);
- ``sram-layout``: lays out a blocked matmul's tensors and annotates the matmul with
  ``lpu.layout``: every SRAM tensor with its shape and slice;
- ``schedule{fold=B}``: schedules it (with ``unroll``'s repeat folding unless ``fold=false``)
  and replaces the function with the tensors it uses (``data``/``reserve`` with their
  placements; weights as exact bytes) and an ``lpu.kernel`` of ``lpu`` ops — printed as
  ``.lpu`` assembly, which ``lpu-as`` assembles to the same code as ``lpu compile``.
  ``schedule{fold=false},unroll`` gives the same kernel as ``schedule``.

Functions the GEMV/GEMM stages do not match are left alone (another path compiles them), and
a pass whose predecessor has not run on a function leaves that function alone too. The ``.lpu``
printer shows the annotations as a comment after the op (``// lpu.blocking = ...``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.passes import ModulePass

from lpu.diagnostics import DiagnosticError
from lpu.dsl import dialect as D


def _config(module: ModuleOp):
    from lpu.arch.config import load_config

    target = module.attributes.get("df.target")
    return load_config(target.data if isinstance(target, StringAttr) else None)


def _funcs(module: ModuleOp):
    return [op for op in module.ops if isinstance(op, D.FuncOp)]


def _matmul(func):
    return next((op for op in func.body.block.ops if isinstance(op, D.MatmulOp)), None)


def _base(func) -> str:
    from lpu.dsl.frontend import loc_of

    loc = loc_of(func)
    d = os.path.dirname(os.path.abspath(loc.file)) if loc is not None and loc.file not in ("-", "<stdin>") else "."
    return d if os.path.isdir(d) else "."


def _plan(module, func, cfg, planes=None, tile_rows=None):
    from lpu.dsl.codegen.register_block import register_block
    from lpu.dsl.interpreter import _State

    state = _State(module, _base(func), {})
    return register_block(module, func.sym_name.data, cfg, lambda d: state.tensor(d.sym_name.data, d),
                          planes, tile_rows)


def _replan(module, func, cfg):
    mm = _matmul(func)
    if mm is None or "lpu.planes" not in mm.attributes:
        return None
    planes = mm.attributes["lpu.planes"].value.data
    tile = mm.attributes.get("lpu.tile_rows")
    return _plan(module, func, cfg, planes, tile.value.data if tile is not None else None)


def describe_blocking(plan) -> str:
    from lpu.dsl.codegen.gemm import GemmPlan

    if isinstance(plan, GemmPlan):
        head = f"gemm {plan.M}x{plan.K}x{plan.N}: k = {plan.k}, n = {plan.n}, tiles {plan.tiles}"
        work = "; ".join(f"{w.plane}: " + ", ".join(f"col {j} rows {m0}:{m1}" for j, m0, m1 in w.units)
                         for w in plan.planes)
    else:
        head = f"gemv {plan.K}x{plan.N}: k = {plan.k}, n = {plan.n}"
        work = "; ".join(f"{w.plane}: " + ", ".join(f"col {j} blocks {i0}:{i1}" for j, i0, i1 in w.parts)
                         for w in plan.planes)
    return f"{head}; {work}"


def describe_layout(layout) -> str:
    return "; ".join(f"@{t.name} {'x'.join(map(str, t.shape))}x{t.dtype} in {t.placement}" for t in layout.tensors)


def insert_compiled(module: ModuleOp, func, c, cfg, fold: bool, declared: frozenset = frozenset()) -> None:
    """Puts a compiled function's SRAM tensors (as the assembly level writes them: placements,
    exact bytes; those named in ``declared`` are the module's already) and its ``lpu.kernel``
    (written out in full unless ``fold``) before ``func``."""
    from lpu.dsl.frontend import parse_module

    header = c.assembly().split("\n\nglobal kernel", 1)[0].split("\nkernel", 1)[0]
    tensors = [t for t in parse_module(header, "<schedule>").ops
               if isinstance(t, (D.DataOp, D.ReserveOp)) and t.sym_name.data not in declared]
    kernel = c.kernel
    if not fold:
        from lpu.dsl.codegen.unroll import expand_kernel

        kernel = expand_kernel(kernel, cfg)
    kernel.attributes["target"] = StringAttr(cfg.name)
    for t in tensors:
        t.detach()
        module.body.block.insert_op_before(t, func)
    module.body.block.insert_op_before(kernel, func)


@dataclass(frozen=True)
class RegisterBlockPass(ModulePass):
    """register-block: matmuls into 320 x 320 blocks over the MXM planes (annotates them)"""

    name = "register-block"
    planes: int | None = None
    tile_rows: int | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        cfg = _config(op)
        for func in _funcs(op):
            mm = _matmul(func)
            if mm is None:
                continue
            try:
                plan = _plan(op, func, cfg, self.planes, self.tile_rows)
            except DiagnosticError:
                continue  # not a form these stages compile
            mm.attributes["lpu.planes"] = IntegerAttr(len(plan.planes), i64)
            if getattr(plan, "tiles", None) is not None:
                mm.attributes["lpu.tile_rows"] = IntegerAttr(max(m1 - m0 for m0, m1 in plan.tiles), i64)
            mm.attributes["lpu.blocking"] = StringAttr(describe_blocking(plan))


@dataclass(frozen=True)
class SramLayoutPass(ModulePass):
    """sram-layout: a blocked matmul's tensors to MEM slices and addresses (annotates it)"""

    name = "sram-layout"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from lpu.dsl.codegen.sram_layout import sram_layout

        cfg = _config(op)
        for func in _funcs(op):
            plan = _replan(op, func, cfg)
            if plan is not None:
                _matmul(func).attributes["lpu.layout"] = StringAttr(describe_layout(sram_layout(plan, cfg)))


@dataclass(frozen=True)
class SchedulePass(ModulePass):
    """schedule: issue cycles; replaces the function with its tensors and an lpu.kernel

    ``fold=false`` leaves the kernel fully unrolled (every instruction at its own cycle, no
    ``repeat``); ``unroll`` then folds it to the kernel ``schedule`` makes by default."""

    name = "schedule"
    fold: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from lpu.dsl.codegen import _compile
        from lpu.dsl.frontend import loc_of

        cfg = _config(op)
        for func in _funcs(op):
            mm = _matmul(func)
            if mm is None or "lpu.layout" not in mm.attributes:
                continue
            plan = _replan(op, func, cfg)
            loc = loc_of(func)
            c = _compile(plan, cfg, func.sym_name.data, loc.file if loc else "<lpu-opt>", time.perf_counter())
            insert_compiled(op, func, c, cfg, self.fold)
            func.detach()
            func.erase(safe_erase=False)
        # data tensors no function reads any more (the stages re-laid them out as stripes)
        used = {D.get_sym(g, "tensor") for f in _funcs(op) for g in f.walk() if isinstance(g, D.GetOp)}
        for t in list(op.ops):
            if isinstance(t, D.DataOp) and "placement" not in t.attributes and t.sym_name.data not in used:
                t.detach()
                t.erase(safe_erase=False)
