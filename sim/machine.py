"""The simulator core: a system image in, every chip run cycle-exact, hazards and figures out.

Three steps. (1) Schedule: each queue's words are decoded once into issue groups
(``program.py``). (2) Resolve: with the whole schedule known, every stream read is matched to
the write it meets (``streams.py``), every ``recv`` to the ``send`` it takes (``links.py``),
and the static hazards are found — all vectorized. (3) Execute: an event loop over the cycles
where a queue issues, taking the queue whose next instruction is earliest and running as many
repetitions of its group as one numpy batch as have their operands computed. Values live in a
pool of byte planes; each read knows its pool row from step 2. The semantics of instructions
are in ``semantics.py``; this module never names one.
"""

from __future__ import annotations

import math
import mmap
import sys
import time

import numpy as np

from lpu.arch.config import config_from_text, load_config
from lpu.arch.isa import DTYPE_BYTES, ISA
from lpu.diagnostics import DiagnosticError, SourceLoc, error
from lpu.linker.image import SystemImage
from lpu.perf import without_gc
from lpu.sim import hazards as H
from lpu.sim import plan as _plan
from lpu.sim.plan import reference_order as _reference_order
from lpu.sim.links import resolve_links
from lpu.sim.program import Group, schedule_chip
from lpu.sim.semantics import SEMANTICS, Exec
from lpu.sim.streams import RowAllocator, resolve, stream_key, stream_ops
from lpu.sim.units import Plane, SramSlice

ENGINES = ("auto", "plan", "reference")
# auto: the plan costs ~5 us per issued instruction to build, the reference engine ~20-40 us
# per group it runs (a repeat group is a few numpy batches); for one run, plan only where it pays
_PLAN_PAYS = 3  # plan when instructions <= _PLAN_PAYS x groups


class _Fallback(Exception):
    """A hazard found while running the plan: the run is undone and made by the reference engine."""


_STREAM_KIND = {"empty": H.EMPTY_READ, "conflict": H.WRITE_CONFLICT, "misaligned": H.MISALIGNED}
_LINK_KIND = {"busy": H.LINK_BUSY, "empty": H.EMPTY_RECV, "overflow": H.OVERFLOW, "unconnected": H.UNCONNECTED}


# opcode -> "send", "recv" or "hold": the instructions the link model (links.py) pairs
_LINK_ROLE = {spec.opcode: SEMANTICS[spec.mnemonic].link for spec in ISA
              if spec.mnemonic in SEMANTICS and SEMANTICS[spec.mnemonic].link}


def _sname(west: bool, s: int) -> str:
    return f"s{s}{'w' if west else 'e'}"


class Machine:
    """Every chip of a system image, ready to run."""

    def __init__(self, image: SystemImage, name: str = "<image>", strict: bool = True,
                 engine: str = "auto") -> None:
        """``engine``: "plan" runs the execution plan (``plan.py``) where it applies, else the
        reference engine; "reference" always runs the reference engine (the event loop below);
        "auto" (``lpu-sim``) plans a program of mostly single instructions, where building the
        plan costs less than the reference engine's run, and runs long repeat groups on the
        reference engine. Every choice gives the same results."""
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
        self.image = image
        self.image_name = name
        self.strict = strict
        self.engine = engine
        self.chip_names = [c.name for c in image.chips]
        self.cfgs = [config_from_text(c.config_text, c.config_source or name) for c in image.chips]
        lanes = {c.lanes for c in self.cfgs}
        if len(lanes) > 1:
            raise DiagnosticError(error("chips of one system must have the same vector width", SourceLoc(name)))
        self.lanes = lanes.pop() if lanes else load_config().lanes
        self.hazards: list[H.Hazard] = []
        self.limit = math.inf  # no instruction at or after this cycle executes (strict mode)
        self._programs: dict[tuple[int, int], object] = {}
        self.sram: dict[tuple[int, int], SramSlice] = {}  # (chip, position) -> slice
        self.planes: dict[tuple[int, int], Plane] = {}
        self._plans: dict[tuple, tuple] = {}  # execution plans by instruction word and queue
        self._schedule()
        self._resolve()
        self.static_hazards = list(self.hazards)
        self._storage()
        self.load_image_sram()
        self.instructions = 0
        self.runs = 0
        self.plan_reason: str | None = None  # why the last run did not use the plan
        self._exec_plan: _plan.Plan | None = None
        self._plan_failed: str | None = None
        self._planning = False

    # --- step 1: the issue schedule --------------------------------------------------------------
    def _schedule(self) -> None:
        self.groups: list[Group] = []
        self.queues: list[tuple[int, int, list[Group]]] = []  # (chip, queue, groups)
        self.end_cycle = 0
        for ci, chip in enumerate(self.image.chips):
            cfg = self.cfgs[ci]
            programs = []
            for qp in chip.queues:
                q = cfg.queue_by_name.get(qp.queue)
                if q is None:
                    raise DiagnosticError(error(f"chip {chip.name}: the configuration '{cfg.name}' has no queue "
                                                f"'{qp.queue}'", SourceLoc(self.image_name)))
                self._programs[(ci, q.index)] = qp
                programs.append((q.index, np.asarray(qp.words, np.uint64)))
            scheds, stuck = schedule_chip(ci, programs)
            for qi in sorted(scheds):
                s = scheds[qi]
                for g in s.groups:
                    g.id = len(self.groups)
                    self.groups.append(g)
                self.queues.append((ci, qi, s.groups))
                self.end_cycle = max(self.end_cycle, s.end)
            for b in stuck:
                self.hazards.append(H.Hazard(H.DEADLOCK, ci, b.cycle, b.queue, b.word,
                                             f"barrier {b.barrier}"))
        timing: dict[tuple, tuple[int, int, int]] = {}  # one lookup per kind of instruction
        end = self.end_cycle
        for g in self.groups:
            key = (g.chip, g.spec.opcode, g.dtype)
            t = timing.get(key)
            if t is None:
                cfg, spec = self.cfgs[g.chip], g.spec
                lat, occ = spec.latency_for(cfg, g.dtype), spec.occupancy_for(cfg, g.dtype)
                t = timing[key] = (lat, occ, max(1, lat + (1 if spec.dsts else 0), occ))
            g.latency, g.occupancy = t[0], t[1]
            last = g.issue + (g.count - 1) * g.period + t[2]
            if last > end:
                end = last
        self.end_cycle = end

    # --- step 2: streams, links, static hazards ----------------------------------------------------
    def _resolve(self) -> None:
        rows = RowAllocator()
        self.src_rows: dict[int, np.ndarray] = {}
        self.dst_row0: dict[int, int] = {}
        self.resolutions = {}
        by_chip: dict[int, list[Group]] = {}
        for g in self.groups:
            by_chip.setdefault(g.chip, []).append(g)
        for ci, groups in by_chip.items():
            cfg = self.cfgs[ci]
            positions = [q.position for q in cfg.queues]
            res = resolve(groups, positions, cfg.positions, rows)
            self.src_rows.update(res.src_rows)
            self.dst_row0.update(res.dst_row0)
            self.resolutions[ci] = res
            for h in res.hazards:
                self.hazards.append(self._stream_hazard(h, cfg))
        # links: a recv's planes come from the rows its send read
        role = _LINK_ROLE
        link_groups = [g for g in self.groups if g.spec.opcode in role]
        sends = {g.id: self.src_rows[g.id] for g in link_groups if role[g.spec.opcode] == "send"}
        recvs = {g.id: DTYPE_BYTES[g.dtype] for g in link_groups if role[g.spec.opcode] == "recv"}
        index = {n: i for i, n in enumerate(self.chip_names)}
        wires = []
        for w in self.image.links:
            if w.chip_a in index and w.chip_b in index:
                wires.append((index[w.chip_a], w.link_a, index[w.chip_b], w.link_b,
                              w.latency if w.latency is not None and w.latency >= 0 else None))
        lr = resolve_links(link_groups, self.cfgs, self.chip_names, wires, sends, recvs,
                           lambda g: SEMANTICS[g.spec.mnemonic].link)
        self.c2c_bytes = lr.bytes_sent
        for gid, src in lr.recv_src.items():
            self.src_rows[gid] = src
        for h in lr.hazards:
            g = self.groups[h.group]
            hz = H.Hazard(_LINK_KIND[h.kind], g.chip, h.cycle, g.queue, g.word, h.detail)
            if h.other >= 0:
                o = self.groups[h.other]
                hz.notes.append((f"the link was taken in cycle {o.issue + h.other_k * o.period} here",
                                 o.chip, o.queue, o.word))
            self.hazards.append(hz)
        self._port_hazards()
        self.pool_rows = rows.next
        self.ready = np.zeros(rows.next, bool)
        self.ready[0] = True

    def _storage(self) -> None:
        """The value pool, and for the plan engine every MEM slice's words after it in one array
        (``store``): a level's byte moves between streams and SRAM are then one fancy-indexed
        copy. The array is an anonymous memory map: zero pages on first touch, 4 KiB at a time
        (numpy's own large arrays ask for 2 MiB pages, and zeroing a whole one for each slice
        a program touches a few words of cost more than the program's run)."""
        self._slots: dict[tuple[int, int], int] = {}
        self._asked = self.engine
        if self.engine == "auto":
            issued = sum(g.count for g in self.groups)
            self.engine = "plan" if issued <= _PLAN_PAYS * max(1, len(self.groups)) else "reference"
        if self.engine == "reference":
            self.store = None
            self.pool = np.zeros((self.pool_rows, self.lanes), np.uint8)
            return
        for ci, cfg in enumerate(self.cfgs):
            for q in cfg.queues:
                if q.kind == "mem":
                    self._slots[(ci, q.position)] = len(self._slots)
        self.slot_words = max(c.words for c in self.cfgs) if self.cfgs else 0
        rows = self.pool_rows + len(self._slots) * self.slot_words
        self.store = np.frombuffer(mmap.mmap(-1, max(1, rows * self.lanes)), np.uint8)[:rows * self.lanes] \
            .reshape(rows, self.lanes)
        self.pool = self.store[:self.pool_rows]

    def sram_slot(self, chip: int, position: int) -> int:
        """The index of a slice's words in the store (plan engine)."""
        return self._slots[(chip, position)]

    def _stream_hazard(self, h, cfg) -> H.Hazard:
        g = self.groups[h.group]
        c = g.issue + h.k * g.period
        pos = cfg.queues[g.queue].position
        where = f"{cfg.slices[pos].name}, position {pos}"
        if h.kind == "conflict":
            o = self.groups[h.other]
            lands = c + g.spec.latency_for(cfg, g.dtype)
            hz = H.Hazard(H.WRITE_CONFLICT, g.chip, c, g.queue, g.word,
                          f"two values land on {_sname(h.west, h.stream)} at {where} in cycle {lands}")
            hz.notes.append((f"the other value is written here, issued in cycle {o.issue + h.other_k * o.period}",
                             o.chip, o.queue, o.word))
            return hz
        if h.kind == "empty":
            return H.Hazard(H.EMPTY_READ, g.chip, c, g.queue, g.word,
                            f"no value on {_sname(h.west, h.stream)} at {where}")
        return H.Hazard(H.MISALIGNED, g.chip, c, g.queue, g.word,
                        f"{_sname(h.west, h.base)} read as a {h.width}-stream group at {where}, written as a "
                        f"{h.other_width}-stream group from {_sname(h.west, h.other_base)}")

    def _port_hazards(self) -> None:
        """Two reads (or two writes) overlapping in a slice's port; two mm overlapping in a plane.

        On a port where some group may overlap itself or the next, every issue becomes an
        interval [start, start + occupancy); sorted by (port, start), an issue starting before
        the latest end so far on its port is a conflict. Ports are kept apart by offsetting each
        port's cycles by port · span."""
        by_port: dict[tuple[int, int, str], list[Group]] = {}
        for g in self.groups:
            sem = SEMANTICS.get(g.spec.mnemonic)
            if sem is not None and sem.port is not None:
                by_port.setdefault((g.chip, g.queue, sem.port), []).append(g)
        keys: dict[tuple[int, int, str], int] = {}
        recs = []
        for port, gs in by_port.items():
            # a queue issues in order: when no group overlaps itself or the next one, the port
            # is free of conflicts without looking at single issues
            if all((g.count == 1 or g.period >= g.occupancy) and g.last + g.occupancy <= h.issue
                   for g, h in zip(gs, gs[1:])) and (gs[-1].count == 1 or gs[-1].period >= gs[-1].occupancy):
                continue
            key = keys.setdefault(port, len(keys))
            recs.extend((key, g.id, g.issue, g.period, g.count, g.occupancy) for g in gs)
        if not recs:
            return
        rec = np.array(recs, np.int64)
        count = rec[:, 4]
        r = np.repeat(np.arange(len(rec)), count)
        k = np.arange(len(r)) - (np.cumsum(count) - count)[r]
        starts = rec[r, 2] + rec[r, 3] * k
        span = int(starts.max() + rec[:, 5].max()) + 2
        port = rec[r, 0]
        starts = starts + port * span
        order = np.argsort(starts, kind="stable")  # by port, then start; issue order breaks ties
        r, starts, port = r[order], starts[order], port[order]
        ends = starts + rec[r, 5]
        prev_end = np.maximum.accumulate(ends)[:-1]
        bad = np.nonzero(starts[1:] < prev_end)[0] + 1
        shown: dict[int, int] = {}
        names = list(keys)
        for i in bad.tolist():
            key = int(port[i])
            if shown.get(key, 0) >= 64:  # enough to see the pattern
                continue
            shown[key] = shown.get(key, 0) + 1
            chip, queue, what = names[key]
            g, o = self.groups[int(rec[r[i], 1])], self.groups[int(rec[r[i - 1], 1])]
            kind = H.PLANE_BUSY if what == "plane" else H.PORT_CONFLICT
            what = "plane" if what == "plane" else f"{what} port"
            hz = H.Hazard(kind, chip, int(starts[i] - key * span), queue, g.word,
                          f"the {what} is busy until cycle {int(prev_end[i - 1] - key * span)}")
            hz.notes.append(("it is busy because of this instruction", o.chip, o.queue, o.word))
            self.hazards.append(hz)

    # --- inputs and lookups -----------------------------------------------------------------------
    def slice_state(self, chip: int, position: int) -> SramSlice:
        key = (chip, position)
        s = self.sram.get(key)
        if s is None:
            words = self.cfgs[chip].words
            storage = None
            if self.store is not None:
                a = self.pool_rows + self._slots[key] * self.slot_words
                storage = self.store[a:a + words]
            s = self.sram[key] = SramSlice(words, self.lanes, storage)
        return s

    def load_image_sram(self) -> None:
        for ci, chip in enumerate(self.image.chips):
            cfg = self.cfgs[ci]
            for init in chip.sram:
                pos = cfg.slice_by_name[init.slice].position
                data = np.frombuffer(init.data, np.uint8).reshape(-1, self.lanes)
                self.slice_state(ci, pos).preload(init.address, data)

    def lane_map_at(self, g: Group) -> tuple[int, int, str]:
        """(slice position, address, element type) of a permute's lane map: the type is the
        SRAM symbol's at that address, i16 if none."""
        table = g.field("map")
        pos, addr = table >> 16, table & 0xFFFF
        types = self.__dict__.get("_symbol_types")
        if types is None:  # (chip, slice position, address) -> the type of the symbol there (the last one)
            types = self._symbol_types = {}
            for ci, chip in enumerate(self.image.chips):
                by_name = self.cfgs[ci].slice_by_name
                for s in chip.symbols:
                    if by_name.get(s.slice):
                        types[(ci, by_name[s.slice].position, s.address)] = s.dtype
        return pos, addr, types.get((g.chip, pos, addr), "i16")

    def lane_map(self, g: Group) -> np.ndarray:
        from lpu.arch.layout import from_sram

        pos, addr, dtype = self.lane_map_at(g)
        w = DTYPE_BYTES[dtype]
        raw = self.slice_state(g.chip, pos).span(addr, w)
        m = from_sram(raw.tobytes(), (self.lanes,), dtype, self.lanes).astype(np.int64)
        return np.where((m >= 0) & (m < self.lanes), m, 0)

    def word_loc(self, chip: int, queue: int, word: int) -> SourceLoc | None:
        qp = self._programs.get((chip, queue))
        if qp is None or not 0 <= word < len(qp.lines):
            return None
        f, line, col = (int(x) for x in qp.lines[word])
        files = self.image.chips[chip].files
        if line == 0 or f >= len(files):
            return None
        return SourceLoc(files[f], line, col)

    def inst_text(self, chip: int, queue: int, word: int) -> str:
        from lpu.sim.program import decode_word

        qp = self._programs[(chip, queue)]
        spec, dtype, dtype2, fields = decode_word(int(qp.words[word]))
        cfg = self.cfgs[chip]
        slice_name = cfg.queues[queue].slice.name

        def symbol_at(addr):
            for s in self.image.chips[chip].symbols:
                if s.slice == slice_name and s.address <= addr < s.address + s.words:
                    return s.name, addr - s.address
            return None

        return H.instruction_text(spec, dtype, dtype2, fields, symbol_at)

    # --- step 3: execution -------------------------------------------------------------------------
    def dynamic_hazard(self, ex: Exec, kind: str, index: int, detail: str) -> None:
        if self._planning:  # the reference engine finds and reports it
            raise _Fallback(kind)
        g = ex.group
        c = int(ex.cycles[index])
        self.hazards.append(H.Hazard(kind, g.chip, c, g.queue, g.word, detail))
        if self.strict:
            self.limit = min(self.limit, c)

    def run(self, progress: bool = False) -> "Machine":
        """Run the program from cycle 0. SRAM is as the last run left it (or as loaded); every
        other state — streams, MXM planes, hazards, figures — starts afresh, so a machine can run
        its program step after step (``runtime.py``)."""
        # the machine's arithmetic is IEEE and wrapping: an overflow to inf, a NaN or an integer
        # wrap is a result the program computed, not something for numpy to warn about
        with np.errstate(all="ignore"):
            self.runs += 1
            self._begin()
            if self.engine == "plan":
                plan = self.execution_plan()
                if plan is not None:
                    try:
                        return self._run_plan(plan)
                    except _Fallback as e:
                        self.plan_reason = f"a hazard during the run ({e})"
                        self._begin()
                else:
                    self.plan_reason = self._plan_failed
            else:
                self.plan_reason = "the reference engine was asked for" if self._asked == "reference" else \
                    "auto: long repeat groups, which the reference engine runs in a few batches each"
            return self._run(progress)

    def execution_plan(self) -> "_plan.Plan | None":
        """The plan, built on first use and kept: every run of this machine reuses it."""
        if self._exec_plan is None and self._plan_failed is None:
            try:
                self._exec_plan = _plan.build(self)
            except _plan.NotPlannable as e:
                self._plan_failed = str(e)
        return self._exec_plan

    def _begin(self) -> None:
        """The per-run state, fresh: what a run starts from besides SRAM."""
        self.hazards = list(self.static_hazards)
        self.limit = math.inf
        self.planes = {}
        self._plans = {}
        self.instructions = 0
        self.ready[:] = False
        self.ready[0] = True
        for s in self.sram.values():
            s.bytes_read = s.bytes_written = 0

    @without_gc
    def _run_plan(self, plan) -> "Machine":
        t_start = time.perf_counter()
        saved = self.store[plan.saved_rows]
        self._planning = True
        try:
            plan.run(self.store, self)
        except _Fallback:
            self.store[plan.saved_rows] = saved  # SRAM as it was before this run
            raise
        finally:
            self._planning = False
        self.plan_reason = None
        self.instructions = plan.instructions
        self.executed = dict(plan.executed)
        self.busy = dict(plan.busy)
        for key, (r, w) in plan.sram_bytes.items():
            s = self.slice_state(*key)
            s.bytes_read += r
            s.bytes_written += w
        self.wall_seconds = time.perf_counter() - t_start
        self.hazards.sort(key=lambda h: h.order)
        return self

    @without_gc  # the run builds few objects, and none in cycles: nothing for the collector to find
    def _run(self, progress: bool) -> "Machine":
        if self.strict and self.hazards:
            self.limit = min(h.cycle for h in self.hazards)
        busy = [0] * len(self.queues)  # per queue: cycles its unit was occupied
        self.executed: dict[int, int] = {}
        t_start = time.perf_counter()
        shown = False
        steps = 0
        ready, src_rows, executed = self.ready, self.src_rows, self.executed
        for i, g, k0, k1, c in _reference_order(self.queues, src_rows, ready, lambda: self.limit):
            self._execute(g, k0, k1, src_rows.get(g.id), self._plan(g))
            executed[g.id] = k1
            busy[i] += (k1 - k0) * max(1, g.occupancy)
            steps += 1
            if progress and steps % 256 == 0:
                el = time.perf_counter() - t_start
                if el > 2.0:
                    shown = True
                    frac = c / max(1, self.end_cycle)
                    bar = "#" * int(30 * frac)
                    sys.stderr.write(f"\rlpu-sim [{bar:<30}] cycle {c:,} of {self.end_cycle:,}")
                    sys.stderr.flush()
        if shown:
            sys.stderr.write("\r" + " " * 72 + "\r")
        self.wall_seconds = time.perf_counter() - t_start
        self.busy = {(ci, qi): b for (ci, qi, _), b in zip(self.queues, busy)}
        self.hazards.sort(key=lambda h: h.order)
        if self.strict:  # the run stopped at the first hazard: what lies beyond was never reached
            self.hazards = [h for h in self.hazards if h.cycle <= self.limit]
        return self

    def _plan(self, g: Group) -> tuple:
        """What executing a group needs, worked out once per queue and shape of instruction
        (``stream_key``): its semantics, its unit's state, where its operands sit in a row of
        planes, where its results go."""
        key = (g.chip, g.queue) + stream_key(g.spec, g.dtype, g.dtype2, g.fields)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        cfg = self.cfgs[g.chip]
        q = cfg.queues[g.queue]
        unit = None
        if q.kind == "mem":
            unit = self.slice_state(g.chip, q.position)
        elif q.kind == "mxm":
            unit = self.planes.get((g.chip, g.queue))
            if unit is None:
                unit = self.planes[(g.chip, g.queue)] = Plane(cfg["mxm.rows"], cfg["mxm.cols"], cfg["mxm.acc_slots"])
        sem = SEMANTICS[g.spec.mnemonic]
        srcs, dsts = self._operands(g)
        plan = self._plans[key] = (sem.fn, unit, srcs, dsts, dsts[-1][2] if dsts else 0)
        return plan

    def _operands(self, g: Group) -> tuple[list, list]:
        """(name, first plane, end plane) of the stream operands read and written: a recv
        reads the planes its link delivers (``links.py``)."""
        ops = stream_ops(g.spec, g.dtype, g.dtype2, g.fields)
        if SEMANTICS[g.spec.mnemonic].link == "recv":
            reads = [("link", DTYPE_BYTES[g.dtype])]
        else:
            reads = [(o.name, o.width) for o in ops if not o.write]
        out = []
        for part in (reads, [(o.name, o.width) for o in ops if o.write]):
            spans, off = [], 0
            for name, width in part:
                spans.append((name, off, off + width))
                off += width
            out.append(spans)
        return out[0], out[1]

    def _execute(self, g: Group, k0: int, k1: int, src, plan, prepared=None) -> None:
        fn, unit, srcs, dsts, width = plan
        row0 = self.dst_row0.get(g.id)
        n = k1 - k0
        planes = {}
        if src is not None and prepared is None:  # prepared: all the semantics need of its operands
            # (n, planes, lanes); the plan engine's rows may be SRAM words of the store
            block = np.take(self.pool if self.store is None else self.store, src[k0:k1], axis=0)
            if len(srcs) == 1:
                planes[srcs[0][0]] = block
            else:
                for name, a, b in srcs:
                    planes[name] = block[:, a:b]
        out = fn(Exec(g, k0, k1, planes, unit, self, self.lanes, prepared))
        self.instructions += n
        if row0 is not None:
            a, b = row0 + k0 * width, row0 + k1 * width
            if out:
                rows = self.pool[a:b].reshape(n, width, self.lanes)
                if len(dsts) == 1:
                    rows[...] = out[dsts[0][0]]
                else:
                    for name, lo, hi in dsts:
                        rows[:, lo:hi] = out[name]
            self.ready[a:b] = True

    # --- results -----------------------------------------------------------------------------------
    @property
    def cycles(self) -> int:
        return self.end_cycle

    def stream_occupancy(self) -> dict[int, list[tuple[int, int, int]]]:
        """Per chip, (cycle, east, west): stream values in flight, each from the cycle it lands
        to the last cycle a reader meets it."""
        from lpu.sim.report import occupancy_series

        out = {}
        for ci in range(len(self.cfgs)):
            res = self.resolutions.get(ci)
            last = res.last_read(len(self.pool)) if res is not None else None
            intervals = []
            for g in self.groups:
                if g.chip != ci or g.id not in self.dst_row0 or not self.executed.get(g.id):
                    continue
                n = self.executed[g.id]
                dsts = self._operands(g)[1]
                width = dsts[-1][2]
                ready = g.issue + g.period * np.arange(n) + g.latency
                rows = self.dst_row0[g.id] + np.arange(n)[:, None] * width + np.arange(width)[None, :]
                lr = last[rows] if last is not None and rows.max() < len(last) else np.full(rows.shape, -1)
                stop = np.maximum(ready[:, None], lr)
                west = bool(g.fields[next(i for i, o in enumerate(g.spec.operands) if o.role == "dst")] & 32)
                intervals.append((np.repeat(ready, width), stop.ravel(), west))
            out[ci] = occupancy_series(intervals, self.end_cycle)
        return out
