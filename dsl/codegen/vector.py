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

The whole chip is used: a value that no longer fits the slices near the VXM goes to the
least-filled slice, and a matrix the MXM loads (``weights``) keeps each column block's rows
on a window of 16 slices of one hemisphere — the 16 that one ``lw`` after another reads in
parallel — chosen among all 44 of that hemisphere by how full they are, the slices nearest
the planes first. Words are counted in one budget per chip (``SramBudget``), shared by every
function compiled for it (a template's parameters counted once per call that binds them);
what does not fit is reported once, with what is needed and what the chip has.
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
#: a weight matrix's column block keeps its rows on this many slices (one ``lw`` takes up to 16
#: rows, each from its own slice's read port)
WINDOW = 16
#: a matrix of more column blocks than this never takes the pool's rotated windows (``_window``),
#: which all its columns would share: an output head of 154 columns had two-thirds of them
#: loaded through one window a hemisphere, at one ``lw`` a cycle for both planes of a side
POOL_COLUMNS = 8
#: a template's weight column blocks alternate hemispheres across its matrices
#: (``SramBudget.weight_blocks``)
BALANCE_SIDES = True


@dataclass
class SramBudget:
    """The fixed words of each slice of one chip (arguments, results, constants, weights,
    tables, persistent tensors), shared by every ``Storage`` of the chip. ``over`` records
    the first allocation that did not fit (its location) and ``needed`` the words asked for in
    all, so the diagnostic can say how much is needed against what the chip has."""

    words: dict[str, int] = field(default_factory=dict)
    #: hemisphere -> the window of the weight column block placed last there (``Storage._window``)
    last_window: dict[str, list[str]] = field(default_factory=dict)
    #: templates' weight column blocks placed so far: the next one goes to the other hemisphere,
    #: across matrices too (a block's matrices of odd column counts would all start west)
    weight_blocks: int = 0
    over: object = None  # (what, loc) of the first allocation past the chip's capacity
    needed: int = 0

    def used(self, sl: str) -> int:
        return self.words.get(sl, 0)

    def add(self, sl: str, n: int) -> None:
        self.words[sl] = self.words.get(sl, 0) + n
        self.needed += n


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
    mutable: bool = False  # written at run time (store): its image is only where it starts


@dataclass
class Storage:
    """sram-layout of the general path: deals vectors over slices, names their tensors."""

    cfg: object
    pool: list[str] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    symbols: dict[str, _Sym] = field(default_factory=dict)
    budget: SramBudget = field(default_factory=SramBudget)
    sides: dict[str, list[str]] = field(default_factory=dict)  # hemisphere -> its slices, VXM outward
    own: dict[str, int] = field(default_factory=dict)  # the words of the budget this storage took
    _next: int = 0
    _values: int = 0
    prefix: str = ""  # before every symbol (several functions' tensors in one module)

    @classmethod
    def for_chip(cls, cfg, per_side: int = 16, budget: SramBudget | None = None) -> "Storage":
        west = sorted((s for s in cfg.mem_slices if s.hemisphere == "W"), key=lambda s: -s.position)
        east = sorted((s for s in cfg.mem_slices if s.hemisphere == "E"), key=lambda s: s.position)
        pool = []
        for i in range(per_side):
            pool += [west[i].name, east[i].name]
        return cls(cfg, pool, {s.name: s.position for s in cfg.mem_slices}, budget=budget or SramBudget(),
                   sides={"W": [s.name for s in west], "E": [s.name for s in east]})

    @property
    def words(self) -> dict[str, int]:
        return self.budget.words

    def _room(self, sl: str, n: int) -> bool:
        return self.budget.used(sl) + n <= self.cfg.words

    def _spill(self, n: int) -> str | None:
        """The slice for a fixed vector of ``n`` words that its turn's slice cannot take: the
        least-filled slice with room, the nearest the VXM first."""
        order = [sl for pair in zip(self.sides["W"], self.sides["E"]) for sl in pair]
        fits = [sl for sl in order if self._room(sl, n)]
        return min(fits, key=lambda sl: self.budget.used(sl)) if fits else None

    def _window(self, side: str, c: int, need: int, copies: int = 1, outward: bool = False) -> list[str]:
        """The slices of column block ``c`` of a weight matrix, row ``i`` in the ``i``-th: the
        pool's slices of that side rotated by ``c // 2`` while they stay at most half full (small
        functions), else — and always for a template's parameters, which many calls
        repeat — the ``WINDOW`` least-filled slices of the hemisphere, the nearest the planes
        first, so a model's weights spread over the whole chip (``outward``: always those)."""
        near = self.pool[(0 if side == "W" else 1)::2]
        legacy = [near[(i + c // 2) % len(near)] for i in range(len(near))]
        if copies == 1 and not outward and all(self.budget.used(sl) + need <= self.cfg.words // 2 for sl in legacy):
            return legacy
        hemi = self.sides[side]
        far = {sl: -k for k, sl in enumerate(hemi)}  # outward from the VXM: the planes' end first
        # not the slices of the side's previous block: consecutive blocks of a side run on its
        # two planes at once, and a slice's one read port would serve both planes' lws
        # (among the slices with room for the block: a chip full of weights has none to spare)
        prev = set(self.budget.last_window.get(side, ()))
        roomy = [sl for sl in hemi if self._room(sl, need)]
        cand = [sl for sl in roomy if sl not in prev]
        if len(cand) < WINDOW:
            cand = roomy if len(roomy) >= WINDOW else hemi
        # the slices the values are dealt over (the pool, near the VXM) count as half full
        vals = set(self.pool)
        fill = {sl: self.budget.used(sl) + (self.cfg.words // 2 if sl in vals else 0) for sl in cand}
        win = sorted(sorted(cand, key=lambda sl: (fill[sl], far[sl]))[:WINDOW], key=lambda sl: far[sl])
        self.budget.last_window[side] = win
        return win

    def alloc(self, name: str, shape: tuple[int, ...], elem: str, data: np.ndarray | None = None,
              is_global: bool = False, loc=None, weights: bool = False, at: str | None = None,
              fixed: bool | None = None, copies: int = 1, mutable: bool = False, side: str | None = None) -> VValue:
        """``weights``: a matrix the MXM loads — column block ``c`` on one hemisphere (even
        ``c`` west), row ``i`` in the ``i``-th slice of its window (``_window``), so the rows
        one ``lw`` takes (consecutive ``i``) are read from different slices and stream toward
        planes on their own side. ``copies``: a template's parameter, whose words every call
        that binds it takes again (its layout is the same each time). ``side``: every column
        block on that hemisphere, in the slices nearest its planes (a matrix one known plane
        loads: the lane sums' all-ones matrix)."""
        lanes = self.cfg.lanes
        if fixed is None:  # contents known before the run: never reused
            fixed = data is not None
        n = vector_count(shape, lanes)
        nrows = max(1, int(np.prod(shape[:-1])) if len(shape) > 1 else 1)
        cols = n // nrows
        width = DTYPE_BYTES[elem]
        rows = pack(np.asarray(data), lanes) if data is not None else None
        if NEAR and at is None:  # start each value among the nearest slices (short trips to the VXM); the
            # next value one slice further, so an op's operands and result rarely share one
            self._values += 1
            self._next = self._values % NEAR
        weights = weights and at is None
        win: list[str] = []
        # a weight matrix column block by column block, each one's window chosen with the words
        # of the blocks before it counted
        order = [r * cols + c for c in range(cols) for r in range(nrows)] if weights else range(n)
        # a template's matrices (``copies``: every call takes their words again) continue one
        # alternation, so a model's many calls fill both hemispheres alike; a function's own
        # matrices start west each (small functions keep their nearest windows)
        balance = BALANCE_SIDES and copies > 1
        first_side = self.budget.weight_blocks % 2 if balance else 0
        vecs: list = [None] * n
        cut = nrows  # the row from which a column's K blocks go to a second plane: a window of their own
        if weights and len(shape) == 2:
            from lpu.dsl.codegen.mxm import k_cut

            cut = k_cut(nrows, cols, self.cfg) or nrows
        for k in order:
            if at is not None:
                sl = at
            elif weights:  # column block c on one side (even: west), near the planes that load it
                r = k // cols
                if r == 0:
                    hemi = side or ("W" if (first_side + k) % 2 == 0 else "E")
                    self.budget.weight_blocks += balance
                if r in (0, cut):
                    n_here = cut if r == 0 else nrows - cut
                    win = self._window(hemi, k % cols, -(-n_here // WINDOW) * width * copies, copies,
                                       outward=side is not None or cols > POOL_COLUMNS)
                sl = win[(r - (cut if r >= cut else 0)) % len(win)]
            else:
                sl = self.pool[self._next % len(self.pool)]
                self._next += 1
                if fixed and not self._room(sl, width * copies):
                    sl = self._spill(width * copies) or sl
            if fixed and not self._room(sl, width * copies) and self.budget.over is None:
                self.budget.over = (name, loc)
            sym = f"{self.prefix}{name}_{sl.lower()}"
            s = self.symbols.get(sym)
            if s is None:
                s = self.symbols[sym] = _Sym(sl, elem, 0, [] if rows is not None else None, is_global, mutable)
            vecs[k] = Vec(sl, sym, s.rows)
            s.rows += 1
            if rows is not None:
                s.image.append(rows[k])
            if fixed:  # a temporary's words are counted once addresses are reused (reuse.py)
                self.budget.add(sl, width * copies)
                self.own[sl] = self.own.get(sl, 0) + width * copies
        return VValue(tuple(shape), elem, vecs)

    def others(self, sl: str) -> int:
        """The fixed words of slice ``sl`` that other storages of the chip hold."""
        return self.budget.used(sl) - self.own.get(sl, 0)

    def check_capacity(self) -> None:
        """The diagnostic for a function whose fixed values do not fit the chip, at the first
        value that did not fit."""
        if self.budget.over is None:
            return
        cfg = self.cfg
        total = len(cfg.mem_slices) * cfg.words
        full = max(self.budget.words, key=self.budget.used)
        _, loc = self.budget.over
        raise DiagnosticError(error(
            f"the values of this function need {self.budget.needed:,} words of SRAM ({self.budget.needed * cfg.lanes:,} "
            f"bytes; slice {full} would hold {self.budget.used(full):,} words); the chip has {len(cfg.mem_slices)} "
            f"slices of {cfg.words:,} words ({total:,} words, {total * cfg.lanes:,} bytes)", loc))

    def content(self, v: Vec) -> np.ndarray | None:
        """A vector's contents when known at compile time (a row of a data tensor)."""
        s = self.symbols[v.symbol]
        return s.image[v.row] if s.image is not None and not s.mutable else None

    def alloc_vec(self, name: str, elem: str, avoid: set[str], loc=None, side: str | None = None,
                  start: int | None = None) -> Vec:
        """One vector in the next slice of the rotation that is not in ``avoid`` (on hemisphere
        ``side``, if one is given and has such a slice)."""
        pool = self.pool
        ok = {sl for sl in pool if sl not in avoid}
        here = self.sides.get(side, ())
        if any(sl in here for sl in ok):
            ok = {sl for sl in ok if sl in here}
        if not ok:
            ok = set(pool)
        k = self._next if start is None else start
        while pool[k % len(pool)] not in ok:
            k += 1
        return self.alloc(name, (self.cfg.lanes,), elem, None, True, loc, at=pool[k % len(pool)]).vecs[0]

    def side_of(self, sl: str) -> str:
        return "W" if sl in self.sides.get("W", ()) else "E"

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
