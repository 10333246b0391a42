"""How the general code generator keeps tensors in SRAM: rows of 320-lane vectors.

A tensor of shape ``(..., N)`` is ``R = prod(...)`` rows of ``C = ⌈N/L⌉`` vectors (``L`` lanes;
the ragged edge of each row is padded with zeros); vector ``r·C + c`` holds lanes
``c·L … c·L + L − 1`` of row ``r``. A tensor whose last dimension is 1 (or a scalar) is kept
*splat*: its one element in every lane of the row's vector. That is what a lane reduction
produces (the rotate tree leaves the total in every lane) and what broadcasting wants (a
``[R, 1]`` operand of a ``[R, N]`` op is just re-read for every vector of the row).

Every vector has its own place: ``(slice, symbol, row)``, a row of a per-(value, slice) SRAM
tensor. Vectors are dealt round-robin over the MEM slices nearest the VXM (both
hemispheres), so the operands of an elementwise op and its consecutive vectors sit in
different slices and their reads and writes proceed in parallel. Slicing, concatenation and
reshapes that keep lane alignment are just lists of the same places.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lpu.arch.isa import DTYPE_BYTES
from lpu.arch.layout import to_sram
from lpu.asm.records import Placement, Tensor
from lpu.diagnostics import DiagnosticError, error
from lpu.dsl import types as T


def unsupported(op, what: str) -> DiagnosticError:
    """The diagnostic, at the op, for what the general path does not compile yet."""
    from lpu.dsl.frontend import loc_of

    return DiagnosticError(error(f"the code generator does not compile {what} yet", loc_of(op)))


#: each value's first vector goes to one of the NEAR slices nearest the VXM (0: plain round robin)
NEAR = 6


@dataclass(frozen=True, slots=True)
class Vec:
    """Where one vector lives: a row of a per-(value, slice) SRAM tensor."""

    slice: str
    symbol: str
    row: int


@dataclass
class VValue:
    """A tensor value as vectors."""

    shape: tuple[int, ...]
    elem: str
    vecs: list[Vec]

    @property
    def N(self) -> int:
        return self.shape[-1] if self.shape else 1

    @property
    def rows(self) -> int:
        return int(np.prod(self.shape[:-1])) if len(self.shape) > 1 else 1

    @property
    def splat(self) -> bool:
        return self.N == 1

    def cols(self, lanes: int) -> int:
        return 1 if self.splat else math.ceil(self.N / lanes)

    def vec(self, r: int, c: int, lanes: int) -> Vec:
        return self.vecs[r * self.cols(lanes) + c]


def vector_count(shape: tuple[int, ...], lanes: int) -> int:
    n = shape[-1] if shape else 1
    rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    return rows * (1 if n == 1 else math.ceil(n / lanes))


def pack(a: np.ndarray, lanes: int) -> np.ndarray:
    """A tensor as its (vectors, lanes) array: rows padded with zeros, or splat."""
    shape = a.shape
    n = shape[-1] if shape else 1
    rows = a.reshape(-1, n)
    if n == 1:
        return np.repeat(rows, lanes, axis=1)
    c = math.ceil(n / lanes)
    out = np.zeros((rows.shape[0], c * lanes), dtype=a.dtype)
    out[:, :n] = rows
    return out.reshape(-1, lanes)


def unpack(vectors: np.ndarray, shape: tuple[int, ...], lanes: int) -> np.ndarray:
    n = shape[-1] if shape else 1
    if n == 1:
        return np.ascontiguousarray(vectors[:, 0]).reshape(shape)
    c = math.ceil(n / lanes)
    return np.ascontiguousarray(vectors.reshape(-1, c * lanes)[:, :n]).reshape(shape)


@dataclass
class _Sym:
    slice: str
    dtype: str
    rows: int = 0
    image: list | None = None  # the rows' contents for data tensors
    is_global: bool = False


@dataclass
class Storage:
    """sram-layout of the general path: deals vectors over slices, names their tensors."""

    cfg: object
    pool: list[str] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    symbols: dict[str, _Sym] = field(default_factory=dict)
    words: dict[str, int] = field(default_factory=dict)
    _next: int = 0
    _values: int = 0
    prefix: str = ""  # before every symbol (several functions' tensors in one module)

    @classmethod
    def for_chip(cls, cfg, per_side: int = 16) -> "Storage":
        west = sorted((s for s in cfg.mem_slices if s.hemisphere == "W"), key=lambda s: -s.position)
        east = sorted((s for s in cfg.mem_slices if s.hemisphere == "E"), key=lambda s: s.position)
        pool = []
        for i in range(per_side):
            pool += [west[i].name, east[i].name]
        return cls(cfg, pool, {s.name: s.position for s in cfg.mem_slices})

    def alloc(self, name: str, shape: tuple[int, ...], elem: str, data: np.ndarray | None = None,
              is_global: bool = False, loc=None, weights: bool = False, at: str | None = None,
              fixed: bool | None = None) -> VValue:
        """``weights``: a matrix the MXM loads — column block ``c`` on one hemisphere's pool
        slices (even ``c`` west), row ``i`` in the ``i``-th of them, so the rows one ``lw``
        takes (consecutive ``i``) are read from different slices and stream toward planes on
        their own side."""
        lanes = self.cfg.lanes
        if fixed is None:  # contents known before the run: never reused
            fixed = data is not None
        n = vector_count(shape, lanes)
        cols = n // max(1, int(np.prod(shape[:-1])) if len(shape) > 1 else 1)
        width = DTYPE_BYTES[elem]
        rows = pack(np.asarray(data), lanes) if data is not None else None
        vecs = []
        if NEAR and at is None:  # start each value among the nearest slices (short trips to the VXM); the
            # next value one slice further, so an op's operands and result rarely share one
            self._values += 1
            self._next = self._values % NEAR
        for k in range(n):
            if at is not None:
                sl = at
            elif weights:  # column block c on one side (even: west), near the planes that load it
                side = self.pool[(k % cols) % 2::2]
                sl = side[(k // cols + k % cols // 2) % len(side)]
            else:
                sl = self.pool[self._next % len(self.pool)]
                self._next += 1
            sym = f"{self.prefix}{name}_{sl.lower()}"
            s = self.symbols.get(sym)
            if s is None:
                s = self.symbols[sym] = _Sym(sl, elem, 0, [] if rows is not None else None, is_global)
            vecs.append(Vec(sl, sym, s.rows))
            s.rows += 1
            if rows is not None:
                s.image.append(rows[k])
            if not fixed:  # a temporary: its words are counted once addresses are reused (reuse.py)
                continue
            self.words[sl] = self.words.get(sl, 0) + width
            if self.words[sl] > self.cfg.words:
                raise DiagnosticError(error(f"the values of this function need more than the {self.cfg.words} words "
                                            f"of slice {sl}", loc))
        return VValue(tuple(shape), elem, vecs)

    def content(self, v: Vec) -> np.ndarray | None:
        """A vector's contents when known at compile time (a row of a data tensor)."""
        s = self.symbols[v.symbol]
        return s.image[v.row] if s.image is not None else None

    def alloc_vec(self, name: str, elem: str, avoid: set[str], loc=None) -> Vec:
        """One vector in the next slice of the rotation that is not in ``avoid``."""
        k = self._next
        while self.pool[k % len(self.pool)] in avoid:
            k += 1
        return self.alloc(name, (self.cfg.lanes,), elem, None, True, loc, at=self.pool[k % len(self.pool)]).vecs[0]

    def add_arena(self, name: str, slice_: str, words: int) -> None:
        """One slice's reused words (``reuse.py``): an i8 tensor, one row a word."""
        self.symbols[name] = _Sym(slice_, "i8", words, None, True)

    def tensors(self) -> list[Tensor]:
        lanes = self.cfg.lanes
        out = []
        for name, s in self.symbols.items():
            image = None
            if s.image is not None:
                image = to_sram(np.stack(s.image).astype(T.dtype(s.dtype)), s.dtype, lanes)
            out.append(Tensor(name, s.dtype, (s.rows, lanes), Placement(s.slice), image, s.is_global, None,
                              s.rows * DTYPE_BYTES[s.dtype]))
        return out

    def _vectors(self, a: np.ndarray) -> np.ndarray:
        """A symbol's contents as its vectors: the code generator's own tensors are (rows,
        lanes) already; a kernel's tensor (any shape) is flattened and padded, as in SRAM."""
        a = np.asarray(a)
        L = self.cfg.lanes
        if a.ndim == 2 and a.shape[1] == L:
            return a
        flat = np.zeros(-(-a.size // L) * L, a.dtype)
        flat[:a.size] = a.reshape(-1)
        return flat.reshape(-1, L)

    def write_value(self, v: VValue, a: np.ndarray, out: dict[str, np.ndarray]) -> None:
        """The host's view of an input: ``a`` into the symbols of ``v``."""
        rows = pack(np.asarray(a), self.cfg.lanes)
        for k, vec in enumerate(v.vecs):
            buf = out.get(vec.symbol)
            if buf is None:
                buf = out[vec.symbol] = np.zeros((self.symbols[vec.symbol].rows, self.cfg.lanes), dtype=rows.dtype)
            buf[vec.row] = rows[k]

    def read_value(self, v: VValue, parts: dict[str, np.ndarray]) -> np.ndarray:
        rows = np.stack([self._vectors(parts[vec.symbol])[vec.row] for vec in v.vecs])
        return unpack(rows, v.shape, self.cfg.lanes)
