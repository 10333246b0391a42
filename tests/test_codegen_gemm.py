"""GEMM end to end: X (M x K) · W through register-block -> sram-layout -> schedule -> unroll ->
object -> lpu-ld -> lpu-sim; equal to the interpreter (i8 exactly, f16 within
lpu.compile.FLOAT_RTOL), zero hazards, exact cycle counts."""

import numpy as np
import pytest
from hypothesis import given, settings, HealthCheck, strategies as st

from lpu.arch.config import load_config
from lpu.compile import matches, run_source
from lpu.dsl.codegen import compile_function
from lpu.dsl.codegen.gemm import GemmPlan, gemm_result_rows
from lpu.dsl.codegen.gemm_schedule import schedule_gemm
from lpu.dsl.codegen.register_block import register_block
from lpu.dsl.codegen.sram_layout import sram_layout
from lpu.dsl.frontend import parse_module
from lpu.dsl.interpreter import _State, run_function
from lpu.dsl.lpu_dialect import to_kernel
from lpu.linker.link import link_objects
from lpu.sim.cli import simulate

CFG = load_config("lpu-v1")
ACC = {"i8": "i32", "f16": "f32", "bf16": "f32"}


def gemm_source(M, K, N, elem, w_arg=False):
    a = ACC[elem]
    if w_arg:
        return (f'target "lpu-v1"\nfunc @gemm(%x: tensor<{M}x{K}x{elem}>, %w: tensor<{K}x{N}x{elem}>) '
                f'-> tensor<{M}x{N}x{a}> {{\n  %y = matmul %x, %w : tensor<{M}x{N}x{a}>\n  return %y\n}}\n')
    return (f'target "lpu-v1"\ndata @w : tensor<{K}x{N}x{elem}> = load("w.npy")\n'
            f"func @gemm(%x: tensor<{M}x{K}x{elem}>) -> tensor<{M}x{N}x{a}> {{\n"
            f"  %w = get @w : tensor<{K}x{N}x{elem}>\n  %y = matmul %x, %w : tensor<{M}x{N}x{a}>\n  return %y\n}}\n")


def make(tmp_path, M, K, N, elem, seed=0):
    rng = np.random.default_rng(seed)
    if elem == "i8":
        w = rng.integers(-128, 128, (K, N)).astype(np.int8)
        x = rng.integers(-128, 128, (M, K)).astype(np.int8)
    else:
        w = rng.standard_normal((K, N)).astype(np.float16)
        x = rng.standard_normal((M, K)).astype(np.float16)
    np.save(tmp_path / "w.npy", w)
    path = tmp_path / "gemm.lpu"
    path.write_text(gemm_source(M, K, N, elem))
    return parse_module(path.read_text(), str(path)), x, w


def simulate_compiled(c, args):
    r = simulate(link_objects([("gemm", c.obj)]), inputs=c.inputs(args, CFG.lanes), outputs=c.output_symbols())
    return c.result(r.outputs, CFG.lanes), r


@pytest.mark.parametrize("M,K,N,elem,planes,cycles", [
    (64, 320, 320, "i8", 4, 138),    # one block: the 64 rows are cut into 4 tiles, one a plane
    (100, 700, 500, "i8", 4, 346),   # ragged in all three dimensions
    (64, 640, 320, "f16", 4, 254),   # the shape of examples/gemm_f16.lpu
    (3, 400, 330, "f16", 2, 161),    # fewer rows than planes
])
def test_gemm_matches_interpreter(tmp_path, M, K, N, elem, planes, cycles):
    module, x, _ = make(tmp_path, M, K, N, elem)
    c = compile_function(module, "gemm", CFG, str(tmp_path))
    assert isinstance(c.plan, GemmPlan) and len(c.plan.planes) == planes
    y, r = simulate_compiled(c, {"x": x})
    ref = run_function(module, "gemm", {"x": x}, base_dir=str(tmp_path))[0]
    assert r.hazards == []
    assert y.dtype == ref.dtype == np.dtype(ACC[elem].replace("i", "int").replace("f", "float"))
    assert matches(y, ref)
    if elem == "i8":
        assert np.array_equal(y, ref)
    assert c.cycles == r.machine.cycles == cycles


def test_blocking_reuses_each_weight_load_for_a_tile(tmp_path):
    """M = 130 rows: 3 tiles (64 slots at most), each unit = one tile x one column; units are
    spread evenly and each plane stores every block it needs once."""
    module, _, _ = make(tmp_path, 130, 700, 960, "i8")
    state = _State(module, str(tmp_path), {})
    plan = register_block(module, "gemm", CFG, lambda d: state.tensor(d.sym_name.data, d))
    assert plan.tiles == [(0, 43), (43, 86), (86, 130)]
    assert [w.plane for w in plan.planes] == ["MXM_W0", "MXM_E0", "MXM_W1", "MXM_E1"]
    assert [len(w.units) for w in plan.planes] == [3, 2, 2, 2]
    assert plan.planes[0].units == [(0, 0, 43), (0, 43, 86), (0, 86, 130)]
    layout = sram_layout(plan, CFG)
    assert layout.planes[0].blocks == [(0, 0), (1, 0), (2, 0)]  # one column, loaded 3 times, stored once
    assert layout.planes[1].blocks == [(0, 1), (1, 1), (2, 1)]
    rows = gemm_result_rows(layout)
    assert len(rows) == 130 * 3 and rows[(44, 0)] == ("y_w0_1", 11 + 0)


def test_mm_per_row_and_lw_per_block(tmp_path):
    """The scheduled kernel holds exactly one mm per (row, block) and 20 lw a block load."""
    module, _, _ = make(tmp_path, 130, 700, 960, "i8")
    c = compile_function(module, "gemm", CFG, str(tmp_path))
    k = to_kernel(c.kernel, CFG)
    ops = [i.spec.mnemonic for i in k.insts]
    assert ops.count("mm") == 130 * 3 * 3  # rows x K blocks x N blocks
    assert ops.count("acc") == 130 * 3
    loads = 3 * 3 * 3  # (tiles x columns) units x K blocks
    assert ops.count("iw") == loads
    # lw + repeat 19, 1 per load (unroll folds the 20 row groups)
    assert ops.count("lw") == loads


def test_unroll_changes_words_not_cycles(tmp_path):
    module, x, _ = make(tmp_path, 64, 640, 320, "f16", seed=2)
    c = compile_function(module, "gemm", CFG, str(tmp_path), max_planes=4)
    flat = schedule_gemm(c.plan, c.layout, CFG, "gemm", compact=False)
    kf, kc = to_kernel(flat, CFG), to_kernel(c.kernel, CFG)
    assert kf.length == kc.length == c.cycles
    assert len(kc.insts) < len(kf.insts) // 2
    assert not any(i.spec.mnemonic == "repeat" for i in kf.insts)


def test_weights_as_argument(tmp_path):
    path = tmp_path / "g.lpu"
    path.write_text(gemm_source(70, 330, 650, "i8", w_arg=True))
    out = run_source(path.read_text(), str(path), check=True, seed=5)
    assert out.hazards == [] and out.matches
    assert out.result.shape == (70, 650) and out.cycles == out.compiled.cycles


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(M=st.integers(2, 70), K=st.integers(1, 700), N=st.integers(1, 700), elem=st.sampled_from(["i8", "f16"]))
def test_random_shapes(tmp_path, M, K, N, elem):
    module, x, _ = make(tmp_path, M, K, N, elem, seed=M + K + N)
    c = compile_function(module, "gemm", CFG, str(tmp_path))
    y, r = simulate_compiled(c, {"x": x})
    assert r.hazards == [] and c.cycles == r.machine.cycles
    assert matches(y, run_function(module, "gemm", {"x": x}, base_dir=str(tmp_path))[0])


def test_left_operand_too_large_for_a_slice(tmp_path):
    """X is kept whole in one slice per plane: 1024 rows x 9 K blocks of i8 is 9216 words."""
    from lpu.compile import compile_source
    from lpu.diagnostics import DiagnosticError

    text = ('target "lpu-v1"\nfunc @gemm(%x: tensor<1024x2700xi8>, %w: tensor<2700x320xi8>) -> tensor<1024x320xi32> {\n'
            "  %y = matmul %x, %w : tensor<1024x320xi32>\n  return %y\n}\n")
    with pytest.raises(DiagnosticError) as e:
        compile_source(text, "g.lpu")
    d = e.value.diagnostics[0]
    assert (d.loc.line, d.loc.col) == (3, 8)
    assert d.message == ("the left operand (1024 x 2700 i8) needs 9216 words in one slice per plane (MEM_W11 for "
                         "MXM_W0); a slice holds 8192")
