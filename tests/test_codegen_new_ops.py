"""The general path on the decoder's new ops: comparisons, select, reduce_min, argmax/argmin,
reductions and softmax over any axis, batched matmul (grouped-query attention), rope (with its
cos/sin rows picked by a run-time position), erf, exact gelu, sign — compiled, linked, simulated
and compared with the reference interpreter (bit-identical where the VXM rounds as the
interpreter does, integers exactly, MXM sums within ``lpu.compile``'s tolerance), zero hazards,
every cycle count pinned in ``tests/codegen_new_ops_cycles.json`` (``LPU_RECORD_CYCLES=1``
rewrites it)."""

from __future__ import annotations

import json
import os

import ml_dtypes
import numpy as np
import pytest

from lpu.compile import matches, run_source

TYPES = ["i8", "i16", "i32", "f16", "bf16", "f32"]
DT = {"i8": np.int8, "i16": np.int16, "i32": np.int32, "f16": np.float16, "bf16": np.dtype(ml_dtypes.bfloat16),
      "f32": np.float32}
CYCLES_FILE = os.path.join(os.path.dirname(__file__), "codegen_new_ops_cycles.json")
CYCLES = json.load(open(CYCLES_FILE)) if os.path.exists(CYCLES_FILE) else {}
RECORD = os.environ.get("LPU_RECORD_CYCLES")
_current: list[str] = [""]


@pytest.fixture(autouse=True)
def _test_id(request):
    _current[0] = request.node.name
    yield
    if RECORD:
        with open(CYCLES_FILE, "w") as f:
            json.dump(dict(sorted(CYCLES.items())), f, indent=0)


def run(src: str, exact: bool = True, **inputs):
    out = run_source(src, "t.lpu", inputs=inputs or None, check=True)
    assert out.hazards == []
    if RECORD:
        CYCLES[_current[0]] = out.cycles
    else:
        assert out.cycles == CYCLES[_current[0]], "cycle count changed"
    got, want = out.result, out.reference
    if exact:
        assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()
    else:
        assert matches(got, want)
    return out


def ty(shape, elem):
    return "tensor<" + "".join(f"{d}x" for d in shape) + elem + ">"


def special(shape, elem, seed=0):
    """Values with ties, ±0 and (floats) NaN and infinities."""
    rng = np.random.default_rng(seed)
    if elem[0] == "i":
        return rng.integers(-3, 4, size=shape).astype(DT[elem])
    v = rng.choice(np.array([-2, -1, -0.0, 0, 0.5, 1, 3, np.nan, np.inf, -np.inf]), size=shape)
    return np.where(rng.random(shape) < 0.5, rng.standard_normal(shape), v).astype(np.float32).astype(DT[elem])


def prog(sig: str, body: str) -> str:
    return f'target "lpu-v1"\nfunc @main{sig} {{\n' + "\n".join("  " + l for l in body.strip().splitlines()) + "\n}\n"


@pytest.mark.parametrize("kind", ["eq", "ne", "lt", "le", "gt", "ge"])
@pytest.mark.parametrize("t", TYPES)
def test_comparisons(kind, t):
    # a row operand re-read for each row, a number operand, NaN and infinities in the floats
    src = prog(f"(%x: {ty((3, 330), t)}, %b: {ty((330,), t)}) -> {ty((3, 330), t)}",
               f"%y = {kind} %x, %b\n%z = {kind} %x, 1\n%w = add %y, %z\nreturn %w")
    run(src, x=special((3, 330), t, 1), b=special((330,), t, 2))


@pytest.mark.parametrize("cond", ["f16", "i32", "f32"])
def test_select_broadcasts_with_any_condition_type(cond):
    c = special((3, 1), cond, 3)
    if cond == "f32":
        c[0, 0] = 1e-30  # nonzero, though it would convert to an f16 zero
    src = prog(f"(%c: {ty((3, 1), cond)}, %x: {ty((3, 330), 'f16')}, %b: {ty((330,), 'f16')}) -> {ty((3, 330), 'f16')}",
               "%y = select %c, %x, %b\n%m = lt %x, %b\n%z = select %m, %y, %x\nreturn %z")
    x, b = special((3, 330), "f16", 4), special((330,), "f16", 5)
    out = run(src, c=c, x=x, b=b)
    y = np.where(c != 0, x, b)
    assert np.array_equal(out.result, np.where(x.astype(np.float64) < b, y, x), equal_nan=True)


@pytest.mark.parametrize("kind", ["reduce_sum", "reduce_max", "reduce_min"])
@pytest.mark.parametrize("t", ["i8", "f16", "f32"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_reductions_over_any_axis(kind, t, axis):
    shape = (3, 4, 330)
    red = list(shape)
    red[axis] = 1
    out_t = ("i32" if t == "i8" else "f32") if kind == "reduce_sum" else t
    src = prog(f"(%x: {ty(shape, t)}) -> {ty(red, out_t)}", f"%y = {kind} %x {{axis = {axis}}}\nreturn %y")
    x = special(shape, t, axis) if kind != "reduce_sum" else None
    # (integers exactly; a float maximum of +0 and -0 may be either zero: compared as values)
    run(src, exact=t == "i8", **({"x": x} if x is not None else {}))


@pytest.mark.parametrize("kind", ["argmax", "argmin"])
@pytest.mark.parametrize("t,axis", [("f16", -1), ("f16", 0), ("i8", -1), ("bf16", 1), ("f32", -1)])
def test_argmax_argmin(kind, t, axis):
    shape = (4, 3, 330)
    red = list(shape)
    red[axis] = 1
    x = special(shape, t, 7)
    x[1] = x[1, 0, 0]  # ties everywhere
    if t[0] == "f":
        x[2, 1, 5], x[3, 0, :] = np.nan, np.nan  # a NaN, and an all-NaN row
    src = prog(f"(%x: {ty(shape, t)}) -> {ty(red, 'i32')}", f"%y = {kind} %x {{axis = {axis}}}\nreturn %y")
    out = run(src, x=x)
    fn = np.argmax if kind == "argmax" else np.argmin
    assert np.array_equal(out.result, fn(x.astype(np.float64), axis=axis, keepdims=True))


@pytest.mark.parametrize("kind", ["argmax", "argmin"])
def test_f32_argmax_in_one_pass_keeps_numpys_first_index(kind):
    """The one-pass lowering of f32 rows (lower_reduce.argmax): ties within and across vectors,
    the best in a later vector at a lower lane, NaNs first, late and everywhere, infinities."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 1000)).astype(np.float32)
    best = np.inf if kind == "argmin" else -np.inf
    x[1, [700, 5, 325]] = -best  # three ties in three vectors: the first index wins
    x[2, 333], x[2, 12] = 9.0 * (1 if kind == "argmax" else -1), 9.0 * (1 if kind == "argmax" else -1)
    x[3, 999], x[3, 640] = np.nan, np.nan  # NaNs count as the best; the first wins
    x[4, 0] = np.nan
    x[5] = np.nan
    x[6] = best  # every element the worst possible: index 0
    x[7, [3, 900]] = -best, np.nan  # NaN beats infinity
    src = prog("(%x: tensor<8x1000xf32>) -> tensor<8x1xi32>", f"%y = {kind} %x\nreturn %y")
    out = run(src, x=x)
    fn = np.argmax if kind == "argmax" else np.argmin
    assert np.array_equal(out.result, fn(x, axis=-1, keepdims=True))


def test_greedy_sampling_over_a_vocabulary():
    """argmax over a vocabulary of 49,152 f32 logits (SmolLM2's): the next token on chip."""
    src = prog("(%l: tensor<1x49152xf32>) -> tensor<1x1xi32>", "%t = argmax %l\nreturn %t")
    logits = np.random.default_rng(8).standard_normal((1, 49152)).astype(np.float32)
    out = run(src, l=logits)
    assert out.result[0, 0] == np.argmax(logits)


@pytest.mark.parametrize("axis", [0, 1])
def test_softmax_over_any_axis(axis):
    src = prog("(%x: tensor<4x330xf16>) -> tensor<4x330xf16>", f"%y = softmax %x {{axis = {axis}}}\nreturn %y")
    run(src, exact=False)


@pytest.mark.parametrize("name,t,a,b", [
    ("gqa", "f16", (3, 3, 64), (3, 64, 256)),       # q per kv head x its keys: each batch one block of 64 rows
    ("broadcast", "i8", (2, 1, 5, 8), (1, 3, 8, 4)),  # batch dimensions broadcast, numpy style
    ("rank2_left", "bf16", (4, 40), (3, 40, 330)),   # one x for three weight matrices (two column blocks each)
    ("outer", "f16", (3, 2, 1), (3, 1, 7)),          # K = 1 in every batch
    ("dots", "bf16", (3, 2, 7), (3, 7, 1)),          # N = 1 in every batch
])
def test_batched_matmul(name, t, a, b):
    acc = "i32" if t == "i8" else "f32"
    out_shape = tuple(np.broadcast_shapes(a[:-2], b[:-2])) + (a[-2], b[-1])
    src = prog(f"(%a: {ty(a, t)}, %b: {ty(b, t)}) -> {ty(out_shape, acc)}", "%y = matmul %a, %b\nreturn %y")
    run(src, exact=t == "i8")


@pytest.mark.parametrize("name,heads,rows,w", [
    ("attention_output", (3, 3, 64), (1, 576), (576, 576)),  # SmolLM2's: nine heads' outputs, then wo
    ("two_rows", (2, 4, 32), (2, 128), (128, 400)),           # two tokens' heads, two column blocks
    ("one_head_a_row", (5, 48), (1, 240), (240, 64)),          # rows of x joined: five blocks of 48
])
def test_matmul_of_joined_heads_reads_each_head_where_it_is(name, heads, rows, w):
    """x = reshape of rows of fewer than 320 lanes (each a vector of its own) read only by a
    matmul: each row is a K block of its own (that many rows of W), no lane moves."""
    src = prog(f"(%h: {ty(heads, 'f16')}, %w: {ty(w, 'f16')}) -> {ty((rows[0], w[1]), 'f32')}",
               f"%x = reshape %h : {ty(rows, 'f16')}\n%y = matmul %x, %w : {ty((rows[0], w[1]), 'f32')}\nreturn %y")
    rng = np.random.default_rng(3)
    run(src, exact=False, h=rng.standard_normal(heads).astype(np.float16),
        w=(rng.standard_normal(w) / 8).astype(np.float16))


def test_batched_matmul_by_a_computed_transpose():
    """Keys kept as [kv head, position, d] and turned by the SXM into each batch's weights."""
    src = prog("(%q: tensor<3x3x64xf16>, %k: tensor<3x40x64xf16>) -> tensor<3x3x40xf32>",
               "%kt = transpose %k {perm = [0, 2, 1]}\n%s = matmul %q, %kt\nreturn %s")
    run(src, exact=False)


def test_grouped_query_attention_against_a_cache_in_sram(tmp_path, monkeypatch):
    """One decode step of 9 query heads over 3 kv heads: scores by batched matmul against the
    key cache (data), positions past the current one masked by select, softmax, the values'
    batched matmul."""
    rng = np.random.default_rng(9)
    kt = rng.standard_normal((3, 64, 16)).astype(np.float16)
    v = rng.standard_normal((3, 16, 64)).astype(np.float16)
    monkeypatch.chdir(tmp_path)
    np.save("gqa_kt.npy", kt)
    np.save("gqa_v.npy", v)
    src = '''target "lpu-v1"
data @kt : tensor<3x64x16xf16> = load("gqa_kt.npy")
data @v : tensor<3x16x64xf16> = load("gqa_v.npy")
data @iota : tensor<1x1x16xi32> = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
func @main(%q: tensor<3x3x64xf16>, %pos: tensor<i32>) -> tensor<3x3x64xf32> {
  %k = get @kt
  %s = matmul %q, %k
  %sh = cast %s : tensor<3x3x16xf16>
  %scaled = mul %sh, 0.125
  %i = get @iota
  %valid = le %i, %pos
  %masked = select %valid, %scaled, -30000.0
  %p = softmax %masked
  %vv = get @v
  %o = matmul %p, %vv
  return %o
}
'''
    run(src, exact=False, q=rng.standard_normal((3, 3, 64)).astype(np.float16), pos=np.asarray(9, np.int32))


@pytest.mark.parametrize("style", ["half", "interleaved"])
def test_rope_with_the_rows_of_cos_sin_tables_at_a_run_time_position(style, tmp_path, monkeypatch):
    pos = np.arange(8)[:, None]
    inv = 100000.0 ** (-np.arange(32) / 32)
    monkeypatch.chdir(tmp_path)
    np.save("rope_cos.npy", np.cos(pos * inv).astype(np.float16))
    np.save("rope_sin.npy", np.sin(pos * inv).astype(np.float16))
    src = f'''target "lpu-v1"
data @cos_t : tensor<8x32xf16> = load("rope_cos.npy")
data @sin_t : tensor<8x32xf16> = load("rope_sin.npy")
func @main(%x: tensor<3x64xf16>, %pos: tensor<i32>) -> tensor<3x64xf16> {{
  %ct = get @cos_t
  %st = get @sin_t
  %c = slice %ct, %pos {{offsets = [0, 0], sizes = [1, 32], step = [1, 0]}}
  %s = slice %st, %pos {{offsets = [0, 0], sizes = [1, 32], step = [1, 0]}}
  %y = rope %x, %c, %s {{style = "{style}"}}
  return %y
}}
'''
    run(src, pos=np.asarray(5, np.int32))


def test_rope_of_heads_reshaped_out_of_one_row_reads_them_where_they_are(tmp_path, monkeypatch):
    # [1, 576] -> [9, 64]: head h is lanes 64h.. of one of the row's two vectors, read by the
    # rope's own shifts (no trip of its own for the reshape); bit for bit the interpreter's,
    # also with infinities and NaNs in the other heads' lanes
    pos = np.arange(8)[:, None]
    inv = 100000.0 ** (-np.arange(32) / 32)
    monkeypatch.chdir(tmp_path)
    np.save("rope_cos.npy", np.cos(pos * inv).astype(np.float32))
    np.save("rope_sin.npy", np.sin(pos * inv).astype(np.float32))
    src = """target "lpu-v1"
data @cos_t : tensor<8x32xf32> = load("rope_cos.npy")
data @sin_t : tensor<8x32xf32> = load("rope_sin.npy")
func @main(%x: tensor<1x576xf32>, %pos: tensor<i32>) -> tensor<9x64xf32> {
  %ct = get @cos_t
  %st = get @sin_t
  %c = slice %ct, %pos {offsets = [0, 0], sizes = [1, 32], step = [1, 0]}
  %s = slice %st, %pos {offsets = [0, 0], sizes = [1, 32], step = [1, 0]}
  %h = reshape %x : tensor<9x64xf32>
  %y = rope %h, %c, %s {style = "half"}
  return %y
}
"""
    x = np.random.default_rng(4).standard_normal((1, 576)).astype(np.float32)
    x[0, 70:73] = [np.inf, -np.inf, np.nan]
    run(src, x=x, pos=np.asarray(6, np.int32))


@pytest.mark.parametrize("t", ["f16", "bf16", "f32"])
@pytest.mark.parametrize("op", ["erf", 'gelu {approximate = "none"}', "sign"])
def test_erf_exact_gelu_sign(op, t):
    x = (np.random.default_rng(10).standard_normal((2, 330)) * 3).astype(np.float32)
    x[0, :6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0]
    name = op.split()[0]
    body = f"%y = {op.replace('gelu', 'gelu %x') if name == 'gelu' else op + ' %x'}\nreturn %y"
    run(prog(f"(%x: {ty((2, 330), t)}) -> {ty((2, 330), t)}", body), x=x.astype(DT[t]))


@pytest.mark.parametrize("t", ["i8", "i32"])
def test_sign_of_integers(t):
    run(prog(f"(%x: {ty((2, 330), t)}) -> {ty((2, 330), t)}", "%y = sign %x\nreturn %y"), x=special((2, 330), t, 11))


def test_f32_lane_sums_split_into_bf16_parts_that_add_back_exactly():
    # a row of one value and zeros sums to that value exactly: the three bf16 parts the MXM
    # sums (7 mantissa bits, the next 8, the last 8: lower_reduce.bf16_parts) lose nothing,
    # from 2^-100 to 2^100, with every mantissa bit set or random
    rng = np.random.default_rng(12)
    x = np.zeros((6, 320), np.float32)
    vals = [np.float32(1.9999999), np.float32(-3.1415927e-30), np.float32(7.654321e29),
            np.float32(-1.0000001), np.float32(2.0 ** -100 * 1.3333333), np.float32(rng.standard_normal())]
    for r, v in enumerate(vals):
        x[r, (37 * r) % 320] = v
    src = prog("(%x: tensor<6x320xf32>) -> tensor<6x1xf32>", "%s = reduce_sum %x {axis = -1} : tensor<6x1xf32>\nreturn %s")
    out = run(src, x=x)
    assert out.result.reshape(-1).tobytes() == np.array(vals, np.float32).tobytes()
