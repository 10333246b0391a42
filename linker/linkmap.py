"""The link map (``lpu-ld -Map FILE``): where everything went, like ``ld -Map``.

Plain text in aligned columns: the chips and phases, the links, then per chip its kernels
(first cycle, length), SRAM sections (slice, address, size, the object and what it asked for),
symbols (final address) and queues; last, every C2C transfer with its cycles.
"""

from __future__ import annotations

from lpu.asm.printer import tensor_type
from lpu.asm.words import timing
from lpu.linker.link import LinkResult


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def link_map(res: LinkResult, output: str = "") -> str:
    img = res.image
    out = [f"LPU link map{' of ' + output if output else ''}: {len(img.chips)} chip"
           f"{'s' if len(img.chips) != 1 else ''}, {len(img.links)} link{'s' if len(img.links) != 1 else ''}", ""]
    out.append("Chips")
    rows = [["chip", "configuration", "cycles", "objects"]]
    for c in img.chips:
        objs = [o.name for o in res.objects if o.chip == c.name]
        rows.append([c.name, _cfg_name(c), str(c.length), ", ".join(objs) or "-"])
    out += _table(rows) + ["", "Phases"]
    rows = [["phase", "start", "objects"]]
    for p, start in enumerate(res.phase_starts):
        rows.append([str(p), str(start), ", ".join(f"{o.name} ({o.chip})" for o in res.objects if o.phase == p) or "-"])
    out += _table(rows) + ["", "Links"]
    if img.links:
        out += _table([[f"{w.chip_a}.L{w.link_a}", "<->", f"{w.chip_b}.L{w.link_b}", f"latency {w.latency}"]
                       for w in img.links])
    else:
        out.append("  none")
    for c in img.chips:
        out += ["", f"Chip {c.name}", "  Kernels"]
        rows = [["start", "cycles", "phase", "kernel"]]
        rows += [[str(p.start), str(p.length), str(p.phase), p.name] for p in c.phases]
        out += _table(rows, "    ") + ["  SRAM sections"]
        placed = sorted(res.placements.get(c.name, []), key=lambda p: (p.slice, p.address))
        if placed:
            rows = [["slice", "address", "words", "bytes", "section", "object", "asked for"]]
            for p in placed:
                s = p.section
                rows.append([p.slice, str(p.address), str(s.words), str(len(s.image) if s.image is not None else 0),
                             s.section_name, p.object, str(s.placement)])
            out += _table(rows, "    ")
        else:
            out.append("    none")
        out.append("  Symbols")
        if c.symbols:
            rows = [["slice", "address", "words", "bind", "type", "symbol"]]
            for s in sorted(c.symbols, key=lambda s: (s.slice, s.address)):
                rows.append([s.slice, str(s.address), str(s.words), "global" if s.is_global else "local",
                             tensor_type(s.shape, s.dtype), s.name + ("" if s.is_global else f" ({s.object})")])
            out += _table(rows, "    ")
        else:
            out.append("    none")
        out.append("  Queues")
        if c.queues:
            rows = [["queue", "words", "cycles"]]
            rows += [[q.queue, str(len(q.words)), str(timing(q.words).end)] for q in c.queues]
            out += _table(rows, "    ")
        else:
            out.append("    none")
    out += ["", "C2C transfers"]
    if res.pairs:
        rows = [["from", "send", "link busy", "to", "lands", "recv"]]
        for p in res.pairs:
            s, r = p.send, p.recv
            rows.append([f"{s.chip}.L{s.link}", f"@{s.cycle}", f"{s.cycle}-{s.cycle + s.busy - 1}",
                         f"{r.chip}.L{r.link}", f"@{p.arrival}", f"@{r.cycle}"])
        out += _table(rows)
    else:
        out.append("  none")
    return "\n".join(out) + "\n"


def _cfg_name(chip) -> str:
    from lpu.arch.config import config_from_text

    return config_from_text(chip.config_text, chip.config_source).name
