"""sram-layout: the blocked GEMV's tensors to MEM slices, near the plane that consumes them.

A plane loads ``mxm.max_rows_per_lw`` (16) weight rows a cycle from as many consecutive
streams, so its weights are striped over 16 slices, slice ``s`` holding rows ``s, s+16, …`` of
every block the plane computes, block after block (20 words a block): one read and one
``repeat`` per block and slice, the 16 reads in parallel. The slices nearest the plane go to
its stripe (the hemisphere's first plane takes the nearest 16, the second the next 16 on the
other 16 streams), then each plane gets its own copy of ``x`` in the next slices, so no read
port is shared between planes. A plane's partial sums go to the first slice of its stripe (its
write port is free, and the accumulator's group reaches it in a few cycles); the totals of
split columns to ``y_sum``, in a slice between the planes' ``x`` copies and the VXM.

Streams, fixed by this layout (see docs/codegen.md for why no two values meet on a cell):
- weights: stream ``base + s`` toward the plane (``base`` = 0 or 16 by plane within hemisphere);
- ``x``: stream ``base`` toward the plane, in the cycle its weight stripe leaves free for ``mm``;
- ``y``: the accumulator's 4-stream group ``4·(plane within hemisphere)`` away from the plane.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lpu.arch.isa import DTYPE_BYTES
from lpu.arch.layout import to_sram
from lpu.asm.records import Placement, Tensor
from lpu.diagnostics import DiagnosticError, error
from lpu.dsl.codegen.register_block import GemvPlan, split_columns


@dataclass
class PlaneLayout:
    plane: str
    position: int
    west: bool  # operands flow west to the plane (it sits at the west edge)
    weight_slices: list[tuple[str, int]]  # (slice, position), stream s = stream_base + index
    stream_base: int
    x_slice: tuple[str, int]
    y_slice: tuple[str, int]  # partial sums of split parts (and full parts, unless schedule moves them)
    acc_base: int  # first stream of the accumulator group (opposite direction)
    parts: list[tuple[int, int, int]]  # (j, i0, i1), as register-block cut them
    x_symbol: str = ""
    y_symbol: str = ""
    w_symbols: list[str] = field(default_factory=list)
    p_symbol: str = ""  # partial sums of split parts, in y_slice
    part_rows: list[tuple[str, int]] = field(default_factory=list)  # each part's (symbol, row)


@dataclass
class Layout:
    planes: list[PlaneLayout]
    tensors: list[Tensor]
    sum_slice: tuple[str, int] | None = None  # where split columns' totals go
    sum_rows: dict[int, int] = field(default_factory=dict)  # split column j -> row of y_sum
    sum_symbol: str = "y_sum"


def weight_geometry(cfg, elem: str) -> tuple[int, int, int]:
    """(width in bytes, rows per lw, lw cycles per block) for weights of type ``elem``: a
    ``w``-byte row is a ``w``-stream group, so ``lw`` takes ``max_rows_per_lw / w`` rows."""
    width = DTYPE_BYTES[elem]
    rows_per_lw = cfg["mxm.max_rows_per_lw"] // width
    return width, rows_per_lw, cfg["mxm.rows"] // rows_per_lw


def sram_layout(plan: GemvPlan, cfg) -> Layout:
    from lpu.dsl.codegen.gemm import GemmPlan, gemm_layout

    if isinstance(plan, GemmPlan):
        return gemm_layout(plan, cfg)
    stripe_slices = cfg["mxm.max_rows_per_lw"]  # slices (and streams) feeding one plane
    width, rows_per_lw, groups = weight_geometry(cfg, plan.elem)
    lanes = cfg.lanes
    planes: list[PlaneLayout] = []
    tensors: list[Tensor] = []
    split = sorted(split_columns(plan.planes))
    for work in plan.planes:
        q = cfg.queue_by_name[work.plane]
        P = q.position
        hemi = q.slice.hemisphere
        same = [x for x in cfg.queues if x.kind == "mxm" and x.slice.hemisphere == hemi]
        hi = same.index(q)
        near = sorted((s for s in cfg.mem_slices if s.hemisphere == hemi), key=lambda s: abs(s.position - P))
        stripe = stripe_slices * len(same)
        need = stripe + 2 * len(same) + 1
        if len(near) < need or stripe > cfg.streams:
            raise DiagnosticError(error(f"{cfg.name}: {work.plane} needs {need} MEM slices and "
                                        f"{stripe} streams in its hemisphere"))
        mine = near[hi * stripe_slices:(hi + 1) * stripe_slices]
        x_sl, y_sl = near[stripe + hi], near[stripe + len(same) + hi]
        pl = PlaneLayout(work.plane, P, mine[0].position > P, [(s.name, s.position) for s in mine],
                         hi * stripe_slices, (x_sl.name, x_sl.position), (y_sl.name, y_sl.position), 4 * hi,
                         list(work.parts))
        tag = work.plane.removeprefix("MXM_").lower()
        blocks = [(i, j) for j, i0, i1 in work.parts for i in range(i0, i1)]
        pl.w_symbols = weight_tensors(plan.weights, plan.elem, blocks, pl.weight_slices, work.plane, cfg,
                                      tensors)
        pl.x_symbol, pl.y_symbol, pl.p_symbol = f"x_{tag}", f"y_{tag}", f"p_{tag}"
        tensors.append(Tensor(pl.x_symbol, plan.elem, (plan.k, lanes), Placement(x_sl.name), None, True, None,
                              plan.k * width))
        ywords = 4  # an i32 vector is 4 words
        counts = {pl.y_symbol: 0, pl.p_symbol: 0}
        for j, _, _ in work.parts:
            sym = pl.p_symbol if j in split else pl.y_symbol
            pl.part_rows.append((sym, counts[sym]))
            counts[sym] += 1
        for sym, n in counts.items():
            if n:
                tensors.append(Tensor(sym, plan.y_dtype, (n, lanes), Placement(y_sl.name), None, True, None,
                                      ywords * n))
        planes.append(pl)
    layout = Layout(planes, tensors)
    if split:
        first = cfg.queue_by_name[plan.planes[0].plane]
        hemi = first.slice.hemisphere
        near = sorted((s for s in cfg.mem_slices if s.hemisphere == hemi), key=lambda s: abs(s.position - first.position))
        same = [x for x in cfg.queues if x.kind == "mxm" and x.slice.hemisphere == hemi]
        sl = near[stripe_slices * len(same) + 2 * len(same)]
        layout.sum_slice = (sl.name, sl.position)
        layout.sum_rows = {j: r for r, j in enumerate(split)}
        tensors.append(Tensor(layout.sum_symbol, plan.y_dtype, (len(split), lanes), Placement(sl.name), None, True,
                              None, 4 * len(split)))
    return layout


def weight_tensors(weights: np.ndarray | None, elem: str, blocks, weight_slices, plane: str, cfg,
                   tensors: list[Tensor], loc=None) -> list[str]:
    """One SRAM tensor per weight slice of ``plane``: its stripe of every block in ``blocks``
    (with contents when the weights are known, else a global reservation the host fills).
    Appends them to ``tensors`` and returns their names."""
    width, rows_per_lw, groups = weight_geometry(cfg, elem)
    lanes = cfg.lanes
    if len(blocks) * groups > cfg.words:
        raise DiagnosticError(error(f"{plane}'s {len(blocks)} weight blocks need "
                                    f"{len(blocks) * groups} words a slice, more than {cfg.words}", loc))
    tag = plane.removeprefix("MXM_").lower()
    names = []
    for s, (sname, _) in enumerate(weight_slices):
        name = f"w_{tag}_{s}"
        shape = (len(blocks) * groups // width, lanes)
        image = None
        if weights is not None:
            image = to_sram(stripe_rows(weights, blocks, s, width, rows_per_lw, lanes), elem, lanes)
        tensors.append(Tensor(name, elem, shape, Placement(sname), image, weights is None, None, shape[0] * width))
        names.append(name)
    return names


def stripe_rows(weights: np.ndarray, blocks, s: int, width: int, rows_per_lw: int, lanes: int) -> np.ndarray:
    """What stripe slice ``s`` holds: for each block ``(i, j)`` in order, the rows it feeds.
    Slice ``s = (g, e)`` (``g, e = divmod(s, width)``) feeds row ``g`` of the lw cycles
    ``c = e, e + width, …``: rows ``c·rows_per_lw + g`` of each block."""
    g, e = divmod(s, width)
    first, step = e * rows_per_lw + g, rows_per_lw * width
    return np.concatenate([weights[i * lanes + first:(i + 1) * lanes:step, j * lanes:(j + 1) * lanes]
                           for i, j in blocks])


def pack_inputs(plan: GemvPlan, layout: Layout, args: dict[str, np.ndarray], cfg) -> dict[str, np.ndarray]:
    """The SRAM symbols the arguments are written to: one padded copy of ``x`` per plane, and
    ``W`` (when it is an argument) striped as ``sram_layout`` lays constant weights out."""
    from lpu.dsl.codegen.gemm import GemmPlan, pack_gemm_inputs

    if isinstance(plan, GemmPlan):
        return pack_gemm_inputs(plan, layout, args, cfg)
    lanes = cfg.lanes
    x = args[plan.x_arg]
    padded = np.zeros(plan.k * lanes, dtype=x.dtype)
    padded[:plan.K] = x
    out = {pl.x_symbol: padded.reshape(plan.k, lanes) for pl in layout.planes}
    if plan.w_arg is not None:
        from lpu.dsl.codegen.register_block import pad

        width, rows_per_lw, _ = weight_geometry(cfg, plan.elem)
        w = pad(np.asarray(args[plan.w_arg]), plan.k, plan.n, lanes)
        for pl in layout.planes:
            blocks = [(i, j) for j, i0, i1 in pl.parts for i in range(i0, i1)]
            for s, sym in enumerate(pl.w_symbols):
                out[sym] = stripe_rows(w, blocks, s, width, rows_per_lw, lanes)
    return out


def result_rows(layout: Layout) -> dict[int, tuple[str, int]]:
    """Where output column j ends up: its part's row, or for a split column its row of ``y_sum``.
    For a GEMM layout: (row m, column block j) -> (symbol, row)."""
    from lpu.dsl.codegen.gemm import GemmLayout, gemm_result_rows

    if isinstance(layout, GemmLayout):
        return gemm_result_rows(layout)
    out: dict[int, tuple[str, int]] = {j: (layout.sum_symbol, r) for j, r in layout.sum_rows.items()}
    for pl in layout.planes:
        for (j, _, _), where in zip(pl.parts, pl.part_rows):
            out.setdefault(j, where)
    return out


def unpack_y(plan: GemvPlan, layout: Layout, parts: dict[str, np.ndarray], lanes: int) -> np.ndarray:
    """``y`` from the planes' output symbols, padding dropped."""
    from lpu.dsl.codegen.gemm import GemmPlan, unpack_gemm

    if isinstance(plan, GemmPlan):
        return unpack_gemm(plan, layout, parts, lanes)
    y = np.zeros((plan.n, lanes), dtype=next(iter(parts.values())).dtype)
    for j, (sym, row) in result_rows(layout).items():
        y[j] = parts[sym][row]
    return y.reshape(-1)[:plan.N]
