"""The linked system image: what ``lpu-ld`` writes and ``lpu-sim`` runs.

This module is the contract between the linker and the simulator. It holds, per chip, one
instruction stream per queue (every queue starts at cycle 0; kernels and phases are already laid
end to end, with ``nop``s filling the gaps), the initial SRAM contents, the final address of every
SRAM symbol and the line table; and, for the system, the links between chips.

Serialization to and from ELF (an ``ET_EXEC`` file) lives next to this in the linker; the
simulator only needs :func:`read_image` and these records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class QueueProgram:
    """The whole program of one queue of one chip, from cycle 0."""

    queue: str  # the chip configuration's queue name: MEM_W3, VXM.0, MXM_E1, C2C_W, ...
    words: np.ndarray  # uint64 instruction words (links and SRAM addresses already resolved)
    lines: np.ndarray  # (n, 3) uint32: index into ChipImage.files, line, column; line 0 = none


@dataclass(slots=True)
class SramInit:
    """Initial contents of one SRAM range: ``len(data) == words * lanes``."""

    slice: str  # MEM_W3
    address: int  # first word
    data: bytes  # byte-plane words, as lpu.arch.layout.to_sram lays them out


@dataclass(slots=True)
class SymbolInfo:
    """A tensor placed in SRAM: where it is, and what it holds."""

    name: str
    slice: str
    address: int  # first word
    words: int
    dtype: str
    shape: tuple[int, ...]
    is_global: bool = True
    object: str = ""  # the object that defined it (local symbols of two objects may share a name)


@dataclass(slots=True)
class PhaseInfo:
    """One kernel (or one temporally linked phase) as laid out on a chip."""

    name: str  # "object:kernel"
    start: int  # first cycle
    length: int  # cycles
    phase: int = 0  # the temporal phase it belongs to (``--phase``); every chip starts a phase together


@dataclass(slots=True)
class ChipImage:
    name: str  # chip0, producer, ...
    config_text: str  # the chip configuration's TOML text (lpu.arch.config.config_from_text)
    config_source: str  # where that text came from (for messages)
    queues: list[QueueProgram] = field(default_factory=list)  # only queues with instructions
    sram: list[SramInit] = field(default_factory=list)
    symbols: list[SymbolInfo] = field(default_factory=list)
    phases: list[PhaseInfo] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # source files named by the line tables
    #: (file index, line, column) -> the source op written there, from the objects' .lpu.ops
    op_names: dict[tuple[int, int, int], str] = field(default_factory=dict)
    length: int = 0  # cycles until the chip's last result lands (sum of phase lengths)


@dataclass(slots=True, frozen=True)
class LinkWire:
    """A bidirectional link between two chips: ``a.link_a <-> b.link_b``."""

    chip_a: str
    link_a: int  # 0..15 (L0..L15)
    chip_b: str
    link_b: int
    latency: int  # cycles from the last byte leaving to landing in the peer's buffer


@dataclass(slots=True)
class SystemImage:
    chips: list[ChipImage] = field(default_factory=list)
    links: list[LinkWire] = field(default_factory=list)

    def chip(self, name: str) -> ChipImage:
        for c in self.chips:
            if c.name == name:
                return c
        raise KeyError(name)
