"""The numerics of every ``df`` op on numpy arrays: what the machine computes, bit for bit where
the machine is exact (integers), and with one stated rounding where it is not (floats).

Rules (docs/dataflow.md, "Numerics"):
- float elementwise ops compute in float64 and round once to the element type, to nearest
  even (bf16 rounds through f32, as ml_dtypes does);
- integer elementwise ops wrap in the element type (two's complement);
- matmul and reduce_sum accumulate i8/i16/i32 exactly and wrap to i32; f16/bf16/f32 in
  float64, rounded once to f32;
- conversions to an integer type round to nearest even and saturate (NaN becomes 0);
- composite ops (softmax, layernorm, rmsnorm, gelu, silu, erf, sign, argmax, argmin, rope)
  are *defined* by the primitive sequence here, which ``df-decompose`` writes out op for op,
  so both agree bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from lpu.dsl.types import ACCUMULATOR, FLOATS, INTS, dtype

F64 = np.float64


def _round(x: np.ndarray, elem: str) -> np.ndarray:
    if elem == "bf16":
        return np.asarray(x, dtype=np.float32).astype(dtype(elem))
    return np.asarray(x).astype(dtype(elem))


def _wrap(x: np.ndarray, elem: str) -> np.ndarray:
    return np.asarray(x, dtype=np.int64).astype(dtype(elem))


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(F64)


BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "max": np.maximum, "min": np.minimum,
    # comparisons: 1 where the relation holds, else 0, in the operands' type (as cmp.* do); any
    # relation with NaN is false, so ``ne`` is true
    "eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
    "ge": np.greater_equal,
}


def binary(kind: str, a: np.ndarray, b: np.ndarray, elem: str) -> np.ndarray:
    fn = BINARY[kind]
    if elem in FLOATS:
        return _round(fn(_f64(a), _f64(b)), elem)
    return _wrap(fn(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)), elem)


def _gelu_tanh(x):  # the tanh form of GELU; only its primitive sequence below is normative
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


UNARY_FLOAT = {
    "exp": np.exp,
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "rsqrt": lambda x: 1.0 / np.sqrt(x),
    "recip": lambda x: 1.0 / x,
}
UNARY_ANY = {
    "neg": np.negative,
    "abs": np.abs,
    "relu": lambda x: np.maximum(x, 0),
}


def unary(kind: str, x: np.ndarray, elem: str, approximate: str = "tanh") -> np.ndarray:
    if kind == "gelu":
        return gelu(x, elem) if approximate == "tanh" else gelu_exact(x, elem)
    if kind in COMPOSITES:
        return COMPOSITES[kind](x, elem)
    if elem in FLOATS:
        fn = UNARY_FLOAT.get(kind) or UNARY_ANY[kind]
        with np.errstate(all="ignore"):
            return _round(fn(_f64(x)), elem)
    return _wrap(UNARY_ANY[kind](np.asarray(x, dtype=np.int64)), elem)


def convert(x: np.ndarray, src: str, dst: str) -> np.ndarray:
    """``cast``: floats round to nearest even; into an integer type, round then saturate."""
    if dst in FLOATS:
        return _round(_f64(x), dst)
    info = np.iinfo(dtype(dst))
    v = _f64(x) if src in FLOATS else np.asarray(x, dtype=np.int64)
    if src in FLOATS:
        v = np.nan_to_num(np.rint(v), nan=0.0, posinf=info.max, neginf=info.min)
    return np.clip(v, info.min, info.max).astype(dtype(dst))


def quantize(x: np.ndarray, scale: float, zero_point: int, dst: str) -> np.ndarray:
    """q = saturate(round_half_even(x / scale) + zero_point), computed in float64."""
    info = np.iinfo(dtype(dst))
    q = np.rint(_f64(x) / scale) + zero_point
    q = np.nan_to_num(q, nan=0.0, posinf=info.max, neginf=info.min)
    return np.clip(q, info.min, info.max).astype(dtype(dst))


def dequantize(q: np.ndarray, scale: float, zero_point: int, dst: str) -> np.ndarray:
    """x = (q - zero_point) * scale, computed in float64, rounded once."""
    return _round((np.asarray(q, dtype=np.int64) - zero_point).astype(F64) * scale, dst)


def select(cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` where ``cond`` is nonzero (NaN is nonzero), else ``b``; broadcasting."""
    return np.where(np.asarray(cond) != 0, a, b).astype(np.asarray(a).dtype)


def matmul(a: np.ndarray, b: np.ndarray, elem: str) -> np.ndarray:
    """Rank-2 right operand: ``[..., K] × [K, N]``; rank 3 or more: numpy's batched matmul
    (``[..., m, k] × [..., k, n]``, batch dimensions broadcast)."""
    acc = ACCUMULATOR[elem]
    if elem in INTS:
        return _wrap(np.matmul(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)), acc)
    return _round(np.matmul(_f64(a), _f64(b)), acc)


def reduce_sum(x: np.ndarray, axis: int, elem: str) -> np.ndarray:
    acc = ACCUMULATOR[elem]
    if elem in INTS:
        return _wrap(np.sum(np.asarray(x, dtype=np.int64), axis=axis, keepdims=True), acc)
    return _round(np.sum(_f64(x), axis=axis, keepdims=True), acc)


def reduce_max(x: np.ndarray, axis: int, elem: str) -> np.ndarray:
    return np.max(x, axis=axis, keepdims=True).astype(dtype(elem))


def reduce_min(x: np.ndarray, axis: int, elem: str) -> np.ndarray:
    return np.min(x, axis=axis, keepdims=True).astype(dtype(elem))


REDUCE = {"sum": None, "max": reduce_max, "min": reduce_min}


def reduce(kind: str, x: np.ndarray, axis: int, elem: str) -> np.ndarray:
    return reduce_sum(x, axis, elem) if kind == "sum" else REDUCE[kind](x, axis, elem)


def scalar(value: float, elem: str) -> np.ndarray:
    """A rank-0 constant of the element type (how decompositions spell 1/N, eps, 0.5...)."""
    return convert(np.asarray(value, dtype=F64), "f32", elem) if elem in FLOATS else \
        np.asarray(value, dtype=dtype(elem))


# --- composites: each line is one op of the decomposition (lpu.dsl.passes.decompose) --------
def softmax(x, elem, axis: int = -1):
    m = reduce_max(x, axis, elem)
    e = unary("exp", binary("sub", x, m, elem), elem)
    s = reduce_sum(e, axis, elem)                    # f32 lane sums (the MXM with ones)
    r = unary("recip", s, "f32")
    return binary("mul", e, convert(r, "f32", elem), elem)


def iota(shape: tuple, axis: int) -> np.ndarray:
    """0, 1, ... along ``axis`` of ``shape`` (size 1 elsewhere), i32: the indices argmax picks."""
    n = shape[axis]
    view = [1] * len(shape)
    view[axis] = n
    return np.arange(n, dtype=np.int32).reshape(view)


def argmax(x, axis: int, elem: str, kind: str = "max"):
    """The first index of the maximum (``kind="min"``: minimum) along ``axis``, i32: the
    elements equal to the row's maximum (and, for floats, the NaNs: a NaN row's maximum is NaN,
    which equals nothing) get their index, the others the axis length, and the least wins.
    This is numpy's argmax/argmin, a NaN counting as the maximum/minimum."""
    axis = axis % x.ndim
    m = reduce(kind, x, axis, elem)
    hit = binary("eq", x, m, elem)
    if elem in FLOATS:
        hit = binary("max", hit, binary("ne", x, x, elem), elem)
    idx = select(hit, iota(x.shape, axis), scalar(x.shape[axis], "i32"))
    return reduce_min(idx, axis, "i32")


def argmin(x, axis: int, elem: str):
    return argmax(x, axis, elem, "min")


def layernorm(x, gamma, beta, eps, elem):
    inv_n = scalar(1.0 / x.shape[-1], "f32")
    mean = binary("mul", reduce_sum(x, -1, elem), inv_n, "f32")
    d = binary("sub", x, convert(mean, "f32", elem), elem)
    var = binary("mul", reduce_sum(binary("mul", d, d, elem), -1, elem), inv_n, "f32")
    r = unary("rsqrt", binary("add", var, scalar(eps, "f32"), "f32"), "f32")
    n = binary("mul", d, convert(r, "f32", elem), elem)
    return binary("add", binary("mul", n, gamma, elem), beta, elem)


def rmsnorm(x, gamma, eps, elem):
    inv_n = scalar(1.0 / x.shape[-1], "f32")
    ms = binary("mul", reduce_sum(binary("mul", x, x, elem), -1, elem), inv_n, "f32")
    r = unary("rsqrt", binary("add", ms, scalar(eps, "f32"), "f32"), "f32")
    return binary("mul", binary("mul", x, convert(r, "f32", elem), elem), gamma, elem)


GELU_C = math.sqrt(2 / math.pi)
GELU_K = 0.044715


def gelu(x, elem):
    x3 = binary("mul", binary("mul", x, x, elem), x, elem)
    u = binary("add", x, binary("mul", x3, scalar(GELU_K, elem), elem), elem)
    t = unary("tanh", binary("mul", u, scalar(GELU_C, elem), elem), elem)
    h = binary("mul", x, binary("add", t, scalar(1.0, elem), elem), elem)
    return binary("mul", h, scalar(0.5, elem), elem)


def silu(x, elem):
    return binary("mul", x, unary("sigmoid", x, elem), elem)


# erf, from exp, recip and arithmetic (the VXM has no erf), computed in f32, for a = |x|:
# - a < 1: the Taylor series (2/√π) a Σ (-1)^n a^(2n) / (n! (2n+1)), n = 0..9 (truncation under
#   1.6e-8), by Horner in a²;
# - a ≥ 1: Abramowitz & Stegun 7.1.26, 1 - (a1 t + ... + a5 t^5) e^(-a²), t = 1/(1 + p a)
#   (1.5e-7 in exact arithmetic; near 0 its 1 - ... cancels, hence the series there);
# and erf(x) = -erf(a) for x < 0. Against the true erf (math.erf), at most ERF_MAX_ERROR
# absolute: 1.80e-7 at x = 1.437, measured by tests/test_dsl_new_ops.py on 1.2 million points
# of [-6, 6] (beyond, the f32 result is ±1 exactly).
ERF_P = 0.3275911
ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
ERF_TAYLOR = tuple(2 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(10))
ERF_MAX_ERROR = 2e-7


def erf_f32(x):
    """erf of an f32 tensor, each op rounded to f32 (one op of the decomposition a line)."""
    f = "f32"
    a = unary("abs", x, f)
    z = binary("mul", a, a, f)
    p = scalar(ERF_TAYLOR[-1], f)
    for c in reversed(ERF_TAYLOR[:-1]):
        p = binary("add", binary("mul", p, z, f), scalar(c, f), f)
    small = binary("mul", p, a, f)                                           # a < 1
    t = unary("recip", binary("add", binary("mul", a, scalar(ERF_P, f), f), scalar(1.0, f), f), f)
    q = binary("mul", t, scalar(-ERF_A[4], f), f)                          # negated: the last step adds
    for c in (ERF_A[3], ERF_A[2], ERF_A[1], ERF_A[0]):
        q = binary("mul", binary("add", q, scalar(-c, f), f), t, f)
    e = unary("exp", unary("neg", z, f), f)
    large = binary("add", binary("mul", q, e, f), scalar(1.0, f), f)        # a >= 1
    y = select(binary("lt", a, scalar(1.0, f), f), small, large)
    return select(binary("lt", x, scalar(0.0, f), f), unary("neg", y, f), y)


def erf(x, elem):
    return convert(erf_f32(convert(x, elem, "f32")), "f32", elem)


GELU_SQRT1_2 = math.sqrt(0.5)


def gelu_exact(x, elem):
    """``0.5·x·(1 + erf(x/√2))``, all in f32 (1 + erf cancels: in bf16 it would lose the
    result for negative x), rounded once to the element type at the end."""
    xf = convert(x, elem, "f32")
    e = erf_f32(binary("mul", xf, scalar(GELU_SQRT1_2, "f32"), "f32"))
    h = binary("mul", xf, binary("add", e, scalar(1.0, "f32"), "f32"), "f32")
    return convert(binary("mul", h, scalar(0.5, "f32"), "f32"), "f32", elem)


def sign(x, elem):
    """-1, 0 or 1 of the element type: ``(x > 0) - (x < 0)``; 0 for NaN and for ±0."""
    zero = scalar(0, elem)
    return binary("sub", binary("gt", x, zero, elem), binary("lt", x, zero, elem), elem)


def _last(x, offset: int, size: int):
    return x[..., offset:offset + size]


def rope(x, cos, sin, elem, style: str = "half"):
    """Rotary embedding: each pair ``(u, v)`` of ``x`` becomes ``(u·c − v·s, v·c + u·s)``; pairs
    ``(i, i + d/2)`` (``"half"``) or ``(2i, 2i + 1)`` (``"interleaved"``), each op rounded to
    the element type (slices, reshapes and concats move elements exactly)."""
    d = x.shape[-1]
    h = d // 2
    if style == "half":
        u, v = _last(x, 0, h), _last(x, h, h)
    else:
        pairs = x.reshape(x.shape[:-1] + (h, 2))
        u, v = _last(pairs, 0, 1).reshape(x.shape[:-1] + (h,)), _last(pairs, 1, 1).reshape(x.shape[:-1] + (h,))
    y1 = binary("sub", binary("mul", u, cos, elem), binary("mul", v, sin, elem), elem)
    y2 = binary("add", binary("mul", v, cos, elem), binary("mul", u, sin, elem), elem)
    if style == "half":
        return np.concatenate([y1, y2], axis=-1)
    pairs = np.concatenate([y1.reshape(y1.shape + (1,)), y2.reshape(y2.shape + (1,))], axis=-1)
    return pairs.reshape(x.shape)


COMPOSITES = {"gelu": gelu, "silu": silu, "erf": erf, "sign": sign}
