"""A linked chip seen as an object, so that ``lpu-objdump`` prints an image with the same
disassembler as an object: one kernel per chip, named after it, every queue from cycle 0,
every SRAM tensor at its final slice and address."""

from __future__ import annotations

from lpu.arch.config import config_from_text
from lpu.asm.objfile import KernelInfo, ObjectFile, QueueCode, SramSection
from lpu.asm.records import Placement
from lpu.linker.image import ChipImage, SystemImage


def chip_object(chip: ChipImage) -> ObjectFile:
    cfg = config_from_text(chip.config_text, chip.config_source)
    obj = ObjectFile(chip.config_text, chip.config_source, list(chip.files))
    obj.op_names = dict(chip.op_names)
    init = {(s.slice, s.address): s.data for s in chip.sram}
    for s in chip.symbols:
        data = init.get((s.slice, s.address))
        if data is not None and len(data) != s.words * cfg.lanes:
            data = None
        obj.sram.append(SramSection(s.name, s.dtype, tuple(s.shape), Placement(s.slice, None, s.address), s.words,
                                    data, s.is_global))
    obj.kernels.append(KernelInfo(chip.name, chip.length, True))
    for q in chip.queues:
        obj.code.append(QueueCode(chip.name, q.queue, q.words, q.lines, []))
    return obj


def chip_objects(img: SystemImage, only: str | None = None) -> list[tuple[str, ObjectFile]]:
    return [(c.name, chip_object(c)) for c in img.chips if only is None or c.name == only]
