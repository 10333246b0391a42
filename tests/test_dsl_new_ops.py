"""The ops a decoder needs beyond the first set: comparisons, select, reduce_min, argmax/argmin,
softmax and reductions over any axis, batched matmul, rope, erf, exact gelu, sign. Each against
independent numpy (or math.erf), the composites bit-identical before and after df-decompose,
hypothesis over shapes, and the verifier's exact messages."""

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpu.dsl import numerics as N
from lpu.dsl import types as T
from lpu.dsl.interpreter import random_input, run_function
from lpu.dsl.passes import run_pipeline
from lpu.dsl.printer import print_module
from dsl_helpers import errors, func, parse

BF16 = np.dtype(ml_dtypes.bfloat16)
DT = {"i8": np.int8, "i16": np.int16, "i32": np.int32, "f16": np.float16, "bf16": BF16, "f32": np.float32}


def ty(shape, elem):
    return "tensor<" + "".join(f"{d}x" for d in shape) + elem + ">"


def run_both(text, inputs, name="f"):
    """The function's results, and the same after df-decompose,canonicalize,cse (bit-identical)."""
    m = parse(text)
    before = run_function(m, name, inputs)
    run_pipeline(m, "df-decompose,canonicalize,cse,dce")
    after = run_function(m, name, inputs)
    for a, b in zip(before, after):
        assert a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8)), print_module(m)
    return before, m


def special(shape, elem, rng):
    """Random values with ties, zeros of both signs and (floats) NaN and infinities."""
    if elem in ("i8", "i16", "i32"):
        return rng.integers(-3, 4, size=shape).astype(DT[elem])
    v = rng.choice(np.array([-2, -1, -0.0, 0, 0.5, 1, 3, np.nan, np.inf, -np.inf]), size=shape)
    v = np.where(rng.random(shape) < 0.5, rng.standard_normal(shape), v)
    return v.astype(np.float32).astype(DT[elem])


@pytest.mark.parametrize("elem", ["i8", "i32", "f16", "bf16", "f32"])
def test_comparisons_broadcast_and_give_one_or_zero(elem):
    rng = np.random.default_rng(1)
    a, b = special((3, 4), elem, rng), special((1, 4), elem, rng)
    body = "\n".join(f"%{k} = {k} %a, %b" for k in ("eq", "ne", "lt", "le", "gt", "ge"))
    t = ty((3, 4), elem)
    text = func(body + "\n%lit = lt %a, 1\n%lit2 = ge 1, %a\nreturn %eq, %ne, %lt, %le, %gt, %ge, %lit, %lit2",
                f"(%a: {t}, %b: {ty((1, 4), elem)}) -> {', '.join([t] * 8)}")
    (got, _m) = run_both(text, {"a": a, "b": b})
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    want = [fa == fb, fa != fb, fa < fb, fa <= fb, fa > fb, fa >= fb, fa < 1, 1 >= fa]
    for g, w in zip(got, want):
        assert g.dtype == DT[elem] and np.array_equal(g.astype(np.float64), w.astype(np.float64))


def test_select_is_numpys_where_with_any_condition_type():
    rng = np.random.default_rng(2)
    cond = special((4, 1), "f32", rng)  # NaN is nonzero
    a, b = rng.standard_normal((1, 5)).astype(np.float16), rng.standard_normal((4, 5)).astype(np.float16)
    i = rng.integers(-1, 2, size=(5,)).astype(np.int32)
    text = func("%s = select %c, %a, %b\n%t = select %i, %b, %a\nreturn %s, %t",
                "(%c: tensor<4x1xf32>, %a: tensor<1x5xf16>, %b: tensor<4x5xf16>, %i: tensor<5xi32>) -> "
                "tensor<4x5xf16>, tensor<4x5xf16>")
    (s, t), _m = run_both(text, {"c": cond, "a": a, "b": b, "i": i})
    assert np.array_equal(s, np.where(cond != 0, a, b)) and np.array_equal(t, np.where(i != 0, b, a))
    # a number for either value: a constant of the values' type (the condition's type does not matter)
    text = func("%s = select %i, %b, -30000.0\n%t = select %i, 2, %b\nreturn %s, %t",
                "(%i: tensor<5xi32>, %b: tensor<4x5xf16>) -> tensor<4x5xf16>, tensor<4x5xf16>")
    (s, t), m = run_both(text, {"b": b, "i": i})
    assert np.array_equal(s, np.where(i != 0, b, np.float16(-30000))) and np.array_equal(t, np.where(i != 0, 2, b))
    assert "%s = select %i, %b, -30000.0 : tensor<4x5xf16>" in print_module(parse(text))


@pytest.mark.parametrize("elem", ["i8", "i32", "f16", "bf16", "f32"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_reductions_and_argmax_over_any_axis(elem, axis):
    rng = np.random.default_rng(3 + axis)
    x = special((4, 3, 6), elem, rng)
    x[1, :, :] = x[1, 0, 0]  # a constant slab: ties everywhere
    if elem[0] == "f":
        x[2, 1, :] = np.nan  # an all-NaN row
    shape = list(x.shape)
    red = list(shape)
    red[axis] = 1
    acc = "i32" if elem[0] == "i" else "f32"
    text = func(f"%s = reduce_sum %x {{axis = {axis}}}\n%mx = reduce_max %x {{axis = {axis}}}\n"
                f"%mn = reduce_min %x {{axis = {axis}}}\n%am = argmax %x {{axis = {axis}}}\n"
                f"%an = argmin %x {{axis = {axis}}}\nreturn %s, %mx, %mn, %am, %an",
                f"(%x: {ty(shape, elem)}) -> {ty(red, acc)}, {ty(red, elem)}, {ty(red, elem)}, {ty(red, 'i32')}, "
                f"{ty(red, 'i32')}")
    (s, mx, mn, am, an), _m = run_both(text, {"x": x})
    assert np.array_equal(mx, np.max(x, axis=axis, keepdims=True), equal_nan=True)
    assert np.array_equal(mn, np.min(x, axis=axis, keepdims=True), equal_nan=True)
    assert am.dtype == np.int32 and np.array_equal(am, np.argmax(x.astype(np.float64), axis=axis, keepdims=True))
    assert np.array_equal(an, np.argmin(x.astype(np.float64), axis=axis, keepdims=True))
    if elem[0] == "i":
        assert np.array_equal(s, np.sum(x.astype(np.int64), axis=axis, keepdims=True).astype(np.int32))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_softmax_over_any_axis(axis):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 5)).astype(np.float16)
    t = ty(x.shape, "f16")
    (y,), _m = run_both(func(f"%y = softmax %x {{axis = {axis}}}\nreturn %y", f"(%x: {t}) -> {t}"), {"x": x})
    e = np.exp(x.astype(np.float64) - x.astype(np.float64).max(axis=axis, keepdims=True))
    want = e / e.sum(axis=axis, keepdims=True)
    assert np.allclose(y.astype(np.float64), want, atol=2e-3) and np.allclose(y.astype(np.float64).sum(axis), 1,
                                                                                  atol=1e-2)
    assert np.array_equal(y, N.softmax(x, "f16", axis))


@pytest.mark.parametrize("elem", ["i8", "f16", "bf16"])
@pytest.mark.parametrize("a_shape,b_shape,out", [
    ((3, 3, 64), (3, 64, 256), (3, 3, 256)),   # grouped-query attention: q per kv head × its keys
    ((2, 1, 5, 8), (1, 3, 8, 4), (2, 3, 5, 4)),  # batch dimensions broadcast, numpy style
    ((1, 2, 8), (4, 8, 3), (4, 2, 3)),
    ((4, 6), (4, 6, 2), (4, 4, 2)),             # a rank-2 left operand is one batch, broadcast
])
def test_batched_matmul_is_numpys(elem, a_shape, b_shape, out):
    rng = np.random.default_rng(5)
    a, b = (random_input(T.parse_type(ty(s, elem)), rng) for s in (a_shape, b_shape))
    acc = "i32" if elem == "i8" else "f32"
    (y,), _m = run_both(func("%y = matmul %a, %b\nreturn %y",
                             f"(%a: {ty(a_shape, elem)}, %b: {ty(b_shape, elem)}) -> {ty(out, acc)}"), {"a": a, "b": b})
    if elem == "i8":
        want = np.matmul(a.astype(np.int64), b.astype(np.int64)).astype(np.int32)
    else:
        want = np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)
    assert y.shape == out and np.array_equal(y, want)


def _rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


@pytest.mark.parametrize("elem", ["f16", "bf16", "f32"])
def test_rope_is_hugging_faces_rotate_half_and_the_interleaved_pairs(elem):
    rng = np.random.default_rng(6)
    dt = DT[elem]
    x = rng.standard_normal((3, 2, 8)).astype(dt)
    pos = np.arange(3)[:, None, None]
    inv = 10000.0 ** (-np.arange(4) / 4)
    cos, sin = np.cos(pos * inv).astype(dt), np.sin(pos * inv).astype(dt)  # [3, 1, 4]: rows of a table
    text = func("%h = rope %x, %c, %s\n%i = rope %x, %c, %s {style = \"interleaved\"}\nreturn %h, %i",
                f"(%x: {ty(x.shape, elem)}, %c: {ty(cos.shape, elem)}, %s: {ty(sin.shape, elem)}) -> "
                f"{ty(x.shape, elem)}, {ty(x.shape, elem)}")
    (h, i), _m = run_both(text, {"x": x, "c": cos, "s": sin})
    c2, s2 = np.concatenate([cos, cos], -1), np.concatenate([sin, sin], -1)
    # HF's apply_rotary_pos_emb in the element type, each op rounded (x·cos + rotate_half(x)·sin)
    assert np.array_equal(h, (x * c2 + _rotate_half(x) * s2).astype(dt))
    u, v = x[..., 0::2], x[..., 1::2]
    want = np.empty_like(x)
    want[..., 0::2] = (u * cos - v * sin).astype(dt)
    want[..., 1::2] = (v * cos + u * sin).astype(dt)
    assert np.array_equal(i, want)


def test_erf_against_math_erf():
    x = np.concatenate([np.linspace(-6, 6, 1_200_001), np.random.default_rng(7).standard_normal(100_000) * 2])
    x = x.astype(np.float32)
    got = N.erf(x, "f32").astype(np.float64)
    want = np.array([math.erf(float(v)) for v in x])
    err = np.abs(got - want)
    assert err.max() <= N.ERF_MAX_ERROR
    assert 1.7e-7 < err.max()  # the figure docs/dataflow.md states (1.80e-7)
    assert N.erf(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], np.float32), "f32").tolist()[1:] == [1, -1, 0, 0]
    assert np.isnan(N.erf(np.array([np.nan], np.float32), "f32")[0])


@pytest.mark.parametrize("elem,tol", [("f16", 2 ** -10), ("bf16", 2 ** -7), ("f32", 3e-7)])
def test_erf_and_exact_gelu_ops(elem, tol):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((4, 50)) * 3).astype(DT[elem])
    t = ty(x.shape, elem)
    text = func("%e = erf %x\n%g = gelu %x {approximate = \"none\"}\n%t = gelu %x\n%d = gelu %x {approximate = "
                "\"tanh\"}\nreturn %e, %g, %t, %d", f"(%x: {t}) -> {t}, {t}, {t}, {t}")
    (e, g, tanh, d), _m = run_both(text, {"x": x})
    xf = x.astype(np.float64)
    erf = np.vectorize(math.erf)
    assert np.allclose(e.astype(np.float64), erf(xf), atol=tol, rtol=0)
    exact = 0.5 * xf * (1 + erf(xf / math.sqrt(2)))
    assert np.allclose(g.astype(np.float64), exact, atol=tol * 4, rtol=tol)
    assert np.array_equal(tanh, d) and np.array_equal(tanh, N.gelu(x, elem))  # the default stays the tanh form
    assert not np.array_equal(g, tanh)


@pytest.mark.parametrize("elem", ["i8", "i32", "f16", "bf16", "f32"])
def test_sign(elem):
    x = special((40,), elem, np.random.default_rng(9))
    t = ty(x.shape, elem)
    (s,), _m = run_both(func("%s = sign %x\nreturn %s", f"(%x: {t}) -> {t}"), {"x": x})
    want = np.nan_to_num(np.sign(x.astype(np.float64)), nan=0.0)  # NaN: 0
    assert s.dtype == DT[elem] and np.array_equal(s.astype(np.float64), want)


@st.composite
def shapes_and_axes(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    return shape, draw(st.integers(-rank, rank - 1)), draw(st.sampled_from(["i8", "f16", "bf16", "f32"]))


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(shapes_and_axes(), st.integers(0, 2 ** 32 - 1))
def test_reductions_argmax_softmax_over_random_shapes(case, seed):
    shape, axis, elem = case
    rng = np.random.default_rng(seed)
    x = special(shape, elem, rng)
    red = list(shape)
    red[axis] = 1
    outs = [("reduce_min", ty(red, elem)), ("argmax", ty(red, "i32")), ("argmin", ty(red, "i32"))]
    if elem != "i8":
        outs.append(("softmax", ty(shape, elem)))
    body = "\n".join(f"%r{k} = {op} %x {{axis = {axis}}}" for k, (op, _t) in enumerate(outs))
    text = func(body + "\nreturn " + ", ".join(f"%r{k}" for k in range(len(outs))),
                f"(%x: {ty(shape, elem)}) -> " + ", ".join(t for _op, t in outs))
    got, _m = run_both(text, {"x": x})
    xf = x.astype(np.float64)
    assert np.array_equal(got[0], np.min(x, axis=axis, keepdims=True), equal_nan=True)
    assert np.array_equal(got[1], np.argmax(xf, axis=axis, keepdims=True))
    assert np.array_equal(got[2], np.argmin(xf, axis=axis, keepdims=True))


@pytest.mark.parametrize("body,sig,message", [
    ("%y = select %c, %x, %w\nreturn %y", "(%c: tensor<4xi8>, %x: tensor<4xf16>, %w: tensor<4xf32>) -> tensor<4xf16>",
     "2:8: 'df.select' op the values have different element types: f16 and f32"),
    ("%y = select %c, %x, %x\nreturn %y", "(%c: tensor<3xi8>, %x: tensor<4xf16>) -> tensor<4xf16>",
     "2:8: 'df.select' op operand shapes (3,) and (4,) do not broadcast"),
    ("%y = lt %x, %w\nreturn %y", "(%x: tensor<4xf16>, %w: tensor<4xi8>) -> tensor<4xf16>",
     "2:8: 'df.lt' op operands have different element types: f16 and i8"),
    ("%y = argmax %x {axis = 2}\nreturn %y", "(%x: tensor<4x3xf16>) -> tensor<4x1xi32>",
     "2:8: 'df.argmax' op 'axis' 2 is out of range for rank 2"),
    ("%y = softmax %x {axis = -3}\nreturn %y", "(%x: tensor<4x3xf16>) -> tensor<4x3xf16>",
     "2:8: 'df.softmax' op 'axis' -3 is out of range for rank 2"),
    ("%y = matmul %x, %w\nreturn %y", "(%x: tensor<2x3x4xf16>, %w: tensor<3x4x5xf16>) -> tensor<2x3x5xf32>",
     "2:8: 'df.matmul' op batch dimensions (2,) (left) and (3,) (right) do not broadcast"),
    ("%y = matmul %x, %w\nreturn %y", "(%x: tensor<4xf16>, %w: tensor<3x4x5xf16>) -> tensor<3x5xf32>",
     "2:8: 'df.matmul' op a batched matmul's left operand has rank 2 or more ([..., m, k]), not rank 1"),
    ("%y = matmul %x, %w\nreturn %y", "(%x: tensor<2x3x4xf16>, %w: tensor<2x5x5xf16>) -> tensor<2x3x5xf32>",
     "2:8: 'df.matmul' op contraction dimensions differ: 4 (left) and 5 (right)"),
    ("%y = rope %x, %c, %c\nreturn %y", "(%x: tensor<2x7xf16>, %c: tensor<1x3xf16>) -> tensor<2x7xf16>",
     "2:8: 'df.rope' op rotates pairs: the last dimension must be even, not 7"),
    ("%y = rope %x, %c, %c\nreturn %y", "(%x: tensor<2x8xf16>, %c: tensor<3x4xf16>) -> tensor<2x8xf16>",
     "2:8: 'df.rope' op cos of shape (3, 4) does not broadcast to (2, 4) (the input's pairs)"),
    ("%y = rope %x, %c, %c\nreturn %y", "(%x: tensor<2x8xf16>, %c: tensor<4xf32>) -> tensor<2x8xf16>",
     "2:8: 'df.rope' op cos must have the element type of the input (f16), not f32"),
    ("%y = rope %x, %c, %c {style = \"full\"}\nreturn %y", "(%x: tensor<2x8xf16>, %c: tensor<4xf16>) -> "
     "tensor<2x8xf16>", "2:8: 'df.rope' op 'style' is \"half\" or \"interleaved\", not 'full'"),
    ("%y = gelu %x {approximate = \"erf\"}\nreturn %y", "(%x: tensor<4xf16>) -> tensor<4xf16>",
     "2:8: 'df.gelu' op 'approximate' is \"tanh\" or \"none\", not 'erf'"),
    ("%y = gelu %x {approximate = 1}\nreturn %y", "(%x: tensor<4xf16>) -> tensor<4xf16>",
     "2:17: 'approximate' must be a string"),
    ("%y = erf %x\nreturn %y", "(%x: tensor<4xi8>) -> tensor<4xi8>",
     "2:8: 'df.erf' op 'erf' needs a float element type (f16, bf16 or f32), not i8"),
    ("%y = select 1, %x, %x\nreturn %y", "(%x: tensor<4xf16>) -> tensor<4xf16>",
     "2:15: 'df.select' takes no number operand (only the binary ops do: add, sub, mul, max, min, eq, ne, lt, "
     "le, gt, ge; and select's values)"),
    ("%y = select %x, 1.0, 2\nreturn %y", "(%x: tensor<4xf16>) -> tensor<4xf16>",
     "2:8: 'df.select' needs a value operand beside its numbers"),
    ("%y = neg 1\nreturn %x", "(%x: tensor<4xf16>) -> tensor<4xf16>",
     "2:12: 'df.neg' takes no number operand (only the binary ops do: add, sub, mul, max, min, eq, ne, lt, "
     "le, gt, ge; and select's values)"),
])
def test_verifier_messages(body, sig, message):
    assert errors(func(body, sig)) == [message]


def test_new_ops_round_trip_through_the_printer():
    text = func("%e = erf %x\n%g = gelu %e {approximate = \"none\"}\n%c = ge %g, 0.5\n%s = select %c, %g, %x\n"
                "%a = argmax %s {axis = 0}\n%r = rope %x, %x, %x {style = \"interleaved\"}\n%m = reduce_min %r\n"
                "%sm = softmax %r {axis = 0}\n%sg = sign %sm\nreturn %sg",
                "(%x: tensor<4x4xf16>) -> tensor<4x4xf16>")
    text = text.replace("%r = rope %x, %x, %x", "%h = slice %x {offsets = [0, 0], sizes = [4, 2]}\n  "
                        "%r = rope %x, %h, %h")
    m = parse(text)
    printed = print_module(m)
    assert "%c = ge %g, 0.5 : tensor<4x4xf16>" in printed and "{style = \"interleaved\"}" in printed
    again = parse(printed)
    assert again.is_structurally_equivalent(m) and print_module(again) == printed
