"""Source locations of compiled programs: every instruction word maps to the ``df`` op it came
from (file, line, column; a called assembly kernel's words to the kernel's own lines), and
names that op (``.lpu.ops``) — in the linked image, through ``lpu compile -S`` and ``lpu-as``,
and in ``lpu-objdump -d``. Named locations ``loc("df.add"("f":l:c))`` in assembly."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from lpu.asm import elf as E
from lpu.asm.assembler import assemble
from lpu.asm.emit import emit
from lpu.asm.objdump import main as objdump_main
from lpu.asm.objfile import SHT_LPU_OPS, from_elf, read_object, to_elf, write_object
from lpu.asm.printer import disassemble
from lpu.diagnostics import DiagnosticError
from lpu.dsl.codegen import source_op_names
from lpu.linker.imagefile import read_image, write_image
from test_asm_roundtrip import no_timing, obj_bytes, programs  # noqa: F401 (no_timing: a fixture)
from compiled_examples import COMPILED, ROOT, compiled, kernel_lines, rel

_LOC = re.compile(r' loc\((?:"([^"]*)"\()?"([^"]*)":(\d+):(\d+)\)?\)$')


class Expect:
    """What a word's location may be for one example: a df op's (and then its name), or a line
    of an assembly kernel the function calls."""

    def __init__(self, path: str, module) -> None:
        self.path = path
        self.names = {k: v for k, v in source_op_names(module).items() if v not in ("df.func", "df.kernel")}
        self.kernel_lines = kernel_lines(module)

    def check(self, file: str, line: int, col: int, name: str | None) -> None:
        where = (file, line, col)
        if where in self.names:
            assert name == self.names[where], (where, name)
        else:
            assert file == self.path and line in self.kernel_lines and name is None, (where, name)


def _words(files, lines_of, names):
    """(file, line, col, op name) of every word: ``lines_of`` the (n, 3) tables."""
    for lines in lines_of:
        for f, line, col in np.asarray(lines).reshape(-1, 3).tolist():
            assert line > 0, "a word without a location"
            yield files[f], line, col, names.get((f, line, col))


@pytest.mark.parametrize("path", COMPILED, ids=rel)
def test_every_word_of_the_image_maps_to_its_df_op(path):
    c, module, img = compiled(path)
    want = Expect(path, module)
    for chip in img.chips:
        for file, line, col, name in _words(chip.files, [q.lines for q in chip.queues], chip.op_names):
            want.check(file, line, col, name)
    again = read_image(write_image(img), "x.lpx")  # the image file keeps them
    assert [(ch.files, ch.op_names) for ch in again.chips] == [(ch.files, ch.op_names) for ch in img.chips]


def _chip_texts(c, path):
    """(assembly text, the compiler's own object) per chip of a compiled function."""
    if hasattr(c, "chip_assembly"):
        return [(c.chip_assembly(i, path), code.obj) for i, code in sorted(c.chips.items())]
    return [(c.assembly(path), c.obj)]


def _resolved(obj):
    """Per (kernel, queue): the words and the (file, line, col, op name) of each."""
    return {(q.kernel, q.queue): (q.words.tolist(), list(_words(obj.files, [q.lines], obj.op_names)))
            for q in obj.code}


@pytest.mark.parametrize("path", COMPILED, ids=rel)
def test_scheduled_assembly_keeps_the_locations(path, tmp_path):
    """``lpu compile -S`` ends every instruction with its df op's named location: lpu-as makes
    the compiler's words with the compiler's line table and op names, and its disassembly
    reassembles to the same bytes."""
    c, module, _ = compiled(path)
    want = Expect(path, module)
    for text, direct in _chip_texts(c, path):
        s = str(tmp_path / "k.s")
        obj = emit(assemble(text, s))
        assert _resolved(obj) == _resolved(direct)
        for (_k, _q), (_w, locs) in _resolved(obj).items():
            for loc in locs:
                want.check(*loc)
        data = write_object(obj)
        assert write_object(emit(assemble(disassemble(read_object(data)), s))) == data


@pytest.mark.parametrize("path", COMPILED, ids=rel)
def test_objdump_of_the_image_names_every_instructions_df_op(path, tmp_path, capsys):
    c, module, img = compiled(path)
    want = Expect(path, module)
    lpx = tmp_path / "k.lpx"
    lpx.write_bytes(write_image(img))
    assert objdump_main(["-d", str(lpx)]) == 0
    insts = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  @")]
    assert len(insts) == sum(len(q.words) for ch in img.chips for q in ch.queues) - _folded_nops(img)
    for line in insts:
        m = _LOC.search(line)
        assert m is not None, line
        want.check(m.group(2), int(m.group(3)), int(m.group(4)), m.group(1))


def _folded_nops(img) -> int:
    """Words the disassembler folds into cycle annotations (the canonical nops before an
    instruction), counted from the decoded queues."""
    from lpu.asm.emit import decode_queue
    from lpu.linker.dump import chip_objects

    n = 0
    for _, obj in chip_objects(img):
        for q in obj.code:
            n += len(q.words) - len(decode_queue(q, 0, obj.files))
    return n


def test_softmax_is_at_its_line():
    """The issue's case: all of examples/softmax.lpu's words are at 6:8, named df.softmax (the
    line table said lines 1 to 456 of an 8-line file)."""
    path = os.path.join(ROOT, "examples", "softmax.lpu")
    _, _, img = compiled(path)
    (chip,) = img.chips
    locs = {(chip.files[f], line, col) for q in chip.queues for f, line, col in q.lines.tolist()}
    assert locs == {(path, 6, 8)}
    assert chip.op_names == {(chip.files.index(path), 6, 8): "df.softmax"}


def test_gemv_and_a_spliced_kernel_at_their_lines(capsys):
    """The GEMV path's words (reads, lw, mm, acc, writes, and the repeats unroll folds them
    into) are the matmul's; a called kernel's are its own lines, unnamed."""
    path = os.path.join(ROOT, "examples", "gemv_i8.lpu")
    _, _, img = compiled(path)
    mm = next(i + 1 for i, t in enumerate(open(path).read().splitlines()) if "matmul" in t)
    assert {(ln, name) for ch in img.chips for (_, ln, _), name in ch.op_names.items()} == {(mm, "df.matmul")}
    path = os.path.join(ROOT, "examples", "kernel_call.lpu")
    c, _, _ = compiled(path)
    text = c.assembly(path)
    assert '@13    VXM.0   add.i8 s0e, s1w, s2e loc("' + path + '":22:3)' in text
    assert re.search(r'relu.* loc\("df.relu"\("' + re.escape(path) + r'":29:8\)\)', text)


# --- the object format ----------------------------------------------------------------------------
def test_names_are_a_section_older_readers_skip():
    """``.lpu.ops`` is a section of its own: without it the object's other sections are byte
    for byte what they were (a reader that predates it, looking sections up by type, reads the
    same object); an object of hand-written assembly has none."""
    path = os.path.join(ROOT, "examples", "layernorm.lpu")
    c, _, _ = compiled(path)
    named = to_elf(c.obj)
    assert [s.name for s in named.sections if s.type == SHT_LPU_OPS] == [".lpu.ops"]
    bare = to_elf(type(c.obj)(**{**c.obj.__dict__, "op_names": {}}))
    assert [(s.name, s.data) for s in named.sections if s.type != SHT_LPU_OPS] == \
        [(s.name, s.data) for s in bare.sections]
    elf = E.read_elf(write_object(c.obj))
    elf.sections = [s for s in elf.sections if s.type != SHT_LPU_OPS]
    assert from_elf(elf).op_names == {}
    vadd = os.path.join(ROOT, "examples", "asm", "vadd.lpu")
    vadd = read_object(obj_bytes(open(vadd).read(), vadd))
    assert vadd.op_names == {}


@pytest.mark.parametrize("damage, message", [
    (lambda d: d[:4] + b"\x07" + d[5:], "names a location the line table cannot hold"),  # file index 7
    (lambda d: d + b"\x00", "1 bytes too many"),
])
def test_damaged_names_are_an_error(damage, message):
    path = os.path.join(ROOT, "examples", "softmax.lpu")
    c, _, _ = compiled(path)
    elf = to_elf(c.obj)
    sec = next(s for s in elf.sections if s.type == SHT_LPU_OPS)
    sec.data = damage(sec.data)
    with pytest.raises(E.ElfError, match=message):
        from_elf(E.read_elf(E.write_elf(elf)))


# --- named locations in assembly --------------------------------------------------------------------
_KERNEL = """target "lpu-v1"
reserve @a : tensor<320xi8> in MEM_W0
kernel @k {{
  @0 MEM_W0 read.i8 [@a], s0e {0}
  @2 MEM_W0 read.i8 [@a], s0e {1}
}}
"""


def test_named_location_reads_and_prints():
    text = _KERNEL.format('loc("df.add"("m.lpu":3:8))', 'loc( "df.add" ( "m.lpu" : 3 : 8 ) )')
    obj = emit(assemble(text, "t.lpu"))
    assert obj.files == ["t.lpu", "m.lpu"] and obj.op_names == {(1, 3, 8): "df.add"}  # t.lpu: @a
    dis = disassemble(obj)
    assert '@2     MEM_W0  read.i8 [@a], s0e loc("df.add"("m.lpu":3:8))' in dis
    assert write_object(emit(assemble(dis, "u.lpu"))) == write_object(obj)


@pytest.mark.parametrize("locs, message", [
    (('loc("df.add"("m.lpu":3:8))', 'loc("df.mul"("m.lpu":3:8))'),
     "t.lpu:5:3: error: m.lpu:3:8 is named 'df.mul' here but 'df.add' before"),
    (('loc(""("m.lpu":3:8))', ""), 't.lpu:4:3: error: a named location needs a name: loc("NAME"("FILE":LINE:COL))'),
    (('loc("df.add"("m.lpu":0:0))', ""), "t.lpu:4:3: error: a named location needs a line (line 0 is no location)"),
    (('loc("df.add"("m.lpu":3:8)', ""), 't.lpu:4:31: error: malformed location: expected loc("FILE":LINE:COL) or '
     'loc("NAME"("FILE":LINE:COL)) at the end of the line'),
])
def test_bad_named_location_is_a_diagnostic(locs, message):
    with pytest.raises(DiagnosticError) as e:
        assemble(_KERNEL.format(*locs), "t.lpu")
    d = e.value.diagnostics[0]
    assert f"{d.loc}: {d.severity}: {d.message}" == message


@st.composite
def named_programs(draw):
    """A random program whose instruction lines end in named and plain locations, one name per
    location (drawn from a few files, lines, columns and op names)."""
    text = draw(programs(explicit_nops=True))
    places = draw(st.lists(st.tuples(st.sampled_from(["a.lpu", "dir/b.lpu"]), st.integers(1, 40),
                                     st.integers(1, 9)), min_size=1, max_size=6, unique=True))
    names = {p: draw(st.sampled_from(["df.add", "df.softmax", "df.matmul", None])) for p in places}
    out = []
    for line in text.splitlines():
        if line.startswith("  @"):
            where = draw(st.sampled_from(places))
            loc = f'"{where[0]}":{where[1]}:{where[2]}'
            line += f' loc("{names[where]}"({loc}))' if names[where] else f" loc({loc})"
        out.append(line)
    return "\n".join(out) + "\n"


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(named_programs())
def test_named_locations_round_trip(no_timing, text):  # noqa: F811 (the fixture)
    """Text with named locations -> object -> disassembly -> the same bytes; the names kept
    are exactly those of the locations the words carry."""
    data = obj_bytes(text)
    obj = read_object(data)
    assert obj_bytes(disassemble(obj), "dis.lpu") == data
    want = {}
    for line in text.splitlines():
        m = _LOC.search(line)
        if m and m.group(1):
            want[(m.group(2), int(m.group(3)), int(m.group(4)))] = m.group(1)
    assert {(obj.files[f], ln, col): n for (f, ln, col), n in obj.op_names.items()} == want
