"""Chains: several VXM ops in a row whose running result never leaves the VXM.

``y = op(…op(op(first, s0), s1)…, s_{n−1})``: step ``i`` issues at ``t + i·latency``, reading
the previous step's result at the VXM's position in the cycle it appears there, and its other
operand ``s_i`` read from SRAM (possibly through an SXM) to arrive in that cycle. Only the
last result is written back. This is how a lane reduction combines many rotated copies of one
vector in one trip to the SXM (``lower.rotate_tree``): a trip costs a round trip to the SXM
plus two cycles a copy, where a tree of two-input steps through SRAM pays the round trip per
step.
"""

from __future__ import annotations

from dataclasses import dataclass

from lpu.arch.isa import BY_MNEMONIC, DTYPE_BYTES
from lpu.asm.operands import stream_field
from lpu.asm.records import SymRef
from lpu.diagnostics import DiagnosticError, SourceLoc, error
from lpu.dsl.codegen.snippets import Src, _overlap
from lpu.dsl.codegen.streams import Segment
from lpu.dsl.codegen.vector import Vec


@dataclass(slots=True)
class Chain:
    mnemonic: str
    dtype: str
    first: Src
    srcs: list[Src]  # one per step
    dst: Vec
    loc: SourceLoc | None = None


def schedule_chain(ch: Chain, s, horizon: int = 200_000) -> None:
    cfg = s.cfg
    V = next(q.position for q in cfg.queues if q.kind == "vxm")
    vxm = [q.name for q in cfg.queues if q.kind == "vxm"]
    sxm = {q.slice.hemisphere: (q.name, q.position) for q in cfg.queues if q.kind == "sxm"}
    SL = BY_MNEMONIC["rotate"].latency_for(cfg, "i8")
    lat = BY_MNEMONIC[ch.mnemonic].latency_for(cfg, ch.dtype)
    w = DTYPE_BYTES[ch.dtype]
    operands = [(ch.first, 0)] + [(x, i) for i, x in enumerate(ch.srcs)]
    routes = []
    t_min = 0
    for src, i in operands:
        q = s.pos[src.vec.slice]
        if src.sxm is None:
            route, lead = None, s.RL + abs(q - V)
        else:
            route = sxm["W" if q < V else "E"]
            lead = s.RL + abs(q - route[1]) + SL + abs(route[1] - V)
        routes.append((q, route, lead))
        t_min = max(t_min, s.ready.get(src.vec, 0) + lead - i * lat)
    t = t_min
    while True:
        plan = _try(ch, t, lat, w, operands, routes, s, V, SL, vxm)
        if plan is not None:
            break
        t += 1
        if t > t_min + horizon:
            raise DiagnosticError(error("the scheduler found no cycle for this reduction's chain", ch.loc))
    _commit(ch, t, lat, w, operands, plan, s)


def _try(ch, t, lat, w, operands, routes, s, V, SL, vxm):
    res, streams = s.res, s.streams
    used: set = set()
    taken: list = []

    def slot(unit, c):
        if (unit, c) in used or not res.free("queue", unit, c):
            return False
        used.add((unit, c))
        return True

    def group(segs, width):
        avoid = set()
        while True:
            base = streams.find(segs, width, avoid)
            if base is None:
                return None
            if all(not _overlap(segs, width, base, s2, w2, b2) for s2, w2, b2 in taken):
                taken.append((segs, width, base))
                return base
            avoid.add(base)

    reads, alus, chain = [], [], []
    for (src, i), (q, route, lead) in zip(operands, routes):
        at = t + i * lat
        r = at - lead
        if r < s.ready.get(src.vec, 0) or not slot(src.vec.slice, r) or not res.free("read", src.vec.slice, r, w):
            return None
        if any(rd[0] == src.vec.slice and abs(r - rd[1]) < w for rd in reads):
            return None
        sc = None
        if route is None:
            segs = [Segment(q > V, q, r + s.RL, V)]
        else:
            unit, x = route
            sc = r + s.RL + abs(q - x)
            if not slot(unit, sc):
                return None
            segs = [Segment(x < q, q, r + s.RL, x), Segment(x > V, x, sc + SL, V)]
        base = group(segs, w)
        if base is None:
            return None
        reads.append((src.vec.slice, r, segs, base, sc))
    n = len(ch.srcs)
    for i in range(n):
        at = t + i * lat
        alu = next((a for a in vxm if (a, at) not in used and res.free("queue", a, at)), None)
        if alu is None:
            return None
        used.add((alu, at))
        alus.append(alu)
        if i < n - 1:  # the running result, read by the next step as it appears
            seg = [Segment(False, V, at + lat, V)]
            base = group(seg, w)
            if base is None:
                return None
            chain.append((seg, base))
    qd = s.pos[ch.dst.slice]
    done = t + n * lat
    wc = done + abs(qd - V)
    if not slot(ch.dst.slice, wc) or not res.free("write", ch.dst.slice, wc, w):
        return None
    out = [Segment(qd < V, V, done, qd)]
    base = group(out, w)
    if base is None:
        return None
    return reads, alus, chain, (out, base, wc)


def _commit(ch, t, lat, w, operands, plan, s) -> None:
    reads, alus, chain, (out, obase, wc) = plan
    fields = []
    for (src, _), (slice_, r, segs, base, sc) in zip(operands, reads):
        s.take_read(src.vec, r, w, segs, base)
        first = stream_field(base, segs[0].west)
        s.add(r, slice_, "read", ch.dtype, (SymRef(src.vec.symbol, src.vec.row * w), first, 0), loc=ch.loc)
        if src.sxm is not None:
            unit = next(q.name for q in s.cfg.queues if q.kind == "sxm" and q.position == segs[0].end)
            s.res.take("queue", unit, sc)
            last = stream_field(base, segs[1].west)
            s.add(sc, unit, src.sxm[0], ch.dtype, (first, src.sxm[1], last), loc=ch.loc)
            fields.append(last)
        else:
            fields.append(first)
    for seg, base in chain:
        s.streams.take(seg[0], base, w)
    s.streams.take(out[0], obase, w)
    prev = fields[0]
    for i, alu in enumerate(alus):
        at = t + i * lat
        s.res.take("queue", alu, at)
        dst = stream_field(chain[i][1], False) if i < len(chain) else stream_field(obase, out[0].west)
        s.add(at, alu, ch.mnemonic, ch.dtype, (prev, fields[i + 1], dst), loc=ch.loc)
        prev = dst
    s.res.take("queue", ch.dst.slice, wc)
    s.res.take("write", ch.dst.slice, wc, w)
    s.add(wc, ch.dst.slice, "write", ch.dtype, (SymRef(ch.dst.symbol, ch.dst.row * w), prev, 0), loc=ch.loc)
    s.ready[ch.dst] = wc + w
    s.length = max(s.length, wc + w)
