"""The compiled examples (examples/*.lpu, examples/multichip/*.lpu), each compiled and linked
once per test session, for the tests of source locations and traces."""

from __future__ import annotations

import glob
import os

from lpu.compile import compile_source, link_compiled
from lpu.files import read_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPILED = sorted(glob.glob(os.path.join(ROOT, "examples", "*.lpu"))
                  + glob.glob(os.path.join(ROOT, "examples", "multichip", "*.lpu")))

_CACHE: dict[str, tuple] = {}


def rel(p: str) -> str:
    return os.path.relpath(p, ROOT)


def compiled(path: str):
    """(compiled function, parsed module, linked image) of an example."""
    if path not in _CACHE:
        c, module = compile_source(read_text(path), path)
        _CACHE[path] = (c, module, link_compiled(c))
    return _CACHE[path]


def kernel_lines(module) -> set[int]:
    """The lines of the module's assembly kernels (a called kernel's words keep them)."""
    from lpu.dsl import dialect as D

    out: set[int] = set()
    for op in module.walk():
        if isinstance(op, D.KernelOp):
            first = op.location.line.data
            out.update(range(first, first + op.text.data.count("\n") + 1))
    return out
