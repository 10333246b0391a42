"""What each instruction computes: short numpy functions registered against the ISA table.

The simulator core knows nothing of individual instructions (Spike's shape): it gathers each
stream operand's byte planes for a batch of repetitions, calls the function registered for the
instruction's mnemonic with an ``Exec`` (operands, fields, the unit's state), and puts the
returned planes on the destination streams. Every function works on a whole batch — arrays of
shape (repetitions, lanes) — so a ``repeat`` group is one numpy operation and no lane is ever
visited by a Python loop. ICU instructions belong to the sequencer (``program.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from lpu.arch.isa import BY_MNEMONIC, DTYPE_BYTES, FLOATS, INTS, ISA
from lpu.arch.layout import NUMPY_DTYPES
from lpu.asm.operands import stride_of


@dataclass(frozen=True, slots=True)
class Semantics:
    fn: Callable
    port: str | None  # the unit resource an issue occupies: "read", "write", "plane"
    link: str | None  # "send", "recv" or "hold" (keeps the link busy)
    # How the execution plan (plan.py) may batch instances of it across groups:
    #   "lanes": a function of its stream operands and fields alone: same-kind instances of
    #            any groups in one call of ``fn``;
    #   "load" / "store": a byte move from SRAM words to its result planes / from its operand
    #            planes to SRAM words, at the static addresses ``words`` gives;
    #   "copy": its result planes are its operand planes;
    #   "none": no effect at run time (the link model did its work before the run);
    #   None: in program order with its unit's state (``fn`` per group, as the core runs it).
    batch: str | None = None
    words: Callable | None = None  # load/store: group -> (addr, stride, w): words addr + stride·k + 0..w-1
    sram: str | None = None  # "read"/"write": a data-dependent access of its slice (gather)
    # unit state, no results, and an effect that does not depend on the cycle: consecutive
    # instructions of one queue of the same kind may run as one call (lw)
    merge: bool = False
    # its results depend on how its repetitions are batched (one BLAS product per batch: the
    # f32 sums of a gemv and a gemm differ in the last bit): the plan batches it as the
    # reference engine does
    shape_sensitive: bool = False
    # what it computes from its operands and fields alone, before its unit sees it
    # (``ex.prepared`` when given): the plan keeps it from run to run when every operand is an
    # SRAM word the program never writes (lw: the weight rows widened to f32)
    prepare: Callable | None = None
    # lanes: fields that may differ between the instances of one batch (``ex.each(name)``)
    each: tuple[str, ...] = ()
    # the parts of its unit's state it reads or writes: the plan keeps the instructions of a
    # queue in program order per part (an lw fills the shadow while mm uses the active weights)
    state: tuple[str, ...] = ("unit",)


SEMANTICS: dict[str, Semantics] = {}


def semantics(*mnemonics: str, port: str | None = None, link: str | None = None, batch: str | None = None,
              words: Callable | None = None, sram: str | None = None, merge: bool = False,
              shape_sensitive: bool = False, prepare: Callable | None = None, each: tuple[str, ...] = (),
              state: tuple[str, ...] = ("unit",)):
    def register(fn):
        for m in mnemonics:
            assert m in BY_MNEMONIC, m
            assert not merge or not any(o.role == "dst" for o in BY_MNEMONIC[m].operands), m
            SEMANTICS[m] = Semantics(fn, port, link, batch, words, sram, merge, shape_sensitive, prepare, each, state)
        return fn

    return register


# --- byte planes <-> typed lanes ---------------------------------------------------------------
def typed(planes: np.ndarray, dtype: str) -> np.ndarray:
    """(n, w·m, lanes) byte planes → (n, m, lanes) elements, or (n, lanes) when m == 1."""
    n, span, lanes = planes.shape
    w = DTYPE_BYTES[dtype]
    m = span // w
    if w == 1:
        out = planes.view(NUMPY_DTYPES[dtype])
    else:
        # one byte plane at a time: a transposed copy with a w-byte inner axis is ~5x slower
        v = planes.reshape(n, m, w, lanes)
        b = np.empty((n, m, lanes, w), np.uint8)
        for j in range(w):
            b[..., j] = v[:, :, j]
        out = b.view(NUMPY_DTYPES[dtype]).reshape(n, m, lanes)
    return out[:, 0] if m == 1 else out


def to_planes(values: np.ndarray, dtype: str) -> np.ndarray:
    """(n, lanes) elements → (n, w, lanes) byte planes."""
    a = np.ascontiguousarray(values, dtype=NUMPY_DTYPES[dtype])
    n, lanes = a.shape
    w = DTYPE_BYTES[dtype]
    b = a.view(np.uint8).reshape(n, lanes, w)
    if w == 1:
        return b.reshape(n, 1, lanes)
    out = np.empty((n, w, lanes), np.uint8)
    for j in range(w):
        out[:, j] = b[:, :, j]
    return out


def imm_value(field: int, dtype: str):
    """The scalar of a ``src_or_imm`` immediate field, as a 0-d array of the element type."""
    bits = np.array([field & 0xFFFFFFFF], np.uint32)
    if dtype in FLOATS:
        return bits.view(np.float32)[0].astype(NUMPY_DTYPES[dtype])
    v = int(bits.view(np.int32)[0])
    return np.array(v).astype(NUMPY_DTYPES[dtype])[()]


class Exec:
    """One batch of repetitions k0 .. k1-1 of a group, as the semantics see it."""

    __slots__ = ("group", "k0", "k1", "planes", "unit", "machine", "lanes", "prepared", "fields_each")

    def __init__(self, group, k0, k1, planes, unit, machine, lanes, prepared=None):
        self.group = group
        self.k0, self.k1 = k0, k1
        self.planes = planes  # operand name -> (n, streams, lanes) uint8
        self.unit = unit
        self.machine = machine
        self.lanes = lanes
        self.prepared = prepared  # Semantics.prepare's value, when the plan kept it
        self.fields_each: dict[str, np.ndarray] | None = None  # Semantics.each: per-instance values

    @property
    def n(self) -> int:
        return self.k1 - self.k0

    @property
    def ks(self) -> np.ndarray:
        """(n,) repetition indices."""
        return np.arange(self.k0, self.k1)

    @property
    def cycles(self) -> np.ndarray:
        """(n,) issue cycles."""
        g = self.group
        return g.issue + g.period * np.arange(self.k0, self.k1)

    @property
    def dtype(self) -> str:
        return self.group.dtype

    def field(self, name: str) -> int:
        return self.group.field(name)

    def each(self, name: str) -> np.ndarray | int:
        """A field of every instance of the batch ((n,) values when they may differ, else one)."""
        if self.fields_each is not None and name in self.fields_each:
            return self.fields_each[name]
        return self.group.field(name)

    def operand(self, name: str, dtype: str | None = None):
        """A typed stream operand, or the immediate broadcast to every lane."""
        dtype = dtype or self.dtype
        if name in self.planes:
            return typed(self.planes[name], dtype)
        return np.full((self.n, self.lanes), imm_value(self.field(name), dtype))

    def hazard(self, kind: str, index: int, detail: str = "") -> None:
        self.machine.dynamic_hazard(self, kind, index, detail)


def _float_compute(dtype: str):
    return np.float32 if dtype in FLOATS else None


def _arith(fn):
    """A lanewise binary op: integers wrap in their own type; f16/bf16 compute in f32 and
    round once to their type (exact for + − ×: f32 holds twice their precision plus two)."""

    def run(a, b, dtype):
        if dtype in FLOATS:
            r = fn(a.astype(np.float32, copy=False), b.astype(np.float32, copy=False))
            return r.astype(NUMPY_DTYPES[dtype], copy=False)
        with np.errstate(over="ignore"):
            return fn(a, b).astype(NUMPY_DTYPES[dtype])

    return run


def _shl(a, b):
    bits = a.dtype.itemsize * 8
    amt = b.astype(np.int64)
    out = np.left_shift(a.astype(np.int64), np.clip(amt, 0, 63)).astype(a.dtype)
    return np.where((amt < 0) | (amt >= bits), 0, out).astype(a.dtype)


def _shr(a, b):
    bits = a.dtype.itemsize * 8
    amt = np.clip(b.astype(np.int64), 0, bits - 1)  # beyond the width: all sign bits
    return np.right_shift(a, amt.astype(a.dtype))


_BINARY = {
    "add": _arith(np.add), "sub": _arith(np.subtract), "mul": _arith(np.multiply),
    "max": _arith(np.maximum), "min": _arith(np.minimum),
    "and": _arith(np.bitwise_and), "or": _arith(np.bitwise_or), "xor": _arith(np.bitwise_xor),
    "shl": lambda a, b, t: _shl(a, b), "shr": lambda a, b, t: _shr(a, b),
    "cmp.eq": lambda a, b, t: (a == b).astype(NUMPY_DTYPES[t]),
    "cmp.lt": lambda a, b, t: (a < b).astype(NUMPY_DTYPES[t]),
    "cmp.le": lambda a, b, t: (a <= b).astype(NUMPY_DTYPES[t]),
}


@semantics(*_BINARY, batch="lanes")
def _binary(ex: Exec):
    a, b = ex.operand("a"), ex.operand("b")
    return {"dst": to_planes(_BINARY[ex.group.spec.mnemonic](a, b, ex.dtype), ex.dtype)}


@semantics("select", batch="lanes")
def _select(ex: Exec):
    c, a, b = ex.operand("cond"), ex.operand("a"), ex.operand("b")
    return {"dst": to_planes(np.where(c != 0, a, b), ex.dtype)}


def _float_unary(fn):
    # computed in f64 and rounded once to the element type: round to nearest even
    return lambda a, t: fn(a.astype(np.float64)).astype(NUMPY_DTYPES[t])


def _int_or_float(fn):
    def run(a, t):
        if t in FLOATS:
            return fn(a.astype(np.float32)).astype(NUMPY_DTYPES[t])
        with np.errstate(over="ignore"):
            return fn(a).astype(NUMPY_DTYPES[t])  # integers wrap: neg/abs of the minimum is itself

    return run


_UNARY = {
    "neg": _int_or_float(np.negative), "abs": _int_or_float(np.abs),
    "relu": _int_or_float(lambda a: np.maximum(a, np.zeros((), a.dtype))),
    "exp": _float_unary(np.exp), "tanh": _float_unary(np.tanh),
    "sigmoid": _float_unary(lambda a: 1.0 / (1.0 + np.exp(-a))),
    "rsqrt": _float_unary(lambda a: 1.0 / np.sqrt(a)), "recip": _float_unary(lambda a: 1.0 / a),
}


@semantics(*_UNARY, batch="lanes")
def _unary(ex: Exec):
    with np.errstate(all="ignore"):
        r = _UNARY[ex.group.spec.mnemonic](ex.operand("a"), ex.dtype)
    return {"dst": to_planes(r, ex.dtype)}


@semantics("mov", batch="copy")
def _mov(ex: Exec):
    return {"dst": ex.planes["a"]}  # bytes as they are, onto any stream and direction


def convert(a: np.ndarray, src: str, dst: str, shift: int = 0) -> np.ndarray:
    """``cvt``: integers saturate; float → int rounds to nearest even (NaN → 0); an integer
    source may first be shifted right by ``shift`` with round-to-nearest-even."""
    out_t = NUMPY_DTYPES[dst]
    if src in INTS:
        v = a.astype(np.int64)
        if shift and dst in INTS:
            q = v >> shift
            r = v & ((1 << shift) - 1)
            half = 1 << (shift - 1)
            v = q + ((r > half) | ((r == half) & (q & 1 == 1)))
        if dst in INTS:
            info = np.iinfo(out_t)
            return np.clip(v, info.min, info.max).astype(out_t)
        return v.astype(np.float64).astype(np.float32).astype(out_t) if dst == "bf16" else \
            v.astype(np.float64).astype(out_t)
    f = a.astype(np.float64)
    if dst in INTS:
        info = np.iinfo(out_t)
        with np.errstate(invalid="ignore"):
            r = np.rint(np.nan_to_num(f, nan=0.0, posinf=info.max, neginf=info.min))
        return np.clip(r, info.min, info.max).astype(out_t)
    if dst == "bf16":
        return a.astype(np.float32).astype(out_t)  # f16/bf16/f32 are exact in f32
    return f.astype(out_t)


@semantics("cvt", batch="lanes")
def _cvt(ex: Exec):
    g = ex.group
    with np.errstate(all="ignore"):
        r = convert(ex.operand("a"), g.dtype, g.dtype2, g.field("shift"))
    return {"dst": to_planes(r, g.dtype2)}


# --- MEM: the queue's own slice ----------------------------------------------------------------
def _addresses(ex: Exec, base: np.ndarray | int) -> np.ndarray:
    w = DTYPE_BYTES[ex.dtype]
    addr = base + stride_of(ex.field("stride"), w) * ex.ks
    words = ex.unit.words
    bad = (addr < 0) | (addr + w > words)
    if bad.any():
        for i in np.nonzero(bad)[0][:1].tolist():
            ex.hazard("address out of range", i,
                      f"words {int(addr[i])}..{int(addr[i]) + w - 1} of a {words}-word slice")
        addr = np.where(bad, 0, addr)
    return addr[:, None] + np.arange(w)


def _static_words(g) -> tuple[int, int, int]:
    """The words of a read/write group: repetition k takes w words from addr + stride · k, as
    (addr, stride, w) (out of range as they are: the plan leaves such a program to the core)."""
    w = DTYPE_BYTES[g.dtype]
    return g.field("addr"), stride_of(g.field("stride"), w), w


@semantics("read", port="read", batch="load", words=_static_words)
def _read(ex: Exec):
    w = DTYPE_BYTES[ex.dtype]
    first = ex.field("addr") + stride_of(ex.field("stride"), w) * ex.k0
    if stride_of(ex.field("stride"), w) == w and 0 <= first and first + ex.n * w <= ex.unit.words:
        return {"dst": ex.unit.load_run(first, ex.n, w)}  # a sweep of consecutive words: a view
    return {"dst": ex.unit.load(_addresses(ex, ex.field("addr")))}


@semantics("gather", port="read", sram="read")
def _gather(ex: Exec):
    index = typed(ex.planes["index"], "i32")[:, 0].astype(np.int64)
    return {"dst": ex.unit.load(_addresses(ex, ex.field("addr") + index))}


@semantics("scatter", port="write", sram="write")
def _scatter(ex: Exec):
    index = typed(ex.planes["index"], "i32")[:, 0].astype(np.int64)
    ex.unit.store(_addresses(ex, ex.field("addr") + index), ex.planes["src"])
    return {}


@semantics("write", port="write", batch="store", words=_static_words)
def _write(ex: Exec):
    ex.unit.store(_addresses(ex, ex.field("addr")), ex.planes["src"])
    return {}


# --- MXM: the plane's own weights and accumulators -----------------------------------------------
def _lw_rows(ex: Exec) -> np.ndarray:
    """The weight rows of a batch widened to f32 (exact for i8, f16, bf16): (n · rows, lanes)."""
    return typed(ex.planes["src"], ex.dtype).reshape(-1, ex.lanes).astype(np.float32)


@semantics("lw", merge=True, prepare=_lw_rows, state=("shadow",))
def _lw(ex: Exec):
    ex.unit.load_rows(_lw_rows(ex) if ex.prepared is None else ex.prepared)
    return {}


@semantics("iw", state=("shadow", "active"))
def _iw(ex: Exec):
    ex.unit.install()
    return {}


@semantics("mm", port="plane", shape_sensitive=True, state=("active", "acc"))
def _mm(ex: Exec):
    g = ex.group
    if ex.unit.active is None:
        ex.hazard("mm with no installed weights", 0)
        return {}
    act = ex.operand("src")
    ex.unit.multiply(act, g.dtype, g.field("slot"), g.field("mode"), g.issue + (ex.k1 - 1) * g.period, g.occupancy)
    return {}


@semantics("acc", state=("acc",))
def _acc(ex: Exec):
    g = ex.group
    slot = ex.unit.emit(g.field("slot"), ex.cycles, bool(g.field("clear")))  # (n, lanes) uint32
    return {"dst": slot.view(np.uint8).reshape(ex.n, ex.lanes, 4).transpose(0, 2, 1)}


# --- SXM: lane moves act on every byte plane of the value alike (no conversion to elements) -----
@semantics("shift", batch="lanes")
def _shift(ex: Exec):
    a = ex.planes["a"]  # (n, w, lanes)
    n = ex.group.field("n")
    out = np.zeros_like(a)
    if n >= 0:
        out[..., n:] = a[..., :a.shape[2] - n]
    else:
        out[..., :n] = a[..., -n:]
    return {"dst": out}


@semantics("rotate", batch="lanes", each=("n",))
def _rotate(ex: Exec):
    a = ex.planes["a"]
    lanes = a.shape[2]
    n = ex.each("n")
    if not isinstance(n, int):  # instances rotating by different distances: one gather
        lane = (np.arange(lanes) - (n % lanes)[:, None]) % lanes  # out[i] = a[(i - n) mod lanes]
        return {"dst": np.take_along_axis(a, lane[:, None, :], axis=2)}
    n %= lanes
    out = np.empty_like(a)
    out[..., n:] = a[..., :lanes - n]
    out[..., :n] = a[..., lanes - n:]
    return {"dst": out}


@semantics("permute", batch="lanes")
def _permute(ex: Exec):
    return {"dst": ex.planes["a"][..., ex.machine.lane_map(ex.group)]}


@semantics("transpose", batch="lanes")
def _transpose(ex: Exec):
    a = ex.planes["a"]  # (n, 16 vectors, lanes) of i8
    n, vecs, lanes = a.shape
    m = a.reshape(n, vecs, lanes // vecs, vecs)  # [i, superlane k, j]
    return {"dst": np.ascontiguousarray(m.transpose(0, 3, 2, 1)).reshape(n, vecs, lanes)}


# --- C2C: the link model (links.py) decides which vector each recv takes ------------------------
@semantics("send", link="send", batch="none")
def _send(ex: Exec):
    return {}


@semantics("recv", link="recv", batch="copy")
def _recv(ex: Exec):
    return {"dst": ex.planes["link"]}


@semantics("deskew", link="hold", batch="none")
def _deskew(ex: Exec):
    return {}


_MISSING = [s.mnemonic for s in ISA if "any" not in s.units and s.mnemonic not in SEMANTICS]
assert not _MISSING, f"instructions without semantics: {_MISSING}"
