"""Hazards: what went wrong, where in time, on which unit, and which source line caused it.

Each is printed like a compiler error, from the image's line table:
``file:line:col: error: <hazard> on chip X, cycle N, UNIT: <instruction>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lpu.asm.operands import operand_text
from lpu.diagnostics import Diagnostic, SourceLoc

# the hazards of the architecture page, by the short names the simulator uses
EMPTY_READ = "empty stream read"
WRITE_CONFLICT = "stream write conflict"
MISALIGNED = "misaligned group read"
PORT_CONFLICT = "MEM port conflict"
OUT_OF_RANGE = "address out of range"
NO_WEIGHTS = "mm with no installed weights"
PLANE_BUSY = "MXM plane busy"
LINK_BUSY = "link busy"
EMPTY_RECV = "receive from an empty buffer"
OVERFLOW = "receive-buffer overflow"
UNCONNECTED = "unconnected link"
DEADLOCK = "sync that can never be released (deadlock)"


@dataclass(slots=True)
class Hazard:
    kind: str
    chip: int
    cycle: int
    queue: int
    word: int  # instruction word of the queue program (line table, instruction text)
    detail: str = ""
    notes: list[tuple[str, int, int, int]] = field(default_factory=list)  # (text, chip, queue, word)

    @property
    def order(self) -> tuple[int, int, int, int]:
        return (self.cycle, self.chip, self.queue, self.word)

    def as_dict(self, machine) -> dict:
        d = {"hazard": self.kind, "chip": machine.chip_names[self.chip], "cycle": self.cycle,
             "unit": machine.cfgs[self.chip].queues[self.queue].name,
             "instruction": machine.inst_text(self.chip, self.queue, self.word), "detail": self.detail}
        loc = machine.word_loc(self.chip, self.queue, self.word)
        if loc is not None:
            d["loc"] = str(loc)
        return d


def instruction_text(spec, dtype, dtype2, fields, symbol_at=None) -> str:
    """``read.i8 [@src + 0], s0e``: addresses named by the SRAM symbol holding them when known."""
    m = spec.mnemonic + (f".{dtype}" if spec.types else "") + (f".{dtype2}" if spec.types2 else "")
    ops = []
    for op, v in zip(spec.operands, fields):
        text = operand_text(op, v, dtype)
        if op.kind.name == "addr" and symbol_at is not None:
            hit = symbol_at(v)
            if hit is not None:
                name, off = hit
                text = f"[@{name}{f' + {off}' if off else ''}]"
        if text is not None:
            ops.append(text)
    return m + (" " + ", ".join(ops) if ops else "")


def to_diagnostic(h: Hazard, machine) -> Diagnostic:
    cfg = machine.cfgs[h.chip]
    unit = cfg.queues[h.queue].name
    text = machine.inst_text(h.chip, h.queue, h.word)
    kind = f"{h.kind} ({h.detail})" if h.detail else h.kind
    d = Diagnostic("error", f"{kind} on chip {machine.chip_names[h.chip]}, cycle {h.cycle}, {unit}: {text}",
                   machine.word_loc(h.chip, h.queue, h.word) or SourceLoc(machine.image_name))
    for note, chip, queue, word in h.notes:
        d.note(note, machine.word_loc(chip, queue, word))
    return d
