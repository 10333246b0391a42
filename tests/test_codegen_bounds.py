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


def test_weights_beyond_the_planes_buffers_stream_in_after_the_input():
    # 640 x 6400 f16 weights: 8,192,000 bytes; the four planes' active and shadow buffers hold
    # 8 x 320 x 320 f16 (1,638,400) before x is there, the rest streams in at 20,480 bytes a
    # cycle (4 lw of 16 rows x 320): 320 cycles, then one mm (4), the acc (4), the way back (46)
    src = '''target "lpu-v1"
func @main(%x: tensor<1x640xf16>, %w: tensor<640x6400xf16>) -> tensor<1x6400xf32> {
  %y = matmul %x, %w : tensor<1x6400xf32>
  return %y
}
'''
    module = parse_module(src, "b.lpu")
    one = function_bounds(module, "main", CFG)
    assert one["dependency chain"] == (8_192_000 - 1_638_400) // 20_480 + 4 + 4 + 46 == 374
    assert one["weight streams"] == 8_192_000 / 20_480
    # on two chips, twice the buffers and the streams: any split of the columns
    two = function_bounds(module, "main", CFG, chips=2)
    assert two["dependency chain"] == (8_192_000 - 2 * 1_638_400) // 40_960 + 4 + 4 + 46 == 174
    assert two["weight streams"] == 8_192_000 / 40_960


def test_a_matmul_after_another_waits_for_both_their_weights():
    # two 640 x 1280 f16 matmuls in a row (16 blocks): the second's weights and the first's
    # stream in after x less what the buffers hold: (3,276,800 - 1,638,400) / 20,480 = 80 cycles,
    # fewer than the chain of the two round trips, which stays the bound
    src = '''target "lpu-v1"
func @main(%x: tensor<1x640xf16>, %a: tensor<640x1280xf16>, %b: tensor<1280x640xf16>) -> tensor<1x640xf32> {
  %h = matmul %x, %a : tensor<1x1280xf32>
  %g = cast %h : tensor<1x1280xf16>
  %y = matmul %g, %b : tensor<1x640xf32>
  return %y
}
'''
    first = 2 * 46 + 2 * 4 + 4
    second = 2 * 46 + 4 * 4 + 4
    assert _chain(src) == first + 2 + second
