"""Queue programs in time: each queue's words decoded once into issue groups with cycles.

A *group* is one instruction of one queue with its repetitions: it issues at ``issue``,
``issue + period``, … ``count`` times. The whole issue schedule of a machine is static (the
machine has no branches); only ``sync`` waits, and its release is computable too, so the
schedule of every chip is known before any data moves. The ICU instructions are the
sequencer's: each is a small function registered below against the ISA table, returning the
cycle at which the queue's next instruction issues (the rule of ``asm/emit.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from lpu.arch.isa import BY_MNEMONIC, DecodeError, InstrSpec, decode
from lpu.diagnostics import DiagnosticError, error


_FIELD: dict[tuple[int, str], int] = {}  # (opcode, operand name) -> index in the fields


@dataclass(slots=True)
class Group:
    """One instruction of a queue and its repetitions."""

    chip: int
    queue: int  # index into the chip configuration's queues
    word: int  # index of the instruction word in the queue program (for the line table)
    spec: InstrSpec
    dtype: str | None
    dtype2: str | None
    fields: tuple[int, ...]
    issue: int  # first issue cycle
    count: int = 1  # 1 + repetitions
    period: int = 1
    id: int = -1  # index in the machine's group list
    latency: int = 0  # issue to result on the stream (the chip configuration's, set by the machine)
    occupancy: int = 0  # cycles an issue holds its unit

    @property
    def last(self) -> int:
        return self.issue + (self.count - 1) * self.period

    def cycles(self) -> np.ndarray:
        return self.issue + self.period * np.arange(self.count, dtype=np.int64)

    def field(self, name: str) -> int:
        i = _FIELD.get((self.spec.opcode, name))
        if i is None:
            i = _FIELD[(self.spec.opcode, name)] = [o.name for o in self.spec.operands].index(name)
        return self.fields[i]


@dataclass(slots=True)
class Barrier:
    """A ``sync`` that could not be released: a deadlock."""

    chip: int
    queue: int
    word: int
    cycle: int
    barrier: int


@dataclass(slots=True)
class QueueSchedule:
    groups: list[Group] = field(default_factory=list)
    notifies: dict[int, list[int]] = field(default_factory=dict)  # barrier -> issue cycles
    end: int = 0  # the cycle its next instruction would issue
    busy_until: int = 0


_DECODED: dict[int, tuple] = {}


def decode_word(word: int) -> tuple:
    """``isa.decode`` memoized: a program repeats the same words many times."""
    hit = _DECODED.get(word)
    if hit is None:
        hit = _DECODED[word] = decode(word)
    return hit


class _Walker:
    """Walks one queue's words, stopping at a ``sync`` that is not yet released."""

    def __init__(self, chip: int, queue: int, words: np.ndarray) -> None:
        self.chip, self.queue = chip, queue
        self.words = words.tolist()
        self.i = 0
        self.t = 0
        self.last: Group | None = None  # the group a repeat would re-issue
        self.sched = QueueSchedule()
        self.syncs: dict[int, int] = {}  # barrier -> syncs passed
        self.waiting: tuple[int, int] | None = None  # (barrier, cycle) of the sync it stands at

    def run(self, release: Callable[[int, int], int | None]) -> bool:
        """Advance as far as possible; True when some progress was made."""
        progressed = False
        while self.i < len(self.words):
            try:
                spec, dtype, dtype2, fields = decode_word(self.words[self.i])
            except DecodeError as e:
                raise DiagnosticError(error(f"invalid instruction word {self.i} of queue "
                                            f"{self.queue}: {e}")) from None
            control = CONTROL.get(spec.mnemonic)
            if control is None:
                g = Group(self.chip, self.queue, self.i, spec, dtype, dtype2, fields, self.t)
                self.sched.groups.append(g)
                self.last = g
                self.t += 1
            else:
                nxt = control(self, spec, fields, release)
                if nxt is None:  # waiting at a sync
                    return progressed
                self.t = nxt
            self.i += 1
            progressed = True
        self.sched.end = self.t
        return progressed

    @property
    def done(self) -> bool:
        return self.i >= len(self.words)


# --- the ICU, as the sequencer sees it ----------------------------------------------------------
CONTROL: dict[str, Callable] = {}


def control(mnemonic: str):
    assert mnemonic in BY_MNEMONIC and "any" in BY_MNEMONIC[mnemonic].units

    def register(fn):
        CONTROL[mnemonic] = fn
        return fn

    return register


@control("nop")
def _nop(w: _Walker, spec, fields, release) -> int:
    return w.t + fields[0]


@control("repeat")
def _repeat(w: _Walker, spec, fields, release) -> int:
    n, d = fields
    g = w.last
    if g is None or g.count != 1 or w.t > g.issue + d:
        raise DiagnosticError(error(f"queue program word {w.i}: 'repeat {n}, {d}' does not follow an "
                                    "instruction it can re-issue"))
    g.count, g.period = n + 1, d
    w.last = None
    # asm/emit.py: the queue's next instruction issues the cycle after the last repetition
    return g.issue + n * d + 1


@control("notify")
def _notify(w: _Walker, spec, fields, release) -> int:
    w.sched.notifies.setdefault(fields[0], []).append(w.t)
    w.last = None
    return w.t + 1


@control("sync")
def _sync(w: _Walker, spec, fields, release) -> int | None:
    b = fields[0]
    k = w.syncs.get(b, 0)
    at = release(b, k)
    if at is None:
        w.waiting = (b, w.t)
        return None
    w.waiting = None
    w.syncs[b] = k + 1
    w.last = None
    return max(w.t + 1, at)


def schedule_chip(chip: int, programs: list[tuple[int, np.ndarray]]) -> tuple[dict[int, QueueSchedule], list[Barrier]]:
    """The issue schedule of every queue of a chip: (queue index, words) -> groups.

    Barriers are per chip: the k-th ``sync b`` of a queue is released the cycle after every
    queue whose program holds a ``notify b`` has issued its k-th one."""
    walkers = [_Walker(chip, q, words) for q, words in programs]
    notify_op = BY_MNEMONIC["notify"].opcode
    participants: dict[int, list[_Walker]] = {}
    for w in walkers:
        for word in set(w.words):
            spec, _, _, fields = decode_word(word) if (word & 0xFF) == notify_op else (None, 0, 0, ())
            if spec is not None:
                participants.setdefault(fields[0], []).append(w)

    def release(barrier: int, k: int) -> int | None:
        parts = participants.get(barrier)
        if not parts:
            return None
        times = []
        for p in parts:
            got = p.sched.notifies.get(barrier, [])
            if len(got) <= k:
                return None
            times.append(got[k])
        return max(times) + 1

    pending = list(walkers)
    while pending:
        progressed = False
        for w in pending:
            progressed |= w.run(release)
        pending = [w for w in pending if not w.done]
        if not progressed:
            break
    stuck = [Barrier(chip, w.queue, w.i, w.waiting[1], w.waiting[0]) for w in pending if w.waiting]
    return {w.queue: w.sched for w in walkers}, stuck
