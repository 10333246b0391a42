"""LPU relocatable objects, and their mapping onto ELF (docs/object-format.md).

An object holds, per kernel and queue, a stream of 64-bit instruction words; per SRAM tensor,
a data (or reservation) section with its placement; symbols; relocations; a line table mapping
every word to its ``.lpu`` file, line and column; and the chip configuration it was built for.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from lpu.arch.config import config_from_text
from lpu.arch.isa import DTYPE_INDEX, DTYPES
from lpu.asm import elf as E
from lpu.asm.records import MAX_RANK, SYMBOL_NAME_RE, Placement
from lpu.diagnostics import DiagnosticError

# Relocation types: which field of the instruction word the linker fills in.
R_LPU_NONE = 0
R_LPU_SRAM = 1  # addr field <- word address of symbol + addend (symbol in the queue's slice)
R_LPU_TABLE = 2  # table field <- slice index << 16 | word address of symbol + addend
R_LPU_PEER = 3  # link field <- the link that reaches the peer chip
RELOC_NAMES = {R_LPU_NONE: "R_LPU_NONE", R_LPU_SRAM: "R_LPU_SRAM", R_LPU_TABLE: "R_LPU_TABLE",
               R_LPU_PEER: "R_LPU_PEER"}

SHT_LPU_CONFIG = E.SHT_LOUSER + 0
SHT_LPU_KERNELS = E.SHT_LOUSER + 1
SHT_LPU_TENSORS = E.SHT_LOUSER + 2
SHT_LPU_LINES = E.SHT_LOUSER + 3
SHT_LPU_OPS = E.SHT_LOUSER + 4  # optional: the source op named at line-table locations

TEXT_PREFIX = ".lpu.text."
SRAM_PREFIX = ".lpu.sram."
BSS_PREFIX = ".lpu.bss."
PEER_PREFIX = "peer:"  # ":" cannot occur in a symbol of the language


@dataclass(slots=True)
class Reloc:
    word: int  # index of the instruction word in its queue section
    type: int
    symbol: str  # a tensor name, or a peer chip name for R_LPU_PEER
    addend: int = 0


@dataclass(slots=True)
class QueueCode:
    """The instruction words of one queue for one kernel."""

    kernel: str
    queue: str
    words: np.ndarray  # uint64
    lines: np.ndarray  # (n, 3) uint32: file index, line, column of every word
    relocs: list[Reloc] = field(default_factory=list)

    @property
    def section_name(self) -> str:
        return f"{TEXT_PREFIX}{self.kernel}.{self.queue}"


@dataclass(slots=True)
class SramSection:
    symbol: str
    dtype: str
    shape: tuple[int, ...]
    placement: Placement
    words: int
    image: bytes | None  # None: a reservation (no contents)
    is_global: bool = False
    where: tuple[int, int, int] = (0, 0, 0)  # (file index, line, column) of the definition; line 0: unknown

    @property
    def section_name(self) -> str:
        return f"{SRAM_PREFIX if self.image is not None else BSS_PREFIX}{self.symbol}"


@dataclass(slots=True)
class KernelInfo:
    name: str
    length: int  # cycles
    is_global: bool = False
    where: tuple[int, int, int] = (0, 0, 0)  # (file index, line, column) of the definition; line 0: unknown


@dataclass
class ObjectFile:
    config_text: str
    config_source: str = ""
    files: list[str] = field(default_factory=list)
    sram: list[SramSection] = field(default_factory=list)
    kernels: list[KernelInfo] = field(default_factory=list)
    code: list[QueueCode] = field(default_factory=list)
    externs: list[str] = field(default_factory=list)
    #: (file index, line, column) -> the source op written there (``.lpu.ops``), for locations
    #: the line table uses; empty for hand-written assembly
    op_names: dict[tuple[int, int, int], str] = field(default_factory=dict)

    @property
    def peers(self) -> list[str]:
        seen: dict[str, None] = {}
        for c in self.code:
            for r in c.relocs:
                if r.type == R_LPU_PEER:
                    seen.setdefault(r.symbol)
        return list(seen)


def pack_str(s: str) -> bytes:
    # file names are the file system's bytes (a name that is not UTF-8 keeps its bytes); every
    # other string is UTF-8 already
    b = s.encode("utf-8", "surrogateescape")
    return struct.pack("<I", len(b)) + b


def used_op_names(obj: ObjectFile, names: dict[tuple[str, int, int], str]) -> dict[tuple[int, int, int], str]:
    """Of ``names`` ((file, line, column) -> op name), those at a location some word of ``obj``
    carries, keyed by the object's file index, in (file, line, column) order."""
    if not names:
        return {}
    index = {f: i for i, f in enumerate(obj.files)}
    used: set[tuple[int, int, int]] = set()
    for c in obj.code:
        if len(c.lines):
            used.update(map(tuple, np.unique(np.asarray(c.lines).reshape(-1, 3), axis=0).tolist()))
    out = {}
    for (f, line, col), name in names.items():
        key = (index.get(f, -1), line, col)
        if key in used:
            out[key] = name
    return dict(sorted(out.items()))


def op_names_bytes(names: dict[tuple[int, int, int], str]) -> bytes:
    """The ``.lpu.ops`` layout (objects and, per chip, images): a count, then per location in
    ascending (file index, line, column) order the triple and the op's name (a string)."""
    out = [struct.pack("<I", len(names))]
    for (f, line, col), name in sorted(names.items()):
        out.append(struct.pack("<III", f, line, col) + pack_str(name))
    return b"".join(out)


def read_op_names(data: bytes, files: int, what: str) -> dict[tuple[int, int, int], str]:
    """``op_names_bytes`` read back; ``files``: how many files the line table names."""
    r = TableReader(data, what)
    out: dict[tuple[int, int, int], str] = {}
    last = None
    for _ in range(r.u32()):
        key = (r.u32(), r.u32(), r.u32())
        if key[0] >= files or key[1] == 0:
            raise E.ElfError(f"{what}: names a location the line table cannot hold ({key[0]}, {key[1]}, {key[2]})")
        if last is not None and key <= last:
            raise E.ElfError(f"{what}: locations out of order")
        out[key] = r.str()
        last = key
    if r.pos != len(r.data):
        raise E.ElfError(f"{what}: {len(r.data) - r.pos} bytes too many")
    return out


class TableReader:
    """Reads one table of an object or image; anything it announces that is not there is damage."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise E.ElfError(f"{self.what} is truncated")
        b = self.data[self.pos: self.pos + n]
        self.pos += n
        return b

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def i32(self) -> int:
        return struct.unpack("<i", self.take(4))[0]

    def count(self, least_bytes: int) -> int:
        """A count of entries of at least ``least_bytes`` each: more than the rest can hold is
        damage, found before looping over it."""
        n = self.u32()
        if n * least_bytes > len(self.data) - self.pos:
            raise E.ElfError(f"{self.what} is truncated (it announces {n} entries)")
        return n

    def str(self) -> str:
        try:
            return self.take(self.u32()).decode("utf-8")
        except UnicodeDecodeError:
            raise E.ElfError(f"{self.what} holds a string that is not UTF-8") from None

    def path(self) -> str:
        """A file name: the file system's bytes, whatever they are (see ``pack_str``)."""
        return self.take(self.u32()).decode("utf-8", "surrogateescape")

    def array(self, n: int) -> np.ndarray:
        return np.frombuffer(self.take(4 * n), dtype="<u4", count=n)

    def end(self) -> None:
        if self.pos != len(self.data):
            raise E.ElfError(f"{self.what} has {len(self.data) - self.pos} bytes too many")


def to_elf(obj: ObjectFile, etype: int = E.ET_REL) -> E.ElfFile:
    elf = E.ElfFile(type=etype)
    elf.sections.append(E.ElfSection(".lpu.config", SHT_LPU_CONFIG, 0, obj.config_text.encode("utf-8"), align=1))
    kern = b"".join(pack_str(k.name) + struct.pack("<II", k.length, int(k.is_global)) for k in obj.kernels)
    elf.sections.append(E.ElfSection(".lpu.kernels", SHT_LPU_KERNELS, 0, struct.pack("<I", len(obj.kernels)) + kern,
                                     align=4))
    tens = [struct.pack("<I", len(obj.sram))]
    for s in obj.sram:
        p = s.placement
        tens.append(pack_str(s.symbol) + struct.pack("<II", DTYPE_INDEX[s.dtype], len(s.shape))
                    + struct.pack(f"<{len(s.shape)}I", *s.shape) + pack_str(p.slice or "")
                    + pack_str(p.hemisphere or "")
                    + struct.pack("<iII", -1 if p.address is None else p.address, s.words, int(s.is_global)))
    elf.sections.append(E.ElfSection(".lpu.tensors", SHT_LPU_TENSORS, 0, b"".join(tens), align=4))
    lines = [struct.pack("<I", len(obj.files))] + [pack_str(f) for f in obj.files]
    lines.append(struct.pack("<I", len(obj.code)))
    for c in obj.code:
        lines.append(struct.pack("<I", len(c.words)))
        lines.append(np.ascontiguousarray(c.lines, dtype="<u4").tobytes())
    # where each kernel, then each tensor, is defined (the linker's duplicate-symbol notes)
    defs = [k.where for k in obj.kernels] + [t.where for t in obj.sram]
    lines.append(struct.pack(f"<I{3 * len(defs)}I", len(defs), *(x for d in defs for x in d)))
    elf.sections.append(E.ElfSection(".lpu.lines", SHT_LPU_LINES, 0, b"".join(lines), align=4))
    if obj.op_names:  # only then: an object of hand-written assembly stays as it always was
        elf.sections.append(E.ElfSection(".lpu.ops", SHT_LPU_OPS, 0, op_names_bytes(obj.op_names), align=4))

    sram_index = {}
    for s in obj.sram:
        sram_index[s.symbol] = len(elf.sections)
        if s.image is None:
            elf.sections.append(E.ElfSection(s.section_name, E.SHT_NOBITS, E.SHF_ALLOC | E.SHF_WRITE,
                                             size=_bss_size(s, obj), align=64))
        else:
            elf.sections.append(E.ElfSection(s.section_name, E.SHT_PROGBITS, E.SHF_ALLOC | E.SHF_WRITE, s.image,
                                             align=64))
    # symbols: locals first, then globals, each in definition order
    syms: list[E.ElfSymbol] = []
    sym_index: dict[tuple[str, str], int] = {}  # (kind, name) -> 1-based symbol index

    def add(kind: str, key: str, sym: E.ElfSymbol) -> None:
        syms.append(sym)
        sym_index[(kind, key)] = len(syms)

    for is_global in (False, True):
        bind = E.STB_GLOBAL if is_global else E.STB_LOCAL
        for s in obj.sram:
            if s.is_global == is_global:
                add("sym", s.symbol, E.ElfSymbol(s.symbol, 0, s.words, bind, E.STT_OBJECT, sram_index[s.symbol]))
        for i, k in enumerate(obj.kernels):
            if k.is_global == is_global:
                add("sym", k.name, E.ElfSymbol(k.name, i, k.length, bind, E.STT_FUNC, 1))
    for name in obj.externs:
        add("sym", name, E.ElfSymbol(name, 0, 0, E.STB_GLOBAL, E.STT_NOTYPE, E.SHN_UNDEF))
    for chip in obj.peers:
        add("peer", chip, E.ElfSymbol(PEER_PREFIX + chip, 0, 0, E.STB_GLOBAL, E.STT_NOTYPE, E.SHN_UNDEF))
    elf.symbols = syms
    for c in obj.code:
        sec = E.ElfSection(c.section_name, E.SHT_PROGBITS, E.SHF_ALLOC | E.SHF_EXECINSTR,
                           np.ascontiguousarray(c.words, dtype="<u8").tobytes(), align=8, entsize=8)
        for r in c.relocs:
            kind = "peer" if r.type == R_LPU_PEER else "sym"
            sec.relocs.append(E.ElfReloc(r.word * 8, sym_index[(kind, r.symbol)], r.type, r.addend))
        elf.sections.append(sec)
    return elf


def _bss_size(s: SramSection, obj: ObjectFile) -> int:
    # a reservation's size in bytes: words x lanes, taken from the embedded configuration
    return s.words * config_from_text(obj.config_text, obj.config_source or "<object>").lanes


def from_elf(elf: E.ElfFile) -> ObjectFile:
    """The object an ELF file holds. Every count, index, size and name is checked, and then
    the whole object (``lpu.asm.objcheck``): damage of any kind is an ``ElfError``."""
    from lpu.asm.objcheck import object_problems  # it builds on this module's records

    if elf.machine != E.EM_LPU:
        raise E.ElfError(f"not an LPU object (e_machine is 0x{elf.machine:x})")
    if elf.type != E.ET_REL:
        raise E.ElfError(f"ELF type {elf.type} is not a relocatable object")
    by_type: dict[int, E.ElfSection] = {}
    for s in elf.sections:
        if s.type in by_type and s.type in (SHT_LPU_CONFIG, SHT_LPU_KERNELS, SHT_LPU_TENSORS, SHT_LPU_LINES):
            raise E.ElfError(f"two sections of type 0x{s.type:x} ({by_type[s.type].name}, {s.name})")
        by_type.setdefault(s.type, s)
    for t, what in ((SHT_LPU_CONFIG, ".lpu.config"), (SHT_LPU_KERNELS, ".lpu.kernels"),
                    (SHT_LPU_TENSORS, ".lpu.tensors"), (SHT_LPU_LINES, ".lpu.lines")):
        if t not in by_type:
            raise E.ElfError(f"missing section {what}")
    try:
        obj = ObjectFile(by_type[SHT_LPU_CONFIG].data.decode("utf-8"))
    except UnicodeDecodeError:
        raise E.ElfError(".lpu.config is not UTF-8 text") from None
    try:
        cfg = config_from_text(obj.config_text, "<object>")
    except DiagnosticError as e:
        raise E.ElfError(f"its chip configuration is invalid ({e.diagnostics[0].message})") from None
    r = TableReader(by_type[SHT_LPU_KERNELS].data, ".lpu.kernels")
    for _ in range(r.count(12)):
        name = r.str()
        length, g = r.u32(), r.u32()
        obj.kernels.append(KernelInfo(name, length, bool(g)))
    r.end()
    sections = {s.name: s for s in elf.sections}
    r = TableReader(by_type[SHT_LPU_TENSORS].data, ".lpu.tensors")
    for _ in range(r.count(32)):
        name = r.str()
        if not SYMBOL_NAME_RE.fullmatch(name):  # before it names anything in a message
            raise E.ElfError(f".lpu.tensors: tensor name {name!r} is not a symbol")
        dt, ndim = r.u32(), r.u32()
        if dt >= len(DTYPES):
            raise E.ElfError(f".lpu.tensors: bad element type {dt}")
        if ndim > MAX_RANK:
            raise E.ElfError(f".lpu.tensors: tensor '{name}' has {ndim} dimensions (at most {MAX_RANK})")
        shape = tuple(int(x) for x in r.array(ndim))
        slice_, hemi = r.str(), r.str()
        addr = r.i32()
        words, g = r.u32(), r.u32()
        data, bss = sections.get(SRAM_PREFIX + name), sections.get(BSS_PREFIX + name)
        if (data is None) == (bss is None):
            raise E.ElfError(f"tensor '{name}' has {'no' if data is None else 'both a data and a'} SRAM section")
        sec = data or bss
        if sec.type != (E.SHT_PROGBITS if data is not None else E.SHT_NOBITS):
            raise E.ElfError(f"section {sec.name} has type 0x{sec.type:x}")
        if bss is not None and bss.size != words * cfg.lanes:
            raise E.ElfError(f"section {bss.name} reserves {bss.size} bytes, but tensor '{name}' occupies {words} "
                             f"words of {cfg.lanes} lanes")
        obj.sram.append(SramSection(name, DTYPES[dt], shape,
                                    Placement(slice_ or None, hemi or None, None if addr < 0 else addr), words,
                                    data.data if data is not None else None, bool(g)))
    r.end()
    symnames = [s.name for s in elf.symbols]
    obj.externs = [s.name for s in elf.symbols
                   if s.section == E.SHN_UNDEF and not (s.name.startswith(PEER_PREFIX))]
    r = TableReader(by_type[SHT_LPU_LINES].data, ".lpu.lines")
    obj.files = [r.path() for _ in range(r.count(4))]
    texts = [s for s in elf.sections if s.name.startswith(TEXT_PREFIX)]
    if r.u32() != len(texts):
        raise E.ElfError(".lpu.lines: does not match the text sections")
    for s in texts:
        n = r.u32()
        lines = r.array(3 * n).reshape(n, 3)
        kernel, _, queue = s.name[len(TEXT_PREFIX):].rpartition(".")
        if "." in kernel and queue.isdigit():  # VXM.3: the queue name holds a dot
            kernel, _, alu = kernel.rpartition(".")
            queue = f"{alu}.{queue}"
        if s.type != E.SHT_PROGBITS:
            raise E.ElfError(f"section {s.name} has type 0x{s.type:x}")
        if len(s.data) != 8 * n:
            raise E.ElfError(f"{s.name}: {len(s.data) / 8:g} words but {n} line entries")
        words = np.frombuffer(s.data, dtype="<u8").copy()
        relocs = []
        for rel in s.relocs:
            if not 0 < rel.symbol <= len(symnames):
                raise E.ElfError(f"{s.name}: relocation names symbol {rel.symbol}")
            if rel.offset % 8:
                raise E.ElfError(f"{s.name}: relocation at byte {rel.offset}, inside a word")
            name = symnames[rel.symbol - 1]
            if (rel.type == R_LPU_PEER) != name.startswith(PEER_PREFIX):
                raise E.ElfError(f"{s.name}: relocation of type {rel.type} names symbol '{name}'")
            if rel.type == R_LPU_PEER:
                name = name[len(PEER_PREFIX):]
            relocs.append(Reloc(rel.offset // 8, rel.type, name, rel.addend))
        obj.code.append(QueueCode(kernel, queue, words, lines.astype(np.uint32), relocs))
    if r.pos < len(r.data):  # definition lines (absent from objects written before they existed)
        defs = r.array(3 * r.count(12)).reshape(-1, 3)
        if len(defs) != len(obj.kernels) + len(obj.sram):
            raise E.ElfError(".lpu.lines: definition lines do not match the kernels and tensors")
        for rec, d in zip(obj.kernels + obj.sram, defs):
            rec.where = tuple(int(x) for x in d)
    r.end()
    if SHT_LPU_OPS in by_type:
        obj.op_names = read_op_names(by_type[SHT_LPU_OPS].data, len(obj.files), ".lpu.ops")
    problems = object_problems(obj, cfg)
    if problems:
        where, message = problems[0]
        raise E.ElfError(f"{where}: {message}")
    return obj


def write_object(obj: ObjectFile) -> bytes:
    return E.write_elf(to_elf(obj))


def read_object(data: bytes) -> ObjectFile:
    return from_elf(E.read_elf(data))
