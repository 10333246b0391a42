"""Linker benchmark: 64 objects, 1,000,000 instructions, 256 MiB of SRAM data, 8 chips.

The objects are built in memory (numpy, not assembly text): per chip, 8 objects in 2 phases of
4, each object driving 11 MEM slices of its own with reads and writes of its SRAM tensors
(relocated), nops between them, and 2 MiB data sections (fixed slice, or any slice of a
hemisphere). Prints the link and write times, the peak memory the link and write allocate
(tracemalloc) and its ratio to the image size, and, as a baseline from the same run, the time
to copy the output once.

    python benchmarks/bench_link.py
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np

from lpu.arch.config import load_config
from lpu.arch.isa import BY_MNEMONIC, encode
from lpu.asm.objfile import R_LPU_SRAM, KernelInfo, ObjectFile, QueueCode, Reloc, SramSection
from lpu.asm.records import Placement
from lpu.linker.imagefile import write_image
from lpu.linker.link import link_objects
from lpu.linker.system import load_system

CHIPS, OBJECTS, INSTRUCTIONS = 8, 64, 1_000_000
SRAM_BYTES = 256 << 20


def make_objects(cfg) -> list[tuple[int, str, ObjectFile]]:
    """(phase, name, object) for every object; names chipC_oK run on chip C (by the system file)."""
    per_chip = OBJECTS // CHIPS
    mem = [s.name for s in cfg.mem_slices]
    slices_per_obj = len(mem) // (per_chip // 2)  # objects of one phase need queues of their own
    words_per_queue = INSTRUCTIONS // OBJECTS // slices_per_obj
    section_words = SRAM_BYTES // OBJECTS // 2 // cfg.lanes + 1
    read, write = BY_MNEMONIC["read"], BY_MNEMONIC["write"]
    nop = encode(BY_MNEMONIC["nop"], None, None, (3,))
    read_word = encode(read, "i8", None, (0, 0, 0))
    write_word = encode(write, "i8", None, (0, 0, 0))
    rng = np.random.default_rng(0)
    blob = rng.integers(0, 256, section_words * cfg.lanes, dtype=np.uint8).tobytes()
    out = []
    for c in range(CHIPS):
        for k in range(per_chip):
            phase, slot = divmod(k, per_chip // 2)
            obj = ObjectFile(cfg.text, cfg.source, files=[f"chip{c}_o{k}.lpu"])
            own = mem[slot * slices_per_obj:(slot + 1) * slices_per_obj]
            # the tensor of phase p sits in slice p of the object's range, so phases do not collide
            t_slice, r_slice = own[phase], own[2 + phase]
            obj.sram.append(SramSection(f"t{k}", "i8", (section_words * cfg.lanes,),
                                        Placement(t_slice, None, None), section_words, blob, True))
            obj.sram.append(SramSection(f"h{k}", "i8", (section_words * cfg.lanes,),
                                        Placement(None, "E" if k % 2 else "W", None), section_words, blob, False))
            obj.sram.append(SramSection(f"r{k}", "i8", (320,), Placement(r_slice, None, None), 1, None, False))
            # every queue: read, nop 3, write, nop 3, ... (a transfer every 4 cycles); the reads of
            # the two slices holding the object's tensors are relocated against them
            n = words_per_queue
            words = np.resize(np.array([read_word, nop, write_word, nop], dtype=np.uint64), n)
            lines = np.zeros((n, 3), dtype=np.uint32)
            lines[:, 1] = np.arange(n, dtype=np.uint32) + 1
            lines[:, 2] = 3
            for q in own:
                sym = f"t{k}" if q == t_slice else f"r{k}" if q == r_slice else None
                relocs = [Reloc(int(i), R_LPU_SRAM, sym, 0) for i in range(0, n, 4)] if sym else []
                obj.code.append(QueueCode(f"main{k}", q, words, lines, relocs))
            length = (n + 3) // 4 * 8
            obj.kernels.append(KernelInfo(f"main{k}", length, True))
            out.append((phase, f"chip{c}_o{k}", obj))
    return out


def main() -> None:
    cfg = load_config("lpu-v1")
    t0 = time.perf_counter()
    objects = make_objects(cfg)
    t_gen = time.perf_counter() - t0
    system = load_system("node")
    for c, chip in enumerate(system.chips.values()):
        per = [(p, name) for p, name, _o in objects if name.startswith(f"chip{c}_")]
        chip.phases = [[n for p, n in per if p == 0], [n for p, n in per if p == 1]]
        chip.phases_given = True
    inputs = [(n, o) for p, n, o in objects if p == 0]
    later = [[(n, o) for p, n, o in objects if p == 1]]
    words = sum(len(c.words) for _p, _n, o in objects for c in o.code)
    data = sum(len(s.image) for _p, _n, o in objects for s in o.sram if s.image is not None)

    t0 = time.perf_counter()
    image = link_objects(inputs, system, later)
    t_link = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = write_image(image)
    t_write = time.perf_counter() - t0
    size = len(out)
    del image, out
    # memory in a second run: tracemalloc slows allocation, so it stays out of the timed one
    tracemalloc.start()
    out = write_image(link_objects(inputs, system, later))
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t0 = time.perf_counter()
    copy = bytearray(out)  # baseline: one copy of the output
    t_copy = time.perf_counter() - t0
    del copy

    print(f"link inputs: {len(objects)} objects, {words} instruction words, {data / (1 << 20):.0f} MiB SRAM data, "
          f"{CHIPS} chips")
    print(f"generate objects: {t_gen:.2f} s")
    print(f"link: {t_link:.2f} s")
    print(f"write image: {t_write:.2f} s")
    print(f"link + write: {t_link + t_write:.2f} s")
    print(f"link + write throughput: {words / (t_link + t_write):.0f} instructions/s")
    print(f"image size: {size / (1 << 20):.1f} MiB")
    print(f"peak memory (link + write): {peak / (1 << 20):.1f} MiB")
    print(f"peak memory / image size: {peak / size:.2f}x")
    print(f"copy output once (baseline): {t_copy:.3f} s")
    print(f"link + write / one copy: {(t_link + t_write) / t_copy:.1f}x")


if __name__ == "__main__":
    main()
