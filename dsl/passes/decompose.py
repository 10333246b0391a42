"""``df-decompose``: softmax, layernorm, rmsnorm, gelu and silu into the primitives the machine
has. Each rewrite writes out, op for op, the definition in ``lpu.dsl.numerics``, so results
before and after are bit-identical; lane sums and maxima stay ``reduce_sum``/``reduce_max``,
which the code generator maps to the MXM (a ones matrix) and to SXM rotates + VXM max."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from lpu.dsl import dialect as D
from lpu.dsl import numerics as N
from lpu.dsl import types as T
from lpu.dsl.passes.build import Emitter
from lpu.dsl.passes.walk import rewrite_in_order


def _replace(rewriter: PatternRewriter, op, e: Emitter, result) -> None:
    rewriter.replace(op, e.ops, [result])


class Softmax(RewritePattern):
    ROOTS = D.SoftmaxOp

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: D.SoftmaxOp, rewriter: PatternRewriter):
        e, x, elem = Emitter(op), op.input, T.elem_of(op.input.type)
        m = e.reduce("max", x)
        ex = e.unary("exp", e.binary("sub", x, m))
        s = e.reduce("sum", ex)
        r = e.unary("recip", s)
        _replace(rewriter, op, e, e.binary("mul", ex, e.cast(r, elem)))


class Layernorm(RewritePattern):
    ROOTS = D.LayernormOp

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: D.LayernormOp, rewriter: PatternRewriter):
        e, x, elem = Emitter(op), op.input, T.elem_of(op.input.type)
        n = T.shape_of(x.type)[-1]
        inv_n = e.scalar(1.0 / n, "f32")
        mean = e.binary("mul", e.reduce("sum", x), inv_n)
        d = e.binary("sub", x, e.cast(mean, elem))
        var = e.binary("mul", e.reduce("sum", e.binary("mul", d, d)), inv_n)
        r = e.unary("rsqrt", e.binary("add", var, e.scalar(D.get_float(op, "eps", 1e-5), "f32")))
        y = e.binary("mul", d, e.cast(r, elem))
        _replace(rewriter, op, e, e.binary("add", e.binary("mul", y, op.gamma), op.beta))


class Rmsnorm(RewritePattern):
    ROOTS = D.RmsnormOp

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: D.RmsnormOp, rewriter: PatternRewriter):
        e, x, elem = Emitter(op), op.input, T.elem_of(op.input.type)
        inv_n = e.scalar(1.0 / T.shape_of(x.type)[-1], "f32")
        ms = e.binary("mul", e.reduce("sum", e.binary("mul", x, x)), inv_n)
        r = e.unary("rsqrt", e.binary("add", ms, e.scalar(D.get_float(op, "eps", 1e-5), "f32")))
        _replace(rewriter, op, e, e.binary("mul", e.binary("mul", x, e.cast(r, elem)), op.gamma))


class Gelu(RewritePattern):
    ROOTS = D.UNARY_OPS["gelu"]

    def match_and_rewrite(self, op, rewriter: PatternRewriter):
        if not isinstance(op, D.UNARY_OPS["gelu"]):
            return
        e, x, elem = Emitter(op), op.input, T.elem_of(op.input.type)
        x3 = e.binary("mul", e.binary("mul", x, x), x)
        u = e.binary("add", x, e.binary("mul", x3, e.scalar(N.GELU_K, elem)))
        t = e.unary("tanh", e.binary("mul", u, e.scalar(N.GELU_C, elem)))
        h = e.binary("mul", x, e.binary("add", t, e.scalar(1.0, elem)))
        _replace(rewriter, op, e, e.binary("mul", h, e.scalar(0.5, elem)))


class Silu(RewritePattern):
    ROOTS = D.UNARY_OPS["silu"]

    def match_and_rewrite(self, op, rewriter: PatternRewriter):
        if not isinstance(op, D.UNARY_OPS["silu"]):
            return
        e, x = Emitter(op), op.input
        _replace(rewriter, op, e, e.binary("mul", x, e.unary("sigmoid", x)))


@dataclass(frozen=True)
class DecomposePass(ModulePass):
    """Rewrites the composite ops (softmax, layernorm, rmsnorm, gelu, silu) into primitives."""

    name = "df-decompose"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        # one walk in block order (what xDSL's PatternRewriteWalker with apply_recursively=False
        # does, without its per-op worklist and trait queries): unused pure ops met are erased
        rewrite_in_order(op, _PATTERNS, recurse_into_new=False, drop_dead=True)


_PATTERNS = (Softmax(), Layernorm(), Rmsnorm(), Gelu(), Silu())
