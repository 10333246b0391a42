"""Round trips of the assembler: text -> object -> disassembly -> the same text and the same bytes.

Programs are drawn at random from the ISA table itself: every entry, every element type it
takes, operands anywhere in their range, cycles that respect the queue rules (one instruction a
cycle, in order, `nop` and `repeat` semantics). Encode/decode identity of single words is
tests/test_arch.py's; here the whole path through text, records, ELF and the printer is.
"""

from __future__ import annotations

import glob
import os
import re
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from lpu.arch.config import load_config
from lpu.arch.isa import BY_MNEMONIC, DTYPE_BYTES, FLOATS, ISA, group_width, runs_on
from lpu.asm import timing
from lpu.asm.assembler import assemble
from lpu.asm.cli import assemble_file
from lpu.asm.emit import emit
from lpu.asm.objfile import read_object, write_object
from lpu.asm.printer import disassemble

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "asm", "**", "*.lpu"), recursive=True))
CFG = load_config("lpu-v1")
FILE = "gen.lpu"


def obj_bytes(text: str, file: str = FILE) -> bytes:
    return write_object(emit(assemble(text, file)))


def canonical_float(bits: int) -> str:
    """How the printer writes a finite f32 immediate: the shortest text that reads back."""
    text = str(np.float32(struct.unpack("<f", struct.pack("<I", bits))[0]))
    return text if "e" in text or "." in text else text + ".0"


# --- the program generator ---------------------------------------------------------------------
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.$]{0,8}", fullmatch=True)
SLICES = [s.name for s in CFG.mem_slices]


@st.composite
def tensors(draw, name: str):
    """A data or reserve directive: (text, dtype, shape, slice or None, words)."""
    dtype = draw(st.sampled_from(["i8", "i16", "i32", "f16", "bf16", "f32"]))
    shape = tuple(draw(st.lists(st.integers(1, 400), min_size=1, max_size=2)))
    words = max(1, -(-int(np.prod(shape)) // CFG.lanes)) * DTYPE_BYTES[dtype]
    where = draw(st.sampled_from(SLICES + ["MEM_W", "MEM_E"]))
    placement, slice_ = where, None
    if where not in ("MEM_W", "MEM_E"):
        slice_ = where
        if draw(st.booleans()):
            placement += f" at {draw(st.integers(0, CFG.words - words))}"
    head = ("global " if draw(st.booleans()) else "") + ("data" if draw(st.booleans()) else "reserve")
    text = f"{head} @{name} : tensor<{''.join(f'{d}x' for d in shape)}{dtype}> in {placement}"
    if head.endswith("data"):
        raw = draw(st.binary(min_size=int(np.prod(shape)) * DTYPE_BYTES[dtype],
                             max_size=int(np.prod(shape)) * DTYPE_BYTES[dtype]))
        text += f' = hex"{raw.hex()}"'
    return text, dtype, shape, slice_, words


def stream_text(draw, width: int, align: int) -> str:
    base = draw(st.integers(0, (CFG.streams - width) // align)) * align
    return f"s{base}{draw(st.sampled_from('ew'))}"


def operand_texts(draw, spec, dtype, dtype2, queue, tensors_by_slice, tables, externs, nice_floats):
    """The operands of one instruction, each in the printer's canonical spelling."""
    out: list[str] = []
    values: dict[str, int] = {}
    for op in spec.operands:  # rows first: a stream group's width may depend on it
        if op.kind.name == "rows":
            values["rows"] = draw(st.integers(1, CFG["mxm.max_rows_per_lw"] // DTYPE_BYTES[dtype]))
    for op in spec.operands:
        kind = op.kind.name
        if op.role and (kind == "stream" or draw(st.booleans())):
            span = group_width(spec, op, dtype, dtype2, values)
            align = DTYPE_BYTES[dtype] if op.width == "rows" else span
            out.append(stream_text(draw, span, align))
        elif kind == "src_or_imm":
            if dtype in FLOATS:
                bits = draw(st.integers(0, 0xFFFFFFFF).filter(
                    lambda b: (b >> 23) & 0xFF != 0xFF))  # finite: inf/NaN have no decimal spelling
                out.append(canonical_float(bits) if not nice_floats else
                           draw(st.sampled_from(["0.0", "-0.0", "1.0", "-2.5", "0.1", "1e-45", "3.4028235e+38"])))
            else:
                lo = -(1 << (8 * DTYPE_BYTES[dtype] - 1))
                out.append(str(draw(st.integers(lo, -lo - 1))))
        elif kind == "addr":
            # tensors of this slice that hold a whole vector of this type
            mine = [t for t in tensors_by_slice.get(queue.slice.name, []) if t[1] >= DTYPE_BYTES[dtype]]
            choice = draw(st.sampled_from(["address"] + (["tensor"] if mine else []) + (["extern"] if externs else [])))
            if choice == "address":
                out.append(f"[{draw(st.integers(0, CFG.words - 1))}]")
            else:
                if choice == "tensor":
                    name, words = draw(st.sampled_from(mine))
                    off = draw(st.integers(0, words - DTYPE_BYTES[dtype]))
                else:
                    name, off = draw(st.sampled_from(externs)), draw(st.integers(-40000, 40000))
                out.append(f"[@{name}{f' + {off}' if off > 0 else f' - {-off}' if off < 0 else ''}]")
        elif kind == "lanes":
            out.append(str(draw(st.integers(-CFG.lanes + 1, CFG.lanes - 1))))
        elif kind == "rows":
            out.append(str(values["rows"]))
        elif kind == "acc":
            out.append(f"acc{draw(st.integers(0, CFG['mxm.acc_slots'] - 1))}")
        elif kind == "mode":
            out.append(draw(st.sampled_from(["set", "add"])))
        elif kind == "link":
            if draw(st.booleans()):
                out.append("@" + draw(st.sampled_from(["pong", "chip1", "peer.x"])))
            else:
                out.append(f"L{draw(st.sampled_from(queue.links))}")
        elif kind == "table":
            out.append("@" + draw(st.sampled_from(tables + externs)))
        elif kind == "stride":
            if draw(st.booleans()):
                out.append(f"stride={draw(st.integers(-(1 << 15), (1 << 15) - 1))}")
        elif kind == "shift":
            if draw(st.booleans()):  # shift=0 is the default and is not printed
                out.append(f"shift={draw(st.integers(1, 31))}")
        elif kind == "flag":
            if draw(st.booleans()):
                out.append(op.name)
        elif kind == "cycles":
            out.append(str(draw(st.integers(1, 1 << 26))))  # 14 of them stay within a 32-bit kernel length
        elif kind == "count":
            out.append(str(draw(st.integers(1, 40))))
        elif kind == "barrier":
            out.append(str(draw(st.integers(0, 255))))
        else:  # a kind this generator does not know yet: the test must learn it
            raise AssertionError(f"operand kind {kind} of '{spec.mnemonic}' has no generator")
    return out


ICU = [s for s in ISA if "any" in s.units]
UNITS = [s for s in ISA if "any" not in s.units]


@st.composite
def programs(draw, explicit_nops: bool = False, nice_floats: bool = False):
    """The text of a random valid program in the printer's canonical form (no loc)."""
    names = iter(draw(st.lists(NAMES, min_size=12, max_size=12, unique_by=str.lower)))
    lines = ['target "lpu-v1"']
    by_slice: dict[str, list] = {}
    tables, externs = [], []
    decls = []
    for _ in range(draw(st.integers(0, 3))):
        name = next(names)
        text, dtype, shape, slice_, words = draw(tensors(name))
        decls.append(text)
        if slice_:
            by_slice.setdefault(slice_, []).append((name, words))
        if dtype.startswith("i") and int(np.prod(shape)) >= CFG.lanes:
            tables.append(name)
    for _ in range(draw(st.integers(0, 2))):
        externs.append(next(names))
    if not tables:  # permute needs a lane map: keep one at hand
        tables.append(name := next(names))
        decls.append(f"reserve @{name} : tensor<320xi32> in MEM_E")
    if decls or externs:
        lines.append("")
    lines += decls + [f"extern @{e}" for e in externs]
    for _k in range(draw(st.integers(1, 2))):
        kname = next(names)
        lines += ["", f"{'global ' if draw(st.booleans()) else ''}kernel @{kname} {{"]
        insts: list[tuple[int, int, str]] = []
        # per queue: (cycle the next may issue at, last cycle, cycle of a repeatable last instruction)
        state: dict[int, tuple[int, int, int | None]] = {}
        for _ in range(draw(st.integers(0, 14))):
            # units whose instructions this queue could take; a fixed mix keeps every ISA entry likely
            spec = draw(st.sampled_from(UNITS + ICU))
            fits = [q for q in CFG.queues if runs_on(spec, q.kind)]
            busy = [q for q in fits if q.index in state]  # revisit queues so that their rules matter
            queue = draw(st.sampled_from(busy if busy and draw(st.booleans()) else fits))
            ready, last, repeatable = state.get(queue.index, (0, -1, None))
            if spec.mnemonic == "nop" and not explicit_nops:
                continue
            if spec.mnemonic == "repeat":
                if repeatable is None:
                    continue
                n, d = draw(st.integers(1, 40)), draw(st.integers(1, 40))
                cycle = repeatable + d
                if cycle <= last:
                    continue
                insts.append((cycle, queue.index, f"@{cycle:<5} {queue.name:<7} repeat {n}, {d}"))
                state[queue.index] = (repeatable + n * d + 1, cycle, None)
                continue
            cycle = max(ready, last + 1) + draw(st.integers(0, 30) | st.integers(0, 5000))
            dtype = draw(st.sampled_from(spec.types)) if spec.types else None
            dtype2 = draw(st.sampled_from(spec.types2)) if spec.types2 else None
            ops = operand_texts(draw, spec, dtype, dtype2, queue, by_slice, tables, externs, nice_floats)
            mnemonic = ".".join(x for x in (spec.mnemonic, dtype, dtype2) if x)
            insts.append((cycle, queue.index, f"@{cycle:<5} {queue.name:<7} {mnemonic}"
                          + (" " + ", ".join(ops) if ops else "")))
            if spec.mnemonic == "nop":
                state[queue.index] = (cycle + int(ops[0]), cycle, None)
            elif "any" in spec.units:
                state[queue.index] = (cycle + 1, cycle, None)
            elif draw(st.integers(0, 3)) == 0:  # re-issue it: repeat n, d follows d cycles later
                n, d = draw(st.integers(1, 40)), draw(st.integers(1, 40))
                insts.append((cycle + d, queue.index, f"@{cycle + d:<5} {queue.name:<7} repeat {n}, {d}"))
                state[queue.index] = (cycle + n * d + 1, cycle + d, None)
            else:
                state[queue.index] = (cycle + 1, cycle, cycle)
        insts.sort(key=lambda x: (x[0], x[1]))
        lines += ["  " + text for _c, _q, text in insts]
        lines.append("}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def no_timing(monkeypatch):
    """Random instructions read streams nobody wrote: the stream-timing rule (tested on its own
    in test_asm_diagnostics.py) is switched off so that every other part of the path is exercised."""
    monkeypatch.setattr(timing, "check_timing", lambda kernel, cfg: [])


def _strip_lengths(text: str) -> str:
    return re.sub(r"\{  // [0-9]+ cycles$", "{", text, flags=re.M)


# --- properties ---------------------------------------------------------------------------------
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                   HealthCheck.function_scoped_fixture])
@given(programs())
def test_text_object_disassembly_identity(no_timing, text):
    """Canonical text -> object -> disassembly (without loc) gives the text back, and the
    disassembly (with loc) reassembles to the same bytes."""
    data = obj_bytes(text)
    obj = read_object(data)
    assert _strip_lengths(disassemble(obj, with_loc=False)) == text
    with_loc = disassemble(obj)
    assert obj_bytes(with_loc, "other.lpu") == data


# Drawn by hypothesis on a fresh clone (issue 13): the explicit `nop 1` on MEM_W42 is what the
# assembler would have made for the gap before the read, so the disassembler folded it into the
# cycles, and reassembly gave it the read's line (12) instead of its own (10): byte 1855 of the
# object, in .lpu.lines, was b"\x0c" instead of b"\n".
ISSUE_13 = """target "lpu-v1"

reserve @A : tensor<1xi8> in MEM_W43
reserve @I : tensor<1xi8> in MEM_W43
reserve @H : tensor<1xi8> in MEM_W43
reserve @G : tensor<320xi32> in MEM_E

kernel @E {
  @0     C2C_W   nop 1
  @0     MEM_W42 nop 1
  @0     VXM.0   add.i8 s0e, 0, s0e
  @1     MEM_W42 read.i8 [0], s0e
}
"""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                  HealthCheck.function_scoped_fixture])
@given(programs(explicit_nops=True, nice_floats=True))
@example(ISSUE_13)
def test_nops_and_repeats_reassemble_byte_identical(no_timing, text):
    """Explicit nops (folded into cycles where the assembler would have made them, kept
    otherwise) and repeats: the disassembly reassembles to the same bytes and is a fixed point."""
    data = obj_bytes(text)
    dis = disassemble(read_object(data))
    data2 = obj_bytes(dis, "dis.lpu")
    assert data2 == data
    assert disassemble(read_object(data2)) == dis


def test_explicit_nop_keeps_its_line_through_disassembly(no_timing):
    """A nop the programmer wrote keeps its own loc in the disassembly, even where the assembler
    would have made the same nop: the line table is part of the bytes that must come back."""
    data = obj_bytes(ISSUE_13)
    dis = disassemble(read_object(data))
    assert '  @0     MEM_W42 nop 1 loc("gen.lpu":10:3)\n  @0     VXM.0   add.i8 s0e, 0, s0e loc("gen.lpu":11:3)\n' \
           '  @1     MEM_W42 read.i8 [0], s0e loc("gen.lpu":12:3)\n' in dis
    again = obj_bytes(dis, "dis.lpu")
    assert again == data
    assert disassemble(read_object(again)) == dis
    # a nop the assembler made (no `nop` in the text) is still folded into the cycle
    made = ISSUE_13.replace("  @0     MEM_W42 nop 1\n", "")
    assert "MEM_W42 nop" not in disassemble(read_object(obj_bytes(made)))


FILE_NAMES = [("a\x0cb.lpu", r'"a\x0cb.lpu"'), ("new\nline.lpu", r'"new\x0aline.lpu"'),
              ("nul\x00.lpu", r'"nul\x00.lpu"'), ('q"uote\\back.lpu', r'"q\"uote\\back.lpu"'),
              ("tab\t.lpu", r'"tab\x09.lpu"'), ("\u2028sep.lpu", r'"\u2028sep.lpu"'),
              ("bytes\udcff.lpu", r'"bytes\udcff.lpu"'), ("\x85next.lpu", r'"\x85next.lpu"'),
              ("\x7f.lpu", r'"\x7f.lpu"'), ("ünï.lpu", '"ünï.lpu"')]


@pytest.mark.parametrize("name, quoted", FILE_NAMES, ids=range(len(FILE_NAMES)))
def test_any_file_name_survives_the_round_trip(name, quoted):
    """The printer escapes every character of a loc(...) file name that the lexer would read
    otherwise (line breaks of every kind, NUL, control characters, bytes that are not UTF-8)."""
    data = obj_bytes(H + "}\n", name)
    dis = disassemble(read_object(data))
    assert dis.split("\n")[2] == f"reserve @a : tensor<320xf32> in MEM_W0 loc({quoted}:2:9)"
    assert obj_bytes(dis, "other.lpu") == data
    assert read_object(data).files == [name]


@settings(max_examples=40, deadline=None)
@given(st.text(st.characters(codec=None, exclude_categories=()), max_size=12))
def test_random_file_names_survive_the_round_trip(name):
    data = obj_bytes(H + "}\n", name)
    assert obj_bytes(disassemble(read_object(data)), "other.lpu") == data


def test_generator_reaches_every_instruction():
    """The generator's pool is the ISA table itself, so no entry can be left out of the round trip."""
    assert {s.mnemonic for s in UNITS + ICU} == set(BY_MNEMONIC)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(programs(explicit_nops=True))
def test_assembly_is_deterministic(no_timing, text):
    assert obj_bytes(text) == obj_bytes(text)


# --- fixed cases the properties rely on ------------------------------------------------------------
H = 'target "lpu-v1"\nreserve @a : tensor<320xf32> in MEM_W0\nkernel @k {\n  @0 MEM_W0 read.f32 [@a], s0e\n'


@pytest.mark.parametrize("imm", ["3.4028235e+38", "-3.4028235e+38", "1e-45", "-0.0", "0.1", "1.6777216e+07"])
def test_float_immediate_extremes_round_trip(imm):
    """FLT_MAX prints as 3.4028235e+38, which is above FLT_MAX as a double: it must still read
    back (regression: it was rejected as 'beyond f32')."""
    text = H + f"  @3 VXM.0 add.f32 s0e, {imm}, s4e\n}}\n"  # s0e passes the VXM (47) in cycle 3
    data = obj_bytes(text)
    dis = disassemble(read_object(data), with_loc=False)
    assert f"add.f32 s0e, {imm}, s4e" in dis
    assert obj_bytes(disassemble(read_object(data))) == data


def test_infinite_float_immediate_round_trips():
    """Non-finite float immediates print as their bits (0x7f800000), which read back as bits."""
    text = H + "  @3 VXM.0 add.f32 s0e, 1e400, s4e\n}\n"
    data = obj_bytes(text)
    assert obj_bytes(disassemble(read_object(data))) == data


# --- the examples ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: os.path.relpath(p, ROOT))
def test_example_assembles_and_disassembly_reassembles(path, tmp_path):
    data = assemble_file(path)
    assert data[:4] == b"\x7fELF"
    obj = read_object(data)
    assert obj.kernels and all(k.length > 0 for k in obj.kernels)
    dis = disassemble(obj)
    assert obj_bytes(dis, str(tmp_path / "dis.lpu")) == data
    # without loc() annotations, the code is the same; only the line table differs
    plain = read_object(obj_bytes(disassemble(obj, with_loc=False), str(tmp_path / "plain.lpu")))
    assert [(c.kernel, c.queue, c.words.tolist()) for c in plain.code] == \
           [(c.kernel, c.queue, c.words.tolist()) for c in obj.code]


def test_examples_exist():
    names = {os.path.relpath(p, os.path.join(ROOT, "examples", "asm")) for p in EXAMPLES}
    assert {"copy.lpu", "vadd.lpu", "pingpong/ping.lpu", "pingpong/pong.lpu"} <= names
