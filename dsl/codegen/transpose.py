"""Transposes of computed tensors through the SXM's ``transpose`` (a part of the general path).

The SXM's ``transpose`` takes 16 vectors on an aligned 16-stream group and, within each
16-lane superlane ``k``, swaps vector and lane: output ``j`` lane ``16k + i`` is input ``i``
lane ``16k + j`` (bytes; ``sim/semantics.py``). For ``Y = Xᵀ`` (``X`` of ``A × B``) the rows
of ``X`` go in groups of 16 (``16g … 16g + 15``, the last group padded with any vectors: those
lanes are never used), one job per group and column block ``cb``; output ``j`` of the job then
holds, in superlane ``k``, the 16 elements ``Y[n, 16g … 16g + 15]`` for ``n = 320·cb + 16k + j``.
Each row of ``Y`` collects its 16-element pieces from ``⌈A/16⌉`` such vectors: ``gather``
shifts each piece into place and joins them with ``select`` (20 pieces a 320-lane vector
instead of the 320 single-lane runs of a gather straight from ``X``).

Wider types are transposed byte plane by byte plane (an element's bytes are consecutive words
of its vector in SRAM): each plane is read as ``i8`` at its word, transposed, and written to
its word of the result, so the element moves whole.

A ``TransposeJob`` is scheduled like a snippet: the 16 reads are timed so the vectors pass
the SXM in its issue cycle (all from slices on one side of it, so one group field serves), the
16 results are written as they pass their slices; both 16-stream groups come from
stream-alloc.
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

#: vectors (and lanes of a superlane) one ``transpose`` takes: its stream group, from the ISA table
GROUP = int(BY_MNEMONIC["transpose"].operands[0].width)


@dataclass(slots=True)
class TransposeJob:
    src: list[Vec]  # GROUP vectors, in GROUP different slices
    dst: list[Vec]  # GROUP vectors, in GROUP different slices
    elem: str
    loc: SourceLoc | None = None


def schedule_transpose(job: TransposeJob, s, horizon: int) -> None:
    """Place ``job`` with the scheduler context ``s`` (``snippets._Context``): one
    ``transpose`` per byte plane, on the SXM that can issue it first."""
    cfg = s.cfg
    w = DTYPE_BYTES[job.elem]
    TL = BY_MNEMONIC["transpose"].latency_for(cfg, "i8")
    sxms = [(q.name, q.position) for q in cfg.queues if q.kind == "sxm"]
    done = 0
    for b in range(w):
        best = None
        for unit, x in sxms:
            # a vector may be read once it has landed (``ready``), and reaches x RL + |q − x| later
            t0 = max(s.ready.get(v, 0) + s.RL + abs(s.pos[v.slice] - x) for v in job.src)
            t = t0
            while t <= search_limit(s, t0, horizon) and (best is None or t < best[0]):
                plan = _try(job, s, unit, x, t, TL)
                if plan is not None:
                    best = (t, unit, x, plan)
                    break
                t += 1
        if best is None:
            raise DiagnosticError(error(f"the scheduler found no cycle for a transpose's vectors "
                                        f"(searched {horizon} cycles)", job.loc))
        done = max(done, _commit(job, s, b, w, *best))
    for v in job.dst:
        s.ready[v] = done
    s.length = max(s.length, done)


def _try(job, s, unit, x, t, TL):
    RL = s.RL
    if not s.res.free("queue", unit, t):
        return None
    reads, in_segs = [], []
    for v in job.src:
        q = s.pos[v.slice]
        r = t - RL - abs(q - x)
        if r < s.ready.get(v, 0) or not s.res.free("queue", v.slice, r) or not s.res.free("read", v.slice, r):
            return None
        reads.append(r)
        in_segs.append(Segment(q > x, q, r + RL, x))
    if len({sg.west for sg in in_segs}) != 1:
        return None  # one group field names one direction
    writes, out_segs = [], []
    for v in job.dst:
        q = s.pos[v.slice]
        c = t + TL + abs(q - x)
        if not s.res.free("queue", v.slice, c) or not s.res.free("write", v.slice, c) or \
                any(v.slice == u.slice and c == r for u, r in zip(job.src, reads)):
            return None
        writes.append(c)
        out_segs.append(Segment(q < x, x, t + TL, q))
    if len({sg.west for sg in out_segs}) != 1:
        return None
    bases = []
    for segs in (in_segs, out_segs):
        base = next((b for b in range(0, s.streams.n, GROUP)
                     if all(s.streams.free(sg, b + i, 1) for i, sg in enumerate(segs))), None)
        if base is None:
            return None
        bases.append(base)
    return reads, in_segs, writes, out_segs, bases


def _commit(job, s, b, w, t, unit, x, plan) -> int:
    reads, in_segs, writes, out_segs, (bi, bo) = plan
    wi, wo = in_segs[0].west, out_segs[0].west
    for i, (v, r, sg) in enumerate(zip(job.src, reads, in_segs)):
        s.res.take("queue", v.slice, r)
        s.res.take("read", v.slice, r)
        s.streams.take(sg, bi + i, 1)
        s.add(r, v.slice, "read", "i8", (SymRef(v.symbol, v.row * w + b), stream_field(bi + i, wi), 0), loc=job.loc)
    s.res.take("queue", unit, t)
    s.add(t, unit, "transpose", "i8", (stream_field(bi, wi), stream_field(bo, wo)), loc=job.loc)
    for j, (v, c, sg) in enumerate(zip(job.dst, writes, out_segs)):
        s.res.take("queue", v.slice, c)
        s.res.take("write", v.slice, c)
        s.streams.take(sg, bo + j, 1)
        s.add(c, v.slice, "write", "i8", (SymRef(v.symbol, v.row * w + b), stream_field(bo + j, wo), 0), loc=job.loc)
    return max(writes) + 1
