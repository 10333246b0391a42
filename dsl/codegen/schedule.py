"""schedule: issue cycles for the blocked GEMV, every operand meeting its consumer.

Each plane runs its blocks back to back with a period of ``lw_cycles + 2`` (20 ``lw`` of 16
rows, then ``iw``, then ``mm``: the plane's queue issues one instruction a cycle, so this is
the fastest a plane can take a block), and after the last block of a part one ``acc``.
Everything else is timed backwards from the plane (architecture page, section 2):

- a weight row that ``lw`` consumes at cycle ``c`` is read by its slice at position ``q`` in
  cycle ``c − read_latency − |q − P|``, so the 16 reads of a row group are staggered by
  position and meet the plane on one diagonal;
- ``x`` for ``mm`` at ``c`` is read in cycle ``c − read_latency − |q_x − P|``;
- ``y`` is written when the accumulator's group passes its slice:
  ``acc + acc_latency + |q_y − P|``.

Each plane starts as early as its own farthest weight slice allows (its *lead*); cycle 0 is
the earliest read. The instructions are placed one per issue; ``unroll.compact`` then keeps
each slice's 20 reads of a block one instruction plus one repeat, the plane's 20 loads
likewise, and the reads of ``x`` for a part's blocks (one every period).

``combine`` then adds the partial sums of split columns on the VXM: each partial is read from
its plane's ``y`` slice toward the VXM, the adds chain on VXM ALUs two cycles apart (a sum is
read by the next add as it leaves the VXM), and the total is written to ``y_sum``. Ports, ALU queues and the VXM's output cells are reserved as they are taken; the
earliest cycle where everything is free is chosen.
"""

from __future__ import annotations

from lpu.arch.isa import BY_MNEMONIC, DTYPE_BYTES
from lpu.asm.operands import stream_field
from lpu.asm.records import Inst, SymRef
from lpu.dsl.codegen.register_block import GemvPlan, split_columns
from lpu.dsl.codegen.sram_layout import Layout, weight_geometry
from lpu.dsl.codegen.unroll import compact as compact_repeats
from lpu.dsl.lpu_dialect import KernelOp, LpuInstOp

_SET, _ADD = 0, 1
# stream groups of the combine step: between the planes' stripes and the VXM nothing flows
# toward the VXM but x's s0/s16 and the accumulators' s0..s7, so s8.. are free (docs/codegen.md)
_PART_GROUPS = (8, 12)  # a partial toward the VXM: by the y slice's rank within its hemisphere
_SUM_GROUP = 20  # the total, from the VXM back to its slice
_CHAIN_GROUP = 24  # a running sum, read again at the VXM


class _Ports:
    """Busy cycles of single-ported resources: (kind, unit) -> set of cycles."""

    def __init__(self) -> None:
        self.busy: dict[tuple[str, str], set[int]] = {}

    def free(self, key, start: int, n: int) -> bool:
        b = self.busy.get(key, ())
        return all(c not in b for c in range(start, start + n))

    def take(self, key, start: int, n: int) -> None:
        self.busy.setdefault(key, set()).update(range(start, start + n))


def schedule(plan: GemvPlan, layout: Layout, cfg, name: str = "main") -> KernelOp:
    from lpu.dsl.codegen.gemm import GemmPlan
    from lpu.dsl.codegen.gemm_schedule import schedule_gemm

    if isinstance(plan, GemmPlan):
        return schedule_gemm(plan, layout, cfg, name)
    width, rows_per_lw, groups = weight_geometry(cfg, plan.elem)
    period = groups + 2  # lw x groups, iw, mm
    occ = BY_MNEMONIC["mm"].occupancy_for(cfg, plan.elem)  # acc waits for the last mm
    read_lat = cfg["mem.read_latency"]
    acc_lat = BY_MNEMONIC["acc"].latency_for(cfg, plan.y_dtype)
    ywords = DTYPE_BYTES[plan.y_dtype]
    slots = cfg["mxm.acc_slots"]
    insts: list[Inst] = []
    qidx = {q.name: q.index for q in cfg.queues}
    ports = _Ports()

    def add(cycle, unit, m, dtype, args, dtype2=None):
        insts.append(Inst(cycle, qidx[unit], BY_MNEMONIC[m], dtype, dtype2, tuple(args)))

    # the earliest read relative to its plane's first lw; each plane starts at its own lead
    leads = [max(max(read_lat + abs(q - pl.position) for _, q in pl.weight_slices),
                 read_lat + abs(pl.x_slice[1] - pl.position) - (period - 1)) for pl in layout.planes]
    written: dict[tuple[int, int], int] = {}  # (plane, part) -> cycle its partial sum is in SRAM
    for p, pl in enumerate(layout.planes):
        P = pl.position
        toward = pl.west  # operand streams flow toward the plane
        t = leads[p]
        b = 0
        accs = []
        for c, (_j, i0, i1) in enumerate(pl.parts):
            for i in range(i0, i1):
                for s, (sname, q) in enumerate(pl.weight_slices):
                    # slice s = (g, e) feeds stream group g in lw cycles e, e + width, ...
                    g, e = divmod(s, width)
                    r = t + e - read_lat - abs(q - P)
                    n = groups // width
                    for k in range(n):  # one row group every ``width`` cycles (unroll folds them)
                        add(r + k * width, sname, "read", plan.elem,
                            (SymRef(pl.w_symbols[s], b * groups + k * width),
                             stream_field(pl.stream_base + g * width, toward), 0))
                    ports.take(("queue", sname), r, (n - 1) * width + 1)
                for k in range(groups):
                    add(t + k, pl.plane, "lw", plan.elem, (stream_field(pl.stream_base, toward), rows_per_lw))
                add(t + groups, pl.plane, "iw", None, ())
                mm = t + groups + 1
                xq = pl.x_slice[1]
                add(mm - read_lat - abs(xq - P), pl.x_slice[0], "read", plan.elem,
                    (SymRef(pl.x_symbol, i * width), stream_field(pl.stream_base, toward), 0))
                add(mm, pl.plane, "mm", plan.elem, (stream_field(pl.stream_base, toward), c % slots,
                                                    _SET if i == i0 else _ADD))
                b += 1
                t += period
            t += occ - 1  # the last mm has updated its slot
            add(t, pl.plane, "acc", plan.y_dtype, (c % slots, stream_field(pl.acc_base, not toward), 0))
            accs.append(t)
            t += 1
        # full parts' sums go to the nearest stripe slice whose queue is free when they pass
        # (its write port is unused); partial sums, read again by combine, to the plane's y slice
        full = [c for c, (sym, _) in enumerate(pl.part_rows) if sym == pl.y_symbol]
        near = pl.y_slice
        for sname, q in sorted(pl.weight_slices, key=lambda x: abs(x[1] - P)):
            if all(ports.free(("queue", sname), accs[c] + acc_lat + abs(q - P), 1) for c in full):
                near = (sname, q)
                break
        if full:
            _place(layout, pl.y_symbol, near[0])
        for c, (sym, row) in enumerate(pl.part_rows):
            sname, q = near if sym == pl.y_symbol else pl.y_slice
            w = accs[c] + acc_lat + abs(q - P)
            add(w, sname, "write", plan.y_dtype, (SymRef(sym, ywords * row), stream_field(pl.acc_base, not toward), 0))
            ports.take(("write", sname), w, ywords)
            ports.take(("queue", sname), w, 1)
            written[(p, c)] = w + ywords
    _combine(plan, layout, cfg, written, ports, add)
    # every instruction at its own cycle; unroll folds the regular runs into repeat
    insts = compact_repeats(insts)
    return KernelOp.build_from(name, [LpuInstOp.from_inst(x, cfg) for x in insts])


def _place(layout: Layout, symbol: str, slice_name: str) -> None:
    from lpu.asm.records import Placement

    for t in layout.tensors:
        if t.name == symbol:
            t.placement = Placement(slice_name)


def _combine(plan, layout, cfg, written, ports: _Ports, add) -> None:
    vxm = [q for q in cfg.queues if q.kind == "vxm"]
    V = vxm[0].position
    read_lat = cfg["mem.read_latency"]
    lat = BY_MNEMONIC["add"].latency_for(cfg, plan.y_dtype)
    ywords = DTYPE_BYTES[plan.y_dtype]
    rank = {}
    for pl in layout.planes:
        same = [x for x in layout.planes if x.west == pl.west]
        rank[pl.plane] = same.index(pl)
    for j, where in sorted(split_columns(plan.planes).items()):
        ready = max(written[w] for w in where)
        srcs = []  # (slice, position, symbol, row, stream field toward the VXM)
        for p, c in where:
            pl = layout.planes[p]
            q = pl.y_slice[1]
            east = q < V
            sym, row = pl.part_rows[c]
            srcs.append((pl.y_slice[0], q, sym, row, stream_field(_PART_GROUPS[rank[pl.plane]], not east)))
        owner = (layout.sum_slice[0], layout.sum_slice[1], layout.sum_symbol, layout.sum_rows[j])
        adds = len(srcs) - 1
        t0 = ready + read_lat + max(abs(q - V) for _, q, *_ in srcs)
        while True:
            # add a (k = 0: parts 0 and 1; k > 0: running sum and part k+1) at t0 + lat * k
            plan_ok = True
            reads = []
            for n, (sl, q, sym, row, f) in enumerate(srcs):
                at = t0 + lat * max(0, n - 1)
                r = at - read_lat - abs(q - V)
                if r < ready or not ports.free(("read", sl), r, ywords) or not ports.free(("queue", sl), r, 1):
                    plan_ok = False
                    break
                reads.append(r)
            alus = []
            if plan_ok:
                for k in range(adds):
                    at = t0 + lat * k
                    alu = next((a for a in vxm if ports.free(("queue", a.name), at, 1)), None)
                    if alu is None or not ports.free(("vxm-out", "sum" if k == adds - 1 else "chain"), at, 1):
                        plan_ok = False
                        break
                    alus.append(alu.name)
            done = t0 + lat * adds
            wcycle = done + abs(owner[1] - V)
            if plan_ok and ports.free(("write", owner[0]), wcycle, ywords) and ports.free(("queue", owner[0]), wcycle, 1):
                break
            t0 += 1
        for (sl, q, sym, row, f), r in zip(srcs, reads):
            add(r, sl, "read", plan.y_dtype, (SymRef(sym, ywords * row), f, 0))
            ports.take(("read", sl), r, ywords)
            ports.take(("queue", sl), r, 1)
        chain = None
        for k, alu in enumerate(alus):
            at = t0 + lat * k
            a = srcs[0][4] if k == 0 else chain
            last = k == adds - 1
            dst = stream_field(_SUM_GROUP, owner[1] < V) if last else stream_field(_CHAIN_GROUP, False)
            add(at, alu, "add", plan.y_dtype, (a, srcs[k + 1][4], dst))
            ports.take(("queue", alu), at, 1)
            ports.take(("vxm-out", "sum" if last else "chain"), at, 1)
            chain = dst
        add(wcycle, owner[0], "write", plan.y_dtype,
            (SymRef(owner[2], ywords * owner[3]), stream_field(_SUM_GROUP, owner[1] < V), 0))
        ports.take(("write", owner[0]), wcycle, ywords)
        ports.take(("queue", owner[0]), wcycle, 1)
