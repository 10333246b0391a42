"""The language server's incremental assembly check gives exactly what ``lpu-as`` gives.

``AsmDocument.analyze`` re-parses and re-checks only the kernels an edit touched; these tests
compare its diagnostics (message, severity, file, line, column, length and every note) with
``assemble`` on the whole text, on the examples and after random edit sequences.
"""

from __future__ import annotations

import glob
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpu.asm.assembler import assemble
from lpu.diagnostics import DiagnosticError
from lpu.lsp.asm_analysis import AsmDocument, split_blocks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "**", "*.lpu"), recursive=True)
                  + glob.glob(os.path.join(ROOT, "tests", "lit", "**", "*.lpu"), recursive=True))
VADD = os.path.join(ROOT, "examples", "asm", "vadd.lpu")


def _key(d):
    def one(x):
        loc = (x.loc.file, x.loc.line, x.loc.col, x.loc.length) if x.loc else None
        return (x.severity, x.message, loc)
    return (one(d), tuple(one(n) for n in d.notes))


def expected(text: str, file: str) -> list:
    try:
        assemble(text, file)
    except DiagnosticError as e:
        return sorted(_key(d) for d in e.diagnostics)
    return []


def got(doc: AsmDocument, text: str) -> list:
    return sorted(_key(d) for d in doc.analyze(text).diagnostics)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: os.path.relpath(p, ROOT))
def test_examples_match_lpu_as(path):
    text = open(path, encoding="utf-8").read()
    assert got(AsmDocument(path), text) == expected(text, path)


BASE = open(VADD, encoding="utf-8").read() + """
kernel @late {
  @0 MEM_W0 read.i8 [@a], s0e
  @4 MEM_E1 write.i8 [@sum], s0e
}

kernel @twice {
  @0 MEM_W0 read.i8 [@a + 0], s3e
  @1 MEM_W0 repeat 2, 1
  @3 VXM.1 mov.i8 s3e, s4e
}
"""


def test_split_blocks_finds_each_kernel():
    lines = BASE.split("\n")
    blocks = split_blocks(lines)
    assert [(lines[b.start - 1].strip(), lines[b.end - 1].strip()) for b in blocks] == [
        ("global kernel @vadd {", "}"), ("kernel @late {", "}"), ("kernel @twice {", "}")]


def test_an_edit_inside_one_kernel_rechecks_only_that_kernel():
    doc = AsmDocument(VADD)
    first = doc.analyze(BASE)
    assert (first.incremental, first.reparsed, first.rechecked) == (True, 3, 3)
    edited = BASE.replace("@4 MEM_E1 write.i8 [@sum], s0e", "@5 MEM_E1 write.i8 [@sum], s0e")
    second = doc.analyze(edited)
    assert (second.incremental, second.reparsed, second.rechecked) == (True, 1, 1)
    assert got(AsmDocument(VADD), edited) == expected(edited, VADD)
    # a change to the symbols the kernels see re-checks every kernel, but re-parses none
    third = doc.analyze(edited.replace("tensor<320xi8> in MEM_E1", "tensor<640xi8> in MEM_E1"))
    assert (third.reparsed, third.rechecked) == (0, 3)


def test_an_unclosed_kernel_falls_back_to_the_whole_file():
    doc = AsmDocument(VADD)
    text = BASE.rstrip().rstrip("}")  # the last kernel never closes: its block runs to the end
    snap = doc.analyze(text)
    assert not snap.incremental
    assert got(doc, text) == expected(text, VADD)
    # a kernel left open swallows the next one's header (a syntax error), as lpu-as sees it
    text = BASE.replace("  @4 MEM_E1 write.i8 [@sum], s0e\n}\n", "  @4 MEM_E1 write.i8 [@sum], s0e\n")
    assert got(doc, text) == expected(text, VADD)


# --- random edits -------------------------------------------------------------------------------
PIECES = ["\n", "}", "{", "@", "[", "]", ",", " ", "s", "e", "w", "1", "0", "9", ".", "i8", "//", '"',
          "kernel @k {\n", "  @3 VXM.0 add.i8 s0e, s1w, s2e\n", "global ", "MEM_W0", "read", "repeat 2, 1",
          "\x00", "é", "\t", "\r\n", "data @q : tensor<320xi8> in MEM_W0 = hex\"00\"\n", "extern @sum\n"]


@st.composite
def edits(draw):
    n = draw(st.integers(1, 6))
    out = []
    for _ in range(n):
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        pos = draw(st.floats(0, 1))
        size = draw(st.integers(0, 40))
        piece = draw(st.sampled_from(PIECES))
        out.append((kind, pos, size, piece))
    return out


def apply(text: str, edit) -> str:
    kind, pos, size, piece = edit
    at = int(pos * len(text))
    if kind == "insert":
        return text[:at] + piece + text[at:]
    if kind == "delete":
        return text[:at] + text[at + size:]
    return text[:at] + piece + text[at + min(size, len(piece)):]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits())
def test_random_edit_sequences_match_lpu_as(seq):
    doc = AsmDocument(VADD)
    text = BASE
    doc.analyze(text)
    for e in seq:
        text = apply(text, e)
        assert got(doc, text) == expected(text, VADD), repr(text)
