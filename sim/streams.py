"""Stream resolution: which value every stream read meets, for a whole chip at once.

A value written on an eastward stream at position p, ready at cycle t, lives on the diagonal
t − p: a reader at (q, c) sees diagonal c − q and meets the nearest writer upstream (the
largest p ≤ q) on it; westward the diagonal is t + p and upstream means p ≥ q (architecture
page, section 2). Because the issue schedule is static, every write and read of a chip is
known before any data moves, so the matching is one sort and one ``searchsorted`` over all of
them — no positions × cycles grid and no Python loop per value. The result is, per group, the
pool rows its reads take their byte planes from; data then flows through those rows.

Each stream of a value is one *plane* (320 bytes); a w-byte vector is w planes in a w-stream
group (stream base + k carries byte plane k, as ``lpu.arch.layout.to_sram`` lays out words).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lpu.arch.isa import DTYPE_BYTES, group_width
from lpu.sim.program import Group


@dataclass(slots=True)
class StreamOp:
    """One stream operand of an instruction: a group of ``width`` streams from ``base``."""

    operand: int  # index into spec.operands
    name: str
    write: bool
    west: bool
    base: int
    width: int  # streams spanned
    unit: int  # alignment unit: the group width a value must have been written with


_OPS: dict[tuple, list[StreamOp]] = {}


def stream_ops(spec, dtype, dtype2, fields) -> list[StreamOp]:
    """The stream operands of an instruction, from the ISA table's operand roles."""
    key = (spec.opcode, dtype, dtype2, fields)
    hit = _OPS.get(key)
    if hit is not None:
        return hit
    out = []
    values = {o.name: v for o, v in zip(spec.operands, fields)}
    for i, op in enumerate(spec.operands):
        if not op.role:
            continue
        v = fields[i]
        if op.kind.name == "src_or_imm" and v >> 32:
            continue  # a scalar immediate
        width = group_width(spec, op, dtype, dtype2, values)
        # lw's rows and transpose's 16 vectors are groups of separate vectors of the type
        several = op.width == "rows" or (op.width not in ("t", "t2") and dtype and width > 4)
        unit = DTYPE_BYTES[dtype] if several else width
        out.append(StreamOp(i, op.name, op.role == "dst", bool(v & 32), v & 31, width, unit))
    _OPS[key] = out
    return out


@dataclass(slots=True)
class StreamHazard:
    kind: str  # "empty", "conflict", "misaligned"
    group: int  # group id
    k: int  # repetition
    west: bool
    stream: int
    other: int = -1  # conflict: the other group's id
    other_k: int = -1
    other_base: int = -1
    other_width: int = -1
    base: int = -1
    width: int = -1


@dataclass(slots=True)
class Resolution:
    src_rows: dict[int, np.ndarray]  # group id -> (count, planes read) pool rows (0 = nothing met)
    dst_row0: dict[int, int]  # group id -> first pool row of its results (count x planes written)
    hazards: list[StreamHazard]
    met: tuple[np.ndarray, np.ndarray]  # (pool row, cycle) of every read that met a value

    def last_read(self, nrows: int) -> np.ndarray:
        """Per pool row: the last cycle a reader met it (-1: never read); for the trace only."""
        out = np.full(nrows, -1, np.int64)
        rows, cycles = self.met
        if len(rows):
            np.maximum.at(out, rows, cycles)
        return out


class RowAllocator:
    """Pool rows for the byte planes of every value written, across all chips. Row 0 is the
    zero plane an empty read gets."""

    def __init__(self) -> None:
        self.next = 1

    def take(self, n: int) -> int:
        first = self.next
        self.next += n
        return first


# columns of an operand record: one stream operand of one group, before expanding it into
# one entry per (repetition, plane)
_GID, _N, _ISSUE, _PERIOD, _POS, _LAT, _WEST, _BASE, _WIDTH, _UNIT, _OFF, _PLANES, _FIRST = range(13)


def _expand(rec: np.ndarray):
    """Operand records -> per entry: record index, repetition k, plane j (row-major (k, j))."""
    size = rec[:, _N] * rec[:, _WIDTH]
    total = int(size.sum())
    start = np.cumsum(size) - size
    r = np.repeat(np.arange(len(rec)), size)
    local = np.arange(total) - start[r]
    width = rec[r, _WIDTH]
    return r, local // width, local % width


def _keys(rec, r, k, j, cycle, npos, span):
    """The (stream, direction, diagonal, upstream position) key of every entry: a reader at
    (q, c) meets the largest key at or below its own with the same (stream, diagonal)."""
    west = rec[r, _WEST]
    p = rec[r, _POS]
    diag = cycle + np.where(west == 1, p, -p)
    pk = np.where(west == 1, npos - 1 - p, p)
    ds = west * 32 + rec[r, _BASE] + j
    return (ds * span + (diag + npos)) * npos + pk


def resolve(groups: list[Group], positions: list[int], npos: int, rows: RowAllocator) -> Resolution:
    """Match every stream read of one chip's groups with the write it meets.

    ``positions[g.queue]`` is a queue's floor-plan position; ``g.latency`` a group's
    issue-to-result latency. The work is a handful of array operations over every
    (repetition, plane) of every operand; Python only walks the groups once to list operands."""
    wrec: list[tuple] = []
    rrec: list[tuple] = []
    dst_row0: dict[int, int] = {}
    src_at: list[tuple[int, int, int, int]] = []  # (group id, offset in the flat read table, count, planes)
    n_reads = 0
    inst_next = sub_next = 0
    max_cycle = 0
    for g in groups:
        ops = stream_ops(g.spec, g.dtype, g.dtype2, g.fields)
        if not ops:
            continue
        n = g.count
        last = g.issue + (n - 1) * g.period + g.latency
        if last > max_cycle:
            max_cycle = last
        p = positions[g.queue]
        wplanes = rplanes = 0
        for o in ops:
            if o.write:
                wplanes += o.width
            else:
                rplanes += o.width
        if wplanes:
            row0 = rows.take(n * wplanes)
            dst_row0[g.id] = row0
        if rplanes:
            src_at.append((g.id, n_reads, n, rplanes))
        woff = roff = 0
        for o in ops:
            subs = o.width // o.unit
            if o.write:
                wrec.append((g.id, n, g.issue, g.period, p, g.latency, o.west, o.base, o.width, o.unit,
                             row0 + woff, wplanes, inst_next))
                inst_next += n * subs
                woff += o.width
            else:
                rrec.append((g.id, n, g.issue, g.period, p, 0, o.west, o.base, o.width, o.unit,
                             n_reads + roff, rplanes, sub_next))
                sub_next += n * subs
                roff += o.width
        n_reads += n * rplanes
    span = max_cycle + 1 + 2 * npos + 2
    hazards: list[StreamHazard] = []
    # writes: key, pool row, value instance, the group base and width it was written with
    W = np.array(wrec, np.int64).reshape(-1, 13)
    wr, wk, wj = _expand(W)
    wcycle = W[wr, _ISSUE] + W[wr, _PERIOD] * wk + W[wr, _LAT]
    Wkey = _keys(W, wr, wk, wj, wcycle, npos, span)
    order = np.argsort(Wkey, kind="stable")
    Ws = Wkey[order]
    wr, wk, wj = wr[order], wk[order], wj[order]
    Wunit = W[wr, _UNIT]
    wsub = wj // Wunit
    Wrow = W[wr, _OFF] + wk * W[wr, _PLANES] + wj
    Winst = W[wr, _FIRST] + wk * (W[wr, _WIDTH] // Wunit) + wsub
    Wbase = W[wr, _BASE] + wsub * Wunit
    dup = np.nonzero(Ws[1:] == Ws[:-1])[0]
    seen = set()
    for i in dup.tolist():
        a, b = i, i + 1
        pair = (int(Winst[a]), int(Winst[b]))
        if pair in seen:
            continue
        seen.add(pair)
        ds = int(Ws[b]) // npos // span
        hazards.append(StreamHazard("conflict", int(W[wr[b], _GID]), int(wk[b]), ds >= 32, ds % 32,
                                    int(W[wr[a], _GID]), int(wk[a])))
    src_rows: dict[int, np.ndarray] = {}
    R = np.array(rrec, np.int64).reshape(-1, 13)
    met = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if len(R):
        rr, rk, rj = _expand(R)
        rcycle = R[rr, _ISSUE] + R[rr, _PERIOD] * rk
        Rkey = _keys(R, rr, rk, rj, rcycle, npos, span)
        # sorted queries walk the sorted writes in order: far fewer cache misses
        rorder = np.argsort(Rkey)
        idx = np.empty(len(Rkey), np.int64)
        idx[rorder] = np.searchsorted(Ws, Rkey[rorder], side="right") - 1
        hit = idx >= 0
        idxc = np.where(hit, idx, 0)
        if len(Ws):
            hit &= (Ws[idxc] // npos) == (Rkey // npos)
        else:
            hit[:] = False
        zero = np.zeros(1, np.int64)
        pick = lambda a, fill: np.where(hit, a[idxc] if len(Ws) else zero, fill)  # noqa: E731
        met_row = pick(Wrow, 0)
        met = (met_row[hit], rcycle[hit])
        met_inst = pick(Winst, -1)
        Runit = R[rr, _UNIT]
        rsubj = rj // Runit
        Rsub = R[rr, _FIRST] + rk * (R[rr, _WIDTH] // Runit) + rsubj
        Rbase = R[rr, _BASE] + rsubj * Runit
        mb, mw = pick(Wbase, -1), pick(Wunit, -1)
        # a subgroup is aligned when every plane met the same instance at its own plane
        nsub = sub_next
        bad_empty = np.bincount(Rsub, weights=~hit, minlength=nsub) > 0
        first_inst = np.full(nsub, -2, np.int64)
        first_inst[Rsub[::-1]] = met_inst[::-1]
        mis = hit & ((met_inst != first_inst[Rsub]) | (mb != Rbase) | (mw != Runit))
        bad_mis = (np.bincount(Rsub, weights=mis, minlength=nsub) > 0) & ~bad_empty
        for kind, bad in (("empty", bad_empty), ("misaligned", bad_mis)):
            if not bad.any():
                continue
            flag = (~hit if kind == "empty" else mis) & bad[Rsub]
            first = {}
            for e in np.nonzero(flag)[0].tolist():
                s = int(Rsub[e])
                if s not in first:
                    first[s] = e
            for e in first.values():
                rec = R[rr[e]]
                h = StreamHazard(kind, int(rec[_GID]), int(rk[e]), bool(rec[_WEST]), int(rec[_BASE] + rj[e]),
                                 base=int(Rbase[e]), width=int(Runit[e]))
                if kind == "misaligned":
                    h.other_base, h.other_width = int(mb[e]), int(mw[e])
                hazards.append(h)
        # each group's reads as (repetition, plane): operands side by side, in operand order
        flat = np.empty(n_reads, np.int64)
        flat[R[rr, _OFF] + rk * R[rr, _PLANES] + rj] = met_row
        for gid, start, n, planes in src_at:
            src_rows[gid] = flat[start:start + n * planes].reshape(n, planes)
    return Resolution(src_rows, dst_row0, hazards, met)
