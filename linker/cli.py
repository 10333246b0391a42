"""``lpu-ld``: link LPU objects into a system image, following a system description."""

from __future__ import annotations

import os
import sys

from lpu.asm import elf as E
from lpu.asm.objfile import ObjectFile, read_object
from lpu.diagnostics import DiagnosticError, SourceLoc, error
from lpu.files import read_bytes, write_atomic
from lpu.linker.imagefile import write_image
from lpu.linker.link import LinkResult, link
from lpu.linker.linkmap import link_map
from lpu.linker.system import load_system
from lpu.tool import ArgumentParser, run_tool

# What a damaged object can make the object reader raise; each becomes one diagnostic.
_DAMAGE = (E.ElfError, ValueError, IndexError, KeyError, TypeError, OverflowError, UnicodeError,
           __import__("struct").error)


def object_name(path: str) -> str:
    """An object is named by its file stem: ``build/producer.o`` is ``producer``."""
    return "stdin" if path == "-" else os.path.splitext(os.path.basename(path))[0]


def load_object(data: bytes, path: str) -> ObjectFile:
    """An object from its bytes; a damaged or foreign file is a diagnostic, never a crash."""
    try:
        elf = E.read_elf(data)
        if elf.machine == E.EM_LPU and elf.type == E.ET_EXEC:
            raise E.ElfError("it is a linked system image, not an object")
        return read_object(data)
    except DiagnosticError:
        raise
    except _DAMAGE as e:
        raise DiagnosticError(error(f"'{path}' is not a valid LPU object: {e}", SourceLoc(path))) from None


def link_files(objects: list[str], system: str | None = None, phases: list[list[str]] | None = None) -> LinkResult:
    """Read the objects (and the system file) and link them: the library call behind lpu-ld."""
    sys_desc = load_system(system) if system else None
    diags = []

    def read(paths):
        out = []
        for p in paths:
            try:
                out.append((object_name(p), load_object(read_bytes(p), p)))
            except DiagnosticError as e:
                diags.extend(e.diagnostics)
        return out

    inputs = read(objects)
    later = [read(g) for g in phases or []]
    if diags:
        raise DiagnosticError(diags)
    return link(inputs, sys_desc, later)


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="lpu-ld", description="Link LPU objects into a system image that lpu-sim runs.")
    ap.add_argument("objects", nargs="*", metavar="OBJ", help="objects of the first phase")
    ap.add_argument("--system", metavar="SYS.toml",
                    help="system description: chips, what runs on each, links (default: one chip)")
    ap.add_argument("-o", dest="output", default="a.lpx", help="the image to write (default: a.lpx; '-' for stdout)")
    ap.add_argument("-Map", "--Map", dest="map", metavar="FILE", help="write a link map to FILE ('-' for stdout)")
    ap.add_argument("--phase", action="append", nargs="+", metavar="OBJ", default=[],
                    help="objects of a further phase, starting when the previous phase has ended on every chip")
    args = ap.parse_intermixed_args(argv)
    if not args.objects and not args.phase:
        ap.error("no input objects")

    def body(sources) -> int:
        res = link_files(args.objects, args.system, args.phase)
        data = write_image(res.image)
        if args.map:
            write_atomic(args.map, link_map(res, args.output))
        write_atomic(args.output, data)
        return 0

    return run_tool(body, "lpu-ld")


if __name__ == "__main__":
    sys.exit(main())
