"""``store``: a value written into an SRAM tensor at a run-time offset (a part of ``lower.Lowering``).

A tensor that a function stores into (a KV cache) has one storage for the whole function —
every ``get`` of it is those vectors, never a compile-time constant — and its words are never
reused: they hold what the next run of the program reads. Three shapes of window compile:

- **a static window** (no index): each vector of the value is moved onto its place (``mov``),
  a partial vector joined by ``select`` with the lanes it does not cover;
- **a window moving along the last axis** by one lane a step, with static rows (keys stored
  transposed: ``kt[head, dim, position]`` takes the new key as a column): the value is splat
  (one element a row, every lane), so each vector of the row becomes
  ``select(lane == offset + index · step, value, old)``, the lane mask compared on the VXM
  once per column of vectors and written back in place;
- **a window moving whole rows** (values ``v[head, position, dim]``): the row ``R = r + k·i``
  of each vector lives, in a weight matrix's layout, in slice ``R mod W`` of its column's
  window at row ``R div W`` (``W`` slices, a power of two, or ``R < W``; a table in one slice
  is ``W = 1``). Each candidate slice gathers its row at that run-time address, keeps it or
  takes the new vector by a ``select`` on ``R mod W == j``, and scatters it back (``scatter``,
  the mirror of ``gather``): the slices' ports work in parallel, and only the row the index
  names changes.

Reading the tensor before storing into it in the same function would need the old contents
kept apart: a diagnostic.
"""

from __future__ import annotations

import math

import numpy as np

from lpu.arch.isa import DTYPE_BYTES
from lpu.diagnostics import DiagnosticError, error
from lpu.dsl import dialect as D
from lpu.dsl import types as T
from lpu.dsl.codegen.gather import INDEX, GatherJob, ScatterJob
from lpu.dsl.codegen.snippets import Snippet, Src
from lpu.dsl.codegen.vector import VValue, unsupported

#: copies of a store's index vector, in different slices (one i32 read holds its port 4 cycles)
INDEX_COPIES = 4
#: copies of a lane mask every row of a store reads
MASK_COPIES = 8


class StoreLowering:
    """``Lowering``'s part: ``store`` (module doc), and the storage of stored tensors."""

    def mutable_storage(self, sym: str, ty, loc, data=None, copies: int = 1) -> VValue:
        """The one storage of a tensor written at run time (or of a template's symbol
        parameter): laid out for the MXM when a matmul reads it, never reused."""
        v = self.mutable.get(sym)
        if v is None:
            self._n += 1
            v = self.st.alloc(f"m_{sym}", tuple(T.shape_of(ty)), T.elem_of(ty), data, True, loc,
                              weights=sym in self.weight_syms, fixed=True, copies=copies, mutable=True)
            self.mutable[sym] = v
            self.fixed_symbols.update(vec.symbol for vec in v.vecs)
            if sym not in self.params:  # a module tensor: where the host can read it back
                self.layouts[sym] = (v, {})
        return v

    def store(self, op, loc) -> None:
        sym = D.get_sym(op, "tensor")
        if sym in self.read_before_store:
            raise unsupported(op, f"a store into '@{sym}' after a 'get' of it in the same function")
        t = self.mutable[sym] if sym in self.mutable else self.mutable_storage(
            sym, self.tensor_type(op, sym), loc, self.initial(sym), self.param_copies(sym))
        x = self.values[op.value]
        rank = len(t.shape)
        offsets = D.get_ints(op, "offsets") or [0] * rank
        step = D.get_ints(op, "step")
        if len(op.operands) == 1:
            return self.store_static(t, x, offsets, loc)
        if step[-1] != 0:
            if any(step[:-1]):
                raise unsupported(op, "a store whose run-time window moves along the last axis and another")
            return self.store_lanes(op, t, x, offsets, step[-1], loc)
        return self.store_rows(op, t, x, offsets, step, loc)

    # --- the three windows ---------------------------------------------------------------------
    def _rows(self, t: VValue, offsets, sizes) -> np.ndarray:
        lead = t.shape[:-1]
        idx = np.arange(t.rows).reshape(lead) if lead else np.zeros((), int)
        return idx[tuple(slice(a, a + b) for a, b in zip(offsets[:-1], sizes[:-1]))].reshape(-1) if lead else \
            np.zeros(1, int)

    def store_static(self, t: VValue, x: VValue, offsets, loc) -> None:
        L, e = self.lanes, t.elem
        o, n = offsets[-1], x.N
        rows = self._rows(t, offsets, x.shape)
        if o % L or (n % L and o + n != t.N):
            raise DiagnosticError(error("the code generator does not compile a static store that cuts a tensor's "
                                        "vectors yet", loc))
        for k, r in enumerate(rows):
            for c in range(x.cols(L)):
                dst = t.vec(int(r), o // L + c, L)
                self.emit("mov", e, [Src(x.vec(k, c, L), e)], dst, loc=loc)

    def lane_index(self, op, offset: int, step: int, loc) -> VValue:
        """``offset + index · step`` as an i32 splat."""
        i = self.convert(self.values[op.index], INDEX, loc)
        if step != 1:
            i = self.scaled_int(i, "mul", step, loc)
        return self.scaled_int(i, "add", offset, loc) if offset else i

    def store_lanes(self, op, t: VValue, x: VValue, offsets, step: int, loc) -> None:
        L, e = self.lanes, t.elem
        if not x.splat:
            raise unsupported(op, "a store whose run-time window moves along the last axis and is wider than one "
                                  "element")
        lane = self.lane_index(op, offsets[-1], step, loc)
        masks = []
        for c in range(t.cols(L)):  # lane == offset + i·step, per column of vectors, in the tensor's type
            iota = self.const(np.arange(c * L, (c + 1) * L, dtype=np.int32), INDEX, loc)
            eq = self.temp((L,), INDEX, loc)
            self.emit("cmp.eq", INDEX, [Src(iota.vecs[0], INDEX), Src(lane.vecs[0], INDEX)], eq.vecs[0], loc=loc)
            masks.append(self.spread(self.convert(eq, e, loc).vecs[0], e, loc))
        for k, r in enumerate(self._rows(t, offsets, x.shape)):
            for c, m in enumerate(masks):
                old = t.vec(int(r), c, L)
                self.emit("select", e, [Src(m[k % len(m)], e), Src(x.vec(k, 0, L), e), Src(old, e)], old, loc=loc)

    def store_rows(self, op, t: VValue, x: VValue, offsets, step, loc) -> None:
        L, e = self.lanes, t.elem
        w = DTYPE_BYTES[e]
        o, n = offsets[-1], x.N
        if o % L or (n % L and o + n != t.N and not x.splat):
            raise unsupported(op, "a store at a run-time row that cuts a tensor's vectors")
        lead = t.shape[:-1]
        strides = [int(np.prod(lead[d + 1:])) for d in range(len(lead))]
        k_rows = sum(a * b for a, b in zip(step[:-1], strides))  # rows a unit of the index moves
        i = self.convert(self.values[op.index], INDEX, loc)
        for rr, r0 in enumerate(self._rows(t, offsets, x.shape)):
            R = self.scaled_int(i, "mul", k_rows, loc) if k_rows != 1 else i
            R = self.scaled_int(R, "add", int(r0), loc) if r0 else R
            for c in range(x.cols(L)):
                col = (0 if t.splat else o // L) + c
                W, slots, stride = self._periodic(op, t, col)
                bits = W.bit_length() - 1
                q = self.scaled_int(R, "shr", bits, loc) if W > 1 else R
                words = self.scaled_int(q, "mul", stride * w, loc) if stride * w != 1 else q
                index = self._copies(words, loc)
                m = self.scaled_int(R, "and", W - 1, loc) if W > 1 else None
                src = x.vec(rr, c, L)
                column = [t.vec(R_, col, L) for R_ in range(t.rows)]
                # an index copy away from the slice it addresses and from the vector written
                # (both are read to pass that slice in the scatter's cycle)
                pick = lambda j, *away: next(v for v in index[j % len(index):] + index  # noqa: E731
                                             if v.slice not in away)
                for j, base in enumerate(slots):
                    # the vectors this candidate may touch: its slice's (the candidates of the
                    # other slices are independent of it)
                    table = [v for v in column if v.slice == base.slice]
                    if W == 1:
                        self.snips.append(ScatterJob(pick(j, base.slice, src.slice), src, base, table, e, loc))
                        continue
                    old = self.temp((L,), e, loc).vecs[0]
                    self.snips.append(GatherJob(pick(j, base.slice), base, table, old, e, loc))
                    cond = self.convert(self.scaled_int(m, "cmp.eq", j, loc), e, loc).vecs[0]
                    new = self.temp((L,), e, loc).vecs[0]
                    self.emit("select", e, [Src(cond, e), Src(src, e), Src(old, e)], new, loc=loc)
                    self.snips.append(ScatterJob(pick(j, base.slice, new.slice), new, base, table, e, loc))

    def _periodic(self, op, t: VValue, col: int):
        """Column ``col`` of ``t`` as ``(W, slots, stride)``: row ``R``'s vector is in slot ``R
        mod W``'s slice, ``(R div W) · stride`` vectors past that slot's first (a weight
        matrix's window of ``W`` slices; a table in one slice is ``W = 1``)."""
        L = self.lanes
        vecs = [t.vec(R, col, L) for R in range(t.rows)]
        W = len({v.slice for v in vecs})
        stride = (vecs[W].row - vecs[0].row) if len(vecs) > W else 1
        ok = (W & (W - 1) == 0 or t.rows <= W) and all(
            v.slice == vecs[R % W].slice and v.symbol == vecs[R % W].symbol and
            v.row == vecs[R % W].row + (R // W) * stride for R, v in enumerate(vecs))
        if not ok:
            raise unsupported(op, "a store at a run-time row of a tensor laid out across slices irregularly")
        if t.rows <= W and W & (W - 1):  # rows R < W: R div W is 0 and R mod W is R
            return 1 << math.ceil(math.log2(W)), vecs, stride
        return W, vecs[:W], stride

    def spread(self, v, elem: str, loc, n: int = MASK_COPIES) -> list:
        """``v`` and ``n - 1`` copies of it in other slices: a vector every one of many ops
        reads would hold one slice's read port for all of them."""
        out = [v]
        for _ in range(n - 1):
            out.append(self.st.alloc_vec(f"t{self._n + 1}", elem, {u.slice for u in out}, loc))
            self._n += 1
            self.snips.append(Snippet("mov", elem, [Src(v, elem)], out[-1], elem, None, None, 0, loc))
        return out

    def _copies(self, words: VValue, loc) -> list:
        out = []
        for _ in range(INDEX_COPIES):
            out.append(self.st.alloc_vec(f"t{self._n + 1}", INDEX, {v.slice for v in out}, loc))
            self._n += 1
            self.snips.append(Snippet("mov", INDEX, [Src(words.vecs[0], INDEX)], out[-1], INDEX, None, None, 0, loc))
        return out
