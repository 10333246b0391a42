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


# --- docs/object-format.md -------------------------------------------------------------------------
def test_object_format_listing_is_what_objdump_prints(tmp_path, monkeypatch, capsysbinary):
    from lpu.asm.cli import main as as_main
    from lpu.asm.objdump import main as objdump_main

    (listing,) = [b for lang, b, _l in blocks(os.path.join(ROOT, "docs", "object-format.md"))
                  if lang == "console" and b.startswith("$ lpu-as")]
    commands = [l[2:].split() for l in listing.splitlines() if l.startswith("$ ")]
    assert commands == [["lpu-as", "examples/asm/vadd.lpu", "-o", "vadd.o"], ["lpu-objdump", "-h", "-t", "-r", "vadd.o"]]
    # The line table records the source path as given, so run the command as written, from the
    # checkout's root (an absolute path would make the listing depend on where the checkout is).
    monkeypatch.chdir(ROOT)
    assert as_main([commands[0][1], "-o", str(tmp_path / "vadd.o")]) == 0
    monkeypatch.chdir(tmp_path)
    capsysbinary.readouterr()
    assert objdump_main(commands[1][1:]) == 0
    shown = [l.rstrip() for l in capsysbinary.readouterr().out.decode().splitlines()]
    assert shown == [l.rstrip() for l in listing.splitlines()[2:]]


# --- docs/tools.md ---------------------------------------------------------------------------------
TOOLS = blocks(os.path.join(ROOT, "docs", "tools.md"))


def test_tools_arch_listing_is_what_lpu_arch_prints():
    from lpu.arch.config import load_config
    from lpu.driver import arch_report

    (listing,) = [b for lang, b, _l in TOOLS if lang == "text" and b.startswith("floor plan")]
    report = arch_report(load_config("lpu-v1")).splitlines()
    start = report.index(listing.splitlines()[0])
    assert report[start: start + len(listing.splitlines())] == listing.splitlines()


def test_tools_disassembly_listing(tmp_path, monkeypatch, capsysbinary):
    from lpu.asm.cli import main as as_main
    from lpu.asm.objdump import main as objdump_main

    (listing,) = [b for lang, b, _l in TOOLS if lang == "console" and b.startswith("$ lpu-as examples/asm/copy.lpu")]
    monkeypatch.chdir(tmp_path)
    assert as_main([os.path.join(ROOT, "examples", "asm", "copy.lpu"), "-o", "copy.o"]) == 0
    capsysbinary.readouterr()
    assert objdump_main(["-d", "--no-loc", "copy.o"]) == 0
    shown = capsysbinary.readouterr().out.decode().splitlines()
    want = listing.splitlines()[1:]
    assert len(shown) == len(want)
    for got, line in zip(shown, want):  # the page elides the 320 bytes of @src as "…"
        assert re.fullmatch(re.escape(line).replace("…", '[0-9a-f]{640}'), got), (got, line)
