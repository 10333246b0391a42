"""The ``.lpu`` text an ONNX import writes, one ``df`` op a line (``lpu.models.onnx_ops`` says
which ops each ONNX node becomes; ``onnx_import`` drives it).

``Builder`` holds the function being written: every line it emits ends with a comment naming
the ONNX node it came from (``// Conv 'conv1'``), so a diagnostic — which prints the source
line under its ``file:line:col`` — a trace slice and an LSP hover lead back to the node, and
``Builder.node_lines`` maps each line to the node for the notes ``lpu run model.onnx`` adds.
Values are ``Value`` (a df SSA value with its shape and type) or ``Const`` (an array known at
import time: initializers, folded constants); a ``Const`` becomes a ``constant`` op, a number
operand or a ``data`` tensor where an op needs it as a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from lpu.arch.layout import NUMPY_DTYPES

FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, STRING, BOOL, FLOAT16, DOUBLE, UINT32, UINT64 = range(1, 14)
BFLOAT16 = 16
FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ, UINT4, INT4, FLOAT4E2M1, FLOAT8E8M0, UINT2, INT2 = \
    range(17, 27)

#: ONNX element type -> the language's element type that carries it. INT64 travels as i32
#: (the lanes are at most 32 bits; every constant is checked to fit), BOOL as i8 0/1, UINT8 as
#: i16 and UINT16 as i32 (every value fits; arithmetic on them is never wrapped at 8/16 bits),
#: UINT32 and UINT64 as i32 like INT64 (every constant and input checked to fit); DOUBLE as f32
#: (each value rounded once to f32: docs/onnx.md); the 8-, 4- and 2-bit types as a wider type
#: that holds every one of their values exactly (``NARROW``).
CARRIER = {FLOAT: "f32", FLOAT16: "f16", BFLOAT16: "bf16", INT8: "i8", INT16: "i16", INT32: "i32",
           INT64: "i32", BOOL: "i8", UINT8: "i16", UINT16: "i32", UINT32: "i32", UINT64: "i32",
           DOUBLE: "f32", INT4: "i8", UINT4: "i8", INT2: "i8", UINT2: "i8",
           FLOAT8E4M3FN: "f16", FLOAT8E4M3FNUZ: "f16", FLOAT8E5M2: "f16", FLOAT8E5M2FNUZ: "f16",
           FLOAT4E2M1: "f16", FLOAT8E8M0: "f32"}
#: the narrow types (and DOUBLE): carried exactly by a wider type of the language (every FLOAT8
#: and FLOAT4 value is an f16, every E8M0 value an f32, every 4- and 2-bit integer an i8), so
#: only Cast to them computes anything (docs/onnx.md); DOUBLE is carried as f32, rounded once
NARROW = {INT4, UINT4, INT2, UINT2, FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ, FLOAT4E2M1,
          FLOAT8E8M0}
ONNX_NAMES = {FLOAT: "FLOAT", UINT8: "UINT8", INT8: "INT8", UINT16: "UINT16", INT16: "INT16", INT32: "INT32",
              INT64: "INT64", STRING: "STRING", BOOL: "BOOL", FLOAT16: "FLOAT16", DOUBLE: "DOUBLE",
              UINT32: "UINT32", UINT64: "UINT64", BFLOAT16: "BFLOAT16", 14: "COMPLEX64", 15: "COMPLEX128",
              17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2", 20: "FLOAT8E5M2FNUZ", 21: "UINT4",
              22: "INT4", 23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2", 26: "INT2"}
FLOATS = (FLOAT, FLOAT16, BFLOAT16, DOUBLE)
MAX_RANK = 8


class Unsupported(Exception):
    """A node the importer cannot lower; the message says the first thing that is not supported.
    ``needs``: the value that would have to be known at import time, when that is the reason."""

    def __init__(self, message: str, needs: str | None = None):
        super().__init__(message)
        self.needs = needs


def type_name(t: int) -> str:
    return ONNX_NAMES.get(t, f"type {t}")


def carrier(t: int) -> str:
    if t not in CARRIER:
        raise Unsupported(f"type {type_name(t)} is not supported (supported: "
                          f"{', '.join(type_name(k) for k in CARRIER)})")
    return CARRIER[t]


def np_dtype(elem: str):
    return np.dtype(NUMPY_DTYPES[elem])


def onnx_dtype(t: int):
    from onnx.helper import tensor_dtype_to_np_dtype

    return tensor_dtype_to_np_dtype(t)


def type_text(shape, elem: str) -> str:
    return "tensor<" + "".join(f"{d}x" for d in shape) + elem + ">"


def number(v, elem: str) -> str:
    """The shortest text that reads back as ``v`` in ``elem`` (floats via f32, as the printer)."""
    if elem in ("i8", "i16", "i32"):
        return str(int(v))
    return repr(float(np.float32(v)))


def to_carrier(a: np.ndarray, t: int, what: str) -> np.ndarray:
    """An ONNX array in its carrier's numpy type; an INT64 value beyond i32 is an error."""
    elem = carrier(t)
    a = np.asarray(a)
    if t in (INT64, UINT32, UINT64) and a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < -2 ** 31 or hi >= 2 ** 31:
            raise Unsupported(f"{what} holds {hi if hi >= 2 ** 31 else lo}, beyond the i32 that carries INT64 "
                              f"values (the lanes are 32 bits at most)")
    if t == DOUBLE and a.size:
        big = np.abs(a[np.isfinite(a)])
        if big.size and float(big.max()) > float(np.finfo(np.float32).max):
            raise Unsupported(f"{what} holds {float(big.max()):g}, beyond the f32 that carries DOUBLE values")
    return a.astype(np_dtype(elem))


@dataclass(eq=False)
class Value:
    """A df SSA value: its name (``%t3``), shape, the element type of the language that holds it,
    and the ONNX element type it stands for."""

    name: str
    shape: tuple
    elem: str
    onnx: int

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass(eq=False)
class Const:
    """A tensor known at import time, as ONNX's numpy array."""

    array: np.ndarray
    onnx: int
    name: str = ""

    @property
    def shape(self) -> tuple:
        return tuple(self.array.shape)

    @property
    def rank(self) -> int:
        return self.array.ndim

    @property
    def elem(self) -> str:
        return carrier(self.onnx)


_NAME_RE = re.compile(r"[^A-Za-z0-9_$.]")


def sanitize(name: str) -> str:
    """An ONNX name as a df name: [A-Za-z0-9_$.], starting with a letter or '_'; a name that
    does not ("3", as pytorch's exporter names values) gets a 'v' in front — '_3' would not
    do: the IR's (xDSL's) name setter drops a trailing _<digits>, which leaves nothing of it."""
    s = _NAME_RE.sub("_", name) or "t"
    return s if re.match(r"[A-Za-z_]", s) and not re.fullmatch(r"_+\d*", s) else "v" + s


@dataclass
class NodeRef:
    """Where emitted lines come from: the node's index, name and op type."""

    index: int
    name: str
    op_type: str
    output: str = ""

    def label(self) -> str:
        return f"{self.op_type} '{self.name}'" if self.name else f"{self.op_type} #{self.index} -> '{self.output}'"


@dataclass
class Builder:
    """The function body, data tensors and arrays of an import in progress."""

    embed: bool = False
    folder: str = "model"                 # the weights' folder, relative to the .lpu
    lines: list[str] = field(default_factory=list)
    line_nodes: list[NodeRef | None] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)   # .npy file stem -> array
    node: NodeRef | None = None
    _count: int = 0
    _symbols: set = field(default_factory=set)
    _materialized: dict = field(default_factory=dict)

    # --- names ----------------------------------------------------------------------------------
    def tmp(self) -> str:
        self._count += 1
        return f"%t{self._count}"

    def symbol(self, hint: str) -> str:
        base = sanitize(hint)
        name, k = base, 1
        while name in self._symbols:
            k += 1
            name = f"{base}.{k}"
        self._symbols.add(name)
        return name

    # --- checkpoints: a node that turns out unsupported leaves nothing behind ---------------------
    def mark(self):
        return (len(self.lines), len(self.data), dict(self.arrays), set(self._symbols), dict(self._materialized))

    def rollback(self, mark) -> None:
        n, d, arrays, symbols, mat = mark
        del self.lines[n:], self.line_nodes[n:], self.data[d:]
        self.arrays, self._symbols, self._materialized = arrays, symbols, mat

    # --- lines ----------------------------------------------------------------------------------
    def line(self, text: str) -> None:
        comment = f"  // {self.node.label()}" if self.node is not None else ""
        self.lines.append(f"  {text}{comment}")
        self.line_nodes.append(self.node)

    def emit(self, rhs: str, shape, elem: str, onnx: int | None = None) -> Value:
        shape = tuple(int(d) for d in shape)
        if len(shape) > MAX_RANK:
            raise Unsupported(f"a tensor of rank {len(shape)} (the language holds at most {MAX_RANK} dimensions)")
        v = Value(self.tmp(), shape, elem, onnx if onnx is not None else _default_onnx(elem))
        self.line(f"{v.name} = {rhs} : {type_text(shape, elem)}")
        return v

    # --- constants ------------------------------------------------------------------------------
    def value(self, x, onnx: int | None = None) -> Value:
        """``x`` as a df value (a ``Const`` becomes a ``constant`` op or a ``data`` tensor)."""
        if isinstance(x, Value):
            return x
        t = onnx if onnx is not None else x.onnx
        key = (id(x), t)
        if key in self._materialized:
            return self._materialized[key][1]
        elem = carrier(t)
        a = to_carrier(x.array, x.onnx if onnx is None else t, f"constant '{x.name}'" if x.name else "a constant")
        if a.size and a.ndim <= MAX_RANK and np.all(a == a.flat[0]) and np.isfinite(a.flat[0].astype(np.float64)) \
                and (a.dtype.kind != "f" or not np.signbit(a.flat[0]) or a.flat[0] != 0):
            v = self.emit(f"constant {{value = {number(a.flat[0], elem)}}}", a.shape, elem, t)
        else:
            v = self._data(a, x.name or "const", elem, t)
        self._materialized[key] = (x, v)  # x kept alive: its id stays unique
        return v

    def _data(self, a: np.ndarray, hint: str, elem: str, onnx: int) -> Value:
        sym = self.symbol(hint)
        ty = type_text(a.shape, elem)
        if self.embed or a.size == 0:
            init = 'hex"' + np.ascontiguousarray(a).tobytes().hex() + '"'
        else:
            self.arrays[sym] = a
            init = f'load("{self.folder}/{sym}.npy")'
        self.data.append(f"data @{sym} : {ty} = {init}")
        return self.emit(f"get @{sym}", a.shape, elem, onnx)

    def weight(self, a: np.ndarray, hint: str, elem: str) -> Value:
        """A tensor the importer computed (a split or quantized weight) as a data tensor."""
        if a.size and np.all(a == a.flat[0]) and np.isfinite(float(a.flat[0])) and not np.signbit(a.flat[0]):
            return self.emit(f"constant {{value = {number(a.flat[0], elem)}}}", a.shape, elem)
        return self._data(a.astype(np_dtype(elem)), hint, elem, _default_onnx(elem))

    def operand(self, x, elem: str, rank: int) -> str:
        """The text of a binary op's operand: a number for a one-element constant that broadcasts
        without changing the result's rank, else a value."""
        if isinstance(x, Const) and x.array.size == 1 and x.rank <= rank:
            v = to_carrier(x.array, x.onnx, "a constant").astype(np.float64).reshape(())
            if np.isfinite(v) and not (v == 0 and np.signbit(v)):
                return number(x.array.reshape(()).item(), elem)
        return self.value(x).name


def _default_onnx(elem: str) -> int:
    return {"f32": FLOAT, "f16": FLOAT16, "bf16": BFLOAT16, "i8": INT8, "i16": INT16, "i32": INT32}[elem]


# --- the df ops, as functions of the builder -------------------------------------------------------
def binary(b: Builder, kind: str, x, y, onnx: int | None = None) -> Value:
    """``kind`` (add sub mul max min eq ne lt le gt ge) of two values or constants, broadcast."""
    ref = x if isinstance(x, Value) else y
    if not isinstance(ref, Value):
        ref = b.value(x)
    shape = tuple(np.broadcast_shapes(tuple(x.shape), tuple(y.shape)))
    rank = len(shape)
    x, y = (v if isinstance(v, Value) or v.onnx == ref.onnx else
            Const(np.asarray(v.array).astype(onnx_dtype(ref.onnx)), ref.onnx, v.name) for v in (x, y))
    if isinstance(x, Const) and isinstance(y, Const):
        x = b.value(x)
    lhs, rhs = b.operand(x, ref.elem, rank), b.operand(y, ref.elem, rank)
    if not lhs.startswith("%") and not rhs.startswith("%"):
        lhs = b.value(x).name
    return b.emit(f"{kind} {lhs}, {rhs}", shape, ref.elem, onnx if onnx is not None else ref.onnx)


def unary(b: Builder, kind: str, x, attrs: str = "") -> Value:
    x = b.value(x)
    return b.emit(f"{kind} {x.name}{attrs}", x.shape, x.elem, x.onnx)


def cast(b: Builder, x, elem: str, onnx: int | None = None) -> Value:
    x = b.value(x)
    onnx = onnx if onnx is not None else _default_onnx(elem)
    if x.elem == elem:
        return Value(x.name, x.shape, x.elem, onnx)
    return b.emit(f"cast {x.name}", x.shape, elem, onnx)


def reshape(b: Builder, x, shape) -> Value | Const:
    shape = tuple(int(d) for d in shape)
    if isinstance(x, Const):
        return Const(x.array.reshape(shape), x.onnx, x.name)
    if shape == x.shape:
        return x
    return b.emit(f"reshape {x.name}", shape, x.elem, x.onnx)


def transpose(b: Builder, x, perm) -> Value | Const:
    perm = [int(p) for p in perm]
    if isinstance(x, Const):
        return Const(np.transpose(x.array, perm), x.onnx, x.name)
    if perm == list(range(x.rank)):
        return x
    # axes of size 1 moving is a reshape (no data moves)
    moved = [p for p in perm if x.shape[p] != 1]
    if moved == sorted(moved):
        return reshape(b, x, [x.shape[p] for p in perm])
    return b.emit(f"transpose {x.name} {{perm = {perm}}}", [x.shape[p] for p in perm], x.elem, x.onnx)


def slice_(b: Builder, x, offsets, sizes) -> Value | Const:
    offsets, sizes = [int(o) for o in offsets], [int(s) for s in sizes]
    if isinstance(x, Const) or 0 in sizes:  # an empty window: a constant of no elements
        if not isinstance(x, Const):
            return Const(np.zeros(sizes, onnx_dtype(x.onnx)), x.onnx)
        return Const(x.array[tuple(slice(o, o + s) for o, s in zip(offsets, sizes))], x.onnx, x.name)
    if list(sizes) == list(x.shape):
        return x
    return b.emit(f"slice {x.name} {{offsets = {offsets}, sizes = {sizes}}}", sizes, x.elem, x.onnx)


def concat(b: Builder, xs: list, axis: int) -> Value | Const:
    nonempty = [x for x in xs if int(np.prod(x.shape)) > 0]
    if not nonempty:
        return Const(np.concatenate([np.asarray(x.array) for x in xs], axis=axis), xs[0].onnx)
    xs = nonempty
    if len(xs) == 1:
        return xs[0]
    if all(isinstance(x, Const) for x in xs):
        return Const(np.concatenate([x.array for x in xs], axis=axis), xs[0].onnx)
    vs = [b.value(x) for x in xs]
    shape = list(vs[0].shape)
    shape[axis] = sum(v.shape[axis] for v in vs)
    return b.emit(f"concat {', '.join(v.name for v in vs)} {{axis = {axis}}}", shape, vs[0].elem, vs[0].onnx)


def window(b: Builder, x, axis: int, start: int, size: int):
    offsets = [0] * x.rank
    sizes = list(x.shape)
    offsets[axis], sizes[axis] = start, size
    return slice_(b, x, offsets, sizes)


def take(b: Builder, x, axis: int, indices) -> Value | Const:
    """``x`` at ``indices`` (in range, any order) along ``axis``: slices of each run of
    consecutive indices, joined; an evenly strided run through a reshape instead (``[..., n·s]``
    as ``[..., n, s]``, its first column)."""
    indices = [int(i) for i in indices]
    n = x.shape[axis]
    if indices == list(range(n)):
        return x
    if isinstance(x, Const) or not indices:
        if not isinstance(x, Const):
            shape = list(x.shape)
            shape[axis] = 0
            return Const(np.zeros(shape, onnx_dtype(x.onnx)), x.onnx)
        return Const(np.take(x.array, indices, axis=axis), x.onnx, x.name)
    if len(indices) > 2:
        s = indices[1] - indices[0]
        if s > 1 and all(indices[k + 1] - indices[k] == s for k in range(len(indices) - 1)):
            start, count = indices[0], len(indices)
            span = s * count
            part = window(b, x, axis, start, min(span, n - start))
            if span > n - start:  # the last stride runs past the end: padding nobody reads
                part = pad_axis(b, part, axis, 0, span - (n - start), 0)
            shape = list(x.shape)
            shape[axis: axis + 1] = [count, s]
            part = reshape(b, part, shape)
            part = window(b, part, axis + 1, 0, 1)
            shape = list(x.shape)
            shape[axis] = count
            return reshape(b, part, shape)
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return concat(b, [window(b, x, axis, r[0], len(r)) for r in runs], axis)


def fill(b: Builder, shape, value: float, like) -> Value:
    """A constant of ``shape`` holding ``value`` in ``like``'s type."""
    t = like.onnx
    a = np.full(tuple(shape), value, dtype=np.float64)
    return b.value(Const(a.astype(np_dtype(carrier(t))), t, ""))


def pad_axis(b: Builder, x, axis: int, before: int, after: int, value: float):
    parts = []
    for k in (before, after):
        shape = list(x.shape)
        shape[axis] = k
        parts.append(fill(b, shape, value, x) if k > 0 else None)
    if before < 0 or after < 0:
        n = x.shape[axis]
        x = window(b, x, axis, max(0, -before), n - max(0, -before) - max(0, -after))
    xs = [p for p in (parts[0], x, parts[1]) if p is not None]
    return concat(b, xs, axis)


def pad(b: Builder, x, befores, afters, value: float = 0.0):
    for axis, (lo, hi) in enumerate(zip(befores, afters)):
        if lo or hi:
            x = pad_axis(b, x, axis, int(lo), int(hi), value)
    return x


def reduce(b: Builder, kind: str, x, axes, keepdims: bool) -> Value:
    """``reduce_sum``/``reduce_max``/``reduce_min`` over each of ``axes``; a sum is accumulated
    (f16/bf16 → f32, i8/i16 → i32) and cast back to ``x``'s type."""
    x = b.value(x)
    y = x
    shape = list(x.shape)
    for a in sorted(set(axes)):
        shape[a] = 1
        acc = {"f16": "f32", "bf16": "f32", "i8": "i32", "i16": "i32"}.get(y.elem, y.elem) \
            if kind == "reduce_sum" else y.elem
        y = b.emit(f"{kind} {y.name} {{axis = {a}}}", shape, acc, x.onnx)
    y = cast(b, y, x.elem, x.onnx)
    if not keepdims:
        y = reshape(b, y, [d for i, d in enumerate(x.shape) if i not in set(axes)])
    return y


# --- matmuls: the MXM multiplies i8, f16 and bf16 ---------------------------------------------------
#: how a FLOAT matmul runs (``--dtype``): "f32" as three bf16 products, "f16"/"bf16" with its
#: operands rounded once to that type, "i8" with weights quantized per output channel
MATMUL_MODES = ("f32", "f16", "bf16", "i8")
F16_MAX = 65504.0


#: a FLOAT operand of a matmul as this many bf16 parts (hi + mid + lo holds all 24 bits)
PARTS = 3


def _split_const(b: Builder, w: Const, hint: str) -> list:
    """``w`` as bf16 parts whose sum is ``w`` (each the rounded rest of the ones before); a
    part that is all zero is None."""
    import ml_dtypes

    rest = np.asarray(w.array, np.float32)
    out = []
    for k, name in zip(range(PARTS), (".hi", ".mid", ".lo")):
        p = rest.astype(ml_dtypes.bfloat16)
        rest = (rest - p.astype(np.float32)).astype(np.float32)
        out.append(b.weight(p, hint + name, "bf16") if k == 0 or np.any(p != 0) else None)
    return out


def _split(b: Builder, x: Value) -> list:
    out, rest = [], x
    for k in range(PARTS):
        p = cast(b, rest, "bf16")
        out.append(p)
        if k + 1 < PARTS:
            rest = binary(b, "sub", rest, cast(b, p, "f32"))
    return out


def _mm(b: Builder, x: Value, w: Value, shape) -> Value:
    acc = "i32" if x.elem == "i8" else "f32"
    return b.emit(f"matmul {x.name}, {w.name}", shape, acc)


def _narrow(b: Builder, x, elem: str, hint: str) -> Value:
    if isinstance(x, Const):
        a = np.asarray(x.array, np.float32)
        if elem == "f16" and a.size and float(np.nanmax(np.abs(a[np.isfinite(a)]), initial=0)) > F16_MAX:
            raise Unsupported(f"'{x.name or hint}' holds values up to {float(np.abs(a).max()):g}, beyond f16's "
                              f"range ({F16_MAX:g}): import with --dtype bf16")
        return b.weight(a, hint, elem)
    return cast(b, x, elem)


def matmul(b: Builder, x, w, shape, mode: str, hint: str = "w") -> Value:
    """``x · w`` (the language's matmul: ``w`` a matrix, or batches of both) in f32, for FLOAT,
    FLOAT16 and BFLOAT16 operands; ``shape`` is the result's."""
    t = x.onnx
    if t in (FLOAT16, BFLOAT16):
        e = carrier(t)
        return _mm(b, b.value(x), b.value(w), shape)
    if t != FLOAT:
        raise Unsupported(f"a matmul of {type_name(t)} (the MXM multiplies INT8, FLOAT16 and BFLOAT16; FLOAT runs "
                          f"as bf16 products)")
    if mode in ("f16", "bf16") or (mode == "i8" and not (isinstance(w, Const) and w.rank == 2)):
        e = "bf16" if mode == "bf16" else "f16"
        return _mm(b, _narrow(b, x, e, hint + ".x"), _narrow(b, w, e, hint), shape)
    if mode == "i8":
        return _matmul_i8(b, b.value(x), w, shape, hint)
    # f32: x·w as the products of their bf16 parts whose orders add up to at most 2 (hi·hi,
    # hi·mid, mid·hi, hi·lo, mid·mid, lo·hi), the small ones summed first (docs/onnx.md: the bound)
    xs = _split_const(b, x, hint + ".x") if isinstance(x, Const) else _split(b, x)
    ws = _split_const(b, w, hint) if isinstance(w, Const) else _split(b, w)
    terms = [[] for _ in range(PARTS)]
    for i, p in enumerate(xs):
        for j, q in enumerate(ws):
            if i + j < PARTS and p is not None and q is not None:
                terms[i + j].append(_mm(b, p, q, shape))
    y = None
    for group in reversed(terms):
        for t in group:
            y = t if y is None else binary(b, "add", y, t)
    return y


def _matmul_i8(b: Builder, x: Value, w: Const, shape, hint: str) -> Value:
    """Weights quantized symmetrically per output column (``s_j = max|w[:, j]| / 127``) at
    import; each row of ``x`` quantized at run time by its own ``max|x| / 127`` (``cast``
    rounds to nearest and saturates); the i32 products scaled back in f32."""
    a = np.asarray(w.array, np.float64)
    peak = np.abs(a).max(axis=0)
    scale = np.where(peak > 0, peak / 127.0, 1.0)
    wq = np.rint(a / scale).astype(np.int8)
    wv = b.weight(wq, hint + ".q", "i8")
    sv = b.weight(scale.astype(np.float32), hint + ".scale", "f32")
    m = reduce(b, "reduce_max", unary(b, "abs", x), [x.rank - 1], True)
    m = binary(b, "max", m, Const(np.array(1e-30, np.float32), FLOAT))
    r = binary(b, "mul", unary(b, "recip", m), Const(np.array(127.0, np.float32), FLOAT))
    xq = cast(b, binary(b, "mul", x, r), "i8")
    y = cast(b, _mm(b, xq, wv, shape), "f32", FLOAT)
    y = binary(b, "mul", y, binary(b, "mul", m, Const(np.array(1 / 127.0, np.float32), FLOAT)))
    return binary(b, "mul", y, sv)
