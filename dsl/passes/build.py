"""Making ops inside a rewrite: each new op gets its inferred result type and the location of
the op it replaces (so diagnostics after a pass still point at the user's line)."""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from xdsl.ir import Operation, SSAValue

from lpu.dsl import dialect as D
from lpu.dsl import numerics as N
from lpu.dsl import types as T


class Emitter:
    def __init__(self, at: Operation) -> None:
        self.location = at.location
        self.chip = at.attributes.get("chip")  # new ops run on the chip the replaced one ran on
        self.ops: list[Operation] = []

    def op(self, cls, operands, attrs=None, result_type=None) -> SSAValue:
        attrs = dict(attrs or {})
        if self.chip is not None:
            attrs.setdefault("chip", self.chip)
        types = [result_type] if result_type is not None else _infer(cls, [v.type for v in operands], attrs)
        new = cls.create(operands=list(operands), result_types=types, attributes=attrs, location=self.location)
        self.ops.append(new)
        return new.results[0] if new.results else None

    def binary(self, kind: str, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.op(D.BINARY_OPS[kind], [a, b])

    def unary(self, kind: str, a: SSAValue) -> SSAValue:
        return self.op(D.UNARY_OPS[kind], [a])

    def cast(self, a: SSAValue, elem: str) -> SSAValue:
        if T.elem_of(a.type) == elem:
            return a
        return self.op(D.CastOp, [a], result_type=T.tensor_type(T.shape_of(a.type), elem))

    def constant(self, array: np.ndarray, elem: str) -> SSAValue:
        return self._constant(D.dense_attr(array, elem))

    def _constant(self, attr) -> SSAValue:
        return self.op(D.ConstantOp, [], {"value": attr}, result_type=attr.type)

    def scalar(self, value: float, elem: str) -> SSAValue:
        """A rank-0 constant, rounded exactly as lpu.dsl.numerics.scalar rounds it."""
        return self._constant(_scalar_attr(float(value).hex(), elem))  # (hex: -0.0 is not 0.0)

    def reduce(self, kind: str, a: SSAValue, axis: int = -1) -> SSAValue:
        cls = {"sum": D.ReduceSumOp, "max": D.ReduceMaxOp, "min": D.ReduceMinOp}[kind]
        return self.op(cls, [a], {"axis": D.int_attr(axis)})

    def compare(self, kind: str, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.op(D.COMPARE_OPS[kind], [a, b])

    def select(self, cond: SSAValue, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.op(D.SelectOp, [cond, a, b])

    def slice(self, a: SSAValue, offsets, sizes) -> SSAValue:
        return self.op(D.SliceOp, [a], {"offsets": D.ints_attr(offsets), "sizes": D.ints_attr(sizes)})

    def reshape(self, a: SSAValue, shape) -> SSAValue:
        return self.op(D.ReshapeOp, [a], result_type=T.tensor_type(tuple(shape), T.elem_of(a.type)))

    def concat(self, values, axis: int) -> SSAValue:
        return self.op(D.ConcatOp, list(values), {"axis": D.int_attr(axis)})


# A decomposition makes the same few scalars (1/N, eps, 0.5) and infers the same few types
# thousands of times: each is computed once (attributes are immutable, so ops may share them).
# Keyed by the identity of the (shared, immutable) type and attribute objects, which the entry
# keeps alive so that no id is reused while it exists.
_INFERRED: dict[tuple, tuple] = {}


def _infer(cls, operand_types: list, attrs: dict) -> list:
    key = (cls, *map(id, operand_types), *((k, id(v)) for k, v in attrs.items()))
    hit = _INFERRED.get(key)
    if hit is not None:
        return list(hit[0])
    types = cls.infer(operand_types, SimpleNamespace(attributes=attrs))
    if cls.SYMBOL is None and cls is not D.CallOp:  # (those read the module: never cached)
        if len(_INFERRED) > 10_000:
            _INFERRED.clear()
        _INFERRED[key] = (list(types), operand_types, list(attrs.values()))
    return list(types)


@lru_cache(maxsize=1024)
def _scalar_attr(value_hex: str, elem: str):
    return D.dense_attr(N.scalar(float.fromhex(value_hex), elem), elem)
