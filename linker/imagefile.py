"""System images as ELF executables (docs/linker.md, "Image format").

Sections, in order:

- ``.lpu.system`` (SHT_LPU_SYSTEM): format version, a CRC-32 of every other section's contents,
  the chips (each naming its ``.lpu.chip.*`` section) and the links.
- per chip ``.lpu.chip.NAME`` (SHT_LPU_CHIP): configuration text and source, length, source
  files, phases, SRAM symbols, and which sections hold its queues and initial SRAM.
- per queue ``.lpu.text.CHIP.QUEUE`` (PROGBITS, AX): 64-bit words from cycle 0, and
  ``.lpu.lines.CHIP.QUEUE`` (SHT_LPU_LINES): file index, line, column per word.
- per initialized SRAM range ``.lpu.sram.CHIP.SLICE+ADDRESS`` (PROGBITS, WA): byte-plane words.
- per chip whose objects name source ops, ``.lpu.ops.CHIP`` (SHT_LPU_OPS, the objects' layout on
  the chip's file list), after its ``.lpu.chip.NAME``; found by name, so readers that predate it
  skip it.
- ``.symtab``: ``CHIP:SYMBOL`` for every SRAM tensor (value: word address, size: words) and
  ``CHIP:OBJECT:KERNEL`` for every kernel (value: first cycle, size: cycles), for readelf/nm.

Reading checks everything it relies on; damage of any kind is one clear diagnostic.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from lpu.arch.config import config_from_text
from lpu.arch.isa import DTYPE_INDEX, DTYPES
from lpu.arch.layout import words as tensor_words
from lpu.asm import elf as E
from lpu.asm.objcheck import is_symbol_name
from lpu.asm.objfile import SHT_LPU_OPS, TableReader, op_names_bytes, read_op_names
from lpu.asm.objfile import pack_str as _str
from lpu.asm.printer import tensor_type
from lpu.asm.records import MAX_RANK
from lpu.diagnostics import DiagnosticError, SourceLoc, error
from lpu.asm.words import MalformedCode, check_words
from lpu.linker.image import ChipImage, LinkWire, PhaseInfo, QueueProgram, SramInit, SymbolInfo, SystemImage

SHT_LPU_SYSTEM = E.SHT_LOUSER + 0x10
SHT_LPU_CHIP = E.SHT_LOUSER + 0x11
SHT_LPU_LINES = E.SHT_LOUSER + 3  # the objects' line-table type: the same layout
VERSION = 1


def _checksum(sections: list[E.ElfSection]) -> int:
    crc = 0
    for s in sections:
        crc = zlib.crc32(s.data, crc)
    return crc


def image_to_elf(img: SystemImage) -> E.ElfFile:
    elf = E.ElfFile(type=E.ET_EXEC)
    body: list[E.ElfSection] = []  # everything after .lpu.system
    syms: list[E.ElfSymbol] = []
    chip_section: list[int] = []

    def add(section: E.ElfSection) -> int:
        body.append(section)
        return len(body)  # its index in elf.sections once .lpu.system is first

    for chip in img.chips:
        queues, sram = [], []
        for q in chip.queues:
            words = np.ascontiguousarray(q.words, dtype="<u8")
            lines = np.ascontiguousarray(q.lines, dtype="<u4").reshape(-1, 3)
            wi = add(E.ElfSection(f".lpu.text.{chip.name}.{q.queue}", E.SHT_PROGBITS, E.SHF_ALLOC | E.SHF_EXECINSTR,
                                  words.tobytes(), align=8, entsize=8))
            li = add(E.ElfSection(f".lpu.lines.{chip.name}.{q.queue}", SHT_LPU_LINES, 0, lines.tobytes(), align=4,
                                  entsize=12))
            queues.append(_str(q.queue) + struct.pack("<II", wi, li))
        sram_index = {}
        for s in chip.sram:
            si = add(E.ElfSection(f".lpu.sram.{chip.name}.{s.slice}+{s.address}", E.SHT_PROGBITS,
                                  E.SHF_ALLOC | E.SHF_WRITE, s.data, align=64))
            sram_index[(s.slice, s.address)] = si
            sram.append(_str(s.slice) + struct.pack("<II", s.address, si))
        rec = [_str(chip.name), _str(chip.config_source), _str(chip.config_text), struct.pack("<Q", chip.length)]
        rec.append(struct.pack("<I", len(chip.files)) + b"".join(_str(f) for f in chip.files))
        rec.append(struct.pack("<I", len(chip.phases)) + b"".join(
            _str(p.name) + struct.pack("<QQI", p.start, p.length, p.phase) for p in chip.phases))
        rec.append(struct.pack("<I", len(chip.symbols)) + b"".join(
            _str(s.name) + _str(s.slice) + struct.pack("<IIII", s.address, s.words, DTYPE_INDEX[s.dtype], len(s.shape))
            + struct.pack(f"<{len(s.shape)}Q", *s.shape) + struct.pack("<I", int(s.is_global)) + _str(s.object)
            for s in chip.symbols))
        rec.append(struct.pack("<I", len(queues)) + b"".join(queues))
        rec.append(struct.pack("<I", len(sram)) + b"".join(sram))
        chip_section.append(add(E.ElfSection(f".lpu.chip.{chip.name}", SHT_LPU_CHIP, 0, b"".join(rec), align=8)))
        if chip.op_names:
            add(E.ElfSection(f".lpu.ops.{chip.name}", SHT_LPU_OPS, 0, op_names_bytes(chip.op_names), align=4))
        for s in chip.symbols:
            sec = sram_index.get((s.slice, s.address))
            syms.append(E.ElfSymbol(f"{chip.name}:{s.name}", s.address, s.words,
                                    E.STB_GLOBAL if s.is_global else E.STB_LOCAL, E.STT_OBJECT,
                                    sec if sec is not None else E.SHN_ABS))
        for p in chip.phases:
            syms.append(E.ElfSymbol(f"{chip.name}:{p.name}", p.start, p.length, E.STB_GLOBAL, E.STT_FUNC, E.SHN_ABS))
    head = [struct.pack("<II", VERSION, _checksum(body)), struct.pack("<I", len(img.chips))]
    head += [_str(c.name) + struct.pack("<I", i) for c, i in zip(img.chips, chip_section)]
    head.append(struct.pack("<I", len(img.links)))
    head += [_str(w.chip_a) + struct.pack("<I", w.link_a) + _str(w.chip_b) + struct.pack("<II", w.link_b, w.latency)
             for w in img.links]
    elf.sections = [E.ElfSection(".lpu.system", SHT_LPU_SYSTEM, 0, b"".join(head), align=8)] + body
    elf.symbols = syms
    return elf


def write_image(img: SystemImage) -> bytes:
    """The ELF executable of a system image (SRAM contents are joined into it once, not copied
    section by section)."""
    return E.write_elf(image_to_elf(img))


def read_image(data: bytes, name: str) -> SystemImage:
    """A system image from its bytes; ``name`` is the file for messages. Anything damaged,
    truncated or foreign is a ``DiagnosticError``."""
    try:
        return _read(data, name)
    except DiagnosticError:
        raise
    except (E.ElfError, ValueError, IndexError, KeyError, struct.error, OverflowError, MalformedCode) as e:
        raise DiagnosticError(error(f"'{name}' is not a valid LPU system image: {e}", SourceLoc(name))) from None


def _read(data: bytes, name: str) -> SystemImage:
    elf = E.read_elf(data)
    if elf.machine != E.EM_LPU:
        raise E.ElfError(f"e_machine is 0x{elf.machine:x}, not an LPU's (0x{E.EM_LPU:x})")
    if elf.type != E.ET_EXEC:
        raise E.ElfError("it is a relocatable object; link it with lpu-ld first" if elf.type == E.ET_REL
                         else f"ELF type {elf.type} is not an executable")
    if not elf.sections or elf.sections[0].type != SHT_LPU_SYSTEM:
        raise E.ElfError("no .lpu.system section")
    secs = elf.sections
    r = TableReader(secs[0].data, ".lpu.system")
    version, crc = r.u32(), r.u32()
    if version != VERSION:
        raise E.ElfError(f"format version {version}, but this tool reads version {VERSION}")
    if _checksum(secs[1:]) != crc:
        raise E.ElfError("its contents do not match their checksum (the file is damaged)")
    img = SystemImage()
    chip_secs = []
    for _ in range(r.count(8)):
        cname = r.str()
        chip_secs.append((cname, r.u32()))
    for _ in range(r.count(20)):
        a, la = r.str(), r.u32()
        b, lb, lat = r.str(), r.u32(), r.u32()
        img.links.append(LinkWire(a, la, b, lb, lat))
    r.end()

    def section(i: int, stype: int, what: str) -> E.ElfSection:
        if not 0 < i < len(secs) or secs[i].type != stype:
            raise E.ElfError(f"{what} names section {i}, which is not one")
        return secs[i]

    ops = {s.name: s for s in secs if s.type == SHT_LPU_OPS}
    for cname, si in chip_secs:
        chip = _chip(cname, section(si, SHT_LPU_CHIP, f"chip '{cname}'"), section, name)
        sec = ops.get(f".lpu.ops.{cname}")
        if sec is not None:
            chip.op_names = read_op_names(sec.data, len(chip.files), sec.name)
        img.chips.append(chip)
    names = {c.name for c in img.chips}
    if len(names) != len(img.chips):
        raise E.ElfError("two chips share a name")
    for w in img.links:
        for c, l in ((w.chip_a, w.link_a), (w.chip_b, w.link_b)):
            if c not in names:
                raise E.ElfError(f"a link names chip '{c}', which the image does not hold")
            cfg = config_from_text(img.chip(c).config_text, img.chip(c).config_source)
            if l >= cfg.links:
                raise E.ElfError(f"a link names L{l} of chip '{c}', which has {cfg.links} links")
    return img


def _chip(cname: str, sec: E.ElfSection, section, name: str) -> ChipImage:
    r = TableReader(sec.data, f"section {sec.name}")
    if r.str() != cname:
        raise E.ElfError(f"section {sec.name} does not describe chip '{cname}'")
    chip = ChipImage(cname, "", "")
    chip.config_source = r.path()
    chip.config_text = r.str()
    try:
        cfg = config_from_text(chip.config_text, chip.config_source or name)
    except DiagnosticError as e:
        raise E.ElfError(f"chip '{cname}' holds an invalid configuration ({e.diagnostics[0].message})") from None
    chip.length = r.u64()
    chip.files = [r.path() for _ in range(r.count(4))]
    for _ in range(r.count(24)):
        chip.phases.append(PhaseInfo(r.str(), r.u64(), r.u64(), r.u32()))
    for _ in range(r.count(28)):
        sname, slice_ = r.str(), r.str()
        address, words, dt, ndim = r.u32(), r.u32(), r.u32(), r.u32()
        if dt >= len(DTYPES) or ndim > MAX_RANK:
            raise E.ElfError(f"symbol '{sname}' of chip '{cname}' has a bad type")
        shape = struct.unpack(f"<{ndim}Q", r.take(8 * ndim))
        is_global = bool(r.u32())
        sym = SymbolInfo(sname, slice_, address, words, DTYPES[dt], tuple(shape), is_global, r.str())
        if not is_symbol_name(sname) or min(shape, default=1) < 1 \
                or words != tensor_words(shape, sym.dtype, cfg.lanes):
            raise E.ElfError(f"symbol '{sname}' of chip '{cname}' does not match its type "
                             f"({words} words for {tensor_type(shape, sym.dtype)})")
        _check_range(cfg, cname, f"symbol '{sname}'", slice_, address, words)
        chip.symbols.append(sym)
    for _ in range(r.count(12)):
        qname, wi, li = r.str(), r.u32(), r.u32()
        if qname not in cfg.queue_by_name:
            raise E.ElfError(f"chip '{cname}' ({cfg.name}) has no queue '{qname}'")
        wsec = section(wi, E.SHT_PROGBITS, f"queue {qname} of chip '{cname}'")
        lsec = section(li, SHT_LPU_LINES, f"queue {qname} of chip '{cname}'")
        if len(wsec.data) % 8 or len(lsec.data) != len(wsec.data) // 8 * 12:
            raise E.ElfError(f"queue {qname} of chip '{cname}': the words and line table sizes do not match")
        words = np.frombuffer(wsec.data, dtype="<u8").astype(np.uint64)
        lines = np.frombuffer(lsec.data, dtype="<u4").astype(np.uint32).reshape(-1, 3)
        if len(lines) and int(lines[lines[:, 1] != 0, 0].max(initial=0)) >= max(len(chip.files), 1):
            raise E.ElfError(f"queue {qname} of chip '{cname}': the line table names a file the chip does not list")
        try:
            check_words(words, cfg.queue_by_name[qname])
        except MalformedCode as e:
            raise E.ElfError(f"queue {qname} of chip '{cname}': {e}") from None
        chip.queues.append(QueueProgram(qname, words, lines))
    for _ in range(r.count(12)):
        slice_, address, si = r.str(), r.u32(), r.u32()
        data = section(si, E.SHT_PROGBITS, f"SRAM range {slice_}+{address} of chip '{cname}'").data
        if len(data) % cfg.lanes:
            raise E.ElfError(f"SRAM range {slice_}+{address} of chip '{cname}' is not a whole number of words")
        _check_range(cfg, cname, f"SRAM range {slice_}+{address}", slice_, address, len(data) // cfg.lanes)
        chip.sram.append(SramInit(slice_, address, bytes(data)))
    r.end()
    return chip


def _check_range(cfg, chip: str, what: str, slice_: str, address: int, words: int) -> None:
    s = cfg.slice_by_name.get(slice_)
    if s is None or s.kind != "mem":
        raise E.ElfError(f"{what} of chip '{chip}' is in '{slice_}', which is not a MEM slice")
    if address + words > cfg.words:
        raise E.ElfError(f"{what} of chip '{chip}' runs past the end of {slice_} ({cfg.words} words)")
