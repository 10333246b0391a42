"""schedule: issue cycles for the blocked GEMV, every operand meeting its consumer.

Each plane runs its blocks back to back with a period of ``lw_cycles + 2`` (20 ``lw`` of 16
rows, then ``iw``, then ``mm``: the plane's queue issues one instruction a cycle, so this is
the fastest a plane can take a block), and after the last K block of an output column one
``acc``. Everything else is timed backwards from the plane (architecture page, section 2):

- a weight row that ``lw`` consumes at cycle ``c`` is read by its slice at position ``q`` in
  cycle ``c − read_latency − |q − P|``, so the 16 reads of a row group are staggered by
  position and meet the plane on one diagonal;
- ``x`` for ``mm`` at ``c`` is read in cycle ``c − read_latency − |q_x − P|``;
- ``y`` is written when the accumulator's group passes its slice:
  ``acc + acc_latency + |q_y − P|``.

Cycle 0 is the earliest read. ``repeat`` keeps each slice's 20 reads of a block one
instruction plus one repeat, and the plane's 20 loads likewise.
"""

from __future__ import annotations

from lpu.arch.isa import BY_MNEMONIC
from lpu.asm.operands import stream_field
from lpu.asm.records import Inst, SymRef
from lpu.dsl.codegen.register_block import GemvPlan
from lpu.dsl.codegen.sram_layout import Layout
from lpu.dsl.lpu_dialect import KernelOp, LpuInstOp

_SET, _ADD = 0, 1


def _spec(m):
    return BY_MNEMONIC[m]


def schedule(plan: GemvPlan, layout: Layout, cfg, name: str = "main") -> KernelOp:
    rows_per_lw = cfg["mxm.max_rows_per_lw"]
    groups = cfg.lanes // rows_per_lw
    period = groups + 2  # lw x groups, iw, mm
    col_period = plan.k * period + 1  # + acc
    read_lat = cfg["mem.read_latency"]
    acc_lat = BY_MNEMONIC["acc"].latency_for(cfg, "i32")
    slots = cfg["mxm.acc_slots"]
    # the earliest read relative to the first lw; cycle 0 is the earliest instruction
    lead = 0
    for pl in layout.planes:
        lead = max(lead, *(read_lat + abs(q - pl.position) for _, q in pl.weight_slices))
        lead = max(lead, read_lat + abs(pl.x_slice[1] - pl.position) - (period - 1))
    insts: list[Inst] = []
    qidx = {q.name: q.index for q in cfg.queues}

    def add(cycle, unit, m, dtype, args, dtype2=None):
        insts.append(Inst(cycle, qidx[unit], _spec(m), dtype, dtype2, tuple(args)))

    for pl in layout.planes:
        P = pl.position
        toward = pl.west  # operand streams flow toward the plane
        away = not pl.west
        b = 0
        for c, _j in enumerate(pl.columns):
            for i in range(plan.k):
                t = lead + c * col_period + i * period  # first lw of this block
                for s, (sname, q) in enumerate(pl.weight_slices):
                    r = t - read_lat - abs(q - P)
                    add(r, sname, "read", plan.elem, (SymRef(pl.w_symbols[s], b * groups),
                                                       stream_field(pl.stream_base + s, toward), 0))
                    add(r + 1, sname, "repeat", None, (groups - 1, 1))
                add(t, pl.plane, "lw", plan.elem, (stream_field(pl.stream_base, toward), rows_per_lw))
                add(t + 1, pl.plane, "repeat", None, (groups - 1, 1))
                add(t + groups, pl.plane, "iw", None, ())
                mm = t + groups + 1
                xq = pl.x_slice[1]
                add(mm - read_lat - abs(xq - P), pl.x_slice[0], "read", plan.elem,
                    (SymRef(pl.x_symbol, i), stream_field(pl.stream_base, toward), 0))
                add(mm, pl.plane, "mm", plan.elem, (stream_field(pl.stream_base, toward), c % slots,
                                                    _SET if i == 0 else _ADD))
                b += 1
            acc = lead + c * col_period + plan.k * period
            add(acc, pl.plane, "acc", plan.y_dtype, (c % slots, stream_field(pl.acc_base, away), 0))
            yq = pl.y_slice[1]
            add(acc + acc_lat + abs(yq - P), pl.y_slice[0], "write", plan.y_dtype,
                (SymRef(pl.y_symbol, 4 * c), stream_field(pl.acc_base, away), 0))
    insts.sort(key=lambda x: (x.cycle, x.queue))
    return KernelOp.build_from(name, [LpuInstOp.from_inst(x, cfg) for x in insts])
