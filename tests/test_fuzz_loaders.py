"""Fuzzing every loader in the default suite: mutated objects, images, system files, chip
configurations, .npy inputs, assembly and dataflow text through the tools' command lines
(tests/fuzz_targets.py says what each target runs and checks).

The default run draws the same mutations every time (the ci profile, tests/conftest.py) and
stays short; ``-m slow`` draws ten times as many, and ``make fuzz`` runs the same targets for
minutes each. Every input fuzzing found a tool mishandling is kept below, with the exact
diagnostic it now gives.
"""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import given, settings, strategies as st

import fuzz_targets as F

EXAMPLES = {  # how many mutations each target draws in the default run (about 40 s in all)
    "objects": 1200, "images": 800, "systems": 1200, "configs": 240, "npy": 1200, "asm": 800, "dataflow": 600,
}


def _fuzz(target: str, examples: int):
    @settings(max_examples=examples)
    @given(st.integers(0, 1000), F.op_lists())
    def run(seed, ops):
        F.check(target, F.mutant(target, seed, ops))

    return run


@pytest.mark.parametrize("target", list(EXAMPLES))
def test_mutants_get_a_diagnostic_or_work(target):
    _fuzz(target, EXAMPLES[target])()


@pytest.mark.slow
@pytest.mark.parametrize("target", list(EXAMPLES))
def test_mutants_get_a_diagnostic_or_work_long(target):
    _fuzz(target, 10 * EXAMPLES[target])()


@pytest.mark.parametrize("target", list(EXAMPLES))
def test_seeds_pass_and_mutants_fail(target, monkeypatch):
    """The harness is not vacuous: every seed passes its target's first tool, and mutations
    break some inputs and leave others whole."""
    monkeypatch.setattr(F, "RECORD", [])
    for s in F.seeds(target):
        F.check(target, s)
        assert F.RECORD[0][1] == 0, F.RECORD[0]  # (lpu-ld of one chip's object alone may miss its peer)
        F.RECORD.clear()
    for i in range(30):
        F.check(target, F.mutant(target, i, [(i * 7, i * 7919, i * 104729, i * 31)]))
    assert {0, 1} <= {rc for _what, rc, _err in F.RECORD}


def test_a_broken_contract_is_caught(tmp_path):
    """The checks themselves: an exception, a hang, a failure that leaves its output, a stray
    temporary file and a status other than 0 and 1 are each reported."""
    out = str(tmp_path / "out")

    def raises(argv):
        raise IndexError("list index out of range")

    def leaves(argv):
        open(out, "w").close()
        print("error: no", file=__import__("sys").stderr)
        return 1

    def status(argv):
        return 2

    for main, want in ((raises, "IndexError: list index out of range"), (leaves, "failed but wrote"),
                       (status, "exit status 2")):
        with pytest.raises(F.ContractBroken, match=want):
            F.run_tool(main, [], [out], str(tmp_path), "tool")
    os.unlink(out)
    old = F.HANG_SECONDS
    F.HANG_SECONDS = 0.2
    try:
        with pytest.raises(F.ContractBroken, match="no answer within 0.2 s"):
            F.run_tool(lambda argv: __import__("time").sleep(5), [], [], str(tmp_path), "tool")
    finally:
        F.HANG_SECONDS = old
    (tmp_path / ".tmp-x").write_bytes(b"")
    with pytest.raises(F.ContractBroken, match="left temporary files"):
        F.run_tool(lambda argv: 0, [], [], str(tmp_path), "tool")


def test_mutations_are_deterministic_and_reach_every_kind():
    data = F.seeds("objects")[0]
    ops = [(k, 1234, 5678, 91011) for k in range(F.BYTE_KINDS)]
    assert F.mutate_bytes(data, ops) == F.mutate_bytes(data, ops)
    assert all(F.mutate_bytes(data, [op]) != data for op in ops)
    text = F.seeds("asm")[0]
    ops = [(k, 1234, 5678, 91011) for k in range(F.TEXT_KINDS)]
    assert all(F.mutate_text(text, [op], F.vocabulary("asm")) != text for op in ops)


# --- what fuzzing found --------------------------------------------------------------------------------
V1 = F._read(os.path.join(F.ROOT, "arch", "configs", "lpu-v1.toml"))
PINGPONG = F._read(os.path.join(F.ROOT, "examples", "asm", "pingpong", "system.toml"))
FOUND = [  # (target, input, the first line of the diagnostic; FILE stands for the mutant's path)
    ("systems", PINGPONG.replace("ping.L8..L15", "ping.L8..L12147483647"),  # MemoryError / OverflowError
     'FILE:7:11: error: chip \'ping\' has links L0..L15; there is no L12147483647'),
    ("configs", V1.replace("alus = 16", "alus = 18446744073709551615"),  # 2**64 queue names: a hang
     "FILE:32:1: error: vxm.alus must be at most 255 (a chip has at most 255 queues)"),
    ("configs", V1.replace("planes_per_slice = 2", "planes_per_slice = 4294967295"),
     "FILE:37:1: error: mxm.planes_per_slice must be at most 255 (a chip has at most 255 queues)"),
    ("configs", V1.replace("links_per_slice = 8", "links_per_slice = 4294967296"),
     "FILE:51:1: error: c2c.links_per_slice must be at most 16 (4 bits in an instruction word)"),
    ("configs", V1.replace("MEM_W43..MEM_W0", "MEM_W99999999..MEM_W0"),
     "FILE:17:1: error: floorplan.slices: range 'MEM_W99999999..MEM_W0' holds more slices than a chip has "
     "queues (255)"),
    ("dataflow", 'target "lpu-v1"\ndata @a : tensor<100000x100000xi8> = [1]\n',  # 9.3 GiB asked of numpy
     "FILE:2:11: error: a tensor's list fills 10000000000 bytes, more than 268435456 (a chip's SRAM holds less)"),
]


@pytest.mark.parametrize("target, text, want", FOUND, ids=[f"{f[0]}{i}" for i, f in enumerate(FOUND)])
def test_what_fuzzing_found(target, text, want, monkeypatch):
    """Each found input, made small: its target keeps the contract, and the diagnostic is this."""
    monkeypatch.setattr(F, "RECORD", [])
    F.check(target, text.encode())
    _what, rc, err = F.RECORD[0]
    assert rc == 1
    assert re.sub(r"^/\S*/(system\.toml|chip\.toml|f\.lpu):", "FILE:", err.split("\n")[0]) == want
