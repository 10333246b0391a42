"""``df-decompose``: softmax, layernorm, rmsnorm, gelu (both forms), silu, erf, sign,
argmax/argmin and rope into the primitives the machine has. Each rewrite writes out, op for op, the definition in ``lpu.dsl.numerics``, so results
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
        axis = D.get_int(op, "axis", -1)
        m = e.reduce("max", x, axis)
        ex = e.unary("exp", e.binary("sub", x, m))
        s = e.reduce("sum", ex, axis)
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


def erf_f32(e: Emitter, x):
    """lpu.dsl.numerics.erf_f32, op for op."""
    a = e.unary("abs", x)
    z = e.binary("mul", a, a)
    p = e.scalar(N.ERF_TAYLOR[-1], "f32")
    for c in reversed(N.ERF_TAYLOR[:-1]):
        p = e.binary("add", e.binary("mul", p, z), e.scalar(c, "f32"))
    small = e.binary("mul", p, a)
    t = e.unary("recip", e.binary("add", e.binary("mul", a, e.scalar(N.ERF_P, "f32")), e.scalar(1.0, "f32")))
    q = e.binary("mul", t, e.scalar(-N.ERF_A[4], "f32"))
    for c in (N.ERF_A[3], N.ERF_A[2], N.ERF_A[1], N.ERF_A[0]):
        q = e.binary("mul", e.binary("add", q, e.scalar(-c, "f32")), t)
    ex = e.unary("exp", e.unary("neg", z))
    large = e.binary("add", e.binary("mul", q, ex), e.scalar(1.0, "f32"))
    y = e.select(e.compare("lt", a, e.scalar(1.0, "f32")), small, large)
    return e.select(e.compare("lt", x, e.scalar(0.0, "f32")), e.unary("neg", y), y)


class Erf(RewritePattern):
    ROOTS = D.UNARY_OPS["erf"]

    def match_and_rewrite(self, op, rewriter: PatternRewriter):
        if not isinstance(op, D.UNARY_OPS["erf"]):
            return
        e, x, elem = Emitter(op), op.input, T.elem_of(op.input.type)
        _replace(rewriter, op, e, e.cast(erf_f32(e, e.cast(x, "f32")), elem))


class Sign(RewritePattern):
    ROOTS = D.UNARY_OPS["sign"]

    def match_and_rewrite(self, op, rewriter: PatternRewriter):
        if not isinstance(op, D.UNARY_OPS["sign"]):
            return
        e, x, elem = Emitter(op), op.input, T.elem_of(op.input.type)
        gt = e.compare("gt", x, e.scalar(0, elem))
        _replace(rewriter, op, e, e.binary("sub", gt, e.compare("lt", x, e.scalar(0, elem))))


class Argmax(RewritePattern):
    ROOTS = (D.ArgmaxOp, D.ArgminOp)

    def match_and_rewrite(self, op, rewriter: PatternRewriter):
        if not isinstance(op, (D.ArgmaxOp, D.ArgminOp)):
            return
        e, x, elem = Emitter(op), op.input, T.elem_of(op.input.type)
        shape = T.shape_of(x.type)
        axis = D.get_int(op, "axis", -1) % len(shape)
        m = e.reduce("max" if isinstance(op, D.ArgmaxOp) else "min", x, axis)
        hit = e.compare("eq", x, m)
        if elem in T.FLOATS:
            hit = e.binary("max", hit, e.compare("ne", x, x))
        idx = e.select(hit, e.constant(N.iota(shape, axis), "i32"), e.scalar(shape[axis], "i32"))
        _replace(rewriter, op, e, e.reduce("min", idx, axis))


class Rope(RewritePattern):
    ROOTS = D.RopeOp

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: D.RopeOp, rewriter: PatternRewriter):
        e, x = Emitter(op), op.input
        shape = T.shape_of(x.type)
        lead, h = shape[:-1], shape[-1] // 2
        zeros = [0] * len(lead)
        if D.get_str(op, "style", "half") == "half":
            u = e.slice(x, zeros + [0], lead + (h,))
            v = e.slice(x, zeros + [h], lead + (h,))
        else:
            pairs = e.reshape(x, lead + (h, 2))
            u = e.reshape(e.slice(pairs, zeros + [0, 0], lead + (h, 1)), lead + (h,))
            v = e.reshape(e.slice(pairs, zeros + [0, 1], lead + (h, 1)), lead + (h,))
        y1 = e.binary("sub", e.binary("mul", u, op.cos), e.binary("mul", v, op.sin))
        y2 = e.binary("add", e.binary("mul", v, op.cos), e.binary("mul", u, op.sin))
        if D.get_str(op, "style", "half") == "half":
            y = e.concat([y1, y2], -1)
        else:
            y = e.reshape(e.concat([e.reshape(y1, lead + (h, 1)), e.reshape(y2, lead + (h, 1))], -1), shape)
        _replace(rewriter, op, e, y)


class Gelu(RewritePattern):
    ROOTS = D.UNARY_OPS["gelu"]

    def match_and_rewrite(self, op, rewriter: PatternRewriter):
        if not isinstance(op, D.UNARY_OPS["gelu"]):
            return
        e, x, elem = Emitter(op), op.input, T.elem_of(op.input.type)
        if D.get_str(op, "approximate", "tanh") == "none":  # numerics.gelu_exact
            xf = e.cast(x, "f32")
            er = erf_f32(e, e.binary("mul", xf, e.scalar(N.GELU_SQRT1_2, "f32")))
            h = e.binary("mul", xf, e.binary("add", er, e.scalar(1.0, "f32")))
            _replace(rewriter, op, e, e.cast(e.binary("mul", h, e.scalar(0.5, "f32")), elem))
            return
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
    """Rewrites the composite ops (softmax, layernorm, rmsnorm, gelu, silu, erf, sign, argmax,
    argmin, rope) into primitives."""

    name = "df-decompose"
    keep: str = ""  # composites left as they are (comma-separated op names: the code generator lowers them itself)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        # one walk in block order (what xDSL's PatternRewriteWalker with apply_recursively=False
        # does, without its per-op worklist and trait queries): unused pure ops met are erased
        kept = {k.strip() for k in self.keep.split(",") if k.strip()}
        patterns = tuple(p for p in _PATTERNS if type(p).__name__.lower() not in kept)
        rewrite_in_order(op, patterns, recurse_into_new=False, drop_dead=True)


_PATTERNS = (Softmax(), Layernorm(), Rmsnorm(), Gelu(), Silu(), Erf(), Sign(), Argmax(), Rope())
