"""Lowering of primitive ``df`` ops to snippets (``snippets.py``) over vectors (``vector.py``).

The function has been through ``inline, unroll, df-decompose, canonicalize, cse, dce``, so
what is left are primitives. Each becomes one snippet per output vector:

- elementwise ``add sub mul max min`` and the unary ops: one VXM instruction per vector, with
  numpy broadcasting (a broadcast row is re-read; a ``[..., 1]`` operand is splat, so its one
  vector per row serves every vector of the row; a scalar constant is the instruction's
  immediate);
- ``cast``: ``cvt``; ``quantize``: ``x · (1/scale) + zero_point`` in f32, then a saturating
  ``cvt``; ``dequantize``: ``(q − zero_point) · scale`` in f32, then ``cvt``;
- ``reduce_sum``/``reduce_max`` over the last axis: the row's vectors combined on the VXM (the
  ragged one first masked with ``select``), then rotated copies combined in two trips through
  the SXM (``rotate_tree``), which leaves the total in every lane (splat); lane sums of
  i8/f16/bf16 go through the MXM instead (an all-ones matrix, ``mxm.LaneSumJob``). Sums run
  in the accumulator type (i32/f32).
  Over another axis: elementwise across the rows;
- ``reshape`` keeping the last dimension, ``slice``/``concat`` on whole vectors: no code, the
  result is a list of the operand's vectors.
"""

from __future__ import annotations

import math

import numpy as np

from lpu.arch.isa import BY_MNEMONIC
from lpu.asm.operands import parse_imm
from lpu.diagnostics import DiagnosticError, error
from lpu.dsl import dialect as D
from lpu.dsl import types as T
from lpu.dsl.codegen.snippets import Snippet, Src
from lpu.dsl.codegen.vector import Storage, VValue
from lpu.dsl.frontend import loc_of

_COMMUTATIVE = ("add", "mul", "max", "min")


def unsupported(op, what: str) -> DiagnosticError:
    return DiagnosticError(error(f"the code generator does not compile {what} yet", loc_of(op)))


class Lowering:
    def __init__(self, storage: Storage, cfg, weights_of):
        self.st = storage
        self.cfg = cfg
        self.lanes = cfg.lanes
        self.weights_of = weights_of  # data/reserve op -> its initial contents
        self.values: dict = {}  # SSA value -> VValue
        self.scalars: dict = {}  # SSA value of a rank-0 (or one-element) constant -> its value
        self.snips: list = []  # Snippet, or mxm.MatmulJob
        self.weights: set = set()  # values used as a matmul's right operand (laid out for lw)
        self.transposed: dict = {}  # transpose results only used as matmul right operands
        self.arrays: dict = {}  # values known at compile time (constants, data tensors)
        self._n = 0

    # --- values ----------------------------------------------------------------------------
    def temp(self, shape, elem, loc=None) -> VValue:
        self._n += 1
        return self.st.alloc(f"t{self._n}", tuple(shape), elem, None, True, loc)

    def const(self, a: np.ndarray, elem: str, loc=None) -> VValue:
        self._n += 1
        return self.st.alloc(f"c{self._n}", a.shape, elem, a, False, loc)

    def emit(self, m, dtype, srcs, dst, dst_dtype=None, imm=None, dtype2=None, loc=None):
        # two different operands in one slice would need its read port in one cycle (their
        # routes to the VXM are equally long): copy one of them to another slice first
        for i, s in enumerate(srcs):
            if any(p.vec.slice == s.vec.slice and p != s and (p.sxm is None) == (s.sxm is None) for p in srcs[:i]):
                busy = {p.vec.slice for p in srcs}
                copy = self.st.alloc_vec(f"t{self._n + 1}", s.dtype, busy, loc)
                self._n += 1
                self.snips.append(Snippet("mov", s.dtype, [Src(s.vec, s.dtype)], copy, s.dtype, None, None, 0, loc))
                srcs = srcs[:i] + [Src(copy, s.dtype, s.sxm)] + srcs[i + 1:]
        self.snips.append(Snippet(m, dtype, srcs, dst, dst_dtype or dtype, imm, dtype2, 0, loc))

    # --- ops -------------------------------------------------------------------------------
    def lower(self, op) -> None:
        loc = loc_of(op)
        name = op.name.removeprefix("df.")
        if isinstance(op, D.ConstantOp):
            a = D.dense_value(op.value)
            elem = T.elem_of(op.result.type)
            if a.size == 1:
                self.scalars[op.result] = a.reshape(()).item()
            self.arrays[op.result] = np.asarray(a).reshape(T.shape_of(op.result.type))
            self.values[op.result] = self.const(np.asarray(a).reshape(T.shape_of(op.result.type)), elem, loc)
        elif isinstance(op, D.GetOp):
            sym = D.get_sym(op, "tensor")
            a = self.weights_of(sym)
            self.arrays[op.result] = a
            self._n += 1
            self.values[op.result] = self.st.alloc(f"c{self._n}", a.shape, T.elem_of(op.result.type), a, False, loc,
                                                   weights=op.result in self.weights)
        elif name in D.BINARY_OPS:
            self.binary(op, name, loc)
        elif name in D.UNARY_OPS and name not in D.COMPOSITE_UNARY:
            x = self.values[op.input]
            out = self.temp(x.shape, x.elem, loc)
            self.map1(name, x, out, loc)
            self.values[op.result] = out
        elif isinstance(op, D.CastOp):
            self.values[op.result] = self.convert(self.values[op.input], T.elem_of(op.result.type), loc)
        elif isinstance(op, D.QuantizeOp):
            self.values[op.result] = self.quantize(op, loc)
        elif isinstance(op, D.DequantizeOp):
            self.values[op.result] = self.dequantize(op, loc)
        elif isinstance(op, (D.ReduceSumOp, D.ReduceMaxOp)):
            self.values[op.result] = self.reduce(op, loc)
        elif isinstance(op, D.MatmulOp):
            self.values[op.result] = self.matmul(op, loc)
        elif isinstance(op, D.TransposeOp):
            self.transpose(op)
        elif isinstance(op, D.ReshapeOp):
            self.values[op.result] = self.reshape(op)
        elif isinstance(op, D.SliceOp):
            self.values[op.result] = self.slice(op)
        elif isinstance(op, D.ConcatOp):
            self.values[op.result] = self.concat(op)
        else:
            raise unsupported(op, f"'{op.name}' in a function of vector ops")

    def binary(self, op, kind, loc) -> None:
        a_v, b_v = op.lhs, op.rhs
        elem = T.elem_of(op.result.type)
        shape = T.shape_of(op.result.type)
        if a_v in self.scalars and b_v not in self.scalars and kind in _COMMUTATIVE:
            a_v, b_v = b_v, a_v
        out = self.temp(shape, elem, loc)
        imm = None
        if b_v in self.scalars and len(T.shape_of(b_v.type)) == 0:
            imm = parse_imm(self.scalars[b_v], elem) if elem in T.FLOATS else \
                parse_imm(int(self.scalars[b_v]), elem)
        a, b = self.values[a_v], self.values[b_v]
        ra, rb = _row_map(shape, a.shape), _row_map(shape, b.shape)
        C = out.cols(self.lanes)
        for r in range(out.rows):
            for c in range(C):
                srcs = [Src(a.vec(int(ra[r]), 0 if a.splat else c, self.lanes), elem)]
                if imm is None:
                    srcs.append(Src(b.vec(int(rb[r]), 0 if b.splat else c, self.lanes), elem))
                self.emit(kind, elem, srcs, out.vec(r, c, self.lanes), imm=imm, loc=loc)
        self.values[op.result] = out

    def map1(self, m, x: VValue, out: VValue, loc, imm=None, dtype2=None) -> None:
        """One instruction per vector: ``out = m(x)`` (``imm``: the b operand)."""
        for vi, vo in zip(x.vecs, out.vecs):
            self.emit(m, x.elem, [Src(vi, x.elem)], vo, out.elem, imm, dtype2, loc)

    def convert(self, x: VValue, elem: str, loc) -> VValue:
        if elem == x.elem:
            return x
        out = self.temp(x.shape, elem, loc)
        self.map1("cvt", x, out, loc, dtype2=elem)
        return out

    def scaled(self, x: VValue, m: str, value: float, loc) -> VValue:
        out = self.temp(x.shape, x.elem, loc)
        self.map1(m, x, out, loc, imm=parse_imm(float(value), x.elem))
        return out

    def quantize(self, op, loc) -> VValue:
        x = self.convert(self.values[op.input], "f32", loc)
        scale, zp = D.get_float(op, "scale"), D.get_int(op, "zero_point", 0)
        y = self.scaled(x, "mul", float(np.float32(1.0 / scale)), loc)
        if not zp:
            return self.convert(y, T.elem_of(op.result.type), loc)
        # round first (rint(a) + zp, not rint(a + zp): they differ at ties when zp is odd),
        # then clamp so that adding zp cannot wrap, then add and narrow with saturation
        y = self.convert(y, "i32", loc)
        lo, hi = -(1 << 31), (1 << 31) - 1
        y = self.scaled_int(y, "min", hi - zp, loc) if zp > 0 else self.scaled_int(y, "max", lo - zp, loc)
        y = self.scaled_int(y, "add", zp, loc)
        return self.convert(y, T.elem_of(op.result.type), loc)

    def scaled_int(self, x: VValue, m: str, value: int, loc) -> VValue:
        out = self.temp(x.shape, x.elem, loc)
        self.map1(m, x, out, loc, imm=parse_imm(int(value), x.elem))
        return out

    def dequantize(self, op, loc) -> VValue:
        x = self.convert(self.values[op.input], "f32", loc)
        scale, zp = D.get_float(op, "scale"), D.get_int(op, "zero_point", 0)
        if zp:
            x = self.scaled(x, "sub", float(zp), loc)
        y = self.scaled(x, "mul", scale, loc)
        return self.convert(y, T.elem_of(op.result.type), loc)

    # --- transposes ---------------------------------------------------------------------------
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
        raise unsupported(op, "a transpose other than the right operand of a matmul")

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

    # --- reductions ------------------------------------------------------------------------
    def reduce(self, op, loc) -> VValue:
        x = self.values[op.input]
        rank = len(x.shape)
        axis = D.get_int(op, "axis", -1) % max(rank, 1)
        kind = "add" if isinstance(op, D.ReduceSumOp) else "max"
        elem = T.elem_of(op.result.type)
        if (kind == "add" and rank and axis == rank - 1 and not x.splat and x.elem in ("i8", "f16", "bf16")
                and self.__dict__.setdefault("sum_elem", x.elem) == x.elem):
            return self.lane_sum_mxm(x, elem, tuple(T.shape_of(op.result.type)), loc)
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
                fill = -np.inf
            else:
                fill = np.iinfo(T.dtype(elem)).min
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
            self.rotate_tree(acc, kind, elem, out.vecs[r], loc)
        return out

    def lane_sum_mxm(self, x: VValue, acc: str, shape, loc) -> VValue:
        """Lane sums of i8/f16/bf16 rows on the MXM: products with an all-ones matrix held by
        one plane (loaded once), one ``mm`` per vector, the total splat in the slot."""
        from lpu.dsl.codegen.mxm import LaneSumJob

        L = self.lanes
        e = x.elem
        if "ones" not in self.__dict__:
            self._n += 1
            self.ones = self.st.alloc(f"ones{self._n}", (L, L), e, np.ones((L, L), T.dtype(e)), False, loc,
                                      weights=True)
        C = x.cols(L)
        valid = x.N - (C - 1) * L
        rows = []
        for r in range(x.rows):
            vecs = [x.vec(r, c, L) for c in range(C)]
            if valid < L:  # zero the padding lanes: they would be summed
                t = self.temp((L,), e, loc).vecs[0]
                self.emit("select", e, [Src(self.lane_mask(valid, e, loc), e), Src(vecs[-1], e),
                                        Src(self.lane_mask(0, e, loc), e)], t, loc=loc)
                vecs[-1] = t
            rows.append(vecs)
        out = self.temp(shape, acc, loc)
        self.snips.append(LaneSumJob(e, acc, rows, list(out.vecs), list(self.ones.vecs), loc))
        return out

    def rotate_tree(self, v, kind, elem, dst, loc) -> None:
        """Every lane of ``dst`` = the ``kind``-reduction of all lanes of ``v``, in two trips
        through the SXM (``chain.py``): with ``L = a·b`` lanes, ``m = v ∘ rot(v, 1) ∘ … ∘
        rot(v, a−1)`` combines windows of ``a`` lanes, then ``m ∘ rot(m, a) ∘ … ∘ rot(m,
        a(b−1))`` windows of ``a·b = L``: every lane exactly once (so sums are exact too)."""
        from lpu.dsl.codegen.chain import Chain

        L = self.lanes
        a = max(d for d in range(1, math.isqrt(L) + 1) if L % d == 0)
        trips = [(a, 1), (L // a, a)] if a > 1 else [(L, 1)]
        lat = BY_MNEMONIC[kind].latency_for(self.cfg, elem)
        copies = -(-T.dtype(elem).itemsize // lat)  # reads of one slice a step apart need w <= lat
        cur = v
        for n, (count, stride) in enumerate(trips):
            if count == 1:
                continue
            srcs = [cur]
            for _ in range(copies - 1):  # copies of the vector in other slices, read in turn
                c = self.st.alloc_vec(f"t{self._n + 1}", elem, {x.slice for x in srcs}, loc)
                self._n += 1
                self.emit("mov", elem, [Src(cur, elem)], c, loc=loc)
                srcs.append(c)
            out = dst if n == len(trips) - 1 else self.temp((L,), elem, loc).vecs[0]
            rot = [Src(srcs[k % copies], elem, ("rotate", stride * k)) for k in range(1, count)]
            self.snips.append(Chain(kind, elem, Src(cur, elem), rot, out, loc))
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

    # --- views -------------------------------------------------------------------------------
    def reshape(self, op) -> VValue:
        x = self.values[op.input]
        shape = tuple(T.shape_of(op.result.type))
        n = shape[-1] if shape else 1
        if n != x.N:
            raise unsupported(op, "a reshape that changes the last dimension")
        return VValue(shape, x.elem, x.vecs)

    def slice(self, op) -> VValue:
        x = self.values[op.input]
        if len(op.operands) > 1:
            raise unsupported(op, "a slice with a dynamic index")
        offsets, sizes = D.get_ints(op, "offsets"), D.get_ints(op, "sizes")
        L = self.lanes
        o, s = offsets[-1], sizes[-1]
        shape = tuple(T.shape_of(op.result.type))
        lead = x.shape[:-1]
        idx = np.arange(x.rows).reshape(lead) if lead else np.zeros((), int)
        sel = idx[tuple(slice(a, a + b) for a, b in zip(offsets[:-1], sizes[:-1]))].reshape(-1) if lead else [0]
        C = x.cols(L)
        if x.splat or (o % L == 0 and (s % L == 0 or o + s == x.N)):  # whole vectors: a view
            c0, c1 = (0, 1) if x.splat else (o // L, math.ceil((o + s) / L))
            vecs = [x.vecs[int(r) * C + c] for r in sel for c in range(c0, c1)]
            return VValue(shape, x.elem, vecs)
        if s == 1:
            raise unsupported(op, "a slice of one lane of a wider tensor")
        # lanes o + 320c + j: the tail of vector a shifted down, the head of vector a + 1 up
        loc = loc_of(op)
        out = self.temp(shape, x.elem, loc)
        oc = out.cols(L)
        e = x.elem
        for k, r in enumerate(sel):
            for c in range(oc):
                base = o + c * L
                a, off = divmod(base, L)
                src = x.vecs[int(r) * C + a]
                need = min(L, s - c * L)  # valid lanes of this output vector
                dst = out.vecs[k * oc + c]
                nxt = x.vecs[int(r) * C + a + 1] if off + need > L else None
                known = [self.st.content(v) for v in (src, nxt) if v is not None]
                if all(kn is not None for kn in known):  # constant lanes: shifted here
                    lanes = np.concatenate(known + [np.zeros(L, known[0].dtype)])[off:off + L]
                    out.vecs[k * oc + c] = self.const(lanes, e, loc).vecs[0]
                    continue
                if off + need <= L:
                    self.emit("mov", e, [Src(src, e, ("shift", -off))], dst, loc=loc)
                else:
                    mask = self.lane_mask(L - off, e, loc)
                    self.emit("select", e, [Src(mask, e), Src(src, e, ("shift", -off)),
                                            Src(x.vecs[int(r) * C + a + 1], e, ("shift", L - off))], dst, loc=loc)
        return out

    def lane_mask(self, n: int, elem: str, loc, lo: int = 0):
        """A constant vector: 1 in lanes [lo, n), 0 elsewhere (one per shape, shared)."""
        key = (lo, n, elem)
        cache = self.__dict__.setdefault("_masks", {})
        if key not in cache:
            lanes = np.arange(self.lanes)
            cache[key] = self.const(np.where((lanes >= lo) & (lanes < n), 1, 0).astype(T.dtype(elem)), elem,
                                    loc).vecs[0]
        return cache[key]

    def concat(self, op) -> VValue:
        xs = [self.values[v] for v in op.operands]
        shape = tuple(T.shape_of(op.result.type))
        rank = len(shape)
        axis = D.get_int(op, "axis", 0) % rank
        L = self.lanes
        if axis == rank - 1:
            if any(x.N % L for x in xs[:-1]):
                raise unsupported(op, "a concat along the last dimension of pieces that are not whole vectors")
            rows = xs[0].rows
            vecs = [v for r in range(rows) for x in xs for v in x.vecs[r * x.cols(L):(r + 1) * x.cols(L)]]
            return VValue(shape, xs[0].elem, vecs)
        parts, base = [], 0
        for x in xs:
            parts.append(np.arange(x.rows).reshape(x.shape[:-1]) + base)
            base += x.rows
        rows = np.concatenate(parts, axis=axis).reshape(-1)
        flat = [v for x in xs for v in x.vecs]
        C = xs[0].cols(L)
        return VValue(shape, xs[0].elem, [flat[int(r) * C + c] for r in rows for c in range(C)])


def _row_map(out_shape, shape) -> np.ndarray:
    """For each row of the result, the row of an operand under numpy broadcasting."""
    lead_out = tuple(out_shape[:-1])
    lead = tuple(shape[:-1]) if len(shape) > 1 else ()
    rows = int(np.prod(lead)) if lead else 1
    idx = np.arange(rows).reshape(lead) if lead else np.zeros((), int)
    if not lead_out:
        return np.zeros(1, int)
    return np.broadcast_to(idx, lead_out).reshape(-1)
