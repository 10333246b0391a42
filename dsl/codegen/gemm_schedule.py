"""schedule (GEMM): issue cycles for the blocked ``Y = X · W``, every operand meeting its consumer.

Each plane walks its blocks in order (unit after unit, K block after K block) and places every
instruction at the earliest cycle its dependences and resources allow (list scheduling in
program order; a plane's queue issues one instruction a cycle):

- ``iw`` of block ``b``: after its last ``lw``, and no earlier than the last ``mm`` of block
  ``b−1`` occupying the plane (``mm`` + occupancy − 1);
- the tile's ``mm``\\ s: after ``iw``, ``mm``-occupancy apart (the plane port), row ``s`` into
  slot ``s``; a unit's first block (mode ``set``) after the slot's previous ``acc``. The row of
  ``X`` is read from the plane's ``X`` slice to pass the plane in the ``mm`` cycle;
- after a unit's last block, one ``acc`` per row once its last ``mm`` has landed; the group is
  written to result slice ``s mod 4`` as it passes (write port: 4 cycles);
- the ``lw``\\ s of block ``b+1``: after ``iw`` of block ``b`` (the shadow buffer is free),
  into whatever queue cycles are left — for f16/bf16 an ``mm`` holds the plane 4 cycles, so
  the next block's 40 loads and the results' ``acc``\\ s fill the 3 idle issue slots after each
  ``mm``: the weights stream in while the previous block computes. Each ``lw``'s row groups
  are read by their stripe slices ``read_latency + distance`` cycles earlier.

Then each plane is shifted so its earliest read is cycle 0 (its own lead) and the ``unroll``
pass folds regular runs into ``repeat``. Planes share no slice, queue or stream (the layout
gives each its own), so they are scheduled independently; the stream argument is the GEMV's
(docs/codegen.md): weights and ``X`` arrive on distinct diagonals (``lw`` and ``mm`` never
share a cycle of the queue), results flow away from the plane where nothing else flows.
"""

from __future__ import annotations

from lpu.arch.isa import BY_MNEMONIC, DTYPE_BYTES
from lpu.asm.operands import stream_field
from lpu.asm.records import Inst, SymRef
from lpu.dsl.codegen.gemm import GemmLayout, GemmPlaneLayout, GemmPlan, Y_SLICES
from lpu.dsl.codegen.sram_layout import weight_geometry
from lpu.dsl.codegen.unroll import compact as compact_repeats
from lpu.dsl.lpu_dialect import KernelOp, LpuInstOp

_SET, _ADD = 0, 1


class _Busy:
    """Busy cycles of single-issue resources (queues, ports, the plane): key -> set of cycles."""

    def __init__(self) -> None:
        self.busy: dict[tuple[str, str], set[int]] = {}

    def free(self, key, start: int, n: int = 1) -> bool:
        b = self.busy.get(key)
        return b is None or all(c not in b for c in range(start, start + n))

    def take(self, key, start: int, n: int = 1) -> None:
        self.busy.setdefault(key, set()).update(range(start, start + n))


def schedule_gemm(plan: GemmPlan, layout: GemmLayout, cfg, name: str = "main", compact: bool = True) -> KernelOp:
    insts: list[Inst] = []
    for pl in layout.planes:
        insts += _plane(plan, pl, cfg)
    if compact:
        insts = compact_repeats(insts)
    else:
        insts.sort(key=lambda x: (x.cycle, x.queue))
    return KernelOp.build_from(name, [LpuInstOp.from_inst(x, cfg) for x in insts])


def _plane(plan: GemmPlan, pl: GemmPlaneLayout, cfg) -> list[Inst]:
    width, rows_per_lw, groups = weight_geometry(cfg, plan.elem)
    occ = BY_MNEMONIC["mm"].occupancy_for(cfg, plan.elem)
    read_lat = cfg["mem.read_latency"]
    acc_lat = BY_MNEMONIC["acc"].latency_for(cfg, plan.y_dtype)
    ywords = DTYPE_BYTES[plan.y_dtype]
    qidx = {q.name: q.index for q in cfg.queues}
    P, toward = pl.position, pl.west
    plane_q = ("queue", pl.plane)
    busy = _Busy()
    out: list[Inst] = []

    def add(cycle, unit, m, dtype, args):
        out.append(Inst(cycle, qidx[unit], BY_MNEMONIC[m], dtype, None, tuple(args)))

    def issue(lo: int, fits=lambda c: True) -> int:
        """The earliest cycle >= lo with the plane's queue free and ``fits``."""
        c = lo
        while not busy.free(plane_q, c) or not fits(c):
            c += 1
        busy.take(plane_q, c)
        return c

    def mem_free(sl, c, n):  # a slice's queue in its issue cycle and the port for n cycles
        return busy.free(("queue", sl[0]), c) and busy.free((sl[0], "port"), c, n)

    def mem_take(sl, c, n):
        busy.take(("queue", sl[0]), c)
        busy.take((sl[0], "port"), c, n)

    index = pl.block_index

    def load(block: int, lo: int) -> int:
        """The ``lw``s of one block from cycle ``lo``; returns the cycle of the last."""
        c = lo
        for l in range(groups):
            # lw number l takes row group g from stripe slice g*width + l % width
            feeds = [g * width + l % width for g in range(rows_per_lw)]

            def fits(c, feeds=feeds):
                return all(mem_free(pl.weight_slices[s], c - read_lat - abs(pl.weight_slices[s][1] - P), width)
                           for s in feeds)

            c = issue(c, fits)
            for s in feeds:
                sl = pl.weight_slices[s]
                r = c - read_lat - abs(sl[1] - P)
                mem_take(sl, r, width)
                add(r, sl[0], "read", plan.elem, (SymRef(pl.w_symbols[s], block * groups + (l // width) * width),
                                                  stream_field(pl.stream_base + (s // width) * width, toward), 0))
            add(c, pl.plane, "lw", plan.elem, (stream_field(pl.stream_base, toward), rows_per_lw))
            c += 1
        return c - 1

    seq = [(u, i) for u in range(len(pl.units)) for i in range(plan.k)]
    slots = cfg["mxm.acc_slots"]
    mm_at = [None] * slots
    acc_at = [None] * slots
    last_mm = None
    xq = pl.x_slice
    last_lw = load(index[(0, pl.units[0][0])], 0)
    for b, (u, i) in enumerate(seq):
        j, m0, m1 = pl.units[u]
        lo = last_lw + 1 if last_mm is None else max(last_lw + 1, last_mm + occ - 1)
        iw = issue(lo)
        add(iw, pl.plane, "iw", None, ())
        for s in range(m1 - m0):
            lo = iw + 1
            if last_mm is not None:
                lo = max(lo, last_mm + occ)
            if i == 0 and acc_at[s] is not None:
                lo = max(lo, acc_at[s] + 1)
            x_at = lambda c: c - read_lat - abs(xq[1] - P)  # noqa: E731
            c = issue(lo, lambda c: busy.free(("plane", pl.plane), c, occ) and mem_free(xq, x_at(c), width))
            busy.take(("plane", pl.plane), c, occ)
            mem_take(xq, x_at(c), width)
            add(x_at(c), xq[0], "read", plan.elem, (SymRef(pl.x_symbol, (i * plan.M + m0 + s) * width),
                                                    stream_field(pl.stream_base, toward), 0))
            add(c, pl.plane, "mm", plan.elem, (stream_field(pl.stream_base, toward), s, _SET if i == 0 else _ADD))
            last_mm = mm_at[s] = c
        if i == plan.k - 1:  # the unit's rows are done: emit them
            for s in range(m1 - m0):
                ysl = pl.y_slices[s % Y_SLICES]
                w_at = lambda c: c + acc_lat + abs(ysl[1] - P)  # noqa: E731
                c = issue(mm_at[s] + occ, lambda c: mem_free(ysl, w_at(c), ywords))
                mem_take(ysl, w_at(c), ywords)
                sym, row = pl.y_where(u, s)
                grp = stream_field(pl.acc_base, not toward)
                add(c, pl.plane, "acc", plan.y_dtype, (s, grp, 0))
                add(w_at(c), ysl[0], "write", plan.y_dtype, (SymRef(sym, row * ywords), grp, 0))
                acc_at[s] = c
        if b + 1 < len(seq):
            nu, ni = seq[b + 1]
            last_lw = load(index[(ni, pl.units[nu][0])], iw + 1)
    lead = -min(x.cycle for x in out)
    for x in out:
        x.cycle += lead
    return out
