"""The stream-timing check: within a kernel, every stream read must meet a value in flight.

A value written eastward at position p, ready at cycle t, passes position q >= p at cycle
t + (q - p): it lives on the diagonal ``t - p`` of its stream. Westward, the diagonal is
``t + p`` for q <= p. A reader at (q, c) sees the value of the nearest writer upstream on its
diagonal (architecture page, section 2). This module finds, for every read, the write it
meets, and reports reads that meet nothing, reads of a group written with another shape, and
two writes landing on one stream cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lpu.arch.isa import DTYPE_BYTES, group_width
from lpu.asm.records import Inst, Kernel
from lpu.diagnostics import Diagnostic, error


@dataclass(slots=True)
class Write:
    inst: Inst
    issue: int  # the issue cycle (of this repetition)
    ready: int  # the cycle the value is on the stream at the writer's position
    position: int
    west: bool
    base: int  # first stream of the group
    width: int


@dataclass(slots=True)
class Read:
    inst: Inst
    operand: int  # index of the operand in the instruction
    issue: int
    position: int
    west: bool
    base: int
    width: int
    write: Write | None = None  # the value it meets, when it meets one


def _name(west: bool, s: int) -> str:
    return f"s{s}{'w' if west else 'e'}"


def _group(west: bool, base: int, width: int) -> str:
    return _name(west, base) if width == 1 else f"{_name(west, base)}..{_name(west, base + width - 1)}"


def issues_of(kernel: Kernel) -> list[tuple[Inst, list[int]]]:
    """Every non-ICU instruction with the cycles it issues at (its repeats included)."""
    out: list[tuple[Inst, list[int]]] = []
    last: dict[int, list[int]] = {}
    kinds = _KINDS
    for inst in kernel.insts:
        spec = inst.spec
        k = kinds.get(spec.opcode)
        if k is None:
            k = kinds[spec.opcode] = 2 if spec.mnemonic == "repeat" else 1 if "any" in spec.units else 0
        if k == 2:
            cycles = last.get(inst.queue)
            if cycles:
                first = cycles[0]
                n, d = inst.args
                cycles.extend(range(first + d, first + d * n + 1, d) if d > 0
                              else [first + d * i for i in range(1, n + 1)])
            continue
        if k == 1:
            last.pop(inst.queue, None)
            continue
        cycles = [inst.cycle]
        out.append((inst, cycles))
        last[inst.queue] = cycles
    return out


_KINDS: dict[int, int] = {}  # opcode -> 0 (issues), 1 (ICU control), 2 (repeat)


def _stream_operands(inst: Inst, cfg) -> list[tuple]:
    """The stream operands of an instruction: (is_write, operand index, west, base, width,
    latency), lw's row groups split into one read each."""
    spec = inst.spec
    out = []
    values = None
    for i, op in enumerate(spec.operands):
        if not op.role:
            continue
        v = inst.args[i]
        if op.kind.name == "src_or_imm" and v >> 32:
            continue
        if values is None:
            values = {o.name: a for o, a in zip(spec.operands, inst.args)}
        west, base = bool(v & 32), v & 31
        width = group_width(spec, op, inst.dtype, inst.dtype2, values)
        # lw's rows and transpose's 16 vectors are groups of separate vectors of the type
        # (as the simulator reads them, sim/streams.py): one w-wide value per vector
        several = op.width == "rows" or (op.width not in ("t", "t2") and inst.dtype and width > 4)
        if several:
            w = DTYPE_BYTES[inst.dtype]
            lat = spec.latency_for(cfg, inst.dtype) if op.role == "dst" else 0
            out.extend((op.role == "dst", i, west, b, w, lat) for b in range(base, base + width, w))
        elif op.role == "dst":
            out.append((True, i, west, base, width, spec.latency_for(cfg, inst.dtype)))
        else:
            out.append((False, i, west, base, width, 0))
    return out


def _stream_fields(spec) -> tuple[int, ...]:
    """The operand fields ``_stream_operands`` depends on: the stream operands and the row
    count (not addresses, which differ from one instruction to the next)."""
    got = _FIELDS.get(spec.opcode)
    if got is None:
        got = _FIELDS[spec.opcode] = tuple(i for i, op in enumerate(spec.operands) if op.role or op.name == "rows")
    return got


_FIELDS: dict[int, tuple[int, ...]] = {}


def _stream_issues(kernel: Kernel, cfg):
    """(instruction, issue cycles, position, stream operands) for every instruction that touches
    a stream; the operands are worked out once per distinct stream fields."""
    queues = cfg.queues
    memo: dict[tuple, list[tuple]] = {}  # the same stream fields recur at many cycles
    for inst, cycles in issues_of(kernel):
        spec, args = inst.spec, inst.args
        key = (spec.opcode, inst.dtype, inst.dtype2, *[args[i] for i in _stream_fields(spec)])
        ops = memo.get(key)
        if ops is None:
            ops = memo[key] = _stream_operands(inst, cfg)
        if ops:
            yield inst, cycles, queues[inst.queue].position, ops


def stream_events(kernel: Kernel, cfg) -> tuple[list[Write], list[Read]]:
    """All stream writes and reads of a kernel, each read linked to the write it meets."""
    writes: list[Write] = []
    reads: list[Read] = []
    for inst, cycles, pos, ops in _stream_issues(kernel, cfg):
        for is_write, i, west, base, width, lat in ops:
            if is_write:
                writes.extend([Write(inst, c, c + lat, pos, west, base, width) for c in cycles])
            else:
                reads.extend([Read(inst, i, c, pos, west, base, width) for c in cycles])
    return writes, reads


def _all_reads_meet(kernel: Kernel, cfg) -> bool:
    """The whole check, vectorized: True when no two writes share a stream cell and every read
    meets exactly the group it asks for. Only when this fails does ``check_timing`` walk the
    events one by one to say what is wrong, and where."""
    w_rows: list[tuple] = []
    r_rows: list[tuple] = []
    for _inst, cycles, pos, ops in _stream_issues(kernel, cfg):
        for is_write, _i, west, base, width, lat in ops:
            if is_write:
                w_rows.extend([(c + lat, pos, west, base, width) for c in cycles])
            else:
                r_rows.extend([(c, pos, west, base, width) for c in cycles])
    if not r_rows and not w_rows:
        return True
    if not w_rows:
        return False
    P = cfg.positions

    def cells(rows):
        a = np.array(rows, dtype=np.int64).reshape(-1, 5)
        reps = a[:, 4]
        owner = np.repeat(np.arange(len(a)), reps)
        starts = np.cumsum(reps) - reps
        stream = a[owner, 3] + (np.arange(len(owner)) - starts[owner])
        t, pos, west = a[owner, 0], a[owner, 1], a[owner, 2]
        diag = np.where(west == 1, t + pos, t - pos) + (1 << 32)
        key = ((west << 6) | stream) << 34 | diag
        return a, owner, starts, key, pos

    W, w_owner, _, w_key, w_pos = cells(w_rows)
    w_cell = w_key * P + w_pos
    order = np.argsort(w_cell, kind="stable")
    w_cell, w_key, w_owner = w_cell[order], w_key[order], w_owner[order]
    if len(w_cell) > 1 and (w_cell[1:] == w_cell[:-1]).any():
        return False  # a write conflict
    if not r_rows:
        return True
    R, r_owner, r_starts, r_key, r_pos = cells(r_rows)
    target = r_key * P + r_pos
    west = R[r_owner, 2] == 1
    # eastward: the nearest writer at or west of the reader; westward: at or east of it
    idx = np.where(west, np.searchsorted(w_cell, target, "left"), np.searchsorted(w_cell, target, "right") - 1)
    inside = (idx >= 0) & (idx < len(w_cell))
    idx = np.clip(idx, 0, len(w_cell) - 1)
    if not (inside & (w_key[idx] == r_key)).all():
        return False  # an empty read
    met = w_owner[idx]
    first = met[r_starts]
    if (met != first[r_owner]).any():
        return False  # a group read across different values
    return bool((W[first, 3] == R[:, 3]).all() and (W[first, 4] == R[:, 4]).all())


def check_timing(kernel: Kernel, cfg, vectorized: bool = True) -> list[Diagnostic]:
    """Every timing error of a kernel. The vectorized pass decides whether there is any; the
    event walk below says what and where (``vectorized=False`` runs only the walk)."""
    if vectorized and _all_reads_meet(kernel, cfg):
        return []
    writes, reads = stream_events(kernel, cfg)
    return link_reads(writes, reads, cfg)


def link_reads(writes: list[Write], reads: list[Read], cfg) -> list[Diagnostic]:
    """Links every read of ``stream_events`` to the write it meets (``Read.write``); the
    diagnostics of the reads that meet nothing or the wrong group, and of write conflicts."""
    diags: list[Diagnostic] = []
    # cell index: (west, stream, diagonal) -> {position: write}
    cells: dict[tuple[bool, int, int], dict[int, Write]] = {}
    reported: set[tuple[int, int]] = set()
    for w in writes:
        diag = w.ready + w.position if w.west else w.ready - w.position
        for s in range(w.base, w.base + w.width):
            at = cells.setdefault((w.west, s, diag), {})
            other = at.get(w.position)
            if other is not None:
                pair = (id(other.inst), id(w.inst))
                if pair not in reported:
                    reported.add(pair)
                    d = error(f"write conflict: two values land on {_name(w.west, s)} at "
                              f"{cfg.slices[w.position].name} (position {w.position}) in cycle {w.ready}",
                              w.inst.loc)
                    d.note(f"the other value is written here (issued in cycle {other.issue})", other.inst.loc)
                    diags.append(d)
                continue
            at[w.position] = w
    for r in reads:
        diag = r.issue + r.position if r.west else r.issue - r.position
        met = None
        for s in range(r.base, r.base + r.width):
            at = cells.get((r.west, s, diag))
            best = None
            if at:
                best = at.get(r.position)  # most often the nearest writer is right here or alone
                if best is None:
                    if r.west:
                        cands = [p for p in at if p >= r.position]
                        best = at[min(cands)] if cands else None
                    else:
                        cands = [p for p in at if p <= r.position]
                        best = at[max(cands)] if cands else None
            if best is None:
                diags.append(_empty_read(r, s, writes, cfg))
                met = None
                break
            if s == r.base:
                met = best
            elif best is not met:
                met = None
                diags.append(_mixed_read(r, best, cfg))
                break
        if met is None:
            continue
        if met.base != r.base or met.width != r.width:
            d = error(f"misaligned group read: {_group(r.west, r.base, r.width)} read at "
                      f"{cfg.slices[r.position].name} in cycle {r.issue}, but the value there was written as "
                      f"{_group(met.west, met.base, met.width)}", _loc(r))
            d.note("the value is written here", met.inst.loc)
            diags.append(d)
            continue
        r.write = met
    return diags


def _loc(r: Read):
    if r.inst.arg_locs and r.inst.arg_locs[r.operand] is not None:
        return r.inst.arg_locs[r.operand]
    return r.inst.loc


def arrival(w: Write, position: int) -> int | None:
    """The cycle the value of ``w`` passes ``position``, or None if it never does."""
    if w.west:
        return w.ready + (w.position - position) if position <= w.position else None
    return w.ready + (position - w.position) if position >= w.position else None


def _empty_read(r: Read, s: int, writes: list[Write], cfg) -> Diagnostic:
    where = f"{cfg.slices[r.position].name} (position {r.position})"
    d = error(f"no value on {_name(r.west, s)} at {where} in cycle {r.issue}", _loc(r))
    best, best_at = None, None
    for w in writes:
        if w.west != r.west or not w.base <= s < w.base + w.width:
            continue
        at = arrival(w, r.position)
        if at is not None and (best_at is None or abs(at - r.issue) < abs(best_at - r.issue)):
            best, best_at = w, at
    if best is not None:
        d.note(f"the nearest value on {_name(r.west, s)}, written here in cycle {best.issue}, passes "
               f"{where} in cycle {best_at}", best.inst.loc)
    return d


def _mixed_read(r: Read, w: Write, cfg) -> Diagnostic:
    d = error(f"misaligned group read: the streams of {_group(r.west, r.base, r.width)} at "
              f"{cfg.slices[r.position].name} in cycle {r.issue} hold parts of different values", _loc(r))
    d.note("one of them is written here", w.inst.loc)
    return d
