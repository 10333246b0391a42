"""A ``slice`` whose index is only known at run time, through the MEM ``gather`` (a part of
the general path).

``slice %x, %i {offsets, sizes, step}`` with ``%i`` a value (not a constant the unrolled loops
left) takes rows ``offsets + i · step``. When the window moves along the leading axes only and
covers whole vectors of each row, each output vector is one vector of ``x`` at a static place
plus ``i`` times a fixed number of vectors: a ``gather`` on the slice that holds ``x`` reads the
vector at its address operand plus lane 0 of an i32 index vector, in words. So:

- ``x`` is kept in one slice, its vectors consecutive (a *table*): a tensor whose contents are
  known is laid out so at compile time; any other is copied there (a ``mov`` a vector). The
  table's words are never reused for temporaries (``reuse.py``): the run-time address must
  find every row where it was put;
- the index is scaled once on the VXM to words (``i · step_vectors · w``), and
- each output vector is a ``GatherJob``: the index vector read from SRAM to pass the table's
  slice in the ``gather``'s issue cycle, the gathered vector written as it passes its own
  slice — scheduled like a snippet whose unit is the table's MEM slice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lpu.arch.isa import BY_MNEMONIC, DTYPE_BYTES
from lpu.asm.operands import stream_field
from lpu.asm.records import SymRef
from lpu.diagnostics import DiagnosticError, SourceLoc, error
from lpu.dsl.codegen.snippets import search_limit
from lpu.dsl import dialect as D
from lpu.dsl import types as T
from lpu.dsl.codegen.snippets import Snippet, Src
from lpu.dsl.codegen.streams import Segment
from lpu.dsl.codegen.vector import Vec, VValue, unsupported, vector_count

#: the gather's index operand: lane 0 of an integer vector as wide as its stream group (ISA table)
INDEX = next(t for t, b in DTYPE_BYTES.items() if t.startswith("i") and
             b == int(next(o.width for o in BY_MNEMONIC["gather"].operands if o.name == "index")))


@dataclass(slots=True)
class GatherJob:
    index: Vec  # i32: lane 0 holds the offset in words
    base: Vec  # the vector read when the offset is 0
    table: list[Vec]  # every vector the offset may select (all must have landed)
    dst: Vec
    elem: str
    loc: SourceLoc | None = None


def schedule_gather(job: GatherJob, s, horizon: int) -> None:
    """Place ``job`` with the scheduler context ``s`` (``snippets._Context``)."""
    q_t, q_i = s.pos[job.base.slice], s.pos[job.index.slice]
    ready = max(s.ready.get(v, 0) for v in job.table)
    t0 = max(ready, s.ready.get(job.index, 0) + s.RL + abs(q_i - q_t))
    for t in range(t0, search_limit(s, t0, horizon) + 1):
        plan = _try(job, s, t, q_t, q_i)
        if plan is not None:
            _commit(job, s, t, plan)
            return
    raise DiagnosticError(error(f"the scheduler found no cycle for a gather (searched {horizon} cycles)", job.loc))


def _try(job, s, t, q_t, q_i):
    RL, res = s.RL, s.res
    w, wi = DTYPE_BYTES[job.elem], DTYPE_BYTES[INDEX]
    r = t - RL - abs(q_i - q_t)  # the index read, to pass the table's slice at t
    same = job.index.slice == job.base.slice
    if r < 0 or not res.free("queue", job.index.slice, r) or not res.free("read", job.index.slice, r, wi):
        return None
    if not res.free("queue", job.base.slice, t) or not res.free("read", job.base.slice, t, w):
        return None
    if same and (r == t or abs(r - t) < max(w, wi)):
        return None
    q_d = s.pos[job.dst.slice]
    c = t + RL + abs(q_d - q_t)  # the write, as the gathered vector passes its slice
    if (job.dst.slice, c) in ((job.index.slice, r), (job.base.slice, t)) or \
            not res.free("queue", job.dst.slice, c) or not res.free("write", job.dst.slice, c, w):
        return None
    seg_i = Segment(q_i > q_t, q_i, r + RL, q_t)
    seg_d = Segment(q_d < q_t, q_t, t + RL, q_d)
    taken: list = []
    bi = s.streams.find_beside([seg_i], wi, taken)
    bd = s.streams.find_beside([seg_d], w, taken) if bi is not None else None
    if bd is None:
        return None
    return r, c, seg_i, seg_d, bi, bd


def _commit(job, s, t, plan) -> None:
    r, c, seg_i, seg_d, bi, bd = plan
    w, wi = DTYPE_BYTES[job.elem], DTYPE_BYTES[INDEX]
    s.take_read(job.index, r, wi, [seg_i], bi)
    fi = stream_field(bi, seg_i.west)
    s.add(r, job.index.slice, "read", INDEX, (SymRef(job.index.symbol, job.index.row * wi), fi, 0), loc=job.loc)
    s.res.take("queue", job.base.slice, t)
    s.res.take("read", job.base.slice, t, w)
    s.streams.take(seg_d, bd, w)
    fd = stream_field(bd, seg_d.west)
    s.add(t, job.base.slice, "gather", job.elem, (SymRef(job.base.symbol, job.base.row * w), fi, fd, 0), loc=job.loc)
    s.res.take("queue", job.dst.slice, c)
    s.res.take("write", job.dst.slice, c, w)
    s.add(c, job.dst.slice, "write", job.elem, (SymRef(job.dst.symbol, job.dst.row * w), fd, 0), loc=job.loc)
    s.ready[job.dst] = c + w
    s.length = max(s.length, c + w)


@dataclass(slots=True)
class ScatterJob:
    """``src`` written into the slice of ``base`` at its address plus lane 0 of ``index`` (the
    mirror of ``GatherJob``): a ``store`` at a run-time row. ``table``: every vector of the
    tensor it may write (readers after it wait for it; it waits for the writes before it)."""

    index: Vec
    src: Vec
    base: Vec
    table: list[Vec]
    elem: str
    loc: SourceLoc | None = None


def schedule_scatter(job: ScatterJob, s, horizon: int) -> None:
    q_t, q_i, q_s = s.pos[job.base.slice], s.pos[job.index.slice], s.pos[job.src.slice]
    RL, res = s.RL, s.res
    w, wi = DTYPE_BYTES[job.elem], DTYPE_BYTES[INDEX]
    ready = max(s.ready.get(v, 0) for v in job.table)
    t0 = max(ready, s.ready.get(job.index, 0) + RL + abs(q_i - q_t), s.ready.get(job.src, 0) + RL + abs(q_s - q_t))
    for t in range(t0, search_limit(s, t0, horizon) + 1):
        ri, rs = t - RL - abs(q_i - q_t), t - RL - abs(q_s - q_t)  # both pass the slice at t
        if ri < 0 or rs < 0:
            continue
        reads = [(job.index.slice, ri, wi), (job.src.slice, rs, w)]
        if job.index.slice == job.src.slice and abs(ri - rs) < max(w, wi):
            continue
        if any(sl == job.base.slice and (r == t) for sl, r, _ in reads):
            continue
        if not all(res.free("queue", sl, r) and res.free("read", sl, r, n) for sl, r, n in reads):
            continue
        if not res.free("queue", job.base.slice, t) or not res.free("write", job.base.slice, t, w):
            continue
        seg_i = Segment(q_i > q_t, q_i, ri + RL, q_t)
        seg_s = Segment(q_s > q_t, q_s, rs + RL, q_t)
        taken: list = []
        bi = s.streams.find_beside([seg_i], wi, taken)
        bs = s.streams.find_beside([seg_s], w, taken) if bi is not None else None
        if bs is None:
            continue
        s.take_read(job.index, ri, wi, [seg_i], bi)
        s.take_read(job.src, rs, w, [seg_s], bs)
        fi, fs = stream_field(bi, seg_i.west), stream_field(bs, seg_s.west)
        s.add(ri, job.index.slice, "read", INDEX, (SymRef(job.index.symbol, job.index.row * wi), fi, 0), loc=job.loc)
        s.add(rs, job.src.slice, "read", job.elem, (SymRef(job.src.symbol, job.src.row * w), fs, 0), loc=job.loc)
        s.res.take("queue", job.base.slice, t)
        s.res.take("write", job.base.slice, t, w)
        s.add(t, job.base.slice, "scatter", job.elem, (SymRef(job.base.symbol, job.base.row * w), fi, fs, 0),
              loc=job.loc)
        for v in job.table:
            s.ready[v] = max(s.ready.get(v, 0), t + w)
        s.length = max(s.length, t + w)
        return
    raise DiagnosticError(error(f"the scheduler found no cycle for a store (searched {horizon} cycles)", job.loc))


#: copies of a striped lookup's index vector (each serves every few candidate gathers)
STRIPE_INDEX_COPIES = 16
#: copies of each bit of a striped lookup's row number (every select of its level reads one)
STRIPE_COND_COPIES = 8


@dataclass
class Striped:
    """A gather table too large for one slice: row ``r`` (``C`` vectors) in slice
    ``r mod S`` at vectors ``(r // S) · C …`` of that slice's tensor (``vecs[j]``)."""

    S: int
    C: int
    elem: str
    vecs: list[list[Vec]]


class GatherLowering:
    """``Lowering``'s part: a slice with a run-time index (``lower.Lowering.slice``)."""

    def dynamic_slice(self, op, loc) -> VValue:
        x = self.values[op.input]
        L = self.lanes
        offsets, sizes, step = D.get_ints(op, "offsets"), D.get_ints(op, "sizes"), D.get_ints(op, "step")
        o, n = offsets[-1], sizes[-1]
        if step[-1] != 0 or not (x.splat or (o % L == 0 and (n % L == 0 or o + n == x.N))):
            raise unsupported(op, "a slice with a run-time index that moves along the last axis or cuts its "
                                  "vectors")
        lead = x.shape[:-1]
        if any(a + b > d for a, b, d in zip(offsets[:-1], sizes[:-1], lead)):
            # the gathers' addresses are the window's vectors at index 0 (plus the index's offset)
            raise unsupported(op, "a slice with a run-time index whose window at index 0 lies outside the tensor")
        C = x.cols(L)
        idx = np.arange(x.rows).reshape(lead) if lead else np.zeros((), int)
        rows = idx[tuple(slice(a, a + b) for a, b in zip(offsets[:-1], sizes[:-1]))].reshape(-1) if lead else [0]
        row_strides = [int(np.prod(lead[d + 1:])) for d in range(len(lead))]
        per_index = sum(a * b for a, b in zip(step[:-1], row_strides)) * C  # vectors a unit of the index moves
        c0, c1 = (0, 1) if x.splat else (o // L, math.ceil((o + n) / L))
        if x.vecs and x.vecs[0].symbol in self.striped:
            return self.striped_slice(op, self.striped[x.vecs[0].symbol], rows, per_index // C, c0, c1, loc)
        table = self.table(x, loc)
        scale = per_index * DTYPE_BYTES[x.elem]  # words
        i = self.convert(self.values[op.index], INDEX, loc)
        words = self.scaled_int(i, "mul", scale, loc) if scale != 1 else i
        index = words.vecs[0]
        if index.slice == table.vecs[0].slice:  # one read port cannot serve the index and the gather
            moved = self.st.alloc_vec(f"t{self._n + 1}", INDEX, {index.slice}, loc)
            self._n += 1
            self.snips.append(Snippet("mov", INDEX, [Src(index, INDEX)], moved, INDEX, None, None, 0, loc))
            index = moved
        out = self.temp(tuple(T.shape_of(op.result.type)), x.elem, loc)
        dst = iter(out.vecs)
        for r in rows:
            for c in range(c0, c1):
                self.snips.append(GatherJob(index, table.vecs[int(r) * C + c], table.vecs, next(dst),
                                            x.elem, loc))
        return out

    def striped_slice(self, op, t: "Striped", rows, k: int, c0: int, c1: int, loc) -> VValue:
        """Rows ``r + k·i`` of a striped table (``Striped``): for each output vector, the
        candidate row of every slice gathered at ``(R >> log2 S) · C · w`` words, and the one
        of slice ``R mod S`` kept by a tree of ``select``s on the bits of ``R``."""
        w = DTYPE_BYTES[t.elem]
        bits = t.S.bit_length() - 1
        i = self.convert(self.values[op.index], INDEX, loc)
        out = self.temp(tuple(T.shape_of(op.result.type)), t.elem, loc)
        dst = iter(out.vecs)
        for r in rows:
            R = self.scaled_int(i, "mul", k, loc) if k != 1 else i
            R = self.scaled_int(R, "add", int(r), loc) if r else R
            q = self.scaled_int(R, "shr", bits, loc) if bits else R
            words = self.scaled_int(q, "mul", t.C * w, loc) if t.C * w != 1 else q
            # copies of the index in several slices: one i32 read holds its port 4 cycles, and
            # the index may not be read from the slice it is gathered in
            copies = []
            for _ in range(min(t.S, STRIPE_INDEX_COPIES)):
                copies.append(self.st.alloc_vec(f"t{self._n + 1}", INDEX, {v.slice for v in copies}, loc))
                self._n += 1
                self.snips.append(Snippet("mov", INDEX, [Src(words.vecs[0], INDEX)], copies[-1], INDEX, None, None,
                                          0, loc))
            # select's condition has the table's element type: bit b of R, converted (nonzero stays nonzero)
            conds = [self.convert(self.scaled_int(R, "and", 1 << b, loc), t.elem, loc).vecs[0] for b in range(bits)]
            # each level's selects read its condition: copies in other slices, so that those
            # reads do not queue at one read port (level 0 of 64 stripes has 32 selects a vector)
            sels = [(t.S >> (b + 1)) * (c1 - c0) for b in range(bits)]  # the selects of level b
            cond_copies = [self.spread(cv, t.elem, loc, min(STRIPE_COND_COPIES, max(1, n // 4)))
                           for cv, n in zip(conds, sels)]
            for c in range(c0, c1):
                cands = []
                for j, vecs in enumerate(t.vecs):
                    index = next(v for v in copies[j % len(copies):] + copies if v.slice != vecs[0].slice)
                    # beside its stripe: the selects then read as many ports as there are stripes,
                    # not the few nearest the VXM
                    self._n += 1
                    cand = self.st.alloc(f"t{self._n}", (self.lanes,), t.elem, None, True, loc,
                                         at=vecs[0].slice).vecs[0]
                    self.snips.append(GatherJob(index, vecs[c], vecs, cand, t.elem, loc))
                    cands.append(cand)
                for b in range(bits):  # level b keeps, of each pair, the one bit b of R names
                    nxt = []
                    for j, (a, bb) in enumerate(zip(cands[0::2], cands[1::2])):
                        last = len(cands) == 2
                        sel = next(dst) if last else self.temp((self.lanes,), t.elem, loc).vecs[0]
                        cs = cond_copies[b]
                        self.emit("select", t.elem, [Src(cs[(j + c * len(cands) // 2) % len(cs)], t.elem),
                                                     Src(bb, t.elem), Src(a, t.elem)], sel, loc=loc)
                        nxt.append(sel)
                    cands = nxt
                if not bits:
                    self.emit("mov", t.elem, [Src(cands[0], t.elem)], next(dst), loc=loc)
        return out

    def stripe(self, name: str, a: np.ndarray, elem: str, loc) -> VValue:
        """A table whose rows do not fit one slice, striped (``Striped``) over the ``S``
        least-filled slices, ``S`` the smallest power of two that keeps each slice's share
        within half a slice (at most every slice of the chip); the value's vectors in row
        order, so views and compile-time reads see the tensor as usual."""
        L = self.lanes
        shape = a.shape
        N = shape[-1] if shape else 1
        nrows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        C = 1 if N == 1 else math.ceil(N / L)
        w = DTYPE_BYTES[elem]
        n_slices = len(self.st.positions)
        S = 1
        while S * 2 <= n_slices and -(-nrows // S) * C * w > self.cfg.words // 2:
            S *= 2
        vxm = next(q.position for q in self.cfg.queues if q.kind == "vxm")
        pos = self.st.positions
        # the least-filled slices, the farthest from the VXM first (the nearest hold the temporaries)
        rank = lambda sl, used: (used[sl], -abs(pos[sl] - vxm), pos[sl])  # noqa: E731
        used = {sl: self.st.budget.used(sl) for sl in pos}
        order = sorted(pos, key=lambda sl: rank(sl, used))[:S]
        if any(used[sl] + -(-nrows // S) * C * w > self.cfg.words for sl in order):
            order = self._stripe_slices(S, nrows, C * w, used, rank) or order
            S = len(order)
        flat = a.reshape(nrows, N)
        per_slice = []
        for j, sl in enumerate(order):
            part = flat[j::S]
            self._n += 1
            per_slice.append(self.st.alloc(f"{name}s{j}", part.shape, elem, part, False, loc, at=sl).vecs)
        t = Striped(S, C, elem, per_slice)
        for v in per_slice:
            self.striped[v[0].symbol] = t
        vecs = [per_slice[r % S][(r // S) * C + c] for r in range(nrows) for c in range(C)]
        for v in per_slice:
            self.fixed_symbols.add(v[0].symbol)
        return VValue(tuple(shape), elem, vecs)

    def _stripe_slices(self, S: int, nrows: int, row_words: int, used: dict, rank) -> list[str] | None:
        """Where the weights have left fewer than ``S`` slices with room for a share: more,
        smaller shares (``S`` doubled), each in the slice with the most room left at its turn —
        a slice may hold several (a lookup reads every share, so those reads take turns on its
        port). None when even shares of one row each do not fit."""
        while S <= nrows:
            share, left, out = -(-nrows // S) * row_words, dict(used), []
            for _ in range(S):
                sl = min(left, key=lambda s: rank(s, left))
                if left[sl] + share > self.cfg.words:
                    break
                left[sl] += share
                out.append(sl)
            else:
                return out
            S *= 2
        return None

    def table_of(self, name: str, a: np.ndarray, elem: str, loc) -> VValue:
        """A tensor of known contents that is only looked up at run time, laid out as a table
        straight away: in one slice (its vectors consecutive) when it takes at most half a
        slice, else striped over several (``stripe``)."""
        words = vector_count(a.shape, self.lanes) * DTYPE_BYTES[elem]
        self.st._values += 1  # a value like any other: the next one starts one slice further
        if words > self.cfg.words // 2:
            return self.stripe(name, a, elem, loc)
        at = self.st.pool[(self._n + 1) % len(self.st.pool)]
        if not self.st._room(at, words):
            at = self.st._spill(words) or at
        v = self.st.alloc(name, a.shape, elem, a, False, loc, at=at)
        self.fixed_symbols.add(v.vecs[0].symbol)
        return v

    def table(self, x: VValue, loc) -> VValue:
        """``x`` with its vectors consecutive in one slice: laid out there when its contents
        are known, else copied there."""
        v0 = x.vecs[0]
        if v0.symbol in self.fixed_symbols and all(v.symbol == v0.symbol and v.row == v0.row + k
                                                   for k, v in enumerate(x.vecs)):
            return x
        known = [self.st.content(v) for v in x.vecs]
        self._n += 1
        at = self.st.pool[self._n % len(self.st.pool)]
        shape = (len(x.vecs), self.lanes)
        if all(k is not None for k in known):
            t = self.st.alloc(f"g{self._n}", shape, x.elem, np.stack(known), False, loc, at=at)
        else:
            t = self.st.alloc(f"g{self._n}", shape, x.elem, None, True, loc, at=at, fixed=True)
            for a, b in zip(x.vecs, t.vecs):
                self.snips.append(Snippet("mov", x.elem, [Src(a, x.elem)], b, x.elem, None, None, 0, loc))
        self.fixed_symbols.add(t.vecs[0].symbol)
        return t
