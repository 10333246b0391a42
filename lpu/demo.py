"""``make demo``: the flagship example through every stage that exists so far."""

from __future__ import annotations

import os
import sys
import tempfile

from lpu.asm.cli import assemble_file
from lpu.asm.objdump import main as objdump_main
from lpu.diagnostics import DiagnosticError, SourceManager, print_diagnostics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGSHIP = os.path.join(ROOT, "examples", "asm", "gemv.lpu")


def main() -> int:
    sources = SourceManager()
    rel = os.path.relpath(FLAGSHIP, ROOT)
    try:
        data = assemble_file(FLAGSHIP, sources=sources)
    except DiagnosticError as e:
        print_diagnostics(e.diagnostics, sources)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        obj = os.path.join(tmp, "gemv.o")
        with open(obj, "wb") as f:
            f.write(data)
        print(f"$ lpu-as {rel} -o gemv.o      # {len(data)} bytes")
        print("$ lpu-objdump -h -t gemv.o")
        sys.stdout.flush()
        objdump_main(["-h", "-t", obj])
        print("$ lpu-objdump -d --no-loc gemv.o")
        sys.stdout.flush()
        return objdump_main(["-d", "--no-loc", obj])


if __name__ == "__main__":
    sys.exit(main())
