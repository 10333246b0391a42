"""The linker: systems, symbols, SRAM layout, relocations, C2C wiring, images, phases, lpu-ld."""

from __future__ import annotations

import os
import textwrap

import pytest

from lpu.asm.assembler import assemble
from lpu.asm.emit import emit
from lpu.asm.printer import disassemble
from lpu.diagnostics import DiagnosticError, render
from lpu.linker.dump import chip_object
from lpu.linker.link import link_objects
from lpu.linker.system import builtin_topologies, load_system, system_from_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "asm")


def obj(text: str, file: str = "a.lpu"):
    """An object assembled from .lpu text (``target "lpu-v1"`` is added)."""
    return emit(assemble('target "lpu-v1"\n' + textwrap.dedent(text), file))


def example_obj(folder: str, stem: str):
    path = os.path.join(EXAMPLES, folder, stem + ".lpu")
    with open(path) as f:
        return stem, emit(assemble(f.read(), path))


def errors(fn, *args, **kw) -> list[str]:
    """The rendered diagnostics (message lines and notes, no source lines) that ``fn`` raises."""
    with pytest.raises(DiagnosticError) as e:
        fn(*args, **kw)
    return [render(d) for d in e.value.diagnostics]


def queue_text(image, chip: str) -> list[str]:
    """The image's instructions on one chip, as the disassembler prints them (no locations)."""
    text = disassemble(chip_object(image.chip(chip)), with_loc=False)
    return [l.strip() for l in text.splitlines() if l.strip().startswith("@")]


# --- 1. system descriptions ---------------------------------------------------------------------
def test_builtin_topologies_shape():
    assert builtin_topologies() == ["node", "one-chip", "two-chips", "two-nodes"]
    one = load_system("one-chip")
    assert list(one.chips) == ["chip0"] and one.wires == []
    two = load_system("two-chips")
    assert [(w.chip_a, w.link_a, w.chip_b, w.link_b) for w in two.wires] == \
        [("chip0", 8 + i, "chip1", i) for i in range(8)]
    for name, n in (("node", 8), ("two-nodes", 16)):
        sys_ = load_system(name)
        assert len(sys_.chips) == n
        pairs = {frozenset((w.chip_a, w.chip_b)) for w in sys_.wires}
        assert len(pairs) == len(sys_.wires) == n * (n - 1) // 2  # every pair once: one hop apart
        ends = [(w.chip_a, w.link_a) for w in sys_.wires] + [(w.chip_b, w.link_b) for w in sys_.wires]
        assert len(set(ends)) == len(ends)  # no link wired twice
    node = load_system("node")
    assert all(w.link_a == int(w.chip_b[4:]) and w.link_b == int(w.chip_a[4:]) for w in node.wires)


def test_system_file_syntax():
    s = system_from_text(textwrap.dedent("""\
        config = "lpu-v1"
        links = ["a.L8..L9 <-> b.L0..L1", { wire = "a.L0 <-> b.L8", latency = 300 }]
        [chips.a]
        objects = ["x", "y"]
        [chips.b]
        phases = [["p"], ["q", "r"]]
        """), "sys.toml")
    assert [(w.chip_a, w.link_a, w.chip_b, w.link_b, w.latency) for w in s.wires] == \
        [("a", 8, "b", 0, None), ("a", 9, "b", 1, None), ("a", 0, "b", 8, 300)]
    assert s.chip_of() == {"x": ("a", None), "y": ("a", None), "p": ("b", 0), "q": ("b", 1), "r": ("b", 1)}
    assert s.chips["a"].config.name == "lpu-v1"


@pytest.mark.parametrize("text, message", [
    ('links = ["a.L1 -> b.L2"]\n[chips.a]\n[chips.b]\n',
     "sys.toml:1:11: error: malformed link 'a.L1 -> b.L2' (expected 'chip.L<n> <-> chip.L<n>' or a range "
     "'chip.L8..L15 <-> chip.L0..L7')"),
    ('links = ["a.L1 <-> c.L2"]\n[chips.a]\n[chips.b]\n',
     "sys.toml:1:11: error: link names chip 'c', which the system does not have (chips: a, b)"),
    ('links = ["a.L1 <-> b.L2", "a.L1 <-> b.L3"]\n[chips.a]\n[chips.b]\n',
     "sys.toml:1:28: error: a.L1 is wired twice\nsys.toml:1:11: note: a.L1 is first wired here"),
    ('links = ["a.L8..L10 <-> b.L0..L1"]\n[chips.a]\n[chips.b]\n',
     "sys.toml:1:11: error: link ranges of different lengths in 'a.L8..L10 <-> b.L0..L1': 3 and 2 links"),
    ('config = "lpu-v1"\nlinks = ["a.L16 <-> b.L2"]\n[chips.a]\n[chips.b]\n',
     "sys.toml:2:11: error: chip 'a' has links L0..L15; there is no L16"),
    ('cores = 3\n', "sys.toml:1:1: error: unknown key 'cores' (a system file has chips, config, links, topology)"),
    ('[chips.a]\nobject = ["x"]\n',
     "sys.toml:2:1: error: unknown key 'object' in chip 'a' (a chip has config, objects, phases)"),
    ('[chips.a]\nobjects = ["x"]\nphases = [["y"]]\n',
     "sys.toml:3:1: error: chip 'a' gives both 'objects' and 'phases'; 'objects' is phase 0 alone"),
    ('topology = "ring"\n',
     "sys.toml:1:1: error: unknown topology 'ring' (built in: node, one-chip, two-chips, two-nodes; or a file)"),
    ('[chips.a\n', "sys.toml:1:9: error: invalid TOML: Expected ']' at the end of a table declaration"),
    ('[chips.a]\nconfig = "lpu-v9"\n',
     "sys.toml:2:1: error: unknown target 'lpu-v9' (built in: lpu-v1; or pass a configuration file)"),
])
def test_system_file_errors(text, message):
    assert "\n".join(errors(system_from_text, text, "sys.toml")) == message


def test_topology_include_and_override(tmp_path):
    p = tmp_path / "sys.toml"
    p.write_text('topology = "two-chips"\nlinks = [{ wire = "chip0.L0 <-> chip1.L8", latency = 7 }]\n'
                 '[chips.chip1]\nobjects = ["b"]\n')
    s = load_system(str(p))
    assert list(s.chips) == ["chip0", "chip1"] and len(s.wires) == 9 and s.wires[-1].latency == 7
    assert s.chip_of() == {"b": ("chip1", None)}


def test_docs_system_examples_parse():
    """Every ```toml block of docs/linker.md is a valid system description."""
    with open(os.path.join(ROOT, "docs", "linker.md")) as f:
        text = f.read()
    blocks = [b.split("```", 1)[0] for b in text.split("```toml\n")[1:]]
    assert len(blocks) >= 3
    for b in blocks:
        system_from_text(b, "docs/linker.md")


# --- 2. symbols across objects ----------------------------------------------------------------
PRODUCER = """\
global data @t : tensor<320xi8> in MEM_W3 = hex"{hex}"
reserve @own : tensor<640xi8> in MEM_W3
global kernel @k {{
  @0 MEM_W3 read.i8 [@own + 1], s0e
}}
"""
USER = """\
extern @t
reserve @own : tensor<320xi8> in MEM_W3
global kernel @u {
  @0 MEM_W3 read.i8 [@t], s1e
  @1 MEM_W3 read.i8 [@own], s1e
}
"""


def test_extern_resolved_across_objects_and_locals_kept_apart():
    a = obj(PRODUCER.format(hex="07" * 320), "a.lpu")
    b = obj(USER, "b.lpu")
    img = link_objects([("a", a)], phases=[[("b", b)]])  # both use MEM_W3: one after the other
    chip = img.chip("chip0")
    syms = {(s.name, s.object): (s.slice, s.address, s.words, s.is_global) for s in chip.symbols}
    # fixed-slice sections first-fit in input order: @t, a's @own, b's @own
    assert syms == {("t", "a"): ("MEM_W3", 0, 1, True), ("own", "a"): ("MEM_W3", 1, 2, False),
                    ("own", "b"): ("MEM_W3", 3, 1, False)}
    assert [(s.slice, s.address, s.data) for s in chip.sram] == [("MEM_W3", 0, b"\x07" * 320)]
    # the relocated addresses: a's [@own + 1] is word 2; b's [@t] is word 0 and [@own] word 3;
    # b (phase 1) starts when a (3 cycles) has ended
    assert queue_text(img, "chip0") == ["@0     MEM_W3  read.i8 [2], s0e", "@3     MEM_W3  read.i8 [0], s1e",
                                        "@4     MEM_W3  read.i8 [3], s1e"]
    assert [(p.name, p.start, p.length, p.phase) for p in chip.phases] == [("a:k", 0, 3, 0), ("b:u", 3, 4, 1)]


def test_kernels_end_to_end_and_objects_side_by_side():
    a = obj("""\
        reserve @x : tensor<320xi8> in MEM_W3
        global kernel @k1 {
          @0 MEM_W3 read.i8 [@x], s0e
        }
        global kernel @k2 {
          @1 MEM_W3 read.i8 [@x], s0e
        }
        """)
    b = obj("""\
        reserve @y : tensor<320xi8> in MEM_E3
        global kernel @k3 {
          @4 MEM_E3 read.i8 [@y], s0e
        }
        """, "b.lpu")
    img = link_objects([("a", a), ("b", b)])
    chip = img.chip("chip0")
    assert [(p.name, p.start, p.length) for p in chip.phases] == [("a:k1", 0, 3), ("b:k3", 0, 7), ("a:k2", 3, 4)]
    assert chip.length == 7
    assert queue_text(img, "chip0") == ["@0     MEM_W3  read.i8 [0], s0e", "@4     MEM_W3  read.i8 [0], s0e",
                                        "@4     MEM_E3  read.i8 [0], s0e"]
    mem_w3 = next(q for q in chip.queues if q.queue == "MEM_W3")
    # the gap between the kernels is one canonical nop at the location of the instruction it
    # precedes, as the assembler places a nop (a.lpu line 7: k2's read)
    assert len(mem_w3.words) == 3 and mem_w3.lines[1].tolist() == mem_w3.lines[2].tolist() == [0, 7, 3]
    assert mem_w3.lines[0].tolist() == [0, 4, 3] and chip.files == ["a.lpu", "b.lpu"]
