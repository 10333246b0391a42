"""The numerics of every ``df`` op on numpy arrays: what the machine computes, bit for bit where
the machine is exact (integers), and with one stated rounding where it is not (floats).

Rules (docs/dataflow.md, "Numerics"):
- float elementwise ops compute in float64 and round once to the element type, to nearest
  even (bf16 rounds through f32, as ml_dtypes does);
- integer elementwise ops wrap in the element type (two's complement);
- matmul and reduce_sum accumulate i8/i16/i32 exactly and wrap to i32; f16/bf16/f32 in
  float64, rounded once to f32;
- conversions to an integer type round to nearest even and saturate (NaN becomes 0);
- composite ops (softmax, layernorm, rmsnorm, gelu, silu) are *defined* by the primitive
  sequence here, which ``df-decompose`` writes out op for op, so both agree bit for bit.
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


def unary(kind: str, x: np.ndarray, elem: str) -> np.ndarray:
    if kind in ("gelu", "silu"):
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


def matmul(a: np.ndarray, b: np.ndarray, elem: str) -> np.ndarray:
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


def scalar(value: float, elem: str) -> np.ndarray:
    """A rank-0 constant of the element type (how decompositions spell 1/N, eps, 0.5...)."""
    return convert(np.asarray(value, dtype=F64), "f32", elem) if elem in FLOATS else \
        np.asarray(value, dtype=dtype(elem))


# --- composites: each line is one op of the decomposition (lpu.dsl.passes.decompose) --------
def softmax(x, elem):
    m = reduce_max(x, -1, elem)
    e = unary("exp", binary("sub", x, m, elem), elem)
    s = reduce_sum(e, -1, elem)                      # f32 lane sums (the MXM with ones)
    r = unary("recip", s, "f32")
    return binary("mul", e, convert(r, "f32", elem), elem)


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


COMPOSITES = {"gelu": gelu, "silu": silu}
