"""GEMM: ``Y = X · W`` with ``X`` of M × K rows — register blocking and SRAM layout.

The GEMV stages handle one row of ``x``; a GEMM reuses every installed 320 × 320 weight block
for many rows. A plane has ``mxm.acc_slots`` (64) accumulator slots, so the M rows are cut into
*tiles* of at most 64 rows; a *unit* is one tile against one output column ``j``: for each K
block ``i`` the plane loads block ``(i, j)`` (into the shadow buffer, while the previous block
computes), installs it and streams the tile's rows through it, row ``s`` of the tile into slot
``s`` (``set`` for ``i = 0``, ``add`` after), then emits the tile's slots once. Units, column
after column, are cut into one equal run per plane (± 1 unit): the K accumulation of a unit
stays on one plane, so no partial sums are ever added outside the MXM.

Small problems are cut into more, smaller tiles so that every plane gets a unit
(``compile_function`` tries each plane count and keeps the shortest kernel).

Layout per plane (``gemm_layout``): the same 16-slice weight stripe as GEMV (each distinct
block stored once, in first-use order), one slice with the plane's copy of all of ``X``
(row ``m`` of K block ``i`` at word ``(i·M + m)·width``, so a tile's rows are consecutive and
their reads compact into one ``read`` + ``repeat``), and four result slices: an accumulator
group is four words, a write holds its slice's port four cycles, so consecutive ``acc``s go
round-robin to four slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lpu.arch.isa import DTYPE_BYTES
from lpu.asm.records import Placement, Tensor
from lpu.diagnostics import DiagnosticError, error

Y_SLICES = 4  # result slices per plane: an i32/f32 write holds a port 4 cycles


@dataclass
class GemmPlaneWork:
    plane: str
    units: list[tuple[int, int, int]] = field(default_factory=list)  # (j, m0, m1), in issue order


@dataclass
class GemmPlan:
    """What register blocking decided for one ``Y = X · W`` with several rows."""

    func: str
    x_arg: str
    y_dtype: str
    M: int
    K: int
    N: int
    k: int
    n: int
    weights: np.ndarray | None  # padded to (320k, 320n); None when W is an argument
    elem: str
    planes: list[GemmPlaneWork]
    w_arg: str | None
    tiles: list[tuple[int, int]]  # (m0, m1): rows sharing one weight load
    loc: object = None  # the matmul's SourceLoc, for diagnostics

    @property
    def blocks(self) -> int:
        return self.k * self.n


def block_gemm(func, x_arg, y_dtype, M, K, N, k, n, padded, elem, order, w_arg, cfg,
               tile_rows: int | None = None, loc=None) -> GemmPlan:
    slots = min(cfg["mxm.acc_slots"], tile_rows or cfg["mxm.acc_slots"])
    tiles_n = max(-(-M // slots), min(M, -(-len(order) // n)))
    tiles = [(t * M // tiles_n, (t + 1) * M // tiles_n) for t in range(tiles_n)]
    units = [(j, m0, m1) for j in range(n) for m0, m1 in tiles]
    planes = [GemmPlaneWork(p) for p in order[:min(len(order), len(units))]]
    start = 0
    for p, work in enumerate(planes):
        size = len(units) // len(planes) + (1 if p < len(units) % len(planes) else 0)
        work.units = units[start:start + size]
        start += size
    return GemmPlan(func, x_arg, y_dtype, M, K, N, k, n, padded, elem, planes, w_arg, tiles, loc)


@dataclass
class GemmPlaneLayout:
    plane: str
    position: int
    west: bool  # operands flow west to the plane
    weight_slices: list[tuple[str, int]]
    stream_base: int
    x_slice: tuple[str, int]
    y_slices: list[tuple[str, int]]
    acc_base: int
    units: list[tuple[int, int, int]]
    blocks: list[tuple[int, int]]  # distinct (i, j) in the order the stripe holds them
    x_symbol: str = ""
    w_symbols: list[str] = field(default_factory=list)
    y_symbols: list[str] = field(default_factory=list)
    y_base: list[int] = field(default_factory=list)  # per unit: its first row in every y slice

    @property
    def block_index(self) -> dict[tuple[int, int], int]:
        return {b: n for n, b in enumerate(self.blocks)}

    def y_where(self, u: int, s: int) -> tuple[str, int]:
        """Where row ``s`` of unit ``u`` lands: (symbol, row)."""
        return self.y_symbols[s % Y_SLICES], self.y_base[u] + s // Y_SLICES


@dataclass
class GemmLayout:
    planes: list[GemmPlaneLayout]
    tensors: list[Tensor]


def gemm_layout(plan: GemmPlan, cfg) -> GemmLayout:
    from lpu.dsl.codegen.sram_layout import weight_geometry, weight_tensors

    stripe_slices = cfg["mxm.max_rows_per_lw"]
    width, rows_per_lw, groups = weight_geometry(cfg, plan.elem)
    lanes = cfg.lanes
    ywords = DTYPE_BYTES[plan.y_dtype]
    planes, tensors = [], []
    for work in plan.planes:
        q = cfg.queue_by_name[work.plane]
        P, hemi = q.position, q.slice.hemisphere
        same = [x for x in cfg.queues if x.kind == "mxm" and x.slice.hemisphere == hemi]
        hi = same.index(q)
        near = sorted((s for s in cfg.mem_slices if s.hemisphere == hemi), key=lambda s: abs(s.position - P))
        stripe = stripe_slices * len(same)
        need = stripe + (1 + Y_SLICES) * len(same)
        if len(near) < need or stripe > cfg.streams:
            raise DiagnosticError(error(f"{cfg.name}: {work.plane} needs {need} MEM slices and "
                                        f"{stripe} streams in its hemisphere for a GEMM", plan.loc))
        mine = near[hi * stripe_slices:(hi + 1) * stripe_slices]
        x_sl = near[stripe + hi]
        y_sl = near[stripe + len(same) + Y_SLICES * hi:stripe + len(same) + Y_SLICES * (hi + 1)]
        blocks: list[tuple[int, int]] = []
        for j, _, _ in work.units:
            for i in range(plan.k):
                if (i, j) not in blocks:
                    blocks.append((i, j))
        pl = GemmPlaneLayout(work.plane, P, mine[0].position > P, [(s.name, s.position) for s in mine],
                             hi * stripe_slices, (x_sl.name, x_sl.position), [(s.name, s.position) for s in y_sl],
                             4 * hi, list(work.units), blocks)
        tag = work.plane.removeprefix("MXM_").lower()
        pl.w_symbols = weight_tensors(plan.weights, plan.elem, blocks, pl.weight_slices, work.plane, cfg,
                                      tensors, plan.loc)
        xrows = plan.k * plan.M
        if xrows * width > cfg.words:
            raise DiagnosticError(error(f"the left operand ({plan.M} x {plan.K} {plan.elem}) needs {xrows * width} "
                                        f"words in one slice per plane ({x_sl.name} for {work.plane}); a slice "
                                        f"holds {cfg.words}", plan.loc))
        pl.x_symbol = f"x_{tag}"
        tensors.append(Tensor(pl.x_symbol, plan.elem, (xrows, lanes), Placement(x_sl.name), None, True, None,
                              xrows * width))
        rows = 0
        for _, m0, m1 in work.units:
            pl.y_base.append(rows)
            rows += -(-(m1 - m0) // Y_SLICES)
        if rows * ywords > cfg.words:
            raise DiagnosticError(error(f"{work.plane}'s results need {rows * ywords} words a slice, "
                                        f"more than {cfg.words}", plan.loc))
        for r, (sname, _) in enumerate(pl.y_slices):
            pl.y_symbols.append(f"y_{tag}_{r}")
            tensors.append(Tensor(pl.y_symbols[-1], plan.y_dtype, (max(rows, 1), lanes), Placement(sname), None,
                                  True, None, max(rows, 1) * ywords))
        planes.append(pl)
    return GemmLayout(planes, tensors)


def gemm_result_rows(layout: GemmLayout) -> dict[tuple[int, int], tuple[str, int]]:
    """Where row ``m`` of output column block ``j`` lands: (m, j) -> (symbol, row)."""
    out = {}
    for pl in layout.planes:
        for u, (j, m0, m1) in enumerate(pl.units):
            for s in range(m1 - m0):
                out[(m0 + s, j)] = pl.y_where(u, s)
    return out


def pack_gemm_inputs(plan: GemmPlan, layout: GemmLayout, args, cfg) -> dict[str, np.ndarray]:
    from lpu.dsl.codegen.register_block import pad
    from lpu.dsl.codegen.sram_layout import stripe_rows, weight_geometry

    lanes = cfg.lanes
    x = np.asarray(args[plan.x_arg])
    padded = np.zeros((plan.M, plan.k * lanes), dtype=x.dtype)
    padded[:, :plan.K] = x
    # row i·M + m holds X[m, 320i : 320(i+1)]
    rows = padded.reshape(plan.M, plan.k, lanes).transpose(1, 0, 2).reshape(plan.k * plan.M, lanes)
    out = {pl.x_symbol: rows for pl in layout.planes}
    if plan.w_arg is not None:
        width, rows_per_lw, _ = weight_geometry(cfg, plan.elem)
        w = pad(np.asarray(args[plan.w_arg]), plan.k, plan.n, lanes)
        for pl in layout.planes:
            for s, sym in enumerate(pl.w_symbols):
                out[sym] = stripe_rows(w, pl.blocks, s, width, rows_per_lw, lanes)
    return out


def unpack_gemm(plan: GemmPlan, layout: GemmLayout, parts: dict[str, np.ndarray], lanes: int) -> np.ndarray:
    y = np.zeros((plan.M, plan.n, lanes), dtype=next(iter(parts.values())).dtype)
    for (m, j), (sym, row) in gemm_result_rows(layout).items():
        y[m, j] = parts[sym][row]
    return y.reshape(plan.M, -1)[:, :plan.N]
