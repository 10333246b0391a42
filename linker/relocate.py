"""Relocations: the fields the assembler left for the linker, filled in through the ISA table.

R_LPU_SRAM   addr field  <- the symbol's word address + addend (the symbol must sit in the
                            slice of the queue that addresses it)
R_LPU_TABLE  table field <- slice index (its floor-plan position) << 16 | word address + addend
R_LPU_PEER   link field  <- the lowest link of the queue's C2C slice wired to the peer chip
"""

from __future__ import annotations

from dataclasses import dataclass

from lpu.arch.isa import DTYPE_BYTES, INTS, decode, encode
from lpu.asm.objfile import R_LPU_PEER, R_LPU_SRAM, R_LPU_TABLE, Reloc
from lpu.diagnostics import Diagnostic, SourceLoc, error
from lpu.linker.image import LinkWire
from lpu.linker.sram import Placed

_FIELD_KIND = {R_LPU_SRAM: "addr", R_LPU_TABLE: "table", R_LPU_PEER: "link"}


@dataclass(slots=True)
class Target:
    """What a relocation's symbol resolved to: a placed tensor, or a kernel (an error to use)."""

    placed: Placed | None
    kernel_of: str | None = None  # the object defining a kernel of that name


def peer_link(chip: str, queue, peer: str, wires: list[LinkWire]) -> int | None:
    """The lowest link of ``queue`` (a C2C queue) wired to chip ``peer``."""
    found = [w.link_a for w in wires if w.chip_a == chip and w.chip_b == peer and w.link_a in queue.links]
    found += [w.link_b for w in wires if w.chip_b == chip and w.chip_a == peer and w.link_b in queue.links]
    return min(found) if found else None


def apply(words, idx: int, r: Reloc, *, chip: str, cfg, queue, target: Target | None, chips: list[str],
          wires: list[LinkWire], loc: SourceLoc | None, obj: str) -> Diagnostic | None:
    """Patch word ``idx`` of ``words`` for relocation ``r``; a diagnostic when it cannot be."""
    spec, dtype, dtype2, fields = decode(int(words[idx]))
    kind = _FIELD_KIND.get(r.type)
    j = next((k for k, op in enumerate(spec.operands) if op.kind.name == kind), None)
    if j is None:
        return error(f"object '{obj}': relocation {r.type} on '{spec.mnemonic}', which has no "
                     f"{kind or 'such'} field", loc)
    fields = list(fields)
    if r.type == R_LPU_PEER:
        if r.symbol not in chips:
            return error(f"unknown peer chip '@{r.symbol}' (the system's chips: {', '.join(chips)})", loc)
        link = peer_link(chip, queue, r.symbol, wires)
        if link is None:
            d = error(f"no link of {queue.name} on chip '{chip}' (L{queue.links[0]}-L{queue.links[-1]}) is wired "
                      f"to chip '{r.symbol}'" if queue.links else
                      f"{queue.name} on chip '{chip}' has no links", loc)
            other = sorted({w.link_a for w in wires if w.chip_a == chip and w.chip_b == r.symbol}
                           | {w.link_b for w in wires if w.chip_b == chip and w.chip_a == r.symbol})
            if other:
                where = ", ".join(f"L{l} ({cfg.link_queue[l].name})" for l in other if l in cfg.link_queue)
                d.note(f"chip '{chip}' reaches '{r.symbol}' on {where}")
            return d
        fields[j] = link
    else:
        if target is None or target.placed is None:
            what = f"a kernel (of object '{target.kernel_of}')" if target is not None else "undefined"
            return error(f"'@{r.symbol}' is {what}, not an SRAM tensor", loc)
        p = target.placed
        s = p.section
        if r.type == R_LPU_SRAM:
            if p.slice != queue.slice.name:
                how = "placed" if s.placement.slice else f"placed by the linker (it asked for MEM_{s.placement.hemisphere})"
                return error(f"'@{r.symbol}' is {how} in {p.slice} of chip '{chip}', but this instruction runs on "
                             f"{queue.name}; a MEM instruction addresses its own slice", loc)
            width = DTYPE_BYTES[dtype] if dtype else 1
            if r.addend < 0 or r.addend + width > s.words:
                return error(f"offset {r.addend} is outside '@{r.symbol}' ({s.words} words; a {dtype} vector takes "
                             f"{width})", loc)
            fields[j] = p.address + r.addend
        else:
            if s.dtype not in INTS or _elements(s.shape) < cfg.lanes:
                return error(f"lane map '@{r.symbol}' must be an integer tensor of at least {cfg.lanes} elements, "
                             f"not {'x'.join(map(str, s.shape))}x{s.dtype}", loc)
            if not 0 <= r.addend < s.words:
                return error(f"offset {r.addend} is outside '@{r.symbol}' ({s.words} words)", loc)
            fields[j] = cfg.slice_by_name[p.slice].position << 16 | (p.address + r.addend)
    words[idx] = encode(spec, dtype, dtype2, tuple(fields))
    return None


def _elements(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
