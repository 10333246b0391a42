"""Making ops inside a rewrite: each new op gets its inferred result type and the location of
the op it replaces (so diagnostics after a pass still point at the user's line)."""

from __future__ import annotations

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
        types = [result_type] if result_type is not None else \
            cls.infer([v.type for v in operands], SimpleNamespace(attributes=attrs))
        new = cls.create(operands=list(operands), result_types=types, attributes=attrs)
        new.location = self.location
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
        attr = D.dense_attr(array, elem)
        return self.op(D.ConstantOp, [], {"value": attr}, result_type=attr.type)

    def scalar(self, value: float, elem: str) -> SSAValue:
        """A rank-0 constant, rounded exactly as lpu.dsl.numerics.scalar rounds it."""
        return self.constant(N.scalar(value, elem), elem)

    def reduce(self, kind: str, a: SSAValue) -> SSAValue:
        return self.op(D.ReduceSumOp if kind == "sum" else D.ReduceMaxOp, [a], {"axis": D.int_attr(-1)})
