"""The passes of ``lpu-opt`` and their registry (``PASSES``: name -> ModulePass class).

Options follow xDSL's pipeline syntax: ``-p 'df-decompose,unroll{factor=2},cse'``.
"""

from __future__ import annotations

from typing import Callable

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline

from lpu.diagnostics import DiagnosticError, error
from lpu.perf import without_gc
from lpu.dsl.passes.decompose import DecomposePass
from lpu.dsl.passes.loops import InlinePass, UnrollPass
from lpu.dsl.passes.walk import CanonicalizePass, CsePass, DcePass

PASSES: dict[str, type[ModulePass]] = {
    "df-decompose": DecomposePass,
    "canonicalize": CanonicalizePass,
    "cse": CsePass,
    "dce": DcePass,
    "unroll": UnrollPass,
    "inline": InlinePass,
}


def _codegen_passes() -> None:
    """The code generator's stages (``lpu.dsl.codegen.passes``; it imports the rest of the code
    generator only when a pass runs)."""
    from lpu.dsl.codegen.general_pass import ScheduleGeneralPass
    from lpu.dsl.codegen.passes import RegisterBlockPass, SchedulePass, SramLayoutPass
    from lpu.dsl.codegen.stream_alloc import StreamAllocPass

    for cls in (RegisterBlockPass, SramLayoutPass, SchedulePass, ScheduleGeneralPass, StreamAllocPass):
        PASSES.setdefault(cls.name, cls)


_codegen_passes()

#: what ``lpu-opt`` runs with ``-p default`` and what the benchmark times
DEFAULT_PIPELINE = "inline,unroll,df-decompose,canonicalize,cse,dce"


def context() -> Context:
    from xdsl.dialects.builtin import Builtin
    from lpu.dsl.dialect import Df
    from lpu.dsl.lpu_dialect import Lpu
    ctx = Context()
    ctx.load_dialect(Builtin)
    ctx.load_dialect(Df)
    ctx.load_dialect(Lpu)  # scheduled kernels, in MLIR text too (lpu-opt k.mlir -p stream-alloc)
    return ctx


def parse_pipeline(spec: str, callback=None) -> PassPipeline:
    """A pipeline from a ``-p`` spec; an unknown pass or option is a diagnostic."""
    if spec.strip() == "default":
        spec = DEFAULT_PIPELINE
    try:
        return PassPipeline.parse_spec({k: (lambda v=v: v) for k, v in PASSES.items()}, spec, callback)
    except Exception as e:  # xDSL reports bad specs with several exception types
        raise DiagnosticError(error(f"invalid pass pipeline '{spec}': {e} (passes: {', '.join(PASSES)})")) from None


def run_pipeline(module: ModuleOp, spec: str,
                 after_pass: Callable[[ModulePass, ModuleOp], None] | None = None, *,
                 verify_each: bool = True) -> ModuleOp:
    """Runs ``spec`` on ``module`` in place, verifying after every pass (a failure is a
    ``DiagnosticError`` at the offending op's location) or, without ``verify_each``, once at
    the end; ``after_pass`` sees each result."""
    from lpu.dsl.frontend import verify_module

    def callback(previous, mod, next_pass):
        if previous is None:
            return
        if verify_each or next_pass is None:
            verify_module(mod)
        if after_pass is not None:
            after_pass(previous, mod)

    without_gc(parse_pipeline(spec, callback).apply)(context(), module)
    return module
