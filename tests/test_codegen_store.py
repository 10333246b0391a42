"""``store`` compiled (``dsl/codegen/store.py``): the three windows (static, a lane a step along
the last axis, whole rows), a ``get`` before the store seeing the previous run's contents, run
after run on one loaded image (``lpu.sim.runtime.Runtime``, SRAM kept between runs), each run's
results and the tensors the program wrote equal to the reference interpreter's."""

from __future__ import annotations

import numpy as np
import pytest

from lpu.compile import compile_source, link_compiled
from lpu.dsl.interpreter import run_function
from lpu.sim.runtime import Runtime


def runs(src: str, steps: list[dict], stored: list[str]):
    """Every step on the simulator and on the interpreter (each with its own SRAM state)."""
    c, module = compile_source(src, "t.lpu", "main")
    rt = Runtime(link_compiled(c), "t.lpu")
    sram: dict = {}
    cfg_lanes = c.program.config.lanes
    for k, args in enumerate(steps):
        for sym, a in c.inputs(args, cfg_lanes).items():
            rt.write(sym, a)
        step = rt.run()
        assert step.hazards == [], k
        got = c.results({s: rt.read(s) for s in c.output_symbols()})
        want = run_function(module, "main", args, sram=sram)
        want = want if isinstance(want, (list, tuple)) else [want]
        for g, w in zip(got, want):  # (f32 sums in the MXM's order: within an f32 rounding)
            g = np.asarray(g, w.dtype).reshape(w.shape)
            assert np.allclose(g, w, rtol=1e-6, atol=1e-6 * float(np.abs(w).max())), (k, np.abs(g - w).max())
        for sym in stored:
            assert np.array_equal(c.tensor(sym, rt.read), sram[sym]), (k, sym)
    return step.cycles


COLUMN = """target "lpu-v1"
reserve @kt : tensor<2x16x40xf16>

func @main(%k: tensor<2x16x1xf16>, %q: tensor<2x1x16xf16>, %pos: tensor<i32>) -> tensor<2x1x40xf32>, tensor<2x1x40xf32> {
  %old = get @kt
  %before = matmul %q, %old : tensor<2x1x40xf32>
  store %k, @kt, %pos {offsets = [0, 0, 0], step = [0, 0, 1]}
  %new = get @kt
  %after = matmul %q, %new : tensor<2x1x40xf32>
  return %before, %after
}
"""

ROWS = """target "lpu-v1"
reserve @v : tensor<2x40x16xf16>

func @main(%v: tensor<2x1x16xf16>, %p: tensor<2x1x40xf16>, %pos: tensor<i32>) -> tensor<2x1x16xf32>, tensor<2x1x16xf32> {
  %old = get @v
  %before = matmul %p, %old : tensor<2x1x16xf32>
  store %v, @v, %pos {offsets = [0, 0, 0], step = [0, 1, 0]}
  %new = get @v
  %after = matmul %p, %new : tensor<2x1x16xf32>
  return %before, %after
}
"""

STATIC = """target "lpu-v1"
data @acc : tensor<2x320xf32> = [1.0]

func @main(%x: tensor<2x320xf32>) -> tensor<2x320xf32> {
  %a = get @acc
  %s = add %a, %x
  store %s, @acc
  return %a
}
"""


def _steps(rng, n, shapes):
    return [{name: (rng.standard_normal(s).astype(np.float16) if s else np.asarray(i * 3 % 40, np.int32))
             for name, s in shapes.items()} for i in range(n)]


@pytest.mark.parametrize("src, shapes, stored", [
    (COLUMN, {"k": (2, 16, 1), "q": (2, 1, 16), "pos": ()}, ["kt"]),
    (ROWS, {"v": (2, 1, 16), "p": (2, 1, 40), "pos": ()}, ["v"]),
], ids=["column", "rows"])
def test_a_get_before_the_store_sees_the_last_runs_contents(src, shapes, stored):
    runs(src, _steps(np.random.default_rng(3), 5, shapes), stored)


def test_a_static_store_accumulates_from_run_to_run():
    rng = np.random.default_rng(4)
    runs(STATIC, [{"x": rng.standard_normal((2, 320)).astype(np.float32)} for _ in range(3)], ["acc"])
