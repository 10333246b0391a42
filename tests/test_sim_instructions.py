"""lpu-sim, one instruction at a time where test_sim.py has none: gather, permute, mm in f16 and
bf16 (f32 accumulation), i8 mm accumulating past 2^31 in one repeat batch, sync released by a
notify. Each checks the result against numpy and the cycle the result appears: the program
stores it in the one cycle it passes, and the same program one cycle earlier reads nothing."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from test_sim import first_error, run_text

HEAD = 'target "lpu-v1"\n'


def early(tmp_path, monkeypatch, text: str, line: str, cycle: int, **kw) -> str:
    """The first diagnostic of ``text`` with the instruction ``line`` moved to ``cycle``."""
    at = line.split()[0]
    res = run_text(tmp_path, text.replace(line, line.replace(at, f"@{cycle}", 1)), monkeypatch=monkeypatch, **kw)
    return first_error(res).splitlines()[0]


# --- MEM gather --------------------------------------------------------------------------------
GATHER = HEAD + """data @table : tensor<8x320xi8> in MEM_W0 at 0 = load("table.npy")
data @idx : tensor<320xi32> in MEM_W1 = load("idx.npy")
reserve @out : tensor<320xi8> in MEM_E1
kernel @k {
  @0 MEM_W1 read.i32 [@idx], s0e
  @3 MEM_W0 gather.i8 [@table + 1], s0e, s8e
  @8 MEM_E1 write.i8 [@out], s8e
}
"""


def test_gather_reads_base_plus_lane0(tmp_path, monkeypatch):
    # the index (an i32 group from MEM_W1, position 45) passes MEM_W0 (46) at 0 + 2 + 1 = 3; the
    # gathered row is on s8e at 46 in 3 + 2 = 5 and at MEM_E1 (49) in 8
    table = np.arange(8 * 320).reshape(8, 320).astype(np.int8)
    idx = np.full(320, 99, np.int32)
    idx[0] = 5  # only lane 0 counts
    npys = {"table.npy": table, "idx.npy": idx}
    res = run_text(tmp_path, GATHER, outputs=["out"], npys=npys)
    assert res.hazards == [] and np.array_equal(res.outputs["out"], table[6])
    assert res.machine.cycles == 9
    assert early(tmp_path, monkeypatch, GATHER, "@8 MEM_E1 write.i8 [@out], s8e", 7) == (
        f"{tmp_path}/t.lpu:8:3: error: empty stream read (no value on s8e at MEM_E1, position 49) on chip chip0, "
        "cycle 7, MEM_E1: write.i8 [@out], s8e")


# --- MEM scatter (the mirror of gather) ---------------------------------------------------------
SCATTER = HEAD + """data @row : tensor<320xi8> in MEM_W2 = load("row.npy")
data @idx : tensor<320xi32> in MEM_W1 = load("idx.npy")
reserve @table : tensor<8x320xi8> in MEM_W0 at 0
kernel @k {
  @0 MEM_W2 read.i8 [@row], s8e
  @1 MEM_W1 read.i32 [@idx], s0e
  @4 MEM_W0 scatter.i8 [@table + 1], s0e, s8e
}
"""


def test_scatter_writes_base_plus_lane0(tmp_path, monkeypatch):
    # the row (MEM_W2, position 44) is on s8e at 0 + 2 and passes MEM_W0 (46) at 4; the index
    # (MEM_W1, 45) passes it at 1 + 2 + 1 = 4: the row lands at word 1 + lane 0 of the index
    row = np.arange(320).astype(np.int8)
    idx = np.full(320, 99, np.int32)
    idx[0] = 5  # only lane 0 counts
    res = run_text(tmp_path, SCATTER, outputs=["table"], npys={"row.npy": row, "idx.npy": idx})
    want = np.zeros((8, 320), np.int8)
    want[6] = row
    assert res.hazards == [] and np.array_equal(res.outputs["table"].reshape(8, 320), want)
    assert early(tmp_path, monkeypatch, SCATTER, "@4 MEM_W0 scatter.i8 [@table + 1], s0e, s8e", 3) == (
        f"{tmp_path}/t.lpu:8:3: error: empty stream read (no value on s0e at MEM_W0, position 46) on chip chip0, "
        "cycle 3, MEM_W0: scatter.i8 [@table + 1], s0e, s8e")


def test_gather_index_out_of_range(tmp_path):
    idx = np.zeros(320, np.int32)
    idx[0] = 9000
    res = run_text(tmp_path, GATHER, npys={"table.npy": np.zeros((8, 320), np.int8), "idx.npy": idx})
    assert first_error(res).splitlines() == [
        f"{tmp_path}/t.lpu:7:3: error: address out of range (words 9001..9001 of a 8192-word slice) on chip chip0, "
        "cycle 3, MEM_W0: gather.i8 [@table + 1], s0e, s8e",
        "  @3 MEM_W0 gather.i8 [@table + 1], s0e, s8e",
        "  ^",
    ]


# --- SXM permute -------------------------------------------------------------------------------
PERMUTE = HEAD + """data @a : tensor<320x{t}> in MEM_E43 = load("a.npy")
data @map : tensor<320x{m}> in MEM_E = load("map.npy")
reserve @out : tensor<320x{t}> in MEM_E42
kernel @k {{
  @{r} MEM_E43 read.{t} [@a], s0e
  @5 SXM_E permute.{t} s0e, @map, s16w
  @9 MEM_E42 write.{t} [@out], s16w
}}
"""


@pytest.mark.parametrize("t,m", [("i8", "i16"), ("f16", "i32"), ("i32", "i16")])
def test_permute(tmp_path, monkeypatch, t, m):
    # a read at 2 (from position 91) passes SXM_E (92) at 5; the result is at 92 in 7 and at
    # MEM_E42 (90) in 9. The map's element type is its symbol's; entries outside 0..319 pick lane 0
    rng = np.random.default_rng(7)
    a = (rng.normal(0, 100, 320) if t == "f16" else rng.integers(-100, 100, 320)).astype(np.dtype(t.replace("f", "float").replace("i", "int")))
    lane_map = rng.permutation(320).astype(np.dtype(m.replace("i", "int")))
    lane_map[:3] = [400, -3, 319]
    text = PERMUTE.format(t=t, m=m, r=2)
    res = run_text(tmp_path, text, outputs=["out"], npys={"a.npy": a, "map.npy": lane_map})
    assert res.hazards == []
    ref = a[np.where((lane_map >= 0) & (lane_map < 320), lane_map, 0)]
    assert res.outputs["out"].tobytes() == ref.tobytes()
    assert early(tmp_path, monkeypatch, text, "@9 MEM_E42", 8, npys={"a.npy": a, "map.npy": lane_map}) == (
        f"{tmp_path}/t.lpu:8:3: error: empty stream read (no value on s16w at MEM_E42, position 90) on chip chip0, "
        f"cycle 8, MEM_E42: write.{t} [@out], s16w")


# --- MXM in f16 and bf16 -------------------------------------------------------------------------
MM_FLOAT = HEAD + """reserve @w : tensor<3x320x{t}> in MEM_W43
reserve @x : tensor<320x{t}> in MEM_W42
reserve @y : tensor<320xf32> in MEM_W41
reserve @y0 : tensor<320xf32> in MEM_W40
kernel @k {{
  @0 MEM_W43 read.{t} [@w], s0w
  @2 MEM_W43 repeat 2, 2
  @4 MXM_W0 lw.{t} s0w, 1
  @6 MXM_W0 repeat 2, 2
  @9 MXM_W0 iw
  @5 MEM_W42 read.{t} [@x], s2w
  @10 MXM_W0 mm.{t} s2w, acc0, set
  @13 MXM_W0 acc.f32 acc0, s4e
  @14 MXM_W0 acc.f32 acc0, s0e
  @22 MEM_W41 write.f32 [@y], s0e
  @22 MEM_W40 write.f32 [@y0], s4e
}}
"""


@pytest.mark.parametrize("t,big", [("f16", 2048.0), ("bf16", 256.0)])
def test_mm_float_accumulates_in_f32(tmp_path, t, big):
    # rows reach MXM_W (position 1) from MEM_W43 (3) at 4, 6, 8 and load one a cycle; iw at 9
    # makes them active from 10. y = x · W with W[0] = big, W[1] = lane mod 3, W[2] = -1 and
    # x = (1, 1, 2): the partial sum big + 1 is not a number of the type (its spacing there is
    # 2), so only f32 accumulation gives big + (j mod 3) - 2 exactly. The mm at 10 occupies the plane until 14:
    # an acc at 13 still sees the slot's old value (zero), one at 14 the product; acc latency 4
    # puts them on the streams at position 1 in 17 and 18, at MEM_W40 (6) and MEM_W41 (5) in 22.
    nt = ml_dtypes.bfloat16 if t == "bf16" else np.float16
    w = np.zeros((3, 320), nt)
    w[0], w[1], w[2] = big, np.arange(320) % 3, -1
    x = np.zeros(320, nt)
    x[:3] = 1, 1, 2
    res = run_text(tmp_path, MM_FLOAT.format(t=t), inputs={"w": w, "x": x}, outputs=["y", "y0"])
    assert res.hazards == []
    want = big + np.arange(320) % 3 - 2
    assert np.array_equal(res.outputs["y"], want.astype(np.float32))
    # accumulating in the type itself would have lost the 1 of big + 1 (round to even)
    in_type = ((w[0] + w[1]).astype(nt) + (w[2] * nt(2)).astype(nt)).astype(nt)
    assert not np.array_equal(in_type.astype(np.float32), want.astype(np.float32))
    assert np.array_equal(res.outputs["y0"], np.zeros(320, np.float32))
    # the run ends when the f32 writes of cycle 22 free their ports (4 words): cycle 26
    assert res.stats["mxm"]["mm_cycles"] == 4 and res.machine.cycles == 26


def test_mm_i8_accumulates_past_2_31_in_one_batch(tmp_path):
    # 500 repetitions of mm.i8 ... add (one numpy batch): the i32 slot wraps like hardware
    n = 500
    rng = np.random.default_rng(11)
    w = np.full((320, 320), 127, np.int8)
    x = rng.integers(120, 128, (n, 320)).astype(np.int8)
    text = HEAD + f"""data @w : tensor<320x320xi8> in MEM_W43 = load("w.npy")
data @x : tensor<{n}x320xi8> in MEM_W42 = load("x.npy")
reserve @y : tensor<320xi32> in MEM_W41
kernel @k {{
  @0 MEM_W43 read.i8 [@w], s0w
  @1 MEM_W43 repeat 319, 1
  @4 MXM_W0 lw.i8 s0w, 1
  @5 MXM_W0 repeat 319, 1
  @324 MXM_W0 iw
  @320 MEM_W42 read.i8 [@x], s1w
  @321 MEM_W42 repeat {n - 1}, 1
  @325 MXM_W0 mm.i8 s1w, acc3, add
  @326 MXM_W0 repeat {n - 1}, 1
  @{325 + n} MXM_W0 acc.i32 acc3, s0e
  @{325 + n + 8} MEM_W41 write.i32 [@y], s0e
}}
"""
    res = run_text(tmp_path, text, outputs=["y"], npys={"w.npy": w, "x.npy": x})
    assert res.hazards == []
    total = (x.astype(np.int64) @ w.astype(np.int64)).sum(axis=0)
    assert total.max() > 2 ** 31  # it does wrap
    assert np.array_equal(res.outputs["y"], total.astype(np.uint32).view(np.int32))
    assert res.stats["mxm"]["mm_cycles"] == n


# --- ICU: a sync released by a notify ---------------------------------------------------------
SYNC = HEAD + """data @a : tensor<320xi8> in MEM_W0 = load("a.npy")
reserve @b : tensor<320xi8> in MEM_E1
kernel @k {
  @10 VXM.3 notify 3
  @2 MEM_W0 sync 3
  @3 MEM_W0 read.i8 [@a], s0e
  @16 MEM_E1 write.i8 [@b], s0e
}
"""


def test_sync_released_by_notify(tmp_path, monkeypatch):
    # MEM_W0 waits at its sync (cycle 2) until VXM.3's notify in cycle 10: its read issues at 11,
    # not 3, and the value passes MEM_E1 (49) at 11 + 2 + 3 = 16. (The assembler's timing check
    # assumes the read at 3, so it is off for this program.)
    a = np.arange(320).astype(np.int8)
    res = run_text(tmp_path, SYNC, outputs=["b"], npys={"a.npy": a}, monkeypatch=monkeypatch)
    assert res.hazards == [] and np.array_equal(res.outputs["b"], a)
    read = next(g for g in res.machine.groups if g.spec.mnemonic == "read")
    assert read.issue == 11 and res.machine.cycles == 17
    assert early(tmp_path, monkeypatch, SYNC, "@16 MEM_E1", 15, npys={"a.npy": a}).startswith(
        f"{tmp_path}/t.lpu:8:3: error: empty stream read (no value on s0e at MEM_E1, position 49) on chip chip0, "
        "cycle 15")


def test_sync_waits_for_every_notifying_queue(tmp_path, monkeypatch):
    # two queues notify barrier 3; the sync is released by the later one (cycle 12)
    text = SYNC.replace("  @10 VXM.3 notify 3\n", "  @10 VXM.3 notify 3\n  @12 VXM.4 notify 3\n") \
        .replace("@16 MEM_E1", "@18 MEM_E1")
    a = np.arange(320).astype(np.int8)
    res = run_text(tmp_path, text, outputs=["b"], npys={"a.npy": a}, monkeypatch=monkeypatch)
    assert res.hazards == [] and np.array_equal(res.outputs["b"], a)
    assert next(g for g in res.machine.groups if g.spec.mnemonic == "read").issue == 13


# --- a repeat group that feeds itself ------------------------------------------------------------
COUNTER = HEAD + """data @a : tensor<320xi32> in MEM_W0 = load("a.npy")
reserve @out : tensor<320xi32> in MEM_E1
kernel @k {
  @0 MEM_W0 read.i32 [@a], s0e
  @3 VXM.0 add.i32 s0e, 1, s0e
  @5 VXM.0 repeat 99, 2
  @205 MEM_E1 write.i32 [@out], s0e
}
"""


def test_repeat_group_reading_its_own_results(tmp_path):
    """add.i32 s0e, 1, s0e every 2 cycles at the VXM: each repetition reads the previous one's
    result (latency 2), so the group runs one repetition at a time: a running count."""
    a = np.arange(320, dtype=np.int32) * 1000
    res = run_text(tmp_path, COUNTER, outputs=["out"], npys={"a.npy": a})
    assert res.hazards == [] and np.array_equal(res.outputs["out"], a + 100)
    assert res.machine.instructions == 102 and res.machine.cycles == 209


def test_rows_not_reloaded_keep_their_weights(tmp_path):
    """lw fills the shadow buffer from row 0 after each iw; rows not reloaded keep their
    weights: after reloading only row 0, y = c + b where the first block gave y = a + b."""
    rng = np.random.default_rng(5)
    w = rng.integers(-100, 100, (3, 320)).astype(np.int8)  # rows a, b, c
    x = np.zeros((2, 320), np.int8)
    x[:, :2] = 1
    text = HEAD + """data @w : tensor<3x320xi8> in MEM_W43 = load("w.npy")
data @x : tensor<2x320xi8> in MEM_W42 = load("x.npy")
reserve @y1 : tensor<320xi32> in MEM_W41
reserve @y2 : tensor<320xi32> in MEM_W40
kernel @k {
  @0 MEM_W43 read.i8 [@w], s0w
  @1 MEM_W43 repeat 1, 1
  @5 MEM_W43 read.i8 [@w + 2], s0w
  @2 MEM_W42 read.i8 [@x], s1w
  @6 MEM_W42 read.i8 [@x + 1], s1w
  @4 MXM_W0 lw.i8 s0w, 1
  @5 MXM_W0 repeat 1, 1
  @6 MXM_W0 iw
  @7 MXM_W0 mm.i8 s1w, acc0, set
  @9 MXM_W0 lw.i8 s0w, 1
  @10 MXM_W0 iw
  @11 MXM_W0 mm.i8 s1w, acc1, set
  @12 MXM_W0 acc.i32 acc0, s0e
  @13 MXM_W0 acc.i32 acc1, s4e
  @20 MEM_W41 write.i32 [@y1], s0e
  @22 MEM_W40 write.i32 [@y2], s4e
}
"""
    res = run_text(tmp_path, text, outputs=["y1", "y2"], npys={"w.npy": w, "x.npy": x})
    assert res.hazards == []
    a, b, c = w.astype(np.int32)
    assert np.array_equal(res.outputs["y1"], a + b) and np.array_equal(res.outputs["y2"], c + b)
