"""Lean records for an assembly program: what the parser builds and the encoder consumes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from lpu.arch.isa import InstrSpec
from lpu.diagnostics import SourceLoc


#: a symbol's name as the language spells it after its '@' (asm.lark's SYMBOL): what an object's
#: kernels, tensors, externs and peers must be called for their disassembly to read back
SYMBOL_NAME = r"[A-Za-z_][A-Za-z0-9_.$]*"
SYMBOL_NAME_RE = re.compile(SYMBOL_NAME)

#: the most dimensions a tensor has: every format that holds a shape (objects, images) agrees
MAX_RANK = 8


class HexInt(int):
    """An integer literal written in hex (``0x7f800000``): as a float immediate it is the bit
    pattern, not the value — how the disassembler writes infinities and NaNs."""

    __slots__ = ()


class SymRef(NamedTuple):
    """An SRAM address operand naming a symbol: ``[@name + offset]`` (offset in words)."""

    symbol: str
    offset: int = 0


class PeerRef(NamedTuple):
    """A link operand naming a peer chip (``@name``); the linker picks the physical link."""

    chip: str


@dataclass(slots=True)
class Inst:
    """One instruction of a kernel, checked: every operand is an encoded field value, a
    ``SymRef`` or a ``PeerRef`` (which become relocations); ``None`` for an absent option."""

    cycle: int
    queue: int  # index into the chip configuration's queues
    spec: InstrSpec
    dtype: str | None
    dtype2: str | None
    args: tuple
    loc: SourceLoc | None = None
    arg_locs: tuple = ()  # SourceLoc of each operand (for diagnostics), when parsed from text


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an SRAM tensor goes: a fixed slice (and address), or any slice of a hemisphere."""

    slice: str | None = None  # MEM_W3
    hemisphere: str | None = None  # "W" or "E" when only the hemisphere is fixed
    address: int | None = None

    def __str__(self) -> str:
        where = self.slice or f"MEM_{self.hemisphere}"
        return where if self.address is None else f"{where} at {self.address}"


@dataclass(slots=True)
class Tensor:
    """A named tensor in SRAM: ``data`` (with contents) or ``reserve`` (without)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    placement: Placement
    image: bytes | None  # the SRAM image (words x lanes bytes); None for a reservation
    is_global: bool = False
    loc: SourceLoc | None = None
    words: int = 0


@dataclass(slots=True)
class Kernel:
    name: str
    insts: list[Inst] = field(default_factory=list)
    is_global: bool = False
    loc: SourceLoc | None = None
    length: int = 0  # cycles until its last result lands


@dataclass(slots=True)
class Program:
    """A whole assembly file, checked."""

    target: str
    config: object  # ChipConfig
    tensors: list[Tensor] = field(default_factory=list)
    externs: list[str] = field(default_factory=list)
    kernels: list[Kernel] = field(default_factory=list)
    file: str = "<input>"
    #: (file, line, column) -> the name of the source op written there (``df.add``): from the
    #: compiler, or from ``loc("df.add"("f.lpu":3:8))`` annotations; the object's ``.lpu.ops``
    op_names: dict[tuple[str, int, int], str] = field(default_factory=dict)
