"""C2C wiring and timing: peers resolved through the topology, sends paired with recvs, every
timing violation reported with both chips, both instructions and the cycles."""

from __future__ import annotations

import re

import pytest

from lpu.linker.link import link
from lpu.linker.system import system_from_text
from test_link import errors, obj, queue_text

PAIR = system_from_text('links = ["p.L8..L15 <-> q.L0..L7"]\n[chips.p]\nobjects = ["p"]\n[chips.q]\nobjects = ["q"]\n',
                        "sys.toml")


def P(body: str):
    """Chip p's object: each C2C_E send at cycle t (or its repeat) gets a vector that MEM_E43
    reads onto s0e at t - 5 (2 cycles latency + 3 positions east)."""
    lines = []
    for line in body.splitlines():
        m = re.match(r"\s*@(\d+) C2C_E (send\.(\w+)|repeat (\d+), (\d+))", line)
        if m and m.group(2).startswith("send"):
            lines.append(f"  @{int(m.group(1)) - 5} MEM_E43 read.{m.group(3)} [@m], s0e, stride=0")
        elif m:
            lines.append(f"  @{int(m.group(1)) - 5} MEM_E43 repeat {m.group(4)}, {m.group(5)}")
    lines += body.splitlines()
    return obj('data @m : tensor<320xi16> in MEM_E43 = hex"' + "01" * 640 + '"\nglobal kernel @k {\n'
               + "\n".join(lines) + "\n}\n", "p.lpu")


def Q(body: str):
    return obj("global kernel @k {\n" + body + "}\n", "q.lpu")


def test_pairs_with_repeats_and_peer_links():
    res = link([("p", P("  @5 C2C_E send.i8 s0e, @q\n  @15 C2C_E repeat 31, 10\n")),
                ("q", Q("  @600 C2C_W recv.i8 @p, s0e\n  @601 C2C_W repeat 31, 1\n"))], PAIR)
    assert len(res.pairs) == 32
    assert [(x.send.cycle, x.arrival, x.recv.cycle) for x in res.pairs[:2]] == [(5, 215, 600), (15, 225, 601)]
    assert (res.pairs[-1].send.cycle, res.pairs[-1].arrival, res.pairs[-1].recv.cycle) == (315, 525, 631)
    assert queue_text(res.image, "q")[0] == "@600   C2C_W   recv.i8 L0, s0e"  # @p is L0 on C2C_W
    assert "@5     C2C_E   send.i8 s0e, L8" in queue_text(res.image, "p")  # @q: the lowest C2C_E link


def test_wire_latency_overrides_config():
    sys_ = system_from_text('links = [{ wire = "p.L8 <-> q.L0", latency = 50 }]\n[chips.p]\n[chips.q]\n', "s.toml")
    res = link([("p", P("  @5 C2C_E send.i8 s0e, @q\n")), ("q", Q("  @65 C2C_W recv.i8 @p, s0e\n"))], sys_)
    assert [(x.send.cycle, x.arrival) for x in res.pairs] == [(5, 65)]


CASES = {
    "early": (P("  @5 C2C_E send.i8 s0e, @q\n"), Q("  @214 C2C_W recv.i8 @p, s0e\n"), [
        "q.lpu:3:3: error: recv.i8 on chip 'q' (C2C_W L0) at cycle 214 is too early: the vector it takes (number 1 "
        "on this link), sent by chip 'p' (C2C_E L8) at cycle 5, arrives at cycle 215 (5 + 10 cycles on the link + "
        "200 latency)\np.lpu:5:3: note: the send on chip 'p' (C2C_E L8) at cycle 5 is here"]),
    "busy": (P("  @5 C2C_E send.i8 s0e, @q\n  @10 C2C_E send.i8 s0e, @q\n"),
             Q("  @300 C2C_W recv.i8 @p, s0e\n  @301 C2C_W recv.i8 @p, s0e\n"), [
        "p.lpu:7:3: error: send.i8 on chip 'p' (C2C_E L8) at cycle 10 overlaps the link's busy window: the send at "
        "cycle 5 keeps L8 (to chip 'q' L0) busy over cycles 5-14; the link is free again at cycle 15\n"
        "p.lpu:6:3: note: the send on chip 'p' at cycle 5 is here"]),
    "deskew": (P("  @0 C2C_E deskew L8\n  @63 C2C_E send.i8 s0e, L8\n"), Q("  @300 C2C_W recv.i8 @p, s0e\n"), [
        "p.lpu:6:3: error: send.i8 on chip 'p' (C2C_E L8) at cycle 63 overlaps the link's busy window: the deskew "
        "at cycle 0 keeps L8 (to chip 'q' L0) busy over cycles 0-63; the link is free again at cycle 64\n"
        "p.lpu:5:3: note: the deskew on chip 'p' at cycle 0 is here"]),
    "type": (P("  @5 C2C_E send.i16 s0e, @q\n"), Q("  @300 C2C_W recv.i8 @p, s0e\n"), [
        "q.lpu:3:3: error: recv.i8 on chip 'q' (C2C_W L0) at cycle 300 takes an i16 vector: chip 'p' sends it "
        "with send.i16 at cycle 5\np.lpu:5:3: note: the send on chip 'p' (C2C_E L8) at cycle 5 is here"]),
    "no partner": (P("  @5 C2C_E send.i8 s0e, @q\n  @15 C2C_E send.i8 s0e, @q\n"),
                   Q("  @300 C2C_W recv.i8 @p, s0e\n  @400 C2C_W recv.i8 L1, s0e\n"), [
        "p.lpu:7:3: error: send.i8 on chip 'p' (C2C_E L8) at cycle 15 has no partner: chip 'q' takes 1 vector "
        "from L0, and this is vector number 2 (it would land at cycle 225 and be lost)",
        "q.lpu:4:3: error: recv.i8 on chip 'q' (C2C_W L1) at cycle 400 has no partner: chip 'p' sends 0 vectors "
        "on L9, and this is receive number 1"]),
    "overflow": (P("  @5 C2C_E send.i8 s0e, @q\n  @15 C2C_E repeat 32, 10\n"),
                 Q("  @600 C2C_W recv.i8 @p, s0e\n  @601 C2C_W repeat 32, 1\n"), [
        "p.lpu:6:3: error: the receive buffer of L0 on chip 'q' overflows: the vector chip 'p' sends at cycle 325 "
        "(C2C_E L8) lands at cycle 535, when 32 vectors already wait (the buffer holds 32)\n"
        "q.lpu:3:3: note: the oldest waiting vector is taken only by this recv on chip 'q' at cycle 600"]),
    "no link": (obj("global kernel @k {\n  @0 C2C_W recv.i8 L5, s0e\n  @2 C2C_W send.i8 s0e, @q\n}\n", "p.lpu"),
                Q("  @300 C2C_W recv.i8 @p, s0e\n"), [
        "p.lpu:4:3: error: no link of C2C_W on chip 'p' (L0-L7) is wired to chip 'q'\nnote: chip 'p' reaches 'q' "
        "on L8 (C2C_E), L9 (C2C_E), L10 (C2C_E), L11 (C2C_E), L12 (C2C_E), L13 (C2C_E), L14 (C2C_E), L15 (C2C_E)"]),
    "unknown peer": (P("  @5 C2C_E send.i8 s0e, @r\n"), Q("  @300 C2C_W recv.i8 @p, s0e\n"), [
        "p.lpu:5:3: error: unknown peer chip '@r' (the system's chips: p, q)"]),
    "unwired": (obj("global kernel @k {\n  @0 C2C_W recv.i8 L5, s0e\n  @2 C2C_W send.i8 s0e, L3\n}\n", "p.lpu"),
                Q(""), [
        "p.lpu:3:3: error: recv.i8 on chip 'p' (C2C_W L5) at cycle 0: L5 of chip 'p' is not wired to any chip in "
        "the system",
        "p.lpu:4:3: error: send.i8 on chip 'p' (C2C_W L3) at cycle 2: L3 of chip 'p' is not wired to any chip in "
        "the system"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_c2c_errors(case):
    p, q, expected = CASES[case]
    assert errors(link, [("p", p), ("q", q)], PAIR) == expected


def test_exactly_full_buffer_is_fine():
    res = link([("p", P("  @5 C2C_E send.i8 s0e, @q\n  @15 C2C_E repeat 31, 10\n")),
                ("q", Q("  @600 C2C_W recv.i8 @p, s0e\n  @601 C2C_W repeat 31, 1\n"))], PAIR)
    assert len(res.pairs) == 32


def test_vector_in_flight_across_a_phase_boundary_is_received_later():
    """A vector sent in phase 0 and still on the wire when phase 1 starts is taken by a recv of
    phase 1: the receive buffer keeps it across the boundary."""
    sys_ = system_from_text('links = ["p.L8 <-> q.L0"]\n[chips.p]\nobjects = ["p"]\n'
                            '[chips.q]\nphases = [["q0"], ["q1"]]\n', "s.toml")
    p = P("  @5 C2C_E send.i8 s0e, @q\n")
    q0 = obj("reserve @x : tensor<320xi8> in MEM_W3\nglobal kernel @k0 {\n  @0 MEM_W3 read.i8 [@x], s0e\n}\n",
             "q0.lpu")
    q1 = obj("global kernel @k1 {\n  @300 C2C_W recv.i8 @p, s0e\n}\n", "q1.lpu")
    res = link([("p", p), ("q0", q0), ("q1", q1)], sys_)
    assert res.phase_starts == [0, 15]  # phase 0 ends when p's send has left (5 + 10)
    assert [(x.send.cycle, x.arrival, x.recv.cycle) for x in res.pairs] == [(5, 215, 315)]
    # taken too early in phase 1: the error gives the absolute cycles
    q1 = obj("global kernel @k1 {\n  @100 C2C_W recv.i8 @p, s0e\n}\n", "q1.lpu")
    assert errors(link, [("p", p), ("q0", q0), ("q1", q1)], sys_)[0].startswith(
        "q1.lpu:3:3: error: recv.i8 on chip 'q' (C2C_W L0) at cycle 115 is too early")
