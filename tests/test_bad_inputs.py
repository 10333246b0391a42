"""Every loader, fed what fuzzing found (issue 13): one `error:` line, exit status 1, no traceback,
no output file. Each case goes through a tool's `main([...])`, as the command line does.

The classes: instruction words that do not decode, ELF fields that point outside the file or at
the wrong kind of section, tensors whose word count disagrees with their shape, NUL and other
characters in file names, lists and loops nested deeper than recursion goes, .npy headers that
numpy evaluates as Python, and line breaks that the lexers and the diagnostic printer counted
differently.
"""

from __future__ import annotations

import io
import os
import struct

import numpy as np
import pytest

from lpu.arch.isa import BY_MNEMONIC, DTYPE_LO, DTYPE2_LO, encode
from lpu.asm.assembler import assemble
from lpu.asm.cli import main as as_main
from lpu.asm.emit import emit
from lpu.asm.objdump import main as objdump_main
from lpu.asm.objfile import ObjectFile, read_object, write_object
from lpu.driver import main as lpu_main
from lpu.dsl.cli import main as opt_main
from lpu.diagnostics import DiagnosticError
from lpu.linker.cli import main as ld_main
from lpu.linker.imagefile import write_image
from lpu.linker.link import link_objects
from lpu.sim.cli import main as sim_main, simulate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VADD = os.path.join(ROOT, "examples", "asm", "vadd.lpu")


def vadd() -> ObjectFile:
    with open(VADD, encoding="utf-8") as f:
        return emit(assemble(f.read(), VADD))


def run(main, argv, capsys) -> tuple[int, str]:
    """Exit status and standard error of a tool; an exception escaping it fails the test."""
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def refused(main, argv, capsys, want: str, out=None) -> None:
    """The tool says exactly ``want`` on standard error and exits with 1, writing nothing."""
    rc, err = run(main, argv, capsys)
    assert (rc, err) == (1, want)
    if out is not None:
        assert not os.path.exists(out)


# --- instruction words ------------------------------------------------------------------------
READ = BY_MNEMONIC["read"]
NOP = BY_MNEMONIC["nop"]
GOOD_READ = encode(READ, "i8", None, (0, 0, 0))
BAD_WORDS = [
    (0xFF, "unknown opcode 0xff"),
    (GOOD_READ | 7 << DTYPE_LO, "read: invalid type field 7"),
    (encode(NOP, None, None, (1,)) | 1 << DTYPE_LO, "nop: type field set on an untyped instruction"),
    (GOOD_READ | 1 << DTYPE2_LO, "read: second type field set on an instruction without one"),
    (GOOD_READ | 1 << 63, "read: reserved bits set in 0x8000000000000010"),
    (GOOD_READ | 1 << 14, "read: reserved bits set in 0x0000000000004010"),
]


def with_word(word: int) -> ObjectFile:
    obj = vadd()
    code = next(c for c in obj.code if c.queue == "MEM_W0")
    code.words[0] = np.uint64(word)
    return obj


@pytest.mark.parametrize("word, why", BAD_WORDS, ids=[w[1].split(":")[0] + str(i) for i, w in enumerate(BAD_WORDS)])
def test_a_word_that_does_not_decode_is_one_error_everywhere(word, why, tmp_path, capsys):
    """lpu-objdump -d raised DecodeError; lpu-ld reported the word. Now the object reader refuses
    it, for both, with the decoder's reason; the linker says the same of objects in memory."""
    bad = tmp_path / "bad.o"
    bad.write_bytes(write_object(with_word(word)))
    msg = f"'{bad}' is not a valid LPU object: .lpu.text.vadd.MEM_W0: word 0 (0x{word:016x}) is not a valid " \
          f"instruction ({why})"
    for flag in ("-d", "-h", "-t", "-r"):
        refused(objdump_main, [flag, bad, "-o", tmp_path / "out.txt"], capsys, f"{bad}: error: {msg}\n",
                tmp_path / "out.txt")
    refused(ld_main, [bad, "-o", tmp_path / "a.lpx"], capsys, f"{bad}: error: {msg}\n", tmp_path / "a.lpx")
    with pytest.raises(DiagnosticError) as e:
        link_objects([("bad", with_word(word))])
    assert [d.message for d in e.value.diagnostics] == [
        f"object 'bad', section .lpu.text.vadd.MEM_W0: word 0 (0x{word:016x}) is not a valid instruction ({why})"]


def test_a_word_its_queue_cannot_execute_is_refused(tmp_path, capsys):
    """`iw` (an MXM instruction) in a C2C queue of an image crashed lpu-sim with AttributeError
    (make fuzz found it); objects and images are now held to the assembler's unit rule."""
    iw = encode(BY_MNEMONIC["iw"], None, None, ())
    bad = tmp_path / "bad.o"
    bad.write_bytes(write_object(with_word(iw)))
    want = f"{bad}: error: '{bad}' is not a valid LPU object: .lpu.text.vadd.MEM_W0: word 0 ('iw') cannot execute " \
           "on MEM_W0, a mem queue\n"
    refused(objdump_main, ["-d", bad], capsys, want)
    refused(ld_main, [bad, "-o", tmp_path / "a.lpx"], capsys, want, tmp_path / "a.lpx")
    img = link_objects([("vadd", vadd())])
    queue = next(q for q in img.chips[0].queues if q.queue == "MEM_W0")
    queue.words[0] = np.uint64(iw)
    image = tmp_path / "bad.lpx"
    image.write_bytes(write_image(img))
    refused(sim_main, [image, "--stats", "none"], capsys, f"{image}: error: '{image}' is not a valid LPU system "
            "image: queue MEM_W0 of chip 'chip0': word 0 ('iw') cannot execute on MEM_W0, a mem queue\n")


# --- ELF fields ---------------------------------------------------------------------------------
def _shdrs(data: bytes) -> tuple[int, list[tuple[str, int]]]:
    """The section header table's offset and (name, header offset) of every section."""
    shoff, shnum, shstrndx = struct.unpack_from("<Q", data, 40)[0], *struct.unpack_from("<HH", data, 60)
    heads = [shoff + 64 * i for i in range(shnum)]
    strtab = struct.unpack_from("<QQ", data, heads[shstrndx] + 24)
    names = data[strtab[0]: strtab[0] + strtab[1]]
    out = []
    for h in heads:
        off = struct.unpack_from("<I", data, h)[0]
        out.append((names[off: names.index(b"\0", off)].decode(), h))
    return shoff, out


def patched(data: bytes, where: str, fmt: str, value: int) -> bytes:
    """``data`` with one field set: ``ehdr+OFF`` in the ELF header, ``NAME+OFF`` in a section's
    header, ``sym<N>+OFF`` in symbol N of .symtab."""
    what, _, off = where.partition("+")
    off = int(off)
    _shoff, heads = _shdrs(data)
    if what == "ehdr":
        at = off
    elif what.startswith("sym"):
        symtab = dict(heads)[".symtab"]
        at = struct.unpack_from("<Q", data, symtab + 24)[0] + 24 * int(what[3:]) + off
    else:
        at = dict(heads)[what] + off
    b = bytearray(data)
    struct.pack_into(fmt, b, at, value)
    return bytes(b)


VADD_O = write_object(vadd())
SECTION_INDEX = {name: i for i, (name, _h) in enumerate(_shdrs(VADD_O)[1])}
SYMTAB, RELA = SECTION_INDEX[".symtab"], SECTION_INDEX[".rela.lpu.text.vadd.MEM_W0"]
ELF_DAMAGE = [  # (field, struct format, value, message)
    ("ehdr+40", "<Q", len(VADD_O), "malformed section header table"),  # e_shoff
    ("ehdr+60", "<H", 0xFFFF, "malformed section header table"),  # e_shnum
    ("ehdr+62", "<H", 0, "malformed section header table"),  # e_shstrndx
    ("ehdr+62", "<H", 1, "the section name table (section 1) is not a string table"),
    ("ehdr+58", "<H", 40, "malformed section header table"),  # e_shentsize
    (".lpu.kernels+24", "<Q", len(VADD_O), "section 2 extends past the end of the file"),  # sh_offset
    (".lpu.kernels+32", "<Q", 1 << 62, "section 2 extends past the end of the file"),  # sh_size
    (".lpu.kernels+0", "<I", 1 << 20, f"section 2: string table offset {1 << 20} is outside the table"),  # sh_name
    (".symtab+40", "<I", 99, f"section {SYMTAB} (.symtab) links to section 99, which is not a string table"),
    (".symtab+40", "<I", 1, f"section {SYMTAB} (.symtab) links to section 1, which is not a string table"),
    (".symtab+32", "<Q", 5 * 24 + 7, "the symbol table's size (127) is not a whole number of symbols"),
    ("sym1+6", "<H", 200, "symbol 1 is in section 200, which holds no symbols"),  # st_shndx
    ("sym1+0", "<I", 1 << 20, f"symbol 1: string table offset {1 << 20} is outside the table"),  # st_name
    (".rela.lpu.text.vadd.MEM_W0+44", "<I", 99,  # sh_info
     "relocation section .rela.lpu.text.vadd.MEM_W0 applies to section 99, which holds no code"),
    (".rela.lpu.text.vadd.MEM_W0+40", "<I", 1,  # sh_link
     f"section {RELA} (.rela.lpu.text.vadd.MEM_W0) links to section 1, which is not a symbol table"),
]


@pytest.mark.parametrize("field, fmt, value, why", ELF_DAMAGE, ids=[f"{d[0]}={d[2]}" for d in ELF_DAMAGE])
def test_every_elf_field_the_reader_follows_is_checked(field, fmt, value, why, tmp_path, capsys):
    """A .symtab whose sh_link is out of range raised IndexError in lpu-objdump -t; every offset,
    size, count and index of the headers is now checked before it is followed."""
    bad = tmp_path / "bad.o"
    bad.write_bytes(patched(VADD_O, field, fmt, value))
    want = f"{bad}: error: '{bad}' is not a valid LPU object: {why}\n"
    for flag in ("-t", "-d", "-h", "-r"):
        refused(objdump_main, [flag, bad, "-o", tmp_path / "out.txt"], capsys, want, tmp_path / "out.txt")
    refused(ld_main, [bad, "-o", tmp_path / "a.lpx"], capsys, want, tmp_path / "a.lpx")


def _table(data: bytes, name: str) -> tuple[int, int]:
    h = dict(_shdrs(data)[1])[name]
    return struct.unpack_from("<QQ", data, h + 24)


TABLE_DAMAGE = [  # (section, byte offset in it, struct format, value, message)
    (".lpu.kernels", 0, "<I", 1 << 30, ".lpu.kernels is truncated (it announces 1073741824 entries)"),
    (".lpu.tensors", 0, "<I", 5, ".lpu.tensors is truncated (it announces 5 entries)"),
    (".lpu.tensors", 13, "<I", 9, ".lpu.tensors: tensor 'a' has 9 dimensions (at most 8)"),  # rank of @a
    (".lpu.tensors", 8, "<B", 9, ".lpu.tensors: tensor name '\\t' is not a symbol"),  # 'a' -> '\t'
    (".lpu.tensors", 9, "<I", 6, ".lpu.tensors: bad element type 6"),
    (".lpu.lines", 0, "<I", 1 << 29, ".lpu.lines is truncated (it announces 536870912 entries)"),
    (".lpu.kernels", 8, "<B", 0xFF, ".lpu.kernels holds a string that is not UTF-8"),  # 'vadd' -> b'\xffadd'
]


@pytest.mark.parametrize("section, at, fmt, value, why", TABLE_DAMAGE, ids=range(len(TABLE_DAMAGE)))
def test_every_count_and_string_of_the_tables_is_checked(section, at, fmt, value, why, tmp_path, capsys):
    start, _size = _table(VADD_O, section)
    b = bytearray(VADD_O)
    struct.pack_into(fmt, b, start + at, value)
    bad = tmp_path / "bad.o"
    bad.write_bytes(bytes(b))
    refused(objdump_main, ["-d", bad], capsys, f"{bad}: error: '{bad}' is not a valid LPU object: {why}\n")


# --- tensors whose words disagree with their shape ---------------------------------------------------
def with_words(symbol: str, words: int) -> ObjectFile:
    obj = vadd()
    next(s for s in obj.sram if s.symbol == symbol).words = words
    return obj


@pytest.mark.parametrize("symbol", ["sum", "a"])  # a reservation, and a tensor with contents
def test_a_tensor_word_count_that_disagrees_with_its_shape_is_refused(symbol, tmp_path, capsys):
    """lpu-ld linked @sum (tensor<320xi8>, 1 word) as 5 words without complaint, and lpu-sim
    --input then wrote past it into SRAM; objdump raised ValueError on @a."""
    bad = tmp_path / "bad.o"
    bad.write_bytes(write_object(with_words(symbol, 5)))
    why = f".lpu.tensors: tensor '@{symbol}' occupies 5 words, but tensor<320xi8> needs 1"
    if symbol == "sum":  # its NOBITS section is sized from the same field: only the shape disagrees
        want = f"{bad}: error: '{bad}' is not a valid LPU object: {why}\n"
    else:  # 320 bytes of contents for 5 words
        want = f"{bad}: error: '{bad}' is not a valid LPU object: {why}\n"
    refused(objdump_main, ["-d", bad, "-o", tmp_path / "out.txt"], capsys, want, tmp_path / "out.txt")
    refused(ld_main, [bad, "-o", tmp_path / "a.lpx"], capsys, want, tmp_path / "a.lpx")
    with pytest.raises(DiagnosticError) as e:  # the linker checks objects built in memory the same way
        link_objects([("bad", with_words(symbol, 5))])
    assert [d.message for d in e.value.diagnostics] == [
        f"object 'bad': tensor '@{symbol}' occupies 5 words, but tensor<320xi8> needs 1"]


def test_sections_must_hold_what_the_tensor_table_says(tmp_path, capsys):
    obj = vadd()
    obj.sram[0].image = obj.sram[0].image[:100]
    bad = tmp_path / "bad.o"
    bad.write_bytes(write_object(obj))
    refused(objdump_main, ["-t", bad], capsys, f"{bad}: error: '{bad}' is not a valid LPU object: .lpu.tensors: "
            "the SRAM image of tensor '@a' holds 100 bytes, but 1 words of 320 lanes are 320\n")
    data = bytearray(VADD_O)  # the reservation @sum: its NOBITS size
    struct.pack_into("<Q", data, dict(_shdrs(VADD_O)[1])[".lpu.bss.sum"] + 32, 640)
    bad.write_bytes(bytes(data))
    refused(objdump_main, ["-t", bad], capsys, f"{bad}: error: '{bad}' is not a valid LPU object: section "
            ".lpu.bss.sum reserves 640 bytes, but tensor 'sum' occupies 1 words of 320 lanes\n")


def test_the_simulator_checks_inputs_and_outputs_against_the_symbol(tmp_path, capsys):
    """An image whose symbol's words disagree with its shape: the image reader refuses it, and
    the simulator checks images built in memory before writing an input into SRAM."""
    img = link_objects([("vadd", vadd())])
    sym = next(s for s in img.chips[0].symbols if s.name == "sum")
    sym.words = 5
    bad = tmp_path / "bad.lpx"
    bad.write_bytes(write_image(img))
    np.save(tmp_path / "x.npy", np.ones(320, np.int8))
    refused(sim_main, [bad, "--input", f"sum={tmp_path / 'x.npy'}", "--output", f"sum={tmp_path / 'y.npy'}"],
            capsys, f"{bad}: error: '{bad}' is not a valid LPU system image: symbol 'sum' of chip 'chip0' does "
            "not match its type (5 words for tensor<320xi8>)\n", tmp_path / "y.npy")
    for inputs, outputs in (({"sum": np.ones(320, np.int8)}, []), ({}, ["sum"])):
        with pytest.raises(DiagnosticError) as e:
            simulate(img, "mem.lpx", inputs=inputs, outputs=outputs)
        assert [d.message for d in e.value.diagnostics] == [
            "@sum occupies 5 words in mem.lpx, but its shape 320 of i8 needs 1"]


# --- file names -----------------------------------------------------------------------------------
EXTERN = 'target "lpu-v1"\nextern @x\nkernel @k {\n  @0 MEM_W0 read.i8 [@x], s0e\n}\n'


@pytest.mark.parametrize("name, shown", [("a\x00b.lpu", "a\\x00b.lpu"), ("a\nb.lpu", "a\\nb.lpu"),
                                         ("/dev/zero", "/dev/zero"), ("v\udcff.lpu", "v\\udcff.lpu")])
def test_a_line_table_may_name_any_file(name, shown, tmp_path, capsys):
    """A source file named with a NUL in .lpu.lines raised ValueError from open() while printing a
    diagnostic; /dev/zero would never have ended. Names are shown escaped, one message a line."""
    obj = tmp_path / "x.o"
    obj.write_bytes(write_object(emit(assemble(EXTERN, name))))
    refused(ld_main, [obj, "-o", tmp_path / "a.lpx"], capsys,
            f"{shown}:4:3: error: undefined symbol '@x' on chip 'chip0', referenced from object 'x'\n",
            tmp_path / "a.lpx")
    assert run(objdump_main, ["-d", obj, "-o", tmp_path / "x.lpu"], capsys) == (0, "")  # and it reads back
    assert run(as_main, [tmp_path / "x.lpu", "-o", tmp_path / "y.o"], capsys) == (0, "")
    assert (tmp_path / "y.o").read_bytes() == obj.read_bytes()


def test_a_target_path_holding_a_nul_is_a_diagnostic(tmp_path, capsys):
    src = tmp_path / "t.lpu"
    src.write_text('target "cfg/\\x00.toml"\n')
    refused(as_main, [src, "-o", tmp_path / "t.o"], capsys,
            f"{src}:1:8: error: cannot read configuration 'cfg/\\x00.toml': a file name holds no NUL\n"
            'target "cfg/\\x00.toml"\n       ^~~~~~~~~~~~\n', tmp_path / "t.o")
    refused(as_main, [str(src) + "\0", "-o", tmp_path / "t.o"], capsys,
            f"{src}\\x00: error: cannot read '{src}\\x00': a file name holds no NUL\n", tmp_path / "t.o")
    refused(as_main, [src, "--config", "x\0.toml"], capsys,
            "error: cannot read configuration 'x\\x00.toml': a file name holds no NUL\n")
    refused(as_main, [VADD, "-o", tmp_path / "o\0.o"], capsys,
            f"{tmp_path}/o\\x00.o: error: cannot write '{tmp_path}/o\\x00.o': a file name holds no NUL\n")
    assert os.listdir(tmp_path) == ["t.lpu"]


def test_a_configuration_that_is_not_utf8_is_a_diagnostic(tmp_path, capsys):
    (tmp_path / "bad.toml").write_bytes(b"\xff\xfe")
    src = tmp_path / "t.lpu"
    src.write_text(f'target "{tmp_path}/bad.toml"\n')
    refused(as_main, [src, "-o", tmp_path / "t.o"], capsys,
            f"{src}:1:8: error: configuration '{tmp_path}/bad.toml' is not UTF-8 text (invalid start byte at byte "
            f"0)\ntarget \"{tmp_path}/bad.toml\"\n       ^{'~' * (len(str(tmp_path)) + 10)}\n", tmp_path / "t.o")


def test_a_file_name_that_is_not_utf8_goes_through_every_tool(tmp_path, capsys):
    src = os.fsdecode(bytes(tmp_path / "v") + b"\xff.lpu")
    with open(VADD, encoding="utf-8") as f, open(src, "w", encoding="utf-8") as g:
        g.write(f.read().replace('"vadd_', f'"{os.path.dirname(VADD)}/vadd_'))
    assert run(as_main, [src, "-o", tmp_path / "v.o"], capsys) == (0, "")  # UnicodeEncodeError
    assert run(ld_main, [tmp_path / "v.o", "-o", tmp_path / "v.lpx"], capsys) == (0, "")
    assert run(objdump_main, ["-d", tmp_path / "v.lpx", "-o", tmp_path / "v.txt"], capsys) == (0, "")
    assert f'loc("{tmp_path}/v\\udcff.lpu":16:3)' in (tmp_path / "v.txt").read_text()


# --- nesting ------------------------------------------------------------------------------------------
def test_a_list_nested_a_thousand_deep_is_read_without_recursion(tmp_path, capsys):
    """RecursionError in the assembler (and in the dataflow front end) on a list initializer
    nested 1,000 deep; it is a list like any other."""
    deep = tmp_path / "deep.lpu"
    flat = tmp_path / "flat.lpu"
    head = 'target "lpu-v1"\ndata @a : tensor<2xi8> in MEM_W0 = '
    deep.write_text(head + "[" * 1000 + "1, 2" + "]" * 1000 + "\n")
    flat.write_text(head + "[1, 2]\n")
    assert run(as_main, [deep, "-o", tmp_path / "deep.o"], capsys) == (0, "")
    assert run(as_main, [flat, "-o", tmp_path / "flat.o"], capsys) == (0, "")
    assert read_object((tmp_path / "deep.o").read_bytes()).sram == read_object((tmp_path / "flat.o").read_bytes()).sram
    deep.write_text(head + "[" * 1000 + "1" + "]" * 1000 + "\n")
    refused(as_main, [deep, "-o", tmp_path / "x.o"], capsys,
            f"{deep}:2:36: error: @a has 2 elements, but 1 values are given\n{head[16:]}{'[' * 1000}1{']' * 1000}\n"
            f"{' ' * 35}^{'~' * 2000}\n", tmp_path / "x.o")
    func = "func @main(%x: tensor<2xi8>) -> tensor<2xi8> {\n  %c = get @a : tensor<2xi8>\n  %y = add %x, %c\n" \
           "  return %y\n}\n"
    df = tmp_path / "df.lpu"
    df.write_text('target "lpu-v1"\ndata @a : tensor<2xi8> = ' + "[" * 1000 + "1, 2" + "]" * 1000 + "\n" + func)
    assert run(opt_main, [df, "-o", tmp_path / "df.out"], capsys) == (0, "")
    assert "data @a : tensor<2xi8> = [1, 2]" in (tmp_path / "df.out").read_text()


def test_loops_nested_past_the_limit_are_a_diagnostic(tmp_path, capsys):
    """1,000 nested loops raised RecursionError in the verifier; real programs nest a few."""
    lines = ["func @main(%x: tensor<2xi8>) -> tensor<2xi8> {"]
    lines += [f"for %i{d} = 0 to 2 {{" for d in range(1000)] + ["yield", "}"] * 1000 + ["return %x", "}"]
    src = tmp_path / "loops.lpu"
    src.write_text('target "lpu-v1"\n' + "\n".join(lines) + "\n")
    refused(opt_main, [src, "-o", tmp_path / "out.lpu"], capsys,
            f"{src}:35:5: error: loops nest at most 32 deep\nfor %i32 = 0 to 2 {{\n    ^~~~\n", tmp_path / "out.lpu")
    lines = lines[:1] + [f"for %i{d} = 0 to 2 {{" for d in range(32)] + ["yield", "}"] * 32 + ["return %x", "}"]
    src.write_text('target "lpu-v1"\n' + "\n".join(lines) + "\n")
    assert run(opt_main, [src, "-o", tmp_path / "out.lpu"], capsys) == (0, "")


def test_tensors_have_at_most_eight_dimensions(tmp_path, capsys):
    """A rank-9 tensor assembled and linked, and the image reader refused the image; rank 70
    raised ValueError from numpy (64 at most) in the assembler and the compiler."""
    t = "tensor<" + "1x" * 9 + "i8>"
    src = tmp_path / "r.lpu"
    src.write_text(f'target "lpu-v1"\nreserve @a : {t} in MEM_W0\n')
    refused(as_main, [src, "-o", tmp_path / "r.o"], capsys,
            f"{src}:2:14: error: a tensor has at most 8 dimensions, not 9\nreserve @a : {t} in MEM_W0\n"
            f"             ^{'~' * (len(t) - 1)}\n", tmp_path / "r.o")
    t = "tensor<" + "1x" * 70 + "i8>"
    src.write_text(f'target "lpu-v1"\nfunc @main(%x: {t}) -> {t} {{\n  return %x\n}}\n')
    rc, err = run(lpu_main, ["compile", src, "-o", tmp_path / "r.lpx"], capsys)
    assert rc == 1 and err.startswith(f"{src}:2:16: error: a tensor has at most 8 dimensions, not 70\n")
    assert not (tmp_path / "r.lpx").exists()


# --- .npy inputs ---------------------------------------------------------------------------------------
def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def with_header(data: bytes, header: str) -> bytes:
    """A version 1.0 .npy file of ``data``'s contents under another header text."""
    size = int.from_bytes(data[8:10], "little")
    return data[:8] + len(header).to_bytes(2, "little") + header.encode("latin-1") + data[10 + size:]


X = npy(np.arange(320, dtype=np.int8))
NPY_DAMAGE = [  # (bytes, what numpy raised or "" when it read them, the message)
    (with_header(X, "{'descr': '|i1', 'fortran_order': False, 'shape': (32"), "TokenError",
     "its header is not a dictionary"),  # cut inside its dict
    (with_header(X, "{'descr': '|i1', 'fortran_order': False, 'shape': (100000000000000000000,), }\n"),
     "OverflowError", "its header announces 100000000000000000000 elements of |i1 (100000000000000000000 bytes), but "
     "the file holds 320 bytes of data"),
    (with_header(X, "{'descr': '|i1', 'fortran_order': False, 'shape': (10000000000, 10000000000), }\n"),
     "MemoryError", "its header announces 100000000000000000000 elements of |i1 (100000000000000000000 bytes), but "
     "the file holds 320 bytes of data"),
    (with_header(X, "{'descr': ',', 'fortran_order': False, 'shape': (320,), }\n"), "SyntaxError",
     "its header's 'descr' ',' is not a numpy element type"),
    (with_header(X, "{'descr': '<q9', 'fortran_order': False, 'shape': (320,), }\n"), "ValueError",
     "its header's 'descr' '<q9' is not a numpy element type"),
    (with_header(X, "{'descr': 'i1,', 'fortran_order': False, 'shape': (320,), }\n"), "",
     "its element type 'i1,' is not a plain one"),
    (with_header(X, "{'descr': '|i1\", 'fortran_order': False, 'shape': (320,), }\n"), "ValueError",
     "its header is not a dictionary"),
    (with_header(X, "{'descr': '|O', 'fortran_order': False, 'shape': (320,), }\n"), "ValueError",
     "it holds Python objects (a pickle), which are refused"),
    (with_header(X, "{'descr': [('a', '|i1')], 'fortran_order': False, 'shape': (320,), }\n"), "",
     "its header's 'descr' is not a plain element type (structured arrays are not read)"),
    (with_header(X, "{'descr': '|i1', 'fortran_order': 0, 'shape': (320,), }\n"), "ValueError",
     "its header's 'fortran_order' is not True or False"),
    (with_header(X, "{'descr': '|i1', 'shape': (320,), }\n"), "ValueError",
     "its header has the keys ['descr', 'shape'], not ['descr', 'fortran_order', 'shape']"),
    (with_header(X, "{'descr': '|i2', 'fortran_order': False, 'shape': (160,), 'descr': '|i1'}\n"), "",
     "its header has the keys ['descr', 'fortran_order', 'shape'], not ['descr', 'fortran_order', 'shape']"),
    (with_header(X, "{'descr': '|i1', 'fortran_order': False, 'shape': (-1,), }\n"), "ValueError",
     "its header's 'shape' is not a tuple of sizes"),
    (X[:60], "ValueError", "its header is cut short (50 of 118 bytes)"),
    (X[:200], "ValueError", "its header announces 320 elements of |i1 (320 bytes), but the file holds 72 bytes of data"),
    (X + b"\0", "", "its header announces 320 elements of |i1 (320 bytes), but the file holds 321 bytes of data"),
    (X[:8], "ValueError", "its header is cut short"),
    (b"\x93NUMPY\x09\x00" + X[8:], "ValueError", "format version 9.0 (this tool reads 1.0, 2.0 and 3.0)"),
    (b"PK\x03\x04" + X, "BadZipFile", "not a .npy file (an .npz archive holds several arrays)"),
    (b"hello", "ValueError", "not a .npy file (it does not start with \\x93NUMPY)"),
]


def _numpy_raises(data: bytes) -> str:
    try:
        np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - which exception numpy lets out is what is recorded
        return type(e).__name__
    return ""


@pytest.mark.parametrize("data, numpy_raised, why", NPY_DAMAGE, ids=[f"{i}-{d[1]}" for i, d in enumerate(NPY_DAMAGE)])
def test_a_damaged_npy_input_is_one_diagnostic(data, numpy_raised, why, tmp_path, capsys):
    """TokenError, OverflowError and SyntaxError escaped np.load in lpu-sim --input; the header is
    read here, each field checked, before numpy sees the data."""
    assert _numpy_raises(data) == numpy_raised  # what the tools used to let through (or mis-report)
    (tmp_path / "x.npy").write_bytes(data)
    x = tmp_path / "x.npy"
    image = tmp_path / "vadd.lpx"
    image.write_bytes(write_image(link_objects([("vadd", vadd())])))
    refused(sim_main, [image, "--input", f"a={x}", "--output", f"sum={tmp_path / 'y.npy'}", "--stats", "none"],
            capsys, f"{x}: error: cannot load '{x}': {why}\n", tmp_path / "y.npy")
    src = tmp_path / "t.lpu"  # the assembler's load("...")
    src.write_text('target "lpu-v1"\ndata @a : tensor<320xi8> in MEM_W0 = load("x.npy")\n')
    refused(as_main, [src, "-o", tmp_path / "t.o"], capsys,
            f"{src}:2:43: error: cannot load 'x.npy': {why}\ndata @a : tensor<320xi8> in MEM_W0 = load(\"x.npy\")\n"
            f"{' ' * 42}^~~~~~~\n", tmp_path / "t.o")
    func = tmp_path / "f.lpu"  # lpu run's --input
    func.write_text('target "lpu-v1"\nfunc @main(%x: tensor<320xi8>) -> tensor<320xi8> {\n  return %x\n}\n')
    refused(lpu_main, ["run", "--reference", func, "--input", f"x={x}", "--output", f"y={tmp_path / 'y.npy'}"],
            capsys, f"{x}: error: cannot load '{x}': {why}\n", tmp_path / "y.npy")


def test_npy_files_numpy_writes_read_back_exactly(tmp_path):
    """The reader is numpy's format, not a subset of what np.save writes: every element type
    of the machine, Fortran order, scalars, empty arrays, versions 1.0 to 3.0."""
    import ml_dtypes

    from lpu.files import parse_npy

    arrays = [np.arange(6, dtype=t).reshape(2, 3) for t in (np.int8, np.int16, np.int32, np.float16, np.float32)]
    arrays += [np.zeros((2, 3), ml_dtypes.bfloat16), np.asfortranarray(np.arange(12.0).reshape(3, 4)),
               np.float32(2.5), np.zeros((0, 4), np.int8), np.array([True, False])]
    for a in arrays:
        got = parse_npy(npy(a))
        want = np.load(io.BytesIO(npy(a)))
        assert (got.dtype, got.shape, got.tobytes()) == (want.dtype, want.shape, want.tobytes())
    from numpy.lib import format as npf

    for version in ((1, 0), (2, 0), (3, 0)):
        buf = io.BytesIO()
        npf.write_array(buf, arrays[1], version=version)
        assert parse_npy(buf.getvalue()).tolist() == arrays[1].tolist()


# --- line breaks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("brk", ["\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x0b"])
def test_diagnostics_show_the_line_the_lexer_counted(brk, tmp_path, capsys):
    """The lexers end lines at '\\n' only; the diagnostic printer split at form feeds and every
    other line break str.splitlines knows, and showed the wrong line under every later error."""
    src = tmp_path / "t.lpu"
    src.write_text(f'target "lpu-v1"\n// a {brk} in a comment\nkernel @k {{\n  @0 MEM_W0 bogus.i8 [0], s0e\n}}\n',
                   newline="")
    refused(as_main, [src, "-o", tmp_path / "t.o"], capsys,
            f"{src}:4:13: error: unknown mnemonic 'bogus.i8'\n  @0 MEM_W0 bogus.i8 [0], s0e\n            ^~~~~~~~\n",
            tmp_path / "t.o")
