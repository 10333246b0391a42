"""Lowering of matmuls and transposes (a part of ``lower.Lowering``): ``MatmulJob``s on the
MXM planes, matmuls by a transpose as lane dot products (rows of the transposed matrix known
at compile time go through the MXM), transposes of constants done by the compiler."""

from __future__ import annotations

import numpy as np

from lpu.dsl import dialect as D
from lpu.dsl import types as T
from lpu.dsl.codegen.snippets import Snippet, Src
from lpu.dsl.codegen.vector import NEAR, VValue, unsupported
from lpu.dsl.frontend import loc_of


#: the smallest transpose done by the SXM's 16 x 16 block transposes: below it, moving lane
#: runs straight from the source (``gather``) is as fast (2 x 3 x 7 f16: 157 against 161
#: cycles; 5 x 40 bf16: 439 against 245; 64 x 64 i8: 3,796 against 431)
SXM_FROM = 64
#: from this many groups of 16 rows, the rows go into the transposes rotated (16g lanes for
#: group g), so each result vector's pieces need no shifts, only one rotate at the end: fewer
#: SXM trips but a longer path (64 x 64 i8: 537 rotated against 431 shifted pieces; 70 x 100
#: i8: 698 against 755; 330 x 340 i8: 5,935 against 8,441)
ROTATE_FROM = 5
MASK_COPIES = 4  # copies of each superlane mask: 330 x 340 i8 5,935 -> 4,950 cycles (8: no better)


class MatmulLowering:
    def transpose(self, op) -> None:
        x = self.values[op.input]
        perm = D.get_ints(op, "perm") or list(reversed(range(len(x.shape))))
        if op.input in self.arrays:  # a constant: transposed here, laid out like any other
            a = np.ascontiguousarray(np.transpose(self.arrays[op.input], perm))
            self._n += 1
            self.arrays[op.result] = a
            self.values[op.result] = self.st.alloc(f"c{self._n}", a.shape, x.elem, a, False, loc_of(op),
                                                   weights=op.result in self.weights)
            return
        uses = [u.operation for u in op.result.uses]
        if perm == [1, 0] and uses and all(isinstance(u, D.MatmulOp) and u.rhs is op.result and u.lhs is not op.result
                                           for u in uses):
            self.transposed[op.result] = x  # matmul(a, transpose(b)): lane dot products
            return
        shape = tuple(T.shape_of(op.result.type))
        rank = len(x.shape)
        if perm[-1] == rank - 1:  # the last axis stays: rows change places, no code
            self.values[op.result] = self.row_view(x, perm)
            return
        if rank >= 2 and x.rows * x.N > SXM_FROM and min(x.shape[perm[-1]], x.N) > 1:
            self.values[op.result] = self.transpose_sxm(x, perm, loc_of(op))
            return
        # lanes moved one run at a time (``gather``): small tensors, and moves of an axis of 1
        # (a reshape: runs stay long)
        src = np.transpose(np.arange(x.rows * x.N).reshape(x.shape), perm).reshape(-1)
        self.values[op.result] = self.gather(shape, x.elem, [x], np.zeros(len(src), int), src, loc_of(op))

    def row_view(self, x: VValue, perm) -> VValue:
        """A transpose that keeps the last axis: the same vectors, rows in another order."""
        lead = x.shape[:-1]
        rows = np.transpose(np.arange(x.rows).reshape(lead), perm[:-1]).reshape(-1)
        C = x.cols(self.lanes)
        shape = tuple(x.shape[p] for p in perm)
        return VValue(shape, x.elem, [x.vecs[int(r) * C + c] for r in rows for c in range(C)])

    def transpose_sxm(self, x: VValue, perm, loc) -> VValue:
        """Any transpose moving the last axis, through the SXM (``transpose.py``): the axis
        ``a`` that becomes last is brought next to the last one (a row view), the two are
        swapped by 16 x 16 block transposes and a gather of 16-lane pieces, and the leading
        axes are put in order (a row view)."""
        rank = len(x.shape)
        a = perm[-1]
        others = [d for d in range(rank) if d not in (a, rank - 1)]
        x1 = self.row_view(x, others + [a, rank - 1]) if others + [a] != list(range(rank - 1)) else x
        x2 = self.swap_last_two(x1, loc)
        labels = others + [rank - 1]
        q3 = [labels.index(p) for p in perm[:-1]] + [rank - 1]
        return self.row_view(x2, q3) if q3 != list(range(rank)) else x2

    def swap_last_two(self, x: VValue, loc) -> VValue:
        from lpu.dsl.codegen.transpose import GROUP, TransposeJob

        L = self.lanes
        A, B = x.shape[-2], x.shape[-1]
        batches = x.rows // A
        G, CB = -(-A // GROUP), x.cols(L)
        S = L // GROUP  # superlanes
        rotated = G >= ROTATE_FROM
        jobs = {}
        for bt in range(batches):
            for g in range(G):
                for cb in range(CB):
                    srcs, used = [], set()
                    for i in range(GROUP):
                        m = GROUP * g + i
                        v = x.vec(bt * A + m, cb, L) if m < A else None
                        if v is None:  # a padding row: any vector in a free slice (its lanes go unused)
                            v = self.zero_vec(next(p for p in self.st.pool if p not in used), x.elem, loc)
                        elif v.slice in used or (rotated and g % S):  # a copy: elsewhere (one read port a
                            # slice), rotated
                            copy = self.st.alloc_vec(f"t{self._n + 1}", x.elem, used, loc)
                            self._n += 1
                            turn = ("rotate", GROUP * (g % S)) if rotated and g % S else None
                            self.snips.append(Snippet("mov", x.elem, [Src(v, x.elem, turn)], copy, x.elem, None, None,
                                                      0, loc))
                            v = copy
                        used.add(v.slice)
                        srcs.append(v)
                    out = self.temp((GROUP, L), x.elem, loc)
                    self.snips.append(TransposeJob(srcs, list(out.vecs), x.elem, loc))
                    jobs[bt, g, cb] = out.vecs
        e = x.elem
        shape = tuple(x.shape[:-2]) + (B, A)
        if not rotated:  # output j of job (g, cb) holds in superlane k Y[n, 16g …], n = 320cb + 16k + j
            tvecs = [v for key in sorted(jobs) for v in jobs[key]]
            bt, n, m = np.meshgrid(np.arange(batches), np.arange(B), np.arange(A), indexing="ij")
            row = ((bt * G + m // GROUP) * CB + n // L) * GROUP + n % GROUP
            flat = (row * L + (n % L) // GROUP * GROUP + m % GROUP).reshape(-1)
            return self.gather(shape, e, [VValue((len(tvecs), L), e, tvecs)], np.zeros(len(flat), int), flat, loc)
        # rows 16g + i went in rotated by 16g lanes, so output j of job (g, cb) holds in
        # superlane (k + g) mod 20 the 16 elements Y[n, 16g … 16g + 15], n = 320cb + 16k + j: a
        # vector of Y is its 20 pieces joined by select where they are, then one rotate by -16k
        y = self.temp(shape, e, loc)
        C = y.cols(L)
        for bt in range(batches):
            for n in range(B):
                cb, k, j = n // L, n % L // GROUP, n % GROUP
                for c in range(C):
                    pieces = [(jobs[bt, g, cb][j], (k + g) % S) for g in range(c * S, min(G, (c + 1) * S))]
                    dst = y.vec(bt * B + n, c, L)
                    acc = pieces[0][0]
                    for idx, (v, sl) in enumerate(pieces[1:], 1):
                        last = idx == len(pieces) - 1 and k == 0
                        t = dst if last else self.temp((L,), e, loc).vecs[0]
                        mask = self.lane_mask(GROUP * sl + GROUP, e, loc, GROUP * sl, n % MASK_COPIES)
                        self.emit("select", e, [Src(mask, e), Src(v, e), Src(acc, e)], t, loc=loc)
                        acc = t
                    if acc is not dst:
                        turn = ("rotate", (-GROUP * k) % L) if k else None
                        self.emit("mov", e, [Src(acc, e, turn)], dst, loc=loc)
        return y

    def zero_vec(self, slice_: str, elem: str, loc):
        cache = self.__dict__.setdefault("_zeros", {})
        if (slice_, elem) not in cache:
            self._n += 1
            cache[(slice_, elem)] = self.st.alloc(f"c{self._n}", (self.lanes,), elem,
                                                  np.zeros(self.lanes, T.dtype(elem)), False, loc, at=slice_).vecs[0]
        return cache[(slice_, elem)]

    def matmul_transposed(self, op, B: VValue, loc) -> VValue:
        return self.dot_rows(self.values[op.lhs], B, T.elem_of(op.result.type), tuple(T.shape_of(op.result.type)),
                             loc)

    def dot_rows(self, x: VValue, B: VValue, acc: str, shape, loc) -> VValue:
        """``y[r, n] = Σ_k x[r, k] · B[n, k]``: each product row on the VXM in the accumulator
        type (exact for f16/bf16 and i8 products), summed over its lanes by the rotate tree
        (a splat), and the splats merged into ``y``'s vectors by ``select`` on lane masks."""
        L = self.lanes
        K = x.N
        kc = x.cols(L)
        valid = K - (kc - 1) * L
        y = self.temp(shape, acc, loc)
        Nn = B.rows
        # rows of B known at compile time (a KV cache in SRAM) are transposed here and go
        # through the MXM as an ordinary matmul; the rest are lane dot products
        known = 0
        while known < Nn and all(self.st.content(B.vec(known, c, L)) is not None for c in range(kc)):
            known += 1
        yc = None
        if known >= 2:
            rows = np.stack([np.concatenate([self.st.content(B.vec(n, c, L)) for c in range(kc)])[:K]
                             for n in range(known)])
            self._n += 1
            W = self.st.alloc(f"c{self._n}", (K, known), B.elem, np.ascontiguousarray(rows.T), False, loc,
                              weights=True)
            yc = self.mxm(x, W, acc, tuple(x.shape[:-1]) + (known,), loc)
        else:
            known = 0
        xa = self.convert(x, acc, loc) if known < Nn else x
        for r in range(x.rows):
            splats = []
            for n in range(known, Nn):
                vecs = []
                for c in range(kc):
                    b = B.vec(n, c, L)
                    if B.elem != acc:
                        t = self.temp((L,), acc, loc).vecs[0]
                        self.emit("cvt", B.elem, [Src(b, B.elem)], t, acc, dtype2=acc, loc=loc)
                        b = t
                    t = self.temp((L,), acc, loc).vecs[0]
                    self.emit("mul", acc, [Src(xa.vec(r, c, L), acc), Src(b, acc)], t, loc=loc)
                    vecs.append(t)
                if valid < L:
                    t = self.temp((L,), acc, loc).vecs[0]
                    zero = self.lane_mask(0, acc, loc)
                    self.emit("select", acc, [Src(self.lane_mask(valid, acc, loc), acc), Src(vecs[-1], acc),
                                              Src(zero, acc)], t, loc=loc)
                    vecs[-1] = t
                total = vecs[0]
                for v in vecs[1:]:
                    t = self.temp((L,), acc, loc).vecs[0]
                    self.emit("add", acc, [Src(total, acc), Src(v, acc)], t, loc=loc)
                    total = t
                sp = self.temp((L,), acc, loc).vecs[0]
                if (Nn - known) * x.rows > 4:
                    self.pair_tree(total, "add", acc, sp, loc)
                else:
                    self.rotate_tree(total, "add", acc, sp, loc, (Nn - known) * x.rows)
                splats.append(sp)
            for c in range(y.cols(L)):
                lo = max(known, c * L)
                part = splats[lo - known:min(Nn, (c + 1) * L) - known]
                if yc is None or known <= c * L:
                    self.merge(part, lo - c * L, acc, y.vec(r, c, L), loc)
                elif not part:
                    self.emit("mov", acc, [Src(yc.vec(r, c, L), acc)], y.vec(r, c, L), loc=loc)
                else:
                    m = self.merge(part, lo - c * L, acc, None, loc)
                    self.emit("select", acc, [Src(self.lane_mask(lo - c * L, acc, loc), acc),
                                              Src(yc.vec(r, c, L), acc), Src(m, acc)], y.vec(r, c, L), loc=loc)
        return y

    def merge(self, splats, lo: int, elem: str, dst, loc):
        """``dst`` lane ``lo + i`` = ``splats[i]``'s (a tree of selects on lane masks)."""
        if len(splats) == 1:
            if dst is not None:
                self.emit("mov", elem, [Src(splats[0], elem)], dst, loc=loc)
            return splats[0]
        half = len(splats) // 2
        a = self.merge(splats[:half], lo, elem, None, loc)
        b = self.merge(splats[half:], lo + half, elem, None, loc)
        out = dst if dst is not None else self.temp((self.lanes,), elem, loc).vecs[0]
        self.emit("select", elem, [Src(self.lane_mask(lo + half, elem, loc, lo), elem), Src(a, elem), Src(b, elem)],
                  out, loc=loc)
        return out

    # --- matmul ------------------------------------------------------------------------------
    def matmul(self, op, loc) -> VValue:
        if op.rhs in self.transposed:
            return self.matmul_transposed(op, self.transposed[op.rhs], loc)
        x, W = self.values[op.lhs], self.values[op.rhs]
        acc, shape = T.elem_of(op.result.type), tuple(T.shape_of(op.result.type))
        if len(W.shape) > 2:
            return self.batched_matmul(x, W, acc, shape, loc)
        if op.lhs in self.heads:  # x's rows are heads' vectors, as the reshape left them
            return self.mxm(x, self.weight_layout(W, loc), acc, shape, loc, heads=self.heads[op.lhs])
        return self.matmul2(x, W, acc, shape, loc)

    def batched_matmul(self, x: VValue, W: VValue, acc: str, shape, loc) -> VValue:
        """``[..., m, k] × [..., k, n]``: one matmul per batch (batch dimensions broadcast as
        numpy's), each on the MXM as its own ``MatmulJob`` — batch ``b``'s ``k`` rows of ``W``
        are the weights of its block (only those ``k`` rows are loaded by ``lw``), its ``m``
        rows of ``x`` one ``mm`` each; the results' rows are the batches' in order."""
        L = self.lanes
        m, k = (x.shape[-2], x.shape[-1]) if len(x.shape) >= 2 else (1, x.shape[-1])
        n = W.shape[-1]
        batch = shape[:-2]
        xi = np.broadcast_to(np.arange(int(np.prod(x.shape[:-2]))).reshape(x.shape[:-2]), batch).reshape(-1)
        wi = np.broadcast_to(np.arange(int(np.prod(W.shape[:-2]))).reshape(W.shape[:-2]), batch).reshape(-1)
        xc, wc = x.cols(L), W.cols(L)
        done: dict = {}
        vecs = []
        for b in range(int(np.prod(batch))):
            key = (int(xi[b]), int(wi[b]))
            if key not in done:  # (a broadcast batch pair met before: the same result)
                xb = VValue((m, k), x.elem, x.vecs[key[0] * m * xc:(key[0] + 1) * m * xc])
                Wb = VValue((k, n), W.elem, W.vecs[key[1] * k * wc:(key[1] + 1) * k * wc])
                done[key] = self.matmul2(xb, Wb, acc, (m, n), loc)
            vecs += done[key].vecs
        return VValue(shape, acc, vecs)

    def matmul2(self, x: VValue, W: VValue, acc: str, shape, loc) -> VValue:
        """``[..., K] × [K, N]``."""
        L = self.lanes
        if x.splat:  # K = 1: an outer product, one exact product a lane in the accumulator type
            xa, Wa = self.convert(x, acc, loc), self.convert(W, acc, loc)
            y = self.temp(shape, acc, loc)
            for r in range(y.rows):
                for c in range(y.cols(L)):
                    self.emit("mul", acc, [Src(xa.vec(r, 0, L), acc), Src(Wa.vec(0, c, L), acc)], y.vec(r, c, L),
                              loc=loc)
            return y
        if W.splat:  # N = 1: W's column as one row, and a lane dot product per row of x
            K = W.shape[0]
            B = self.gather((1, K), W.elem, [W], np.zeros(K, int), np.arange(K), loc)
            return self.dot_rows(x, B, acc, shape, loc)
        return self.mxm(x, self.weight_layout(W, loc), acc, shape, loc)

    def weight_layout(self, W: VValue, loc) -> VValue:
        """``W`` itself if each ``lw``'s rows are in slices of their own, else a copy laid out so."""
        L = self.lanes
        K = W.shape[0]
        elem = W.elem
        rows_per_lw = self.cfg["mxm.max_rows_per_lw"] // T.dtype(elem).itemsize
        C = W.cols(L)
        if not all(len({W.vec(i, c, L).slice for i in range(g, min(K, g + rows_per_lw))}) == min(K, g + rows_per_lw) - g
                   for g in range(0, K, rows_per_lw) for c in range(C)):
            # a computed matrix: copy it into the weight layout first
            self._n += 1
            Wl = self.st.alloc(f"t{self._n}", W.shape, elem, None, True, loc, weights=True)
            for a, b in zip(W.vecs, Wl.vecs):
                self.emit("mov", elem, [Src(a, elem)], b, loc=loc)
            W = Wl
        return W

    def mxm(self, x: VValue, W: VValue, acc: str, shape, loc, heads=None) -> VValue:
        """``x · W`` on the MXM planes (``W`` in the weight layout). ``heads``: x's rows as
        vectors of ``d`` lanes each, a K block of ``d`` rows of W apiece (``Lowering.reshape``)."""
        from lpu.dsl.codegen.mxm import SPLIT_ROWS, MatmulJob, k_split

        L = self.lanes
        K = W.shape[0]
        C = W.cols(L)
        elem = x.elem
        if heads is None:
            kc = x.cols(L)
            block, valid = 0, K - (kc - 1) * L
            xs = [[x.vec(r, c, L) for c in range(kc)] for r in range(x.rows)]
            pad = [kc - 1]
        else:
            xs, block = [list(row) for row in heads[0]], heads[1]
            valid, pad = block, range(len(xs[0]))
        if valid < L:  # zero x's padding lanes: the plane's rows past K hold stale weights
            # once for every matmul of the same x (q, k and v of one h), unless x is written at run time
            zeroed = self.zeroed
            written = {v for m in self.mutable.values() for v in m.vecs}
            mask = zero = None
            for row in xs:
                for j in pad:
                    key = (row[j], valid)
                    if key not in zeroed or row[j] in written:
                        if mask is None:
                            mask = self.const(np.where(np.arange(L) < valid, 1, 0).astype(T.dtype(elem)), elem, loc)
                            zero = self.const(np.zeros(L, T.dtype(elem)), elem, loc)
                        t = self.temp((L,), elem, loc).vecs[0]
                        self.emit("select", elem, [Src(mask.vecs[0], elem), Src(row[j], elem), Src(zero.vecs[0], elem)],
                                  t, loc=loc)
                        zeroed[key] = t
                    row[j] = zeroed[key]
        y = self.temp(shape, acc, loc)
        nc = y.cols(L)
        ys = [[y.vec(r, c, L) for c in range(nc)] for r in range(y.rows)]
        job = MatmulJob(elem, acc, xs, [[W.vec(i, c, L) for c in range(C)] for i in range(K)], ys, K, loc,
                        block=block)
        cut = k_split(K, C, self.cfg, block)
        if cut and len(xs) <= SPLIT_ROWS:
            # few column blocks and many K blocks: each column's K blocks on two planes of its
            # hemisphere at once (the weights' loads are the time), the two sums added here
            # (the sums dealt in turn over the values' pool on their planes' side — on their way
            # to the VXM — from past the NEAR slices, so that the values the adds chain with
            # rarely share a port: SmolLM2's block 2,238 -> 2,221, the add of the two sums and the
            # residual add one chain; mlp 953 -> 933; over 8 of the pool's slices only, mlp 970)
            def part(c):
                self._n += 1
                self._parts = self.__dict__.get("_parts", 0) + 1
                return self.st.alloc_vec(f"t{self._n}", acc, set(), loc, side=self.st.side_of(W.vec(0, c, L).slice),
                                         start=NEAR + self._parts)

            job.y = [[part(c) for c in range(nc)] for _ in range(y.rows)]
            job.y2 = [[part(c) for c in range(nc)] for _ in range(y.rows)]
            job.split = cut
            self.snips.append(job)
            for r in range(y.rows):
                for c in range(nc):
                    self.emit("add", acc, [Src(job.y[r][c], acc), Src(job.y2[r][c], acc)], y.vec(r, c, L), loc=loc)
            return y
        self.snips.append(job)
        return y

