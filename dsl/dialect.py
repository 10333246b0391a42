"""The ``df`` dialect: tensor-level dataflow ops of the ``.lpu`` language, in xDSL IRDL.

Each op states its operands, attributes and traits here, and knows how to infer its result
types (``infer``): the verifier checks a written result type against the inferred one, and the
parser fills in a type the source leaves out. Verifier messages are plain sentences; the
frontend prefixes them with ``'df.op' op`` and the op's ``.lpu`` location.

Traits drive xDSL's generic passes: ``Pure`` ops may be CSE'd and removed when dead; ``send``,
``recv``, ``call``, ``get`` and ``store`` have no memory-effect trait, so nothing ever removes,
merges or reorders them; ``constant`` is ``ConstantLike`` (canonicalize folds constant elementwise ops into it).
"""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

import numpy as np
from xdsl.dialects.builtin import (
    ArrayAttr,
    BytesAttr,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    FunctionType,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    SymbolRefAttr,
    TensorType,
    UnitAttr,
    i64,
    f64,
)
from xdsl.ir import Attribute, Dialect, Operation
from xdsl.irdl import (
    IRDLOperation,
    attr_def,
    irdl_op_definition,
    opt_attr_def,
    opt_operand_def,
    region_def,
    result_def,
    operand_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import (
    ConstantLike,
    HasCanonicalizationPatternsTrait,
    HasFolder,
    HasParent,
    IsolatedFromAbove,
    IsTerminator,
    Pure,
    SymbolOpInterface,
)
from xdsl.utils.exceptions import VerifyException

from lpu.dsl import types as T


def set_name(value, name: str | None) -> None:
    """Name an SSA value exactly ``name``. xDSL's ``name_hint`` setter drops a trailing
    ``_<digits>`` (``%x_1`` became ``%x``, ``%_0`` an empty name that xDSL then refused with a
    traceback); the language keeps every name it reads. A name xDSL cannot hold (one starting
    with a digit) is left unset: the printer numbers it."""
    from xdsl.ir import SSAValue

    if name and SSAValue.is_valid_name(name):
        value._name = name

# --- attribute helpers ---------------------------------------------------------------------


def int_attr(v: int) -> IntegerAttr:
    return _int_attr(int(v))


@lru_cache(maxsize=4096)
def _int_attr(v: int) -> IntegerAttr:
    # attributes are immutable: ops share one object per value (and caches keyed by
    # attribute identity, like the passes' type inference, hit)
    return IntegerAttr(v, i64)


def float_attr(v: float) -> FloatAttr:
    return FloatAttr(float(v), f64)


def ints_attr(vs) -> ArrayAttr:
    return ArrayAttr([int_attr(v) for v in vs])


def get_int(op: Operation, name: str, default: int | None = None) -> int | None:
    a = op.attributes.get(name)
    return a.value.data if isinstance(a, IntegerAttr) else default


def get_float(op: Operation, name: str, default: float | None = None) -> float | None:
    a = op.attributes.get(name)
    if isinstance(a, FloatAttr):
        return a.value.data
    if isinstance(a, IntegerAttr):
        return float(a.value.data)
    return default


def get_ints(op: Operation, name: str) -> list[int] | None:
    a = op.attributes.get(name)
    return [x.value.data for x in a.data] if isinstance(a, ArrayAttr) else None


def get_str(op: Operation, name: str, default: str | None = None) -> str | None:
    a = op.attributes.get(name)
    return a.data if isinstance(a, StringAttr) else default


def get_sym(op: Operation, name: str) -> str | None:
    a = op.attributes.get(name)
    return a.root_reference.data if isinstance(a, SymbolRefAttr) else None


def get_syms(op: Operation, name: str) -> list[str] | None:
    a = op.attributes.get(name)
    return [x.root_reference.data for x in a.data] if isinstance(a, ArrayAttr) else None


def dense_attr(array: np.ndarray, elem: str) -> DenseIntOrFPElementsAttr:
    """A constant's value: the raw little-endian bytes of the array in its element type."""
    arr = np.asarray(array).astype(T.dtype(elem))  # (ascontiguousarray would make a 0-d array 1-d)
    return DenseIntOrFPElementsAttr(T.tensor_type(arr.shape, elem), BytesAttr(arr.tobytes()))


def dense_value(attr: DenseIntOrFPElementsAttr) -> np.ndarray:
    t = attr.type
    return np.frombuffer(attr.data.data, dtype=T.dtype(T.elem_of(t))).reshape(T.shape_of(t)).copy()


def fail(message: str):
    raise VerifyException(message)


def module_symbol(op: Operation, name: str) -> Operation | None:
    """The top-level op of ``op``'s module named ``@name`` (modules hold few symbols)."""
    module = op
    while module is not None and not isinstance(module, ModuleOp):
        module = module.parent_op()
    if module is None:
        return None
    for top in module.ops:
        sym = top.attributes.get("sym_name")
        if isinstance(sym, StringAttr) and sym.data == name:
            return top
    return None


class SymParam:
    """A symbol parameter ``@name: TYPE`` of a function, as a name inside its body resolves to:
    a reference to an SRAM tensor that each call binds (``tensor_symbol``)."""

    __slots__ = ("func", "name", "type")

    def __init__(self, func: "FuncOp", name: str, type: Attribute):
        self.func, self.name, self.type = func, name, type


def enclosing_func(op) -> "FuncOp | None":
    while op is not None and not isinstance(op, FuncOp):
        op = op.parent_op() if isinstance(op, Operation) else None
    return op


def tensor_symbol(op: Operation, name: str):
    """What ``@name`` stands for at ``op``: a symbol parameter of the enclosing function
    (``SymParam``), else the module's top-level op of that name (or None)."""
    func = enclosing_func(op)
    if func is not None:
        for pname, ptype in func.sym_param_list():
            if pname == name:
                return SymParam(func, name, ptype)
    return module_symbol(op, name)


def tensor_type_of(op: Operation, name: str, what: str = "a tensor") -> Attribute:
    """The tensor type ``@name`` has at ``op`` (a data/reserve tensor or a symbol parameter);
    a verifier failure when it is neither."""
    target = tensor_symbol(op, name)
    if isinstance(target, SymParam):
        return target.type
    if isinstance(target, (DataOp, ReserveOp)):
        return target.type
    fail(f"'@{name}' is not {what} (data or reserve) of this module nor a symbol parameter of the function")


class DfCanonicalization(HasCanonicalizationPatternsTrait):
    @classmethod
    def get_canonicalization_patterns(cls):
        from lpu.dsl.passes.canonical import PATTERNS
        return PATTERNS


# --- the op families -----------------------------------------------------------------------


class DfOp(IRDLOperation):
    """Every df op: ``ATTRS`` names its attributes and their kinds (for the parser/printer);
    ``infer`` gives its result types from operand types and attributes, or None when only the
    source can say (a reshape's shape, a cast's element type)."""

    ATTRS: ClassVar[dict[str, str]] = {}
    SYMBOL: ClassVar[str | None] = None  # attribute written as the leading @symbol operand

    @classmethod
    def infer(cls, operand_types: list[Attribute], op: Operation) -> list[Attribute] | None:
        return None

    def verify_(self) -> None:
        for v in self.operands:
            if not T.is_tensor(v.type):
                fail(f"operand of type {v.type} is not a tensor of the language")
        chip = self.attributes.get("chip")
        if chip is not None and (not isinstance(chip, IntegerAttr) or chip.value.data < 0):
            fail("'chip' must be a chip number (an integer >= 0)")
        inferred = type(self).infer([v.type for v in self.operands], self)
        if inferred is not None:
            got = [r.type for r in self.results]
            if len(got) != len(inferred):
                fail(f"has {len(got)} results but must have {len(inferred)}")
            for g, want in zip(got, inferred):
                if g != want:
                    fail(f"result type {T.type_text(g)} does not match the inferred type {T.type_text(want)}")
        self.check()

    def check(self) -> None:
        """Checks beyond the inferred types."""


def _broadcast(a: tuple, b: tuple) -> tuple:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        fail(f"operand shapes {a} and {b} do not broadcast")


class BinaryOp(DfOp):
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure(), DfCanonicalization())
    KIND: ClassVar[str] = ""

    @classmethod
    def infer(cls, ts, op):
        ea, eb = T.elem_of(ts[0]), T.elem_of(ts[1])
        if ea != eb:
            fail(f"operands have different element types: {ea} and {eb}")
        return [T.tensor_type(_broadcast(T.shape_of(ts[0]), T.shape_of(ts[1])), ea)]


class UnaryOp(DfOp):
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure(), DfCanonicalization())
    KIND: ClassVar[str] = ""
    FLOAT_ONLY: ClassVar[bool] = True

    @classmethod
    def infer(cls, ts, op):
        e = T.elem_of(ts[0])
        if cls.FLOAT_ONLY and e not in T.FLOATS:
            fail(f"'{cls.KIND}' needs a float element type (f16, bf16 or f32), not {e}")
        return [ts[0]]


def _binary(kind: str, doc: str | None = None):
    return irdl_op_definition(type(f"{kind.capitalize()}Op", (BinaryOp,), {
        "name": f"df.{kind}", "KIND": kind, "__module__": __name__, "__annotations__": {"KIND": ClassVar[str]},
        "__doc__": doc}))


def _unary(kind: str, float_only: bool, doc: str | None = None):
    return irdl_op_definition(type(f"{kind.capitalize()}Op", (UnaryOp,), {
        "name": f"df.{kind}", "KIND": kind, "FLOAT_ONLY": float_only, "__module__": __name__,
        "__annotations__": {"KIND": ClassVar[str], "FLOAT_ONLY": ClassVar[bool]}, "__doc__": doc}))


_DOCS = {
    "eq": "1 where a == b, else 0, in the operands' element type (numpy broadcasting).",
    "ne": "1 where a != b (and where either is NaN), else 0, in the operands' element type.",
    "lt": "1 where a < b, else 0, in the operands' element type (numpy broadcasting).",
    "le": "1 where a <= b, else 0, in the operands' element type (numpy broadcasting).",
    "gt": "1 where a > b, else 0, in the operands' element type (numpy broadcasting).",
    "ge": "1 where a >= b, else 0, in the operands' element type (numpy broadcasting).",
    "erf": "The error function, computed in f32 from VXM primitives (lpu.dsl.numerics.erf; within 2e-7 of "
           "the true erf).",
    "sign": "-1, 0 or 1 of the element type; 0 for ±0 and NaN.",
}


BINARY_OPS = {k: _binary(k) for k in ("add", "sub", "mul", "max", "min")}
#: comparisons: binary ops (numpy broadcasting) whose result, of the operands' element type,
#: holds 1 where the relation holds and 0 elsewhere, as the VXM's cmp.* do
COMPARE_OPS = {k: _binary(k, _DOCS[k]) for k in ("eq", "ne", "lt", "le", "gt", "ge")}


@irdl_op_definition
class GeluOp(UnaryOp):
    """GELU: ``approximate = "tanh"`` (the default) is the tanh form, ``"none"`` the exact
    ``0.5·x·(1 + erf(x/√2))`` (definitions: lpu.dsl.numerics.gelu, gelu_exact)."""

    name = "df.gelu"
    approximate = opt_attr_def(StringAttr)
    KIND: ClassVar[str] = "gelu"
    FLOAT_ONLY: ClassVar[bool] = True
    ATTRS: ClassVar = {"approximate": "str"}

    def check(self):
        a = self.attributes.get("approximate")
        if a is not None and a.data not in ("tanh", "none"):
            fail(f"'approximate' is \"tanh\" or \"none\", not {a.data!r}")


UNARY_OPS = {k: GeluOp if k == "gelu" else _unary(k, k not in ("neg", "abs", "relu", "sign"), _DOCS.get(k))
             for k in ("exp", "tanh", "sigmoid", "relu", "gelu", "silu", "rsqrt", "recip", "neg", "abs", "erf",
                       "sign")}
#: unary ops defined by their decomposition (lpu.dsl.numerics; df-decompose writes it out)
COMPOSITE_UNARY = ("gelu", "silu", "erf", "sign")


@irdl_op_definition
class ConstantOp(DfOp):
    name = "df.constant"
    value = attr_def(DenseIntOrFPElementsAttr)
    result = result_def(TensorType)
    traits = traits_def(ConstantLike(), Pure(), HasFolder())
    ATTRS: ClassVar = {"value": "value"}

    def fold(self):
        return (self.value,)

    def check(self):
        if self.value.type != self.result.type:
            fail(f"value of type {T.type_text(self.value.type)} does not match the result type "
                 f"{T.type_text(self.result.type)}")


@irdl_op_definition
class GetOp(DfOp):
    """Reads a module-level SRAM tensor (``data``/``reserve``) as a value."""

    name = "df.get"
    tensor = attr_def(SymbolRefAttr)
    result = result_def(TensorType)
    ATTRS: ClassVar = {"tensor": "sym"}
    SYMBOL: ClassVar = "tensor"

    @classmethod
    def infer(cls, ts, op):
        return [tensor_type_of(op, get_sym(op, "tensor"))]


@irdl_op_definition
class SelectOp(DfOp):
    """``select %cond, %a, %b``: ``a`` where ``cond`` is nonzero, else ``b`` (numpy ``where``, with
    broadcasting of all three); ``cond`` may have any element type, ``a`` and ``b`` share one."""

    name = "df.select"
    cond = operand_def(TensorType)
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure(), DfCanonicalization())

    @classmethod
    def infer(cls, ts, op):
        ea, eb = T.elem_of(ts[1]), T.elem_of(ts[2])
        if ea != eb:
            fail(f"the values have different element types: {ea} and {eb}")
        shape = _broadcast(_broadcast(T.shape_of(ts[0]), T.shape_of(ts[1])), T.shape_of(ts[2]))
        return [T.tensor_type(shape, ea)]


@irdl_op_definition
class MatmulOp(DfOp):
    """``out[..., j] = sum_i lhs[..., i] * rhs[i, j]``, accumulated in i32 (i8) or f32; with a
    right operand of rank 3 or more, batches: ``[..., m, k] × [..., k, n] → [..., m, n]``, the
    batch dimensions broadcast as numpy's (a batch of 1 is reused for every batch)."""

    name = "df.matmul"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    @classmethod
    def infer(cls, ts, op):
        a, b = T.shape_of(ts[0]), T.shape_of(ts[1])
        ea, eb = T.elem_of(ts[0]), T.elem_of(ts[1])
        if ea != eb:
            fail(f"operands have different element types: {ea} and {eb}")
        if ea not in T.MATMUL_INPUTS:
            fail(f"multiplies i8, f16 or bf16 (the MXM's weight types), not {ea}")
        if len(a) < 1:
            fail("left operand must have rank 1 or more")
        if len(b) < 2:
            fail(f"right operand must be a matrix (rank 2) or a batch of them (rank 3 or more), not rank {len(b)}")
        if a[-1] != b[-2]:
            fail(f"contraction dimensions differ: {a[-1]} (left) and {b[-2]} (right)")
        if len(b) == 2:
            return [T.tensor_type(a[:-1] + (b[1],), T.ACCUMULATOR[ea])]
        if len(a) < 2:
            fail(f"a batched matmul's left operand has rank 2 or more ([..., m, k]), not rank {len(a)}")
        try:
            batch = tuple(np.broadcast_shapes(a[:-2], b[:-2]))
        except ValueError:
            fail(f"batch dimensions {a[:-2]} (left) and {b[:-2]} (right) do not broadcast")
        return [T.tensor_type(batch + (a[-2], b[-1]), T.ACCUMULATOR[ea])]


@irdl_op_definition
class CastOp(DfOp):
    name = "df.cast"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure(), DfCanonicalization())

    def check(self):
        if T.shape_of(self.input.type) != T.shape_of(self.result.type):
            fail(f"cannot change the shape: {T.type_text(self.input.type)} to {T.type_text(self.result.type)}")


class _QuantBase(DfOp):
    input = operand_def(TensorType)
    result = result_def(TensorType)
    scale = attr_def(FloatAttr)
    zero_point = opt_attr_def(IntegerAttr)
    traits = traits_def(Pure())
    ATTRS: ClassVar = {"scale": "float", "zero_point": "int"}
    FROM: ClassVar[tuple] = ()
    TO: ClassVar[tuple] = ()

    def check(self):
        src, dst = T.elem_of(self.input.type), T.elem_of(self.result.type)
        if T.shape_of(self.input.type) != T.shape_of(self.result.type):
            fail(f"cannot change the shape: {T.type_text(self.input.type)} to {T.type_text(self.result.type)}")
        if src not in self.FROM:
            fail(f"operand element type must be one of {', '.join(self.FROM)}, not {src}")
        if dst not in self.TO:
            fail(f"result element type must be one of {', '.join(self.TO)}, not {dst}")
        if not get_float(self, "scale") > 0:
            fail("'scale' must be positive")
        zp, ints = get_int(self, "zero_point", 0), dst if dst in T.INTS else src
        info = np.iinfo(T.dtype(ints))
        if not info.min <= zp <= info.max:
            fail(f"'zero_point' {zp} is out of range for {ints}")


@irdl_op_definition
class QuantizeOp(_QuantBase):
    name = "df.quantize"
    FROM: ClassVar[tuple] = T.FLOATS
    TO: ClassVar[tuple] = T.INTS


@irdl_op_definition
class DequantizeOp(_QuantBase):
    name = "df.dequantize"
    FROM: ClassVar[tuple] = T.INTS
    TO: ClassVar[tuple] = T.FLOATS


def _axis(op: Operation, rank: int, name: str = "axis", default: int = -1) -> int:
    axis = get_int(op, name, default)
    if not -rank <= axis < rank:
        fail(f"'{name}' {axis} is out of range for rank {rank}")
    return axis % rank


class _ReduceBase(DfOp):
    input = operand_def(TensorType)
    result = result_def(TensorType)
    axis = opt_attr_def(IntegerAttr)
    traits = traits_def(Pure())
    ATTRS: ClassVar = {"axis": "int"}
    ACCUMULATES: ClassVar[bool] = False

    @classmethod
    def infer(cls, ts, op):
        shape = T.shape_of(ts[0])
        if not shape:
            fail("cannot reduce a rank-0 tensor")
        axis = _axis(op, len(shape))
        e = T.elem_of(ts[0])
        return [T.tensor_type(shape[:axis] + (1,) + shape[axis + 1:], T.ACCUMULATOR[e] if cls.ACCUMULATES else e)]


@irdl_op_definition
class ReduceSumOp(_ReduceBase):
    name = "df.reduce_sum"
    ACCUMULATES: ClassVar = True


@irdl_op_definition
class ReduceMaxOp(_ReduceBase):
    name = "df.reduce_max"


@irdl_op_definition
class ReduceMinOp(_ReduceBase):
    name = "df.reduce_min"


class _ArgBase(_ReduceBase):
    @classmethod
    def infer(cls, ts, op):
        shape = T.shape_of(ts[0])
        if not shape:
            fail(f"'{cls.name[3:]}' of a rank-0 tensor")
        axis = _axis(op, len(shape))
        return [T.tensor_type(shape[:axis] + (1,) + shape[axis + 1:], "i32")]


@irdl_op_definition
class ArgmaxOp(_ArgBase):
    """The index (i32) of the first maximum along ``axis`` (default -1), which keeps size 1; a NaN
    counts as the maximum, as in numpy (definition: lpu.dsl.numerics.argmax)."""

    name = "df.argmax"


@irdl_op_definition
class ArgminOp(_ArgBase):
    """The index (i32) of the first minimum along ``axis`` (default -1), which keeps size 1; a NaN
    counts as the minimum, as in numpy (definition: lpu.dsl.numerics.argmin)."""

    name = "df.argmin"


def _float_rank1(t: Attribute, what: str) -> tuple[tuple, str]:
    shape, e = T.shape_of(t), T.elem_of(t)
    if e not in T.FLOATS:
        fail(f"{what} needs a float element type (f16, bf16 or f32), not {e}")
    if not shape:
        fail(f"{what} needs a tensor of rank 1 or more")
    return shape, e


@irdl_op_definition
class SoftmaxOp(DfOp):
    """Softmax over ``axis`` (default -1, the last; definition: lpu.dsl.numerics.softmax)."""

    name = "df.softmax"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    axis = opt_attr_def(IntegerAttr)
    traits = traits_def(Pure())
    ATTRS: ClassVar = {"axis": "int"}

    @classmethod
    def infer(cls, ts, op):
        shape, _e = _float_rank1(ts[0], "softmax")
        _axis(op, len(shape))
        return [ts[0]]


@irdl_op_definition
class RopeOp(DfOp):
    """Rotary position embedding of ``x [..., d]`` by ``cos``/``sin`` (broadcastable to
    ``[..., d/2]``): ``style = "half"`` (the default; HF/NeoX rotate_half) rotates the pairs
    ``(i, i + d/2)``, ``"interleaved"`` the pairs ``(2i, 2i + 1)`` (definition:
    lpu.dsl.numerics.rope)."""

    name = "df.rope"
    input = operand_def(TensorType)
    cos = operand_def(TensorType)
    sin = operand_def(TensorType)
    result = result_def(TensorType)
    style = opt_attr_def(StringAttr)
    traits = traits_def(Pure())
    ATTRS: ClassVar = {"style": "str"}

    @classmethod
    def infer(cls, ts, op):
        shape, e = _float_rank1(ts[0], "rope")
        if shape[-1] % 2:
            fail(f"rotates pairs: the last dimension must be even, not {shape[-1]}")
        half = shape[:-1] + (shape[-1] // 2,)
        for t, role in zip(ts[1:], ("cos", "sin")):
            if T.elem_of(t) != e:
                fail(f"{role} must have the element type of the input ({e}), not {T.elem_of(t)}")
            try:
                ok = tuple(np.broadcast_shapes(half, T.shape_of(t))) == half
            except ValueError:
                ok = False
            if not ok:
                fail(f"{role} of shape {T.shape_of(t)} does not broadcast to {half} (the input's pairs)")
        style = op.attributes.get("style")
        if style is not None and getattr(style, "data", None) not in ("half", "interleaved"):
            fail(f"'style' is \"half\" or \"interleaved\", not {getattr(style, 'data', style)!r}")
        return [ts[0]]


class _NormBase(DfOp):
    eps = opt_attr_def(FloatAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    ATTRS: ClassVar = {"eps": "float"}
    WHAT: ClassVar[str] = ""

    @classmethod
    def infer(cls, ts, op):
        shape, e = _float_rank1(ts[0], cls.WHAT)
        for t, role in zip(ts[1:], ("gamma", "beta")):
            if t != T.tensor_type((shape[-1],), e):
                fail(f"{role} must be {T.type_text_of((shape[-1],), e)} (the last axis of the input), "
                     f"not {T.type_text(t)}")
        return [ts[0]]

    def check(self):
        if get_float(self, "eps", 1e-5) <= 0:
            fail("'eps' must be positive")


@irdl_op_definition
class LayernormOp(_NormBase):
    name = "df.layernorm"
    input = operand_def(TensorType)
    gamma = operand_def(TensorType)
    beta = operand_def(TensorType)
    WHAT: ClassVar = "layernorm"


@irdl_op_definition
class RmsnormOp(_NormBase):
    name = "df.rmsnorm"
    input = operand_def(TensorType)
    gamma = operand_def(TensorType)
    WHAT: ClassVar = "rmsnorm"


@irdl_op_definition
class TransposeOp(DfOp):
    name = "df.transpose"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    perm = opt_attr_def(ArrayAttr)
    traits = traits_def(Pure(), DfCanonicalization())
    ATTRS: ClassVar = {"perm": "ints"}

    @classmethod
    def infer(cls, ts, op):
        shape = T.shape_of(ts[0])
        perm = get_ints(op, "perm")
        if perm is None:
            perm = list(range(len(shape)))[::-1]
        if sorted(perm) != list(range(len(shape))):
            fail(f"'perm' {perm} is not a permutation of the {len(shape)} axes")
        return [T.tensor_type(tuple(shape[p] for p in perm), T.elem_of(ts[0]))]


@irdl_op_definition
class ReshapeOp(DfOp):
    name = "df.reshape"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure(), DfCanonicalization())

    def check(self):
        a, b = self.input.type, self.result.type
        if T.elem_of(a) != T.elem_of(b):
            fail(f"cannot change the element type: {T.elem_of(a)} to {T.elem_of(b)}")
        if int(np.prod(T.shape_of(a))) != int(np.prod(T.shape_of(b))):
            fail(f"{T.type_text(a)} and {T.type_text(b)} have different numbers of elements")


@irdl_op_definition
class SliceOp(DfOp):
    """``input[offsets + index * step : ... + sizes]``; ``index`` (a rank-0 i32, often a loop
    counter) is optional, and ``step`` says how far each unit of it moves the window."""

    name = "df.slice"
    input = operand_def(TensorType)
    index = opt_operand_def(TensorType)
    result = result_def(TensorType)
    offsets = attr_def(ArrayAttr)
    sizes = attr_def(ArrayAttr)
    step = opt_attr_def(ArrayAttr)
    traits = traits_def(Pure(), DfCanonicalization())
    ATTRS: ClassVar = {"offsets": "ints", "sizes": "ints", "step": "ints"}

    @classmethod
    def infer(cls, ts, op):
        shape = T.shape_of(ts[0])
        offsets, sizes = get_ints(op, "offsets"), get_ints(op, "sizes")
        step = get_ints(op, "step")
        for name, v in (("offsets", offsets), ("sizes", sizes), ("step", step)):
            if v is not None and len(v) != len(shape):
                fail(f"'{name}' has {len(v)} entries but the input has rank {len(shape)}")
        if (len(ts) > 1) != (step is not None):
            fail("an index operand and 'step' go together")
        if len(ts) > 1 and ts[1] != T.index_type():
            fail(f"the index must be {T.INDEX_TYPE_TEXT}, not {T.type_text(ts[1])}")
        for d, (o, s, n) in enumerate(zip(offsets, sizes, shape)):
            if s < 1 or o < 0 or (step is None and o + s > n) or s > n:
                fail(f"window [{o}, {o + s}) of axis {d} is outside its {n} elements")
        return [T.tensor_type(tuple(sizes), T.elem_of(ts[0]))]


@irdl_op_definition
class StoreOp(DfOp):
    """Writes ``value`` into the window of the SRAM tensor ``@tensor`` that starts at
    ``offsets + index * step`` (the addressing of ``slice``; the window's sizes are the value's
    shape). The tensor keeps the new contents: later ``get``s see them, and so does the next
    run of the program. No memory-effect trait (nor Pure): its effects are unknown to the
    passes, which therefore never remove, merge or reorder it."""

    name = "df.store"
    value = operand_def(TensorType)
    index = opt_operand_def(TensorType)
    tensor = attr_def(SymbolRefAttr)
    offsets = opt_attr_def(ArrayAttr)
    step = opt_attr_def(ArrayAttr)
    traits = traits_def(DfCanonicalization())  # (a constant index becomes static offsets; not Pure)
    ATTRS: ClassVar = {"tensor": "sym", "offsets": "ints", "step": "ints"}
    SYMBOL: ClassVar = "tensor"
    SYMBOL_AT: ClassVar = 1  # written `store %value, @tensor, %index`

    @classmethod
    def infer(cls, ts, op):
        rank = len(T.shape_of(ts[0]))
        for name in ("offsets", "step"):
            v = get_ints(op, name)
            if v is not None and len(v) != rank:
                fail(f"'{name}' has {len(v)} entries but the value has rank {rank}")
        if (len(ts) > 1) != (get_ints(op, "step") is not None):
            fail("an index operand and 'step' go together")
        if len(ts) > 1 and ts[1] != T.index_type():
            fail(f"the index must be {T.INDEX_TYPE_TEXT}, not {T.type_text(ts[1])}")
        return []

    def check(self):
        name = get_sym(self, "tensor")
        ttype = tensor_type_of(self, name)
        vt = self.value.type
        vshape, shape = T.shape_of(vt), T.shape_of(ttype)
        if T.elem_of(vt) != T.elem_of(ttype):
            fail(f"cannot store {T.type_text(vt)} into '@{name}' of type {T.type_text(ttype)}: "
                 f"the element types differ")
        if len(vshape) != len(shape):
            fail(f"cannot store {T.type_text(vt)} into '@{name}' of type {T.type_text(ttype)}: "
                 f"the ranks differ")
        offsets = get_ints(self, "offsets") or [0] * len(shape)
        for d, (o, s, n) in enumerate(zip(offsets, vshape, shape)):
            if o < 0 or o + s > n:
                fail(f"window [{o}, {o + s}) of axis {d} is outside the {n} elements of '@{name}'")


@irdl_op_definition
class ConcatOp(DfOp):
    name = "df.concat"
    inputs = var_operand_def(TensorType)
    result = result_def(TensorType)
    axis = opt_attr_def(IntegerAttr)
    traits = traits_def(Pure())
    ATTRS: ClassVar = {"axis": "int"}

    @classmethod
    def infer(cls, ts, op):
        if not ts:
            fail("needs at least one operand")
        first = T.shape_of(ts[0])
        if not first:
            fail("cannot concatenate rank-0 tensors")
        axis = _axis(op, len(first), default=0)
        total = 0
        for t in ts:
            s = T.shape_of(t)
            if T.elem_of(t) != T.elem_of(ts[0]) or len(s) != len(first) or \
                    s[:axis] + s[axis + 1:] != first[:axis] + first[axis + 1:]:
                fail(f"operand {T.type_text(t)} does not match {T.type_text(ts[0])} except along axis {axis}")
            total += s[axis]
        return [T.tensor_type(first[:axis] + (total,) + first[axis + 1:], T.elem_of(ts[0]))]


@irdl_op_definition
class ForOp(DfOp):
    """A static loop: ``for %i = lower to upper step s iter(%acc = %init)``; the body's
    ``yield`` gives the next iteration's values, the last ones are the results."""

    name = "df.for"
    inits = var_operand_def(TensorType)
    res = var_result_def(TensorType)
    lower = attr_def(IntegerAttr)
    upper = attr_def(IntegerAttr)
    step = attr_def(IntegerAttr)
    body = region_def("single_block")

    @classmethod
    def infer(cls, ts, op):
        return list(ts)

    def check(self):
        if get_int(self, "step") < 1:
            fail(f"step must be at least 1, not {get_int(self, 'step')}")
        block = self.body.block
        want = [T.index_type(), *[v.type for v in self.inits]]
        if [a.type for a in block.args] != want:
            fail("body arguments must be the counter (tensor<i32>) and one per iteration value")
        last = block.last_op
        if not isinstance(last, YieldOp):
            fail("body must end with 'yield'")
        if [v.type for v in last.operands] != [v.type for v in self.inits]:
            fail("'yield' types (" + ", ".join(T.type_text(v.type) for v in last.operands) +
                 ") do not match the iteration values (" + ", ".join(T.type_text(v.type) for v in self.inits) + ")")

    def trip_count(self) -> int:
        lo, hi, st = get_int(self, "lower"), get_int(self, "upper"), get_int(self, "step")
        return max(0, -(-(hi - lo) // st))


@irdl_op_definition
class YieldOp(DfOp):
    name = "df.yield"
    values = var_operand_def(TensorType)
    traits = traits_def(IsTerminator(), HasParent(ForOp), Pure())


@irdl_op_definition
class SendOp(DfOp):
    """Sends a value from this op's chip (``chip``, default 0) to chip ``to``."""

    name = "df.send"
    input = operand_def(TensorType)
    to = attr_def(IntegerAttr)
    ATTRS: ClassVar = {"to": "int"}

    def check(self):
        if get_int(self, "to") < 0 or get_int(self, "to") == get_int(self, "chip", 0):
            fail(f"cannot send from chip {get_int(self, 'chip', 0)} to chip {get_int(self, 'to')}")


@irdl_op_definition
class RecvOp(DfOp):
    """Receives, on this op's chip, the oldest value chip ``from`` sent it."""

    name = "df.recv"
    result = result_def(TensorType)
    ATTRS: ClassVar = {"from": "int"}

    def check(self):
        src = get_int(self, "from")
        if src is None:
            fail("needs 'from', the chip it receives from")
        if src < 0 or src == get_int(self, "chip", 0):
            fail(f"cannot receive on chip {get_int(self, 'chip', 0)} from chip {src}")


@irdl_op_definition
class CallOp(DfOp):
    """Calls a function, or an assembly kernel: then ``inputs`` names the SRAM tensors the
    operands are written to before it runs and ``outputs`` those the results are read from."""

    name = "df.call"
    callee = attr_def(SymbolRefAttr)
    args = var_operand_def(TensorType)
    res = var_result_def(TensorType)
    inputs = opt_attr_def(ArrayAttr)
    outputs = opt_attr_def(ArrayAttr)
    sym_args = opt_attr_def(ArrayAttr)  # the @symbols passed for the callee's symbol parameters
    sym_arg_positions = opt_attr_def(ArrayAttr)  # where they stand among the arguments
    ATTRS: ClassVar = {"callee": "sym", "inputs": "syms", "outputs": "syms"}
    SYMBOL: ClassVar = "callee"

    @classmethod
    def infer(cls, ts, op):
        name = get_sym(op, "callee")
        target = module_symbol(op, name)
        sym_args = get_syms(op, "sym_args") or []
        if isinstance(target, FuncOp):
            ftype = target.function_type
            want = list(ftype.inputs.data)
            _check_call_arity(op, name, target, len(ts))
            if list(ts) != want:
                fail(f"operand types ({', '.join(map(T.type_text, ts))}) do not match '@{name}' "
                     f"({', '.join(map(T.type_text, want))})")
            for (pname, ptype), sym in zip(target.sym_param_list(), sym_args):
                t = tensor_type_of(op, sym)
                if t != ptype:
                    fail(f"'@{sym}' of type {T.type_text(t)} is passed for the symbol parameter '@{pname}' "
                         f"of '@{name}', of type {T.type_text(ptype)}")
            return list(ftype.outputs.data)
        if sym_args:
            fail(f"'@{name}' is not a function: only a function takes symbol arguments")
        if isinstance(target, KernelOp):
            ins, outs = get_syms(op, "inputs") or [], get_syms(op, "outputs") or []
            if len(ins) != len(ts):
                fail(f"'inputs' names {len(ins)} tensors for {len(ts)} operands")
            got = []
            for t, sym in zip([*ts, *[None] * len(outs)], ins + outs):
                ttype = tensor_type_of(op, sym)
                if t is not None and t != ttype:
                    fail(f"operand of type {T.type_text(t)} cannot be written to '@{sym}' of type "
                         f"{T.type_text(ttype)}")
                if t is None:
                    got.append(ttype)
            return got
        fail(f"'@{name}' is not a function or kernel of this module")

    def arg_list(self) -> list:
        """The arguments in written order: SSA values and ``@symbol`` names (str)."""
        return merge_positions(list(self.args), get_syms(self, "sym_args") or [],
                               get_ints(self, "sym_arg_positions") or [])


def merge_positions(values: list, syms: list, positions: list[int]) -> list:
    """``values`` and ``syms`` interleaved: ``syms[k]`` at position ``positions[k]``."""
    out, vi, si = [], 0, 0
    at = dict(zip(positions, syms))
    for i in range(len(values) + len(syms)):
        if i in at:
            out.append(at[i])
            si += 1
        elif vi < len(values):
            out.append(values[vi])
            vi += 1
    return out


def _check_call_arity(op, name: str, func: "FuncOp", n_values: int) -> None:
    """The call's values and symbols stand where ``func`` has value and symbol parameters."""
    params = func.sym_param_list()
    ppos = func.sym_param_positions()
    apos = get_ints(op, "sym_arg_positions") or []
    n_sym = len(get_syms(op, "sym_args") or [])
    if len(apos) != n_sym:
        fail(f"'sym_arg_positions' has {len(apos)} entries for {n_sym} symbol arguments")
    n_params = len(func.function_type.inputs.data) + len(params)
    if n_values + n_sym != n_params:
        fail(f"'@{name}' takes {n_params} argument{'s' if n_params != 1 else ''}, not {n_values + n_sym}")
    names = func.value_param_names()
    vi = 0
    for i in range(n_params):
        if (i in ppos) != (i in apos):
            if i in ppos:
                fail(f"argument {i + 1} of '@{name}' is its symbol parameter '@{params[ppos.index(i)][0]}' "
                     f"(pass a tensor @name, not a value)")
            fail(f"argument {i + 1} of '@{name}' is its value parameter '%{names[vi]}' "
                 f"(pass a value %name, not a symbol)")
        if i not in ppos:
            vi += 1


@irdl_op_definition
class ReturnOp(DfOp):
    name = "df.return"
    values = var_operand_def(TensorType)
    traits = traits_def(IsTerminator())

    def check(self):
        func = self.parent_op()
        if not isinstance(func, FuncOp):
            fail("must be in a function body")
        want = list(func.function_type.outputs.data)
        got = [v.type for v in self.values]
        if got != want:
            fail(f"returns ({', '.join(map(T.type_text, got))}) but '@{func.sym_name.data}' returns "
                 f"({', '.join(map(T.type_text, want))})")


class _IsolatedFromAbove(IsolatedFromAbove):
    """xDSL's check, in linear time: its own asks ``is_ancestor`` (a walk up the parents) for
    every operand of a 50,000-op function. Every operand must be defined by an op or block
    inside; on a violation, xDSL's check runs to give its exact message."""

    def verify(self, op: Operation) -> None:
        inside: set = set()
        ops: list[Operation] = []
        regions = list(op.regions)
        while regions:
            for block in regions.pop().blocks:
                inside.add(block)
                for o in block.ops:
                    inside.add(o)
                    ops.append(o)
                    if o.regions:
                        regions.extend(o.regions)
        for o in ops:
            for v in o.operands:
                if v.owner not in inside:
                    return super().verify(op)


@irdl_op_definition
class FuncOp(DfOp):
    name = "df.func"
    sym_name = attr_def(StringAttr)
    function_type = attr_def(FunctionType)  # the value parameters and the results
    arg_names = opt_attr_def(ArrayAttr)
    # symbol parameters `@name: TYPE` (references to SRAM tensors, bound by each call): names,
    # types, and positions among all the parameters as written
    sym_params = opt_attr_def(ArrayAttr)
    sym_param_types = opt_attr_def(ArrayAttr)
    sym_param_positions = opt_attr_def(ArrayAttr)
    body = region_def("single_block")
    traits = traits_def(SymbolOpInterface(), _IsolatedFromAbove())

    def sym_param_list(self) -> list[tuple[str, Attribute]]:
        if self.sym_params is None:
            return []
        types = self.sym_param_types.data if self.sym_param_types is not None else ()
        return [(n.data, t) for n, t in zip(self.sym_params.data, types)]

    def sym_param_positions(self) -> list[int]:
        return get_ints(self, "sym_param_positions") or []

    def value_param_names(self) -> list[str]:
        names = [a.data for a in self.arg_names.data] if self.arg_names is not None else []
        args = self.body.block.args
        return [names[i] if i < len(names) else (a.name_hint or f"arg{i}") for i, a in enumerate(args)]

    def check(self):
        args = [a.type for a in self.body.block.args]
        if args != list(self.function_type.inputs.data):
            fail("entry block arguments do not match the function type")
        if not isinstance(self.body.block.last_op, ReturnOp):
            fail(f"'@{self.sym_name.data}' must end with 'return'")
        names = [n.data for n in self.sym_params.data] if self.sym_params is not None else []
        types = list(self.sym_param_types.data) if self.sym_param_types is not None else []
        positions = self.sym_param_positions()
        if not (len(names) == len(types) == len(positions)):
            fail("'sym_params', 'sym_param_types' and 'sym_param_positions' must have one entry per symbol parameter")
        n = len(args) + len(names)
        if positions != sorted(set(positions)) or any(not 0 <= p < n for p in positions):
            fail(f"'sym_param_positions' {positions} are not increasing positions among {n} parameters")
        for name, t in zip(names, types):
            if not T.is_tensor(t):
                fail(f"symbol parameter '@{name}' has type {t}, not a tensor of the language")
            if names.count(name) > 1:
                fail(f"symbol parameter '@{name}' is declared twice")
            other = module_symbol(self, name)
            if other is not None:
                fail(f"symbol parameter '@{name}' has the name of the module's {other.name[3:]} '@{name}' "
                     f"(a parameter may not hide a module symbol)")


# --- module-level items shared with the assembly level --------------------------------------


class _TensorBase(DfOp):
    sym_name = attr_def(StringAttr)
    type = attr_def(TensorType)
    placement = opt_attr_def(StringAttr)  # a MEM slice (or hemisphere) name
    address = opt_attr_def(IntegerAttr)
    traits = traits_def(SymbolOpInterface())

    def check(self):
        if any(d < 1 for d in T.shape_of(self.type)):
            fail("a tensor dimension must be at least 1")
        if self.address is not None and self.placement is None:
            fail("an address needs a placement ('in MEM_..')")


@irdl_op_definition
class DataOp(_TensorBase):
    """An SRAM tensor with initial contents: ``load("w.npy")``, ``hex"..."`` or a list."""

    name = "df.data"
    init_kind = attr_def(StringAttr)  # load | hex | list
    init = attr_def(Attribute)  # StringAttr (load path, hex digits) or DenseIntOrFPElementsAttr


@irdl_op_definition
class ReserveOp(_TensorBase):
    """An SRAM tensor without initial contents (zeros)."""

    name = "df.reserve"


@irdl_op_definition
class ExternOp(DfOp):
    name = "df.extern"
    sym_name = attr_def(StringAttr)
    traits = traits_def(SymbolOpInterface())


@irdl_op_definition
class KernelOp(DfOp):
    """An assembly kernel, kept as its source text (checked by the assembler's parser)."""

    name = "df.kernel"
    sym_name = attr_def(StringAttr)
    text = attr_def(StringAttr)
    traits = traits_def(SymbolOpInterface())


DF_OPS: list[type[Operation]] = [
    *BINARY_OPS.values(), *COMPARE_OPS.values(), *UNARY_OPS.values(), SelectOp, ConstantOp, GetOp, MatmulOp,
    CastOp, QuantizeOp, DequantizeOp, ReduceSumOp, ReduceMaxOp, ReduceMinOp, ArgmaxOp, ArgminOp, SoftmaxOp,
    RopeOp, LayernormOp, RmsnormOp, TransposeOp,
    ReshapeOp, SliceOp, StoreOp, ConcatOp, ForOp, YieldOp, SendOp, RecvOp, CallOp, ReturnOp, FuncOp,
    DataOp, ReserveOp, ExternOp, KernelOp,
]
BY_NAME: dict[str, type[Operation]] = {op.name: op for op in DF_OPS}
Df = Dialect("df", DF_OPS, [])
UNIT = UnitAttr()

