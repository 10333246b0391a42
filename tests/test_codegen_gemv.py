"""GEMV end to end: df function -> register-block -> sram-layout -> schedule -> object ->
lpu-ld -> lpu-sim, equal to the reference interpreter, zero hazards, exact cycle counts."""

import numpy as np
import pytest

from lpu.arch.config import load_config
from lpu.diagnostics import DiagnosticError
from lpu.dsl.codegen import compile_function
from lpu.dsl.codegen.register_block import plane_order, register_block
from lpu.dsl.codegen.sram_layout import sram_layout
from lpu.dsl.frontend import parse_module
from lpu.dsl.interpreter import run_function
from lpu.linker.link import link_objects
from lpu.sim.cli import simulate

CFG = load_config("lpu-v1")


def gemv_source(K: int, N: int) -> str:
    return f'''target "lpu-v1"
data @w : tensor<{K}x{N}xi8> = load("w.npy")
func @gemv(%x: tensor<{K}xi8>) -> tensor<{N}xi32> {{
  %w = get @w : tensor<{K}x{N}xi8>
  %y = matmul %x, %w : tensor<{N}xi32>
  return %y
}}
'''


def make(tmp_path, K, N, seed=0):
    rng = np.random.default_rng(seed)
    np.save(tmp_path / "w.npy", rng.integers(-128, 128, (K, N)).astype(np.int8))
    path = tmp_path / "gemv.lpu"
    path.write_text(gemv_source(K, N))
    return parse_module(path.read_text(), str(path)), rng.integers(-128, 128, K).astype(np.int8)


def run_compiled(c, x):
    image = link_objects([("gemv", c.obj)])
    r = simulate(image, inputs=c.inputs({"x": x}, CFG.lanes), outputs=c.output_symbols())
    return c.result(r.outputs, CFG.lanes), r


@pytest.mark.parametrize("K,N,cycles", [(320, 320, 51), (640, 640, 73), (400, 700, 105)])
def test_gemv_matches_interpreter(tmp_path, K, N, cycles):
    module, x = make(tmp_path, K, N)
    c = compile_function(module, "gemv", CFG, str(tmp_path))
    y, r = run_compiled(c, x)
    ref = run_function(module, "gemv", {"x": x}, base_dir=str(tmp_path))[0]
    assert r.hazards == []
    assert y.dtype == np.int32 and np.array_equal(y, ref)
    assert c.cycles == r.machine.cycles == cycles


def test_one_plane_only(tmp_path):
    module, x = make(tmp_path, 640, 640, seed=3)
    c = compile_function(module, "gemv", CFG, str(tmp_path), max_planes=1)
    y, r = run_compiled(c, x)
    assert r.hazards == [] and np.array_equal(y, run_function(module, "gemv", {"x": x}, base_dir=str(tmp_path))[0])
    # lead of the farthest weight read, column 0 (2 blocks of 22 cycles + acc), column 1's blocks,
    # then its acc: 4 cycles of latency, 8 positions to the stripe slice whose queue is free
    # then (MEM_W37), 4 cycles of i32 write
    assert c.cycles == 19 + (2 * 22 + 1) + 2 * 22 + 4 + 8 + 4
    assert c.program.tensors[-1].name == "y_w0" and str(c.program.tensors[-1].placement) == "MEM_W37"


def test_register_block_cuts_equal_runs_split_parts_first(tmp_path):
    module, _ = make(tmp_path, 700, 1500)
    w = np.load(tmp_path / "w.npy")
    plan = register_block(module, "gemv", CFG, lambda d: w)
    assert (plan.k, plan.n) == (3, 5)
    assert plane_order(CFG) == ["MXM_W0", "MXM_E0", "MXM_W1", "MXM_E1"]
    # 15 blocks column-major: runs of 4, 4, 4, 3; (j, i0, i1) parts, split columns first
    assert [(p.plane, p.parts) for p in plan.planes] == [
        ("MXM_W0", [(1, 0, 1), (0, 0, 3)]), ("MXM_E0", [(1, 1, 3), (2, 0, 2)]),
        ("MXM_W1", [(2, 2, 3), (3, 0, 3)]), ("MXM_E1", [(4, 0, 3)])]
    assert plan.weights.shape == (960, 1600)
    assert np.array_equal(plan.weights[:700, :1500], w) and not plan.weights[700:].any()


@pytest.mark.parametrize("K,N,planes", [(1600, 300, 4), (700, 1500, 4), (960, 640, 3)])
def test_split_columns_are_added_on_the_vxm(tmp_path, K, N, planes):
    module, x = make(tmp_path, K, N, seed=K)
    c = compile_function(module, "gemv", CFG, str(tmp_path), max_planes=planes)
    assert len(c.layout.planes) == planes
    assert any(op.SPEC.mnemonic == "add" for op in c.kernel.insts())
    y, r = run_compiled(c, x)
    assert r.hazards == []
    assert np.array_equal(y, run_function(module, "gemv", {"x": x}, base_dir=str(tmp_path))[0])


def test_sram_layout_stripes_rows_over_sixteen_slices(tmp_path):
    module, _ = make(tmp_path, 640, 320)
    w = np.load(tmp_path / "w.npy")
    plan = register_block(module, "gemv", CFG, lambda d: w, max_planes=1)
    lay = sram_layout(plan, CFG)
    (pl,) = lay.planes
    assert pl.weight_slices[0] == ("MEM_W43", 3) and pl.weight_slices[15] == ("MEM_W28", 18)
    assert pl.x_slice == ("MEM_W11", 35) and pl.y_slice == ("MEM_W9", 37)
    t = {x.name: x for x in lay.tensors}
    from lpu.arch.layout import from_sram
    rows = from_sram(t["w_w0_5"].image, t["w_w0_5"].shape, "i8", CFG.lanes)
    assert np.array_equal(rows, np.concatenate([w[5:320:16], w[320 + 5::16]]))


def test_unsupported_op_is_a_diagnostic(tmp_path):
    src = '''target "lpu-v1"
func @f(%a: tensor<320xi8>) -> tensor<320xi8> {
  %b = add %a, %a : tensor<320xi8>
  return %b
}
'''
    module = parse_module(src, "f.lpu")
    from lpu.dsl.codegen.register_block import register_block

    with pytest.raises(DiagnosticError) as e:  # compile_function sends it to the general path
        register_block(module, "f", CFG, lambda d: None)
    (d,) = e.value.diagnostics
    assert d.message == ("the code generator does not handle a function without a matmul yet (supported: "
                         "'y = matmul x, W' with x a vector argument and W an argument or a 'data' tensor, i8, "
                         "f16 or bf16)")


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(K=st.integers(1, 1000), N=st.integers(1, 1000), planes=st.sampled_from([None, 1, 2, 3, 4]),
       seed=st.integers(0, 2**16))
def test_random_gemv_shapes_match_the_interpreter(tmp_path, K, N, planes, seed):
    module, x = make(tmp_path, K, N, seed)
    c = compile_function(module, "gemv", CFG, str(tmp_path), max_planes=planes)
    y, r = run_compiled(c, x)
    assert r.hazards == []
    assert np.array_equal(y, run_function(module, "gemv", {"x": x}, base_dir=str(tmp_path))[0])
    assert c.cycles == r.machine.cycles


def test_compiling_twice_gives_the_same_object(tmp_path):
    from lpu.asm.objfile import write_object
    module, _ = make(tmp_path, 1000, 1300, seed=5)
    a = compile_function(module, "gemv", CFG, str(tmp_path))
    b = compile_function(module, "gemv", CFG, str(tmp_path))
    assert write_object(a.obj) == write_object(b.obj)


def f16_source(K: int, N: int) -> str:
    return gemv_source(K, N).replace("xi8", "xf16").replace(f"{N}xi32", f"{N}xf32")


@pytest.mark.parametrize("K,N,planes,cycles", [(320, 320, None, 74), (700, 1000, None, 190), (1600, 300, 4, 180)])
def test_f16_gemv_matches_interpreter_within_tolerance(tmp_path, K, N, planes, cycles):
    from lpu.compile import matches
    rng = np.random.default_rng(K + N)
    np.save(tmp_path / "w.npy", rng.standard_normal((K, N)).astype(np.float16))
    src = f16_source(K, N)
    assert "tensor<%dxf16>" % K in src and "-> tensor<%dxf32>" % N in src
    module = parse_module(src, str(tmp_path / "g.lpu"))
    x = rng.standard_normal(K).astype(np.float16)
    c = compile_function(module, "gemv", CFG, str(tmp_path), max_planes=planes)
    y, r = run_compiled(c, x)
    ref = run_function(module, "gemv", {"x": x}, base_dir=str(tmp_path))[0]
    assert r.hazards == [] and y.dtype == np.float32
    assert matches(y, ref)
    assert not matches(y + np.float32(1e-3) * np.abs(ref).max(), ref)
    assert c.cycles == r.machine.cycles == cycles
    # f16 rows are 2-stream groups: lw takes 8 a cycle, 40 lw per block; each slice reads every 2nd cycle
    lws = [op for op in c.kernel.insts() if op.SPEC.mnemonic == "lw"]
    assert {op.attributes["rows"].value.data for op in lws} == {8}
