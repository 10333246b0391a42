"""Matmuls inside a larger function: ``x[R, K] · W[K, N]`` as one job of the list scheduler.

Each column block (320 output lanes) goes to the plane that is free soonest, and independent
matmuls run on different planes; a matmul of few rows and columns but many K blocks cuts each
column's K blocks over both planes of its weights' hemisphere (``k_split``), and the lowering
adds the two sums. For each column block a plane runs its K blocks: the block's
rows enter the shadow buffer through ``lw`` (16 i8 rows or 8 f16/bf16 rows a cycle, each row
read from its slice so that it passes the plane in the ``lw`` cycle), ``iw`` makes them
active, and one ``mm`` per row of ``x`` (``x``'s vector read to pass the plane in that cycle)
sets (first K block) or adds into accumulator slot ``r``. After the last K block one ``acc``
per row sends the sums (i32/f32, a 4-stream group) to the result's slice. The next block's
``lw``s overlap the current block's ``mm``s (the shadow buffer), as on the real chip.

Every instruction goes to the earliest cycle where its queue slot, the MEM ports, the plane
(an ``mm`` holds it ``occupancy`` cycles) and stream-alloc's groups are free — the same
tables the vector snippets use (``snippets.py``), so matmuls and vector work overlap.
Rows of the last K block beyond K are not loaded; ``x``'s padding lanes are zeroed by the
lowering (``select``), so the weights left in those rows multiply zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

from lpu.arch.isa import BY_MNEMONIC, DTYPE_BYTES
from lpu.asm.operands import stream_field
from lpu.asm.records import SymRef
from lpu.diagnostics import DiagnosticError, SourceLoc, error
from lpu.dsl.codegen.snippets import search_limit
from lpu.dsl.codegen.streams import Segment
from lpu.dsl.codegen.vector import Vec

_SET, _ADD = 0, 1
#: a matmul of at most ``SPLIT_ROWS`` rows of x, at most half as many column blocks as planes
#: and at least ``SPLIT_FROM`` K blocks cuts each column's K blocks over two planes
#: (``k_split``); SmolLM2's down projection (5 K blocks, 2 columns): 2,258 -> 2,238 cycles a block
SPLIT_K, SPLIT_ROWS, SPLIT_FROM = True, 8, 3
#: a column block of a matrix of more than NEAR_COLUMNS of them goes to the plane of its
#: weights' hemisphere free soonest, unless a plane across the chip is free NEAR_PLANES cycles
#: sooner (its loads would cross the VXM and contend with the other side's): SmolLM2's output
#: head (154 columns) 38,750 -> 38,660 cycles on its chip. For every matmul the model gained
#: more (34,242 + 38,750 -> 34,084 + 38,497) but the decoder example lost 11 cycles
NEAR_PLANES, NEAR_COLUMNS = 100, 8


def k_cut(K: int, C: int, cfg) -> int:
    """The row of a matrix of ``K`` rows and ``C`` column blocks from which its K blocks may go
    to a second plane (0: none): the layout (``Storage.alloc``) puts the rows from there in a
    window of slices of their own, so the two planes' ``lw``s read through different ports."""
    kc = -(-K // cfg["mxm.rows"])
    planes = sum(1 for q in cfg.queues if q.kind == "mxm")
    return cfg["mxm.rows"] * -(-kc // 2) if SPLIT_K and kc >= 2 and 2 * C <= planes else 0


def k_split(K: int, C: int, cfg, block: int = 0) -> int:
    """The K block (of ``block`` rows; 0: the plane's) from which a matmul's K blocks go to a
    second plane (0: not cut): at ``k_cut``, for a matmul of at least ``SPLIT_FROM`` blocks."""
    B = block or cfg["mxm.rows"]
    cut = k_cut(K, C, cfg)
    return cut // B if cut and cut % B == 0 and -(-K // B) >= SPLIT_FROM else 0


@dataclass
class MatmulJob:
    elem: str  # i8, f16 or bf16
    acc: str  # i32 or f32
    x: list[list[Vec]]  # x[r][kb]
    w: list[list[Vec]]  # w[i][nb]: row i of W, column block nb
    y: list[list[Vec]]  # y[r][nb]
    K: int
    loc: SourceLoc | None = None
    #: K cut in two (``k_split``): K blocks ``split`` on go to a second plane, into ``y2``
    #: (the lowering adds ``y + y2``)
    split: int = 0
    y2: list[list[Vec]] | None = None
    #: rows of W a K block takes (0: the plane's). ``x[r][kb]`` then holds elements
    #: ``kb·block`` to ``kb·block + block − 1`` of x's row ``r`` in its first ``block`` lanes
    #: and zeros in the others (a head's dims, ``Lowering.reshape``)
    block: int = 0

    def work(self, slots: int) -> list[tuple[int, list[int]]]:
        """(column block, rows): a plane's accumulator slots hold ``slots`` rows at a time, so
        more rows are cut into groups, each loading the column's weights again."""
        R = len(self.x)
        return [(nb, list(range(r0, min(R, r0 + slots)))) for nb in range(len(self.y[0])) for r0 in range(0, R, slots)]


def plane_order(cfg) -> list[tuple[str, int]]:
    west = [(q.name, q.position) for q in cfg.queues if q.kind == "mxm" and q.slice.hemisphere == "W"]
    east = [(q.name, q.position) for q in cfg.queues if q.kind == "mxm" and q.slice.hemisphere == "E"]
    out = []
    for i in range(max(len(west), len(east))):
        out += west[i:i + 1] + east[i:i + 1]
    return out


class _Plane:
    def __init__(self, name: str, position: int, hemisphere: str):
        self.name, self.P, self.hemisphere = name, position, hemisphere
        self.lw_from = 0  # the next lw may issue here (after the previous iw)
        self.mm_free = 0  # the plane is free of mm work from here
        self.acc_done = 0  # accumulators emitted: the next column block may set them


def _earliest(start: int, fits, limit: int, what: str, loc) -> int:
    """The first cycle from ``start`` where ``fits``; a diagnostic at ``loc`` past ``limit``
    (``snippets.search_limit``)."""
    c = start
    while not fits(c):
        c += 1
        if c > limit:
            raise DiagnosticError(error(f"the scheduler found no cycle for {what}", loc))
    return c


def _mxm_timing(job, s) -> tuple[int, int, int, int, int]:
    """A job's weight width, rows a ``lw`` takes (a stream a row, within the stream limit),
    ``mm`` occupancy, ``acc`` latency and accumulator width (the ISA table and the chip's)."""
    cfg = s.cfg
    w = DTYPE_BYTES[job.elem]
    return (w, min(cfg["mxm.max_rows_per_lw"], s.streams.n) // w, BY_MNEMONIC["mm"].occupancy_for(cfg, job.elem),
            BY_MNEMONIC["acc"].latency_for(cfg, job.acc), DTYPE_BYTES[job.acc])


def schedule_matmul(job: MatmulJob, s, horizon: int = 20_000) -> None:
    """Place ``job`` using the scheduler context ``s`` (``snippets._Context``)."""
    cfg = s.cfg
    w, rows_per_lw, occ, acc_lat, wa = _mxm_timing(job, s)
    planes = _planes(s)
    if s.__dict__.get("sum_plane") is not None:  # one plane keeps the ones matrix of lane sums
        planes = [p for p in planes if p is not s.sum_plane]
    L = cfg["mxm.rows"]

    def search(start, fits, what):
        return _earliest(start, fits, search_limit(s, start, horizon), f"a matmul's {what}", job.loc)

    kc = len(job.x[0])
    # the plane free soonest: consecutive matmuls (heads of an attention) spread out
    free = lambda p: max(p.lw_from, p.mm_free, p.acc_done)  # noqa: E731
    side = {sl.name: sl.hemisphere for sl in cfg.mem_slices}
    if job.y2 is None:
        for nb, rows_ in job.work(cfg["mxm.acc_slots"]):
            pl = min(planes, key=free)
            if NEAR_PLANES and len(job.y[0]) > NEAR_COLUMNS:
                near = [p for p in planes if p.hemisphere == side[job.w[0][nb].slice]]
                if near and free(min(near, key=free)) <= free(pl) + NEAR_PLANES:
                    pl = min(near, key=free)
            _column(s, job, pl, nb, rows_, range(kc), job.y, search, L, w, rows_per_lw, occ, acc_lat, wa)
        return
    # the K blocks cut in two, each part on a plane of the weights' hemisphere; every column's
    # first part placed before the second parts, whose loads would take the ports x is read from
    seconds = []
    for nb, rows_ in job.work(cfg["mxm.acc_slots"]):
        near = [p for p in planes if p.hemisphere == side[job.w[0][nb].slice]] or planes
        first = min(near, key=free)
        _column(s, job, first, nb, rows_, range(job.split), job.y, search, L, w, rows_per_lw, occ, acc_lat, wa)
        seconds.append((min([p for p in near if p is not first] or [first], key=free), nb, rows_))
    for pl, nb, rows_ in seconds:
        _column(s, job, pl, nb, rows_, range(job.split, kc), job.y2, search, L, w, rows_per_lw, occ, acc_lat, wa)


def _column(s, job, pl, nb, rows_, kbs, ys, search, L, w, rows_per_lw, occ, acc_lat, wa) -> None:
    """Column block ``nb`` of ``job`` over the K blocks ``kbs`` on plane ``pl``: the weight
    loads, one ``mm`` a row of ``x`` per K block, the rows' sums into ``ys``."""
    last_mm = {}
    B = job.block or L
    for kb in kbs:
        rows = list(range(kb * B, min(job.K, kb * B + B)))
        c = pl.lw_from
        for g in range(0, len(rows), rows_per_lw):
            chunk = [job.w[i][nb] for i in rows[g:g + rows_per_lw]]
            holder = {}
            c = search(c, lambda t: _lw_fits(s, pl, t, chunk, w, holder), "weight loads")
            _lw_commit(s, pl, c, chunk, w, holder["plan"], job)
            c += 1
        iw = search(max(c, pl.mm_free), lambda t: s.res.free("queue", pl.name, t), "iw")
        s.res.take("queue", pl.name, iw)
        s.add(iw, pl.name, "iw", None, (), loc=job.loc)
        pl.lw_from = iw + 1
        m = iw + 1
        for slot, r in enumerate(rows_):
            xv = job.x[r][kb]
            holder = {}
            start = max(m, pl.mm_free, pl.acc_done if kb == kbs[0] else 0)
            m = search(start, lambda t: _mm_fits(s, pl, t, xv, w, occ, holder), "products")
            _issue_mm(s, pl, job, xv, m, w, occ, slot, _SET if kb == kbs[0] else _ADD, holder["plan"])
            last_mm[r] = m
            m += occ
    a = 0
    for slot, r in enumerate(rows_):
        yv = ys[r][nb]
        holder = {}
        a = search(max(a, last_mm[r] + occ), lambda t: _acc_fits(s, pl, t, yv, wa, acc_lat, holder), "results")
        _acc_commit(s, pl, a, slot, yv, wa, holder["plan"], job)
        pl.acc_done = max(pl.acc_done, a + 1)
        a += 1


def _planes(s) -> list[_Plane]:
    """The planes' state, carried from one job to the next (shadow buffers, slots)."""
    if "planes" not in s.__dict__:
        side = {q.name: q.slice.hemisphere for q in s.cfg.queues}
        s.planes = [_Plane(n, p, side[n]) for n, p in plane_order(s.cfg)]
    return s.planes


@dataclass
class LaneSumJob:
    """``reduce_sum`` over the lanes of rows of vectors through the MXM: ``mm`` of each vector
    by an all-ones matrix (set, then add) leaves the row's total in every lane of the slot
    (a splat), exactly like a matmul with a ones vector — which is what the interpreter's
    numerics say a lane sum is."""

    elem: str
    acc: str
    rows: list[list[Vec]]  # the vectors of each row (padding lanes zeroed)
    y: list[Vec]
    ones: list[Vec]  # the all-ones matrix, one vector a row, in the weight layout
    loc: SourceLoc | None = None


def schedule_lane_sum(job: LaneSumJob, s, horizon: int = 20_000) -> None:
    cfg = s.cfg
    w, rows_per_lw, occ, acc_lat, wa = _mxm_timing(job, s)
    slots = cfg["mxm.acc_slots"]

    def search(start, fits, what):
        return _earliest(start, fits, search_limit(s, start, horizon), f"a lane sum's {what}", job.loc)

    pl = s.sum_plane
    if not s.__dict__.get("ones_loaded"):
        s.ones_loaded = True
        c = pl.lw_from
        for g in range(0, len(job.ones), rows_per_lw):
            chunk = job.ones[g:g + rows_per_lw]
            holder = {}
            c = search(c, lambda t: _lw_fits(s, pl, t, chunk, w, holder), "ones matrix")
            _lw_commit(s, pl, c, chunk, w, holder["plan"], job)
            c += 1
        iw = search(c, lambda t: s.res.free("queue", pl.name, t), "iw")
        s.res.take("queue", pl.name, iw)
        s.add(iw, pl.name, "iw", None, (), loc=job.loc)
        pl.mm_free = max(pl.mm_free, iw + 1)
        pl.lw_from = max(pl.lw_from, iw + 1)  # the shadow buffer is free again
    free_at = s.__dict__.setdefault("sum_slots", [0] * slots)
    for vecs, yv in zip(job.rows, job.y):
        slot = min(range(slots), key=lambda k: free_at[k])
        m = max(pl.mm_free, free_at[slot])
        for k, xv in enumerate(vecs):
            holder = {}
            m = search(m, lambda t: _mm_fits(s, pl, t, xv, w, occ, holder), "products")
            _issue_mm(s, pl, job, xv, m, w, occ, slot, _SET if k == 0 else _ADD, holder["plan"])
            m += occ
        holder = {}
        a = search(m, lambda t: _acc_fits(s, pl, t, yv, wa, acc_lat, holder), "result")
        _acc_commit(s, pl, a, slot, yv, wa, holder["plan"], job)
        free_at[slot] = a + 1
    s.lane_sums_left -= 1
    if s.lane_sums_left == 0:  # the plane joins the matmuls once its slots are read out
        pl.acc_done = max(pl.acc_done, *free_at)
        s.sum_plane = None


def _toward(s, q: int, P: int, ready_at: int, end: int | None = None) -> Segment:
    return Segment(P < q, q, ready_at, P if end is None else end)


def _lw_fits(s, pl: _Plane, c: int, chunk: list[Vec], w: int, holder) -> bool:
    if not s.res.free("queue", pl.name, c):
        return False
    reads = []
    at: dict[str, int] = {}  # slice -> its read's cycle (rows of one slice must be w cycles apart)
    used = 0  # the streams taken where row j passes, shifted down by its place j·w in the group
    free, pos, ready, RL, P = s.res.free, s.pos, s.ready, s.RL, pl.P
    for j, v in enumerate(chunk):
        sl = v.slice
        q = pos[sl]
        r = c - RL - abs(q - P)
        if r < ready.get(v, 0) or not free("queue", sl, r) or not free("read", sl, r, w):
            return False
        r2 = at.get(sl)
        if r2 is not None and abs(r - r2) < w:
            return False
        at[sl] = r
        seg = Segment(P < q, q, r + RL, P)
        used |= s.streams.used(seg) >> (j * w)
        reads.append((v, r, seg))
    full = (1 << w) - 1
    for base in range(0, s.streams.n - len(chunk) * w + 1, w):
        if not (used >> base) & full:
            holder["plan"] = (reads, base)
            return True
    return False


def _lw_commit(s, pl: _Plane, c: int, chunk, w: int, plan, job: MatmulJob) -> None:
    reads, base = plan
    for j, (v, r, seg) in enumerate(reads):
        s.take_read(v, r, w, [seg], base + j * w)
        s.add(r, v.slice, "read", job.elem, (SymRef(v.symbol, v.row * w), stream_field(base + j * w, seg.west), 0),
              loc=job.loc)
    s.res.take("queue", pl.name, c)
    s.add(c, pl.name, "lw", job.elem, (stream_field(base, reads[0][2].west), len(chunk)), loc=job.loc)


def _issue_mm(s, pl, job, xv, m: int, w: int, occ: int, slot: int, mode: int, plan) -> None:
    """``xv`` read to pass the plane at ``m`` (``plan``: from ``_mm_fits``) and its ``mm`` into ``slot``."""
    segs, base, rd = plan
    s.take_read(xv, rd, w, segs, base)
    field = stream_field(base, segs[0].west)
    s.add(rd, xv.slice, "read", job.elem, (SymRef(xv.symbol, xv.row * w), field, 0), loc=job.loc)
    s.res.take("queue", pl.name, m)
    s.res.take("plane", pl.name, m, occ)
    s.add(m, pl.name, "mm", job.elem, (field, slot, mode), loc=job.loc)
    pl.mm_free = m + occ


def _mm_fits(s, pl: _Plane, m: int, xv: Vec, w: int, occ: int, holder) -> bool:
    if not s.res.free("queue", pl.name, m) or not s.res.free("plane", pl.name, m, occ):
        return False
    q = s.pos[xv.slice]
    r = m - s.RL - abs(q - pl.P)
    if r < s.ready.get(xv, 0) or not s.res.free("queue", xv.slice, r) or not s.res.free("read", xv.slice, r, w):
        return False
    seg = _toward(s, q, pl.P, r + s.RL)
    base = s.streams.find([seg], w)
    if base is None:
        return False
    holder["plan"] = ([seg], base, r)
    return True


def _acc_commit(s, pl: _Plane, a: int, slot: int, yv: Vec, wa: int, plan, job) -> None:
    """Take what ``_acc_fits`` planned: the acc of ``slot`` at ``a`` and the write of its
    result to ``yv`` as it passes the slice."""
    seg, base, wc = plan
    s.res.take("queue", pl.name, a)
    s.streams.take(seg, base, wa)
    f = stream_field(base, seg.west)
    s.add(a, pl.name, "acc", job.acc, (slot, f, 0), loc=job.loc)
    s.res.take("queue", yv.slice, wc)
    s.res.take("write", yv.slice, wc, wa)
    s.add(wc, yv.slice, "write", job.acc, (SymRef(yv.symbol, yv.row * wa), f, 0), loc=job.loc)
    s.ready[yv] = wc + wa
    s.length = max(s.length, wc + wa)


def _acc_fits(s, pl: _Plane, a: int, yv: Vec, wa: int, acc_lat: int, holder) -> bool:
    if not s.res.free("queue", pl.name, a):
        return False
    qd = s.pos[yv.slice]
    wc = a + acc_lat + abs(qd - pl.P)
    if not s.res.free("queue", yv.slice, wc) or not s.res.free("write", yv.slice, wc, wa):
        return False
    seg = Segment(qd < pl.P, pl.P, a + acc_lat, qd)
    base = s.streams.find([seg], wa)
    if base is None:
        return False
    holder["plan"] = (seg, base, wc)
    return True
