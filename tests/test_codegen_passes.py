"""The code generator's stages as lpu-opt passes (register-block, sram-layout, schedule): the IR
after each, printed; the scheduled module assembles (lpu-as) to the code lpu compile makes."""

import numpy as np
import pytest

from lpu.arch.config import load_config
from lpu.asm.assembler import assemble
from lpu.compile import compile_source
from lpu.dsl.cli import optimize
from lpu.dsl.lpu_dialect import KernelOp
from lpu.dsl.passes import PASSES
from lpu.dsl.printer import print_module

CFG = load_config("lpu-v1")
GEMV = '''target "lpu-v1"

data @w : tensor<640x330xi8> = load("w.npy")

func @gemv(%x: tensor<640xi8>) -> tensor<330xi32> {
  %w = get @w : tensor<640x330xi8>
  %y = matmul %x, %w : tensor<330xi32>
  return %y
}
'''
GEMM = GEMV.replace("%x: tensor<640xi8>) -> tensor<330xi32>", "%x: tensor<20x640xi8>) -> tensor<20x330xi32>") \
    .replace(": tensor<330xi32>\n", ": tensor<20x330xi32>\n")


@pytest.fixture
def src(tmp_path):
    np.save(tmp_path / "w.npy", np.random.default_rng(0).integers(-128, 128, (640, 330)).astype(np.int8))

    def write(text, name="f.lpu"):
        (tmp_path / name).write_text(text)
        return str(tmp_path / name)
    return write


def matmul_line(module):
    return next(line for line in print_module(module).splitlines() if "= matmul" in line)


def test_registered():
    assert {"register-block", "sram-layout", "schedule"} <= set(PASSES)


def test_register_block_annotates_the_matmul(src):
    path = src(GEMV)
    m = optimize(GEMV, path, "register-block")
    assert matmul_line(m) == (
        '  %y = matmul %x, %w : tensor<330xi32>  // lpu.planes = 4; lpu.blocking = "gemv 640x330: k = 2, n = 2; '
        'MXM_W0: col 0 blocks 0:1; MXM_E0: col 0 blocks 1:2; MXM_W1: col 1 blocks 0:1; MXM_E1: col 1 blocks 1:2"')
    m = optimize(GEMV, path, "register-block{planes=1}")
    assert matmul_line(m).endswith('lpu.planes = 1; lpu.blocking = "gemv 640x330: k = 2, n = 2; '
                                   'MXM_W0: col 0 blocks 0:2, col 1 blocks 0:2"')


def test_register_block_gemm_tiles(src):
    path = src(GEMM)
    m = optimize(GEMM, path, "register-block{planes=2 tile_rows=8}")
    assert matmul_line(m).endswith(
        'lpu.planes = 2; lpu.tile_rows = 7; lpu.blocking = "gemm 20x640x330: k = 2, n = 2, tiles [(0, 6), (6, 13), '
        '(13, 20)]; MXM_W0: col 0 rows 0:6, col 0 rows 6:13, col 0 rows 13:20; MXM_E0: col 1 rows 0:6, '
        'col 1 rows 6:13, col 1 rows 13:20"')


def test_sram_layout_annotates_placements(src):
    path = src(GEMV)
    m = optimize(GEMV, path, "register-block{planes=1},sram-layout")
    line = matmul_line(m)
    layout = line.split('lpu.layout = "')[1].rstrip('"').split("; ")
    assert layout[0] == "@w_w0_0 80x320xi8 in MEM_W43" and layout[15] == "@w_w0_15 80x320xi8 in MEM_W28"
    assert layout[16:] == ["@x_w0 2x320xi8 in MEM_W11", "@y_w0 2x320xi32 in MEM_W9"]
    # without register-block first, sram-layout leaves the function alone
    assert "lpu." not in matmul_line(optimize(GEMV, path, "sram-layout"))


def test_schedule_replaces_the_function_with_a_kernel(src):
    path = src(GEMV)
    m = optimize(GEMV, path, "register-block{planes=1},sram-layout,schedule")
    kernels = [op for op in m.ops if isinstance(op, KernelOp)]
    assert len(kernels) == 1 and not any(op.name == "df.func" for op in m.ops)
    text = print_module(m)
    assert "data @w :" not in text  # the original tensor: re-laid out as stripes
    lines = text.splitlines()
    assert lines[:2] == ['target "lpu-v1"', ""]
    assert lines[2].startswith('data @w_w0_0 : tensor<80x320xi8> in MEM_W43 = hex"')
    assert "global kernel @gemv {" in lines
    # the printed module is assembly: lpu-as makes the same code as lpu compile with one plane
    prog = assemble(text, "sched.lpu")
    c, _ = compile_source(open(path).read(), path, max_planes=1)
    assert sorted((i.cycle, i.queue, i.spec.mnemonic, i.args) for i in prog.kernels[0].insts) == \
        sorted((i.cycle, i.queue, i.spec.mnemonic, i.args) for i in c.program.kernels[0].insts)
    assert prog.kernels[0].length == c.cycles == 124


def test_functions_the_stages_do_not_match_are_left_alone(src):
    text = 'target "lpu-v1"\nfunc @f(%a: tensor<4xf32>) -> tensor<4xf32> {\n  %b = relu %a\n  return %b\n}\n'
    m = optimize(text, src(text), "register-block,sram-layout,schedule")
    assert print_module(m) == print_module(optimize(text, src(text), ""))
