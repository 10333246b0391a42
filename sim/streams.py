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
    last_read: np.ndarray  # per pool row: the last cycle a reader met it (-1: never read)
    hazards: list[StreamHazard]


class RowAllocator:
    """Pool rows for the byte planes of every value written, across all chips. Row 0 is the
    zero plane an empty read gets."""

    def __init__(self) -> None:
        self.next = 1

    def take(self, n: int) -> int:
        first = self.next
        self.next += n
        return first


def resolve(groups: list[Group], positions: list[int], latency: dict[int, int], npos: int,
            rows: RowAllocator, extra_writes: set[int] = frozenset()) -> Resolution:
    """Match every stream read of one chip's groups with the write it meets.

    ``positions[g.queue]`` is a queue's floor-plan position, ``latency[g.id]`` a group's
    issue-to-result latency."""
    wk, wrow, winst, wbase, wwidth, wg, wkk = [], [], [], [], [], [], []
    rk, rg, rkk, rsub, rbase, rwidth, rplane, rstream, rwest, rcycle = [], [], [], [], [], [], [], [], [], []
    dst_row0: dict[int, int] = {}
    read_slices: list[tuple[int, int, int, int]] = []  # (group id, start, count, planes)
    n_reads = 0
    inst_next = 0
    sub_next = 0
    max_cycle = max((g.last + latency.get(g.id, 0) for g in groups), default=0) + 1
    span = max_cycle + 2 * npos + 2
    for g in groups:
        ops = stream_ops(g.spec, g.dtype, g.dtype2, g.fields)
        if not ops:
            continue
        n = g.count
        cyc = g.cycles()
        p = positions[g.queue]
        wplanes = sum(o.width for o in ops if o.write)
        rplanes = sum(o.width for o in ops if not o.write)
        if wplanes:
            row0 = rows.take(n * wplanes)
            dst_row0[g.id] = row0
            ready = cyc + latency[g.id]
            off = 0
            for o in ops:
                if not o.write:
                    continue
                diag = ready + p if o.west else ready - p
                pk = (npos - 1 - p) if o.west else p
                j = np.arange(o.width)
                ds = (int(o.west) * 32 + o.base + j)  # (w,)
                key = ((ds[None, :] * span + (diag[:, None] + npos)) * npos + pk)
                wk.append(key.ravel())
                wrow.append((row0 + np.arange(n)[:, None] * wplanes + off + j[None, :]).ravel())
                subs = o.width // o.unit  # separate values in the group (transpose: 16)
                winst.append((inst_next + np.arange(n)[:, None] * subs + (j // o.unit)[None, :]).ravel())
                inst_next += n * subs
                wbase.append(np.tile(o.base + (j // o.unit) * o.unit, n).astype(np.int16))
                wwidth.append(np.full(n * o.width, o.unit, np.int16))
                wg.append(np.full(n * o.width, g.id, np.int64))
                wkk.append(np.repeat(np.arange(n), o.width))
                off += o.width
        if rplanes:
            read_slices.append((g.id, n_reads, n, rplanes))
            n_reads += n * rplanes
            for o in ops:
                if o.write:
                    continue
                diag = cyc + p if o.west else cyc - p
                pk = (npos - 1 - p) if o.west else p
                j = np.arange(o.width)
                ds = int(o.west) * 32 + o.base + j
                rk.append(((ds[None, :] * span + (diag[:, None] + npos)) * npos + pk).ravel())
                rg.append(np.full(n * o.width, g.id, np.int64))
                rkk.append(np.repeat(np.arange(n), o.width))
                subs_per = o.width // o.unit
                sub = sub_next + np.arange(n)[:, None] * subs_per + (j // o.unit)[None, :]
                rsub.append(sub.ravel())
                sub_next += n * subs_per
                rbase.append(np.tile(o.base + (j // o.unit) * o.unit, n))
                rwidth.append(np.full(n * o.width, o.unit, np.int16))
                rplane.append(np.tile(j % o.unit, n))
                rstream.append(np.tile(o.base + j, n))
                rwest.append(np.full(n * o.width, o.west))
                rcycle.append(np.repeat(cyc, o.width))
    # the reads of a group are laid out operand by operand; regroup them instance-major
    cat = lambda parts, dt=np.int64: np.concatenate(parts) if parts else np.zeros(0, dt)  # noqa: E731
    hazards: list[StreamHazard] = []
    W = cat(wk)
    order = np.argsort(W, kind="stable")
    Ws = W[order]
    Wrow = cat(wrow)[order]
    Winst = cat(winst)[order]
    Wbase = cat(wbase, np.int16)[order]
    Wwidth = cat(wwidth, np.int16)[order]
    Wg = cat(wg)[order]
    Wk = cat(wkk)[order]
    dup = np.nonzero(Ws[1:] == Ws[:-1])[0]
    seen = set()
    for i in dup.tolist():
        a, b = i, i + 1
        pair = (int(Winst[a]), int(Winst[b]))
        if pair in seen:
            continue
        seen.add(pair)
        key = int(Ws[b])
        ds = key // npos // span
        hazards.append(StreamHazard("conflict", int(Wg[b]), int(Wk[b]), ds >= 32, ds % 32,
                                    int(Wg[a]), int(Wk[a])))
    R = cat(rk)
    src_rows: dict[int, np.ndarray] = {}
    last_read = np.full(rows.next, -1, np.int64)
    if len(R):
        idx = np.searchsorted(Ws, R, side="right") - 1
        hit = idx >= 0
        idxc = np.where(hit, idx, 0)
        if len(Ws):
            hit &= (Ws[idxc] // npos) == (R // npos)
        else:
            hit[:] = False
        met_row = np.where(hit, Wrow[idxc] if len(Ws) else 0, 0)
        met_inst = np.where(hit, Winst[idxc] if len(Ws) else -1, -1)
        Rsub = cat(rsub)
        Rbase = cat(rbase, np.int16)
        Rwidth = cat(rwidth, np.int16)
        Rplane = cat(rplane, np.int16)
        Rcycle = cat(rcycle)
        rows_hit, cyc_hit = met_row[hit], Rcycle[hit]
        order = np.lexsort((cyc_hit, rows_hit))
        last_read[rows_hit[order]] = cyc_hit[order]  # the latest reader of a row is assigned last
        mb = np.where(hit, Wbase[idxc] if len(Ws) else -1, -1)
        mw = np.where(hit, Wwidth[idxc] if len(Ws) else -1, -1)
        # a subgroup is aligned when every plane met the same instance at its own plane
        nsub = int(Rsub.max()) + 1 if len(Rsub) else 0
        bad_empty = np.bincount(Rsub, weights=~hit, minlength=nsub) > 0
        first_inst = np.full(nsub, -2, np.int64)
        first_inst[Rsub[::-1]] = met_inst[::-1]
        mis = hit & ((met_inst != first_inst[Rsub]) | (mb != Rbase) | (mw != Rwidth))
        bad_mis = (np.bincount(Rsub, weights=mis, minlength=nsub) > 0) & ~bad_empty
        Rg, Rk = cat(rg), cat(rkk)
        Rstream, Rwest = cat(rstream), cat(rwest, bool)
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
                h = StreamHazard(kind, int(Rg[e]), int(Rk[e]), bool(Rwest[e]), int(Rstream[e]),
                                 base=int(Rbase[e]), width=int(Rwidth[e]))
                if kind == "misaligned":
                    h.other_base, h.other_width = int(mb[e]), int(mw[e])
                hazards.append(h)
        # reads in entry order are operand-major within a group; reorder to (instance, plane)
        pos = 0
        for gid, start, n, planes in read_slices:
            block = met_row[start:start + n * planes]
            # operands were appended one after another, each (n, width)
            parts = []
            o_off = 0
            g = groups_by_id(groups, gid)
            for o in stream_ops(g.spec, g.dtype, g.dtype2, g.fields):
                if o.write:
                    continue
                parts.append(block[o_off:o_off + n * o.width].reshape(n, o.width))
                o_off += n * o.width
            src_rows[gid] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
            pos += n * planes
    return Resolution(src_rows, dst_row0, last_read, hazards)


def groups_by_id(groups: list[Group], gid: int) -> Group:
    # groups carry their machine-wide id; the chip's list is ordered by it
    lo, hi = 0, len(groups)
    while lo < hi:
        mid = (lo + hi) // 2
        if groups[mid].id < gid:
            lo = mid + 1
        else:
            hi = mid
    return groups[lo]
