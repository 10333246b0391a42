"""Functions the VXM has no instruction for, written in the ops it has (f32): ``sqrt``,
``log`` and ``pow``. Their error bounds are in docs/onnx.md's op table; the Sqrt, Log and
Pow node tests (tests/test_onnx_node.py) check them against onnx's reference.
"""

from __future__ import annotations

import math

import numpy as np

from lpu.models.onnx_emit import FLOAT, FLOATS, Builder, Const, Unsupported, Value, binary, carrier, cast, fill, unary

LN2 = math.log(2.0)
#: the range reduction's steps: x = m · 2^e with m in [1, 2) for every positive f32, subnormal
#: ones too (2^-149: 64 + 64 + 16 + 4 + 1 = 149 is reachable by the greedy steps)
_UP = (64, 32, 16, 8, 4, 2, 1)
_DOWN = (64, 64, 32, 16, 8, 4, 2, 1)


def _c(v: float) -> Const:
    return Const(np.array(v, np.float32), FLOAT)


def _select(b: Builder, c: Value, x, y) -> Value:
    x, y = b.value(x), b.value(y)
    shape = np.broadcast_shapes(c.shape, x.shape, y.shape)
    return b.emit(f"select {c.name}, {x.name}, {y.name}", shape, x.elem, x.onnx)


def sqrt(b: Builder, x: Value) -> Value:
    """``x · rsqrt(x)`` (two roundings: within 1.5 ulp); ±0 and +inf as they are."""
    y = binary(b, "mul", x, unary(b, "rsqrt", x))
    y = _select(b, binary(b, "eq", x, _c(0.0)), x, y)
    return _select(b, binary(b, "eq", x, b.value(_c(math.inf))), x, y)


def log(b: Builder, x: Value) -> Value:
    """Natural log in f32: ``x = m·2^e`` by greedy power-of-two steps (compare, scale, count),
    ``m`` moved to [√½, √2), then ``log m = 2·atanh(z)``, ``z = (m−1)/(m+1)``, by its series to
    z⁹ (|z| < 0.172: truncation under 1e-9); ``e·ln 2`` added. 0 → −inf, negative → NaN,
    +inf → +inf, NaN → NaN."""
    m, e = x, None
    for k in _UP:  # large values down below 2
        big = binary(b, "ge", m, _c(2.0 ** k))
        m = _select(b, big, binary(b, "mul", m, _c(2.0 ** -k)), m)
        step = binary(b, "mul", big, _c(float(k)))
        e = step if e is None else binary(b, "add", e, step)
    for k in _DOWN:  # small values up to [1, 2)
        small = binary(b, "lt", m, _c(2.0 ** (1 - k)))
        m = _select(b, small, binary(b, "mul", m, _c(2.0 ** k)), m)
        e = binary(b, "sub", e, binary(b, "mul", small, _c(float(k))))
    high = binary(b, "gt", m, _c(math.sqrt(2.0)))
    m = _select(b, high, binary(b, "mul", m, _c(0.5)), m)
    e = binary(b, "add", e, high)
    z = binary(b, "mul", binary(b, "sub", m, _c(1.0)), unary(b, "recip", binary(b, "add", m, _c(1.0))))
    z2 = binary(b, "mul", z, z)
    s = _c(2.0 / 9.0)
    for k in (7, 5, 3, 1):  # 2·(z + z³/3 + z⁵/5 + z⁷/7 + z⁹/9), by Horner in z²
        s = binary(b, "add", binary(b, "mul", z2, s), _c(2.0 / k))
    y = binary(b, "add", binary(b, "mul", s, z), binary(b, "mul", e, _c(LN2)))
    y = _select(b, binary(b, "eq", x, _c(0.0)), b.value(_c(-math.inf)), y)
    y = _select(b, binary(b, "lt", x, _c(0.0)), b.value(_c(math.nan)), y)
    return _select(b, binary(b, "eq", x, b.value(_c(math.inf))), x, y)


def _small_power(b: Builder, x: Value, n: int) -> Value:
    """``x^n`` by squaring, for an integer 1 <= n <= 16."""
    result, base = None, x
    while n:
        if n & 1:
            result = base if result is None else binary(b, "mul", result, base)
        n >>= 1
        if n:
            base = binary(b, "mul", base, base)
    return result


def pow_(b: Builder, x, y) -> Value:
    """``x^y``: a constant exponent 0, ±0.5 or an integer up to 16 as products (and a recip);
    otherwise ``exp(y·log|x|)``, negative with an odd integer ``y`` for negative ``x``, NaN for a
    negative ``x`` and a non-integer ``y``, 1 for ``y = 0``. Integer types compute in f32 and
    round back (exact while the result has at most 24 bits)."""
    out_t = x.onnx
    if out_t not in FLOATS and out_t not in (2, 3, 5, 6, 7):
        raise Unsupported(f"Pow of {out_t}")
    xv = cast(b, b.value(x), "f32", FLOAT)
    if isinstance(y, Const) and y.array.size and np.all(y.array == y.array.reshape(-1)[0]) and \
            tuple(np.broadcast_shapes(x.shape, y.shape)) == tuple(x.shape):
        p = float(y.array.reshape(-1)[0])
        r = None
        if p == 0:
            r = fill(b, xv.shape, 1.0, xv)
        elif p == 0.5:
            r = sqrt(b, xv)
        elif p == -0.5:
            r = unary(b, "rsqrt", xv)
        elif p == int(p) and 1 <= abs(p) <= 16:
            r = _small_power(b, xv, int(abs(p)))
            if p < 0:
                r = unary(b, "recip", r)
        if r is not None:
            return _back(b, r, out_t)
    yv = cast(b, b.value(y), "f32", FLOAT)
    ax = unary(b, "abs", xv)
    r = unary(b, "exp", binary(b, "mul", yv, log(b, ax)))
    yi = cast(b, cast(b, yv, "i32"), "f32", FLOAT)
    whole = binary(b, "eq", yi, yv)
    half = binary(b, "mul", yi, _c(0.5))
    odd = binary(b, "ne", cast(b, cast(b, half, "i32"), "f32", FLOAT), half)
    negative = _select(b, odd, unary(b, "neg", r), r)
    negative = _select(b, whole, negative, b.value(_c(math.nan)))
    r = _select(b, binary(b, "lt", xv, _c(0.0)), negative, r)
    r = _select(b, binary(b, "eq", yv, _c(0.0)), b.value(_c(1.0)), r)
    return _back(b, r, out_t)


def _back(b: Builder, r: Value, t: int) -> Value:
    return cast(b, r, carrier(t), t)
