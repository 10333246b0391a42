"""Snippets and their list scheduler: the general path's unit of work.

A *snippet* makes one vector: it reads its operand vectors from their slices, at cycles such
that they pass the VXM in the cycle its ALU issues (each operand may turn through an SXM on
the way: a rotate or shift), and writes the result to its own slice as it passes. All the
timing follows the architecture page:

- a ``read`` issued at ``r`` in a slice at position ``q`` puts the vector on its stream at
  ``r + read_latency``; it passes position ``p`` at ``r + read_latency + |p − q|``;
- an SXM issued at ``s`` at position ``x`` reads its operand there at ``s`` and its result is
  on the stream at ``x`` at ``s + sxm_latency``;
- the VXM op issued at ``t`` reads at the VXM's position at ``t``; its result leaves at
  ``t + latency``; the ``write`` at position ``q'`` issues at ``t + latency + |q' − V|``.

``schedule_snippets`` places snippets in program order, each at the earliest VXM cycle where
its operands are in SRAM, every queue slot and MEM port it needs is free, and stream-alloc
finds a group for each of its in-flight values (``streams.py``). Nothing is ever re-used in
SRAM, so only read-after-write orders snippets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lpu.arch.isa import BY_MNEMONIC, DTYPE_BYTES
from lpu.asm.operands import stream_field
from lpu.asm.records import Inst, SymRef
from lpu.diagnostics import DiagnosticError, SourceLoc, error
from lpu.dsl.codegen.streams import Resources, Segment, Streams, limited
from lpu.dsl.codegen.vector import Vec

IMM = 1 << 32  # the src_or_imm bit: a scalar broadcast to every lane
#: cycles past its operands' arrival the scheduler tries before it reports an op it cannot
#: place (resources free up within hundreds of cycles; a structural conflict never does)
HORIZON = 20_000


@dataclass(frozen=True, slots=True)
class Src:
    vec: Vec
    dtype: str
    sxm: tuple[str, int] | None = None  # ("rotate", n) on the way to the VXM


@dataclass(slots=True)
class Snippet:
    mnemonic: str  # the VXM instruction
    dtype: str
    srcs: list[Src]
    dst: Vec
    dst_dtype: str
    imm: int | None = None  # the b operand's immediate field (binary ops)
    dtype2: str | None = None  # cvt's target type
    shift: int = 0
    loc: SourceLoc | None = None
    cycle: int = -1  # the VXM issue cycle, once scheduled


@dataclass
class Scheduled:
    insts: list[Inst] = field(default_factory=list)
    length: int = 0
    cycles: list = field(default_factory=list)  # (snippet, its VXM cycle) as this schedule places them
    uniform: bool = False  # every item had the same "height" priority: the "ready" order is this one


def search_limit(ctx, t0: int, horizon: int) -> int:
    """The last cycle worth trying for an item whose operands allow ``t0``: ``horizon`` past the
    later of ``t0`` and the end of what is placed so far (``ctx.length``) — past that end every
    table is free, so an item that finds no room there never will: a long program does not fail
    for lack of horizon, a structural conflict still does."""
    return max(t0, ctx.length) + horizon


class _Context:
    """What every placement shares: the chip, the resource tables, the emitted instructions."""

    def __init__(self, cfg, ready):
        self.cfg = cfg
        self.qidx = {q.name: q.index for q in cfg.queues}
        self.pos = {q.name: q.position for q in cfg.queues}
        self.RL = cfg["mem.read_latency"]
        self.res, self.streams = Resources(), Streams(limited(cfg.streams))
        self.ready = dict(ready or {})
        self.insts: list[Inst] = []
        self.length = 0

    def add(self, cycle, unit, m, dtype, args, dtype2=None, loc=None):
        self.insts.append(Inst(cycle, self.qidx[unit], BY_MNEMONIC[m], dtype, dtype2, tuple(args), loc))

    def take_read(self, v: Vec, r: int, w: int, segs, base: int) -> None:
        self.res.take("queue", v.slice, r)
        self.res.take("read", v.slice, r, w)
        for seg in segs:
            self.streams.take(seg, base, w)


def schedule_snippets(snips: list, cfg, ready: dict[Vec, int] | None = None,
                      horizon: int = HORIZON, mutable: set | None = None) -> Scheduled:
    """``mutable``: vectors of tensors written at run time (``store``), read in program order.

    The list is scheduled under each of ``PRIORITIES`` and the shortest schedule kept ("ready"'s
    on a tie): neither priority is better on every program — the earliest operands first
    keeps small kernels tight, the longest remaining chain first keeps a decoder block's
    critical path (norm, attention, projections) ahead of work that can wait."""
    best, failure = None, None
    for priority in PRIORITIES:
        try:
            sched = _schedule_once(snips, cfg, ready, horizon, mutable, priority)
        except DiagnosticError as e:  # the other priority may still find room
            failure = failure or e
            continue
        if best is None or sched.length <= best.length:
            best = sched
        if sched.uniform:  # every height alike: the "ready" order is the same list, the same schedule
            break
    if best is None:
        raise failure
    for sn, t in best.cycles:  # the items' own cycles (Snippet.cycle) as the kept schedule has them
        sn.cycle = t
    return best


def _schedule_once(snips: list, cfg, ready, horizon: int, mutable, priority: str) -> Scheduled:
    from lpu.dsl.codegen.chain import Chain, schedule_chain
    from lpu.dsl.codegen.mxm import LaneSumJob, MatmulJob, _planes, schedule_lane_sum, schedule_matmul
    from lpu.dsl.codegen.gather import GatherJob, ScatterJob, schedule_gather, schedule_scatter
    from lpu.dsl.codegen.transpose import TransposeJob, schedule_transpose

    ctx = _Context(cfg, ready)
    # one plane keeps the ones matrix of the lane sums until the last of them is placed
    ctx.lane_sums_left = sum(isinstance(sn, LaneSumJob) for sn in snips)
    ctx.sum_plane = _planes(ctx)[-1] if ctx.lane_sums_left else None
    pos = ctx.pos
    vxm = [q.name for q in cfg.queues if q.kind == "vxm"]
    V = pos[vxm[0]]
    sxm = {q.slice.hemisphere: (q.name, q.position) for q in cfg.queues if q.kind == "sxm"}
    RL = ctx.RL
    SL = BY_MNEMONIC["rotate"].latency_for(cfg, "i8")
    res, streams, ready, add = ctx.res, ctx.streams, ctx.ready, ctx.add
    failed: dict[tuple, tuple[int, int]] = {}  # snippet shape -> cycles [lo, hi) known to have no room
    cycles: list = []

    # the items that are not one VXM op place themselves
    jobs = {MatmulJob: schedule_matmul, LaneSumJob: schedule_lane_sum, Chain: schedule_chain,
            TransposeJob: schedule_transpose, GatherJob: schedule_gather, ScatterJob: schedule_scatter}

    info: dict = {}
    for sn in _list_order(snips, ready, mutable or set(), priority, info):
        job = jobs.get(type(sn))
        if job is not None:
            job(sn, ctx, horizon)
            continue
        lat = BY_MNEMONIC[sn.mnemonic].latency_for(cfg, sn.dtype)
        # the earliest VXM cycle the operands allow: each read no earlier than its vector lands
        routes = []
        t_min = 0
        used_sxm: set[str] = set()
        for s in sn.srcs:
            q = pos[s.vec.slice]
            if s.sxm is None:
                lead = RL + abs(q - V)
                routes.append((q, None, lead))
            else:
                # the operand's own hemisphere's SXM; a second operand through an SXM would
                # need it in the same cycle, so it crosses to the other one
                near, far = ("W", "E") if q < V else ("E", "W")
                unit, x = sxm[near] if near not in used_sxm else sxm[far]
                used_sxm.add(near if near not in used_sxm else far)
                lead = RL + abs(q - x) + SL + abs(x - V)
                routes.append((q, (unit, x), lead))
            t_min = max(t_min, ready.get(s.vec, 0) + lead)
        qd = pos[sn.dst.slice]
        wd = DTYPE_BYTES[sn.dst_dtype]
        # Cycles an earlier snippet of the same shape (the same slices, routes, types and
        # latency) found no room in still have none: the tables only fill up. So the search
        # resumes where that one ended — the same cycle as searching from t_min, without the
        # quadratic walk over a long elementwise op's earlier vectors.
        key = (lat, sn.dst.slice, wd, tuple((s.vec.slice, s.dtype, s.sxm, sn.srcs.index(s)) for s in sn.srcs))
        lo, hi = failed.get(key, (0, -1))
        start, t = (lo, hi) if lo <= t_min <= hi else (t_min, t_min)
        skip = [0]  # a failed try's proof that no cycle before this one has room
        while True:
            if t > search_limit(ctx, t_min, horizon):
                raise DiagnosticError(error("the scheduler found no cycle for this op's vectors (searched "
                                            f"{horizon} cycles past its operands and all that is placed)", sn.loc))
            plan = _try(sn, t, lat, routes, res, streams, pos, V, RL, SL, qd, wd, vxm, skip)
            if plan is not None:
                break
            t = max(t + 1, skip[0])
        failed[key] = (start, t)
        _commit(sn, t, plan, res, streams, add, wd)
        cycles.append((sn, t))
        w = plan["write"]
        ready[sn.dst] = w + wd
        ctx.length = max(ctx.length, w + wd)
    return Scheduled(ctx.insts, ctx.length, cycles, priority == "height" and info["uniform"])


def _io(sn) -> tuple[list[Vec], list[Vec]]:
    """The vectors an item reads and writes."""
    if type(sn) is Snippet:
        return [x.vec for x in sn.srcs], [sn.dst]
    if not _IO:
        _io_table()
    f = _IO.get(type(sn))
    return f(sn) if f is not None else ([x.vec for x in sn.srcs], [sn.dst])


_IO: dict = {}


def _io_table() -> None:
    """The items' classes (imported late: their modules import this one) -> their reads and writes."""
    from lpu.dsl.codegen.chain import Chain
    from lpu.dsl.codegen.gather import GatherJob, ScatterJob
    from lpu.dsl.codegen.mxm import LaneSumJob, MatmulJob
    from lpu.dsl.codegen.transpose import TransposeJob

    _IO.update({
        MatmulJob: lambda sn: ([v for row in sn.x for v in row] + [v for row in sn.w for v in row],
                               [v for row in sn.y + (sn.y2 or []) for v in row]),
        LaneSumJob: lambda sn: ([v for row in sn.rows for v in row] + sn.ones, list(sn.y)),
        Chain: lambda sn: (sn.reads(), [sn.dst]),
        TransposeJob: lambda sn: (list(sn.src), list(sn.dst)),
        GatherJob: lambda sn: ([sn.index, *sn.table], [sn.dst]),
        # a scatter may write any vector of the tensor: after every earlier write
        ScatterJob: lambda sn: ([sn.index, sn.src, *sn.table], list(sn.table)),
    })


def _list_order(snips: list, ready: dict, mutable: set = frozenset(), priority: str = "ready", info=None):
    """List scheduling: of the items whose producers are placed, the one whose operands are
    in SRAM first (``priority`` "ready"), or the one with the longest estimated chain of
    users after it ("height"; matmuls first, whose weight loads wait for nothing), program
    order breaking ties. Yields each item after its producers have been placed, so ``ready``
    (which the caller updates) is exact when it is keyed."""
    import heapq

    io = [_io(sn) for sn in snips]
    # a vector written once is read after that write wherever it stands in the list (chains are
    # listed where they start); a vector of a tensor written at run time (``store``) after the
    # latest write before the reader in program order — a read before any write sees what the
    # last run left there — and written after every read since its latest write
    producer: dict[Vec, int] = {}
    for i, (_, outs) in enumerate(io):
        for v in outs:
            producer[v] = i
    latest: dict[Vec, int] = {}
    readers: dict[Vec, list[int]] = {}
    waiting = [0] * len(snips)
    users: dict[int, list[int]] = {}
    for i, (ins, outs) in enumerate(io):
        deps = {(latest.get(v) if v in mutable else producer[v]) for v in ins if v in producer} - {None, i}
        for v in outs:
            if v in mutable:
                deps.update(r for r in readers.get(v, ()) if r != i)
        for v in ins:
            if v in mutable:
                readers.setdefault(v, []).append(i)
        waiting[i] = len(deps)
        for d in deps:
            users.setdefault(d, []).append(i)
        for v in outs:
            latest[v] = i
            if v in mutable:
                readers[v] = []
    height = _heights(snips, users, waiting) if priority == "height" else [0] * len(snips)
    if info is not None:  # one height for all: the order is "ready"'s
        info["uniform"] = len(set(height)) <= 1
    heap = [(-height[i], 0, i) for i in range(len(snips)) if waiting[i] == 0]
    heapq.heapify(heap)
    placed = 0
    while heap:
        _, _, i = heapq.heappop(heap)
        placed += 1
        yield snips[i]
        for u in users.get(i, ()):
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(heap, (-height[u], max((ready.get(v, 0) for v in io[u][0]), default=0), u))
    if placed != len(snips):  # items waiting on each other: a lowering bug, never a silent drop
        stuck = next(sn for i, sn in enumerate(snips) if waiting[i])
        raise DiagnosticError(error(f"internal error: {len(snips) - placed} items of the schedule wait on each other",
                                    getattr(stuck, "loc", None)))


#: the list scheduler's priorities among placeable items, each tried (``schedule_snippets``):
#: "height" (the longest chain of estimated latencies to the end first) and "ready" (the
#: earliest operands first), which is kept on a tie and not tried when every height is alike
PRIORITIES = ("height", "ready")


def _estimate(sn) -> int:
    """A rough latency of an item, for priorities only (placement finds the real cycles)."""
    from lpu.dsl.codegen.chain import Chain
    from lpu.dsl.codegen.mxm import LaneSumJob, MatmulJob

    if isinstance(sn, Snippet):
        return 12
    if isinstance(sn, Chain):
        return 2 * len(sn.steps) + 12
    if isinstance(sn, MatmulJob):
        return len(sn.w) * len(sn.w[0]) // 8 + 4 * len(sn.x) * len(sn.x[0]) + 30
    if isinstance(sn, LaneSumJob):
        return 60
    return 20


def _heights(snips: list, users: dict, waiting: list) -> list[int]:
    """For each item, its estimated latency plus the longest such chain among its users."""
    left = list(waiting)
    order = [i for i in range(len(snips)) if left[i] == 0]
    for i in order:  # a topological order (the list grows as it is walked)
        for u in users.get(i, ()):
            left[u] -= 1
            if left[u] == 0:
                order.append(u)
    height = [0] * len(snips)
    for i in reversed(order):
        height[i] = _estimate(snips[i]) + max((height[u] for u in users.get(i, ())), default=0)
    from lpu.dsl.codegen.mxm import MatmulJob

    for i, sn in enumerate(snips):  # a matmul's weight loads depend on nothing: as early as can be
        if isinstance(sn, MatmulJob):
            height[i] = 10**9
    return height


def _next_port(res: Resources, unit: str, c: int, w: int, kind: str) -> int:
    """The first cycle after ``c`` where ``unit``'s queue and its ``kind`` port (``w`` cycles)
    are both free in the tables (the search skips the cycles between: each would fail)."""
    q = res.busy.get(("queue", unit), ())
    p = res.busy.get((kind, unit), ())
    c += 1
    while c in q or any(c + k in p for k in range(w)):
        c += 1
    return c


def _try(sn, t, lat, routes, res, streams, pos, V, RL, SL, qd, wd, vxm, skip=None):
    """Everything the snippet needs if its VXM op issues at ``t``, or None; then ``skip[0]``
    may say a later cycle before which every try fails for a reason the tables alone give."""
    plan = {"reads": [], "sxm": [], "segs": []}
    used_queue: dict[tuple[str, int], bool] = {}

    def slot(unit, c):
        if (unit, c) in used_queue or not res.free("queue", unit, c):
            return False
        used_queue[(unit, c)] = True
        return True

    taken: list[tuple[list[Segment], int, int]] = []  # provisional stream groups of this snippet

    def group(segs, width):
        return streams.find_beside(segs, width, taken)

    seen: dict[Src, int] = {}
    for s, (q, sx, lead) in zip(sn.srcs, routes):
        if s in seen:  # the same vector twice (x * x): one read feeds both operands
            plan["sxm"].append(None)
            plan["reads"].append(None)
            plan["segs"].append(seen[s])
            continue
        seen[s] = len(plan["segs"])
        w = DTYPE_BYTES[s.dtype]
        r = t - lead
        if r < 0:
            if skip is not None:
                skip[0] = lead
            return None
        if not res.free("queue", s.vec.slice, r) or not res.free("read", s.vec.slice, r, w):
            if skip is not None:
                skip[0] = t + _next_port(res, s.vec.slice, r, w, "read") - r
            return None
        if not slot(s.vec.slice, r):
            return None
        if any(rd and rd[0] == s.vec.slice and abs(r - rd[1]) < max(w, rd[2]) for rd in plan["reads"]):
            return None
        if sx is None:
            segs = [Segment(q > V, q, r + RL, V)]
        else:
            unit, x = sx
            sc = r + RL + abs(q - x)
            if not slot(unit, sc):
                return None
            segs = [Segment(x < q, q, r + RL, x), Segment(x > V, x, sc + SL, V)]
        base = group(segs, w)
        if base is None:
            return None
        plan["sxm"].append((sx[0], sc) if sx is not None else None)
        plan["reads"].append((s.vec.slice, r, w))
        plan["segs"].append((segs, base, w))
    alu = next((a for a in vxm if (a, t) not in used_queue and res.free("queue", a, t)), None)
    if alu is None:
        if skip is not None:
            busy = [res.busy.get(("queue", a), ()) for a in vxm]
            c = t + 1
            while all(c in b for b in busy):
                c += 1
            skip[0] = c
        return None
    plan["alu"] = alu
    wcycle = t + lat + abs(qd - V)
    if not res.free("queue", sn.dst.slice, wcycle) or not res.free("write", sn.dst.slice, wcycle, wd):
        if skip is not None:
            skip[0] = t + _next_port(res, sn.dst.slice, wcycle, wd, "write") - wcycle
        return None
    if not slot(sn.dst.slice, wcycle):
        return None
    out_seg = [Segment(qd < V, V, t + lat, qd)]
    base = group(out_seg, wd)
    if base is None:
        return None
    plan["out"] = (out_seg, base)
    plan["write"] = wcycle
    return plan


def _commit(sn: Snippet, t: int, plan, res: Resources, streams: Streams, add, wd: int) -> None:
    fields = []
    for s, rd, sg, at in zip(sn.srcs, plan["reads"], plan["segs"], plan["sxm"]):
        if rd is None:
            fields.append(fields[sg])
            continue
        (slice_, r, w), (segs, base, _) = rd, sg
        res.take("queue", slice_, r)
        res.take("read", slice_, r, w)
        for seg in segs:
            streams.take(seg, base, w)
        first = stream_field(base, segs[0].west)
        add(r, slice_, "read", s.dtype, (SymRef(s.vec.symbol, s.vec.row * w), first, 0), loc=sn.loc)
        if s.sxm is not None:
            kind, n = s.sxm
            unit, sc = at
            res.take("queue", unit, sc)
            last = stream_field(base, segs[1].west)
            add(sc, unit, kind, s.dtype, (first, n, last), loc=sn.loc)
            fields.append(last)
        else:
            fields.append(first)
    res.take("queue", plan["alu"], t)
    out_seg, obase = plan["out"]
    streams.take(out_seg[0], obase, wd)
    dst = stream_field(obase, out_seg[0].west)
    m = sn.mnemonic
    if m == "cvt":
        args = (fields[0], dst, sn.shift)
    elif sn.imm is not None:
        args = (fields[0], IMM | sn.imm, dst)
    else:
        args = (*fields, dst)
    add(t, plan["alu"], m, sn.dtype, args, sn.dtype2, sn.loc)
    w = plan["write"]
    res.take("queue", sn.dst.slice, w)
    res.take("write", sn.dst.slice, w, wd)
    add(w, sn.dst.slice, "write", sn.dst_dtype, (SymRef(sn.dst.symbol, sn.dst.row * wd), dst, 0), loc=sn.loc)
