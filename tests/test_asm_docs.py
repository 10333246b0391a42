"""The examples of docs/language.md assemble, and its error examples fail exactly as shown.

Every ```lpu block is a whole file; a block whose first line is ``// expect-error: MESSAGE``
must fail with a diagnostic of exactly that message, and a ```text block right after it that
starts with ``t.lpu:`` must be exactly what lpu-as prints for it. Blocks are assembled as if
they stood in examples/asm/, so load("vadd_a.npy") finds the example data.
"""

from __future__ import annotations

import os
import re
import textwrap

import pytest

from lpu.asm.assembler import assemble
from lpu.asm.emit import emit
from lpu.asm.objfile import read_object, write_object
from lpu.asm.printer import disassemble
from lpu.diagnostics import DiagnosticError, SourceManager, render

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "language.md")
EXAMPLES = os.path.join(ROOT, "examples", "asm")
_FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```$", re.M | re.S)


def blocks(path: str) -> list[tuple[str, str, int]]:
    """(language, dedented body, line of the fence) of every fenced block, in order."""
    text = open(path, encoding="utf-8").read()
    return [(m.group(2), textwrap.dedent(m.group(3)), text.count("\n", 0, m.start()) + 1)
            for m in _FENCE.finditer(text)]


BLOCKS = blocks(DOC)
LPU = [(i, b) for i, b in enumerate(BLOCKS) if b[0] == "lpu"]


def test_the_page_has_examples_and_error_examples():
    assert len(LPU) >= 5
    assert any(b[1].startswith("// expect-error:") for _i, b in LPU)


@pytest.mark.parametrize("index", [i for i, _b in LPU], ids=lambda i: f"line{BLOCKS[i][2]}")
def test_doc_block(index, monkeypatch):
    monkeypatch.chdir(EXAMPLES)
    _lang, body, _line = BLOCKS[index]
    first = body.splitlines()[0]
    if not first.startswith("// expect-error: "):
        prog = assemble(body, os.path.join(EXAMPLES, "doc.lpu"))
        data = write_object(emit(prog))
        # and what the disassembler makes of it reassembles to the same object
        assert write_object(emit(assemble(disassemble(read_object(data)), "dis.lpu"))) == data
        return
    expected = first[len("// expect-error: "):]
    with pytest.raises(DiagnosticError) as e:
        assemble(body, "t.lpu")
    assert [d.message for d in e.value.diagnostics] == [expected]
    following = BLOCKS[index + 1] if index + 1 < len(BLOCKS) else None
    if following and following[0] == "text" and following[1].startswith("t.lpu:"):
        sm = SourceManager()
        sm.add("t.lpu", body)
        assert render(e.value.diagnostics[0], sm) + "\n" == following[1]
