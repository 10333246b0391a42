"""A small ELF64 little-endian writer and reader: sections, symbols, RELA relocations.

It knows nothing of the LPU; ``lpu.asm.objfile`` maps objects onto it. Output is canonical
(the same sections, symbols and relocations give the same bytes), which the byte-for-byte
round trip of ``lpu-objdump -d`` relies on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

ELFCLASS64, ELFDATA2LSB, EV_CURRENT = 2, 1, 1
ET_REL, ET_EXEC = 1, 2
EM_LPU = 0x4C50  # "LP": not assigned to any machine; readelf prints it as a number

SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS = 0, 1, 2, 3, 4, 8
SHT_LOUSER = 0x80000000
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR, SHF_INFO_LINK = 0x1, 0x2, 0x4, 0x40

STB_LOCAL, STB_GLOBAL = 0, 1
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE = 0, 1, 2, 3, 4
SHN_UNDEF, SHN_ABS = 0, 0xFFF1

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")


class ElfError(ValueError):
    pass


@dataclass(slots=True)
class ElfSymbol:
    name: str
    value: int = 0
    size: int = 0
    bind: int = STB_LOCAL
    type: int = STT_NOTYPE
    section: int = SHN_UNDEF  # index into ElfFile.sections, SHN_UNDEF or SHN_ABS
    other: int = 0


@dataclass(slots=True)
class ElfReloc:
    offset: int
    symbol: int  # index into ElfFile.symbols (0 is the null symbol)
    type: int
    addend: int = 0


@dataclass(slots=True)
class ElfSection:
    name: str
    type: int = SHT_PROGBITS
    flags: int = 0
    data: bytes = b""
    size: int | None = None  # for SHT_NOBITS
    addr: int = 0
    align: int = 8
    entsize: int = 0
    info: int = 0
    link: int = 0
    relocs: list[ElfReloc] = field(default_factory=list)  # written as a .rela section after it


@dataclass
class ElfFile:
    type: int = ET_REL
    machine: int = EM_LPU
    flags: int = 0
    entry: int = 0
    sections: list[ElfSection] = field(default_factory=list)  # excluding the null section
    symbols: list[ElfSymbol] = field(default_factory=list)  # excluding the null symbol

    def section_index(self, name: str) -> int:
        for i, s in enumerate(self.sections):
            if s.name == name:
                return i
        raise KeyError(name)


class _StrTab:
    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self.index: dict[str, int] = {"": 0}

    def add(self, s: str) -> int:
        if s not in self.index:
            self.index[s] = len(self.data)
            self.data += s.encode("utf-8") + b"\0"
        return self.index[s]


def write_elf(elf: ElfFile) -> bytes:
    """Serialize: user sections, their .rela sections, .symtab, .strtab, .shstrtab.

    Section numbers in the file: 0 is null, user section i is i + 1; symbols' ``section``
    fields refer to user sections by their list index and are shifted accordingly.
    """
    shstr, strtab = _StrTab(), _StrTab()
    # Local symbols first, as ELF requires.
    order = sorted(range(len(elf.symbols)), key=lambda i: elf.symbols[i].bind != STB_LOCAL)
    new_index = {old: new + 1 for new, old in enumerate(order)}
    first_global = 1 + sum(1 for s in elf.symbols if s.bind == STB_LOCAL)

    headers: list[tuple] = []  # (name, type, flags, addr, data, size, link, info, align, entsize)
    user = len(elf.sections)
    rela_sections = [i for i, s in enumerate(elf.sections) if s.relocs]
    symtab_index = 1 + user + len(rela_sections)
    for s in elf.sections:
        size = s.size if s.type == SHT_NOBITS else len(s.data)
        headers.append((s.name, s.type, s.flags, s.addr, b"" if s.type == SHT_NOBITS else s.data, size,
                        s.link, s.info, s.align, s.entsize))
    for i in rela_sections:
        s = elf.sections[i]
        data = b"".join(_RELA.pack(r.offset, (new_index.get(r.symbol - 1, 0) << 32) | r.type, r.addend)
                        if r.symbol else _RELA.pack(r.offset, r.type, r.addend) for r in s.relocs)
        headers.append((".rela" + s.name, SHT_RELA, SHF_INFO_LINK, 0, data, len(data), symtab_index, i + 1, 8,
                        _RELA.size))
    syms = [_SYM.pack(0, 0, 0, 0, 0, 0)]
    for old in order:
        s = elf.symbols[old]
        shndx = s.section if s.section in (SHN_UNDEF, SHN_ABS) else s.section + 1
        syms.append(_SYM.pack(strtab.add(s.name), (s.bind << 4) | s.type, s.other, shndx, s.value, s.size))
    symdata = b"".join(syms)
    headers.append((".symtab", SHT_SYMTAB, 0, 0, symdata, len(symdata), symtab_index + 1, first_global, 8,
                    _SYM.size))
    headers.append((".strtab", SHT_STRTAB, 0, 0, bytes(strtab.data), len(strtab.data), 0, 0, 1, 0))
    shstrtab_index = len(headers) + 1
    names = [shstr.add(h[0]) for h in headers]
    names.append(shstr.add(".shstrtab"))
    headers.append((".shstrtab", SHT_STRTAB, 0, 0, bytes(shstr.data), len(shstr.data), 0, 0, 1, 0))

    # Chunks joined once at the end: a system image holds hundreds of MiB of SRAM data, which
    # must not be copied more than once on the way out.
    chunks: list = [b""]  # the ELF header, filled in below
    pos = _EHDR.size
    offsets = []
    for h in headers:
        align = max(h[8], 1)
        if h[1] != SHT_NOBITS and pos % align:
            chunks.append(b"\0" * (-pos % align))
            pos += -pos % align
        offsets.append(pos)
        chunks.append(h[4])
        pos += len(h[4])
    chunks.append(b"\0" * (-pos % 8))
    shoff = pos + (-pos % 8)
    chunks.append(_SHDR.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    for h, name, off in zip(headers, names, offsets):
        chunks.append(_SHDR.pack(name, h[1], h[2], h[3], off, h[5], h[6], h[7], h[8], h[9]))
    ident = b"\x7fELF" + bytes([ELFCLASS64, ELFDATA2LSB, EV_CURRENT]) + b"\0" * 9
    chunks[0] = _EHDR.pack(ident, elf.type, elf.machine, EV_CURRENT, elf.entry, 0, shoff, elf.flags,
                           _EHDR.size, 0, 0, _SHDR.size, len(headers) + 1, shstrtab_index)
    return b"".join(chunks)


def read_elf(data: bytes) -> ElfFile:
    """Parse what ``write_elf`` writes (and well-formed ELF64 LE files in general). Every offset,
    size, count and index the reader follows is checked first: damage is an ``ElfError``."""
    if len(data) < _EHDR.size or data[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    if data[4] != ELFCLASS64 or data[5] != ELFDATA2LSB:
        raise ElfError("not a 64-bit little-endian ELF file")
    (_ident, etype, machine, _v, entry, _phoff, shoff, flags, _eh, _phes, _phn, shes, shnum,
     shstrndx) = _EHDR.unpack_from(data)
    if shes != _SHDR.size or shoff + shnum * shes > len(data) or not 0 < shstrndx < shnum:
        raise ElfError("malformed section header table")
    raw = [_SHDR.unpack_from(data, shoff + i * shes) for i in range(shnum)]
    for i, h in enumerate(raw[1:], 1):
        if h[1] != SHT_NOBITS and h[4] + h[5] > len(data):
            raise ElfError(f"section {i} extends past the end of the file")

    def body(h) -> bytes:
        return b"" if h[1] == SHT_NOBITS else data[h[4]: h[4] + h[5]]

    def cstr(table: bytes, off: int, what: str) -> str:
        end = table.find(b"\0", off)
        if off >= len(table) or end < 0:
            raise ElfError(f"{what}: string table offset {off} is outside the table")
        try:
            return table[off:end].decode("utf-8")
        except UnicodeDecodeError:
            raise ElfError(f"{what}: its name is not UTF-8") from None

    def linked(h, i: int, want: int, what: str) -> int:
        j = h[6]  # sh_link
        if not 0 < j < shnum or raw[j][1] != want:
            raise ElfError(f"section {i} ({what}) links to section {j}, which is not a "
                           f"{'string table' if want == SHT_STRTAB else 'symbol table'}")
        return j

    if raw[shstrndx][1] != SHT_STRTAB:
        raise ElfError(f"the section name table (section {shstrndx}) is not a string table")
    shstr = body(raw[shstrndx])
    names = [cstr(shstr, h[0], f"section {i}") for i, h in enumerate(raw[1:], 1)]
    elf = ElfFile(type=etype, machine=machine, flags=flags, entry=entry)
    # user sections: everything except symtab/strtab/shstrtab/rela, in file order
    kept = {}
    symtab = None
    for i, (name, h) in enumerate(zip(names, raw[1:]), 1):
        if h[1] == SHT_SYMTAB:
            if symtab is not None:
                raise ElfError("two symbol tables")
            symtab = i
            continue
        if h[1] in (SHT_RELA, SHT_STRTAB) and (h[1] == SHT_RELA or name in (".strtab", ".shstrtab")):
            continue
        kept[i] = len(elf.sections)
        elf.sections.append(ElfSection(name, h[1], h[2], body(h), h[5] if h[1] == SHT_NOBITS else None,
                                       h[3], h[8], h[9], h[7], h[6]))
    if symtab is not None:
        h = raw[symtab]
        strtab = body(raw[linked(h, symtab, SHT_STRTAB, ".symtab")])
        sd = body(h)
        if len(sd) % _SYM.size:
            raise ElfError(f"the symbol table's size ({len(sd)}) is not a whole number of symbols")
        for j in range(1, len(sd) // _SYM.size):
            name, info, other, shndx, value, size = _SYM.unpack_from(sd, j * _SYM.size)
            if shndx in (SHN_UNDEF, SHN_ABS):
                sec = shndx
            elif shndx in kept:
                sec = kept[shndx]
            else:
                raise ElfError(f"symbol {j} is in section {shndx}, which holds no symbols")
            elf.symbols.append(ElfSymbol(cstr(strtab, name, f"symbol {j}"), value, size, info >> 4, info & 15, sec,
                                         other))
    for i, h in enumerate(raw[1:], 1):
        if h[1] != SHT_RELA:
            continue
        if h[7] not in kept:
            raise ElfError(f"relocation section {names[i - 1]} applies to section {h[7]}, which holds no code")
        if symtab is None or linked(h, i, SHT_SYMTAB, names[i - 1]) != symtab:
            raise ElfError(f"relocation section {names[i - 1]} has no symbol table")
        rd = body(h)
        if len(rd) % _RELA.size:
            raise ElfError(f"relocation section {names[i - 1]} is not a whole number of entries")
        target = elf.sections[kept[h[7]]]
        for j in range(len(rd) // _RELA.size):
            off, info, addend = _RELA.unpack_from(rd, j * _RELA.size)
            target.relocs.append(ElfReloc(off, info >> 32, info & 0xFFFFFFFF, addend))
    return elf
