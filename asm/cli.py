"""``lpu-as``: assemble a ``.lpu`` assembly file into an ELF relocatable object."""

from __future__ import annotations

import os
import sys

from lpu.asm.assembler import assemble
from lpu.asm.emit import emit
from lpu.asm.objfile import write_object
from lpu.files import read_text, write_atomic
from lpu.tool import ArgumentParser, run_tool


def assemble_file(path: str, config: str | None = None, sources=None) -> bytes:
    """The object bytes of one assembly file (a library call the tests and driver share)."""
    text = read_text(path)
    name = "<stdin>" if path == "-" else path
    if sources is not None:
        sources.add(name, text)
    return write_object(emit(assemble(text, name, config)))


def default_output(path: str) -> str:
    if path == "-":
        return "-"
    base, ext = os.path.splitext(os.path.basename(path))
    return (base if ext == ".lpu" else os.path.basename(path)) + ".o"


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="lpu-as", description="Assemble .lpu assembly into an LPU ELF object.")
    ap.add_argument("input", help="the .lpu file ('-' for standard input)")
    ap.add_argument("-o", dest="output", help="the object to write (default: INPUT with .o; '-' for stdout)")
    ap.add_argument("--config", help="chip configuration file or name (overrides nothing: must match 'target')")
    ap.add_argument("--syntax-only", action="store_true", help="check the file, write nothing")
    args = ap.parse_args(argv)

    def body(sources) -> int:
        data = assemble_file(args.input, args.config, sources)
        if not args.syntax_only:
            write_atomic(args.output or default_output(args.input), data)
        return 0

    return run_tool(body, "lpu-as")


if __name__ == "__main__":
    sys.exit(main())
