"""What is at a position of an assembly document: instructions, their parts, and every
occurrence of a symbol — built once per analysis from the parser's records."""

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


class AsmIndex:
    def __init__(self, snap: AsmSnapshot) -> None:
        self.snap = snap
        self.kernel_starts = [v.start for v in snap.kernels]
        self.inst_by_line: dict[int, InstAt] = {}
        self.tensor_by_line: dict[int, RawTensor] = {}
        self.occurrences: list[Occurrence] = []
        self.definitions: dict[str, Occurrence] = {}
        self._by_line: dict[int, list[Occurrence]] | None = None
        raw = snap.raw
        for rt in raw.tensors:
            self.tensor_by_line[rt.line] = rt
            self._define(Occurrence(rt.name, rt.line, rt.name_col, len(rt.name) + 1, True, "tensor"))
        for name, line, col in raw.externs:
            self._define(Occurrence(name, line, col, len(name) + 1, True, "extern"))
        for v in snap.kernels:
            rk = v.raw
            self._define(Occurrence(rk.name, rk.line, rk.name_col, len(rk.name) + 1, True, "kernel"))
            for i, ri in enumerate(rk.insts):
                self.inst_by_line[ri.line] = InstAt(v, i, ri)
                for op in ri.operands:
                    occ = self._symbol_use(op)
                    if occ is not None:
                        self.occurrences.append(occ)

    def _define(self, occ: Occurrence) -> None:
        self.occurrences.append(occ)
        self.definitions.setdefault(occ.name, occ)  # the first definition wins, as in the assembler

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

    def occurrence_at(self, line: int, col: int) -> Occurrence | None:
        """The symbol under (or just left of) the cursor at a 1-based column."""
        if self._by_line is None:
            self._by_line = {}
            for occ in self.occurrences:
                self._by_line.setdefault(occ.line, []).append(occ)
        for occ in self._by_line.get(line, ()):
            if occ.col <= col <= occ.col + occ.length:
                return occ
        return None

    def occurrences_of(self, name: str) -> list[Occurrence]:
        """Every occurrence of a symbol that names something defined in this document (a peer
        chip written ``@pong`` is not a symbol of the file)."""
        return [o for o in self.occurrences if o.name == name]

    def operand_at(self, at: InstAt, col: int) -> tuple[int, RawOperand] | None:
        for i, op in enumerate(at.raw.operands):
            if op.col <= col <= op.col + op.length:
                return i, op
        return None
