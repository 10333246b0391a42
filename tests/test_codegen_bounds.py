"""The lower bounds of docs/codegen.md ("Lower bound for a function", dsl/codegen/bounds.py):
a lane maximum's SXM trips as derived there, compile-time transposes free, lane sums at the
MXM's one pass — and every example's compiled cycles at or above its bound (a bound a
schedule beats is not one)."""

from __future__ import annotations

import math
import os

import pytest

from lpu.arch.config import load_config
from lpu.compile import compile_source
from lpu.dsl.codegen.bounds import _lane_extreme, _positions, function_bounds
from lpu.dsl.frontend import parse_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = load_config("lpu-v1")


def test_a_lane_maximum_takes_one_trip_within_a_superlane_and_two_across_the_chip():
    sxm, _ = _positions(CFG)
    trip = 2 * sxm + 2  # VXM -> SXM -> VXM, the rotate's latency
    assert (sxm, trip) == (45, 92)
    assert [_lane_extreme(n, sxm, CFG) for n in (1, 2, 16)] == [0, 92, 92]
    # one trip over 64 lanes: 48 moved vectors from other superlanes on the two SXM queues
    assert _lane_extreme(64, sxm, CFG) == min(92 + 24 - 1, 2 * 92 + 2 - 1) == 115
    # 256 lanes: two trips, the second's 15 moves across superlanes on two queues
    assert _lane_extreme(256, sxm, CFG) == 2 * 92 + 8 - 1 == 191
    assert _lane_extreme(320, sxm, CFG) == 2 * 92 + 10 - 1 == 193


def _chain(src: str) -> float:
    return function_bounds(parse_module(src, "b.lpu"), "main", CFG)["dependency chain"]


def test_reductions_and_transposes_in_the_chain():
    row = 'target "lpu-v1"\nfunc @main(%x: tensor<1x256xf32>) -> tensor<1x1xf32> {{\n  %r = {op} %x {{axis = -1}} : tensor<1x1xf32>\n  return %r\n}}\n'
    steps = 2 * 8  # log2(256) two-input steps of 2 cycles
    assert _chain(row.format(op="reduce_max")) == 191 + steps
    # a sum: one pass through the nearest plane (2 x 46, a bf16 mm, the acc)
    assert _chain(row.format(op="reduce_sum")) == 2 * 46 + 4 + CFG["mxm.acc_latency"]
    data = '''target "lpu-v1"
data @k : tensor<32x64xf16> = load("k.npy")
func @main(%q: tensor<1x64xf16>) -> tensor<1x32xf32> {
  %kk = get @k : tensor<32x64xf16>
  %kt = transpose %kk {perm = [1, 0]}
  %s = matmul %q, %kt : tensor<1x32xf32>
  return %s
}
'''
    # the transpose of data is the compiler's: only the matmul's round trip, one mm, the acc
    assert _chain(data) == 2 * 46 + 4 + CFG["mxm.acc_latency"]


@pytest.mark.parametrize("name", ["softmax", "layernorm", "attention", "mlp", "decoder"])
def test_every_example_runs_at_or_above_its_bound(name):
    path = os.path.join(ROOT, "examples", f"{name}.lpu")
    src = open(path).read()
    bound = max(function_bounds(parse_module(src, path), "main", CFG).values())
    c, _ = compile_source(src, path, "main", None)
    assert c.cycles >= math.ceil(bound)
