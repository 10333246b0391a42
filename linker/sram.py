"""SRAM layout: every data and reservation section of a chip placed in its MEM slices.

Sections ask for a fixed slice and address, a fixed slice, or any slice of a hemisphere. They
are placed in that order of freedom (fixed addresses first, as they are constraints, then fixed
slices, then hemispheres), each class in input order (objects as given, sections as in the
object), at the lowest address that fits (first fit), aligned to the element's width in words.
A hemisphere is searched from the slice next to the VXM outwards (MEM_W0, MEM_W1, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from lpu.arch.isa import DTYPE_BYTES
from lpu.asm.objcheck import tensor_problem
from lpu.asm.objfile import SramSection
from lpu.diagnostics import Diagnostic, error


@dataclass(slots=True)
class Placed:
    object: str
    section: SramSection
    slice: str
    address: int

    @property
    def end(self) -> int:
        return self.address + self.section.words


def _what(p: Placed | tuple[str, SramSection]) -> str:
    obj, s = (p.object, p.section) if isinstance(p, Placed) else p
    return f"@{s.symbol} (object '{obj}', {s.words} word{'s' if s.words != 1 else ''})"


class _Slice:
    def __init__(self, name: str, capacity: int) -> None:
        self.name, self.capacity = name, capacity
        self.placed: list[Placed] = []  # sorted by address

    def first_fit(self, words: int, align: int) -> int | None:
        at = 0
        for p in self.placed:
            at = -(-at // align) * align
            if at + words <= p.address:
                return at
            at = max(at, p.end)
        at = -(-at // align) * align
        return at if at + words <= self.capacity else None

    def largest_gap(self) -> int:
        at, best = 0, 0
        for p in self.placed:
            best = max(best, p.address - at)
            at = max(at, p.end)
        return max(best, self.capacity - at)

    def overlapping(self, start: int, end: int) -> Placed | None:
        for p in self.placed:
            if p.address < end and start < p.end:
                return p
        return None

    def add(self, p: Placed) -> None:
        self.placed.append(p)
        self.placed.sort(key=lambda q: q.address)

    def used(self) -> int:
        return sum(p.section.words for p in self.placed)


def layout(chip: str, cfg, sections: list[tuple[str, SramSection]]) -> tuple[list[Placed], list[Diagnostic]]:
    """Place ``(object, section)`` pairs on one chip: the placements (in input order) and the
    errors (sections that are not placed are left out)."""
    slices = {s.name: _Slice(s.name, cfg.words) for s in cfg.mem_slices}
    diags: list[Diagnostic] = []
    placed: dict[int, Placed] = {}

    def overflow(sl: _Slice, obj: str, s: SramSection, why: str) -> None:
        d = error(f"SRAM slice {sl.name} of chip '{chip}' overflows: {_what((obj, s))} {why}; the slice holds "
                  f"{sl.capacity} words, {sl.used()} of them used")
        for p in sl.placed:
            d.note(f"{sl.name} words {p.address}-{p.end - 1}: {_what(p)}")
        diags.append(d)

    order = sorted(range(len(sections)), key=lambda i: (
        0 if sections[i][1].placement.address is not None else 1 if sections[i][1].placement.slice else 2, i))
    for i in order:
        obj, s = sections[i]
        pl = s.placement
        problem = tensor_problem(s, cfg)
        if problem is not None:
            diags.append(error(f"object '{obj}': {problem}"))
            continue
        align = DTYPE_BYTES.get(s.dtype, 1)
        if pl.slice is not None:
            sl = slices[pl.slice]  # a MEM slice, in range: tensor_problem says so
            if pl.address is not None:
                other = sl.overlapping(pl.address, pl.address + s.words)
                if other is not None:
                    diags.append(error(
                        f"SRAM sections overlap in {sl.name} of chip '{chip}': {_what((obj, s))} at words "
                        f"{pl.address}-{pl.address + s.words - 1} and {_what(other)} at words "
                        f"{other.address}-{other.end - 1}"))
                    continue
                at = pl.address
            else:
                at = sl.first_fit(s.words, align)
                if at is None:
                    overflow(sl, obj, s, "does not fit")
                    continue
        else:
            hemi = [slices[x.name] for x in sorted((x for x in cfg.mem_slices if x.hemisphere == pl.hemisphere),
                                                   key=lambda x: int(x.name[5:]))]
            sl, at = None, None
            for cand in hemi:
                at = cand.first_fit(s.words, align)
                if at is not None:
                    sl = cand
                    break
            if sl is None:
                if not hemi:
                    diags.append(error(f"object '{obj}': @{s.symbol} asks for a slice of MEM_{pl.hemisphere}, which "
                                       f"chip '{chip}' ({cfg.name}) does not have"))
                    continue
                roomiest = max(hemi, key=lambda x: x.largest_gap())
                d = error(f"SRAM hemisphere MEM_{pl.hemisphere} of chip '{chip}' overflows: no slice has room for "
                          f"{_what((obj, s))}; each slice holds {cfg.words} words, the largest free range is "
                          f"{roomiest.largest_gap()} words in {roomiest.name}")
                for p in roomiest.placed:
                    d.note(f"{roomiest.name} words {p.address}-{p.end - 1}: {_what(p)}")
                diags.append(d)
                continue
        p = Placed(obj, s, sl.name, at)
        sl.add(p)
        placed[i] = p
    return [placed[i] for i in range(len(sections)) if i in placed], diags
