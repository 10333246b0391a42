"""Lowering of reductions (a part of ``lower.Lowering``): lane sums on the MXM with an
all-ones matrix, lane reductions by rotated copies through the SXMs (two chained trips, or a
tree of two-operand steps), reductions over other axes across rows."""

from __future__ import annotations

import math

import numpy as np

from lpu.arch.isa import BY_MNEMONIC
from lpu.dsl import dialect as D
from lpu.dsl import types as T
from lpu.dsl.codegen.snippets import Src
from lpu.asm.operands import parse_imm
from lpu.dsl.codegen.vector import NEAR, VValue


#: f32 lane sums through the MXM as three bf16 parts (``lane_sum_mxm``); off only to compare
F32_SUMS_ON_MXM = True
#: the three parts by truncation, each one chain (``bf16_parts``); off only to compare
TRUNCATED_PARTS = True
#: the slices of the latest rotate chains that a new chain's copies avoid (``rotate_tree``)
CHAIN_SLICES = 16
#: rows x copies above which a lane reduction's chains take slices of their own (``rotate_tree``)
SPREAD_ABOVE = 4
#: an argmax over rows of at least ARGMAX_SPREAD vectors deals its pairs' temporaries over all
#: the values' pool (the 32 slices nearest the VXM) in turn, from past the NEAR ones: its tree of
#: 153 pairs (1,224 f32 ops, every read and write four cycles of a port) had been bound by the
#: ports of the NEAR slices — SmolLM2's second chip 38,660 -> 38,125 cycles
ARGMAX_SPREAD = 16


class ReduceLowering:
    def reduce(self, op, loc) -> VValue:
        x = self.values[op.input]
        rank = len(x.shape)
        axis = D.get_int(op, "axis", -1) % max(rank, 1)
        kind = "add" if isinstance(op, D.ReduceSumOp) else "min" if isinstance(op, D.ReduceMinOp) else "max"
        elem = T.elem_of(op.result.type)
        if (kind == "add" and rank and axis == rank - 1 and not x.splat and x.elem in ("i8", "f16", "bf16")
                and self.__dict__.setdefault("sum_elem", x.elem) == x.elem):
            return self.lane_sum_mxm(x, elem, tuple(T.shape_of(op.result.type)), loc)
        if (kind == "add" and rank and axis == rank - 1 and not x.splat and x.elem == "f32" and F32_SUMS_ON_MXM
                and self.__dict__.setdefault("sum_elem", "bf16") == "bf16"):
            return self.lane_sum_mxm(x, elem, tuple(T.shape_of(op.result.type)), loc, parts=3)
        if (kind == "add" and rank and axis == rank - 1 and not x.splat and x.elem == "f16"
                and self.__dict__.get("sum_elem") == "bf16"):  # the function's sums are bf16 already
            return self.lane_sum_mxm(x, elem, tuple(T.shape_of(op.result.type)), loc, parts=2)
        if kind == "add":
            x = self.convert(x, elem, loc)  # sums run in the accumulator type
        if rank == 0:
            return x
        shape = tuple(T.shape_of(op.result.type))
        if axis != rank - 1:
            return self.reduce_rows(x, axis, kind, shape, loc)
        if x.splat:
            return x
        L = self.lanes
        C = x.cols(L)
        valid = x.N - (C - 1) * L
        mask = neutral = None
        if valid < L:
            mask = self.const(np.where(np.arange(L) < valid, 1, 0).astype(T.dtype(elem)), elem, loc)
            if kind == "add":
                fill = 0
            elif elem in T.FLOATS:
                fill = np.inf if kind == "min" else -np.inf
            else:
                info = np.iinfo(T.dtype(elem))
                fill = info.max if kind == "min" else info.min
            neutral = self.const(np.full(L, fill).astype(T.dtype(elem)), elem, loc)
        out = self.temp(shape, elem, loc)
        for r in range(x.rows):
            vecs = [x.vec(r, c, L) for c in range(C)]
            if mask is not None:
                t = self.temp((L,), elem, loc)
                self.emit("select", elem, [Src(mask.vecs[0], elem), Src(vecs[-1], elem), Src(neutral.vecs[0], elem)],
                          t.vecs[0], loc=loc)
                vecs[-1] = t.vecs[0]
            acc = vecs[0]
            for v in vecs[1:]:
                t = self.temp((L,), elem, loc)
                self.emit(kind, elem, [Src(acc, elem), Src(v, elem)], t.vecs[0], loc=loc)
                acc = t.vecs[0]
            self.rotate_tree(acc, kind, elem, out.vecs[r], loc, x.rows)
        return out

    def argmax(self, op, loc) -> VValue:
        """``argmax``/``argmin`` over the last axis of f32 rows: per lane, the best value and
        the first vector it is met in, combined pairwise in a tree over the row's vectors as they
        arrive (a matmul's columns), then two lane reductions — where the definition
        (``numerics.argmax``) reduces the whole row first, then compares every element with the
        result and reduces their indices: a second pass that waits for the first. A pair (the
        earlier ``b1, k1``, the later ``b2, k2``; ``k`` an f32 vector index, exact below 2^24)
        gives ``b = max(b1, b2)`` (NaN propagates) and ``k = max(k1, k2·better)``, ``better``
        = ``b1 < b2`` (``b2 < b1`` for argmin) or ``b2`` NaN and ``b1`` not: a NaN counts as
        the best and the first best wins, since every ``k2`` exceeds every ``k1``. Then ``m`` =
        the lane reduction of ``b``, and the least ``k·L + lane`` of the lanes whose ``b`` is
        ``m`` (or NaN): numpy's first index. Exact, so the result is the interpreter's."""
        x = self.values[op.input]
        kind = "max" if isinstance(op, D.ArgmaxOp) else "min"
        f, L = "f32", self.lanes
        C = x.cols(L)
        valid = x.N - (C - 1) * L
        out = self.temp(tuple(T.shape_of(op.result.type)), "i32", loc)

        spread = C >= ARGMAX_SPREAD

        def op2(m, a, b=None, value=None):
            if spread:  # a long row's pairs: their temporaries over the whole pool, not the NEAR slices
                self._n += 1
                self._argmax_turn = self.__dict__.get("_argmax_turn", 0) + 1
                t = self.st.alloc_vec(f"t{self._n}", f, {v.slice for v in (a, b) if v is not None}, loc,
                                      start=NEAR + self._argmax_turn)
            else:
                t = self.temp((L,), f, loc).vecs[0]
            srcs = [Src(a, f)] + ([Src(b, f)] if b is not None else [])
            self.emit(m, f, srcs, t, imm=None if value is None else parse_imm(float(value), f), loc=loc)
            return t

        def pair(one, two):
            (b1, k1), (b2, k2) = one, two
            better = op2("cmp.lt", b1, b2) if kind == "max" else op2("cmp.lt", b2, b1)
            better = op2("max", better, op2("sub", op2("cmp.eq", b1, b1), op2("cmp.eq", b2, b2)))
            k = op2("mul", better, value=k2) if isinstance(k2, int) else op2("mul", better, k2)
            if isinstance(k1, int):
                k = op2("max", k, value=k1) if k1 else k
            else:
                k = op2("max", k, k1)
            return op2(kind, b1, b2), k

        for r in range(x.rows):
            vecs = [x.vec(r, c, L) for c in range(C)]
            if valid < L:  # the padding lanes never win
                fill = self.const(np.full(L, -np.inf if kind == "max" else np.inf, np.float32), f, loc).vecs[0]
                t = self.temp((L,), f, loc).vecs[0]
                self.emit("select", f, [Src(self.lane_mask(valid, f, loc), f), Src(vecs[-1], f), Src(fill, f)], t,
                          loc=loc)
                vecs[-1] = t
            level = [(v, c) for c, v in enumerate(vecs)]
            while len(level) > 1:
                level = [pair(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                         for i in range(0, len(level), 2)]
            b, k = level[0]
            if isinstance(k, int):  # one vector: the index is its lane
                k = self.lane_mask(0, f, loc)
            m = self.temp((L,), f, loc).vecs[0]
            self.rotate_tree(b, kind, f, m, loc, x.rows)
            hit = op2("max", op2("cmp.eq", b, m), op2("cmp.eq", op2("cmp.eq", b, b), value=0.0))
            lane = self.const(np.arange(L, dtype=np.float32), f, loc).vecs[0]
            idx = op2("add", op2("mul", k, value=L), lane)
            none = self.const(np.full(L, x.N, np.float32), f, loc).vecs[0]
            cand = self.temp((L,), f, loc).vecs[0]
            self.emit("select", f, [Src(hit, f), Src(idx, f), Src(none, f)], cand, loc=loc)
            first = self.temp((L,), f, loc).vecs[0]
            self.rotate_tree(cand, "min", f, first, loc, x.rows)
            self.emit("cvt", f, [Src(first, f)], out.vecs[r], "i32", dtype2="i32", loc=loc)
        return out

    def lane_sum_mxm(self, x: VValue, acc: str, shape, loc, parts: int = 1) -> VValue:
        """Lane sums of i8/f16/bf16 rows on the MXM: products with an all-ones matrix held by
        one plane (loaded once), one ``mm`` per vector, the total splat in the slot.

        f32 rows (``parts = 3``) go as three bf16 vectors each — ``x = hi + mid + lo``, each
        part the bf16 rounding of what the parts before it leave — whose 24 bits of fraction
        hold every f32 exactly (a sum of exact products, accumulated in f32 as any f32 sum):
        one trip to the MXM instead of two through the SXM with the rotate tree. f16 rows in a
        function whose sums are bf16 already (one all-ones matrix) go as two bf16 parts
        (``parts = 2``: an f16 has 11 bits of fraction)."""
        from lpu.dsl.codegen.mxm import LaneSumJob

        L = self.lanes
        e = x.elem if parts == 1 else "bf16"
        if "ones" not in self.__dict__:
            self._n += 1
            from lpu.dsl.codegen.mxm import plane_order

            # beside the plane that keeps it (the scheduler's last: ``snippets._Context``), so
            # its loads start as the function does, not a chip's width later
            plane = plane_order(self.cfg)[-1][0]
            side = next(q.slice.hemisphere for q in self.cfg.queues if q.name == plane)
            self.ones = self.st.alloc(f"ones{self._n}", (L, L), e, np.ones((L, L), T.dtype(e)), False, loc,
                                      weights=True, side=side)
        C = x.cols(L)
        valid = x.N - (C - 1) * L
        rows = []
        for r in range(x.rows):
            vecs = [x.vec(r, c, L) for c in range(C)]
            if valid < L:  # zero the padding lanes: they would be summed
                xe = x.elem
                t = self.temp((L,), xe, loc).vecs[0]
                self.emit("select", xe, [Src(self.lane_mask(valid, xe, loc), xe), Src(vecs[-1], xe),
                                         Src(self.lane_mask(0, xe, loc), xe)], t, loc=loc)
                vecs[-1] = t
            if parts > 1:
                vecs = [p for v in vecs for p in (self._truncated_parts(v, loc, f16=True) if x.elem == "f16" else
                                                  self.bf16_parts(v, parts, loc))]
            rows.append(vecs)
        out = self.temp(shape, acc, loc)
        self.snips.append(LaneSumJob(e, acc, rows, list(out.vecs), list(self.ones.vecs), loc))
        return out

    def bf16_parts(self, v, parts: int, loc) -> list:
        """An f32 vector as ``parts`` bf16 vectors that sum to it. Three parts by truncation
        (``TRUNCATED_PARTS``): ``A`` = ``x`` with 7 mantissa bits kept (its low 16 bits
        cleared: a bf16 exactly), ``B`` with 15; then ``x = A + (B − A) + (x − B)``, both
        differences exact in f32 (the same sign and exponent) and of at most 8 significant
        bits, so bf16 values too. Each part is one chain from ``x`` or ``B`` (``chain.fuse``):
        ``and`` → ``cvt``; ``and`` → ``sub B`` → ``neg`` → ``cvt``; ``sub x`` → ``neg`` →
        ``cvt`` from ``B`` — where rounding each part from the rest the ones before it leave
        takes seven ops in a row, each through SRAM."""
        if parts == 3 and TRUNCATED_PARTS:
            return self._truncated_parts(v, loc)
        out, rest = [], v
        for k in range(parts):
            p = self.temp((self.lanes,), "bf16", loc).vecs[0]
            self.emit("cvt", "f32", [Src(rest, "f32")], p, "bf16", dtype2="bf16", loc=loc)
            out.append(p)
            if k < parts - 1:
                back = self.temp((self.lanes,), "f32", loc).vecs[0]
                self.emit("cvt", "bf16", [Src(p, "bf16")], back, "f32", dtype2="f32", loc=loc)
                nxt = self.temp((self.lanes,), "f32", loc).vecs[0]
                self.emit("sub", "f32", [Src(rest, "f32"), Src(back, "f32")], nxt, loc=loc)
                rest = nxt
        return out

    def _truncated_parts(self, x, loc, f16: bool = False) -> list:
        L = self.lanes

        def op(m, e, srcs, value=None, out="f32", e2=None):
            t = self.temp((L,), out, loc).vecs[0]
            self.emit(m, e, srcs, t, e2, dtype2=e2, imm=None if value is None else parse_imm(value, e), loc=loc)
            return t

        def to_bf16(t):
            return op("cvt", "f32", [Src(t, "f32")], out="bf16", e2="bf16")

        if f16:  # 11 bits: A and x − A (at most 4 significant bits), from x in f32 (exact)
            x = op("cvt", "f16", [Src(x, "f16")], e2="f32")
            a = op("and", "i32", [Src(x, "i32")], -65536, out="i32")
            hi = to_bf16(a)  # (emitted first: the order the list scheduler sees)
            return [hi, to_bf16(op("neg", "f32", [Src(op("sub", "f32", [Src(a, "f32"), Src(x, "f32")]), "f32")]))]
        b = op("and", "i32", [Src(x, "i32")], -256, out="i32")  # x with 15 mantissa bits
        hi = to_bf16(op("and", "i32", [Src(x, "i32")], -65536, out="i32"))
        a = op("and", "i32", [Src(x, "i32")], -65536, out="i32")
        mid = to_bf16(op("neg", "f32", [Src(op("sub", "f32", [Src(a, "f32"), Src(b, "f32")]), "f32")]))
        lo = to_bf16(op("neg", "f32", [Src(op("sub", "f32", [Src(b, "f32"), Src(x, "f32")]), "f32")]))
        return [hi, mid, lo]

    def _chain_copies(self, kind, elem) -> int:
        """The copies of a vector a rotate chain reads by turns: one read a step (the op's
        latency apart) and a ``w``-word vector holds its slice's read port ``w`` cycles."""
        return -(-T.dtype(elem).itemsize // BY_MNEMONIC[kind].latency_for(self.cfg, elem))

    def rotate_tree(self, v, kind, elem, dst, loc, rows: int = 1) -> None:
        """Every lane of ``dst`` = the ``kind``-reduction of all lanes of ``v``, in two trips
        through the SXM (``chain.py``): with ``L = a·b`` lanes, ``m = v ∘ rot(v, 1) ∘ … ∘
        rot(v, a−1)`` combines windows of ``a`` lanes, then ``m ∘ rot(m, a) ∘ … ∘ rot(m,
        a(b−1))`` windows of ``a·b = L``: every lane exactly once (so sums are exact too).

        A chain reads its copies every step, so its slices' read ports are its own while it
        runs. With many rows reduced side by side (``rows`` × copies above 4) the copies avoid
        the slices of the latest chains (``CHAIN_SLICES``) and the ones nearest the VXM (every
        value's first vector), and the chains of one trip take the two SXMs by turns. Without
        that, the nine rows of a decoder's softmax shared six slices and ran two or three at a
        time (a 9×256 f32 softmax: 759 → 693 cycles)."""
        from lpu.dsl.codegen.chain import Chain, Step

        L = self.lanes
        a = max(d for d in range(1, math.isqrt(L) + 1) if L % d == 0)
        trips = [(a, 1), (L // a, a)] if a > 1 else [(L, 1)]
        copies = self._chain_copies(kind, elem)
        spread = rows * copies > SPREAD_ABOVE  # a few chains' slices rarely meet: the vector itself serves
        busy = self.__dict__.setdefault("chain_slices", [])  # the slices the latest chains read
        st = self.st
        cur = v
        trips = [t for t in trips if t[0] > 1]

        # by trip: the sides of the latest chains' reads (the first trips of many rows run
        # together, then their second trips)
        sides = self.__dict__.setdefault("chain_sides", {})

        def fewer_reads(n):  # the hemisphere whose SXM the latest chains of trip n used less
            seen = sides.get(n, [])
            w = sum(x == "W" for x in seen) * 2
            return "W" if w < len(seen) else "E" if w > len(seen) else st.side_of(cur.slice)

        def private(side, taken=(), near=False):
            """A vector beyond the NEAR slices, in none a recent chain reads (``near``: the
            first such slice of the rotation, else the next one after the last chain's)."""
            self._n += 1
            self._chain = self.__dict__.get("_chain", NEAR) + 1
            return st.alloc_vec(f"t{self._n}", elem, set(busy) | set(st.pool[:NEAR]) | set(taken), loc, side=side,
                                start=NEAR if near else self._chain)

        for n, (count, stride) in enumerate(trips):
            # the copies the steps read by turns: the vector itself (unless a recent chain reads
            # its slice) and copies, alternately west and east (both SXMs), each in a slice of
            # its own — the chains of many rows reduced at once keep their ports to themselves
            srcs = [] if spread and (cur.slice in busy or st.side_of(cur.slice) != fewer_reads(n)) else [cur]
            while len(srcs) < copies or not srcs:
                if spread:
                    side = ("E" if st.side_of(srcs[-1].slice) == "W" else "W") if srcs else fewer_reads(n)
                    c = private(side, [x.slice for x in srcs])
                else:
                    c = st.alloc_vec(f"t{self._n + 1}", elem, {x.slice for x in srcs}, loc)
                    self._n += 1
                self.emit("mov", elem, [Src(cur, elem)], c, loc=loc)
                srcs.append(c)
            busy += [x.slice for x in srcs]
            del busy[:-CHAIN_SLICES]
            seen = sides.setdefault(n, [])
            seen += [st.side_of(x.slice) for x in srcs]
            del seen[:-CHAIN_SLICES // 2]
            # a trip's result goes straight to a slice of the next trip's own
            out = dst if n == len(trips) - 1 else private(fewer_reads(n + 1), [x.slice for x in srcs], near=True) \
                if spread else self.temp((L,), elem, loc).vecs[0]
            rot = [Src(srcs[k % copies], elem, ("rotate", stride * k)) for k in range(1, count)]
            self.snips.append(Chain(Src(cur, elem), [Step(kind, elem, r) for r in rot], out, loc))
            cur = out
        if cur is v:
            self.emit("mov", elem, [Src(v, elem)], dst, loc=loc)

    def pair_tree(self, v, kind, elem, dst, loc) -> None:
        """The same as ``rotate_tree`` in ``log2`` steps of two operands, each a trip to the
        SXM: fewer SXM instructions (9 rather than 34 for 320 lanes), so it is the better
        choice when many rows are reduced at once (lane dot products) and the SXMs bind."""
        L = self.lanes
        ops: list[tuple[int, int, int]] = []  # (a, b, n): vals[a] op rotate(vals[b], n)

        def step(a, b, n):
            ops.append((a, b, n))
            return len(ops)

        cur, k = 0, L
        while k % 2 == 0:  # lane i: the sum over lanes i mod k
            k //= 2
            cur = step(cur, cur, k)
        m = k
        if m > 1:  # windows of m consecutive lanes: P_j covers 2^j of them, the result `covered`
            P, result, covered = cur, None, 0
            top = m.bit_length() - 1
            for j in range(top + 1):
                if m >> j & 1:
                    if result is None:
                        result, covered = P, 1 << j
                    else:
                        result = step(result, P, covered)
                        covered += 1 << j
                if j < top:
                    P = step(P, P, 1 << j)
            cur = result
        if not ops:
            self.emit("mov", elem, [Src(v, elem)], dst, loc=loc)
            return
        assert cur == len(ops)
        vals = [v]
        for i, (a, b, n) in enumerate(ops):
            t = dst if i == len(ops) - 1 else self.temp((L,), elem, loc).vecs[0]
            self.emit(kind, elem, [Src(vals[a], elem), Src(vals[b], elem, ("rotate", n))], t, loc=loc)
            vals.append(t)

    def reduce_rows(self, x: VValue, axis, kind, shape, loc) -> VValue:
        out = self.temp(shape, x.elem, loc)
        lead = x.shape[:-1]
        idx = np.arange(x.rows).reshape(lead)
        groups = np.moveaxis(idx, axis, -1).reshape(-1, lead[axis])
        L = self.lanes
        C = x.cols(L)
        for r, rows in enumerate(groups):
            for c in range(C):
                acc = x.vec(int(rows[0]), c, L)
                for i, rr in enumerate(rows[1:]):
                    last = i == len(rows) - 2
                    t = out.vec(r, c, L) if last else self.temp((L,), x.elem, loc).vecs[0]
                    self.emit(kind, x.elem, [Src(acc, x.elem), Src(x.vec(int(rr), c, L), x.elem)], t, loc=loc)
                    acc = t
                if len(rows) == 1:
                    self.emit("mov", x.elem, [Src(acc, x.elem)], out.vec(r, c, L), loc=loc)
        return out

