"""A slice with a run-time index, compiled to MEM ``gather``s (dsl/codegen/gather.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpu.compile import compile_source, matches, run_source
from lpu.driver import main as lpu_main

TABLE = (np.arange(2400) % 251 - 125).astype(np.int8).reshape(6, 400)

# an embedding-style lookup of two rows of a constant table (each row two vectors, the second
# ragged), and a row of a computed f16 tensor (copied into a table first)
LOOKUP = '''target "lpu-v1"
data @emb : tensor<6x400xi8> = load("emb.npy")
func @main(%i: tensor<i32>, %x: tensor<4x320xf16>) -> tensor<2x400xi8>, tensor<1x320xf16> {
  %t = get @emb : tensor<6x400xi8>
  %e = slice %t, %i {offsets = [1, 0], sizes = [2, 400], step = [1, 0]}
  %y = exp %x
  %z = slice %y, %i {offsets = [0, 0], sizes = [1, 320], step = [2, 0]}
  return %e, %z
}
'''

# splat rows (last dimension 1) of i32, and an f32 argument indexed by a computed index
SPLAT = '''target "lpu-v1"
func @main(%i: tensor<i32>, %x: tensor<5x3x1xi32>, %k: tensor<8x640xf32>) -> tensor<2x1x1xi32>, tensor<640xf32> {
  %y = add %x, %x
  %e = slice %y, %i {offsets = [0, 2, 0], sizes = [2, 1, 1], step = [1, 0, 0]}
  %j = add %i, %i
  %r = slice %k, %j {offsets = [1, 0], sizes = [1, 640], step = [1, 0]}
  %q = reshape %r : tensor<640xf32>
  return %e, %q
}
'''


@pytest.mark.parametrize("i", [0, 1])
def test_rows_of_a_table_by_a_run_time_index(i, tmp_path):
    np.save(tmp_path / "emb.npy", TABLE)
    path = str(tmp_path / "lookup.lpu")
    x = np.linspace(-2, 2, 4 * 320).astype(np.float16).reshape(4, 320)
    out = run_source(LOOKUP, path, {"i": np.array(i, np.int32), "x": x}, check=True)
    assert out.hazards == [] and out.matches and out.cycles == 33
    e, z = out.compiled.results(_outputs(out, path))
    assert np.array_equal(e, TABLE[1 + i:3 + i])
    _, want = _reference(LOOKUP, path, out.inputs)
    assert matches(z, want) and z.shape == (1, 320)


def _outputs(out, path):
    from lpu.compile import link_compiled
    from lpu.sim.cli import simulate

    c = out.compiled
    return simulate(link_compiled(c), path, inputs=c.inputs(out.inputs), outputs=c.output_symbols()).outputs


def _reference(src, path, inputs):
    from lpu.dsl.frontend import parse_module
    from lpu.dsl.interpreter import run_function

    import os
    return run_function(parse_module(src, path), "main", inputs, base_dir=os.path.dirname(path) or ".")


def test_splat_rows_and_a_computed_index():
    out = run_source(SPLAT, "splat.lpu", {"i": np.array(3, np.int32)})
    assert out.hazards == [] and out.cycles == 97
    e, q = out.compiled.results(_outputs(out, "splat.lpu"))
    want_e, want_q = _reference(SPLAT, "splat.lpu", out.inputs)
    assert np.array_equal(e, want_e) and np.array_equal(q, want_q)
    assert np.array_equal(q, out.inputs["k"][7]) and np.array_equal(e[:, 0, 0], 2 * out.inputs["x"][3:5, 2, 0])


def test_each_output_vector_is_one_gather(tmp_path):
    np.save(tmp_path / "emb.npy", TABLE)
    c, _ = compile_source(LOOKUP, str(tmp_path / "lookup.lpu"))
    text = c.assembly()
    gathers = [ln.split()[2:4] for ln in text.splitlines() if " gather." in ln]
    # the table's rows 1, 2 (two vectors each) at index 0; one f16 vector of the copied table
    assert sorted(gathers) == [["gather.f16", "[@g5_mem_e2],"], ["gather.i8", "[@g1_mem_w1"],
                               ["gather.i8", "[@g1_mem_w1"], ["gather.i8", "[@g1_mem_w1"],
                               ["gather.i8", "[@g1_mem_w1"]]
    # the constant table is laid out in one slice, its 12 vectors consecutive
    assert "data @g1_mem_w1 : tensor<12x320xi8> in MEM_W1" in text


def test_a_window_moving_along_the_last_axis_is_a_diagnostic(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.lpu").write_text('''target "lpu-v1"
func @main(%i: tensor<i32>, %x: tensor<640xi8>) -> tensor<320xi8> {
  %s = slice %x, %i {offsets = [0], sizes = [320], step = [1]}
  return %s
}
''')
    assert lpu_main(["compile", "s.lpu", "-o", "s.lpx"]) == 1
    assert capsys.readouterr().err == '''s.lpu:3:8: error: the code generator does not compile a slice with a run-time \
index that moves along the last axis or cuts its vectors yet
  %s = slice %x, %i {offsets = [0], sizes = [320], step = [1]}
       ^~~~~
'''


def _tt(shape, e):
    return "tensor<" + "".join(f"{d}x" for d in shape) + e + ">"


@st.composite
def lookups(draw):
    """A window of rows of a (batched) tensor — an argument, or computed, so copied into a
    table — picked by a run-time index drawn in range."""
    e = draw(st.sampled_from(["i8", "i16", "i32", "f16", "bf16", "f32"]))
    rows = draw(st.integers(2, 6))
    lead = draw(st.sampled_from([(), (2,)]))
    shape = lead + (rows, draw(st.sampled_from([1, 7, 320, 333, 650])))
    size = draw(st.integers(1, rows - 1))
    i = draw(st.integers(0, rows - size))
    pre = draw(st.sampled_from(["", "  %t = add %x, %x\n", "  %t = neg %x\n"]))
    offsets, sizes, step = [0] * len(shape), list(shape), [0] * len(shape)
    sizes[-2], step[-2] = size, 1
    if lead and draw(st.booleans()):
        offsets[0], sizes[0] = 1, 1
    text = (f'target "lpu-v1"\nfunc @main(%x: {_tt(shape, e)}, %i: tensor<i32>) -> {_tt(tuple(sizes), e)} {{\n'
            f"{pre}  %s = slice {'%t' if pre else '%x'}, %i {{offsets = {offsets}, sizes = {sizes}, step = {step}}}\n"
            "  return %s\n}\n")
    return text, i


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lookups(), st.integers(0, 3))
def test_random_lookups_match_the_interpreter_bit_for_bit(prog, seed):
    text, i = prog
    out = run_source(text, "lookup.lpu", {"i": np.array(i, np.int32)}, check=True, seed=seed)
    assert out.hazards == [], text
    assert out.result.tobytes() == out.reference.tobytes(), text


def test_a_window_outside_the_tensor_at_index_0_is_a_diagnostic(tmp_path, monkeypatch, capsys):
    # rows 3 and 4 of 4 at index 0 (the interpreter accepts index -2): the gathers would start
    # past the table; it compiled to a wrong result before
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.lpu").write_text('''target "lpu-v1"
func @main(%x: tensor<4x320xi8>, %i: tensor<i32>) -> tensor<2x320xi8> {
  %s = slice %x, %i {offsets = [3, 0], sizes = [2, 320], step = [1, 0]}
  return %s
}
''')
    assert lpu_main(["compile", "s.lpu", "-o", "s.lpx"]) == 1
    assert capsys.readouterr().err == '''s.lpu:3:8: error: the code generator does not compile a slice with a run-time \
index whose window at index 0 lies outside the tensor yet
  %s = slice %x, %i {offsets = [3, 0], sizes = [2, 320], step = [1, 0]}
       ^~~~~
'''


# a table too large for one slice of a 64-word chip: 300 rows of 2 i8 vectors, striped over 32
# slices (10 rows each); rows 2 apart taken by a window of two rows
STRIPED = '''target "lpu-v1"
data @emb : tensor<300x400xi8> = load("emb.npy")
func @main(%i: tensor<i32>) -> tensor<2x400xi8> {
  %t = get @emb : tensor<300x400xi8>
  %e = slice %t, %i {offsets = [3, 0], sizes = [2, 400], step = [2, 0]}
  return %e
}
'''


@pytest.mark.parametrize("i", [0, 1, 14, 15, 147])
def test_rows_of_a_table_striped_over_slices(i, tmp_path):
    from test_codegen_vector import small_chip

    table = (np.arange(300 * 400) % 253 - 126).astype(np.int8).reshape(300, 400)
    np.save(tmp_path / "emb.npy", table)
    path = str(tmp_path / "striped.lpu")
    out = run_source(STRIPED, path, {"i": np.array(i, np.int32)}, check=True, config=small_chip(tmp_path, 64))
    assert out.hazards == [] and out.matches
    assert np.array_equal(out.result, table[[3 + 2 * i, 4 + 2 * i]])
    tables = {t.placement.slice for t in out.compiled.program.tensors if t.name.startswith("g")}
    assert len(tables) == 32
    assert out.cycles == 259  # 366 before the candidates lay beside their stripes


def _crowded_storage(free_slices: int, words_left: int = 10):
    """lpu-v1's storage with every slice but the ``free_slices`` farthest from the VXM left with
    only ``words_left`` words (as weights leave a model's chip): where a table's shares go."""
    from lpu.arch.config import load_config
    from lpu.dsl.codegen.lower import Lowering
    from lpu.dsl.codegen.vector import Storage

    cfg = load_config("lpu-v1")
    st = Storage.for_chip(cfg)
    vxm = next(q.position for q in cfg.queues if q.kind == "vxm")
    far = sorted(st.positions, key=lambda sl: -abs(st.positions[sl] - vxm))[:free_slices]
    for sl in st.positions:
        if sl not in far:
            st.budget.add(sl, cfg.words - words_left)
    return cfg, st, Lowering(st, cfg, None)


def test_a_table_the_least_filled_slices_cannot_take_goes_where_there_is_room():
    # 8,192 rows of 2 i8 vectors go as 4 shares of 4,096 words, but only one slice has room
    # for two and two for one: each share goes to the slice with the most room at its turn, so
    # one slice holds two (before: the 4 least-filled slices, one past its capacity — a
    # diagnostic on a chip the weights had filled unevenly)
    cfg, st, low = _crowded_storage(1)
    roomy = sorted(sl for sl in st.positions if st.budget.used(sl) == 0)
    for sl in sorted(st.positions)[:2]:
        st.budget.words[sl] = cfg.words - 6000
    table = (np.arange(8192 * 400) % 251 - 125).astype(np.int8).reshape(8192, 400)
    v = low.stripe("g", table, "i8", None)
    assert all(st.budget.used(sl) <= cfg.words for sl in st.positions)
    shares: dict[str, set] = {}
    for k, vec in enumerate(v.vecs):
        shares.setdefault(vec.symbol, set()).add(k // 2 % 4)
    assert sorted(len(rows) for rows in shares.values()) == [1, 1, 1, 1]  # row r in share r mod 4
    held = sorted(st.symbols[s].slice for s in shares)
    assert held == sorted(roomy * 2 + sorted(st.positions)[:2])


def test_weight_blocks_go_only_where_there_is_room():
    # the values' pool counts as half full for a weight window, but when the other slices are
    # fuller still (a model's weights), a block goes to the pool's slices rather than past a
    # slice's capacity
    from lpu.arch.config import load_config
    from lpu.dsl.codegen.vector import Storage

    cfg = load_config("lpu-v1")
    st = Storage.for_chip(cfg)
    for sl in st.positions:
        st.budget.add(sl, 5000 if sl in st.pool else cfg.words - 40)
    w = np.ones((640, 640), np.float16)  # 80 words a slice of its window
    st.alloc("w", w.shape, "f16", w, weights=True)
    assert all(st.budget.used(sl) <= cfg.words for sl in st.positions) and st.budget.over is None
