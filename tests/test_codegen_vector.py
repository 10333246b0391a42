"""The general code generator path: vector functions compiled, linked, simulated and compared
with the reference interpreter (elementwise ops, casts, quantization, broadcasting, lane
reductions, views). Elementwise results must be bit-identical (the VXM rounds once, as the
interpreter does); sums over lanes run in another order, so float reductions are compared with
``lpu.compile.matches``'s stated tolerance. Every run must be free of simulator hazards."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from lpu.compile import matches, run_source
from lpu.diagnostics import DiagnosticError

TYPES = ["i8", "i16", "i32", "f16", "bf16", "f32"]
FLOATS = ["f16", "bf16", "f32"]


#: every run's cycle count, by test id (``LPU_RECORD_CYCLES=1 pytest …`` rewrites the file
#: after a deliberate scheduling change; review the diff)
CYCLES_FILE = os.path.join(os.path.dirname(__file__), "codegen_vector_cycles.json")
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


def run(src: str, config: str | None = None, **inputs):
    out = run_source(src, "t.lpu", inputs=inputs or None, check=True, config=config)
    assert out.hazards == []
    if RECORD:
        CYCLES[_current[0]] = out.cycles
    else:
        assert out.cycles == CYCLES[_current[0]], "cycle count changed"
    return out


def same_bits(out) -> bool:
    got, want = out.result, out.reference
    return got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()


@pytest.mark.parametrize("kind", ["add", "sub", "mul", "max", "min"])
@pytest.mark.parametrize("t", TYPES)
def test_binary_with_broadcasting(kind, t):
    # a row operand ([330], re-read for each row) and a column operand ([3, 1], splat)
    src = f'''target "lpu-v1"
func @main(%x: tensor<3x330x{t}>, %b: tensor<330x{t}>, %c: tensor<3x1x{t}>) -> tensor<3x330x{t}> {{
  %y = {kind} %x, %b
  %z = {kind} %c, %y
  return %z
}}
'''
    assert same_bits(run(src))


@pytest.mark.parametrize("kind", ["neg", "abs", "relu"])
@pytest.mark.parametrize("t", TYPES)
def test_unary_any_type(kind, t):
    src = f'''target "lpu-v1"
func @main(%x: tensor<2x650x{t}>) -> tensor<2x650x{t}> {{
  %y = {kind} %x
  return %y
}}
'''
    assert same_bits(run(src))


@pytest.mark.parametrize("kind", ["exp", "tanh", "sigmoid", "rsqrt", "recip"])
@pytest.mark.parametrize("t", FLOATS)
def test_unary_float(kind, t):
    src = f'''target "lpu-v1"
func @main(%x: tensor<400x{t}>) -> tensor<400x{t}> {{
  %a = abs %x
  %y = {kind} %a
  return %y
}}
'''
    assert same_bits(run(src))


@pytest.mark.parametrize("src_t", TYPES)
@pytest.mark.parametrize("dst_t", TYPES)
def test_cast(src_t, dst_t):
    # scaled by 40 so that narrowing conversions saturate and floats have fractions to round
    k = "40.25" if src_t in FLOATS else "40"
    src = f'''target "lpu-v1"
func @main(%x: tensor<2x330x{src_t}>) -> tensor<2x330x{dst_t}> {{
  %k = constant {{value = {k}}} : tensor<{src_t}>
  %s = mul %x, %k
  %y = cast %s : tensor<2x330x{dst_t}>
  return %y
}}
'''
    assert same_bits(run(src))


@pytest.mark.parametrize("t", FLOATS)
@pytest.mark.parametrize("q", ["i8", "i16", "i32"])
def test_quantize_dequantize(t, q):
    # a power-of-two scale: x / scale and x · (1/scale) agree, so the integers are exact
    src = f'''target "lpu-v1"
func @main(%x: tensor<3x340x{t}>) -> tensor<3x340x{t}> {{
  %q = quantize %x {{scale = 0.0625, zero_point = 3}} : tensor<3x340x{q}>
  %y = dequantize %q {{scale = 0.0625, zero_point = 3}} : tensor<3x340x{t}>
  return %y
}}
'''
    assert same_bits(run(src))


def test_quantize_saturates_exactly():
    src = '''target "lpu-v1"
func @main(%x: tensor<330xf32>) -> tensor<330xi8> {
  %q = quantize %x {scale = 0.0078125, zero_point = -5} : tensor<330xi8>
  return %q
}
'''
    out = run(src)
    assert same_bits(out)
    assert out.result.min() == -128 and out.result.max() == 127


@pytest.mark.parametrize("t,n", [("i8", 330), ("i16", 700), ("i32", 320), ("f16", 650), ("bf16", 100), ("f32", 960)])
@pytest.mark.parametrize("kind", ["reduce_sum", "reduce_max"])
def test_lane_reductions(kind, t, n):
    acc = {"i8": "i32", "i16": "i32", "i32": "i32", "f16": "f32", "bf16": "f32", "f32": "f32"}[t]
    rt = acc if kind == "reduce_sum" else t
    src = f'''target "lpu-v1"
func @main(%x: tensor<3x{n}x{t}>) -> tensor<3x1x{rt}> {{
  %y = {kind} %x {{axis = -1}}
  return %y
}}
'''
    out = run(src)
    assert out.matches
    if t not in FLOATS or kind == "reduce_max":
        assert same_bits(out)


def _mnemonics(out) -> dict[str, int]:
    from collections import Counter

    return Counter(i.spec.mnemonic for k in out.compiled.program.kernels for i in k.insts)


def test_lane_maxima_of_many_rows_keep_their_rotate_chains_apart(monkeypatch):
    # nine rows at once (a decoder's softmax): each row's rotate chains read copies in slices of
    # their own, so the chains run side by side — exact, and in the pinned cycles
    src = '''target "lpu-v1"
func @main(%x: tensor<9x256xf32>) -> tensor<9x1xf32> {
  %y = reduce_max %x {axis = -1}
  return %y
}
'''
    out = run(src)
    assert same_bits(out)
    from lpu.dsl.codegen import lower_reduce

    monkeypatch.setattr(lower_reduce, "SPREAD_ABOVE", 10 ** 9)  # every chain where its vector is
    shared = run_source(src, "t.lpu", check=True)
    assert same_bits(shared) and out.cycles < shared.cycles


def test_an_f16_lane_sum_beside_f32_ones_takes_the_mxm_in_two_parts():
    # the f32 sum fixes the function's all-ones matrix as bf16; the f16 sum then goes through it
    # as two exact bf16 parts rather than the SXMs' rotate trees
    src = '''target "lpu-v1"
func @main(%a: tensor<2x300xf32>, %b: tensor<3x300xf16>) -> tensor<2x1xf32>, tensor<3x1xf32> {
  %s = reduce_sum %a {axis = -1}
  %t = reduce_sum %b {axis = -1}
  return %s, %t
}
'''
    out = run(src)
    assert out.matches
    m = _mnemonics(out)
    assert m["rotate"] == 0 and m["mm"] > 0  # (the f16 rows were rotated through the SXMs)


def test_reduction_over_rows_and_broadcast_back():
    src = '''target "lpu-v1"
func @main(%x: tensor<4x2x330xi16>) -> tensor<4x2x330xi32> {
  %s = reduce_sum %x {axis = 0}
  %m = reduce_max %x {axis = 2}
  %w = cast %x : tensor<4x2x330xi32>
  %a = add %w, %s
  %m32 = cast %m : tensor<4x2x1xi32>
  %y = sub %a, %m32
  return %y
}
'''
    assert same_bits(run(src))


def test_views_slice_concat_reshape():
    src = '''target "lpu-v1"
func @main(%x: tensor<4x700xi8>, %y: tensor<2x700xi8>) -> tensor<3x640xi8> {
  %c = concat %x, %y {axis = 0}
  %s = slice %c {offsets = [2, 0], sizes = [3, 640]}
  %r = reshape %s : tensor<1x3x640xi8>
  %k = constant {value = 1} : tensor<i8>
  %a = add %r, %k
  %f = reshape %a : tensor<3x640xi8>
  return %f
}
'''
    assert same_bits(run(src))


def test_composites_rmsnorm_gelu_silu():
    src = '''target "lpu-v1"
func @main(%x: tensor<2x330xf16>, %g: tensor<330xf16>) -> tensor<2x330xf16> {
  %n = rmsnorm %x, %g {eps = 1e-05}
  %a = gelu %n
  %b = silu %a
  return %b
}
'''
    out = run(src)
    assert out.matches


@pytest.mark.parametrize("name,cycles", [("softmax", 416), ("layernorm", 365), ("mlp", 933),
                                         ("attention", 645), ("decoder", 2353)])
def test_examples(name, cycles):
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "examples", f"{name}.lpu")
    out = run_source(open(path).read(), path, check=True)
    assert out.hazards == [] and out.matches
    assert out.cycles == cycles


def test_constant_lhs_of_a_non_commutative_op_and_integer_immediates():
    src = '''target "lpu-v1"
func @main(%x: tensor<330xi32>) -> tensor<330xi32> {
  %k = constant {value = 100000} : tensor<i32>
  %a = sub %k, %x
  %m = constant {value = -3} : tensor<i32>
  %b = mul %a, %m
  return %b
}
'''
    out = run(src)
    assert same_bits(out)


def test_unsupported_op_is_a_diagnostic_at_the_op():
    src = '''target "lpu-v1"
func @main(%x: tensor<4x8xi8>, %i: tensor<i32>) -> tensor<1x8xi8> {
  %r = relu %x
  %s = slice %r, %i {offsets = [0, 0], sizes = [1, 4], step = [0, 4]}
  return %s
}
'''.replace("1x8xi8", "1x4xi8")
    with pytest.raises(DiagnosticError) as e:
        run_source(src, "t.lpu")
    (d,) = e.value.diagnostics
    assert (d.loc.line, d.loc.col) == (4, 8)
    assert d.message == ("the code generator does not compile a slice with a run-time index that moves along "
                         "the last axis or cuts its vectors yet")


#: computed tensors of more than 4096 elements: 16 x 16 block transposes on the SXM, byte plane
#: by byte plane, then 16-lane pieces gathered into rows (ragged shapes padded)
SXM_TRANSPOSES = {
    "i8_70x100": ("tensor<70x100xi8>", "tensor<100x70xi8>", "[1, 0]"),
    "f16_70x100": ("tensor<70x100xf16>", "tensor<100x70xf16>", "[1, 0]"),
    "f32_20x330": ("tensor<20x330xf32>", "tensor<330x20xf32>", "[1, 0]"),
    "i32_2x17x150": ("tensor<2x17x150xi32>", "tensor<2x150x17xi32>", "[0, 2, 1]"),
    "bf16_3x20x90_201": ("tensor<3x20x90xbf16>", "tensor<90x3x20xbf16>", "[2, 0, 1]"),
    "i16_rows_only": ("tensor<3x20x90xi16>", "tensor<20x3x90xi16>", "[1, 0, 2]"),
}


@pytest.mark.parametrize("name", sorted(SXM_TRANSPOSES))
def test_transpose_of_a_computed_tensor_through_the_sxm(name):
    arg, res, perm = SXM_TRANSPOSES[name]
    src = f'''target "lpu-v1"
func @main(%x: {arg}) -> {res} {{
  %r = neg %x
  %t = transpose %r {{perm = {perm}}}
  return %t
}}
'''
    assert same_bits(run(src))


MATMUL_DIM_1 = {  # an outer product (K = 1) and dot products (N = 1)
    "outer": ("3x1", "1x330", "3x330"),
    "dot": ("2x330", "330x1", "2x1"),
    "scalar": ("4x1", "1x1", "4x1"),
}


@pytest.mark.parametrize("t,acc", [("i8", "i32"), ("f16", "f32")])
@pytest.mark.parametrize("name", sorted(MATMUL_DIM_1))
def test_matmul_with_a_dimension_of_1(name, t, acc):
    xs, ws, ys = MATMUL_DIM_1[name]
    src = f'''target "lpu-v1"
func @main(%x: tensor<{xs}x{t}>, %w: tensor<{ws}x{t}>) -> tensor<{ys}x{acc}> {{
  %y = matmul %x, %w : tensor<{ys}x{acc}>
  return %y
}}
'''
    out = run(src)
    assert same_bits(out) if name != "dot" or t == "i8" else matches(out.result, out.reference)


GATHERS = {
    "reshape": ("tensor<2x330xi16>", "tensor<3x220xi16>", "%r = reshape %x : tensor<3x220xi16>"),
    "reshape_to_splat": ("tensor<6xi32>", "tensor<6x1xi32>", "%r = reshape %x : tensor<6x1xi32>"),
    "slice_one_lane": ("tensor<2x330xf32>", "tensor<2x1xf32>", "%r = slice %x {offsets = [0, 325], sizes = [2, 1]}"),
    "concat_inside_vectors": ("tensor<2x100xi8>", "tensor<2x500xi8>", "%r = concat %x, %x, %x, %x, %x {axis = 1}"),
    "transpose": ("tensor<5x40xbf16>", "tensor<40x5xbf16>", "%r = transpose %x {perm = [1, 0]}"),
    "transpose_3d": ("tensor<2x3x7xf16>", "tensor<7x2x3xf16>", "%r = transpose %x {perm = [2, 0, 1]}"),
}


@pytest.mark.parametrize("name", sorted(GATHERS))
def test_lanes_moved_between_vectors(name):
    """reshapes that change the last dimension, concats inside vectors, small transposes: runs
    of lanes shifted into place and joined by select; a splat result (a one-lane slice, a
    reshape to [..., 1]): its lane spread by an SXM permute."""
    arg, res, op = GATHERS[name]
    src = f'''target "lpu-v1"
func @main(%x: {arg}) -> {res} {{
  {op}
  return %r
}}
'''
    assert same_bits(run(src))


def test_reshape_of_a_reduction_result():
    src = '''target "lpu-v1"
func @main(%x: tensor<4x330xf16>) -> tensor<4xf16> {
  %m = reduce_max %x {axis = -1}
  %r = reshape %m : tensor<4xf16>
  return %r
}
'''
    assert same_bits(run(src))


@pytest.mark.parametrize("t", ["i8", "f16", "f32"])
def test_unaligned_slices_shift_lanes(t):
    # windows that start inside a vector: within one vector, and straddling two
    src = f'''target "lpu-v1"
func @main(%x: tensor<3x900x{t}>) -> tensor<2x500x{t}> {{
  %a = slice %x {{offsets = [1, 5], sizes = [2, 500]}}
  %b = slice %x {{offsets = [0, 330], sizes = [2, 500]}}
  %y = add %a, %b
  return %y
}}
'''
    assert same_bits(run(src))


@pytest.mark.parametrize("t,acc", [("i8", "i32"), ("f16", "f32"), ("bf16", "f32")])
def test_matmul_inside_a_vector_function(t, acc):
    # a computed left operand with a ragged K (its padding lanes are zeroed before the MXM),
    # two column blocks, then vector work on the result
    src = f'''target "lpu-v1"
func @main(%x: tensor<3x330x{t}>, %w: tensor<330x400x{t}>, %b: tensor<400x{acc}>) -> tensor<3x400x{acc}> {{
  %r = relu %x
  %y = matmul %r, %w : tensor<3x400x{acc}>
  %z = add %y, %b
  return %z
}}
'''
    out = run(src)
    assert out.matches
    if t == "i8":
        assert same_bits(out)


def test_two_matmuls_share_the_planes():
    src = '''target "lpu-v1"
func @main(%x: tensor<2x640xi8>, %w1: tensor<640x330xi8>, %w2: tensor<330x700xi8>) -> tensor<2x700xi32> {
  %h = matmul %x, %w1 : tensor<2x330xi32>
  %q = cast %h : tensor<2x330xi8>
  %y = matmul %q, %w2 : tensor<2x700xi32>
  return %y
}
'''
    out = run(src)
    assert same_bits(out)


def test_matmul_by_a_transpose_is_lane_dot_products():
    src = '''target "lpu-v1"
data @k : tensor<40x200xi8> = [3]
func @main(%q: tensor<2x200xi8>, %kk: tensor<40x200xi8>) -> tensor<2x40xi32> {
  %t = transpose %kk {perm = [1, 0]}
  %s = matmul %q, %t : tensor<2x40xi32>
  return %s
}
'''
    out = run(src)
    assert same_bits(out)


def test_deterministic():
    src = '''target "lpu-v1"
func @main(%x: tensor<4x400xf16>) -> tensor<4x400xf16> {
  %y = softmax %x
  return %y
}
'''
    a = run_source(src, "t.lpu")
    b = run_source(src, "t.lpu")
    assert a.compiled.assembly() == b.compiled.assembly()
    assert a.cycles == b.cycles and a.result.tobytes() == b.result.tobytes()


def test_tolerance_is_per_type():
    want = np.array([1.0, 2.0], np.float16)
    assert matches(np.array([1.0, 2.0 + 2 ** -9], np.float16), want)
    assert not matches(np.array([1.0, 2.03], np.float16), want)


def test_docs_general_path_example(tmp_path, capsys):
    """docs/codegen.md's example of the general path runs as the page says."""
    import os
    import re

    from lpu.driver import main

    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs", "codegen.md")).read()
    section = doc[doc.index("## The general path"):]
    src = re.search(r"```lpu\n(.*?)```", section, re.S).group(1)
    want = re.search(r"```sh\nlpu run example.lpu --check\n#   (.*?)\n```", section, re.S).group(1)
    (tmp_path / "example.lpu").write_text(src)
    assert main(["run", str(tmp_path / "example.lpu"), "--check"]) == 0
    assert capsys.readouterr().out.strip() == want


def test_scheduled_assembly_reassembles_to_the_same_object():
    """``lpu compile -S`` of a general-path function (chains, SXM turns, MXM jobs): lpu-as
    turns the text into the same code words and SRAM images as the compiler's own object."""
    import os

    from lpu.asm.assembler import assemble
    from lpu.asm.emit import emit
    from lpu.compile import compile_source

    path = os.path.join(os.path.dirname(__file__), "..", "examples", "layernorm.lpu")
    c, _ = compile_source(open(path).read(), path)
    again = emit(assemble(c.assembly(path), "layernorm.s"))
    key = lambda o: sorted((q.kernel, q.queue, list(q.words)) for q in o.code)  # noqa: E731
    assert key(again) == key(c.obj)
    assert [(s.symbol, s.image) for s in again.sram] == [(s.symbol, s.image) for s in c.obj.sram]
    assert again.kernels[0].length == c.cycles


def test_matmul_of_more_rows_than_accumulator_slots():
    # 70 rows: two groups of rows (64 slots a plane), each loading the column's weights
    src = '''target "lpu-v1"
func @main(%x: tensor<70x330xi8>, %w: tensor<330x200xi8>) -> tensor<70x200xi32> {
  %y = matmul %x, %w : tensor<70x200xi32>
  %k = constant {value = 2} : tensor<i32>
  %z = mul %y, %k
  return %z
}
'''
    out = run(src)
    assert same_bits(out)


@pytest.mark.slow
def test_the_decoder_layer_demo_runs(capsys):
    from lpu.demo import main

    assert main(["decoder"]) == 0
    out = capsys.readouterr().out
    assert "y vs the reference interpreter: match (float16[1, 640], within 0.00195312 relative); " \
           "2353 cycles, 0 hazards" in out


def small_chip(tmp_path, words: int = 32) -> str:
    """lpu-v1 with only ``words`` words a MEM slice (a function's values crowd the slices)."""
    text = open(os.path.join(os.path.dirname(__file__), "..", "arch", "configs", "lpu-v1.toml")).read()
    path = tmp_path / "small.toml"
    path.write_text(text.replace("words = 8192", f"words = {words}", 1))
    return str(path)


def squares(n: int) -> str:
    body = "\n".join(f"  %a{i + 1} = mul %a{i}, %a{i}" for i in range(n))  # x * x: each result written
    return f'''target "lpu-v1"
func @main(%a0: tensor<16x320xi32>) -> tensor<16x320xi32> {{
{body}
  return %a{n}
}}
'''


def test_sram_reuse_fits_a_function_that_would_not_fit_without_it(tmp_path, monkeypatch):
    """12 values of 16 i32 vectors (768 words) on slices of 32 words: each buffer is free
    after its last read, so later values take its words."""
    import lpu.dsl.codegen.general as G

    cfg = small_chip(tmp_path)
    out = run(squares(12), config=cfg)
    assert same_bits(out)
    monkeypatch.setattr(G, "REUSE", False)
    with pytest.raises(DiagnosticError) as e:
        run_source(squares(12), "t.lpu", config=cfg)
    assert "overflows" in e.value.diagnostics[0].message


def test_sram_reuse_reports_values_live_at_once_that_cannot_fit(tmp_path):
    n = 24
    body = "\n".join(f"  %a{i + 1} = mul %a{i}, %a{i}" for i in range(n))
    body += "\n" + "\n".join(f"  %s{i + 1} = add %s{i}, %a{i + 1}" for i in range(n))  # every %a alive till its add
    src = f'''target "lpu-v1"
func @main(%a0: tensor<16x320xi32>, %s0: tensor<16x320xi32>) -> tensor<16x320xi32> {{
{body}
  return %s{n}
}}
'''
    with pytest.raises(DiagnosticError) as e:
        run_source(src, "t.lpu", config=small_chip(tmp_path))
    (d,) = e.value.diagnostics
    assert d.message.startswith("the values of this function need more than the 32 words of slice MEM_")
    assert d.message.endswith(", even with buffers reused after their last read")
    assert d.loc is not None and d.loc.line >= 3


def test_sram_reuse_changes_addresses_not_cycles():
    """The same program with and without reuse: the same cycles and results (addresses never
    change timing), and fewer words."""
    import lpu.dsl.codegen.general as G
    from lpu.compile import compile_source

    src = squares(6)
    words = {}
    for reuse in (True, False):
        G.REUSE = reuse
        try:
            c, _ = compile_source(src, "t.lpu")
        finally:
            G.REUSE = True
        words[reuse] = (c.cycles, sum(t.shape[0] * {"i8": 1, "i32": 4}[t.dtype] for t in c.program.tensors))
    assert words[True][0] == words[False][0]
    assert words[True][1] < words[False][1]


def test_sram_reuse_never_overlaps_two_lives_in_one_word():
    """reuse_sram on random schedules: a word is shared only by vectors whose lives (first
    write to last read + the port cycles) are disjoint, in order; every access of a vector
    lands on the same arena address."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from lpu.arch.config import load_config
    from lpu.arch.isa import BY_MNEMONIC
    from lpu.asm.records import Inst, SymRef
    from lpu.dsl.codegen.reuse import reuse_sram
    from lpu.dsl.codegen.vector import Storage

    cfg = load_config("lpu-v1")
    lives = st.lists(st.tuples(st.sampled_from(["i8", "f16", "f32"]), st.integers(0, 60), st.integers(0, 40),
                               st.integers(0, 2)), min_size=1, max_size=25)

    @settings(max_examples=60, deadline=None)
    @given(lives)
    def check(vs):
        st_ = Storage.for_chip(cfg)
        insts, spans = [], []
        for k, (elem, born, span, reads) in enumerate(vs):
            v = st_.alloc(f"t{k}", (cfg.lanes,), elem, None, True, at="MEM_W0").vecs[0]
            w = {"i8": 1, "f16": 2, "f32": 4}[elem]
            insts.append(Inst(born, 0, BY_MNEMONIC["write"], elem, None, (SymRef(v.symbol, 0), 0, 0)))
            last = born
            for r in range(reads):
                last = born + 1 + (span * (r + 1)) // max(1, reads)
                insts.append(Inst(last, 0, BY_MNEMONIC["read"], elem, None, (SymRef(v.symbol, 0), 0, 0)))
            spans.append((born, last + w, w))
        out = reuse_sram(insts, st_, set(), cfg)
        addr: dict[int, int] = {}
        k = -1
        for inst in out:  # the rewritten accesses, in the order built: write, then reads, per vector
            if inst.spec.mnemonic == "write":
                k += 1
                addr[k] = inst.args[0].offset
            assert inst.args[0].offset == addr[k] and inst.args[0].symbol == "sram_mem_w0"
        for a in range(len(vs)):
            for b in range(a + 1, len(vs)):
                (b0, e0, w0), (b1, e1, w1) = spans[a], spans[b]
                words_meet = addr[a] < addr[b] + w1 and addr[b] < addr[a] + w0
                if words_meet:
                    assert e0 < b1 or e1 < b0
        assert list(st_.symbols) == ["sram_mem_w0"]

    check()


def test_a_row_transposed_to_a_column_is_one_permute_a_row():
    """Each of the 650 splat rows is lane k of x spread by the SXM's permute (a one-lane map):
    with a select and a rotate-max tree per row this took 28,409 cycles (and minutes to compile);
    with x's vectors read from one copy each, 1,396 (now spread over SPLAT_COPIES copies)."""
    src = '''target "lpu-v1"
func @main(%x: tensor<1x650xi32>) -> tensor<650x1xi32> {
  %t = transpose %x {perm = [1, 0]}
  return %t
}
'''
    out = run(src)
    assert out.hazards == [] and out.matches and out.cycles == 473
    text = out.compiled.assembly()
    assert text.count(" permute.i32 ") == 650 and " rotate." not in text


WIDE = '''target "lpu-v1"
func @main(%x: tensor<1x320xi8>, %w: tensor<320x{n}xi8>) -> tensor<1x{n}xi32> {{
  %y = matmul %x, %w : tensor<1x{n}xi32>
  %z = add %y, %y
  return %z
}}
'''


def test_weights_spread_over_the_whole_hemisphere_when_the_slices_near_the_vxm_are_full(tmp_path):
    """A column block of 320 i8 rows takes 20 words in each of 16 slices; on 32-word slices the
    second block of a side no longer fits the 16 slices nearest the VXM, so its window is the
    16 least-filled slices of the hemisphere (the planes' end first)."""
    out = run(WIDE.format(n=1280), config=small_chip(tmp_path))
    assert same_bits(out)
    slices = {t.placement.slice for t in out.compiled.program.tensors if t.name.startswith("in_w_")}
    assert len(slices) == 64 and {"MEM_W43", "MEM_E43"} <= slices  # 4 blocks x 16 slices, 2 windows a side


def test_a_function_past_the_chip_capacity_says_what_it_needs_and_what_the_chip_has(tmp_path):
    with pytest.raises(DiagnosticError) as e:
        run_source(WIDE.format(n=320 * 9), "t.lpu", config=small_chip(tmp_path))
    (d,) = e.value.diagnostics
    assert d.message == ("the values of this function need 2,881 words of SRAM (921,920 bytes; slice MEM_W43 would "
                         "hold 40 words); the chip has 88 slices of 32 words (2,816 words, 901,120 bytes)")
    assert (d.loc.line, d.loc.col) == (2, 6)
