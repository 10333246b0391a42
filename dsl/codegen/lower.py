"""Lowering of primitive ``df`` ops to snippets (``snippets.py``) over vectors (``vector.py``).

The function has been through ``inline, unroll, df-decompose, canonicalize, cse, dce``, so
what is left are primitives. Each becomes one snippet per output vector, or a job:

- comparisons: ``cmp.eq``/``cmp.lt``/``cmp.le`` (``gt``/``ge`` swap the operands, ``ne`` compares
  the ``eq`` result with 0); ``select``: the VXM's ``select``;
- elementwise ``add sub mul max min`` and the unary ops: one VXM instruction per vector, with
  numpy broadcasting (a broadcast row is re-read; a ``[..., 1]`` operand is splat, so its one
  vector per row serves every vector of the row; a scalar constant is the instruction's
  immediate);
- ``cast``: ``cvt``; ``quantize``: ``x · f32(1/scale)``, rounded to i32 by ``cvt``, plus the
  zero point (after a clamp that keeps the add from wrapping), narrowed by a saturating
  ``cvt``; ``dequantize``: ``(q − zero_point) · scale`` in f32, then ``cvt``;
- reductions: ``lower_reduce.py``; matmuls and transposes: ``lower_matmul.py``;
- ``call`` of an assembly kernel: ``lower_call.py``; a ``slice`` with a run-time index:
  ``gather.py``;
- ``reshape`` keeping the last dimension, ``slice``/``concat`` on whole vectors: no code, the
  result is a list of the operand's vectors; a slice inside vectors shifts lanes through the
  SXMs and joins two vectors with ``select`` (constant vectors are shifted here).
"""

from __future__ import annotations

import math

import numpy as np

from lpu.arch.isa import DTYPE_BYTES
from lpu.asm.operands import parse_imm
from lpu.asm.records import SymRef
from lpu.dsl import dialect as D
from lpu.dsl import types as T
from lpu.dsl.codegen.gather import GatherLowering
from lpu.dsl.codegen.lower_call import CallLowering
from lpu.dsl.codegen.lower_matmul import MatmulLowering
from lpu.dsl.codegen.lower_reduce import ReduceLowering
from lpu.dsl.codegen.snippets import Snippet, Src
from lpu.dsl.codegen.store import StoreLowering
from lpu.dsl.codegen.template import TemplateLowering
from lpu.dsl.codegen.vector import Storage, VValue, unsupported
from lpu.dsl.frontend import loc_of

_COMMUTATIVE = ("add", "mul", "max", "min")
#: a vector more than SPLAT_SHARE one-lane splats are taken from is copied (up to SPLAT_COPIES)
SPLAT_SHARE, SPLAT_COPIES = 8, 8
#: comparison -> (VXM mnemonic, operands swapped)
_CMP = {"eq": ("cmp.eq", False), "ne": ("cmp.eq", False), "lt": ("cmp.lt", False), "le": ("cmp.le", False),
        "gt": ("cmp.lt", True), "ge": ("cmp.le", True)}


#: a reshape read only by matmuls joins its rows as K blocks of the matmuls (``reshape``)
HEAD_BLOCKS = True


class Lowering(MatmulLowering, ReduceLowering, CallLowering, GatherLowering, TemplateLowering, StoreLowering):
    def __init__(self, storage: Storage, cfg, weights_of, kernel_program=None):
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
        self.kernel_program = kernel_program  # kernel name -> its assembled Program (lower_call.py)
        self.kernel_tensors: dict = {}  # the SRAM tensors called kernels use (asm Tensor records)
        self.kernel_writes: set[str] = set()  # the tensors they write
        self.fixed_symbols: set[str] = set()  # tensors whose words are never reused (gather tables)
        self.striped: dict = {}  # symbol -> gather.Striped: the tables striped over several slices
        self.tables: set = set()  # values only read by run-time slices (laid out as gather tables)
        self.templates: dict = {}  # callee -> template.Template: functions compiled once, called here
        self.bound_gets: set = set()  # get results only bound to template parameters (no storage here)
        self.compile_time: set = set()  # get results only transposed by the compiler (no storage either)
        self.instances: dict = {}  # (module tensor, template, storage) -> the call's tensors (renames)
        self.instance_names: set[str] = set()
        self.instance_list: list = []  # asm Tensor records of the calls' bound tensors
        self.layouts: dict = {}  # module tensor -> (its storage, renames of the storage's symbols)
        self.mutable: dict = {}  # symbol -> the one storage of a tensor stored into, or of a symbol parameter
        self.params: dict = {}  # symbol parameter -> its type (a template's)
        self.copies = 1  # calls a template's parameters are counted for
        self.stored: set[str] = set()  # tensors this function stores into
        self.snapshots: set = set()  # get results read after a later store (copied at the get)
        self.weight_syms: set[str] = set()  # tensors a matmul reads as its right operand
        self.zeroed: dict = {}  # (x's last vector, valid lanes) -> that vector with its padding lanes zeroed
        self.runs: dict = {}  # a reshape read only by ropes -> the first lane of each row in its vector (``reshape``)
        self.heads: dict = {}  # a reshape read only by matmuls -> its rows' vectors and their lanes (``reshape``)
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
        elif isinstance(op, D.GetOp) and (D.get_sym(op, "tensor") in self.params or
                                          D.get_sym(op, "tensor") in self.stored):
            sym = D.get_sym(op, "tensor")
            t = self.mutable_storage(sym, op.result.type, loc, self.initial(sym), self.param_copies(sym))
            if op.result in self.snapshots:  # read again after a later store: its contents now
                snap = self.temp(t.shape, t.elem, loc)
                for a, b in zip(t.vecs, snap.vecs):
                    self.emit("mov", t.elem, [Src(a, t.elem)], b, loc=loc)
                t = snap
            self.values[op.result] = t
        elif op.name == "df.store":
            self.store(op, loc)
        elif isinstance(op, D.GetOp):
            self.check_get(op)
            sym = D.get_sym(op, "tensor")
            a = self.weights_of(sym)
            self.arrays[op.result] = a
            self._n += 1
            elem = T.elem_of(op.result.type)
            if op.result in self.bound_gets:  # laid out by each template call that binds it
                return
            if op.result in self.compile_time:  # only its transposes (done here) are laid out
                self.values[op.result] = VValue(tuple(a.shape), elem, [])
                self.st._values += 1  # a value all the same: the next one starts one slice further
                return
            if op.result in self.tables:  # only looked up at run time: laid out as a table straight away
                self.values[op.result] = self.table_of(f"g{self._n}", np.asarray(a), elem, loc)
            else:
                self.values[op.result] = self.st.alloc(f"c{self._n}", a.shape, elem, a, False, loc,
                                                       weights=op.result in self.weights)
        elif name in D.BINARY_OPS:
            self.binary(op, name, loc)
        elif name in D.COMPARE_OPS:
            self.compare(op, name, loc)
        elif isinstance(op, D.SelectOp):
            self.values[op.result] = self.select(op, loc)
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
        elif isinstance(op, (D.ReduceSumOp, D.ReduceMaxOp, D.ReduceMinOp)):
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
        elif isinstance(op, D.CallOp):
            self.call(op, loc)
        elif isinstance(op, D.RopeOp):
            self.values[op.result] = self.rope(op, loc)
        elif isinstance(op, (D.ArgmaxOp, D.ArgminOp)):
            self.values[op.result] = self.argmax(op, loc)
        else:
            raise unsupported(op, f"'{op.name}' in a function of vector ops")

    # --- rope ---------------------------------------------------------------------------------
    def rope(self, op, loc) -> VValue:
        """``rope`` ("half" style, a row within one vector): ``y = x · [c, c] + rot(x) · [−s, s]``
        with ``rot(x)`` the row's halves swapped — both shifts through the SXMs on the way to
        one ``select`` — and the two tables built once from the cos/sin row. Bit for bit the
        definition (``numerics.rope``): ``u·c + (−(v·s))`` is ``u·c − v·s``."""
        x = self.values[op.input]
        e, L = x.elem, self.lanes
        h = x.N // 2
        cs = self._rope_tables(self.values[op.cos].vecs[0], self.values[op.sin].vecs[0], h, e, loc)
        lo = self.lane_mask(h, e, loc)
        out = self.temp(x.shape, e, loc)
        # a reshape's rows still in place in their vectors (``reshape``): row k starts at lane
        # runs[k], so every read shifts it down by that much too. The tables are zero past the
        # row, so whatever the other lanes hold is multiplied away.
        runs = self.runs.get(op.input) or [0] * len(x.vecs)
        for k, v in enumerate(x.vecs):
            o = runs[k]
            rot = self.temp((L,), e, loc).vecs[0]
            self.emit("select", e, [Src(lo, e), Src(v, e, ("shift", -h - o)), Src(v, e, ("shift", h - o))], rot,
                      loc=loc)
            a = self.temp((L,), e, loc).vecs[0]
            self.emit("mul", e, [Src(v, e, ("shift", -o) if o else None), Src(cs[0][k % len(cs[0])], e)], a, loc=loc)
            b = self.temp((L,), e, loc).vecs[0]
            self.emit("mul", e, [Src(rot, e), Src(cs[1][k % len(cs[1])], e)], b, loc=loc)
            self.emit("add", e, [Src(a, e), Src(b, e)], out.vecs[k], loc=loc)
        return out

    def _rope_tables(self, c, s, h: int, e: str, loc):
        """``[c, c]`` and ``[−s, s]`` from the cos/sin rows (shared by every rope of them), each
        in a few copies (every row of every rope reads them)."""
        cache = self.__dict__.setdefault("_rope", {})
        key = (c, s, h, e)
        if key not in cache:
            L = self.lanes
            lo = self.lane_mask(h, e, loc)
            cc = self.temp((L,), e, loc).vecs[0]
            self.emit("select", e, [Src(lo, e), Src(c, e), Src(c, e, ("shift", h))], cc, loc=loc)
            neg = self.temp((L,), e, loc).vecs[0]
            self.emit("neg", e, [Src(s, e)], neg, loc=loc)
            ss = self.temp((L,), e, loc).vecs[0]
            self.emit("select", e, [Src(lo, e), Src(neg, e), Src(s, e, ("shift", h))], ss, loc=loc)
            cache[key] = (self.spread(cc, e, loc, 4), self.spread(ss, e, loc, 4))
        return cache[key]

    # --- tensors written at run time (store.py) ----------------------------------------------
    def tensor_type(self, op, sym: str):
        return self.params[sym] if sym in self.params else D.tensor_type_of(op, sym)

    def initial(self, sym: str):
        """A stored module tensor's contents where the program starts (None: zeros, or a
        template's parameter, whose contents each call's own tensor has)."""
        if sym in self.params:
            return None
        return self.weights_of(sym) if isinstance(self.module_op(sym), D.DataOp) else None

    def param_copies(self, sym: str) -> int:
        return self.copies if sym in self.params else 1

    def binary(self, op, kind, loc) -> None:
        self.values[op.result] = self.elementwise(kind, op.lhs, op.rhs, T.shape_of(op.result.type),
                                                  T.elem_of(op.result.type), kind in _COMMUTATIVE, loc)

    def compare(self, op, kind, loc) -> None:
        """``eq lt le`` are ``cmp.*``; ``gt ge`` are ``cmp.lt``/``cmp.le`` with the operands
        swapped (a number left operand is then a vector in SRAM); ``ne`` is ``cmp.eq`` of the
        ``eq`` result and 0 (NaN: ``eq`` 0, so ``ne`` 1, as numpy's)."""
        m, swap = _CMP[kind]
        a, b = (op.rhs, op.lhs) if swap else (op.lhs, op.rhs)
        elem, shape = T.elem_of(op.result.type), T.shape_of(op.result.type)
        out = self.elementwise(m, a, b, shape, elem, kind in ("eq", "ne"), loc)
        if kind == "ne":
            eq, out = out, self.temp(shape, elem, loc)
            self.map1("cmp.eq", eq, out, loc, imm=parse_imm(0.0 if elem in T.FLOATS else 0, elem))
        self.values[op.result] = out

    def select(self, op, loc) -> VValue:
        """``select``: one VXM ``select`` a vector, with numpy broadcasting of the three. A
        condition of another element type is first made ``cmp.eq(cond, 0)`` in its own type
        (nonzero, NaN included, gives 0: a conversion could round a small value to zero) and
        converted (0/1 exactly), and the two values swap places."""
        elem, shape = T.elem_of(op.result.type), tuple(T.shape_of(op.result.type))
        cond, a, b = self.values[op.cond], self.values[op.lhs], self.values[op.rhs]
        if cond.elem != elem:
            zero = self.temp(cond.shape, cond.elem, loc)
            self.map1("cmp.eq", cond, zero, loc, imm=parse_imm(0.0 if cond.elem in T.FLOATS else 0, cond.elem))
            cond, a, b = self.convert(zero, elem, loc), b, a
        out = self.temp(shape, elem, loc)
        maps = [_row_map(shape, v.shape) for v in (cond, a, b)]
        for r in range(out.rows):
            for c in range(out.cols(self.lanes)):
                srcs = [Src(v.vec(int(m[r]), 0 if v.splat else c, self.lanes), elem) for v, m in zip((cond, a, b), maps)]
                self.emit("select", elem, srcs, out.vec(r, c, self.lanes), loc=loc)
        return out

    def elementwise(self, kind, a_v, b_v, shape, elem, commutative, loc) -> VValue:
        """``out = kind(a, b)`` (a VXM binary mnemonic), one instruction a vector, numpy
        broadcasting; a rank-0 constant ``b`` is the immediate."""
        if a_v in self.scalars and b_v not in self.scalars and commutative:
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
        return out

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

    # --- views -------------------------------------------------------------------------------
    def reshape(self, op) -> VValue:
        x = self.values[op.input]
        shape = tuple(T.shape_of(op.result.type))
        n = shape[-1] if shape else 1
        if n != x.N:  # lanes move between vectors
            runs = self._lane_runs(x, shape)
            if runs is not None and op.result.uses and all(
                    isinstance(u.operation, D.RopeOp) and u.index == 0 for u in op.result.uses):
                # read by ropes only: each row a run of one vector, which the rope's own SXM
                # trip shifts into place (``rope``) — no trip of its own
                self.runs[op.result] = [o for _, o in runs]
                return VValue(shape, x.elem, [v for v, _ in runs])
            heads = self._head_rows(x, shape)
            if HEAD_BLOCKS and heads is not None and op.result.uses and all(
                    isinstance(u.operation, D.MatmulOp) and u.index == 0
                    and len(T.shape_of(u.operation.rhs.type)) == 2 for u in op.result.uses):
                # read as x by matmuls only: the rows of x, one vector each (a head's dims), are
                # the matmuls' K blocks as they are (``mxm``: d rows of W a block) — no lane moves
                self.heads[op.result] = heads
                return VValue(shape, x.elem, [v for row in heads[0] for v in row])
            count = int(np.prod(shape)) if shape else 1
            return self.gather(shape, x.elem, [x], np.zeros(count, int), np.arange(count), loc_of(op))
        return VValue(shape, x.elem, x.vecs)

    def _head_rows(self, x: VValue, shape):
        """For a reshape that joins whole rows of ``x`` — each one vector of ``d < L`` lanes —
        into rows of the result: each result row's vectors, and ``d``; else None."""
        L = self.lanes
        d = x.N
        K = shape[-1] if shape else 1
        if x.splat or not x.shape or d >= L or x.cols(L) != 1 or K % d or K <= d:
            return None
        m = K // d
        R = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        if R * m != x.rows:
            return None
        return [[x.vec(r * m + j, 0, L) for j in range(m)] for r in range(R)], d

    def _lane_runs(self, x: VValue, shape) -> list | None:
        """For a reshape whose every row (of at most a vector) is a run of lanes within one
        vector of ``x``: (that vector, the run's first lane) a row; else None."""
        L = self.lanes
        n = shape[-1] if shape else 1
        rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        if x.splat or n > L or n < 1:
            return None
        out = []
        for r in range(rows):
            first, last = r * n, r * n + n - 1
            (ra, ca), (rb, cb) = divmod(first, x.N), divmod(last, x.N)
            if ra != rb or ca // L != cb // L:
                return None
            out.append((x.vec(ra, ca // L, L), ca % L))
        return out

    def slice(self, op) -> VValue:
        if len(op.operands) > 1:
            return self.dynamic_slice(op, loc_of(op))
        x = self.values[op.input]
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
        if s == 1:  # one lane of each row, made splat
            full = np.arange(x.rows * x.N).reshape(x.shape)
            picked = full[tuple(slice(a, a + b) for a, b in zip(offsets, sizes))].reshape(-1)
            return self.gather(shape, x.elem, [x], np.zeros(len(picked), int), picked, loc_of(op))
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

    def lane_map(self, lane: int, loc) -> SymRef:
        """The SXM ``permute`` table that sends ``lane`` to every lane (i16 lane numbers, one
        constant vector per lane, shared)."""
        cache = self.__dict__.setdefault("_maps", {})
        if lane not in cache:
            m = self.const(np.full(self.lanes, lane, np.int16), "i16", loc).vecs[0]
            cache[lane] = SymRef(m.symbol, m.row * DTYPE_BYTES["i16"])
        return cache[lane]

    def lane_mask(self, n: int, elem: str, loc, lo: int = 0, copy: int = 0):
        """A constant vector: 1 in lanes [lo, n), 0 elsewhere (one per shape, shared; ``copy``:
        another copy, in another slice, so that many reads of one mask need not share a port)."""
        key = (lo, n, elem, copy)
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
            if any(x.N % L for x in xs[:-1]) or any(x.splat for x in xs):  # pieces inside vectors
                which = np.concatenate([np.full(x.shape, i) for i, x in enumerate(xs)], axis=-1).reshape(-1)
                flat = np.concatenate([np.arange(x.rows * x.N).reshape(x.shape) for x in xs], axis=-1).reshape(-1)
                return self.gather(shape, xs[0].elem, xs, which, flat, loc_of(op))
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


    def gather(self, shape, elem, xs: list[VValue], which: np.ndarray, flat: np.ndarray, loc) -> VValue:
        """A tensor whose element ``k`` (row-major) is element ``flat[k]`` of ``xs[which[k]]``.

        Each output vector is cut into runs of lanes taken from one source vector at one
        offset: the first run is the source shifted into place (through an SXM when the
        offset is not 0), every further run is joined with ``select`` on a lane mask. A splat
        result (last dimension 1) is its element's lane spread by the SXM's ``permute``."""
        L = self.lanes
        out = self.temp(shape, elem, loc)
        N = out.N

        def source(k):
            x = xs[int(which[k])]
            e = int(flat[k])
            r, col = divmod(e, x.N)
            if x.splat:
                return x.vec(r, 0, L), None
            return x.vec(r, col // L, L), col % L

        if out.splat:
            uses: dict = {}
            for k in range(out.rows):
                uses.setdefault(source(k)[0], []).append(k)
            for v, ks in uses.items():
                # a source many splats are taken from: copies in other slices, read in turn
                copies = self.spread(v, elem, loc, min(SPLAT_COPIES, -(-len(ks) // SPLAT_SHARE))) \
                    if len(ks) > SPLAT_SHARE else [v]
                for i, k in enumerate(ks):
                    _, lane = source(k)
                    u = copies[i % len(copies)]
                    # already splat: a copy; else the SXM's permute spreads the lane (a map of one entry)
                    src = Src(u, elem) if lane is None else Src(u, elem, ("permute", self.lane_map(lane, loc)))
                    self.emit("mov", elem, [src], out.vecs[k], loc=loc)
            return out
        C = out.cols(L)
        for r in range(out.rows):
            for c in range(C):
                runs = []  # [source vector, shift, first lane, end lane]
                for j in range(min(L, N - c * L)):
                    v, lane = source(r * N + c * L + j)
                    shift = 0 if lane is None else j - lane
                    if runs and runs[-1][0] == v and runs[-1][1] == shift and runs[-1][3] == j:
                        runs[-1][3] = j + 1
                    else:
                        runs.append([v, shift, j, j + 1])
                dst = out.vec(r, c, L)
                srcs = [Src(v, elem, ("shift", sh) if sh else None) for v, sh, _, _ in runs]
                acc = srcs[0]
                if len(runs) == 1:
                    self.emit("mov", elem, [acc], dst, loc=loc)
                for k in range(1, len(runs)):
                    t = dst if k == len(runs) - 1 else self.temp((L,), elem, loc).vecs[0]
                    _, _, a, b = runs[k]
                    self.emit("select", elem, [Src(self.lane_mask(b, elem, loc, a), elem), srcs[k], acc], t, loc=loc)
                    acc = Src(t, elem)
        return out


def _row_map(out_shape, shape) -> np.ndarray:
    """For each row of the result, the row of an operand under numpy broadcasting."""
    lead_out = tuple(out_shape[:-1])
    lead = tuple(shape[:-1]) if len(shape) > 1 else ()
    rows = int(np.prod(lead)) if lead else 1
    idx = np.arange(rows).reshape(lead) if lead else np.zeros((), int)
    if not lead_out:
        return np.zeros(1, int)
    return np.broadcast_to(idx, lead_out).reshape(-1)
