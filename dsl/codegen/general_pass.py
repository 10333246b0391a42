"""``schedule-general``: the general code generator path as an ``lpu-opt`` pass.

``lpu-opt prog.lpu -p schedule-general -o prog.s`` replaces every function the GEMV/GEMM
stages (``register-block``, ``sram-layout``, ``schedule``) do not match by its SRAM tensors
(``data``/``reserve`` with placements; symbols prefixed by the function's name) and an
``lpu.kernel`` — ``.lpu`` assembly that ``lpu-as`` assembles to the code ``lpu compile``
makes. It runs the same stages as ``compile_general`` (decompose, lower to snippets, list
schedule with stream allocation); the code generator is imported only when it runs. An
assembly kernel a function calls is spliced into the function's kernel (``lower_call.py``), so
its own ``df.kernel`` goes; the SRAM tensors it uses stay as they were declared.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.passes import ModulePass


@dataclass(frozen=True)
class ScheduleGeneralPass(ModulePass):
    """schedule-general: other functions through the general path; replaced by tensors and an lpu.kernel

    Every function the GEMV/GEMM stages do not match; its symbols are prefixed by its name.
    Option streams=N: schedule with stream indices 0..N-1 of each direction only (later cycles
    where they are all taken), so that stream-alloc{streams=N} can allocate the kernel.
    Option fold=false: the kernel fully unrolled (no repeat); unroll folds it back."""

    name = "schedule-general"
    streams: int | None = None
    fold: bool = True

    def apply(self, ctx, op) -> None:
        from lpu.dsl import dialect as D
        from lpu.dsl.codegen import is_gemv
        from lpu.dsl.codegen.general import compile_general
        from lpu.dsl.codegen.passes import _base, _config, _funcs, insert_compiled
        from lpu.dsl.codegen.streams import stream_limit
        from lpu.dsl.frontend import loc_of

        cfg = _config(op)
        if self.streams is not None and not 1 <= self.streams <= cfg.streams:
            from lpu.diagnostics import DiagnosticError, error

            raise DiagnosticError(error(f"schedule-general: streams={self.streams} is not between 1 and the "
                                        f"{cfg.streams} streams of each direction of {cfg.name}"))
        declared = {t.sym_name.data for t in op.ops if isinstance(t, (D.DataOp, D.ReserveOp))}
        spliced: set[str] = set()  # kernels whose code went into a compiled function
        for func in _funcs(op):
            name = func.sym_name.data
            if is_gemv(op, name):
                continue  # register-block, sram-layout, schedule
            loc = loc_of(func)
            with stream_limit(self.streams):
                c = compile_general(op, name, cfg, _base(func), loc.file if loc else "<lpu-opt>", f"{name}_")
            insert_compiled(op, func, c, cfg, self.fold, frozenset(declared))
            spliced |= {D.get_sym(call, "callee") for call in func.walk() if isinstance(call, D.CallOp)}
        for func in _funcs(op):  # after all are compiled: a function may call another
            if not is_gemv(op, func.sym_name.data):
                func.detach()
                func.erase(safe_erase=False)
        for k in list(op.ops):  # a called kernel runs inside its caller now, not beside it
            if isinstance(k, D.KernelOp) and k.sym_name.data in spliced:
                k.detach()
                k.erase(safe_erase=False)
