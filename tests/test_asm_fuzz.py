"""Fuzzing the assembler: whatever the input, it reports diagnostics and nothing else.

Random bytes, token soup from the grammar's vocabulary, and mutations of the examples go into
``assemble``; the only exception allowed out is ``DiagnosticError``, every diagnostic it
carries has a location inside the file, and no input hangs. A few go through ``lpu-as`` as a
subprocess: exit status 0 or 1, never a traceback. ``lpu-objdump`` gets mutated objects.
The default run is short; ``-m slow`` runs the same properties ten times longer.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from lpu.arch.config import load_config
from lpu.arch.isa import BY_MNEMONIC, DTYPES
from lpu.asm.assembler import assemble
from lpu.asm.cli import assemble_file
from lpu.asm.objdump import main as objdump_main
from lpu.diagnostics import DiagnosticError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "asm", "**", "*.lpu"), recursive=True))
SOURCES = {p: open(p, encoding="utf-8").read() for p in EXAMPLES}
CFG = load_config("lpu-v1")
HANG_SECONDS = 20  # far beyond any real input's time: only a hang trips it


class Hang(Exception):
    pass


def _alarm(_sig, _frame):
    raise Hang(f"no answer within {HANG_SECONDS} s")


def only_diagnostics(text: str, file: str) -> None:
    """Assemble; anything but success or a DiagnosticError (with in-file locations) fails."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_SECONDS)
    try:
        assemble(text, file)
    except DiagnosticError as e:
        assert e.diagnostics
        nlines = text.count("\n") + 1
        for d in e.diagnostics:
            assert d.severity == "error" and d.message
            for x in [d, *d.notes]:
                if x.loc is not None and x.loc.file == file:
                    assert 0 <= x.loc.line <= nlines + 1, (x.loc, x.message)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def fuzz_settings(n: int):
    return settings(max_examples=n, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# --- vocabularies --------------------------------------------------------------------------------
UNITS = [q.name for q in CFG.queues[::7]] + ["MEM_W", "MEM_E", "VXM", "MXM_W", "C2C_X"]
MNEMONICS = list(BY_MNEMONIC) + [f"{m}.{t}" for m in ("read", "write", "add", "mm", "acc") for t in DTYPES] + \
    ["cvt.i32.i8", "cvt.f32", "add.i8.i8", "read.q8"]
WORDS = ["target", "data", "reserve", "extern", "kernel", "global", "in", "at", "load", "loc", "hex",
         "tensor", "set", "add", "clear", "stride", "shift", "L0", "L9", "L15", "acc0", "acc63", "acc64"]
PUNCT = ["{", "}", "[", "]", "(", ")", ",", ":", "=", "+", "-", "@", ".", '"', "//", "\n", "\n", "\n", " ", "\t"]
LITERALS = ['"lpu-v1"', '"lpu-v2"', '"x.npy"', '"copy_src.npy"', "tensor<320xi8>", "tensor<2x320xf16>",
            "tensor<0xi8>", "tensor<99999999xi32>", 'hex"00ff"', 'hex"0"', "0", "1", "-1", "7", "320", "8191",
            "8192", "65535", "0x7f", "4294967295", "4294967296", "99999999999999999999", "1.5", "-2e3", "1e400",
            "@0", "@1", "@3", "@90", "@4294967296", "@a", "@b", "@src", "@dst", "@k", "@pong",
            "s0e", "s1w", "s2e", "s31w", "s32e", "s4e", "s16w", "// comment"]
VOCAB = WORDS + PUNCT + LITERALS + UNITS + MNEMONICS

token_soup = st.lists(st.sampled_from(VOCAB), max_size=80).map(lambda ts: " ".join(ts))

# a soup that is mostly well-formed lines, so the checks past the parser get fuzzed too
def _line(parts):
    return " ".join(parts)

instruction_line = st.tuples(
    st.sampled_from(["@0", "@1", "@2", "@3", "@5", "@90", "@0"]), st.sampled_from(UNITS), st.sampled_from(MNEMONICS),
    st.lists(st.sampled_from(["s0e", "s1w", "s4e", "[@a]", "[@a + 1]", "[@b - 2]", "[5]", "[8192]", "@a", "@pong",
                              "L3", "L12", "acc1", "set", "add", "clear", "stride=2", "shift=3", "7", "-1", "1.5",
                              "300", "0x10"]), max_size=4).map(", ".join),
).map(lambda t: "  " + " ".join(t))
structured = st.tuples(
    st.lists(st.sampled_from([
        'reserve @a : tensor<320xi8> in MEM_W0', 'data @b : tensor<4xi16> in MEM_E1 = [1, 2, 3, 4]',
        'global reserve @a : tensor<320xf32> in MEM_W0 at 8190', 'data @t : tensor<320xi32> in MEM_E = hex"00"',
        'extern @a', 'extern @x', 'data @b : tensor<2x2xi8> in MEM_E1 = [[1, 2], [3, 999]]',
        'data @c : tensor<320xi8> in MEM_W3 = load("missing.npy")']), max_size=4),
    st.lists(instruction_line, max_size=10),
).map(lambda t: 'target "lpu-v1"\n' + "\n".join(t[0]) + "\nkernel @k {\n" + "\n".join(t[1]) + "\n}\n")


def mutate(text: str, ops: list[tuple[int, int, int, int]]) -> str:
    """Apply (what, i, j, k) edits: delete/duplicate/swap characters or lines, insert a character."""
    for what, i, j, k in ops:
        if what < 4:  # characters
            if not text:
                continue
            i, j = i % len(text), j % len(text)
            if what == 0:
                text = text[:i] + text[i + 1 + k % 8:]
            elif what == 1:
                text = text[:i] + text[i: i + 1 + k % 8] + text[i:]
            elif what == 2:
                a, b = sorted((i, j))
                text = text[:a] + text[b] + text[a + 1: b] + text[a] + text[b + 1:] if a != b else text
            else:
                text = text[:i] + chr(k % 128) + text[i:]
        else:  # lines
            lines = text.split("\n")
            i, j = i % len(lines), j % len(lines)
            if what == 4:
                del lines[i]
            elif what == 5:
                lines.insert(i, lines[j])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


edits = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6)),
                 min_size=1, max_size=6)


# --- properties ----------------------------------------------------------------------------------
def _random_bytes(data: bytes) -> None:
    only_diagnostics(data.decode("utf-8", "replace"), "fuzz.lpu")
    only_diagnostics(data.decode("latin-1"), "fuzz.lpu")


def _soup(text: str) -> None:
    only_diagnostics(text, "soup.lpu")


def _mutant(path: str, ops) -> None:
    only_diagnostics(mutate(SOURCES[path], ops), path)  # its own path: load("...") still resolves


@fuzz_settings(60)
@given(st.binary(max_size=400))
def test_random_bytes(data):
    _random_bytes(data)


@fuzz_settings(60)
@given(token_soup)
def test_token_soup(text):
    _soup(text)


@fuzz_settings(80)
@given(structured)
def test_structured_soup(text):
    _soup(text)


@fuzz_settings(80)
@given(st.sampled_from(EXAMPLES), edits)
def test_mutated_examples(path, ops):
    _mutant(path, ops)


@pytest.mark.slow
@fuzz_settings(2000)
@given(st.binary(max_size=2000))
def test_random_bytes_long(data):
    _random_bytes(data)


@pytest.mark.slow
@fuzz_settings(2000)
@given(st.one_of(token_soup, structured))
def test_soup_long(text):
    _soup(text)


@pytest.mark.slow
@fuzz_settings(3000)
@given(st.sampled_from(EXAMPLES), edits)
def test_mutated_examples_long(path, ops):
    _mutant(path, ops)


def test_some_mutants_still_assemble_and_some_fail():
    """The mutator is not vacuous: the edits it makes do break files (and leave some whole)."""
    outcomes = set()
    for seed in range(40):
        ops = [(seed % 7, seed * 7919, seed * 104729, seed)]
        try:
            assemble(mutate(SOURCES[EXAMPLES[seed % len(EXAMPLES)]], ops), EXAMPLES[seed % len(EXAMPLES)])
            outcomes.add("ok")
        except DiagnosticError:
            outcomes.add("error")
    assert outcomes == {"ok", "error"}


# --- the command line ----------------------------------------------------------------------------
CLI_INPUTS = [
    b"\xff\xfe\x00garbage",
    b"target \"lpu-v1\"\nkernel @k {\n  @0 MEM_W0 read.i8 [@nowhere], s0e\n",
    b"kernel @k {\n  @0 VXM.0 add.i8 s0e, 300, s2e\n}\n@@@@ {{{ ]]] \"unterminated\n",
    mutate(SOURCES[EXAMPLES[0]], [(4, 9, 0, 0), (3, 400, 0, 91), (1, 300, 0, 5)]).encode(),
    b"",
]


@pytest.mark.parametrize("data", CLI_INPUTS, ids=range(len(CLI_INPUTS)))
def test_cli_only_prints_diagnostics(tmp_path, data):
    src = tmp_path / "in.lpu"
    src.write_bytes(data)
    p = subprocess.run([sys.executable, "-m", "lpu.asm.cli", str(src), "-o", str(tmp_path / "out.o")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode in (0, 1)
    assert "Traceback" not in p.stderr
    if p.returncode == 1:
        assert p.stderr.startswith(str(src)) and ": error: " in p.stderr
        assert not (tmp_path / "out.o").exists()  # nothing written on error
    else:
        assert p.stderr == "" and (tmp_path / "out.o").read_bytes()[:4] == b"\x7fELF"


# --- objects ------------------------------------------------------------------------------------
VADD = assemble_file(os.path.join(ROOT, "examples", "asm", "vadd.lpu"))


@fuzz_settings(80)
@given(st.lists(st.tuples(st.integers(0, len(VADD) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, len(VADD)))
def test_objdump_on_corrupt_objects(tmp_path_factory, flips, cut):
    data = bytearray(VADD)
    for i, b in flips:
        data[i] = b
    path = tmp_path_factory.mktemp("o") / "bad.o"
    path.write_bytes(bytes(data[:cut]))
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_SECONDS)
    try:
        for flag in ("-d", "-h", "-t", "-r"):
            assert objdump_main([flag, str(path), "-o", str(path) + ".txt"]) in (0, 1)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
