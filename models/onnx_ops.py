"""One lowering per ONNX op type: the ``df`` ops (docs/dataflow.md) each node becomes.

``OPS`` maps an op type to its lowering, ``lower(b, node) -> outputs``: ``b`` is the
``onnx_emit.Builder`` writing the function, ``node`` the ``Node`` with its inputs as
``Value``s (computed at run time) or ``Const``s (known at import: initializers and folded
nodes). A lowering raises ``Unsupported`` with the first attribute, input or type it cannot
handle; an attribute it never reads is reported by the importer. Nodes whose inputs are all
known are folded by the importer before any lowering sees them (``Shape``, ``Constant``,
``ConstantOfShape`` and every shape computation of a static graph).
"""

from __future__ import annotations

import itertools
import math
from typing import Callable

import numpy as np

from lpu.models.onnx_emit import (
    BOOL, FLOAT, FLOAT4E2M1, FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ, FLOAT8E8M0, FLOAT16,
    FLOATS, INT2, INT4, INT64, NARROW, UINT2, UINT4, Builder, Const, Unsupported, Value, binary, carrier, cast, concat, fill,
    matmul, onnx_dtype, pad, reduce, reshape, slice_, take, transpose, type_name, unary, window,
)
from lpu.models.onnx_math import log, pow_, sqrt


class Node:
    """An ONNX node with its inputs resolved; ``attr`` records which attributes were read."""

    def __init__(self, proto, index: int, inputs: list, out_types: list, out_shapes: list, opset: int,
                 mode: str = "f32"):
        from onnx.helper import get_attribute_value

        self.proto = proto
        self.index = index
        self.op_type = proto.op_type
        self.name = proto.name
        self.inputs = inputs
        self.outputs = list(proto.output)
        self.out_types = out_types
        self.out_shapes = out_shapes
        self.opset = opset
        self.mode = mode
        self.attrs = {a.name: get_attribute_value(a) for a in proto.attribute}
        self.read: set[str] = set()

    def attr(self, name: str, default=None):
        self.read.add(name)
        v = self.attrs.get(name, default)
        return v.decode() if isinstance(v, bytes) else v

    def input(self, i: int):
        return self.inputs[i] if i < len(self.inputs) else None

    def const(self, i: int, what: str, default=None) -> np.ndarray | None:
        x = self.input(i)
        if x is None:
            return default
        if not isinstance(x, Const):
            raise Unsupported(f"input {i} ('{what}') is computed at run time; it must be known at import time "
                              f"(a constant or an initializer)", needs=self.proto.input[i])
        return x.array

    def wants(self, k: int) -> bool:
        return k < len(self.outputs) and self.outputs[k] != ""


Lowering = Callable[[Builder, Node], list]
OPS: dict[str, Lowering] = {}


def op(*names: str):
    def register(f: Lowering) -> Lowering:
        for n in names:
            OPS[n] = f
        return f
    return register


NUMPY_INT = {"i8": np.int8, "i16": np.int16, "i32": np.int32}


def _axis(a: int, rank: int) -> int:
    if not -rank <= a < max(rank, 1):
        raise Unsupported(f"axis {a} is outside the input's {rank} axes")
    return a + rank if a < 0 else a


def _float(x, what: str = "the input"):
    if x.onnx not in FLOATS:
        raise Unsupported(f"{what} has type {type_name(x.onnx)}; this op takes FLOAT, FLOAT16 or BFLOAT16")


def _only_outputs(node: Node, n: int):
    for k in range(n, len(node.outputs)):
        if node.wants(k):
            raise Unsupported(f"output {k} ('{node.outputs[k]}') is not supported")


def _in_f32(b: Builder, x, f) -> Value:
    """``f`` computed in f32 for a FLOAT16/BFLOAT16 ``x``, cast back."""
    x = b.value(x)
    if x.elem == "f32":
        return f(x)
    return cast(b, f(cast(b, x, "f32")), x.elem, x.onnx)


# --- elementwise ---------------------------------------------------------------------------------
_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul"}


@op("Add", "Sub", "Mul")
def _arith(b, node):
    x, y = node.inputs[:2]
    return [binary(b, _BINARY[node.op_type], x, y)]


@op("Div")
def _div(b, node):
    x, y = node.inputs[:2]
    if x.onnx not in FLOATS:
        return [_int_div(b, x, y)]
    if isinstance(y, Const):
        inv = Const((1.0 / y.array.astype(np.float64)).astype(y.array.dtype), y.onnx, y.name)
        if np.array_equal(inv.array.astype(np.float64) * y.array, np.ones_like(inv.array, np.float64)) or \
                x.onnx != FLOAT:
            return [binary(b, "mul", x, inv)]
    return [binary(b, "mul", x, unary(b, "recip", y))]


@op("Max", "Min", "Sum", "Mean")
def _variadic(b, node):
    xs = [x for x in node.inputs if x is not None]
    kind = {"Max": "max", "Min": "min", "Sum": "add", "Mean": "add"}[node.op_type]
    if node.op_type == "Mean":
        _float(xs[0])
    y = xs[0]
    for x in xs[1:]:
        y = binary(b, kind, y, x)
    if node.op_type == "Mean" and len(xs) > 1:
        y = binary(b, "mul", y, Const(np.array(1.0 / len(xs), np.float32), FLOAT))
    return [b.value(y)]


_COMPARE = {"Equal": "eq", "Less": "lt", "Greater": "gt", "LessOrEqual": "le", "GreaterOrEqual": "ge"}


@op(*_COMPARE)
def _compare(b, node):
    x, y = node.inputs[:2]
    if BOOL in (x.onnx, y.onnx) and node.op_type != "Equal":
        raise Unsupported(f"{node.op_type} of BOOL")
    r = binary(b, _COMPARE[node.op_type], x, y)
    return [cast(b, r, "i8", BOOL)]


@op("Not")
def _not(b, node):
    return [cast(b, binary(b, "eq", node.inputs[0], Const(np.array(0, np.int8), BOOL)), "i8", BOOL)]


@op("Where")
def _where(b, node):
    c, x, y = (b.value(v) for v in node.inputs[:3])
    if x.elem != y.elem:
        raise Unsupported("Where's values have different types")
    shape = np.broadcast_shapes(c.shape, x.shape, y.shape)
    return [b.emit(f"select {c.name}, {x.name}, {y.name}", shape, x.elem, x.onnx)]


_UNARY = {"Exp": "exp", "Tanh": "tanh", "Sigmoid": "sigmoid", "Reciprocal": "recip", "Erf": "erf",
          "Relu": "relu", "Neg": "neg", "Abs": "abs", "Sign": "sign"}


@op(*_UNARY)
def _unary(b, node):
    x = node.inputs[0]
    kind = _UNARY[node.op_type]
    if kind in ("exp", "tanh", "sigmoid", "recip", "erf"):
        _float(x)
    return [unary(b, kind, x)]


@op("Sqrt")
def _sqrt(b, node):
    _float(node.inputs[0])
    return [_in_f32(b, node.inputs[0], lambda v: sqrt(b, v))]


@op("Log")
def _log(b, node):
    _float(node.inputs[0])
    return [_in_f32(b, node.inputs[0], lambda v: log(b, v))]


@op("Pow")
def _pow(b, node):
    return [pow_(b, node.inputs[0], node.inputs[1])]


@op("Identity")
def _identity(b, node):
    return [node.inputs[0]]


@op("Dropout")
def _dropout(b, node):
    node.attr("seed")
    train = node.const(2, "training_mode", np.array(False))
    if bool(np.asarray(train)):
        raise Unsupported("training_mode = true (inference only)")
    mask = Const(np.ones(node.inputs[0].shape, bool), BOOL) if node.wants(1) else None  # inference: every element kept
    return [node.inputs[0], mask]


@op("LRN")
def _lrn(b, node):
    """Local response normalization across channels, as a small expansion: the squares padded
    along the channels, ``size`` windows of them summed, ``x · (bias + alpha/size · sum)^−beta``
    (the power as ``exp(−beta · log d)``, onnx_math)."""
    x = b.value(node.inputs[0])
    _float(x)
    size = int(node.attr("size"))
    alpha, beta, bias = float(node.attr("alpha", 1e-4)), float(node.attr("beta", 0.75)), float(node.attr("bias", 1.0))
    xf = cast(b, x, "f32")
    sq = binary(b, "mul", xf, xf)
    c = x.shape[1]
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    from lpu.models.onnx_emit import pad_axis
    padded = pad_axis(b, sq, 1, lo, hi, 0.0)
    total = None
    for k in range(size):
        w = window(b, padded, 1, k, c)
        total = w if total is None else binary(b, "add", total, w)
    d = binary(b, "add", binary(b, "mul", total, _f32(alpha / size)), _f32(bias))
    y = binary(b, "mul", xf, pow_(b, d, Const(np.array(-beta, np.float32), FLOAT)))
    return [cast(b, y, x.elem, x.onnx)]


@op("Gelu")
def _gelu(b, node):
    x = node.inputs[0]
    _float(x)
    approx = node.attr("approximate", "none")
    if approx not in ("none", "tanh"):
        raise Unsupported(f"approximate = '{approx}'")
    return [_in_f32(b, x, lambda v: unary(b, "gelu", v, f' {{approximate = "{approx}"}}'))]


@op("LeakyRelu")
def _leaky(b, node):
    x = b.value(node.inputs[0])
    _float(x)
    alpha = float(node.attr("alpha", 0.01))
    neg = binary(b, "lt", x, _scalar(0.0, x))
    ax = binary(b, "mul", x, _scalar(alpha, x))
    return [b.emit(f"select {neg.name}, {ax.name}, {x.name}", x.shape, x.elem, x.onnx)]


def _exp_minus_one(b, x, alpha: float):
    """``alpha·(exp(x) − 1)`` where ``x < 0``, else ``x`` (Elu's and Selu's negative side)."""
    neg = binary(b, "lt", x, _scalar(0.0, x))
    e = binary(b, "mul", binary(b, "sub", unary(b, "exp", x), _scalar(1.0, x)), _scalar(alpha, x))
    return _select(b, neg, e, x)


@op("Elu")
def _elu(b, node):
    x = b.value(node.inputs[0])
    _float(x)
    return [_in_f32(b, x, lambda v: _exp_minus_one(b, v, float(node.attr("alpha", 1.0))))]


@op("Selu")
def _selu(b, node):
    x = b.value(node.inputs[0])
    _float(x)
    alpha = float(node.attr("alpha", 1.67326319217681884765625))
    gamma = float(node.attr("gamma", 1.05070102214813232421875))
    return [_in_f32(b, x, lambda v: binary(b, "mul", _exp_minus_one(b, v, alpha), _f32(gamma)))]


@op("PRelu")
def _prelu(b, node):
    x, slope = b.value(node.inputs[0]), node.inputs[1]
    try:
        np.broadcast_shapes(tuple(x.shape), tuple(slope.shape))
    except ValueError:  # a slope a channel (opset < 7's PRelu, kept by the version converter)
        if slope.rank != 1 or x.rank < 2 or slope.shape[0] != x.shape[1]:
            raise Unsupported(f"a slope of shape {list(slope.shape)} for an input of shape {list(x.shape)}") from None
        slope = _reshape_to(b, slope, [slope.shape[0]] + [1] * (x.rank - 2))
    neg = binary(b, "lt", x, _scalar(0.0, x))
    return [_select(b, neg, binary(b, "mul", x, slope), x)]


@op("Softplus")
def _softplus(b, node):
    x = b.value(node.inputs[0])
    _float(x)
    return [_in_f32(b, x, lambda v: log(b, binary(b, "add", unary(b, "exp", v), _f32(1.0))))]


@op("LogSoftmax")
def _log_softmax(b, node):
    """``x − max − log Σ exp(x − max)`` along the axis (opset < 13: of the input flattened at it)."""
    x = b.value(node.inputs[0])
    _float(x)
    a = _axis(node.attr("axis", -1 if node.opset >= 13 else 1), x.rank)

    def f(v, axis):
        d = binary(b, "sub", v, reduce(b, "reduce_max", v, [axis], True))
        return binary(b, "sub", d, log(b, reduce(b, "reduce_sum", unary(b, "exp", d), [axis], True)))

    if node.opset < 13:
        flat = reshape(b, x, [int(np.prod(x.shape[:a])), int(np.prod(x.shape[a:]))])
        return [reshape(b, _in_f32(b, flat, lambda v: f(v, 1)), x.shape)]
    return [_in_f32(b, x, lambda v: f(v, a))]


def _scalar(v: float, like) -> Const:
    return Const(np.array(v).astype(onnx_dtype(like.onnx)), like.onnx)


@op("Clip")
def _clip(b, node):
    x = node.inputs[0]
    lo, hi = node.input(1), node.input(2)
    if node.opset < 11:
        lo = Const(np.array(node.attr("min", -3.4028234663852886e38), np.float32), FLOAT)
        hi = Const(np.array(node.attr("max", 3.4028234663852886e38), np.float32), FLOAT)
    y = x
    if lo is not None:
        y = binary(b, "max", y, lo)
    if hi is not None:
        y = binary(b, "min", y, hi)
    return [b.value(y)]


@op("CastLike")
def _cast_like(b, node):
    node.attrs["to"] = node.inputs[1].onnx
    node.read.add("to")
    return _cast(b, node)


@op("Cast")
def _cast(b, node):
    x = b.value(node.inputs[0])
    to = node.attr("to")
    node.attr("saturate")
    node.attr("round_mode")
    elem = carrier(to)
    if to in NARROW or x.onnx in NARROW:
        return [_cast_narrow(b, node, x, to)]
    if to == BOOL:
        zero = Const(np.zeros((), np.float32 if x.elem in ("f32", "f16", "bf16") else np.int32), x.onnx)
        return [cast(b, binary(b, "ne", x, zero), "i8", BOOL)]
    if x.onnx in FLOATS and elem in ("i8", "i16", "i32"):
        # ONNX truncates toward zero; cast rounds to nearest: trunc(x) = sign(x)·floor(|x|)
        f = cast(b, x, "f32")
        a = unary(b, "abs", f)
        r = cast(b, cast(b, a, "i32"), "f32")
        fl = binary(b, "sub", r, binary(b, "gt", r, a))
        t = binary(b, "mul", fl, unary(b, "sign", f))
        return [cast(b, t, elem, to)]
    if x.onnx in (INT64,) and to != INT64 and elem == "i32":
        return [Value(x.name, x.shape, x.elem, to)]
    return [cast(b, x, elem, to)]


#: FLOAT8/FLOAT4 formats: mantissa bits, least normal exponent, greatest finite, Inf, negative zero
_FP8 = {FLOAT8E4M3FN: (3, -6, 448.0, False, True), FLOAT8E4M3FNUZ: (3, -7, 240.0, False, False),
        FLOAT8E5M2: (2, -14, 57344.0, True, True), FLOAT8E5M2FNUZ: (2, -15, 57344.0, False, False),
        FLOAT4E2M1: (1, 0, 6.0, False, True)}
_INTN = {INT4: (-8, 7), UINT4: (0, 15), INT2: (-2, 1), UINT2: (0, 3)}


def _f32(v: float) -> Const:
    return Const(np.array(v, np.float32), FLOAT)


def _select(b, c, x, y) -> Value:
    c, x, y = b.value(c), b.value(x), b.value(y)
    shape = np.broadcast_shapes(c.shape, x.shape, y.shape)
    return b.emit(f"select {c.name}, {x.name}, {y.name}", shape, x.elem, x.onnx)


def _trunc(b, f) -> Value:
    """trunc(f) of an f32 value (cast rounds to nearest): sign(f)·floor(|f|)."""
    a = unary(b, "abs", f)
    r = cast(b, cast(b, a, "i32"), "f32")
    fl = binary(b, "sub", r, binary(b, "gt", r, a))
    return binary(b, "mul", fl, unary(b, "sign", f))


def _pow2_floor(b, a, lo: int, hi: int) -> Value:
    """2^clamp(floor(log2 a), lo, hi) of an f32 ``a`` ≥ 0 by bisection on the exponent (each
    step a compare and a select: exact, every operand a power of two)."""
    p = fill(b, a.shape, 2.0 ** lo, a)
    k = 1
    while k * 2 <= hi - lo:
        k *= 2
    while k >= 1:
        step = 2.0 ** k
        up = binary(b, "mul", p, _f32(step)) if k < 128 else binary(b, "mul", binary(b, "mul", p, _f32(2.0 ** 64)),
                                                                       _f32(2.0 ** (k - 64)))
        ok = binary(b, "le", up, _f32(2.0 ** hi))
        p = _select(b, binary(b, "mul", binary(b, "ge", a, up), ok), up, p)
        k //= 2
    return p


def _cast_narrow(b, node, x: Value, to: int) -> Value:
    """Cast to or from a type the language carries in a wider one (``NARROW``): from it, a
    plain cast of the carrier (every value is exact in it); to it, the rounding ONNX's
    reference does (ml_dtypes' astype, onnx's saturate_cast and to_float8e8m0) written as df
    ops in f32 — docs/onnx.md."""
    saturate = bool(node.attrs.get("saturate", 1))
    mode = node.attrs.get("round_mode", b"up")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    elem = carrier(to)
    if to not in NARROW:
        return cast(b, Value(x.name, x.shape, x.elem, x.onnx), elem, to) if to != BOOL else \
            cast(b, binary(b, "ne", x, Const(np.zeros((), np.float32 if x.elem[0] in "fb" else np.int32), x.onnx)),
                 "i8", BOOL)
    if x.elem in ("i8", "i16", "i32") and to in _INTN:
        lo, hi = _INTN[to]
        v = cast(b, x, "i32")
        inside = binary(b, "mul", binary(b, "ge", v, Const(np.array(lo, np.int32), INT64)),
                        binary(b, "le", v, Const(np.array(hi, np.int32), INT64)))
        return cast(b, _select(b, inside, v, Const(np.array(0, np.int32), INT64)), elem, to)
    f = cast(b, x, "f32", FLOAT) if x.elem != "f32" else Value(x.name, x.shape, "f32", FLOAT)
    if x.elem in ("i8", "i16", "i32"):
        if to not in _FP8 and to != FLOAT8E8M0:
            raise Unsupported(f"a Cast from {type_name(x.onnx)} to {type_name(to)}")
    if to in _INTN:  # ml_dtypes: truncated toward zero, 0 when outside the type (NaN, Inf too)
        lo, hi = _INTN[to]
        t = _trunc(b, f)
        inside = binary(b, "mul", binary(b, "ge", t, _f32(lo)), binary(b, "le", t, _f32(hi)))
        return cast(b, _select(b, inside, t, _f32(0.0)), elem, to)
    nan = binary(b, "ne", f, f)
    a = unary(b, "abs", f)
    if to == FLOAT8E8M0:  # 2^e of |x|'s f32 exponent field e, rounded by round_mode
        p = _pow2_floor(b, a, -127, 127)
        sub = binary(b, "lt", a, _f32(2.0 ** -126))         # zero and subnormals: field 0
        if mode == "up":
            r = binary(b, "mul", binary(b, "ne", a, p), binary(b, "ne", a, _f32(0.0)))
        elif mode == "nearest":
            r = binary(b, "ge", a, binary(b, "mul", p, _f32(1.5)))
            r = binary(b, "mul", r, binary(b, "sub", _f32(1.0), sub))
            r = binary(b, "add", r, binary(b, "mul", sub, binary(b, "gt", a, _f32(2.0 ** -127))))
        elif mode == "down":
            r = None
        else:
            raise Unsupported(f"round_mode = '{mode}'")
        p = _select(b, sub, _f32(2.0 ** -127), p)
        if r is not None:
            top = binary(b, "ge", p, _f32(2.0 ** 127))
            bump = binary(b, "mul", r, binary(b, "sub", _f32(1.0), top)) if saturate else r
            p = _select(b, bump, binary(b, "mul", p, _f32(2.0)), p)
            if not saturate:
                p = _select(b, binary(b, "mul", r, top), _f32(math.nan), p)
        special = binary(b, "add", nan, binary(b, "eq", a, _f32(math.inf)))
        return cast(b, _select(b, special, _f32(math.nan), p), elem, to)
    m, emin, top, has_inf, negzero = _FP8[to]
    emax = int(math.floor(math.log2(top)))
    p = _pow2_floor(b, a, emin, emax + 1)
    ulp = binary(b, "mul", p, _f32(2.0 ** -m))
    q = cast(b, cast(b, binary(b, "mul", a, unary(b, "recip", ulp)), "i32"), "f32")  # rounded to nearest even
    y = binary(b, "mul", q, ulp)
    over = binary(b, "gt", y, _f32(top))
    fp4 = to == FLOAT4E2M1
    if saturate or fp4:
        y = binary(b, "min", y, _f32(top))
    else:
        y = _select(b, over, _f32(math.inf if has_inf else math.nan), y)
    neg = binary(b, "lt", f, _f32(0.0))
    y = _select(b, neg, unary(b, "neg", y), y)
    zero = binary(b, "eq", y, _f32(0.0))
    y = _select(b, zero, binary(b, "mul", f, _f32(0.0)) if negzero else _f32(0.0), y)
    y = _select(b, nan, _f32(-0.0) if fp4 else _f32(math.nan), y)
    if has_inf and not saturate:  # Inf stays Inf in a format that has it (saturated: the greatest)
        y = _select(b, binary(b, "eq", a, _f32(math.inf)), f, y)
    return cast(b, y, elem, to)


# --- shapes -----------------------------------------------------------------------------------------
def _reshape_to(b, x, shape):
    return reshape(b, x, shape) if isinstance(x, Value) else Const(x.array.reshape(shape), x.onnx, x.name)


@op("Reshape")
def _reshape(b, node):
    x = node.inputs[0]
    want = [int(d) for d in node.const(1, "shape")]
    allowzero = node.attr("allowzero", 0)
    shape = [x.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(want)]
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1]))
        shape[shape.index(-1)] = int(np.prod(x.shape)) // max(known, 1)
    return [_reshape_to(b, x, shape)]


@op("Flatten")
def _flatten(b, node):
    x = node.inputs[0]
    a = node.attr("axis", 1)
    if not -x.rank <= a <= x.rank:
        raise Unsupported(f"axis {a} is outside [-{x.rank}, {x.rank}]")
    a = a + x.rank if a < 0 else a
    return [_reshape_to(b, x, [int(np.prod(x.shape[:a])), int(np.prod(x.shape[a:]))])]


def _axes(node: Node, i: int, attr: str = "axes"):
    """The axes: an attribute before the opset that made them an input (13 or 18 by op)."""
    if attr in node.attrs:
        return [int(v) for v in node.attr(attr)]
    a = node.const(i, "axes")
    return None if a is None else [int(v) for v in np.asarray(a).reshape(-1)]


@op("Squeeze")
def _squeeze(b, node):
    x = node.inputs[0]
    axes = _axes(node, 1)
    axes = [i for i, d in enumerate(x.shape) if d == 1] if axes is None else [_axis(a, x.rank) for a in axes]
    return [_reshape_to(b, x, [d for i, d in enumerate(x.shape) if i not in axes])]


@op("Unsqueeze")
def _unsqueeze(b, node):
    x = node.inputs[0]
    axes = _axes(node, 1)
    rank = x.rank + len(axes)
    axes = sorted(_axis(a, rank) for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return [_reshape_to(b, x, shape)]


@op("Transpose")
def _transpose(b, node):
    x = node.inputs[0]
    perm = node.attr("perm", list(range(x.rank))[::-1])
    return [transpose(b, b.value(x), perm)]


@op("Tile")
def _tile(b, node):
    """Copies along each axis (``repeats`` known): a concat of the input that many times."""
    x = node.inputs[0]
    reps = [int(r) for r in np.asarray(node.const(1, "repeats")).reshape(-1)]
    if len(reps) != x.rank:
        raise Unsupported(f"{len(reps)} repeats for an input of rank {x.rank}")
    y = x
    for a, r in enumerate(reps):
        y = concat(b, [y] * r, a) if r != 1 else y
    return [y]


@op("Concat")
def _concat(b, node):
    xs = [x for x in node.inputs if x is not None]
    return [concat(b, xs, _axis(node.attr("axis"), xs[0].rank))]


@op("Split")
def _split(b, node):
    x = node.inputs[0]
    a = _axis(node.attr("axis", 0), x.rank)
    n = len(node.outputs)
    sizes = node.const(1, "split") if node.opset >= 13 else node.attr("split")
    num = node.attr("num_outputs")
    if sizes is None:
        k = -(-x.shape[a] // (num or n))
        sizes = [min(k, x.shape[a] - i * k) for i in range(num or n)]
    out, start = [], 0
    for s in [int(s) for s in np.asarray(sizes).reshape(-1)]:
        out.append(_keep(b, window(b, x, a, start, s)))
        start += s
    return out


def _keep(b, x):
    return x


@op("Slice")
def _slice(b, node):
    x = node.inputs[0]
    starts = [int(v) for v in node.const(1, "starts")]
    ends = [int(v) for v in node.const(2, "ends")]
    axes = node.const(3, "axes")
    axes = list(range(len(starts))) if axes is None else [_axis(int(a), x.rank) for a in axes]
    steps = node.const(4, "steps")
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    y = x
    for a, s, e, st in zip(axes, starts, ends, steps):
        n = x.shape[a]
        idx = list(range(*slice(max(min(s, 2 ** 62), -2 ** 62), max(min(e, 2 ** 62), -2 ** 62), st).indices(n)))
        if st == 1 and idx:
            y = window(b, y, a, idx[0], len(idx))
        else:
            y = take(b, y, a, idx)
    return [y]


@op("Gather")
def _gather(b, node):
    x, ind = node.inputs[:2]
    return [gather(b, x, ind, _axis(node.attr("axis", 0), x.rank))]


@op("Expand")
def _expand(b, node):
    x = node.inputs[0]
    shape = tuple(int(d) for d in node.const(1, "shape"))
    out = tuple(np.broadcast_shapes(x.shape, shape))
    if out == tuple(x.shape):
        return [x]
    return [binary(b, "mul", x, Const(np.ones(out, x.array.dtype if isinstance(x, Const) else
                                              np.float32 if x.onnx in FLOATS else np.int32), x.onnx))]


# --- reductions -------------------------------------------------------------------------------------
def _reduce_axes(node: Node, x) -> list[int] | None:
    axes = _axes(node, 1)
    if axes is None or axes == []:
        if node.attr("noop_with_empty_axes", 0):
            return None
        return list(range(x.rank))
    return sorted({_axis(a, x.rank) for a in axes})


@op("ReduceSum", "ReduceMax", "ReduceMin", "ReduceMean", "ReduceSumSquare", "ReduceL1", "ReduceL2")
def _reduce(b, node):
    x = b.value(node.inputs[0])
    keep = bool(node.attr("keepdims", 1))
    axes = _reduce_axes(node, x)
    if axes is None:
        return [x]
    kind = {"ReduceMax": "reduce_max", "ReduceMin": "reduce_min"}.get(node.op_type, "reduce_sum")
    if node.op_type in ("ReduceMean", "ReduceL2"):
        _float(x)
    src = x
    if node.op_type == "ReduceSumSquare" or node.op_type == "ReduceL2":
        src = binary(b, "mul", x, x)
    elif node.op_type == "ReduceL1":
        src = unary(b, "abs", x)
    y = reduce(b, kind, src, axes, keep)
    if node.op_type == "ReduceMean":
        count = int(np.prod([x.shape[a] for a in axes]))
        y = binary(b, "mul", y, Const(np.array(1.0 / count, np.float32), y.onnx))
    elif node.op_type == "ReduceL2":
        y = _in_f32(b, y, lambda v: sqrt(b, v))
    return [y]


@op("ArgMax", "ArgMin")
def _argmax(b, node):
    x = b.value(node.inputs[0])
    a = _axis(node.attr("axis", 0), x.rank)
    keep = bool(node.attr("keepdims", 1))
    last = bool(node.attr("select_last_index", 0))
    n = x.shape[a]
    src = take(b, x, a, list(range(n))[::-1]) if last else x
    shape = list(x.shape)
    shape[a] = 1
    kind = "argmax" if node.op_type == "ArgMax" else "argmin"
    y = b.emit(f"{kind} {src.name} {{axis = {a}}}", shape, "i32", INT64)
    if last:
        y = b.emit(f"sub {n - 1}, {y.name}", shape, "i32", INT64)
    if not keep:
        y = reshape(b, y, [d for i, d in enumerate(x.shape) if i != a])
    return [y]


@op("Softmax")
def _softmax(b, node):
    x = b.value(node.inputs[0])
    _float(x)
    a = _axis(node.attr("axis", -1 if node.opset >= 13 else 1), x.rank)
    if node.opset < 13:  # softmax of the input flattened to 2-D at axis
        flat = reshape(b, x, [int(np.prod(x.shape[:a])), int(np.prod(x.shape[a:]))])
        return [reshape(b, softmax(b, flat, 1), x.shape)]
    return [softmax(b, x, a)]


#: a bf16 softmax sums its exponentials one after another (numpy's sum of a bf16 array, each
#: add rounded) up to this many along the axis; longer axes sum in f32, rounded once
SEQUENTIAL_SUM = 64


def softmax(b, x: Value, axis: int, safe: bool = False) -> Value:
    """Softmax along ``axis``. FLOAT: the df ``softmax``. FLOAT16/BFLOAT16: onnx's reference
    step by step in the element type, each step rounded as numpy rounds it (x − max, exp, the
    sum: f32 for f16, one add after another for bf16, the quotient rounded once), so the
    node tests' tolerance (below one bf16 ulp) holds. ``safe``: a row that is all −Inf gives
    zeros (Attention's softmax), not NaN."""
    if x.elem == "f32":
        y = unary(b, "softmax", x, f" {{axis = {axis}}}")
        return y
    m = reduce(b, "reduce_max", x, [axis], True)
    if safe:
        m = _select(b, binary(b, "eq", m, _scalar(-math.inf, m)), _scalar(0.0, m), m)
    e = unary(b, "exp", binary(b, "sub", x, m))
    n = x.shape[axis]
    if x.elem == "bf16" and n <= SEQUENTIAL_SUM:
        t = window(b, e, axis, 0, 1)
        for k in range(1, n):
            t = binary(b, "add", t, window(b, e, axis, k, 1))
    else:
        t = cast(b, reduce(b, "reduce_sum", cast(b, e, "f32"), [axis], True), x.elem, x.onnx)
    t = cast(b, t, "f32")
    if safe:
        t = _select(b, binary(b, "eq", t, _f32(0.0)), _f32(1.0), t)
    return cast(b, binary(b, "mul", cast(b, e, "f32"), unary(b, "recip", t)), x.elem, x.onnx)


def _norm_params(b, p, trailing, what):
    """A scale or bias broadcast to the normalized axes, flattened to one vector of f32."""
    n = int(np.prod(trailing))
    if isinstance(p, Const):
        return b.value(Const(np.broadcast_to(p.array.astype(np.float32), trailing).reshape(n).copy(), FLOAT,
                             p.name))
    p = cast(b, p, "f32")
    if tuple(p.shape) != tuple(trailing):
        p = binary(b, "mul", p, Const(np.ones(trailing, np.float32), FLOAT))
    return reshape(b, p, [n])


@op("LayerNormalization", "RMSNormalization")
def _layernorm(b, node):
    x = b.value(node.inputs[0])
    _float(x)
    a = _axis(node.attr("axis", -1), x.rank)
    eps = float(node.attr("epsilon", 1e-5))
    stash = node.attr("stash_type", 1)
    if stash != 1:
        raise Unsupported(f"stash_type = {stash} (computes in FLOAT)")
    lead, trailing = x.shape[:a], x.shape[a:]
    n = int(np.prod(trailing))
    xf = reshape(b, cast(b, x, "f32"), list(lead) + [n])
    g = _norm_params(b, node.inputs[1], trailing, "scale")
    rms = node.op_type == "RMSNormalization"
    if rms:
        _only_outputs(node, 1)
        y = b.emit(f"rmsnorm {xf.name}, {g.name} {{eps = {_num(eps)}}}", xf.shape, "f32")
        return [cast(b, reshape(b, y, x.shape), x.elem, x.onnx)]
    beta = node.input(2)
    bv = _norm_params(b, beta, trailing, "bias") if beta is not None else fill(b, [n], 0.0, Value("", (), "f32",
                                                                                                  FLOAT))
    if not (node.wants(1) or node.wants(2)):
        y = b.emit(f"layernorm {xf.name}, {g.name}, {bv.name} {{eps = {_num(eps)}}}", xf.shape, "f32")
        return [cast(b, reshape(b, y, x.shape), x.elem, x.onnx)]
    # Mean and InvStdDev wanted: the decomposition written out (docs/dataflow.md's layernorm)
    last = len(lead)
    inv_n = Const(np.array(1.0 / n, np.float32), FLOAT)
    mean = binary(b, "mul", reduce(b, "reduce_sum", xf, [last], True), inv_n)
    d = binary(b, "sub", xf, mean)
    var = binary(b, "mul", reduce(b, "reduce_sum", binary(b, "mul", d, d), [last], True), inv_n)
    inv = unary(b, "rsqrt", binary(b, "add", var, Const(np.array(eps, np.float32), FLOAT)))
    y = binary(b, "add", binary(b, "mul", binary(b, "mul", d, inv), g), bv)
    stat_shape = list(lead) + [1] * len(trailing)
    return [cast(b, reshape(b, y, x.shape), x.elem, x.onnx), reshape(b, mean, stat_shape),
            reshape(b, inv, stat_shape)]


@op("InstanceNormalization")
def _instance_norm(b, node):
    """Each (batch, channel)'s spatial values normalized (a ``layernorm`` of the rows
    [N·C, spatial], no scale or bias), then the channel's scale and bias."""
    x = b.value(node.inputs[0])
    _float(x)
    eps = float(node.attr("epsilon", 1e-5))
    nb, c = x.shape[:2]
    n = int(np.prod(x.shape[2:]))
    xf = reshape(b, cast(b, x, "f32"), [nb * c, n])
    one, zero = fill(b, [n], 1.0, Value("", (), "f32", FLOAT)), fill(b, [n], 0.0, Value("", (), "f32", FLOAT))
    y = b.emit(f"layernorm {xf.name}, {one.name}, {zero.name} {{eps = {_num(eps)}}}", xf.shape, "f32")
    y = reshape(b, y, x.shape)
    per = [1, c] + [1] * (x.rank - 2)
    for k, kind in ((1, "mul"), (2, "add")):
        p = node.inputs[k]
        p = Const(np.asarray(p.array, np.float32).reshape(per), FLOAT, p.name) if isinstance(p, Const) \
            else reshape(b, cast(b, b.value(p), "f32"), per)
        y = binary(b, kind, y, p)
    return [cast(b, b.value(y), x.elem, x.onnx)]


def _num(v: float) -> str:
    return repr(float(np.float32(v)))


# --- matmuls ------------------------------------------------------------------------------------------
def _matmul(b, node, x, w):
    """numpy's matmul of ``x`` and ``w`` (1-D operands promoted, batches broadcast)."""
    xr, wr = x.rank, w.rank
    xs = x if xr > 1 else _reshape_to(b, x, [1, x.shape[0]])
    ws = w if wr > 1 else _reshape_to(b, w, [w.shape[0], 1])
    if ws.rank == 2:
        shape = list(xs.shape[:-1]) + [ws.shape[1]]
    else:
        batch = np.broadcast_shapes(tuple(xs.shape[:-2]), tuple(ws.shape[:-2]))
        shape = list(batch) + [xs.shape[-2], ws.shape[-1]]
    y = matmul(b, xs, ws, shape, node.mode, hint=getattr(w, "name", "") or "w")
    out = list(shape)
    if wr == 1:
        out = out[:-1]
    if xr == 1:
        out = out[:-2] + out[-1:] if wr > 1 else out[:-1]
    y = reshape(b, y, out)
    return cast(b, y, carrier(x.onnx), x.onnx)


@op("MatMul")
def _matmul_op(b, node):
    return [_matmul(b, node, *node.inputs[:2])]


@op("Gemm")
def _gemm(b, node):
    a, w = node.inputs[:2]
    c = node.input(2)
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    if node.attr("transA", 0):
        a = transpose(b, a, [1, 0]) if isinstance(a, Const) else transpose(b, b.value(a), [1, 0])
    if node.attr("transB", 0):
        w = transpose(b, w, [1, 0]) if isinstance(w, Const) else transpose(b, b.value(w), [1, 0])
    if alpha != 1.0 and isinstance(w, Const):
        w, alpha = Const((w.array * np.float32(alpha)).astype(w.array.dtype), w.onnx, w.name), 1.0
    y = _matmul(b, node, a, w)
    if alpha != 1.0:
        y = binary(b, "mul", y, Const(np.array(alpha, np.float32), y.onnx))
    if c is not None and beta != 0.0:
        if beta != 1.0:
            c = Const((c.array * np.float32(beta)).astype(c.array.dtype), c.onnx, c.name) if isinstance(c, Const) \
                else binary(b, "mul", c, Const(np.array(beta, np.float32), c.onnx))
        y = binary(b, "add", y, c)
    return [b.value(y)]


# --- convolutions and pools: channels last (each window a choice of rows, no lane moves), or in
# ONNX's own layout (a window along the lanes one shifted copy a row) for a depthwise Conv and a
# pool that holds fewer vectors so ------------------------------------------------------------------
def _geometry(node: Node, spatial, kernel, pool: bool):
    n = len(spatial)
    strides = list(node.attr("strides", [1] * n))
    dil = list(node.attr("dilations", [1] * n))
    pads = list(node.attr("pads", [0] * (2 * n)))
    auto = node.attr("auto_pad", "NOTSET")
    ceil = bool(node.attr("ceil_mode", 0)) if pool else False
    begin, end, out = pads[:n], pads[n:], []
    for i in range(n):
        span = (kernel[i] - 1) * dil[i] + 1
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-spatial[i] // strides[i])
            total = max(0, (o - 1) * strides[i] + span - spatial[i])
            begin[i] = total // 2 if auto == "SAME_UPPER" else total - total // 2
            end[i] = total - begin[i]
        elif auto == "VALID":
            begin[i] = end[i] = 0
        elif auto != "NOTSET":
            raise Unsupported(f"auto_pad = '{auto}'")
        room = spatial[i] + begin[i] + end[i] - span
        o = (-(-room // strides[i]) if ceil else room // strides[i]) + 1
        if ceil and (o - 1) * strides[i] >= spatial[i] + begin[i]:
            o -= 1  # a last window starting in the end padding is dropped
        out.append(o)
    return strides, dil, begin, end, out


def _windows(b, xt, kernel, strides, dil, out, first: int = 1):
    """Each kernel offset's window of the padded input: [N, out..., C] channels last (the
    spatial axes from ``first`` = 1), [N, C, out...] as ONNX lays it out (``first`` = 2)."""
    n = len(kernel)
    for offs in itertools.product(*[range(k) for k in kernel]):
        w = xt
        for i in range(n):
            idx = [offs[i] * dil[i] + strides[i] * j for j in range(out[i])]
            w = take(b, w, first + i, idx)
        yield offs, w


def _channels_last(b, x, begin, end, spatial, value, out, kernel, strides, dil, last: bool = True):
    """The input padded for its windows (the rows no window reads cut off), channels last or
    (``last`` false) in ONNX's own layout."""
    n = len(spatial)
    xt = transpose(b, b.value(x), [0] + list(range(2, 2 + n)) + [1]) if last else b.value(x)
    need = [(out[i] - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 for i in range(n)]
    ends = [max(end[i], need[i] - spatial[i] - begin[i]) for i in range(n)]
    cut = [min(0, need[i] - spatial[i] - begin[i]) for i in range(n)]  # rows no window reads
    after = [e if e > 0 else c for e, c in zip(ends, cut)]
    if last:
        return pad(b, xt, [0] + list(begin) + [0], [0] + after + [0], value)
    return pad(b, xt, [0, 0] + list(begin), [0, 0] + after, value)


def _pool_channels_last(x, strides, windows: bool, lanes: int = 320) -> bool:
    """Whether a pool's windows are taken channels last (each window a choice of rows: no lane
    moves, but a vector a position holding only C lanes) or in ONNX's layout (the last spatial
    axis in the lanes: a window along it one shifted copy a row), whichever holds fewer vectors;
    ``windows`` (MaxPool's Indices, window by window): ONNX's layout only for a last stride of 1."""
    nb, c, spatial = x.shape[0], x.shape[1], list(x.shape[2:])
    cl = nb * int(np.prod(spatial)) * -(-c // lanes)
    own = nb * c * int(np.prod(spatial[:-1])) * -(-spatial[-1] // lanes)
    return (windows and strides[-1] != 1) or cl <= own


@op("Conv")
def _conv(b, node):
    x, w = node.inputs[:2]
    bias = node.input(2)
    _float(x)
    node.const(1, "W")
    n = x.rank - 2
    groups = int(node.attr("group", 1))
    kernel = list(node.attr("kernel_shape", w.shape[2:]))
    spatial = list(x.shape[2:])
    strides, dil, begin, end, out = _geometry(node, spatial, kernel, False)
    nb, c, m = x.shape[0], x.shape[1], w.shape[0]
    if groups == c and groups > 1:
        return [_conv_depthwise(b, x, w, bias, kernel, strides, dil, begin, end, out)]
    xt = _channels_last(b, x, begin, end, spatial, 0.0, out, kernel, strides, dil)
    return [_conv_matmuls(b, node, xt, w.array, w.name or "w", w.onnx, bias, groups, kernel, strides, dil, out,
                          x.onnx)]


def _conv_matmuls(b, node, xt, wa, wname, wonnx, bias, groups, kernel, strides, dil, out, onnx_t):
    """The Conv of the padded channels-last input ``xt`` [N, spatial..., C] by weights ``wa``
    [M, C/group, k...]: each group's windows side by side, one matmul with the weights as
    [k·C/group, M/group]; the result back in ONNX's layout."""
    n = len(kernel)
    nb, c, m = xt.shape[0], xt.shape[-1], wa.shape[0]
    cg, mg = c // groups, m // groups
    rows = nb * int(np.prod(out))
    wins = [wv for _, wv in _windows(b, xt, kernel, strides, dil, out)]
    k = len(wins)
    ys = []
    for g in range(groups):
        cols = concat(b, [window(b, wv, n + 1, g * cg, cg) if groups > 1 else wv for wv in wins], n + 1)
        cols = reshape(b, b.value(cols), [rows, k * cg])
        wg = wa[g * mg:(g + 1) * mg]  # [mg, cg, k...] -> [k..., cg, mg] -> [k·cg, mg]
        wmat = np.transpose(wg, list(range(2, 2 + n)) + [1, 0]).reshape(k * cg, mg)
        hint = wname + (f".g{g}" if groups > 1 else "")
        ys.append(matmul(b, cols, Const(np.ascontiguousarray(wmat), wonnx, hint), [rows, mg], node.mode, hint=hint))
    y = concat(b, ys, 1) if groups > 1 else ys[0]
    if bias is not None:
        y = binary(b, "add", y, bias if isinstance(bias, Const) else b.value(bias))
    y = reshape(b, b.value(y), [nb] + out + [m])
    y = transpose(b, y, [0, n + 1] + list(range(1, n + 1)))
    return cast(b, y, carrier(onnx_t), onnx_t)


@op("ConvTranspose")
def _conv_transpose(b, node):
    """The Conv it is the transpose of: the input channels last, spread by the strides (zero
    rows between its rows, along each spatial axis), padded by (k − 1)·d − pads (plus
    output_padding at the end), convolved at stride 1 by the weights flipped, inputs and outputs
    swapped. Explicit pads only (output_shape and auto_pad are not supported)."""
    x, w = node.inputs[:2]
    bias = node.input(2)
    _float(x)
    wa = np.asarray(node.const(1, "W"))
    n = x.rank - 2
    groups = int(node.attr("group", 1))
    kernel = list(node.attr("kernel_shape", w.shape[2:]))
    strides = list(node.attr("strides", [1] * n))
    dil = list(node.attr("dilations", [1] * n))
    pads = list(node.attr("pads", [0] * (2 * n)))
    extra = list(node.attr("output_padding", [0] * n))
    if node.attr("output_shape") is not None:
        raise Unsupported("output_shape (give pads and output_padding)")
    if node.attr("auto_pad", "NOTSET") != "NOTSET":
        raise Unsupported(f"auto_pad = '{node.attr('auto_pad')}' (give pads)")
    nb, c = x.shape[:2]
    cg, mg = c // groups, wa.shape[1]
    flip = (slice(None), slice(None)) + (slice(None, None, -1),) * n
    w2 = np.concatenate([np.swapaxes(wa[g * cg:(g + 1) * cg], 0, 1)[flip] for g in range(groups)], axis=0)
    xt = transpose(b, b.value(x), [0] + list(range(2, 2 + n)) + [1])
    for i, s in enumerate(strides):
        if s > 1:  # [.., d_i, ..] -> [.., d_i, s, ..] (a row, then s − 1 rows of zeros) -> the first (d_i − 1)·s + 1
            a, d = 1 + i, xt.shape[1 + i]
            shape = list(xt.shape)
            up = reshape(b, xt, shape[:a + 1] + [1] + shape[a + 1:])
            zeros = fill(b, shape[:a + 1] + [s - 1] + shape[a + 1:], 0.0, up)
            spread = reshape(b, b.value(concat(b, [up, zeros], a + 1)), shape[:a] + [d * s] + shape[a + 1:])
            xt = window(b, spread, a, 0, (d - 1) * s + 1)
    before = [(k - 1) * d - p for k, d, p in zip(kernel, dil, pads[:n])]
    after = [(k - 1) * d - p + e for k, d, p, e in zip(kernel, dil, pads[n:], extra)]
    xt = pad(b, xt, [0] + before + [0], [0] + after + [0], 0.0)
    out = [xt.shape[1 + i] - (kernel[i] - 1) * dil[i] for i in range(n)]
    return [_conv_matmuls(b, node, xt, w2, (w.name or "w") + ".t", w.onnx, bias, groups, kernel, [1] * n, dil, out,
                          x.onnx)]


def _conv_depthwise(b, x, w, bias, kernel, strides, dil, begin, end, out):
    """A depthwise Conv (one input channel a group, M = C·mult outputs): no matmul — a sum over
    the kernel offsets of each window times its weight, a number a channel, in f32 on the VXM
    (exact products; ``--dtype`` does not apply), in ONNX's layout: a window along the last
    axis one shifted copy a row, taken at stride 1 and the strided positions picked once
    at the end, as the pools do."""
    n = len(kernel)
    c, m = x.shape[1], w.shape[0]
    xv = cast(b, b.value(x), "f32")
    if m != c:  # output channel j reads input channel j // mult: the rows repeated
        xv = take(b, xv, 1, [j // (m // c) for j in range(m)])
    spatial = list(x.shape[2:])
    # along the last axis every position at stride 1, the strided ones picked after the sum
    lane_out = list(out)
    lane_out[-1] = (out[-1] - 1) * strides[-1] + 1
    steps = list(strides[:-1]) + [1]
    xt = _channels_last(b, xv, begin, end, spatial, 0.0, lane_out, kernel, steps, dil, False)
    wa = np.asarray(w.array, np.float32)
    y = None
    for offs, wv in _windows(b, xt, kernel, steps, dil, lane_out, 2):
        k = Const(np.ascontiguousarray(wa[(slice(None), 0) + tuple(offs)]).reshape([1, m] + [1] * n), FLOAT,
                  (w.name or "w") + ".k" + "".join(map(str, offs)))
        t = binary(b, "mul", wv, k)
        y = t if y is None else binary(b, "add", y, t)
    if strides[-1] > 1:
        y = take(b, y, 1 + n, [strides[-1] * j for j in range(out[-1])])
    if bias is not None:
        bv = bias if not isinstance(bias, Const) else Const(np.asarray(bias.array, np.float32), FLOAT, bias.name)
        y = binary(b, "add", y, _reshape_to(b, bv if isinstance(bv, Const) else cast(b, b.value(bv), "f32"),
                                            [1, m] + [1] * n))
    return cast(b, b.value(y), carrier(x.onnx), x.onnx)


@op("MaxPool", "AveragePool")
def _pool(b, node):
    x = b.value(node.inputs[0])
    if node.op_type == "AveragePool" or x.onnx not in (2, 3, 5, 6):  # MaxPool: INT8/UINT8/INT16/INT32 too
        _float(x)
    maxpool = node.op_type == "MaxPool"
    _only_outputs(node, 2 if maxpool else 1)
    kernel = list(node.attr("kernel_shape"))
    n = len(kernel)
    spatial = list(x.shape[2:])
    order = 0
    if maxpool:
        order = int(node.attr("storage_order", 0))
    else:
        node.attr("count_include_pad")
    strides, dil, begin, end, out = _geometry(node, spatial, kernel, True)
    low = -math.inf if x.onnx in FLOATS else float(np.iinfo(np.dtype(NUMPY_INT[x.elem])).min)
    last = _pool_channels_last(x, strides, maxpool and node.wants(1))
    xt = _channels_last(b, x, begin, end, spatial, low if maxpool else 0.0, out, kernel, strides, dil, last)
    back = [0, n + 1] + list(range(1, n + 1))  # channels last -> ONNX's layout
    y = idx = None
    first = 1 if last else 2
    if maxpool and node.wants(1):  # Indices: the first window position holding the max, window by window
        for offs, wv in _windows(b, xt, kernel, strides, dil, out, first):
            at = _pool_index(x.shape, offs, strides, dil, begin, out, order)
            at = Const(at if last else np.ascontiguousarray(np.transpose(at, back)), INT64)
            idx = b.value(at) if y is None else _select(b, binary(b, "gt", wv, y), at, idx)
            y = wv if y is None else binary(b, "max", y, wv)
    else:  # a box's max or sum is one axis at a time: k1 + k2 + ... − n ops an element, not k1·k2·... − 1
        y = xt
        for i in range(n):
            # along the lanes (ONNX's layout, last axis: done last, on the fewest rows) the windows
            # are taken at stride 1 (shifted copies) and the strided positions picked once after
            lanes = not last and i == n - 1 and strides[i] > 1
            step, count = (1, (out[i] - 1) * strides[i] + 1) if lanes else (strides[i], out[i])
            acc = None
            for o in range(kernel[i]):
                wv = take(b, y, first + i, [o * dil[i] + step * j for j in range(count)])
                acc = wv if acc is None else binary(b, "max" if maxpool else "add", acc, wv)
            y = take(b, acc, first + i, [strides[i] * j for j in range(out[i])]) if lanes else acc
    if not maxpool:
        scale = _avg_scale(node, spatial, kernel, strides, dil, begin, end, out)
        y = binary(b, "mul", y, Const(scale if last else scale.reshape([1, 1] + out), FLOAT))
    if not last:
        return [b.value(y)] if idx is None else [b.value(y), idx]
    y = transpose(b, b.value(y), back)
    return [y] if idx is None else [y, transpose(b, idx, back)]


def _pool_index(shape, offs, strides, dil, begin, out, order: int) -> np.ndarray:
    """[N, out..., C]: the flat index into ``shape`` (row-major; column-major over the spatial
    axes for storage_order 1) of the input element window offset ``offs`` reads (ONNX's Indices)."""
    nb, c, spatial = shape[0], shape[1], list(shape[2:])
    step = int(np.prod(spatial))
    grids = np.meshgrid(*[np.arange(o) * s + k * d - bb for o, s, k, d, bb in zip(out, strides, offs, dil, begin)],
                        indexing="ij")
    weights = np.cumprod([1] + (spatial[:-1] if order else spatial[::-1][:-1]))
    weights = weights if order else weights[::-1]
    flat = sum(g * w for g, w in zip(grids, weights))
    chan = (np.arange(nb)[:, None] * c + np.arange(c)[None, :]) * step       # [N, C]
    idx = flat[None, ..., None] + chan.reshape([nb] + [1] * len(out) + [c])
    return idx.astype(np.int64)


def _avg_scale(node, spatial, kernel, strides, dil, begin, end, out) -> np.ndarray:
    """1/divisor at each output position, [1, out..., 1]: ONNX's own AveragePool of ones (its
    count_include_pad and ceil-mode rules) over the count of the input elements each window holds."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    n = len(spatial)
    proto = helper.make_node("AveragePool", ["x"], ["y"], **{k: v for k, v in node.attrs.items()})
    graph = helper.make_graph([proto], "avg", [helper.make_tensor_value_info("x", FLOAT, [1, 1] + spatial)],
                              [helper.make_tensor_value_info("y", FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", node.opset)])
    ref = ReferenceEvaluator(model)
    avg = np.asarray(ref.run(None, {"x": np.ones([1, 1] + spatial, np.float32)})[0], np.float64).reshape(out)
    ones = np.pad(np.ones(spatial), [(bb, max(0, (o - 1) * s + (k - 1) * d + 1 - sp - bb))
                                     for bb, o, s, k, d, sp in zip(begin, out, strides, kernel, dil, spatial)])
    count = np.zeros(out)
    for offs in itertools.product(*[range(k) for k in kernel]):
        sl = tuple(slice(o * d, o * d + s * (m - 1) + 1, s) for o, d, s, m in zip(offs, dil, strides, out))
        count += ones[sl]
    scale = np.where(count > 0, avg / np.where(count > 0, count, 1), 0.0)
    return scale.reshape([1] + out + [1]).astype(np.float32)


@op("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(b, node):
    x = b.value(node.inputs[0])
    _float(x)
    axes = list(range(2, x.rank))
    if node.op_type == "GlobalMaxPool":
        return [reduce(b, "reduce_max", x, axes, True)]
    y = reduce(b, "reduce_sum", x, axes, True)
    return [binary(b, "mul", y, Const(np.array(1.0 / int(np.prod(x.shape[2:])), np.float32), x.onnx))]


@op("BatchNormalization")
def _batchnorm(b, node):
    x = node.inputs[0]
    _float(x)
    node.attr("spatial")
    if node.attr("training_mode", 0):
        return _batchnorm_training(b, node)
    node.attr("momentum")
    _only_outputs(node, 1)
    scale, bias, mean, var = (node.const(i, w) for i, w in ((1, "scale"), (2, "B"), (3, "input_mean"),
                                                             (4, "input_var")))
    eps = float(node.attr("epsilon", 1e-5))
    # folded: y = x·a + c, a = scale/√(var + eps), c = B − mean·a (computed in float64)
    a = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    c = bias.astype(np.float64) - mean.astype(np.float64) * a
    shape = [x.shape[1]] + [1] * (x.rank - 2)
    dt = x.array.dtype if isinstance(x, Const) else np.float32 if x.onnx == FLOAT else np.float16
    y = binary(b, "mul", x, Const(a.reshape(shape).astype(dt), x.onnx, (node.name or "bn") + ".a"))
    return [binary(b, "add", y, Const(c.reshape(shape).astype(dt), x.onnx, (node.name or "bn") + ".c"))]


def _batchnorm_training(b, node):
    """training_mode = 1: normalized by the batch's own mean and (population) variance over every
    axis but the channels'; outputs 1 and 2 the running statistics, ``input·momentum +
    batch·(1 − momentum)``, as onnx's reference."""
    x = b.value(node.inputs[0])
    _only_outputs(node, 3)
    momentum = float(node.attr("momentum", 0.9))
    eps = float(node.attr("epsilon", 1e-5))
    xf = cast(b, x, "f32")
    axes = [0] + list(range(2, x.rank))
    inv_n = _f32(1.0 / int(np.prod([x.shape[a] for a in axes])))
    mean = binary(b, "mul", reduce(b, "reduce_sum", xf, axes, True), inv_n)            # [1, C, 1...]
    d = binary(b, "sub", xf, mean)
    var = binary(b, "mul", reduce(b, "reduce_sum", binary(b, "mul", d, d), axes, True), inv_n)
    shape = [x.shape[1]] + [1] * (x.rank - 2)

    def param(i):
        p = node.inputs[i]
        return Const(p.array.astype(np.float32).reshape(shape), FLOAT, p.name) if isinstance(p, Const) else \
            reshape(b, cast(b, b.value(p), "f32"), shape)

    y = binary(b, "mul", binary(b, "mul", d, unary(b, "rsqrt", binary(b, "add", var, _f32(eps)))), param(1))
    y = cast(b, binary(b, "add", y, param(2)), x.elem, x.onnx)
    out = [y]
    for k, (i, batch) in enumerate(((3, mean), (4, var)), 1):
        if node.wants(k):
            r = binary(b, "add", binary(b, "mul", param(i), _f32(momentum)), binary(b, "mul", batch, _f32(1 - momentum)))
            out.append(cast(b, reshape(b, r, [x.shape[1]]), x.elem, x.onnx))
        else:
            out.append(None)
    return out


@op("ConstantOfShape")
def _constant_of_shape(b, node):
    shape = [int(d) for d in node.const(0, "input")]
    v = node.attr("value")
    a = np.zeros(1, np.float32) if v is None else __import__("onnx").numpy_helper.to_array(v)
    return [Const(np.full(shape, a.reshape(-1)[0], a.dtype), _np_onnx(a))]


def _np_onnx(a) -> int:
    from onnx.helper import np_dtype_to_tensor_dtype

    return np_dtype_to_tensor_dtype(a.dtype)


@op("Pad")
def _pad(b, node):
    x = node.inputs[0]
    mode = node.attr("mode", "constant")
    pads = [int(p) for p in node.const(1, "pads")]
    cv = node.const(2, "constant_value")
    axes = node.const(3, "axes")
    axes = list(range(x.rank)) if axes is None else [_axis(int(a), x.rank) for a in axes]
    value = 0.0 if cv is None or np.asarray(cv).size == 0 else float(np.asarray(cv).reshape(-1)[0])
    k = len(axes)
    y = x
    for i, a in enumerate(axes):
        lo, hi = pads[i], pads[i + k]
        if not (lo or hi):
            continue
        n = x.shape[a]
        if mode == "constant":
            from lpu.models.onnx_emit import pad_axis

            y = pad_axis(b, y, a, lo, hi, value)
            continue
        idx = list(range(-lo, n + hi))
        if mode == "edge":
            idx = [min(max(j, 0), n - 1) for j in idx]
        elif mode == "reflect":
            if n < 2:
                raise Unsupported("reflect padding of an axis of one element")
            period = 2 * (n - 1)
            idx = [(j % period) for j in idx]
            idx = [period - j if j >= n else j for j in idx]
        elif mode == "wrap":
            idx = [j % n for j in idx]
        else:
            raise Unsupported(f"mode = '{mode}'")
        y = take(b, y, a, idx)
    return [y]


def _int_div(b, x, y):
    """Integer division truncating toward zero, as ONNX's (exact for |values| < 2^24): the f32
    quotient truncated, then corrected by the remainder (|r| < |y|, r of x's sign)."""
    t = x.onnx
    a, d = cast(b, b.value(x), "i32"), cast(b, b.value(y), "i32")
    af, df = cast(b, a, "f32"), cast(b, d, "f32")
    q = binary(b, "mul", af, unary(b, "recip", df))
    aq = unary(b, "abs", q)
    r = cast(b, cast(b, aq, "i32"), "f32")
    fl = binary(b, "sub", r, binary(b, "gt", r, aq))
    q0 = cast(b, binary(b, "mul", fl, unary(b, "sign", q)), "i32")
    rem = binary(b, "sub", a, binary(b, "mul", q0, d))
    sa, s = unary(b, "sign", a), binary(b, "mul", unary(b, "sign", a), unary(b, "sign", d))
    down = binary(b, "mul", binary(b, "eq", unary(b, "sign", rem), unary(b, "neg", sa)),
                  binary(b, "ne", rem, Const(np.array(0, np.int32), a.onnx)))
    up = binary(b, "ge", unary(b, "abs", rem), unary(b, "abs", d))
    q1 = binary(b, "add", q0, binary(b, "mul", s, binary(b, "sub", up, down)))
    return cast(b, q1, carrier(t), t)


def gather(b, x, ind, a: int):
    """``np.take(x, ind, axis=a)``: static slices for known indices, else one run-time slice a
    row, its index a rank-0 i32 (negative ones counted from the end)."""
    n = x.shape[a]
    out_shape = list(x.shape[:a]) + list(ind.shape) + list(x.shape[a + 1:])
    if isinstance(ind, Const):
        flat = [int(i) + n if int(i) < 0 else int(i) for i in ind.array.reshape(-1)]
        if any(not 0 <= i < n for i in flat):
            raise Unsupported(f"an index outside the {n} elements of axis {a}")
        return _reshape_to(b, take(b, x, a, flat), out_shape)
    x = b.value(x)
    if a == x.rank - 1:
        # a run-time index moves a slice along rows, not lanes: the gathered axis is made the
        # leading one (a vector of one element a row for a 1-D x), gathered, and put back
        if x.rank == 1:
            y = gather(b, reshape(b, x, [n, 1]), ind, 0)
            return _reshape_to(b, y, out_shape)
        rest = list(range(x.rank - 1))
        y = gather(b, transpose(b, x, [a] + rest), ind, 0)  # [ind..., rest...]
        k = ind.rank
        return transpose(b, b.value(y), [k + i for i in rest] + list(range(k)))
    iv = b.value(ind)
    count = int(np.prod(ind.shape))
    flat = reshape(b, iv, [count]) if ind.rank != 1 else iv
    sizes = list(x.shape)
    sizes[a] = 1
    step = [0] * x.rank
    step[a] = 1
    parts = []
    for k in range(count):
        i = reshape(b, slice_(b, flat, [k], [1]), [])
        neg = binary(b, "lt", i, Const(np.array(0, np.int32), i.onnx))
        i = b.emit(f"select {neg.name}, {binary(b, 'add', i, Const(np.array(n, np.int32), i.onnx)).name}, {i.name}",
                   (), "i32", i.onnx)
        parts.append(b.emit(f"slice {x.name}, {i.name} {{offsets = {[0] * x.rank}, sizes = {sizes}, step = {step}}}",
                            sizes, x.elem, x.onnx))
    return _reshape_to(b, concat(b, parts, a), out_shape)


@op("RotaryEmbedding")
def _rotary(b, node):
    x, cos, sin = node.inputs[:3]
    pos = node.input(3)
    _float(x)
    inter = bool(node.attr("interleaved", 0))
    heads = node.attr("num_heads", 0)
    rd = node.attr("rotary_embedding_dim", 0)
    shape = x.shape
    if x.rank == 3:
        if not heads:
            raise Unsupported("a 3-D input needs num_heads")
        xs = reshape(b, b.value(x), [shape[0], shape[1], heads, shape[2] // heads])   # [B, S, H, D]
    elif x.rank == 4:
        xs = transpose(b, b.value(x), [0, 2, 1, 3])                                   # [B, S, H, D]
    else:
        raise Unsupported(f"an input of rank {x.rank} (3 or 4)")
    d = xs.shape[3]
    rd = rd or d
    if pos is not None:
        cos, sin = gather(b, cos, pos, 0), gather(b, sin, pos, 0)                  # [B, S, rd/2]
    half = [cos.shape[0], cos.shape[1], 1, rd // 2]
    cos, sin = b.value(_reshape_to(b, cos, half)), b.value(_reshape_to(b, sin, half))
    if cos.elem != xs.elem:
        cos, sin = cast(b, cos, xs.elem, xs.onnx), cast(b, sin, xs.elem, xs.onnx)
    rot = window(b, xs, 3, 0, rd)
    style = "interleaved" if inter else "half"
    y = b.emit(f'rope {rot.name}, {cos.name}, {sin.name} {{style = "{style}"}}', rot.shape, xs.elem, xs.onnx)
    if rd < d:
        y = concat(b, [y, window(b, xs, 3, rd, d - rd)], 3)
    y = reshape(b, y, [shape[0], shape[1], shape[2]]) if x.rank == 3 else transpose(b, b.value(y), [0, 2, 1, 3])
    return [y]


@op("Attention")
def _attention(b, node):
    """onnx's reference (``onnx.reference.ops.op_attention``) op by op: Q and K each scaled by
    √scale in their type, the scores rounded to it, softcap, the additive bias (attn_mask,
    is_causal, the sliding window, nonpad_kv_seqlen — known at import, or compared at run time),
    the softmax (``softmax_precision``'s type), a row every key of which is masked set to 0,
    then · V. Heads are grouped as ``[B, kv heads, q heads per kv head, ...]``."""
    q, k, v = node.inputs[:3]
    mask, past_k, past_v, nonpad = node.input(3), node.input(4), node.input(5), node.input(6)
    _float(q)
    causal = bool(node.attr("is_causal", 0))
    softcap = float(node.attr("softcap", 0.0))
    mode = int(node.attr("qk_matmul_output_mode", 0))
    left, right = int(node.attr("left_window_size", -1)), int(node.attr("right_window_size", -1))
    precision = node.attr("softmax_precision")
    qh, kh = node.attr("q_num_heads"), node.attr("kv_num_heads")
    rank3 = q.rank == 3
    dt, dto = carrier(q.onnx), q.onnx

    def heads(t, n):
        t = b.value(t)
        return transpose(b, reshape(b, t, [t.shape[0], t.shape[1], n, t.shape[2] // n]), [0, 2, 1, 3])

    if rank3:
        q, k, v = heads(q, qh), heads(k, kh), heads(v, kh)
    q, k, v = b.value(q), b.value(k), b.value(v)
    past = 0
    if past_k is not None:
        past = past_k.shape[2]
        k, v = b.value(concat(b, [past_k, k], 2)), b.value(concat(b, [past_v, v], 2))
    bsz, hq, sq, dh = q.shape
    hkv, skv, dv = k.shape[1], k.shape[2], v.shape[3]
    g = hq // hkv
    scale = node.attr("scale")
    scale = 1.0 / math.sqrt(dh) if scale is None else float(scale)
    root = Const(np.array(np.sqrt(np.float32(scale))).astype(onnx_dtype(dto)), dto)
    q5 = reshape(b, binary(b, "mul", q, root), [bsz, hkv, g, sq, dh])
    kt = transpose(b, reshape(b, binary(b, "mul", k, root), [bsz, hkv, 1, skv, dh]), [0, 1, 2, 4, 3])
    s = cast(b, matmul(b, q5, kt, [bsz, hkv, g, sq, skv], node.mode, hint="k"), dt, dto)
    if softcap > 0:
        t = cast(b, binary(b, "mul", cast(b, s, "f32"), _f32(1 / softcap)), dt, dto)
        s = binary(b, "mul", unary(b, "tanh", t), Const(np.array(softcap).astype(onnx_dtype(dto)), dto))
    qk = s
    bias = _attention_bias(b, mask, nonpad, causal, left, right, past, bsz, sq, skv)   # f32 [B', H', sq, skv]
    if bias is not None:
        full = list(bias.shape)
        bias = _reshape_to(b, bias, full[:2] + [1] + full[2:]) if full[1] == 1 else \
            _reshape_to(b, bias, [full[0], hkv, g] + full[2:])
        bias = Const(bias.array.astype(onnx_dtype(dto)), dto) if isinstance(bias, Const) else cast(b, bias, dt, dto)
        s = binary(b, "add", s, bias)
    if mode == 2:
        qk = s
    ps = s
    if precision is not None and carrier(int(precision)) != dt:
        ps = cast(b, s, carrier(int(precision)), int(precision))
    p = softmax(b, ps, 4, safe=True)
    if bias is not None:  # a row whose every key is masked: zeros (decided on the bias, not on the scores)
        if isinstance(bias, Const):
            dead = np.isneginf(bias.array.astype(np.float32).max(axis=-1, keepdims=True))
            if dead.any():
                p = _select(b, Const(dead.astype(np.int8), BOOL), _scalar(0.0, p), p)
        else:
            m = reduce(b, "reduce_max", bias, [4], True)
            p = _select(b, binary(b, "eq", m, _scalar(-math.inf, m)), _scalar(0.0, p), p)
    p = cast(b, p, dt, dto)
    if mode == 3:
        qk = p
    v5 = reshape(b, v, [bsz, hkv, 1, skv, dv])
    y = cast(b, matmul(b, p, v5, [bsz, hkv, g, sq, dv], node.mode, hint="v"), dt, dto)
    y = reshape(b, y, [bsz, hq, sq, dv])
    if rank3:
        y = reshape(b, transpose(b, y, [0, 2, 1, 3]), [bsz, sq, hq * dv])
    qk = reshape(b, b.value(qk), [bsz, hq, sq, skv]) if node.wants(3) else None
    return [y, k if node.wants(1) else None, v if node.wants(2) else None, qk]


def _attention_bias(b, mask, nonpad, causal, left, right, past, bsz, sq, skv):
    """The additive bias (0 or −Inf, plus a FLOAT mask's values) of Attention, f32, rank 4:
    a ``Const`` when every part is known at import, else a value."""
    i = np.arange(sq)[:, None]
    j = np.arange(skv)[None, :]
    parts = []   # Const or Value, each broadcastable to [B, H, sq, skv]
    m = mask
    if m is not None:
        if m.shape[-1] < skv:  # a mask shorter than the keys: the rest masked, as the reference pads it
            pad_v = 0 if m.onnx == BOOL else -math.inf
            from lpu.models.onnx_emit import pad_axis
            m = pad_axis(b, m, m.rank - 1, 0, skv - m.shape[-1], pad_v)
        if m.onnx == BOOL:
            m = Const(np.where(m.array, 0.0, -np.inf).astype(np.float32), FLOAT) if isinstance(m, Const) else \
                _select(b, m, _f32(0.0), _f32(-math.inf))
        else:
            m = Const(m.array.astype(np.float32), FLOAT) if isinstance(m, Const) else cast(b, b.value(m), "f32")
        parts.append(_reshape_to(b, m, [1] * (4 - m.rank) + list(m.shape)))
    windowed = left >= 0 or right >= 0
    if nonpad is None or past:
        off = past
        allowed = np.ones((sq, skv), bool)
        if causal:
            allowed &= j <= i + off
        if left >= 0:
            allowed &= (i + off) - j <= left
        if right >= 0:
            allowed &= j - (i + off) <= right
        if causal or windowed:
            parts.append(Const(np.where(allowed, 0.0, -np.inf).astype(np.float32)[None, None], FLOAT))
    else:  # per batch: offset nonpad[b] − sq, and keys at nonpad[b] and beyond are padding
        n = nonpad if isinstance(nonpad, Const) else None
        conds = []   # (grid G [sq, skv], relation): allowed iff G rel nonpad[b]
        if causal:
            conds.append((j - i + sq, "le"))             # j <= i + nonpad - sq
        if left >= 0:
            conds.append((left - i + j + sq, "ge"))      # nonpad <= left + j - i + sq
        if right >= 0:
            conds.append((j - i + sq - right, "le"))
        conds.append((np.broadcast_to(j + 1, (sq, skv)), "le"))  # j < nonpad
        for grid, rel in conds:
            if n is not None:
                nb = np.asarray(n.array).reshape(-1, 1, 1)
                ok = grid[None] <= nb if rel == "le" else grid[None] >= nb
                parts.append(Const(np.where(ok, 0.0, -np.inf).astype(np.float32)[:, None], FLOAT))
            else:
                nb = reshape(b, cast(b, b.value(nonpad), "i32"), [bsz, 1, 1])
                ok = binary(b, rel, Const(grid[None].astype(np.int32), nonpad.onnx), nb)
                parts.append(reshape(b, _select(b, ok, _f32(0.0), _f32(-math.inf)), [bsz, 1, sq, skv]))
    if not parts:
        return None
    known = [x for x in parts if isinstance(x, Const)]
    const = None
    if known:
        const = known[0].array
        for x in known[1:]:
            const = const + x.array
        const = Const(const.astype(np.float32), FLOAT)
    run = [x for x in parts if not isinstance(x, Const)]
    if not run:
        return const
    y = run[0]
    for x in run[1:]:
        y = binary(b, "add", y, x)
    if const is not None:
        y = binary(b, "add", y, const)
    shape = list(np.broadcast_shapes(tuple(y.shape), (1, 1, sq, skv)))
    if list(y.shape) != shape:
        y = binary(b, "add", y, Const(np.zeros(shape, np.float32), FLOAT))
    return b.value(y)
