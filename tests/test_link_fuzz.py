"""Property tests: random objects link without overlapping SRAM and with every relocation on its
symbol; damaged objects and images give one clear diagnostic, never a traceback or a hang."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpu.arch.config import load_config
from lpu.arch.isa import BY_MNEMONIC, decode, encode
from lpu.asm.objfile import R_LPU_SRAM, KernelInfo, ObjectFile, QueueCode, Reloc, SramSection, write_object
from lpu.asm.records import Placement
from lpu.diagnostics import DiagnosticError
from lpu.linker.cli import load_object
from lpu.linker.imagefile import read_image, write_image
from lpu.linker.link import link_objects
from lpu.linker.system import load_system
from test_link import EXAMPLES, example_obj

import numpy as np

CFG = load_config("lpu-v1")
MEM = [s.name for s in CFG.mem_slices]
READ = BY_MNEMONIC["read"]

section = st.tuples(
    st.sampled_from(["i8", "i16", "i32"]),
    st.integers(1, 3000),  # vectors
    st.one_of(st.tuples(st.just("slice"), st.sampled_from(MEM[:4] + MEM[44:48])),
              st.tuples(st.just("hemi"), st.sampled_from("WE")),
              st.tuples(st.just("at"), st.sampled_from(MEM[:4]), st.integers(0, 8191))),
)


def make_object(k: int, sections) -> ObjectFile:
    obj = ObjectFile(CFG.text, CFG.source)
    words = []
    relocs = []
    queue = None
    for i, (dtype, vectors, where) in enumerate(sections):
        w = {"i8": 1, "i16": 2, "i32": 4}[dtype]
        n = min(vectors * w, 8192 // w * w)
        if where[0] == "slice":
            pl = Placement(where[1])
        elif where[0] == "hemi":
            pl = Placement(None, where[1])
        else:
            pl = Placement(where[1], None, min(where[2], 8192 - n))
        obj.sram.append(SramSection(f"s{k}_{i}", dtype, (n // w * 320,), pl, n, None, True))
    # one object's reads, all on one queue: each at the slice of a section with a fixed slice
    fixed = [s for s in obj.sram if s.placement.slice is not None]
    if fixed:
        queue = fixed[0].placement.slice
        for s in fixed:
            if s.placement.slice == queue:
                relocs.append(Reloc(len(words), R_LPU_SRAM, s.symbol, s.words - {"i8": 1, "i16": 2, "i32": 4}[s.dtype]))
                words.append(encode(READ, s.dtype, None, (0, 0, 0)))
    if words:
        obj.code.append(QueueCode("k", queue, np.array(words, dtype=np.uint64),
                                  np.zeros((len(words), 3), dtype=np.uint32), relocs))
    obj.kernels.append(KernelInfo(f"k{k}", len(words) + 4 if words else 0))  # a read: at most 4 cycles
    obj.code = [QueueCode(f"k{k}", c.queue, c.words, c.lines, c.relocs) for c in obj.code]
    return obj


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(section, min_size=0, max_size=5), min_size=1, max_size=4))
def test_random_sections_never_overlap_and_relocations_land(objects):
    objs = [make_object(k, secs) for k, secs in enumerate(objects)]
    try:
        res = link_objects([(f"o{k}", o) for k, o in enumerate(objs)], phases=None)
    except DiagnosticError as e:
        # the only errors random sections can cause: overflow, overlap of fixed addresses, or two
        # objects on one queue
        for d in e.diagnostics:
            assert ("overflows" in d.message or "overlap" in d.message or "both use queue" in d.message), d.message
        return
    chip = res.chip("chip0")
    by_slice: dict[str, list[tuple[int, int]]] = {}
    for s in chip.symbols:
        assert 0 <= s.address and s.address + s.words <= CFG.words
        by_slice.setdefault(s.slice, []).append((s.address, s.address + s.words))
        if s.dtype != "i8":
            want = {"i16": 2, "i32": 4}[s.dtype]
            sec = next(x for o in objs for x in o.sram if x.symbol == s.name)
            if sec.placement.address is None:
                assert s.address % want == 0  # aligned to the element width
    for spans in by_slice.values():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    # every read lands on the last vector of its symbol (the addend we gave)
    where = {s.name: s for s in chip.symbols}
    for o in objs:
        for c in o.code:
            q = next(q for q in chip.queues if q.queue == c.queue)
            real = [int(w) for w in q.words if decode(int(w))[0].mnemonic == "read"]
            for r, word in zip(c.relocs, real):
                s = where[r.symbol]
                _spec, dtype, _d2, fields = decode(word)
                assert s.slice == c.queue and fields[0] == s.address + r.addend


def _pingpong():
    sys_ = load_system(os.path.join(EXAMPLES, "pingpong", "system.toml"))
    return link_objects([example_obj("pingpong", "ping"), example_obj("pingpong", "pong")], sys_)


OBJ = write_object(example_obj("pipeline", "producer")[1])
IMAGE = write_image(_pingpong())


def _damaged(data: bytes, flips, cut):
    b = bytearray(data)
    for pos, val in flips:
        b[pos % len(b)] ^= val
    return bytes(b[:cut]) if cut is not None else bytes(b)


damage = st.tuples(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 255)), max_size=4),
                   st.one_of(st.none(), st.integers(0, 1 << 20)))


@settings(max_examples=300, deadline=None)
@given(damage)
def test_damaged_objects_are_diagnostics(d):
    flips, cut = d
    data = _damaged(OBJ, flips, None if cut is None else cut % (len(OBJ) + 1))
    try:
        o = load_object(data, "p.o")
    except DiagnosticError as e:
        assert e.diagnostics[0].message.startswith("'p.o' is not a valid LPU object: ")
        return
    try:  # what reads back must link or be refused with diagnostics
        link_objects([("producer", o)])
    except DiagnosticError:
        pass


@settings(max_examples=300, deadline=None)
@given(damage)
def test_damaged_images_are_diagnostics(d):
    flips, cut = d
    data = _damaged(IMAGE, flips, None if cut is None else cut % (len(IMAGE) + 1))
    if data == IMAGE:
        return
    try:
        read_image(data, "pp.lpx")
    except DiagnosticError as e:
        assert e.diagnostics[0].message.startswith("'pp.lpx' is not a valid LPU system image: ")
        return
    # undetected damage is possible only in ELF header fields nothing reads (e.g. alignment)


def test_truncations_of_an_image_all_fail_cleanly():
    for cut in range(0, len(IMAGE), 97):
        try:
            read_image(IMAGE[:cut], "pp.lpx")
        except DiagnosticError as e:
            assert "is not a valid LPU system image" in e.diagnostics[0].message
        else:
            raise AssertionError(f"a cut at {cut} was accepted")
