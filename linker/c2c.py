"""Chip-to-chip traffic: every ``send`` paired with the ``recv`` that takes its vector, and the
link timing checked from the issue cycles (docs/linker.md, "C2C timing").

A send of a w-byte vector issued at t keeps its link busy ``busy = ceil(lanes * w / bytes per
cycle)`` cycles, [t, t + busy), and lands in the peer's receive buffer at t + busy + latency.
Sends on one link are taken, in order, by the recvs on the other end of it. A vector waits in
the buffer over [arrival, recv).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lpu.arch.isa import BY_MNEMONIC, decode
from lpu.diagnostics import Diagnostic, SourceLoc, error
from lpu.asm.words import timing
from lpu.linker.code import word_loc
from lpu.linker.image import LinkWire

_SEND, _RECV, _DESKEW = (BY_MNEMONIC[m] for m in ("send", "recv", "deskew"))
_REPEAT, _NOP = BY_MNEMONIC["repeat"], BY_MNEMONIC["nop"]
_C2C_OPS = {_SEND.opcode, _RECV.opcode, _DESKEW.opcode}


@dataclass(slots=True)
class Transfer:
    """One issue of a send, recv or deskew (a repeated instruction gives several)."""

    kind: str  # send, recv, deskew
    chip: str
    queue: str
    link: int
    cycle: int
    dtype: str | None
    busy: int  # cycles the link is busy (sends and deskews)
    loc: SourceLoc | None
    word: int  # index in the queue program (one instruction, several repetitions)

    def text(self) -> str:
        m = self.kind + (f".{self.dtype}" if self.dtype else "")
        return f"{m} on chip '{self.chip}' ({self.queue} L{self.link}) at cycle {self.cycle}"


@dataclass(slots=True)
class Pair:
    send: Transfer
    recv: Transfer
    arrival: int


def transfers(chip: str, cfg, queue: str, words: np.ndarray, lines: np.ndarray, files: list[str]) -> list[Transfer]:
    """The C2C issues of one queue program, repetitions expanded, in issue order."""
    op = (np.asarray(words, dtype=np.uint64) & np.uint64(0xFF)).astype(np.intp)
    idx = np.nonzero(np.isin(op, list(_C2C_OPS)))[0]
    if len(idx) == 0:
        return []
    cycles = timing(words).cycles
    out: list[Transfer] = []
    for i in idx.tolist():
        spec, dtype, _d2, fields = decode(int(words[i]))
        args = dict(zip((o.name for o in spec.operands), fields))
        busy = spec.occupancy_for(cfg, dtype) if spec is not _RECV else 0
        loc = word_loc(files, lines, i)
        reps = [int(cycles[i])]
        j = i + 1
        while j < len(words) and op[j] == _NOP.opcode:  # the assembler's nops before a repeat
            j += 1
        if j < len(words) and op[j] == _REPEAT.opcode:
            _s, _t, _t2, (n, d) = decode(int(words[j]))
            reps += [reps[0] + k * d for k in range(1, n + 1)]
        out.extend(Transfer(spec.mnemonic, chip, queue, args["link"], c, dtype, busy, loc, i) for c in reps)
    return out


def _err(diags: list[Diagnostic], message: str, loc, *notes) -> None:
    d = error(message, loc)
    for text, nloc in notes:
        d.note(text, nloc)
    diags.append(d)


def check(events: list[Transfer], wires: list[LinkWire], depth: dict[str, int]) -> tuple[list[Pair], list[Diagnostic]]:
    """Pair sends with recvs across the wires and check the timing; ``depth`` is each chip's
    receive buffer depth."""
    diags: list[Diagnostic] = []
    peer: dict[tuple[str, int], tuple[str, int, int]] = {}
    for w in wires:
        peer[(w.chip_a, w.link_a)] = (w.chip_b, w.link_b, w.latency)
        peer[(w.chip_b, w.link_b)] = (w.chip_a, w.link_a, w.latency)
    outgoing: dict[tuple[str, int], list[Transfer]] = {}  # sends and deskews per link end
    incoming: dict[tuple[str, int], list[Transfer]] = {}
    unwired: set[tuple[str, str, int]] = set()
    for e in events:
        end = (e.chip, e.link)
        if end not in peer:
            if (e.chip, e.queue, e.word) not in unwired:
                unwired.add((e.chip, e.queue, e.word))
                _err(diags, f"{e.text()}: L{e.link} of chip '{e.chip}' is not wired to any chip in the system",
                     e.loc)
            continue
        (incoming if e.kind == "recv" else outgoing).setdefault(end, []).append(e)

    # a link end transmits one thing at a time: a send or deskew must wait for the previous one
    for end, evs in outgoing.items():
        evs.sort(key=lambda e: e.cycle)
        prev = None
        for e in evs:
            if prev is not None and e.cycle < prev.cycle + prev.busy:
                pc, pl, _lat = peer[end]
                _err(diags, f"{e.text()} overlaps the link's busy window: the {prev.kind} at cycle {prev.cycle} "
                            f"keeps L{e.link} (to chip '{pc}' L{pl}) busy over cycles {prev.cycle}-"
                            f"{prev.cycle + prev.busy - 1}; the link is free again at cycle {prev.cycle + prev.busy}",
                     e.loc, (f"the {prev.kind} on chip '{prev.chip}' at cycle {prev.cycle} is here", prev.loc))
                continue
            prev = e

    pairs: list[Pair] = []
    ends = sorted(set(outgoing) | set(incoming))
    for rend in ends:
        recvs = sorted(incoming.get(rend, []), key=lambda e: e.cycle)
        schip, slink, latency = peer[rend]
        sends = [e for e in outgoing.get((schip, slink), []) if e.kind == "send"]
        if not recvs and not sends:
            continue
        arrivals = [s.cycle + s.busy + latency for s in sends]
        for k, (s, r) in enumerate(zip(sends, recvs)):
            a = arrivals[k]
            pairs.append(Pair(s, r, a))
            send_note = (f"the send on chip '{s.chip}' ({s.queue} L{s.link}) at cycle {s.cycle} is here", s.loc)
            if r.cycle < a:
                _err(diags, f"{r.text()} is too early: the vector it takes (number {k + 1} on this link), sent by "
                            f"chip '{s.chip}' ({s.queue} L{s.link}) at cycle {s.cycle}, arrives at cycle {a} "
                            f"({s.cycle} + {s.busy} cycles on the link + {latency} latency)", r.loc, send_note)
            elif r.dtype != s.dtype:
                _err(diags, f"{r.text()} takes an {s.dtype} vector: chip '{s.chip}' sends it with send.{s.dtype} "
                            f"at cycle {s.cycle}", r.loc, send_note)
        for k in range(len(recvs), len(sends)):
            s = sends[k]
            _err(diags, f"{s.text()} has no partner: chip '{rend[0]}' takes {len(recvs)} vector"
                        f"{'s' if len(recvs) != 1 else ''} from L{rend[1]}, and this is vector number {k + 1} "
                        f"(it would land at cycle {arrivals[k]} and be lost)", s.loc)
        for k in range(len(sends), len(recvs)):
            r = recvs[k]
            _err(diags, f"{r.text()} has no partner: chip '{schip}' sends {len(sends)} vector"
                        f"{'s' if len(sends) != 1 else ''} on L{slink}, and this is receive number {k + 1}", r.loc)
        # the receive buffer: vectors wait over [arrival, recv); more than depth at once overflows
        n = min(len(sends), len(recvs))
        if n:
            a = np.array(arrivals[:n], dtype=np.int64)
            r = np.array([x.cycle for x in recvs[:n]], dtype=np.int64)
            taken = np.minimum(np.searchsorted(r, a, side="right"), np.arange(1, n + 1))
            waiting = np.arange(1, n + 1) - taken  # vectors in the buffer just after vector j lands
            limit = depth[rend[0]]
            over = np.nonzero(waiting > limit)[0]
            if len(over):
                j = int(over[0])
                oldest = int(taken[j])
                s, ro = sends[j], recvs[oldest]
                _err(diags, f"the receive buffer of L{rend[1]} on chip '{rend[0]}' overflows: the vector chip "
                            f"'{s.chip}' sends at cycle {s.cycle} ({s.queue} L{s.link}) lands at cycle {int(a[j])}, "
                            f"when {int(waiting[j]) - 1} vectors already wait (the buffer holds {limit})", s.loc,
                     (f"the oldest waiting vector is taken only by this recv on chip '{ro.chip}' at cycle "
                      f"{ro.cycle}", ro.loc))
    return pairs, diags
