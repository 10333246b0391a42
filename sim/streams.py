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
from operator import itemgetter
from typing import Callable

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


_SHAPE_FIELDS: dict[int, Callable] = {}  # opcode -> fields -> the ones that shape its stream operands


def stream_key(spec, dtype, dtype2, fields) -> tuple:
    """What the stream operands of an instruction depend on: its opcode, types, stream fields
    and row count (not its address, slot, lane count...): instructions that differ only in
    those share one entry of every cache keyed by this."""
    pick = _SHAPE_FIELDS.get(spec.opcode)
    if pick is None:
        idx = [i for i, o in enumerate(spec.operands) if o.role or o.name == "rows"]
        getter = itemgetter(*idx) if idx else (lambda f: ())
        pick = _SHAPE_FIELDS[spec.opcode] = getter if len(idx) != 1 else (lambda f, i=idx[0]: f[i])
    return (spec.opcode, dtype, dtype2, pick(fields))


def stream_ops(spec, dtype, dtype2, fields) -> list[StreamOp]:
    """The stream operands of an instruction, from the ISA table's operand roles."""
    key = stream_key(spec, dtype, dtype2, fields)
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


class _Entries:
    """Operand records expanded into one entry per (repetition k, plane j), ordered by (record,
    j, k). In that order each record's keys ascend (the plane picks the stream, the highest
    part of a key; the diagonal grows with k), so sorting them merges runs. A per-entry value
    of a record column is that column repeated, never a gather."""

    def __init__(self, recs: list[tuple]) -> None:
        self.cols = np.array(recs, np.int64).reshape(-1, 13).T.copy()
        self.size = self.cols[_N] * self.cols[_WIDTH]
        start = np.cumsum(self.size) - self.size
        local = np.arange(int(self.size.sum())) - self.rep(start)
        n = self.rep(self.cols[_N])
        self.k, self.j = local % n, local // n

    def rep(self, column: np.ndarray) -> np.ndarray:
        return np.repeat(column, self.size)

    def col(self, c: int) -> np.ndarray:
        return np.repeat(self.cols[c], self.size)

    def record(self) -> np.ndarray:
        return self.rep(np.arange(len(self.size)))

    def keys(self, npos: int, span: int) -> np.ndarray:
        """The (stream, direction, diagonal, upstream position) key of every entry: a reader at
        (q, c) meets the largest key at or below its own with the same (stream, diagonal).
        A value ready at t at position p lies on diagonal t - p eastward, t + p westward."""
        c = self.cols
        west = c[_WEST] == 1
        diag0 = c[_ISSUE] + c[_LAT] + np.where(west, c[_POS], -c[_POS])
        pk = np.where(west, npos - 1 - c[_POS], c[_POS])
        base = ((c[_WEST] * 32 + c[_BASE]) * span + diag0 + npos) * npos + pk
        return self.rep(base) + self.j * (span * npos) + self.k * self.col(_PERIOD) * npos

    def values(self, r: np.ndarray, k: np.ndarray, j: np.ndarray):
        """(pool row or read slot, value instance, group base, group width) of entries given by
        their record, repetition and plane."""
        c = self.cols
        unit = c[_UNIT][r]
        sub = j // unit
        return (c[_OFF][r] + k * c[_PLANES][r] + j, c[_FIRST][r] + k * (c[_WIDTH][r] // unit) + sub,
                c[_BASE][r] + sub * unit, unit)


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
    src_rows: dict[int, np.ndarray] = {}
    met = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    # writes, sorted by key
    W = _Entries(wrec)
    Wkey = W.keys(npos, span)
    order = np.argsort(Wkey, kind="stable")
    Ws = Wkey[order]
    wr = W.record()
    dup = np.nonzero(Ws[1:] == Ws[:-1])[0]
    if len(dup):
        a, b = order[dup], order[dup + 1]
        inst_a = W.values(wr[a], W.k[a], W.j[a])[1].tolist()
        inst_b = W.values(wr[b], W.k[b], W.j[b])[1].tolist()
        seen = set()
        for i, ea, eb, ia, ib in zip(dup.tolist(), a.tolist(), b.tolist(), inst_a, inst_b):
            if (ia, ib) in seen:
                continue
            seen.add((ia, ib))
            ds = int(Ws[i + 1]) // npos // span
            hazards.append(StreamHazard("conflict", int(W.cols[_GID][wr[eb]]), int(W.k[eb]), ds >= 32, ds % 32,
                                        int(W.cols[_GID][wr[ea]]), int(W.k[ea])))
    if rrec:
        R = _Entries(rrec)
        Rkey = R.keys(npos, span)
        # sorted queries walk the sorted writes in order: far fewer cache misses
        rorder = np.argsort(Rkey, kind="stable")
        idx = np.empty(len(Rkey), np.int64)
        idx[rorder] = np.searchsorted(Ws, Rkey[rorder], side="right") - 1
        hit = idx >= 0
        idxc = np.where(hit, idx, 0)
        rr, rk, rj = R.record(), R.k, R.j
        Runit = R.col(_UNIT)
        if len(Ws):
            hit &= (Ws[idxc] // npos) == (Rkey // npos)
            m = order[idxc]  # the write entry each read meets (where hit)
            mr = wr[m]
            m_unit = W.cols[_UNIT][mr]
            met_row = np.where(hit, W.cols[_OFF][mr] + W.k[m] * W.cols[_PLANES][mr] + W.j[m], 0)
        else:
            hit[:] = False
            m = m_unit = met_row = np.zeros(len(Rkey), np.int64)
        rcycle = R.col(_ISSUE) + R.col(_PERIOD) * rk
        met = (met_row[hit], rcycle[hit])
        # Empty and misaligned values. A one-plane value met by a one-plane value is aligned
        # (same key, same stream); only the other entries are checked, each value's planes
        # together: aligned when every plane met the same instance, written as the same group.
        sel = np.nonzero(~hit | (Runit > 1) | (m_unit != Runit))[0]
        if len(sel):
            hs = hit[sel]
            _, Rsub, Rbase, Runit_s = R.values(rr[sel], rk[sel], rj[sel])
            if len(Ws):
                ms = m[sel]
                _, inst, base, unit = W.values(wr[ms], W.k[ms], W.j[ms])
            else:
                inst = base = unit = np.zeros(len(sel), np.int64)
            met_inst, mb, mw = np.where(hs, inst, -1), np.where(hs, base, -1), np.where(hs, unit, -1)
            nsub = sub_next
            bad_empty = np.bincount(Rsub, weights=~hs, minlength=nsub) > 0
            first_inst = np.full(nsub, -2, np.int64)
            first_inst[Rsub[::-1]] = met_inst[::-1]
            mis = hs & ((met_inst != first_inst[Rsub]) | (mb != Rbase) | (mw != Runit_s))
            bad_mis = (np.bincount(Rsub, weights=mis, minlength=nsub) > 0) & ~bad_empty
            for kind, bad in (("empty", bad_empty), ("misaligned", bad_mis)):
                if not bad.any():
                    continue
                flag = (~hs if kind == "empty" else mis) & bad[Rsub]
                first = {}
                for i in np.nonzero(flag)[0].tolist():
                    sub = int(Rsub[i])
                    if sub not in first or rj[sel[i]] < rj[sel[first[sub]]]:
                        first[sub] = i  # the lowest plane of the value
                # in program order: operand record, repetition, plane
                for i in sorted(first.values(), key=lambda i: (rr[sel[i]], rk[sel[i]], rj[sel[i]])):
                    e = sel[i]
                    rec = R.cols[:, rr[e]]
                    h = StreamHazard(kind, int(rec[_GID]), int(rk[e]), bool(rec[_WEST]), int(rec[_BASE] + rj[e]),
                                     base=int(Rbase[i]), width=int(Runit_s[i]))
                    if kind == "misaligned":
                        h.other_base, h.other_width = int(mb[i]), int(mw[i])
                    hazards.append(h)
        slot = R.col(_OFF) + rk * R.col(_PLANES) + rj
        # each group's reads as (repetition, plane): operands side by side, in operand order
        flat = np.empty(n_reads, np.int64)
        flat[slot] = met_row
        for gid, start, n, planes in src_at:
            src_rows[gid] = flat[start:start + n * planes].reshape(n, planes)
    return Resolution(src_rows, dst_row0, hazards, met)
