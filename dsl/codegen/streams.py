"""stream-alloc and the resource tables of the general (vector) code generator.

A value in flight occupies, on each stream of its group, the cells of one space–time
diagonal from its writer's position to its last reader's position (architecture page,
section 2: a reader sees the nearest writer upstream on its diagonal). Two values may share a
stream and a diagonal only if their position intervals are disjoint; an overlap means one
reader would meet the other value (or two writes land on one cell). ``Streams`` keeps those
intervals per (direction, stream, diagonal) and gives a value the first aligned group whose
cells are all free — or ``None``, and the scheduler tries a later cycle.

``Resources`` is the rest of the machine a snippet needs in given cycles: each queue's one
issue slot a cycle, each MEM slice's read and write ports (held ``w`` cycles for a ``w``-word
vector).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

#: the stream limit of the schedules made inside ``stream_limit`` (None: all the chip has)
_LIMIT: ContextVar[int | None] = ContextVar("stream_limit", default=None)


@contextmanager
def stream_limit(n: int | None):
    """Schedules made inside use only stream indices ``0 .. n-1`` of each direction
    (``schedule-general{streams=N}``): where the table has no group free, the scheduler tries
    a later cycle, so the kernel it makes fits ``stream-alloc{streams=N}``."""
    token = _LIMIT.set(n)
    try:
        yield
    finally:
        _LIMIT.reset(token)


def limited(streams: int) -> int:
    """The streams a schedule may use: the chip's, or fewer inside ``stream_limit``."""
    n = _LIMIT.get()
    return streams if n is None else min(n, streams)


class Segment:
    """A value on a stream from ``start`` (ready there at ``cycle``) to ``end`` (inclusive);
    its diagonal and position span worked out once (the tables ask for them again and again)."""

    __slots__ = ("west", "start", "cycle", "end", "diagonal", "span", "key")

    def __init__(self, west: bool, start: int, cycle: int, end: int) -> None:
        self.west, self.start, self.cycle, self.end = west, start, cycle, end
        self.diagonal = cycle + start if west else cycle - start
        self.span = (start, end) if start <= end else (end, start)
        self.key = (west, self.diagonal)

    def __eq__(self, other) -> bool:
        return isinstance(other, Segment) and (self.west, self.start, self.cycle, self.end) == \
            (other.west, other.start, other.cycle, other.end)

    def __hash__(self) -> int:
        return hash((self.west, self.start, self.cycle, self.end))

    def __repr__(self) -> str:
        return f"Segment(west={self.west}, start={self.start}, cycle={self.cycle}, end={self.end})"


class Streams:
    """stream-alloc: (west, diagonal) -> the position intervals taken there, each with the mask
    of the streams it holds (bit ``s``: stream ``s``)."""

    def __init__(self, streams: int) -> None:
        self.n = streams
        self.cells: dict[tuple[bool, int], list[tuple[int, int, int]]] = {}

    def used(self, seg: Segment) -> int:
        """The mask of the streams some taken interval holds where ``seg`` passes."""
        lo, hi = seg.span
        m = 0
        for a, b, k in self.cells.get(seg.key, ()):
            if a <= hi and lo <= b:
                m |= k
        return m

    def free(self, seg: Segment, base: int, width: int) -> bool:
        return not (self.used(seg) >> base) & ((1 << width) - 1)

    def take(self, seg: Segment, base: int, width: int) -> None:
        lo, hi = seg.span
        self.cells.setdefault(seg.key, []).append((lo, hi, ((1 << width) - 1) << base))

    def find_beside(self, segs: list[Segment], width: int, taken: list) -> int | None:
        """A group free on ``segs`` that also misses every group ``taken`` provisionally by the
        snippet being planned (not yet in the cells); it is added to ``taken``."""
        avoid: set[int] = set()
        while True:
            base = self.find(segs, width, avoid)
            if base is None:
                return None
            if not any(overlaps(segs, width, base, s2, w2, b2) for s2, w2, b2 in taken):
                taken.append((segs, width, base))
                return base
            avoid.add(base)

    def find(self, segs: list[Segment], width: int, avoid: set[int] = frozenset()) -> int | None:
        """The first group (base index, aligned to ``width``) free on every segment."""
        m = 0
        for s in segs:
            m |= self.used(s)
        full = (1 << width) - 1
        for base in range(0, self.n, width):
            if base not in avoid and not (m >> base) & full:
                return base
        return None


def overlaps(segs, width, base, segs2, width2, base2) -> bool:
    """Whether two stream groups over their segments share a cell."""
    if base + width <= base2 or base2 + width2 <= base:
        return False
    for a in segs:
        for b in segs2:
            if a.west == b.west and a.diagonal == b.diagonal:
                (lo, hi), (lo2, hi2) = a.span, b.span
                if lo <= hi2 and lo2 <= hi:
                    return True
    return False


class Resources:
    """Queue issue slots and MEM ports: key -> busy cycles."""

    def __init__(self) -> None:
        self.busy: dict[tuple[str, str], set[int]] = {}

    def free(self, kind: str, unit: str, start: int, n: int = 1) -> bool:
        b = self.busy.get((kind, unit))
        if b is None:
            return True
        return start not in b if n == 1 else b.isdisjoint(range(start, start + n))

    def take(self, kind: str, unit: str, start: int, n: int = 1) -> None:
        b = self.busy.get((kind, unit))
        if b is None:
            b = self.busy[kind, unit] = set()
        if n == 1:
            b.add(start)
        else:
            b.update(range(start, start + n))
