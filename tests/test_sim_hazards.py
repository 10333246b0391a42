"""lpu-sim hazards not covered in test_sim.py: each program triggers exactly one hazard at a cycle
worked out by hand, and the test checks the whole diagnostic (message, source line, caret,
notes). Link hazards need programs the linker refuses, so its C2C check is bypassed."""

from __future__ import annotations

import numpy as np
import pytest

from lpu.linker import c2c
from lpu.linker.link import link_objects
from lpu.linker.system import load_system
from lpu.sim.cli import simulate
from test_sim import first_error, obj_of, run_text


def link_chips(tmp_path, monkeypatch, texts: dict[str, str], topology: str = "two-chips", npys=None):
    """Assemble one file per chip (chip name -> text), link them on a topology without the
    linker's C2C timing check (these programs break it on purpose)."""
    orig = c2c.check
    monkeypatch.setattr(c2c, "check", lambda *a: (orig(*a)[0], []))
    for n, a in (npys or {}).items():
        np.save(tmp_path / n, a)
    objs = []
    for chip, text in texts.items():
        p = tmp_path / f"{chip}.lpu"
        p.write_text(text)
        objs.append((chip, obj_of(str(p), monkeypatch)))
    sysf = tmp_path / "sys.toml"
    sysf.write_text(f'topology = "{topology}"\n' + "".join(f'[chips.{c}]\nobjects = ["{c}"]\n' for c in texts))
    return link_objects(objs, load_system(str(sysf)))


def lines_of(res) -> list[str]:
    return first_error(res).splitlines()


HEAD = 'target "lpu-v1"\n'
IDLE = HEAD + "kernel @k {\n  @0 VXM.0 nop 1\n}\n"  # a chip with nothing to do


# --- C2C -----------------------------------------------------------------------------------------
def test_link_busy(tmp_path, monkeypatch):
    # reads at 0 and 3 pass C2C_E (94) from MEM_E43 (91) in cycles 5 and 8; the first send keeps
    # L8 busy over 5..14 (320 bytes at 33 a cycle), so the second, at 8, finds it busy
    chip0 = HEAD + """data @v : tensor<2x320xi8> in MEM_E43 = load("v.npy")
kernel @k {
  @0 MEM_E43 read.i8 [@v], s0e
  @3 MEM_E43 read.i8 [@v + 1], s0e
  @5 C2C_E send.i8 s0e, L8
  @8 C2C_E send.i8 s0e, L8
}
"""
    img = link_chips(tmp_path, monkeypatch, {"chip0": chip0, "chip1": IDLE}, npys={"v.npy": np.ones((2, 320), np.int8)})
    res = simulate(img)
    assert lines_of(res) == [
        f"{tmp_path}/chip0.lpu:7:3: error: link busy (L8 is busy until cycle 15) on chip chip0, cycle 8, C2C_E: "
        "send.i8 s0e, L8",
        "  @8 C2C_E send.i8 s0e, L8",
        "  ^",
        f"{tmp_path}/chip0.lpu:6:3: note: the link was taken in cycle 5 here",
        "  @5 C2C_E send.i8 s0e, L8",
        "  ^",
    ]
    assert [(h.kind, h.cycle) for h in res.hazards] == [("link busy", 8)]
    # strict: nothing at or after cycle 8 ran (the first send did)
    assert res.machine.executed == {g.id: 1 for g in res.machine.groups if g.issue < 8}


def test_deskew_holds_the_link(tmp_path, monkeypatch):
    # deskew at 0 holds L8 for c2c.deskew_cycles = 64 cycles: a send at 63 is refused, at 64 not
    def prog(send_at):
        return HEAD + f"""data @v : tensor<320xi8> in MEM_E43 = load("v.npy")
kernel @k {{
  @0 C2C_E deskew L8
  @{send_at - 5} MEM_E43 read.i8 [@v], s0e
  @{send_at} C2C_E send.i8 s0e, L8
}}
"""
    recv = HEAD + """reserve @got : tensor<320xi8> in MEM_W43
kernel @k {
  @274 C2C_W recv.i8 L0, s0e
  @279 MEM_W43 write.i8 [@got], s0e
}
"""
    v = np.arange(320).astype(np.int8)
    img = link_chips(tmp_path, monkeypatch, {"chip0": prog(63), "chip1": recv}, npys={"v.npy": v})
    assert lines_of(simulate(img))[0] == (
        f"{tmp_path}/chip0.lpu:6:3: error: link busy (L8 is busy until cycle 64) on chip chip0, cycle 63, C2C_E: "
        "send.i8 s0e, L8")
    # at 64 the link is free: the vector leaves over 64..73 and lands at 74 + 200 = 274
    img = link_chips(tmp_path, monkeypatch, {"chip0": prog(64), "chip1": recv}, npys={"v.npy": v})
    res = simulate(img, outputs=["chip1:got"])
    assert res.hazards == [] and np.array_equal(res.outputs["chip1:got"], v)
    assert res.machine.cycles == 280


def _sends(count: int) -> str:
    # reads every 10 cycles pass C2C_E at 5, 15, ...; each send holds L8 for exactly 10 cycles
    return HEAD + f"""data @v : tensor<{count}x320xi8> in MEM_E43 = load("v.npy")
kernel @k {{
  @0 MEM_E43 read.i8 [@v], s0e
  @10 MEM_E43 repeat {count - 1}, 10
  @5 C2C_E send.i8 s0e, L8
  @15 C2C_E repeat {count - 1}, 10
}}
"""


def test_receive_buffer_overflow(tmp_path, monkeypatch):
    # 33 vectors land on chip1's L0 at 215, 225, ..., 535 and nothing receives them: the 33rd
    # finds the buffer holding c2c.recv_buffer_depth = 32
    v = np.arange(33 * 320).reshape(33, 320).astype(np.int8)
    img = link_chips(tmp_path, monkeypatch, {"chip0": _sends(33), "chip1": IDLE}, npys={"v.npy": v})
    res = simulate(img)
    assert lines_of(res) == [
        f"{tmp_path}/chip0.lpu:6:3: error: receive-buffer overflow (L0 of chip chip1 already holds 32 vectors) on "
        "chip chip0, cycle 535, C2C_E: send.i8 s0e, L8",
        "  @5 C2C_E send.i8 s0e, L8",
        "  ^",
    ]
    # 32 fit
    img = link_chips(tmp_path, monkeypatch, {"chip0": _sends(32), "chip1": IDLE}, npys={"v.npy": v[:32]})
    assert simulate(img).hazards == []


def test_receive_frees_the_buffer(tmp_path, monkeypatch):
    # the same 33 vectors, but chip1 takes the first one at 215, as it lands: no overflow, and the
    # receiver gets the vectors in order
    v = np.arange(33 * 320).reshape(33, 320).astype(np.int8)
    recv = HEAD + """reserve @got : tensor<2x320xi8> in MEM_W43
kernel @k {
  @215 C2C_W recv.i8 L0, s0e
  @220 MEM_W43 write.i8 [@got], s0e
  @600 C2C_W recv.i8 L0, s0e
  @605 MEM_W43 write.i8 [@got + 1], s0e
}
"""
    img = link_chips(tmp_path, monkeypatch, {"chip0": _sends(33), "chip1": recv}, npys={"v.npy": v})
    res = simulate(img, outputs=["chip1:got"])
    assert res.hazards == []
    assert np.array_equal(res.outputs["chip1:got"], v[:2])
    assert res.stats["c2c_bytes"] == 33 * 320


def test_receive_from_an_empty_buffer(tmp_path, monkeypatch):
    # the vector sent at 5 lands at 215; a recv at 214 finds nothing
    send = HEAD + """data @v : tensor<320xi8> in MEM_E43 = load("v.npy")
kernel @k {
  @0 MEM_E43 read.i8 [@v], s0e
  @5 C2C_E send.i8 s0e, L8
}
"""
    recv = HEAD + """kernel @k {
  @214 C2C_W recv.i8 L0, s0e
}
"""
    img = link_chips(tmp_path, monkeypatch, {"chip0": send, "chip1": recv}, npys={"v.npy": np.ones(320, np.int8)})
    res = simulate(img)
    assert lines_of(res) == [
        f"{tmp_path}/chip1.lpu:3:3: error: receive from an empty buffer (the receive buffer of L0 is empty) on chip "
        "chip1, cycle 214, C2C_W: recv.i8 L0, s0e",
        "  @214 C2C_W recv.i8 L0, s0e",
        "  ^",
    ]
    # --no-strict: the recv puts zeros on its stream and takes nothing; the vector stays
    res = simulate(img, strict=False)
    assert [(h.kind, h.chip, h.cycle) for h in res.hazards] == [("receive from an empty buffer", 1, 214)]


@pytest.mark.parametrize("inst,line", [("send.i8 s0w, L0", 5), ("recv.i8 L0, s0e", 5), ("deskew L0", 5)])
def test_unconnected_link(tmp_path, monkeypatch, inst, line):
    # two-chips wires chip0's L8..L15 to chip1; chip0's L0 (at C2C_W) goes nowhere
    text = HEAD + f"""data @v : tensor<320xi8> in MEM_W43 = load("v.npy")
kernel @k {{
  @0 MEM_W43 read.i8 [@v], s0w
  @5 C2C_W {inst}
}}
"""
    img = link_chips(tmp_path, monkeypatch, {"chip0": text, "chip1": IDLE}, npys={"v.npy": np.ones(320, np.int8)})
    res = simulate(img)
    assert lines_of(res)[:3] == [
        f"{tmp_path}/chip0.lpu:{line}:3: error: unconnected link (L0 of chip chip0 is not wired to any chip) on chip "
        f"chip0, cycle 5, C2C_W: {inst}",
        f"  @5 C2C_W {inst}",
        "  ^",
    ]
    assert len(simulate(img, strict=False).hazards) == 1


# --- MXM -----------------------------------------------------------------------------------------
MM_F16 = HEAD + """data @w : tensor<320xf16> in MEM_W43 = load("w.npy")
data @x : tensor<2x320xf16> in MEM_W42 = load("x.npy")
kernel @k {
  @0 MEM_W43 read.f16 [@w], s0w
  @4 MXM_W0 lw.f16 s0w, 1
  @5 MXM_W0 iw
  @1 MEM_W42 read.f16 [@x], s2w
  @6 MXM_W0 mm.f16 s2w, acc0, set
  @%d MEM_W42 read.f16 [@x + 2], s2w
  @%d MXM_W0 mm.f16 s2w, acc1, set
}
"""


def test_mxm_plane_busy(tmp_path, monkeypatch):
    # an f16 mm holds its plane mxm.float_occupancy = 4 cycles: one at 6, another at 8
    ones = np.ones(320, np.float16)
    res = run_text(tmp_path, MM_F16 % (3, 8), monkeypatch=monkeypatch,
                   npys={"w.npy": ones, "x.npy": np.ones((2, 320), np.float16)})
    assert lines_of(res) == [
        f"{tmp_path}/t.lpu:11:3: error: MXM plane busy (the plane is busy until cycle 10) on chip chip0, cycle 8, "
        "MXM_W0: mm.f16 s2w, acc1, set",
        "  @8 MXM_W0 mm.f16 s2w, acc1, set",
        "  ^",
        f"{tmp_path}/t.lpu:9:3: note: it is busy because of this instruction",
        "  @6 MXM_W0 mm.f16 s2w, acc0, set",
        "  ^",
    ]
    # at 10 the plane is free
    res = run_text(tmp_path, MM_F16 % (5, 10), monkeypatch=monkeypatch,
                   npys={"w.npy": ones, "x.npy": np.ones((2, 320), np.float16)})
    assert res.hazards == []


def test_mm_without_weights_after_iw_is_fine_but_before_is_not(tmp_path, monkeypatch):
    # iw at 5 makes the weights active from cycle 6; an mm at 5 sees none
    text = (MM_F16 % (3, 8)).replace("@6 MXM_W0 mm.f16 s2w, acc0, set", "@5 MXM_W1 mm.f16 s2w, acc0, set") \
        .replace("@1 MEM_W42 read.f16 [@x], s2w", "@0 MEM_W42 read.f16 [@x], s2w")
    res = run_text(tmp_path, text, monkeypatch=monkeypatch,
                   npys={"w.npy": np.ones(320, np.float16), "x.npy": np.ones((2, 320), np.float16)})
    assert lines_of(res)[0] == (
        f"{tmp_path}/t.lpu:9:3: error: mm with no installed weights on chip chip0, cycle 5, MXM_W1: "
        "mm.f16 s2w, acc0, set")


# --- ICU -----------------------------------------------------------------------------------------
def test_deadlock_two_queues_wait_for_each_other(tmp_path, monkeypatch):
    # each queue syncs on the barrier the other would notify only after its own sync
    text = HEAD + """kernel @k {
  @0 VXM.0 sync 1
  @1 VXM.0 notify 2
  @0 VXM.1 sync 2
  @1 VXM.1 notify 1
}
"""
    res = run_text(tmp_path, text, monkeypatch=monkeypatch, strict=False)
    units = [res.machine.cfgs[0].queues[h.queue].name for h in res.hazards]
    assert [(h.kind, u, h.cycle) for h, u in zip(res.hazards, units)] == [
        ("sync that can never be released (deadlock)", "VXM.0", 0),
        ("sync that can never be released (deadlock)", "VXM.1", 0)]
    assert lines_of(res) == [
        f"{tmp_path}/t.lpu:3:3: error: sync that can never be released (deadlock) (barrier 1) on chip chip0, cycle 0, "
        "VXM.0: sync 1",
        "  @0 VXM.0 sync 1",
        "  ^",
    ]
    assert res.machine.instructions == 0


def test_no_strict_collects_different_hazards(tmp_path, monkeypatch):
    # an empty read (cycle 4), a port conflict (cycle 5) and an address out of range (cycle 9),
    # reported in cycle order; strict mode reports the first and stops
    text = HEAD + """reserve @a : tensor<2x320xi8> in MEM_W0
reserve @b : tensor<320xi8> in MEM_E1
kernel @k {
  @0 MEM_W0 read.i8 [@a], s0e
  @4 MEM_E1 write.i8 [@b], s0e
  @4 MEM_W0 read.i16 [@a], s2e
  @5 MEM_W0 read.i8 [@a], s6e
  @8 MEM_W0 read.i8 [8191], s7e
  @9 MEM_W0 repeat 1, 1
}
"""
    res = run_text(tmp_path, text, monkeypatch=monkeypatch, strict=False)
    assert [(h.kind, h.cycle) for h in res.hazards] == [
        ("empty stream read", 4), ("MEM port conflict", 5), ("address out of range", 9)]
    assert res.machine.instructions == 6
    strict = run_text(tmp_path, text, monkeypatch=monkeypatch)
    assert [(h.kind, h.cycle) for h in strict.hazards] == [("empty stream read", 4)]
    assert strict.machine.instructions == 1


def test_port_conflict_within_one_repeat(tmp_path, monkeypatch):
    # an i32 read holds the read port 4 cycles; repeated every 2 cycles, its second issue (cycle
    # 2) finds the port busy because of the first
    text = HEAD + """reserve @a : tensor<4x320xi32> in MEM_W0
kernel @k {
  @0 MEM_W0 read.i32 [@a], s0e
  @2 MEM_W0 repeat 2, 2
}
"""
    res = run_text(tmp_path, text, monkeypatch=monkeypatch, strict=False)
    assert [(h.kind, h.cycle, h.detail) for h in res.hazards] == [
        ("MEM port conflict", 2, "the read port is busy until cycle 4"),
        ("MEM port conflict", 4, "the read port is busy until cycle 6")]
    assert lines_of(res)[:3] == [
        f"{tmp_path}/t.lpu:4:3: error: MEM port conflict (the read port is busy until cycle 4) on chip chip0, "
        "cycle 2, MEM_W0: read.i32 [@a], s0e",
        "  @0 MEM_W0 read.i32 [@a], s0e",
        "  ^",
    ]
