"""Stream resolution (``lpu.sim.streams.resolve``) against a brute-force reading of the
architecture page: for random MEM reads (stream writers) and writes (stream readers) of random
types, directions, slices, cycles and repeats, every read meets the value of the nearest writer
upstream on its space-time diagonal, and the empty/conflict hazards are exactly those. The
vectorized resolver sorts and searches; this walks every write for every read."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from lpu.arch.config import load_config
from lpu.arch.isa import BY_MNEMONIC, DTYPE_BYTES
from lpu.sim.program import Group
from lpu.sim.streams import RowAllocator, resolve

CFG = load_config("lpu-v1")
MEM = [q for q in CFG.queues if q.kind == "mem"][:6] + [q for q in CFG.queues if q.kind == "mem"][40:48]
LAT = CFG["mem.read_latency"]

op = st.tuples(
    st.sampled_from(["read", "write"]),
    st.sampled_from(["i8", "i16", "i32"]),
    st.integers(0, len(MEM) - 1),  # queue
    st.integers(0, 7),  # stream group index (base = index * width)
    st.booleans(),  # westward
    st.integers(0, 40),  # issue cycle
    st.integers(1, 3),  # count
    st.integers(1, 3),  # period
    st.one_of(st.none(), st.integers(0, 11)),  # a write aimed at an earlier read's value
)


def _groups(ops) -> list[Group]:
    """Groups of the ops; an aimed write takes the stream of an earlier read and the slice and
    cycle where it meets that read's first value (random streams and cycles rarely meet)."""
    out = []
    for mn, t, qi, si, west, issue, count, period, aim in ops:
        w = DTYPE_BYTES[t]
        stream = (si * w) % 32 | (32 if west else 0)
        reads = [g for g in out if g.spec.mnemonic == "read"]
        if mn == "write" and aim is not None and reads:
            r = reads[aim % len(reads)]
            p = CFG.queues[r.queue].position
            west = bool(r.fields[1] & 32)
            ok = [i for i, q in enumerate(MEM) if (q.position <= p if west else q.position >= p)]
            qi = ok[qi % len(ok)]
            issue = r.issue + LAT + abs(MEM[qi].position - p)
            stream = (r.fields[1] & 31) // w * w | (32 if west else 0)
        g = Group(0, MEM[qi].index, len(out), BY_MNEMONIC[mn], t, None, (0, stream, 0), issue, count, period,
                  id=len(out), latency=LAT if mn == "read" else 0)
        out.append(g)
    return out


def _brute(groups):
    """(read group, k, plane) -> (write group, k, plane) met or None; conflicting cells."""
    pos = {q.index: q.position for q in CFG.queues}
    writes = []  # (stream, west, position, ready cycle, group, k, plane)
    for g in groups:
        if g.spec.mnemonic != "read":
            continue
        w, s = DTYPE_BYTES[g.dtype], g.fields[1]
        for k in range(g.count):
            for j in range(w):
                writes.append(((s & 31) + j, bool(s & 32), pos[g.queue], g.issue + k * g.period + LAT, g.id, k, j))
    met = {}
    for g in groups:
        if g.spec.mnemonic != "write":
            continue
        w, s = DTYPE_BYTES[g.dtype], g.fields[1]
        q = pos[g.queue]
        for k in range(g.count):
            c = g.issue + k * g.period
            for j in range(w):
                best = None
                for ws, wwest, p, t, wg, wk, wj in writes:  # later writers win ties (the resolver's order)
                    if ws != (s & 31) + j or wwest != bool(s & 32):
                        continue
                    if (not wwest and p <= q and t + (q - p) == c) or (wwest and p >= q and t + (p - q) == c):
                        dist = abs(q - p)
                        if best is None or dist <= best[0]:
                            best = (dist, wg, wk, wj)
                met[(g.id, k, j)] = None if best is None else best[1:]
    cells = {}
    for ws, wwest, p, t, wg, wk, wj in writes:
        cells.setdefault((ws, wwest, p, t), []).append((wg, wk))
    # several values on one cell: each conflicts with the one before it (program order)
    conflicts = {frozenset(pair) for v in cells.values() for pair in zip(sorted(v), sorted(v)[1:])}
    return met, conflicts


@settings(max_examples=150, deadline=None)
@given(st.lists(op, min_size=1, max_size=12))
def test_resolve_matches_brute_force(ops):
    groups = _groups(ops)
    res = resolve(groups, [q.position for q in CFG.queues], CFG.positions, RowAllocator())
    met, conflicts = _brute(groups)
    by_row = {}
    for g in groups:
        if g.id in res.dst_row0:
            w = DTYPE_BYTES[g.dtype]
            for k in range(g.count):
                for j in range(w):
                    by_row[res.dst_row0[g.id] + k * w + j] = (g.id, k, j)
    for (gid, k, j), want in met.items():
        row = int(res.src_rows[gid][k, j])
        assert (by_row[row] if row else None) == want, (gid, k, j)
    # a value is read empty when any of its planes meets nothing; misaligned when its planes
    # meet different values, or a value written as another group (base or width)
    empty = {(h.group, h.k) for h in res.hazards if h.kind == "empty"}
    assert empty == {(gid, k) for (gid, k, j), v in met.items() if v is None}
    values: dict[tuple[int, int], list] = {}
    for (gid, k, j), v in met.items():
        values.setdefault((gid, k), []).append(v)
    misaligned = set()
    for (gid, k), vs in values.items():
        if None in vs:
            continue
        g = groups[gid]
        writers = {(wg, wk) for wg, wk, wj in vs}
        wg = groups[vs[0][0]]
        if len(writers) > 1 or wg.dtype != g.dtype or (wg.fields[1] & 31) != (g.fields[1] & 31):
            misaligned.add((gid, k))
    assert {(h.group, h.k) for h in res.hazards if h.kind == "misaligned"} == misaligned
    got = {frozenset({(h.group, h.k), (h.other, h.other_k)}) for h in res.hazards if h.kind == "conflict"}
    assert got == conflicts
