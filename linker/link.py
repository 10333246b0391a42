"""The linker: objects and a system description in, one system image out.

``link_objects`` runs the stages in order — assign objects to chips and phases, check their
configurations, time their code, lay out SRAM, resolve symbols, build each queue's program,
apply relocations, pair and check C2C traffic — collecting every error of a stage before
giving up, so one run reports all it can.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from lpu.arch.config import ChipConfig, config_from_text, load_config
from lpu.asm.objfile import R_LPU_PEER, ObjectFile
from lpu.diagnostics import Diagnostic, DiagnosticError, SourceLoc, error
from lpu.linker import c2c
from lpu.linker.code import Segment, build_queue, check_code, word_loc
from lpu.linker.image import ChipImage, LinkWire, PhaseInfo, QueueProgram, SramInit, SymbolInfo, SystemImage
from lpu.linker.relocate import Target, apply
from lpu.linker.sram import Placed, layout
from lpu.linker.system import IMPLICIT_CHIP, SystemDesc, implicit_system

Input = tuple[str, ObjectFile]


@dataclass(slots=True)
class _Obj:
    name: str
    obj: ObjectFile
    phase: int
    chip: str = ""
    cfg: ChipConfig | None = None
    start: int = 0  # its phase's first cycle
    kernel_start: dict[str, int] = field(default_factory=dict)
    length: int = 0  # sum of its kernels' lengths


@dataclass
class LinkResult:
    """The image and what the link map shows about how it was made."""

    image: SystemImage
    system: SystemDesc
    objects: list[_Obj]
    placements: dict[str, list[Placed]]  # chip -> placed SRAM sections
    pairs: list[c2c.Pair]
    phase_starts: list[int]


def link_objects(inputs: Sequence[Input], system: SystemDesc | None = None,
                 phases: Sequence[Sequence[Input]] | None = None) -> SystemImage:
    """Link ``(name, object)`` pairs (name: the file stem) into a system image.

    ``inputs`` are phase 0; each entry of ``phases`` is a further phase that starts when the
    previous one has finished on every chip. Without ``system``, all objects run on one chip.
    Raises ``DiagnosticError`` with every error found."""
    return link(inputs, system, phases).image


def link(inputs: Sequence[Input], system: SystemDesc | None = None,
         phases: Sequence[Sequence[Input]] | None = None) -> LinkResult:
    return _Linker(inputs, system, phases).run()


class _Linker:
    def __init__(self, inputs, system, phases) -> None:
        self.system = system or implicit_system()
        self.implicit = system is None
        self.diags: list[Diagnostic] = []
        self.objs: list[_Obj] = []
        for p, group in enumerate([list(inputs)] + [list(g) for g in (phases or [])]):
            for name, obj in group:
                self.objs.append(_Obj(name, obj, p))

    def fail_if_errors(self) -> None:
        if self.diags:
            raise DiagnosticError(self.diags)

    def run(self) -> LinkResult:
        self.assign()
        self.fail_if_errors()
        self.configs()
        self.fail_if_errors()
        wires = self.wires()
        self.fail_if_errors()
        starts = self.schedule()
        chips = list(self.system.chips)
        segments = {c: self.segments(c) for c in chips}
        placements = {c: self.sram(c) for c in chips}
        targets = {c: self.symbols(c, placements[c]) for c in chips}
        images = {c: self.chip_image(c, segments[c], placements[c], targets[c], wires) for c in chips}
        self.fail_if_errors()
        events = []
        for c in chips:
            cfg = self.cfg_of(c)
            for q in images[c].queues:
                if cfg.queue_by_name[q.queue].kind == "c2c":
                    events += c2c.transfers(c, cfg, q.queue, q.words, q.lines, images[c].files)
        pairs, diags = c2c.check(events, wires, {c: self.cfg_of(c)["c2c.recv_buffer_depth"] for c in chips})
        self.diags += diags
        self.fail_if_errors()
        image = SystemImage([images[c] for c in chips], wires)
        return LinkResult(image, self.system, self.objs, placements, pairs, starts)

    # --- which object runs where ----------------------------------------------------------------
    def assign(self) -> None:
        sys_ = self.system
        where = sys_.chip_of()
        seen: dict[str, _Obj] = {}
        for o in self.objs:
            if o.name in seen:
                self.diags.append(error(f"object '{o.name}' is given twice (objects are named by their file stem)"))
                continue
            seen[o.name] = o
            if o.name in where:
                o.chip, phase = where[o.name]
                if phase is not None:
                    o.phase = phase
            elif o.name in sys_.chips:
                o.chip = o.name
            elif self.implicit:
                o.chip = IMPLICIT_CHIP
            else:
                self.diags.append(error(
                    f"object '{o.name}' runs on no chip: {sys_.source} assigns it to none (chips: "
                    f"{', '.join(sys_.chips)}); list it in a chip's 'objects', or name a chip after it"))
        for name, (chip, _p) in where.items():
            if name not in seen:
                self.diags.append(error(f"{sys_.source} puts object '{name}' on chip '{chip}', but no input is named "
                                        f"'{name}'", sys_.chips[chip].loc))

    def configs(self) -> None:
        self.chip_cfg: dict[str, ChipConfig] = {}
        for o in self.objs:
            try:
                o.cfg = config_from_text(o.obj.config_text, o.obj.config_source or f"<object {o.name}>")
            except DiagnosticError as e:
                self.diags.append(error(f"object '{o.name}' holds an invalid chip configuration")
                                  .note(e.diagnostics[0].message, e.diagnostics[0].loc))
        if self.diags:
            return
        for name, desc in self.system.chips.items():
            objs = [o for o in self.objs if o.chip == name]
            cfg = desc.config or (objs[0].cfg if objs else load_config(None))
            self.chip_cfg[name] = cfg
            for o in objs:
                if o.cfg.values != cfg.values:
                    self.diags.append(error(
                        f"object '{o.name}' was assembled for configuration '{o.cfg.name}' ({o.cfg.source}), but "
                        f"chip '{name}' is '{cfg.name}' ({cfg.source})"))

    def cfg_of(self, chip: str) -> ChipConfig:
        return self.chip_cfg[chip]

    def wires(self) -> list[LinkWire]:
        out = []
        for w in self.system.wires:
            ok = True
            for chip, link in ((w.chip_a, w.link_a), (w.chip_b, w.link_b)):
                cfg = self.cfg_of(chip)
                if link >= cfg.links:
                    self.diags.append(error(f"chip '{chip}' ({cfg.name}) has links L0..L{cfg.links - 1}; there is "
                                            f"no L{link}", w.loc))
                    ok = False
            if ok:
                lat = w.latency if w.latency is not None else self.cfg_of(w.chip_a)["c2c.link_latency"]
                out.append(LinkWire(w.chip_a, w.link_a, w.chip_b, w.link_b, lat))
        return out

    # --- time -----------------------------------------------------------------------------------
    def schedule(self) -> list[int]:
        """Every phase starts on every chip when the previous one has ended on all of them."""
        nphases = max((o.phase for o in self.objs), default=0) + 1
        lengths = [0] * nphases
        for o in self.objs:
            t = 0
            for k in o.obj.kernels:
                o.kernel_start[k.name] = t
                t += k.length
            o.length = t
            lengths[o.phase] = max(lengths[o.phase], t)
        starts = [0] * nphases
        for p in range(1, nphases):
            starts[p] = starts[p - 1] + lengths[p - 1]
        for o in self.objs:
            o.start = starts[o.phase]
        return starts

    def segments(self, chip: str) -> dict[str, list[Segment]]:
        cfg = self.cfg_of(chip)
        self.files = getattr(self, "files", {})
        files: dict[str, int] = self.files.setdefault(chip, {})
        by_queue: dict[str, list[Segment]] = defaultdict(list)
        owner: dict[tuple[int, str], str] = {}  # (phase, queue) -> object using it
        for o in (o for o in self.objs if o.chip == chip):
            timings, diags = check_code(o.obj, o.name, cfg)
            self.diags += diags
            fmap = np.array([files.setdefault(f, len(files)) for f in o.obj.files] or [0], dtype=np.uint32)
            lengths = {k.name: k.length for k in o.obj.kernels}
            for ci, t in timings.items():
                code = o.obj.code[ci]
                other = owner.setdefault((o.phase, code.queue), o.name)
                if other != o.name:
                    self.diags.append(error(
                        f"objects '{other}' and '{o.name}' both use queue {code.queue} of chip '{chip}' in phase "
                        f"{o.phase}; objects of one phase run side by side and need queues of their own"))
                    continue
                kstart = o.start + o.kernel_start[code.kernel]
                klen = lengths[code.kernel]
                if t.end > klen or t.last_effect > klen:
                    late = max(t.end, t.last_effect)
                    loc = word_loc(o.obj.files, np.asarray(code.lines), t.last_effect_word) if t.last_effect > klen \
                        else None
                    self.diags.append(error(
                        f"queue {code.queue} of kernel '{code.kernel}' (object '{o.name}') is busy until cycle "
                        f"{kstart + late}, after the kernel ends at cycle {kstart + klen} ({klen} cycles): the "
                        f"next kernel or phase would start while it is in flight, and its value would be lost", loc))
                    continue
                by_queue[code.queue].append(Segment(kstart, o.name, code, t, fmap))
        return by_queue

    # --- SRAM and symbols -----------------------------------------------------------------------
    def sram(self, chip: str) -> list[Placed]:
        sections = [(o.name, s) for o in self.objs if o.chip == chip for s in o.obj.sram]
        placed, diags = layout(chip, self.cfg_of(chip), sections)
        self.diags += diags
        return placed

    def symbols(self, chip: str, placed: list[Placed]) -> dict[tuple[str, str], Target]:
        """(object, symbol) -> what each name used by each object on the chip resolves to."""
        objs = [o for o in self.objs if o.chip == chip]
        by_obj = {(p.object, p.section.symbol): p for p in placed}
        local: dict[tuple[str, str], Target] = {}
        globals_: dict[str, list[tuple[str, Target]]] = defaultdict(list)
        defined_at: dict[tuple[str, str], SourceLoc | None] = {}  # (object, global) -> its definition
        for o in objs:
            for s in o.obj.sram:
                t = Target(by_obj.get((o.name, s.symbol)))
                local[(o.name, s.symbol)] = t
                if s.is_global:
                    globals_[s.symbol].append((o.name, t))
                    defined_at[(o.name, s.symbol)] = word_loc(o.obj.files, np.array([s.where]), 0)
            for k in o.obj.kernels:
                t = Target(None, o.name)
                local.setdefault((o.name, k.name), t)
                if k.is_global:
                    globals_[k.name].append((o.name, t))
                    defined_at.setdefault((o.name, k.name), word_loc(o.obj.files, np.array([k.where]), 0))
        refs: dict[str, list[tuple[str, object]]] = defaultdict(list)  # symbol -> (object, loc) of references
        for o in objs:
            for code in o.obj.code:
                for r in code.relocs:
                    if r.type != R_LPU_PEER:
                        refs[r.symbol].append((o.name, (o.obj.files, code.lines, r.word)))
        for name, defs in globals_.items():
            if len(defs) > 1:
                d = error(f"duplicate symbol '@{name}' on chip '{chip}': defined as global in objects "
                          + ", ".join(f"'{o}'" for o, _t in defs))
                for o, _t in defs:
                    if defined_at.get((o, name)) is not None:
                        d.note(f"defined in object '{o}' here", defined_at[(o, name)])
                for o, where in refs.get(name, []):
                    d.note(f"referenced from object '{o}' here", word_loc(*where))
                self.diags.append(d)
        out = dict(local)
        for o in objs:
            undefined = [r for r in dict.fromkeys(sym for c in o.obj.code for r in c.relocs if r.type != R_LPU_PEER
                                                   for sym in [r.symbol]) if (o.name, r) not in local]
            for sym in undefined:
                defs = globals_.get(sym)
                if defs:
                    out[(o.name, sym)] = defs[0][1]
        # undefined symbols: one error per symbol, naming every object and reference
        missing: dict[str, list[tuple[str, object]]] = defaultdict(list)
        for sym, rs in refs.items():
            for o, loc in rs:
                if (o, sym) not in out:
                    missing[sym].append((o, loc))
        for sym, rs in missing.items():
            names = ", ".join(dict.fromkeys(f"'{o}'" for o, _l in rs))
            d = error(f"undefined symbol '@{sym}' on chip '{chip}', referenced from object{'s' if ',' in names else ''} "
                      f"{names}", word_loc(*rs[0][1]))
            for o, where in rs[1:]:
                d.note(f"also referenced from object '{o}' here", word_loc(*where))
            for o in objs:
                if any(s.symbol == sym and not s.is_global for s in o.obj.sram):
                    d.note(f"object '{o.name}' defines a local '@{sym}'; declare it 'global' there to share it")
            for other in self.objs:
                if other.chip != chip and any(s.symbol == sym and s.is_global for s in other.obj.sram):
                    d.note(f"object '{other.name}' on chip '{other.chip}' defines '@{sym}', but SRAM is per chip: "
                           "an instruction addresses its own chip's")
                    break
            self.diags.append(d)
        return out

    # --- the chip's image -----------------------------------------------------------------------
    def chip_image(self, chip: str, segments: dict[str, list[Segment]], placed: list[Placed],
                   targets: dict[tuple[str, str], Target], wires: list[LinkWire]) -> ChipImage:
        cfg = self.cfg_of(chip)
        files = list(self.files.get(chip, {}))
        img = ChipImage(chip, cfg.text, cfg.source, files=files)
        chips = list(self.system.chips)
        for q in cfg.queues:
            segs = segments.get(q.name)
            if not segs:
                continue
            qb = build_queue(segs)
            for seg in qb.segments:
                for r in seg.code.relocs:
                    idx = seg.offset + r.word
                    d = apply(qb.words, idx, r, chip=chip, cfg=cfg, queue=q, target=targets.get((seg.object, r.symbol)),
                              chips=chips, wires=wires, loc=None, obj=seg.object)
                    if d is not None:  # located only when needed: most relocations succeed
                        d.loc = word_loc(files, qb.lines, idx)
                    t = targets.get((seg.object, r.symbol))
                    # undefined symbols are reported once, by symbols(); unplaced ones by layout()
                    quiet = r.type != R_LPU_PEER and (t is None or (t.placed is None and t.kernel_of is None))
                    if d is not None and not quiet:
                        self.diags.append(d)
            img.queues.append(QueueProgram(q.name, qb.words, qb.lines))
        index = self.files.get(chip, {})
        for o in (o for o in self.objs if o.chip == chip):  # the objects' op names, on the chip's files
            for (f, line, col), name in o.obj.op_names.items():
                if f < len(o.obj.files):
                    img.op_names.setdefault((index[o.obj.files[f]], line, col), name)
        img.op_names = dict(sorted(img.op_names.items()))
        order = {s.name: i for i, s in enumerate(cfg.slices)}
        for p in sorted(placed, key=lambda p: (order[p.slice], p.address)):
            s = p.section
            if s.image is not None:
                img.sram.append(SramInit(p.slice, p.address, s.image))
            img.symbols.append(SymbolInfo(s.symbol, p.slice, p.address, s.words, s.dtype, tuple(s.shape),
                                          s.is_global, p.object))
        for o in (o for o in self.objs if o.chip == chip):
            for k in o.obj.kernels:
                img.phases.append(PhaseInfo(f"{o.name}:{k.name}", o.start + o.kernel_start[k.name], k.length,
                                            o.phase))
        img.phases.sort(key=lambda p: (p.start, p.name))
        img.length = max((p.start + p.length for p in img.phases), default=0)
        return img
