"""The ELF object: sections, symbols, relocations and the line table, as lpu-objdump, pyelftools,
readelf and nm see them (docs/object-format.md)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

from lpu.arch.isa import BY_MNEMONIC, decode, encode
from lpu.asm import elf as E
from lpu.asm.assembler import assemble
from lpu.asm.cli import default_output, main as as_main
from lpu.asm.emit import emit
from lpu.asm.objdump import main as objdump_main
from lpu.asm.objfile import R_LPU_SRAM, read_object, write_object

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One of everything an object holds: local and global data, a reservation, an extern, a lane
# map, SRAM relocations with addends, a peer relocation, a gap filled with nops, a repeat.
PROG = """\
target "lpu-v1"

data @lut : tensor<320xi32> in MEM_E = hex"{lut}"
global data @x : tensor<2x320xi8> in MEM_W0 at 4 = [{x}]
global reserve @y : tensor<320xf32> in MEM_E1
extern @shared

global kernel @main {{
  @0   MEM_W0  read.i8  [@x + 1], s0e
  @3   MEM_W0  repeat 1, 3
  @3   SXM_E   permute.i8 s1w, @lut, s2w
  @9   MEM_E1  write.f32 [@y], s4e
  @10  C2C_E   send.i8 s2w, @peer0
}}

kernel @helper {{
  @100 MEM_W0  read.i8  [@shared - 2], s3e
}}
"""
LUT = np.arange(320, dtype=np.int32)[::-1].copy()
X = [((i * 7) % 256) - 128 for i in range(640)]
TEXT = PROG.format(lut=LUT.tobytes().hex(), x=", ".join(map(str, X)))


@pytest.fixture(scope="module")
def obj_path(tmp_path_factory):
    from lpu.asm import timing

    # this program is about the object's contents, not a schedule: its streams carry nothing
    saved = timing.check_timing
    timing.check_timing = lambda k, c: []
    try:
        data = write_object(emit(assemble(TEXT, "prog.lpu")))
    finally:
        timing.check_timing = saved
    path = tmp_path_factory.mktemp("obj") / "prog.o"
    path.write_bytes(data)
    return path


def objdump(*args) -> str:
    import contextlib

    buf = io.BytesIO()

    class W:  # lpu-objdump writes bytes to sys.stdout.buffer
        buffer = buf

        def write(self, s):
            buf.write(s.encode())

        def flush(self):
            pass

    with contextlib.redirect_stdout(W()):
        assert objdump_main(list(args)) == 0
    return buf.getvalue().decode()


def test_section_headers(obj_path):
    assert objdump("-h", str(obj_path)) == f"""\
{obj_path}:     file format elf64-lpu

Sections:
Idx Name                                 Type               Size Flags
  1 .lpu.config                          LPU_CONFIG         1551 
  2 .lpu.kernels                         LPU_KERNELS          38 
  3 .lpu.tensors                         LPU_TENSORS         134 
  4 .lpu.lines                           LPU_LINES           236 
  5 .lpu.sram.lut                        PROGBITS           1280 WA
  6 .lpu.sram.x                          PROGBITS            640 WA
  7 .lpu.bss.y                           NOBITS             1280 WA
  8 .lpu.text.main.MEM_W0                PROGBITS             24 AX
  9 .lpu.text.main.MEM_E1                PROGBITS             16 AX
 10 .lpu.text.main.SXM_E                 PROGBITS             16 AX
 11 .lpu.text.main.C2C_E                 PROGBITS             16 AX
 12 .lpu.text.helper.MEM_W0              PROGBITS             16 AX
"""


def test_symbols(obj_path):
    assert objdump("-t", str(obj_path)) == f"""\
{obj_path}:     file format elf64-lpu

SYMBOL TABLE:
   Value Bind   Type    Section                                  Size Name
       0 local  tensor  .lpu.sram.lut                               4 lut
       1 local  kernel  .lpu.kernels                              103 helper
       0 global tensor  .lpu.sram.x                                 2 x
       0 global tensor  .lpu.bss.y                                  4 y
       0 global kernel  .lpu.kernels                               20 main
       0 global notype  *UND*                                       0 shared
       0 global notype  *UND*                                       0 peer:peer0
"""


def test_relocations(obj_path):
    assert objdump("-r", str(obj_path)) == f"""\
{obj_path}:     file format elf64-lpu

RELOCATION RECORDS FOR [.lpu.text.main.MEM_W0]:
  Word Type         Value
     0 R_LPU_SRAM   x + 1

RELOCATION RECORDS FOR [.lpu.text.main.MEM_E1]:
  Word Type         Value
     1 R_LPU_SRAM   y

RELOCATION RECORDS FOR [.lpu.text.main.SXM_E]:
  Word Type         Value
     1 R_LPU_TABLE  lut

RELOCATION RECORDS FOR [.lpu.text.main.C2C_E]:
  Word Type         Value
     1 R_LPU_PEER   peer:peer0

RELOCATION RECORDS FOR [.lpu.text.helper.MEM_W0]:
  Word Type         Value
     1 R_LPU_SRAM   shared - 2
"""


def test_no_relocations(tmp_path):
    src = tmp_path / "n.lpu"
    src.write_text('target "lpu-v1"\nkernel @k {\n  @0 MEM_W0 nop 3\n}\n')
    assert as_main([str(src), "-o", str(tmp_path / "n.o")]) == 0
    assert objdump("-r", str(tmp_path / "n.o")).endswith("no relocations\n")


def test_code_words_nops_and_line_table(obj_path):
    obj = read_object(obj_path.read_bytes())
    code = {(c.kernel, c.queue): c for c in obj.code}
    nop = BY_MNEMONIC["nop"]
    main_e1 = code["main", "MEM_E1"]
    # the write at cycle 9 is preceded by the assembler's nop 9
    assert [decode(w)[0].mnemonic for w in main_e1.words.tolist()] == ["nop", "write"]
    assert main_e1.words[0] == encode(nop, None, None, (9,))
    assert obj.files == ["prog.lpu"]
    # every word, nops included, maps to the line of the instruction it serves
    assert main_e1.lines.tolist() == [[0, 12, 3], [0, 12, 3]]
    # read at 0, then nop 2 and the repeat at 3 (both on the repeat's line)
    assert [decode(w)[0].mnemonic for w in code["main", "MEM_W0"].words.tolist()] == ["read", "nop", "repeat"]
    assert code["main", "MEM_W0"].lines.tolist() == [[0, 9, 3], [0, 10, 3], [0, 10, 3]]
    assert code["helper", "MEM_W0"].lines.tolist() == [[0, 17, 3], [0, 17, 3]]
    assert code["helper", "MEM_W0"].words[0] == encode(nop, None, None, (100,))
    # length: the send at 10 keeps its link busy 10 cycles; the read at 100 lands at 102
    assert [(k.name, k.length, k.is_global) for k in obj.kernels] == [("main", 20, True), ("helper", 103, False)]


def test_sram_images_and_placement(obj_path):
    obj = read_object(obj_path.read_bytes())
    by = {s.symbol: s for s in obj.sram}
    from lpu.arch.layout import from_sram

    assert np.array_equal(from_sram(by["lut"].image, (320,), "i32", 320), LUT)
    assert from_sram(by["x"].image, (2, 320), "i8", 320).reshape(-1).tolist() == X
    assert by["y"].image is None and by["y"].words == 4
    assert str(by["x"].placement) == "MEM_W0 at 4" and str(by["lut"].placement) == "MEM_E"
    assert obj.externs == ["shared"] and obj.peers == ["peer0"]


def test_pyelftools_reads_the_object(obj_path):
    with open(obj_path, "rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] == E.EM_LPU and elf["e_type"] == "ET_REL"
        assert elf.elfclass == 64 and elf.little_endian
        sym = elf.get_section_by_name(".symtab")
        names = [(s.name, s["st_info"]["bind"]) for s in sym.iter_symbols()][1:]
        assert names[:2] == [("lut", "STB_LOCAL"), ("helper", "STB_LOCAL")]
        assert sym["sh_info"] == 3  # first global: null + 2 locals
        rela = elf.get_section_by_name(".rela.lpu.text.helper.MEM_W0")
        (r,) = list(rela.iter_relocations())
        assert (r["r_offset"], r["r_info_type"], r["r_addend"]) == (8, R_LPU_SRAM, -2)
        assert sym.get_symbol(r["r_info_sym"]).name == "shared"
        types = {s.name: s["sh_type"] for s in elf.iter_sections()}
        assert types[".lpu.bss.y"] == "SHT_NOBITS"
        assert elf.get_section_by_name(".lpu.text.main.C2C_E")["sh_entsize"] == 8


@pytest.mark.skipif(not shutil.which("readelf"), reason="readelf not installed (make binutils)")
def test_readelf_accepts_the_object(obj_path):
    p = subprocess.run(["readelf", "-a", "-W", str(obj_path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "Warning" not in p.stderr and "Error" not in p.stderr
    assert "REL (Relocatable file)" in p.stdout and "0x4c50" in p.stdout
    assert ".rela.lpu.text.helper.MEM_W0" in p.stdout


@pytest.mark.skipif(not shutil.which("nm"), reason="nm not installed (make binutils)")
def test_nm_lists_the_symbols(obj_path):
    p = subprocess.run(["nm", str(obj_path)], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == ""
    assert p.stdout.splitlines() == [
        "0000000000000001 n helper", "0000000000000000 d lut", "0000000000000000 N main",
        "                 U peer:peer0", "                 U shared", "0000000000000000 D x",
        "0000000000000000 B y"]


@pytest.mark.skipif(not (shutil.which("readelf") and shutil.which("nm")), reason="binutils not installed")
def test_binutils_accept_every_example(tmp_path):
    import glob

    for path in sorted(glob.glob(os.path.join(ROOT, "examples", "asm", "**", "*.lpu"), recursive=True)):
        out = tmp_path / "e.o"
        assert as_main([path, "-o", str(out)]) == 0
        for cmd in (["readelf", "-a", "-W"], ["nm"]):
            p = subprocess.run(cmd + [str(out)], capture_output=True, text=True)
            assert p.returncode == 0 and "Warning" not in p.stderr, (path, cmd, p.stderr)


def test_objects_are_deterministic_and_outputs_atomic(tmp_path):
    src = os.path.join(ROOT, "examples", "asm", "vadd.lpu")
    a, b = tmp_path / "a.o", tmp_path / "b.o"
    assert as_main([src, "-o", str(a)]) == 0 and as_main([src, "-o", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["a.o", "b.o"]  # no temporary file left behind


def test_default_output_name():
    assert default_output("dir/gemv.lpu") == "gemv.o"
    assert default_output("notes.txt") == "notes.txt.o"
    assert default_output("-") == "-"


def test_stdin_to_stdout_pipeline(tmp_path):
    """lpu-as - -o - | lpu-objdump -d -: the whole path through pipes."""
    src = open(os.path.join(ROOT, "examples", "asm", "copy.lpu"), encoding="utf-8").read()
    cwd = os.path.join(ROOT, "examples", "asm")  # load("copy_src.npy") is relative to the cwd for stdin
    obj = subprocess.run([sys.executable, "-m", "lpu.asm.cli", "-", "-o", "-"], input=src.encode(), cwd=cwd,
                         capture_output=True, timeout=120)
    assert obj.returncode == 0 and obj.stdout[:4] == b"\x7fELF", obj.stderr
    dis = subprocess.run([sys.executable, "-m", "lpu.asm.objdump", "-d", "--no-loc", "-"], input=obj.stdout,
                         capture_output=True, timeout=120)
    assert dis.returncode == 0
    assert dis.stdout.decode().splitlines()[-4:] == [
        "global kernel @copy {  // 91 cycles",
        "  @0     MEM_W43 read.i8 [@src], s0e",
        "  @90    MEM_E43 write.i8 [@dst], s0e",
        "}"]


def test_objdump_rejects_non_objects(tmp_path, capsys):
    bad = tmp_path / "x.o"
    bad.write_bytes(b"not an object")
    assert objdump_main(["-d", str(bad)]) == 1
    assert capsys.readouterr().err == f"{bad}: error: '{bad}' is not a valid LPU object: not an ELF file\n"
    other = E.write_elf(E.ElfFile(machine=62))  # an x86-64 object
    bad.write_bytes(other)
    assert objdump_main(["-h", str(bad)]) == 1
    assert capsys.readouterr().err == \
        f"{bad}: error: '{bad}' is not a valid LPU object: not an LPU object (e_machine is 0x3e)\n"


def test_objdump_needs_an_action(capsys):
    with pytest.raises(SystemExit) as e:
        objdump_main(["x.o"])
    assert e.value.code == 1
    assert "lpu-objdump: error: one of -d, -h, -t or -r is required" in capsys.readouterr().err


def test_definition_lines(obj_path):
    """Where each kernel and tensor is defined, in table order, and printed by the
    disassembler so that reassembly keeps it (an object without them reads as unknown)."""
    obj = read_object(obj_path.read_bytes())
    assert obj.files == ["prog.lpu"]
    assert [(k.name, k.where) for k in obj.kernels] == [("main", (0, 8, 15)), ("helper", (0, 16, 8))]
    assert [(s.symbol, s.where) for s in obj.sram] == [("lut", (0, 3, 6)), ("x", (0, 4, 13)), ("y", (0, 5, 16))]
    listing = objdump("-d", str(obj_path))
    assert 'global kernel @main loc("prog.lpu":8:15) {' in listing
    assert 'global reserve @y : tensor<320xf32> in MEM_E1 loc("prog.lpu":5:16)' in listing
    data = obj_path.read_bytes()
    sec = next(s for s in E.read_elf(data).sections if s.name == ".lpu.lines")
    old = E.read_elf(data)
    for s in old.sections:
        if s.name == ".lpu.lines":
            s.data = sec.data[:-(4 + 5 * 12)]  # as written before definition lines existed
    from lpu.asm.objfile import from_elf
    assert [k.where for k in from_elf(old).kernels] == [(0, 0, 0), (0, 0, 0)]
