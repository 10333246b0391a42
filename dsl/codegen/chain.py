"""Chains: several VXM ops in a row whose running result never leaves the VXM.

``y = f_n(…f_2(f_1(first, s_1), s_2)…)``: step ``i`` issues when step ``i − 1``'s result
appears at the VXM's position (its issue cycle plus its latency) and reads it there; its other
operand, if any, is read from SRAM (possibly through an SXM) to arrive in that cycle, or is
an immediate. Only the last result is written back. Two uses:

- a lane reduction combines many rotated copies of one vector in one trip to the SXM
  (``lower_reduce.rotate_tree``): a trip costs one round trip plus two cycles a copy, where a
  tree of two-input steps through SRAM pays the round trip per step;
- ``fuse`` turns a run of elementwise snippets, each consuming the previous one's only use,
  into one chain (GELU's eight ops, a layernorm's scale and shift…): two cycles a step instead
  of a trip to SRAM and back.
"""

from __future__ import annotations

from dataclasses import dataclass

from lpu.arch.isa import BY_MNEMONIC, DTYPE_BYTES
from lpu.asm.operands import stream_field
from lpu.asm.records import SymRef
from lpu.diagnostics import DiagnosticError, SourceLoc, error
from lpu.dsl.codegen.snippets import HORIZON, IMM, Snippet, Src, search_limit
from lpu.dsl.codegen.streams import Segment
from lpu.dsl.codegen.vector import Vec


@dataclass(slots=True)
class Step:
    mnemonic: str
    dtype: str  # the running value's type going in
    src: Src | None = None  # the other operand, from SRAM
    imm: int | None = None  # or an immediate
    dtype2: str | None = None  # cvt's target type

    @property
    def out(self) -> str:
        return self.dtype2 or self.dtype


@dataclass(slots=True)
class Chain:
    first: Src
    steps: list[Step]
    dst: Vec
    loc: SourceLoc | None = None

    def reads(self) -> list[Vec]:
        return [self.first.vec] + [st.src.vec for st in self.steps if st.src is not None]


#: the longest chain ``fuse`` builds (a longer one is harder to place in one piece)
MAX_STEPS = 12
_FUSABLE = {"add", "sub", "mul", "max", "min", "and", "or", "xor", "shl", "shr", "neg", "abs", "relu", "exp",
            "tanh", "sigmoid", "rsqrt", "recip", "cvt", "mov"}
_COMMUTATIVE = {"add", "mul", "max", "min", "and", "or", "xor"}


def fuse(items: list, keep: set[Vec], cfg) -> list:
    """Elementwise snippets whose result is used once, by the next elementwise op as an
    operand that can be the running value, become chains. ``keep``: vectors read from outside
    (function results)."""
    from lpu.dsl.codegen.snippets import _io

    uses: dict[Vec, int] = {}
    for it in items:
        for v in _io(it)[0]:
            uses[v] = uses.get(v, 0) + 1
    producer: dict[Vec, Chain] = {}
    out: list = []
    for it in items:
        if isinstance(it, Snippet) and it.mnemonic in _FUSABLE and all(s.sxm is None for s in it.srcs):
            srcs = list(it.srcs)
            k = next((i for i, s in enumerate(srcs) if s.vec in producer and uses.get(s.vec) == 1
                      and s.vec not in keep and (i == 0 or it.mnemonic in _COMMUTATIVE)
                      and sum(1 for x in srcs if x.vec == s.vec) == 1), None)
            other = srcs[1 - k] if k is not None and len(srcs) == 2 else None
            if k is not None and len(producer[srcs[k].vec].steps) < MAX_STEPS \
                    and _port_free(producer[srcs[k].vec], other, cfg):
                ch = producer.pop(srcs[k].vec)
                ch.steps.append(Step(it.mnemonic, it.dtype, other, it.imm, it.dtype2))
                ch.dst = it.dst
                producer[it.dst] = ch
                continue
            if len(srcs) == 2 and srcs[0].vec.slice == srcs[1].vec.slice:
                out.append(it)  # x * x: one read feeds both operands; a snippet does that
                continue
            ch = Chain(srcs[0], [Step(it.mnemonic, it.dtype, srcs[1] if len(srcs) == 2 else None, it.imm,
                                      it.dtype2)], it.dst, it.loc)
            producer[it.dst] = ch
            out.append(ch)
            continue
        out.append(it)
    return [_single(it) if isinstance(it, Chain) and len(it.steps) == 1 else it for it in out]


def _port_free(ch: Chain, src: Src | None, cfg) -> bool:
    """``src`` read for a new last step would not need a slice's read port while another read
    of the chain holds it (reads of one slice are as far apart as their steps)."""
    if src is None:
        return True
    rel = sum(BY_MNEMONIC[st.mnemonic].latency_for(cfg, st.dtype) for st in ch.steps)
    reads = [(ch.first, 0)]
    at = 0
    for st in ch.steps:
        if st.src is not None:
            reads.append((st.src, at))
        at += BY_MNEMONIC[st.mnemonic].latency_for(cfg, st.dtype)
    w = DTYPE_BYTES[src.dtype]
    return all(not (x.vec.slice == src.vec.slice and (x.sxm is None) == (src.sxm is None)
                    and abs(rel - r) < max(w, DTYPE_BYTES[x.dtype])) for x, r in reads)


def _single(ch: Chain) -> Snippet:
    """A chain of one step is the snippet it was."""
    st = ch.steps[0]
    srcs = [ch.first] + ([st.src] if st.src is not None else [])
    return Snippet(st.mnemonic, st.dtype, srcs, ch.dst, st.out, st.imm, st.dtype2, 0, ch.loc)


def schedule_chain(ch: Chain, s, horizon: int = HORIZON) -> None:
    cfg = s.cfg
    V = next(q.position for q in cfg.queues if q.kind == "vxm")
    vxm = [q.name for q in cfg.queues if q.kind == "vxm"]
    sxm = {q.slice.hemisphere: (q.name, q.position) for q in cfg.queues if q.kind == "sxm"}
    SL = BY_MNEMONIC["rotate"].latency_for(cfg, "i8")
    at = [0]  # each step's issue cycle relative to the first
    for st in ch.steps[:-1]:
        at.append(at[-1] + BY_MNEMONIC[st.mnemonic].latency_for(cfg, st.dtype))
    operands = [(ch.first, 0)] + [(st.src, at[i]) for i, st in enumerate(ch.steps) if st.src is not None]
    routes = []
    t_min = 0
    for src, rel in operands:
        q = s.pos[src.vec.slice]
        if src.sxm is None:
            route, lead = None, s.RL + abs(q - V)
        else:
            route = sxm["W" if q < V else "E"]
            lead = s.RL + abs(q - route[1]) + SL + abs(route[1] - V)
        routes.append((q, route, lead))
        t_min = max(t_min, s.ready.get(src.vec, 0) + lead - rel)
    t = t_min
    while True:
        plan = _try(ch, t, at, operands, routes, s, V, SL, vxm)
        if plan is not None:
            break
        t += 1
        if t > search_limit(s, t_min, horizon):
            raise DiagnosticError(error("the scheduler found no cycle for this chain of vector ops", ch.loc))
    _commit(ch, t, at, operands, plan, s)


def _try(ch, t, at, operands, routes, s, V, SL, vxm):
    res, streams = s.res, s.streams
    used: set = set()
    taken: list = []

    def slot(unit, c):
        if (unit, c) in used or not res.free("queue", unit, c):
            return False
        used.add((unit, c))
        return True

    def group(segs, width):
        return streams.find_beside(segs, width, taken)

    reads, alus, chain = [], [], []
    for (src, rel), (q, route, lead) in zip(operands, routes):
        w = DTYPE_BYTES[src.dtype]
        r = t + rel - lead
        if r < s.ready.get(src.vec, 0) or not slot(src.vec.slice, r) or not res.free("read", src.vec.slice, r, w):
            return None
        if any(rd[0] == src.vec.slice and abs(r - rd[1]) < max(w, rd[5]) for rd in reads):
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
        reads.append((src.vec.slice, r, segs, base, sc, w))
    n = len(ch.steps)
    for i, st in enumerate(ch.steps):
        c = t + at[i]
        alu = next((a for a in vxm if (a, c) not in used and res.free("queue", a, c)), None)
        if alu is None:
            return None
        used.add((alu, c))
        alus.append(alu)
        if i < n - 1:  # the running result, read by the next step as it appears
            seg = [Segment(False, V, t + at[i + 1], V)]
            base = group(seg, DTYPE_BYTES[st.out])
            if base is None:
                return None
            chain.append((seg, base))
    last = ch.steps[-1]
    w = DTYPE_BYTES[last.out]
    qd = s.pos[ch.dst.slice]
    done = t + at[-1] + BY_MNEMONIC[last.mnemonic].latency_for(s.cfg, last.dtype)
    wc = done + abs(qd - V)
    if not slot(ch.dst.slice, wc) or not res.free("write", ch.dst.slice, wc, w):
        return None
    out = [Segment(qd < V, V, done, qd)]
    base = group(out, w)
    if base is None:
        return None
    return reads, alus, chain, (out, base, wc)


def _commit(ch, t, at, operands, plan, s) -> None:
    reads, alus, chain, (out, obase, wc) = plan
    fields = []
    for (src, _), (slice_, r, segs, base, sc, w) in zip(operands, reads):
        s.take_read(src.vec, r, w, segs, base)
        first = stream_field(base, segs[0].west)
        s.add(r, slice_, "read", src.dtype, (SymRef(src.vec.symbol, src.vec.row * w), first, 0), loc=ch.loc)
        if src.sxm is not None:
            unit = next(q.name for q in s.cfg.queues if q.kind == "sxm" and q.position == segs[0].end)
            s.res.take("queue", unit, sc)
            last = stream_field(base, segs[1].west)
            s.add(sc, unit, src.sxm[0], src.dtype, (first, src.sxm[1], last), loc=ch.loc)
            fields.append(last)
        else:
            fields.append(first)
    for i, (seg, base) in enumerate(chain):
        s.streams.take(seg[0], base, DTYPE_BYTES[ch.steps[i].out])
    w = DTYPE_BYTES[ch.steps[-1].out]
    s.streams.take(out[0], obase, w)
    prev, k = fields[0], 1
    for i, (alu, st) in enumerate(zip(alus, ch.steps)):
        c = t + at[i]
        s.res.take("queue", alu, c)
        dst = stream_field(chain[i][1], False) if i < len(chain) else stream_field(obase, out[0].west)
        if st.mnemonic == "cvt":
            args = (prev, dst, 0)
        elif st.src is not None:
            args = (prev, fields[k], dst)
            k += 1
        elif st.imm is not None:
            args = (prev, IMM | st.imm, dst)
        else:
            args = (prev, dst)
        s.add(c, alu, st.mnemonic, st.dtype, args, st.dtype2, loc=ch.loc)
        prev = dst
    s.res.take("queue", ch.dst.slice, wc)
    s.res.take("write", ch.dst.slice, wc, w)
    s.add(wc, ch.dst.slice, "write", ch.steps[-1].out, (SymRef(ch.dst.symbol, ch.dst.row * w), prev, 0), loc=ch.loc)
    s.ready[ch.dst] = wc + w
    s.length = max(s.length, wc + w)
