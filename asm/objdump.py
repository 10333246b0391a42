"""``lpu-objdump``: show what an LPU object holds: sections, symbols, relocations, code."""

from __future__ import annotations

import sys

from lpu.asm import elf as E
from lpu.asm.objfile import RELOC_NAMES, ObjectFile, read_object
from lpu.asm.printer import disassemble
from lpu.diagnostics import DiagnosticError, SourceLoc, error
from lpu.files import read_bytes, write_atomic
from lpu.tool import ArgumentParser, run_tool

_TYPES = {E.SHT_PROGBITS: "PROGBITS", E.SHT_NOBITS: "NOBITS", E.SHT_SYMTAB: "SYMTAB", E.SHT_STRTAB: "STRTAB",
          E.SHT_RELA: "RELA", E.SHT_LOUSER: "LPU_CONFIG", E.SHT_LOUSER + 1: "LPU_KERNELS",
          E.SHT_LOUSER + 2: "LPU_TENSORS", E.SHT_LOUSER + 3: "LPU_LINES", E.SHT_LOUSER + 4: "LPU_OPS"}
_BIND = {E.STB_LOCAL: "local", E.STB_GLOBAL: "global"}
_STT = {E.STT_NOTYPE: "notype", E.STT_OBJECT: "tensor", E.STT_FUNC: "kernel"}


def load(path: str, data: bytes | None = None) -> tuple[E.ElfFile, ObjectFile]:
    data = read_bytes(path) if data is None else data
    try:
        elf = E.read_elf(data)
        return elf, read_object(data)
    except (E.ElfError, ValueError) as e:
        raise DiagnosticError(error(f"'{path}' is not a valid LPU object: {e}", SourceLoc(path))) from None


def section_headers(elf: E.ElfFile) -> str:
    out = ["Sections:", f"{'Idx':>3} {'Name':<36} {'Type':<12} {'Size':>10} Flags"]
    for i, s in enumerate(elf.sections, 1):
        size = s.size if s.type == E.SHT_NOBITS else len(s.data)
        flags = "".join(f for bit, f in ((E.SHF_WRITE, "W"), (E.SHF_ALLOC, "A"), (E.SHF_EXECINSTR, "X"))
                        if s.flags & bit)
        out.append(f"{i:>3} {s.name:<36} {_TYPES.get(s.type, hex(s.type)):<12} {size:>10} {flags}")
    return "\n".join(out)


def symbol_table(elf: E.ElfFile) -> str:
    out = ["SYMBOL TABLE:", f"{'Value':>8} {'Bind':<6} {'Type':<7} {'Section':<36} {'Size':>8} Name"]
    for s in elf.symbols:
        if s.section == E.SHN_UNDEF:
            sec = "*UND*"
        elif s.section == E.SHN_ABS:
            sec = "*ABS*"
        else:
            sec = elf.sections[s.section].name
        out.append(f"{s.value:>8} {_BIND.get(s.bind, str(s.bind)):<6} {_STT.get(s.type, str(s.type)):<7} "
                   f"{sec:<36} {s.size:>8} {s.name}")
    return "\n".join(out)


def relocations(elf: E.ElfFile) -> str:
    out = []
    for s in elf.sections:
        if not s.relocs:
            continue
        out.append(f"RELOCATION RECORDS FOR [{s.name}]:")
        out.append(f"{'Word':>6} {'Type':<12} Value")
        for r in s.relocs:
            name = elf.symbols[r.symbol - 1].name if 0 < r.symbol <= len(elf.symbols) else "?"
            add = f" + {r.addend}" if r.addend > 0 else f" - {-r.addend}" if r.addend < 0 else ""
            out.append(f"{r.offset // 8:>6} {RELOC_NAMES.get(r.type, str(r.type)):<12} {name}{add}")
        out.append("")
    return "\n".join(out).rstrip() or "no relocations"


def is_image(data: bytes) -> bool:
    """A linked system image (ELF ET_EXEC) rather than an object."""
    return len(data) >= 18 and data[:4] == b"\x7fELF" and int.from_bytes(data[16:18], "little") == E.ET_EXEC


def _image(path: str, args, data: bytes) -> str:
    # The linker owns the image format; the disassembler sees each chip as an object.
    from lpu.linker.dump import chip_objects
    from lpu.linker.imagefile import read_image

    img = read_image(data, path)
    parts = [f"{path}:     file format elf64-lpu (system image, {len(img.chips)} chips)\n"]
    elf = E.read_elf(data)
    if args.section_headers:
        parts.append(section_headers(elf) + "\n")
    if args.syms:
        parts.append(symbol_table(elf) + "\n")
    if args.reloc:
        parts.append("no relocations (a linked image)\n")
    if args.disassemble:
        chips = chip_objects(img, args.chip)
        if args.chip and not chips:
            raise DiagnosticError(error(f"'{path}' has no chip '{args.chip}' (chips: "
                                        f"{', '.join(c.name for c in img.chips)})", SourceLoc(path)))
        for name, obj in chips:
            parts.append(f"// chip {name}\n" + disassemble(obj, with_loc=not args.no_loc, source=f"{path}, chip {name}"))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="lpu-objdump", description="Display the contents of LPU objects.", add_help=False)
    ap.add_argument("inputs", nargs="+", metavar="FILE")
    ap.add_argument("-d", "--disassemble", action="store_true", help="disassemble to .lpu assembly")
    ap.add_argument("-h", "--section-headers", action="store_true", help="list the sections")
    ap.add_argument("-t", "--syms", action="store_true", help="list the symbols")
    ap.add_argument("-r", "--reloc", action="store_true", help="list the relocations")
    ap.add_argument("--no-loc", action="store_true", help="omit loc(...) source locations in -d output")
    ap.add_argument("--chip", metavar="NAME", help="of a system image, show only this chip")
    ap.add_argument("-o", dest="output", default="-", help="write to a file instead of standard output")
    ap.add_argument("--help", action="help", help="show this help")
    args = ap.parse_args(argv)
    if not (args.disassemble or args.section_headers or args.syms or args.reloc):
        ap.error("one of -d, -h, -t or -r is required")

    def body(sources) -> int:
        parts = []
        for path in args.inputs:
            data = read_bytes(path)  # once: standard input cannot be read twice
            if is_image(data):
                parts.append(_image(path, args, data))
                continue
            elf, obj = load(path, data)
            if len(args.inputs) > 1 or not args.disassemble:
                parts.append(f"{path}:     file format elf64-lpu\n")
            if args.section_headers:
                parts.append(section_headers(elf) + "\n")
            if args.syms:
                parts.append(symbol_table(elf) + "\n")
            if args.reloc:
                parts.append(relocations(elf) + "\n")
            if args.disassemble:
                parts.append(disassemble(obj, with_loc=not args.no_loc, source=path))
        write_atomic(args.output, "\n".join(parts))
        return 0

    return run_tool(body, "lpu-objdump")


if __name__ == "__main__":
    sys.exit(main())
