"""``store``: writes into SRAM tensors that keep their contents from run to run (a KV cache), against
numpy over several runs, hypothesis over shapes and windows, through loops, symbol parameters and
the passes (which keep every store and its order), and its exact errors."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpu.diagnostics import DiagnosticError
from lpu.dsl.interpreter import initial_sram, run_function
from lpu.dsl.passes import DEFAULT_PIPELINE, run_pipeline
from lpu.dsl.printer import print_module
from dsl_helpers import errors, parse

KV = """reserve @k : tensor<6x16xf16>
data @v : tensor<6x16xf16> = [0.5]

func @main(%key: tensor<1x16xf16>, %q: tensor<16xf16>, %pos: tensor<i32>) -> tensor<6xf32>, tensor<6x16xf16> {
  %before = get @k
  store %key, @k, %pos {offsets = [0, 0], step = [1, 0]}
  %k = get @k
  %kt = transpose %k
  %s = matmul %q, %kt
  %twice = mul %key, %key
  store %twice, @v, %pos {offsets = [0, 0], step = [1, 0]}
  return %s, %before
}
"""


def test_kv_cache_written_at_positions_0_1_2_and_read_back():
    m = parse(KV)
    rng = np.random.default_rng(5)
    sram, k, v = {}, np.zeros((6, 16), np.float16), np.full((6, 16), 0.5, np.float16)
    q = rng.standard_normal(16).astype(np.float16)
    for pos in range(6):
        key = rng.standard_normal((1, 16)).astype(np.float16)
        s, before = run_function(m, "main", {"key": key, "q": q, "pos": np.asarray(pos, np.int32)}, sram=sram)
        assert np.array_equal(before, k)  # a get before the store, in program order, sees the old contents
        k[pos] = key[0]
        v[pos] = (key[0].astype(np.float64) ** 2).astype(np.float16)
        assert np.array_equal(s, (q.astype(np.float64) @ k.T.astype(np.float64)).astype(np.float32))
        assert np.array_equal(sram["k"], k) and np.array_equal(sram["v"], v)
    # without a state, every run starts from the module's initial contents
    _s, before = run_function(m, "main", {"key": key, "q": q, "pos": np.asarray(3, np.int32)})
    assert not before.any()
    # initial_sram: every tensor at its initial contents
    init = initial_sram(m)
    assert sorted(init) == ["k", "v"] and not init["k"].any() and np.all(init["v"] == np.float16(0.5))


def test_the_passes_keep_every_store_and_its_order():
    m = parse(KV)
    run_pipeline(m, DEFAULT_PIPELINE)
    text = print_module(m)
    lines = [l.strip().split(" ")[0] if l.strip().startswith("store") else "get"
             for l in text.splitlines() if " get " in l or l.strip().startswith("store")]
    assert lines == ["get", "store", "get", "store"]
    # two equal gets around a store are not merged; two equal gets with nothing between are not either
    m = parse("""reserve @t : tensor<4xi32>
func @f(%x: tensor<4xi32>) -> tensor<4xi32> {
  %a = get @t
  store %x, @t
  %b = get @t
  %c = get @t
  %s = add %a, %b
  %r = add %s, %c
  store %x, @t
  return %r
}
""")
    run_pipeline(m, "canonicalize,cse,dce")
    assert print_module(m).count("get @t") == 3 and print_module(m).count("store %x, @t") == 2
    x = np.arange(4, dtype=np.int32)
    sram = {}
    (r,) = run_function(m, "f", {"x": x}, sram=sram)
    assert np.array_equal(r, 2 * x) and np.array_equal(sram["t"], x)
    (r,) = run_function(m, "f", {"x": x}, sram=sram)
    assert np.array_equal(r, 3 * x)


def test_store_in_a_loop_through_a_symbol_parameter():
    text = """reserve @cache : tensor<4x3x8xi8>

func @fill(%row: tensor<1x1x8xi8>, @t: tensor<4x3x8xi8>) -> tensor<4x3x8xi8> {
  %z = constant {value = 0} : tensor<i32>
  %r = for %i = 0 to 4 iter(%acc = %z) : tensor<i32> {
    %one = constant {value = 1} : tensor<1x1x8xi8>
    %n = add %row, %one
    store %n, @t, %i {offsets = [0, 2, 0], step = [1, 0, 0]}
    yield %acc
  }
  %all = get @t
  return %all
}

func @main(%row: tensor<1x1x8xi8>) -> tensor<4x3x8xi8> {
  %a = call @fill(%row, @cache)
  return %a
}
"""
    m = parse(text)
    row = np.arange(8, dtype=np.int8).reshape(1, 1, 8)
    want = np.zeros((4, 3, 8), np.int8)
    want[:, 2, :] = row[0, 0] + 1
    (got,) = run_function(m, "main", {"row": row})
    assert np.array_equal(got, want)
    run_pipeline(m, DEFAULT_PIPELINE)  # unrolled, inlined: four static stores into @cache
    main = print_module(m)[print_module(m).index("func @main"):]
    assert main.count("store") == 4 and "store %n, @cache {offsets = [3, 2, 0]}" in main
    (again,) = run_function(m, "main", {"row": row})
    assert np.array_equal(again, want)


@st.composite
def windows(draw):
    rank = draw(st.integers(1, 3))
    shape = [draw(st.integers(1, 6)) for _ in range(rank)]
    sizes = [draw(st.integers(1, n)) for n in shape]
    step = [draw(st.integers(0, 2)) for _ in range(rank)]
    index = draw(st.integers(0, 3))
    # offsets such that the window fits at index 0 and at ``index``
    offsets = []
    for n, s, d in zip(shape, sizes, step):
        hi = n - s - index * d
        offsets.append(draw(st.integers(0, hi)) if hi >= 0 else None)
    if None in offsets:
        step = [0] * rank
        offsets = [draw(st.integers(0, n - s)) for n, s in zip(shape, sizes)]
    elem = draw(st.sampled_from(["i8", "i32", "f16", "bf16", "f32"]))
    dynamic = draw(st.booleans())
    return shape, sizes, offsets, step, index, elem, dynamic


def _type(shape, elem):
    return "tensor<" + "".join(f"{d}x" for d in shape) + elem + ">"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(windows(), st.integers(0, 2 ** 31))
def test_store_writes_the_window_slice_reads(w, seed):
    from lpu.dsl.interpreter import random_input
    shape, sizes, offsets, step, index, elem, dynamic = w
    where = f", %i {{offsets = {offsets}, step = {step}}}" if dynamic else f" {{offsets = {offsets}}}"
    sl = f", %i {{offsets = {offsets}, sizes = {sizes}, step = {step}}}" if dynamic else \
        f" {{offsets = {offsets}, sizes = {sizes}}}"
    text = (f"data @t : {_type(shape, elem)} = [3]\n\n"
            f"func @f(%v: {_type(sizes, elem)}, %i: tensor<i32>) -> {_type(shape, elem)}, {_type(sizes, elem)} {{\n"
            f"  store %v, @t{where}\n  %all = get @t\n  %back = slice %all{sl}\n  return %all, %back\n}}\n")
    m = parse(text)
    rng = np.random.default_rng(seed)
    v = random_input(m.body.block.last_op.body.block.args[0].type, rng)
    i = index if dynamic else 0
    all_, back = run_function(m, "f", {"v": v, "i": np.asarray(i, np.int32)})
    want = np.full(shape, 3).astype(all_.dtype)
    start = [o + i * s for o, s in zip(offsets, step)] if dynamic else offsets
    want[tuple(slice(o, o + s) for o, s in zip(start, sizes))] = v
    assert np.array_equal(all_, want, equal_nan=True) and np.array_equal(back, v, equal_nan=True)


@pytest.mark.parametrize("line,message", [
    ("store %v, @t {offsets = [0, 4]}", "3:3: 'df.store' op window [4, 6) of axis 1 is outside the 5 elements of '@t'"),
    ("store %v, @t, %i {offsets = [3, 0], step = [1, 0]}",
     "3:3: 'df.store' op window [3, 5) of axis 0 is outside the 4 elements of '@t'"),
    ("store %v, @t {offsets = [-1, 0]}", "3:3: 'df.store' op window [-1, 1) of axis 0 is outside the 4 elements of '@t'"),
    ("store %w, @t", "3:3: 'df.store' op cannot store tensor<2x2xi8> into '@t' of type tensor<4x5xf16>: the "
                     "element types differ"),
    ("store %r, @t", "3:3: 'df.store' op cannot store tensor<2xf16> into '@t' of type tensor<4x5xf16>: the "
                     "ranks differ"),
    ("store %v, @t, %i {offsets = [0, 0]}", "3:3: 'df.store' op an index operand and 'step' go together"),
    ("store %v, @t, %v {offsets = [0, 0], step = [1, 0]}",
     "3:3: 'df.store' op the index must be tensor<i32>, not tensor<2x2xf16>"),
    ("store %v, @t {offsets = [0]}", "3:3: 'df.store' op 'offsets' has 1 entries but the value has rank 2"),
    ("store %v, @u", "3:3: 'df.store' op '@u' is not a tensor (data or reserve) of this module nor a symbol "
                     "parameter of the function"),
    ("store @t, %v", "3:9: 'df.store' takes its @symbol as operand 2"),
    ("%z = store %v, @t", "3:8: 'df.store' gives 0 results but 1 name is bound"),
])
def test_store_errors(line, message):
    text = ("reserve @t : tensor<4x5xf16>\n"
            "func @f(%v: tensor<2x2xf16>, %w: tensor<2x2xi8>, %r: tensor<2xf16>, %i: tensor<i32>) -> tensor<2x2xf16> {\n"
            f"  {line}\n  return %v\n}}\n")
    assert errors(text) == [message]


def test_a_window_outside_the_tensor_at_run_time_is_an_error_at_the_store():
    m = parse(KV, "kv.lpu")
    args = {"key": np.zeros((1, 16), np.float16), "q": np.zeros(16, np.float16), "pos": np.asarray(6, np.int32)}
    with pytest.raises(DiagnosticError) as e:
        run_function(m, "main", args)
    (d,) = e.value.diagnostics
    assert (d.loc.file, d.loc.line, d.loc.col, d.message) == (
        "kv.lpu", 6, 3, "window [6, 7) of axis 0 is outside the 6 elements of '@k'")
