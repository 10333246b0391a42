"""Lowering of matmuls and transposes (a part of ``lower.Lowering``): ``MatmulJob``s on the
MXM planes, matmuls by a transpose as lane dot products (rows of the transposed matrix known
at compile time go through the MXM), transposes of constants done by the compiler."""

from __future__ import annotations

import numpy as np

from lpu.dsl import dialect as D
from lpu.dsl import types as T
from lpu.dsl.codegen.snippets import Src
from lpu.dsl.codegen.vector import VValue, unsupported
from lpu.dsl.frontend import loc_of


#: the largest tensor a general transpose moves lane by lane
GATHER_LIMIT = 4096


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
        if len(x.shape) < 2 or x.rows * x.N > GATHER_LIMIT:
            raise unsupported(op, f"a transpose of more than {GATHER_LIMIT} elements (other than a constant or the "
                                  "right operand of a matmul)")
        # lanes moved one run at a time (``gather``): fine for small tensors
        shape = tuple(T.shape_of(op.result.type))
        src = np.transpose(np.arange(x.rows * x.N).reshape(x.shape), perm).reshape(-1)
        self.values[op.result] = self.gather(shape, x.elem, [x], np.zeros(len(src), int), src, loc_of(op))

    def matmul_transposed(self, op, B: VValue, loc) -> VValue:
        """``y[r, n] = Σ_k x[r, k] · B[n, k]``: each product row on the VXM in the accumulator
        type (exact for f16/bf16 and i8 products), summed over its lanes by the rotate tree
        (a splat), and the splats merged into ``y``'s vectors by ``select`` on lane masks."""
        x = self.values[op.lhs]
        L = self.lanes
        acc = T.elem_of(op.result.type)
        K = x.N
        kc = x.cols(L)
        valid = K - (kc - 1) * L
        y = self.temp(T.shape_of(op.result.type), acc, loc)
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
                (self.pair_tree if (Nn - known) * x.rows > 4 else self.rotate_tree)(total, "add", acc, sp, loc)
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
        L = self.lanes
        if x.splat or W.splat or len(W.shape) != 2:
            raise unsupported(op, "a matmul with a contraction or output dimension of 1")
        K, N = W.shape
        elem = x.elem
        acc = T.elem_of(op.result.type)
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
        return self.mxm(x, W, acc, T.shape_of(op.result.type), loc)

    def mxm(self, x: VValue, W: VValue, acc: str, shape, loc) -> VValue:
        """``x · W`` on the MXM planes (``W`` in the weight layout)."""
        from lpu.dsl.codegen.mxm import MatmulJob

        L = self.lanes
        K = W.shape[0]
        C = W.cols(L)
        elem = x.elem
        kc = x.cols(L)
        valid = K - (kc - 1) * L
        xs = [[x.vec(r, c, L) for c in range(kc)] for r in range(x.rows)]
        if valid < L:  # zero x's padding lanes: the plane's rows past K hold stale weights
            mask = self.const(np.where(np.arange(L) < valid, 1, 0).astype(T.dtype(elem)), elem, loc)
            zero = self.const(np.zeros(L, T.dtype(elem)), elem, loc)
            for row in xs:
                t = self.temp((L,), elem, loc).vecs[0]
                self.emit("select", elem, [Src(mask.vecs[0], elem), Src(row[-1], elem), Src(zero.vecs[0], elem)], t,
                          loc=loc)
                row[-1] = t
        y = self.temp(shape, acc, loc)
        nc = y.cols(L)
        ys = [[y.vec(r, c, L) for c in range(nc)] for r in range(y.rows)]
        self.snips.append(MatmulJob(elem, acc, xs, [[W.vec(i, c, L) for c in range(C)] for i in range(K)], ys, K, loc))
        return y

