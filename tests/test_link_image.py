"""SRAM layout, phases, images (write/read, readelf, objdump), the link map, lpu-ld, examples."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from lpu.asm.objfile import write_object
from lpu.linker.cli import main as ld_main
from lpu.linker.imagefile import read_image, write_image
from lpu.linker.link import link, link_objects
from lpu.linker.linkmap import link_map
from lpu.linker.system import load_system
from test_link import EXAMPLES, errors, example_obj, obj, queue_text


def reserve(name: str, where: str, words: int, dtype: str = "i8", glob: bool = False) -> str:
    elems = words // {"i8": 1, "i16": 2, "i32": 4}[dtype] * 320
    return f"{'global ' if glob else ''}reserve @{name} : tensor<{elems}x{dtype}> in {where}\n"


def test_layout_fixed_slice_hemisphere_alignment():
    a = obj(reserve("x", "MEM_W3 at 10", 5) + reserve("y", "MEM_W3", 3) + reserve("z", "MEM_W3", 4, "i32")
            + reserve("h", "MEM_E", 8000) + reserve("g", "MEM_E", 8000, "i16"))
    img = link_objects([("a", a)])
    got = {s.name: (s.slice, s.address) for s in img.chip("chip0").symbols}
    # fixed address first; then first fit: y in 0..2, z (i32: aligned to 4) at 4 (5..9 is free but
    # 4+4 > 10? no: 4..7 fits before x at 10); hemisphere: h in MEM_E0, g does not fit there -> MEM_E1
    assert got == {"x": ("MEM_W3", 10), "y": ("MEM_W3", 0), "z": ("MEM_W3", 4), "h": ("MEM_E0", 0),
                   "g": ("MEM_E1", 0)}


def test_layout_overflow_and_overlap_errors():
    a = obj(reserve("a1", "MEM_W3", 6000))
    b = obj(reserve("big", "MEM_W3", 5000), "b.lpu")
    assert errors(link_objects, [("a", a), ("b", b)]) == [
        "error: SRAM slice MEM_W3 of chip 'chip0' overflows: @big (object 'b', 5000 words) does not fit; the slice "
        "holds 8192 words, 6000 of them used\nnote: MEM_W3 words 0-5999: @a1 (object 'a', 6000 words)"]
    c = obj(reserve("c1", "MEM_W3 at 100", 10), "c.lpu")
    d = obj(reserve("d1", "MEM_W3 at 105", 10), "d.lpu")
    assert errors(link_objects, [("c", c), ("d", d)]) == [
        "error: SRAM sections overlap in MEM_W3 of chip 'chip0': @d1 (object 'd', 10 words) at words 105-114 and "
        "@c1 (object 'c', 10 words) at words 100-109"]
    full = [obj(reserve(f"w{i}", "MEM_W", 8000), f"w{i}.lpu") for i in range(45)]
    msgs = errors(link_objects, [(f"w{i}", o) for i, o in enumerate(full)])
    assert msgs == ["error: SRAM hemisphere MEM_W of chip 'chip0' overflows: no slice has room for @w44 (object "
                    "'w44', 8000 words); each slice holds 8192 words, the largest free range is 192 words in MEM_W0"
                    "\nnote: MEM_W0 words 0-7999: @w0 (object 'w0', 8000 words)"]


def test_symbol_errors():
    user = obj("extern @t\nextern @u\nglobal kernel @k {\n  @0 MEM_W3 read.i8 [@t], s0e\n  @1 MEM_W3 read.i8 [@u], s0e\n}\n",
               "user.lpu")
    other = obj("extern @t\nglobal kernel @k2 {\n  @0 MEM_W4 read.i8 [@t + 0], s0e\n}\n", "other.lpu")
    assert errors(link_objects, [("user", user), ("other", other)]) == [
        "user.lpu:5:3: error: undefined symbol '@t' on chip 'chip0', referenced from objects 'user', 'other'\n"
        "other.lpu:4:3: note: also referenced from object 'other' here",
        "user.lpu:6:3: error: undefined symbol '@u' on chip 'chip0', referenced from object 'user'"]
    d1 = obj(reserve("t", "MEM_W3", 1, glob=True), "d1.lpu")
    d2 = obj(reserve("t", "MEM_W5", 1, glob=True), "d2.lpu")
    u = obj("extern @t\nglobal kernel @k {\n  @0 MEM_W3 read.i8 [@t], s0e\n}\n", "u.lpu")
    assert errors(link_objects, [("d1", d1), ("d2", d2), ("u", u)]) == [
        "error: duplicate symbol '@t' on chip 'chip0': defined as global in objects 'd1', 'd2'\n"
        "d1.lpu:2:16: note: defined in object 'd1' here\n"
        "d2.lpu:2:16: note: defined in object 'd2' here\n"
        "u.lpu:4:3: note: referenced from object 'u' here"]
    # a symbol in another slice than the instruction's, and one only local elsewhere
    wrong = obj("extern @t\nglobal kernel @k {\n  @0 MEM_W4 read.i8 [@t], s0e\n}\n", "wrong.lpu")
    assert errors(link_objects, [("d1", d1), ("wrong", wrong)]) == [
        "wrong.lpu:4:3: error: '@t' is placed in MEM_W3 of chip 'chip0', but this instruction runs on MEM_W4; a MEM "
        "instruction addresses its own slice"]
    loc = obj(reserve("t", "MEM_W3", 1), "loc.lpu")
    assert errors(link_objects, [("loc", loc), ("wrong", wrong)])[0].endswith(
        "note: object 'loc' defines a local '@t'; declare it 'global' there to share it")


def test_phases_relocate_cycles_and_conflicts():
    a = obj(reserve("x", "MEM_W3", 1) + "global kernel @ka {\n  @0 MEM_W3 read.i8 [@x], s0e\n  @9 MEM_W3 read.i8 [@x], s0e\n}\n")
    b = obj(reserve("y", "MEM_W3", 1) + "global kernel @kb {\n  @2 MEM_W3 read.i8 [@y], s0e\n}\n", "b.lpu")
    img = link_objects([("a", a)], phases=[[("b", b)]])
    assert queue_text(img, "chip0") == ["@0     MEM_W3  read.i8 [0], s0e", "@9     MEM_W3  read.i8 [0], s0e",
                                        "@14    MEM_W3  read.i8 [1], s0e"]  # b starts at a's length, 12
    assert errors(link_objects, [("a", a), ("b", b)]) == [
        "error: objects 'a' and 'b' both use queue MEM_W3 of chip 'chip0' in phase 0; objects of one phase run side "
        "by side and need queues of their own"]
    short = obj(reserve("x", "MEM_W3", 1) + "global kernel @ka {\n  @0 MEM_W3 read.i8 [@x], s0e\n}\n", "s.lpu")
    short.kernels[0].length = 2  # a read lands at cycle 2: the kernel must last 3 cycles
    assert errors(link_objects, [("s", short)], phases=[[("b", b)]]) == [
        "s.lpu:4:3: error: queue MEM_W3 of kernel 'ka' (object 's') is busy until cycle 3, after the kernel ends at "
        "cycle 2 (2 cycles): the next kernel or phase would start while it is in flight, and its value would be lost"]


def test_assignment_and_config_errors(tmp_path):
    sys_ = load_system(os.path.join(EXAMPLES, "pingpong", "system.toml"))
    ping, pong = example_obj("pingpong", "ping"), example_obj("pingpong", "pong")
    stray = ("stray", obj(reserve("q", "MEM_W3", 1), "stray.lpu"))
    src = sys_.source
    assert errors(link_objects, [ping, pong, stray], sys_) == [
        f"error: object 'stray' runs on no chip: {src} assigns it to none (chips: ping, pong); list it in a chip's "
        "'objects', or name a chip after it"]
    assert errors(link_objects, [ping], sys_) == [
        f"{src}:12:2: error: {src} puts object 'pong' on chip 'pong', but no input is named 'pong'"]
    assert errors(link_objects, [ping, ping, pong], sys_)[0] == \
        "error: object 'ping' is given twice (objects are named by their file stem)"


def test_image_roundtrip_objdump_readelf_and_map(tmp_path):
    sys_ = load_system(os.path.join(EXAMPLES, "pingpong", "system.toml"))
    res = link([example_obj("pingpong", "ping"), example_obj("pingpong", "pong")], sys_)
    data = write_image(res.image)
    assert write_image(read_image(data, "x.lpx")) == data  # read/write is exact, and deterministic
    back = read_image(data, "x.lpx")
    for c1, c2 in zip(res.image.chips, back.chips):
        assert [(q.queue, q.words.tolist(), q.lines.tolist()) for q in c1.queues] == \
            [(q.queue, q.words.tolist(), q.lines.tolist()) for q in c2.queues]
        assert (c1.symbols, c1.phases, c1.files, c1.length, c1.config_text) == \
            (c2.symbols, c2.phases, c2.files, c2.length, c2.config_text)
        assert [(s.slice, s.address, s.data) for s in c1.sram] == [(s.slice, s.address, s.data) for s in c2.sram]
    assert back.links == res.image.links
    text = link_map(res, "pp.lpx")
    assert "    slice    address  words  bytes  section        object  asked for\n" \
           "    MEM_E43  0        1      320    .lpu.sram.msg  ping    MEM_E43\n" in text
    assert "  ping.L8  @5    5-14       pong.L0  @215   @215\n" in text
    image = tmp_path / "pp.lpx"
    image.write_bytes(data)
    if shutil.which("readelf"):
        out = subprocess.run(["readelf", "-h", "-S", "-s", str(image)], capture_output=True, text=True).stdout
        assert "EXEC (Executable file)" in out and ".lpu.chip.ping" in out and "pong:got" in out
    from lpu.asm.objdump import main as objdump_main
    out = tmp_path / "d.txt"
    assert objdump_main(["-d", "--no-loc", "--chip", "pong", str(image), "-o", str(out)]) == 0
    assert out.read_text().splitlines()[-4:] == ["global kernel @pong {  // 221 cycles",
                                                  "  @215   C2C_W   recv.i8 L0, s0e",
                                                  "  @220   MEM_W43 write.i8 [0], s0e", "}"]


def test_lpu_ld_command_line(tmp_path, capsys):
    objs = []
    for stem in ("producer", "consumer"):
        _n, o = example_obj("pipeline", stem)
        p = tmp_path / f"{stem}.o"
        p.write_bytes(write_object(o))
        objs.append(str(p))
    system = os.path.join(EXAMPLES, "pipeline", "system.toml")
    out, mp = tmp_path / "pl.lpx", tmp_path / "pl.map"
    assert ld_main(["--system", system, *objs, "-o", str(out), "-Map", str(mp)]) == 0
    img = read_image(out.read_bytes(), str(out))
    assert [c.name for c in img.chips] == ["chip0", "chip1"] and img.chip("chip1").length == 318
    assert mp.read_text().startswith(f"LPU link map of {out}: 2 chips, 8 links\n")
    # without a system file: one chip, and the peer is unknown
    assert ld_main([objs[0], "-o", str(tmp_path / "x.lpx")]) == 1
    err = capsys.readouterr().err
    assert "error: unknown peer chip '@chip1' (the system's chips: chip0)" in err and "Traceback" not in err
    assert not (tmp_path / "x.lpx").exists()
    bad = tmp_path / "bad.o"
    bad.write_bytes(b"\x7fELF" + b"\0" * 10)
    assert ld_main([str(bad), "-o", str(tmp_path / "y.lpx")]) == 1
    assert capsys.readouterr().err == f"{bad}: error: '{bad}' is not a valid LPU object: not an ELF file\n"


def _run_examples(folder: str, stems: list[str], outputs: list[str]):
    sim = pytest.importorskip("lpu.sim.cli")
    sys_ = load_system(os.path.join(EXAMPLES, folder, "system.toml"))
    image = read_image(write_image(link_objects([example_obj(folder, s) for s in stems], sys_)), folder)
    res = sim.simulate(image, folder, outputs=outputs)
    assert not res.hazards
    return res.outputs


def test_pipeline_example_runs():
    out = _run_examples("pipeline", ["producer", "consumer"], ["y"])
    a, b, c = (np.load(os.path.join(EXAMPLES, "pipeline", f"{n}.npy")) for n in "abc")
    with np.errstate(over="ignore"):
        assert np.array_equal(out["y"], np.maximum((a + b + c).astype(np.int8), 0))


def test_allgather_example_runs():
    out = _run_examples("allgather", [f"chip{i}" for i in range(8)], [f"chip{i}:all" for i in range(8)])
    v = np.stack([np.load(os.path.join(EXAMPLES, "allgather", f"v{i}.npy")) for i in range(8)])
    for i in range(8):
        assert np.array_equal(out[f"chip{i}:all"], v)


def test_pingpong_example_runs():
    out = _run_examples("pingpong", ["ping", "pong"], ["got"])
    assert np.array_equal(out["got"], np.load(os.path.join(EXAMPLES, "pingpong", "msg.npy")))
