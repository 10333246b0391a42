"""What is at a position of an assembly document: instructions, their parts, and every
occurrence of a symbol, from the parser's records.

Built lazily, kernel by kernel, and kept with each kernel's cache entry: a hover after an edit
indexes only the kernel it points into (and only if that kernel changed)."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from lpu.asm.parser import RawInst, RawOperand, RawTensor
from lpu.lsp.asm_analysis import AsmSnapshot, KernelView

_SYMREF_AT_RE = re.compile(r"\[[ \t]*@")


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A symbol written in the document: ``@name`` from ``col`` for ``length`` characters."""

    name: str
    line: int
    col: int
    length: int
    is_definition: bool
    kind: str  # tensor, kernel, extern, or "use"


@dataclass(slots=True)
class InstAt:
    view: KernelView
    index: int  # in view.raw.insts
    raw: RawInst


@dataclass(slots=True)
class _KernelIndex:
    by_line: dict[int, int]  # line -> index in raw.insts
    uses: dict[int, list[Occurrence]]  # line -> symbols used on it


class AsmIndex:
    def __init__(self, snap: AsmSnapshot) -> None:
        self.snap = snap
        self.kernel_starts = [v.start for v in snap.kernels]
        self.tensor_by_line: dict[int, RawTensor] = {}
        self.definitions: dict[str, Occurrence] = {}
        self.top: dict[int, list[Occurrence]] = {}  # occurrences outside kernel bodies, by line
        raw = snap.raw
        for rt in raw.tensors:
            self.tensor_by_line[rt.line] = rt
            self._define(Occurrence(rt.name, rt.line, rt.name_col, len(rt.name) + 1, True, "tensor"))
        for name, line, col in raw.externs:
            self._define(Occurrence(name, line, col, len(name) + 1, True, "extern"))
        for v in snap.kernels:
            rk = v.raw
            self._define(Occurrence(rk.name, rk.line, rk.name_col, len(rk.name) + 1, True, "kernel"))

    def _define(self, occ: Occurrence) -> None:
        self.top.setdefault(occ.line, []).append(occ)
        self.definitions.setdefault(occ.name, occ)  # the first definition wins, as in the assembler

    def _kernel(self, view: KernelView) -> _KernelIndex:
        holder = view.entry if view.entry is not None else view
        if holder.index is None:
            by_line: dict[int, int] = {}
            uses: dict[int, list[Occurrence]] = {}
            for i, ri in enumerate(view.raw.insts):
                by_line[ri.line] = i
                for op in ri.operands:
                    occ = self._symbol_use(op)
                    if occ is not None:
                        uses.setdefault(occ.line, []).append(occ)
            holder.index = _KernelIndex(by_line, uses)
        return holder.index

    def _symbol_use(self, op: RawOperand) -> Occurrence | None:
        if op.kind == "symref":
            name = op.value[0]
            text = self.snap.lines[op.line - 1]
            m = _SYMREF_AT_RE.match(text, op.col - 1)
            col = m.end() if m else op.col + 1  # the 1-based column of '@' is m.end()
            return Occurrence(name, op.line, col, len(name) + 1, False, "use")
        if op.kind == "symbol":
            return Occurrence(op.value, op.line, op.col, len(op.value) + 1, False, "use")
        return None

    # --- queries ------------------------------------------------------------------------------
    def kernel_at(self, line: int) -> KernelView | None:
        i = bisect.bisect_right(self.kernel_starts, line) - 1
        if i >= 0 and self.snap.kernels[i].start <= line <= self.snap.kernels[i].end:
            return self.snap.kernels[i]
        return None

    def inst_at(self, line: int) -> InstAt | None:
        view = self.kernel_at(line)
        if view is None:
            return None
        i = self._kernel(view).by_line.get(line)
        return InstAt(view, i, view.raw.insts[i]) if i is not None else None

    def occurrences_on(self, line: int) -> list[Occurrence]:
        out = list(self.top.get(line, ()))
        view = self.kernel_at(line)
        if view is not None:
            out += self._kernel(view).uses.get(line, ())
        return out

    def occurrence_at(self, line: int, col: int) -> Occurrence | None:
        """The symbol under (or just left of) the cursor at a 1-based column."""
        for occ in self.occurrences_on(line):
            if occ.col <= col <= occ.col + occ.length:
                return occ
        return None

    def occurrences_of(self, name: str) -> list[Occurrence]:
        """Every occurrence of a symbol, in document order."""
        out = [o for occs in self.top.values() for o in occs if o.name == name]
        for view in self.snap.kernels:
            out += [o for occs in self._kernel(view).uses.values() for o in occs if o.name == name]
        out.sort(key=lambda o: (o.line, o.col))
        return out

    def operand_at(self, at: InstAt, col: int) -> tuple[int, RawOperand] | None:
        for i, op in enumerate(at.raw.operands):
            if op.col <= col <= op.col + op.length:
                return i, op
        return None
