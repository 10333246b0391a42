"""Canonicalization patterns of the ``df`` ops (run by xDSL's ``canonicalize``).

Constant folding is a pattern here rather than an xDSL ``HasFolder``: the folder materializes
constants without the folded op's location, and every df op must carry one."""

from __future__ import annotations

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern
from xdsl.traits import ConstantLike

from lpu.dsl import dialect as D
from lpu.dsl import numerics as N
from lpu.dsl import types as T
from lpu.dsl.passes.build import Emitter

#: folding bigger tensors than this would bloat the module with constants the machine reads
#: from SRAM anyway
MAX_FOLD_ELEMENTS = 1 << 16


def _constant(v):
    owner = getattr(v, "owner", None)
    if isinstance(owner, D.ConstantOp) and owner.has_trait(ConstantLike):
        return D.dense_value(owner.value)
    return None


class FoldConstants(RewritePattern):
    """An elementwise op or cast of constants becomes a constant."""

    ROOTS = (D.BinaryOp, D.UnaryOp, D.CastOp)  # the ops it can match (the pass driver skips the others)

    def match_and_rewrite(self, op, rewriter: PatternRewriter):
        if not isinstance(op, (D.BinaryOp, D.UnaryOp, D.CastOp)):
            return
        values = [_constant(v) for v in op.operands]
        if any(v is None for v in values):
            return
        out = op.results[0].type
        if int(np.prod(T.shape_of(out))) > MAX_FOLD_ELEMENTS:
            return
        elem = T.elem_of(out)
        if isinstance(op, D.BinaryOp):
            result = N.binary(op.KIND, values[0], values[1], elem)
        elif isinstance(op, D.UnaryOp):
            result = N.unary(op.KIND, values[0], elem, D.get_str(op, "approximate", "tanh"))
        else:
            result = N.convert(values[0], T.elem_of(op.input.type), elem)
        e = Emitter(op)
        rewriter.replace(op, e.ops, [e.constant(np.asarray(result), elem)])


class CastToSameType(RewritePattern):
    ROOTS = D.CastOp  # the ops it can match (the pass driver skips the others)

    def match_and_rewrite(self, op, rewriter: PatternRewriter):
        if isinstance(op, D.CastOp) and op.input.type == op.result.type:
            rewriter.replace(op, [], [op.input])


class ReshapeChain(RewritePattern):
    """reshape(reshape(x)) is one reshape; a reshape to the same type is nothing."""

    ROOTS = D.ReshapeOp  # the ops it can match (the pass driver skips the others)

    def match_and_rewrite(self, op, rewriter: PatternRewriter):
        if not isinstance(op, D.ReshapeOp):
            return
        if op.input.type == op.result.type:
            rewriter.replace(op, [], [op.input])
        elif isinstance(op.input.owner, D.ReshapeOp):
            e = Emitter(op)
            rewriter.replace(op, e.ops, [e.op(D.ReshapeOp, [op.input.owner.input], result_type=op.result.type)])


class TransposeChain(RewritePattern):
    """transpose(transpose(x)) is one transpose, or nothing when the permutations cancel."""

    ROOTS = D.TransposeOp  # the ops it can match (the pass driver skips the others)

    def match_and_rewrite(self, op, rewriter: PatternRewriter):
        if not isinstance(op, D.TransposeOp) or not isinstance(op.input.owner, D.TransposeOp):
            return
        inner = op.input.owner
        rank = len(T.shape_of(op.input.type))
        p1 = D.get_ints(inner, "perm") or list(range(rank))[::-1]
        p2 = D.get_ints(op, "perm") or list(range(rank))[::-1]
        perm = [p1[p] for p in p2]
        if perm == list(range(rank)):
            rewriter.replace(op, [], [inner.input])
            return
        e = Emitter(op)
        rewriter.replace(op, e.ops, [e.op(D.TransposeOp, [inner.input], {"perm": D.ints_attr(perm)})])


def _static_offsets(op, rank: int) -> list[int] | None:
    """``offsets + index * step`` of a slice or store whose index is a constant; else None."""
    if op.index is None:
        return None
    index = _constant(op.index)
    if index is None:
        return None
    i = int(index)
    return [o + i * s for o, s in zip(D.get_ints(op, "offsets") or [0] * rank, D.get_ints(op, "step"))]


class StaticSlice(RewritePattern):
    """A slice whose index is a constant (an unrolled loop's counter) is a static slice."""

    ROOTS = D.SliceOp  # the ops it can match (the pass driver skips the others)

    def match_and_rewrite(self, op, rewriter: PatternRewriter):
        offsets = _static_offsets(op, len(T.shape_of(op.input.type))) if isinstance(op, D.SliceOp) else None
        if offsets is None:
            return
        e = Emitter(op)
        rewriter.replace(op, e.ops, [e.op(D.SliceOp, [op.input], {
            "offsets": D.ints_attr(offsets), "sizes": op.attributes["sizes"]})])


class StaticStore(RewritePattern):
    """A store whose index is a constant is a store at static offsets (as StaticSlice)."""

    ROOTS = D.StoreOp  # the ops it can match (the pass driver skips the others)

    def match_and_rewrite(self, op, rewriter: PatternRewriter):
        offsets = _static_offsets(op, len(T.shape_of(op.value.type))) if isinstance(op, D.StoreOp) else None
        if offsets is None:
            return
        e = Emitter(op)
        e.op(D.StoreOp, [op.value], {"tensor": op.attributes["tensor"], "offsets": D.ints_attr(offsets)})
        rewriter.replace(op, e.ops, [])


PATTERNS = (FoldConstants(), CastToSameType(), ReshapeChain(), TransposeChain(), StaticSlice(), StaticStore())
