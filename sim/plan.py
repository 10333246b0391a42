"""The execution plan: a loaded image's dataflow worked out once, then run as numpy batches.

The machine is static: every stream read meets a known write (``streams.py``), every MEM
address but a gather's is in the instruction word, and every unit runs its queue in program
order. So which instruction instance needs which other's result is a property of the program,
not of the data. The plan gives every instance (one repetition of a group) a *level*: one more
than the highest level of any instance it depends on —

- the write of every stream plane it reads (``Machine.src_rows``; a ``recv`` depends on what its
  ``send`` read);
- for a MEM ``read``, the last earlier ``write`` of each word it reads; for a ``write``, the
  last earlier write of each of its words and every read of them since;
- a data-dependent access (``gather``; a ``scatter`` would be the same with reads and writes
  swapped) on every earlier write (read) of its slice, and every later write (read) on it;
- an instruction that keeps unit state (an MXM plane's ``lw iw mm acc``) on the one before it in
  its queue, so a plane sees its instructions in program order.

A level is run as one fancy-indexed copy in the machine's store (value pool rows and SRAM
words in one array) for every byte move of the level (MEM ``read``/``write``, ``mov``,
``recv``), one call of its semantics function for every kind of lanewise instruction (same
opcode, types and fields, across any groups), and, in program order, the runs of instructions
with unit state, through the core's ``_execute`` as the reference engine runs them.

Nothing here knows an instruction: what batches how is registered with the semantics
(``Semantics.batch``, ``words``, ``sram``). A program the plan does not cover — one with a
hazard found before the run, a static address out of range, a permute whose lane map the
program writes — is run by the reference engine (``Machine.plan_reason`` says why); a hazard
found during a planned run (a gather's index out of range, an ``mm`` before any ``iw``) undoes
the run's SRAM writes and runs it again on the reference engine, so results, hazards, statistics
and traces are always the reference engine's.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from lpu.arch.isa import DTYPE_BYTES
from lpu.sim.semantics import SEMANTICS, Exec
from lpu.sim.streams import stream_ops

# what an instance is to the plan (from Semantics.batch)
_LANES, _LOAD, _STORE, _COPY, _NONE, _UNIT, _DYN_READ, _DYN_WRITE = range(8)
_KIND = {"lanes": _LANES, "load": _LOAD, "store": _STORE, "copy": _COPY, "none": _NONE}


class _Words:
    """The static words of every MEM read/write group (``Semantics.words``): repetition k of
    group g takes width[g] words from addr[g] + stride[g] · k."""

    def __init__(self, groups: int) -> None:
        self.addr = np.zeros(groups, np.int64)
        self.stride = np.zeros(groups, np.int64)
        self.width = np.zeros(groups, np.int64)  # 0: not a static MEM access

    def of(self, gi: np.ndarray, gi_group: np.ndarray, gi_k: np.ndarray) -> np.ndarray:
        """The words of instances ``gi``, instance by instance."""
        g = gi_group[gi]
        return ranges(self.addr[g] + self.stride[g] * gi_k[gi], self.width[g])


class NotPlannable(Exception):
    """The program is left to the reference engine; the message says why."""


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of arange(s, s + n) for every (s, n)."""
    lengths = np.asarray(lengths, np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(lengths)
    offs = np.repeat(np.asarray(starts, np.int64) - (ends - lengths), lengths)
    return np.arange(total, dtype=np.int64) + offs


@dataclass(slots=True)
class Copy:
    """Every byte move of a level: store rows ``dst`` take the store rows ``src``."""

    dst: np.ndarray
    src: np.ndarray

    def run(self, store: np.ndarray, machine) -> None:
        store[self.dst] = store.take(self.src, axis=0)


@dataclass(slots=True)
class Lanes:
    """Every instance of one lanewise kind in one level: a single call of its semantics."""

    fn: object
    group: object  # a group of the kind: the fields the semantics read
    n: int
    src: np.ndarray  # (n * planes read) store rows, instance by instance
    srcs: list  # (operand, first plane, end plane)
    dst: list  # (operand, store rows (n * its planes))
    planes: int
    each: dict | None = None  # Semantics.each: field -> (n,) values
    ex: Exec | None = None  # made on the first run, its planes renewed on every one

    def run(self, store: np.ndarray, machine) -> None:
        ex = self.ex
        if ex is None or ex.machine is not machine:
            ex = self.ex = Exec(self.group, 0, self.n, {}, None, machine, machine.lanes)
            ex.fields_each = self.each
        if len(self.src):
            block = store.take(self.src, axis=0).reshape(self.n, self.planes, -1)
            if len(self.srcs) == 1:
                ex.planes = {self.srcs[0][0]: block}
            else:
                ex.planes = {name: block[:, a:b] for name, a, b in self.srcs}
        out = self.fn(ex)
        for name, rows in self.dst:
            store[rows] = out[name].reshape(len(rows), -1)


class _Kept:
    """``Semantics.prepare``'s value for a step whose operands are SRAM words the program never
    writes, kept while those slices are not written from outside (``SramSlice.version``)."""

    __slots__ = ("slices", "versions", "value")

    def __init__(self, slices: list) -> None:
        self.slices = slices
        self.versions: list[int] | None = None
        self.value = None

    def get(self, prepare, ex: Exec):
        versions = [s.version for s in self.slices]
        if versions != self.versions:
            self.value, self.versions = prepare(ex), versions
        return self.value


@dataclass(slots=True)
class Unit:
    """Repetitions k0 .. k1-1 of a group with unit state, run by the core as it runs them."""

    group: object
    k0: int
    k1: int
    src: np.ndarray | None  # (count, planes) store rows its operands are read from
    kept: _Kept | None = None

    def run(self, store: np.ndarray, machine) -> None:
        g = self.group
        prepared = None
        if self.kept is not None:
            ex = Exec(g, self.k0, self.k1, None, None, machine, machine.lanes)
            if self.kept.versions != [s.version for s in self.kept.slices]:
                block = store.take(self.src[self.k0:self.k1], axis=0)
                ex.planes = {name: block[:, a:b] for name, a, b in machine._plan(g)[2]}
            prepared = self.kept.get(SEMANTICS[g.spec.mnemonic].prepare, ex)
        machine._execute(g, self.k0, self.k1, self.src, machine._plan(g), prepared)


@dataclass(slots=True)
class Merged:
    """Consecutive instructions of one kind in one queue (``Semantics.merge``) as one call."""

    group: object  # the first: its fields are every one's
    n: int
    src: np.ndarray  # (n * planes) store rows
    kept: _Kept | None = None

    def run(self, store: np.ndarray, machine) -> None:
        fn, unit, srcs, _, _ = machine._plan(self.group)
        ex = Exec(self.group, 0, self.n, None, unit, machine, machine.lanes)
        if self.kept is None or self.kept.versions is None or \
                self.kept.versions != [s.version for s in self.kept.slices]:
            block = store.take(self.src, axis=0).reshape(self.n, -1, store.shape[1])
            ex.planes = {name: block[:, a:b] for name, a, b in srcs}
        if self.kept is not None:
            ex.prepared = self.kept.get(SEMANTICS[self.group.spec.mnemonic].prepare, ex)
        fn(ex)


@dataclass(slots=True)
class Plan:
    steps: list  # in level order
    step_levels: list  # the level of each step
    levels: int
    instructions: int  # instances issued (each repetition counts)
    busy: dict  # (chip, queue) -> cycles its unit is occupied
    executed: dict  # group id -> repetitions run (all)
    saved_rows: np.ndarray  # the SRAM store rows a run may write: restored if it falls back
    sram_bytes: dict = field(default_factory=dict)  # (chip, position) -> (bytes read, bytes written)
    batches: dict = field(default_factory=dict)  # step kind -> count

    def run(self, store: np.ndarray, machine) -> None:
        for step in self.steps:
            step.run(store, machine)


def computed(ready: np.ndarray, src: np.ndarray, k0: int, k1: int) -> int:
    """The end of the run of repetitions from k0 (before k1) whose operand rows are all ready
    (the reference engine's batching rule)."""
    ok = ready[src[k0:k1]]
    if ok.all():
        return k1
    return k0 + int(np.argmin(ok.all(axis=1)))


def reference_order(queues, src_rows: dict, ready: np.ndarray, limit=lambda: math.inf):
    """The batches of the reference engine (``Machine._run``) in its order, as (queue index,
    group, k0, k1, cycle): an event loop over the cycles where a queue issues. The queue whose
    next instruction is earliest runs as many repetitions of its group as have their operands
    computed — ``ready``, which the caller marks as it runs each batch — and nothing issues at
    or after ``limit()``. A short window of repetitions is checked first: when a group feeds
    itself one repetition at a time, checking every remaining one each time would be quadratic."""
    heap = [(gs[0].issue, ci, qi, i) for i, (ci, qi, gs) in enumerate(queues) if gs]
    heapq.heapify(heap)
    cursor = [[0, 0] for _ in queues]
    while heap:
        c, ci, qi, i = heap[0]
        stop = limit()
        if c >= stop:
            return
        heapq.heappop(heap)
        gs = queues[i][2]
        gi, k0 = cursor[i]
        g = gs[gi]
        k1 = g.count
        src = src_rows.get(g.id)
        if src is not None:
            k1 = computed(ready, src, k0, min(k1, k0 + 64))
            if k1 == k0 + 64 and k1 < g.count:
                k1 = computed(ready, src, k1, g.count)
            if k1 == k0:
                raise AssertionError(f"operands of group {g.id} not computed at cycle {c}")
        if stop != math.inf and g.issue + (k1 - 1) * g.period >= stop:
            k1 = k0 + max(1, -(-(int(stop) - c) // g.period))
        yield i, g, k0, k1, c
        if k1 < g.count:
            cursor[i][1] = k1
            heapq.heappush(heap, (g.issue + k1 * g.period, ci, qi, i))
        elif gi + 1 < len(gs):
            cursor[i] = [gi + 1, 0]
            heapq.heappush(heap, (gs[gi + 1].issue, ci, qi, i))


def reference_batches(m, batch_of: dict[int, list[int]]) -> None:
    """The first repetition of every batch in which the reference engine runs the groups of
    ``batch_of``: its order replayed on readiness alone, no data."""
    ready = np.zeros(len(m.pool), bool)
    ready[0] = True
    widths: dict[int, int] = {}
    try:
        for _, g, k0, k1, _ in reference_order(m.queues, m.src_rows, ready):
            if g.id in batch_of:
                batch_of[g.id].append(k0)
            row0 = m.dst_row0.get(g.id)
            if row0 is not None:
                w = widths.get(g.id)
                if w is None:
                    w = widths[g.id] = sum(o.width for o in stream_ops(g.spec, g.dtype, g.dtype2, g.fields)
                                           if o.write)
                ready[row0 + k0 * w:row0 + k1 * w] = True
    except AssertionError as e:
        raise NotPlannable(str(e)) from None


def build(m) -> Plan:
    """The plan of a machine whose schedule and streams are resolved (``Machine._resolve``)."""
    if m.hazards:
        raise NotPlannable("the program has hazards found before the run")
    groups = m.groups
    G = len(groups)
    lanes = m.lanes
    count = np.fromiter((g.count for g in groups), np.int64, G)
    start = np.cumsum(count) - count  # instance id of a group's repetition 0 ("gi")
    N = int(count.sum())
    kind = np.empty(G, np.int8)
    lanes_key: dict[tuple, int] = {}
    key_of = np.zeros(G, np.int64)  # lanes: batch kind id (>= 1); moves: 0
    slot_of = np.full(G, -1, np.int64)  # MEM groups: the slice's store slot
    words_of = _Words(G)
    written: dict[tuple[int, int], list] = {}  # slice -> the groups that write it
    permutes = []
    no_dst = np.zeros(G, bool)  # unit instructions without stream results: nothing but their queue waits on them
    batch_of: dict[int, list[int]] = {}  # shape-sensitive groups: the reference engine's batch starts
    merge_key = np.full(G, -1, np.int64)  # Semantics.merge: same key, next in the queue -> one call
    merge_keys: dict[tuple, int] = {}
    for g in groups:
        sem = SEMANTICS[g.spec.mnemonic]
        if sem.merge:
            key = (g.chip, g.queue, g.spec.opcode, g.dtype, g.dtype2) + tuple(
                None if o.role else v for o, v in zip(g.spec.operands, g.fields))
            merge_key[g.id] = merge_keys.setdefault(key, len(merge_keys))
        q = m.cfgs[g.chip].queues[g.queue]
        if sem.batch is None:
            k = _DYN_READ if sem.sram == "read" else _DYN_WRITE if sem.sram == "write" else _UNIT
        else:
            k = _KIND[sem.batch]
        kind[g.id] = k
        no_dst[g.id] = k == _UNIT and not any(o.role == "dst" for o in g.spec.operands)
        if sem.shape_sensitive and g.count > 1:
            batch_of[g.id] = []
        if q.kind == "mem":
            slot_of[g.id] = m.sram_slot(g.chip, q.position)
        if k in (_LOAD, _STORE):
            a, st, w = sem.words(g)
            last = a + st * (g.count - 1)
            if min(a, last) < 0 or max(a, last) + w > m.cfgs[g.chip].words:
                raise NotPlannable(f"a MEM address out of range (queue {q.name}, word {g.word})")
            words_of.addr[g.id], words_of.stride[g.id], words_of.width[g.id] = a, st, w
        if k in (_STORE, _DYN_WRITE):
            written.setdefault((g.chip, q.position), []).append(g)
        if k == _LANES:
            key = (g.chip, g.spec.opcode, g.dtype, g.dtype2) + tuple(
                (v if v >> 32 else None) if o.role else None if o.name in sem.each else v
                for o, v in zip(g.spec.operands, g.fields))
            key_of[g.id] = lanes_key.setdefault(key, len(lanes_key) + 1)
            if "map" in (o.name for o in g.spec.operands):
                permutes.append(g)
    for g in permutes:  # a lane map is read when the permute runs: constant tables only
        pos, addr, dtype = m.lane_map_at(g)
        end = addr + DTYPE_BYTES[dtype]
        for w in written.get((g.chip, pos), []):
            if kind[w.id] == _DYN_WRITE:
                raise NotPlannable("a permute's lane map lies in a slice the program writes at run-time addresses")
            a, st, width = words_of.addr[w.id], words_of.stride[w.id], words_of.width[w.id]
            first = a + st * np.arange(w.count)  # a store's words: first + 0..width-1
            if ((first < end) & (first + width > addr)).any():
                raise NotPlannable("a permute's lane map lies in words the program writes")
    if batch_of:
        reference_batches(m, batch_of)
    # per instance of a shape-sensitive group: which reference batch it belongs to
    batch_id: dict[int, int] = {}
    gi_group = np.repeat(np.arange(G, dtype=np.int64), count)
    gi_k = np.arange(N, dtype=np.int64) - start[gi_group]
    issue = np.fromiter((g.issue for g in groups), np.int64, G)
    period = np.fromiter((g.period for g in groups), np.int64, G)
    chip = np.fromiter((g.chip for g in groups), np.int64, G)
    queue = np.fromiter((g.queue for g in groups), np.int64, G)
    cycle = issue[gi_group] + period[gi_group] * gi_k
    # the order the core issues in: (cycle, chip, queue); producers come first in it
    order = np.lexsort((queue[gi_group], chip[gi_group], cycle))
    rank = np.empty(N, np.int64)
    rank[order] = np.arange(N)

    # per instance: the store rows it writes (pool rows) and reads
    npool = len(m.pool)
    row_gi = np.full(npool, -1, np.int64)
    dst_width = np.zeros(G, np.int64)
    d_ids = [gid for gid in m.dst_row0]
    for gid in d_ids:
        g = groups[gid]
        dst_width[gid] = sum(o.width for o in stream_ops(g.spec, g.dtype, g.dtype2, g.fields) if o.write)
    if d_ids:
        d_ids_a = np.array(d_ids, np.int64)
        r0 = np.array([m.dst_row0[i] for i in d_ids], np.int64)
        lens = count[d_ids_a] * dst_width[d_ids_a]
        rows = ranges(r0, lens)
        local = rows - np.repeat(r0, lens)
        row_gi[rows] = np.repeat(start[d_ids_a], lens) + local // np.repeat(dst_width[d_ids_a], lens)
    src_planes = np.zeros(G, np.int64)
    s_ids = list(m.src_rows)
    for gid in s_ids:
        src_planes[gid] = m.src_rows[gid].shape[1]
    src_flat = np.concatenate([m.src_rows[i].reshape(-1) for i in s_ids]) if s_ids else np.zeros(0, np.int64)
    s_ids_a = np.array(s_ids, np.int64)
    # instance -> its reads' offset in src_flat
    src_off = np.zeros(N, np.int64)
    if s_ids:
        lens = count[s_ids_a] * src_planes[s_ids_a]
        base = np.cumsum(lens) - lens
        gi = ranges(start[s_ids_a], count[s_ids_a])
        src_off[gi] = np.repeat(base, count[s_ids_a]) + (gi - np.repeat(start[s_ids_a], count[s_ids_a])) * \
            np.repeat(src_planes[s_ids_a], count[s_ids_a])
        src_cons = np.repeat(gi, np.repeat(src_planes[s_ids_a], count[s_ids_a]))
    else:
        src_cons = np.zeros(0, np.int64)
    if len(src_flat) and (src_flat == 0).any():
        raise NotPlannable("a read that meets no value")

    # dependency edges (consumer gi, producer gi)
    cons = [src_cons]
    prod = [row_gi[src_flat]]
    # static SRAM: per word, in issue order: RAW, WAW, WAR
    mem_ids = np.nonzero(words_of.width)[0]
    if len(mem_ids):
        gi_mem = ranges(start[mem_ids], count[mem_ids])
        wflat = words_of.of(gi_mem, gi_group, gi_k)
        e_gi = np.repeat(gi_mem, words_of.width[gi_group[gi_mem]])
        e_gid = gi_group[e_gi]
        words_per_slice = max(c.words for c in m.cfgs)
        wid = slot_of[e_gid] * words_per_slice + wflat
        e_rank = rank[e_gi]
        srt = np.lexsort((e_rank, wid))
        wid, e_gi, is_w = wid[srt], e_gi[srt], kind[e_gid[srt]] == _STORE
        n = len(wid)
        first = np.ones(n, bool)
        first[1:] = wid[1:] != wid[:-1]
        run_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
        widx = np.where(is_w, np.arange(n), -1)
        last_w = np.maximum.accumulate(widx)  # inclusive
        prev_w = np.concatenate([[-1], last_w[:-1]])
        ok = prev_w >= run_start
        cons.append(e_gi[ok])  # a read after a write (RAW) and a write after a write (WAW)
        prod.append(e_gi[prev_w[ok]])
        nxt = np.where(is_w, np.arange(n), n)
        next_w = np.minimum.accumulate(nxt[::-1])[::-1]
        next_w = np.concatenate([next_w[1:], [n]])
        run_end = np.concatenate([np.nonzero(first)[0][1:], [n]])[np.cumsum(first) - 1]
        ok = ~is_w & (next_w < run_end)  # a write after a read (WAR)
        cons.append(e_gi[next_w[ok]])
        prod.append(e_gi[ok])
    cons_a = np.concatenate(cons)
    prod_a = np.concatenate(prod)
    keep = cons_a != prod_a
    cons_r = rank[cons_a[keep]]
    prod_g = prod_a[keep]
    e_order = np.argsort(cons_r, kind="stable")
    ptr = np.searchsorted(cons_r[e_order], np.arange(N + 1))
    dep = prod_g[e_order].tolist()
    ptr_l = ptr.tolist()

    # levels, in issue order
    gi_kind = kind[gi_group]
    level = [0] * N
    lv_get = level.__getitem__
    inst_kind = gi_kind.tolist()
    order_l = order.tolist()
    group_l = gi_group.tolist()
    special = {_UNIT, _DYN_READ, _DYN_WRITE, _STORE, _LOAD}
    slot_l = slot_of.tolist()
    queue_key = (chip * 4096 + queue).tolist()
    merge_l = merge_key.tolist()
    no_dst_l = no_dst.tolist()
    for gid, starts in batch_of.items():
        for b, (k0, k1) in enumerate(zip(starts, starts[1:] + [groups[gid].count])):
            for kk in range(k0, k1):
                batch_id[int(start[gid]) + kk] = b
    part_ids: dict[str, int] = {}
    parts_of = {mn: tuple(part_ids.setdefault(p, len(part_ids)) for p in sem.state) for mn, sem in SEMANTICS.items()}
    parts_l = [parts_of[g.spec.mnemonic] for g in groups]
    last_unit: dict[tuple[int, int], tuple[int, int, int]] = {}  # (queue, state part) -> (gi, group, node)
    nodes: list[list] = []  # [level, [group, k0, k1], ...]
    node_of: dict[int, int] = {}  # gi of a unit instance -> node
    w_max: dict[int, int] = {}  # per slot: highest level of a write so far
    r_max: dict[int, int] = {}  # per slot: of a read so far
    dw_max: dict[int, int] = {}  # per slot: of a data-dependent write so far
    dr_max: dict[int, int] = {}  # of a data-dependent read so far
    # an instance with nothing before it and no per-slice ordering to keep is at level 0: only
    # the others go through the loop (a weight sweep of a long repeat costs no Python)
    dyn_write_slots = np.unique(slot_of[kind == _DYN_WRITE])
    free = (ptr[1:] == ptr[:-1]) & np.isin(gi_kind[order], (_LANES, _COPY, _NONE, _LOAD))
    free &= ~((gi_kind[order] == _LOAD) & np.isin(slot_of[gi_group[order]], dyn_write_slots))
    for r in np.nonzero(~free)[0].tolist():
        i = order_l[r]
        s, e = ptr_l[r], ptr_l[r + 1]
        lv = max(map(lv_get, dep[s:e])) + 1 if e > s else 0
        k = inst_kind[i]
        if k in special:
            g = group_l[i]
            sl = slot_l[g]
            if k == _LOAD:
                lv = max(lv, dw_max.get(sl, -1) + 1)
                if lv > r_max.get(sl, -1):
                    r_max[sl] = lv
            elif k == _STORE:
                lv = max(lv, dr_max.get(sl, -1) + 1)
                if lv > w_max.get(sl, -1):
                    w_max[sl] = lv
            else:
                if k == _DYN_READ:
                    lv = max(lv, w_max.get(sl, -1) + 1, dw_max.get(sl, -1) + 1)
                elif k == _DYN_WRITE:
                    lv = max(lv, w_max.get(sl, -1) + 1, r_max.get(sl, -1) + 1)
                qk = queue_key[g]
                parts = parts_l[g]
                prevs = {last_unit.get((qk, p)) for p in parts}
                prevs.discard(None)
                joined = False
                if len(prevs) == 1:
                    pgi, pg, pnode = next(iter(prevs))
                    plv = nodes[pnode][0]
                    # the next repetition, within one batch of the reference engine's if it matters
                    same = pg == g and (g not in batch_of or batch_id[i] == batch_id[pgi])
                    if (same or (pg != g and merge_l[g] >= 0 and merge_l[pg] == merge_l[g])) and \
                            (lv <= plv or no_dst_l[g] or g in batch_of):
                        # the next repetition (or instruction of the kind, next on its state):
                        # one call. A unit instruction without results may wait for its last
                        # operand (only its queue waits on it); one with results joins when
                        # nothing forces it later
                        lv = max(lv, plv)
                        node = nodes[pnode]
                        node[0] = lv
                        if pg == g:
                            node[-1][2] += 1
                        else:
                            node.append([g, 0, 1])
                        node_of[i] = pnode
                        joined = True
                if not joined and k == _UNIT and prevs:  # after the last instruction on its state
                    lv = max(lv, max(nodes[pn][0] for _, _, pn in prevs) + 1)
                if not joined:
                    node_of[i] = len(nodes)
                    nodes.append([lv, [g, i - int(start[g]), i - int(start[g]) + 1]])
                for p in parts:
                    last_unit[(qk, p)] = (i, g, node_of[i])
                if k == _DYN_READ:
                    dr_max[sl] = max(dr_max.get(sl, -1), lv)
                    r_max[sl] = max(r_max.get(sl, -1), lv)
                elif k == _DYN_WRITE:
                    dw_max[sl] = max(dw_max.get(sl, -1), lv)
                    w_max[sl] = max(w_max.get(sl, -1), lv)
        level[i] = lv
    lv_a = np.array(level, np.int64)
    if len(prod_g) and not (lv_a[cons_a[keep]] > lv_a[prod_g]).all():
        raise NotPlannable("an instruction would run before one it depends on")  # never, by construction
    return _steps(m, groups, kind, key_of, lv_a, gi_group, gi_k, start, count, dst_width, src_planes,
                  src_flat, src_off, words_of, slot_of, nodes)


def _steps(m, groups, kind, key_of, lv, gi_group, gi_k, start, count, dst_width, src_planes, src_flat,
           src_off, words_of, slot_of, nodes) -> Plan:
    words_per_slice = max(c.words for c in m.cfgs)
    sram0 = len(m.pool)  # store row of slot 0, word 0
    gk = kind[gi_group]
    steps: list[tuple[int, int, object]] = []  # (level, sort key, step)
    # SRAM words the program may write: a read of any other word needs no copy, its readers
    # take the word itself (forwarding: weights and inputs go straight from SRAM to their use)
    writable = np.zeros(len(m.store), bool)
    stores = np.nonzero(kind == _STORE)[0]
    if len(stores):
        gi = ranges(start[stores], count[stores])
        words = words_of.of(gi, gi_group, gi_k)
        writable[sram0 + np.repeat(slot_of[gi_group[gi]], words_of.width[gi_group[gi]]) * words_per_slice + words] = True
    for gid in np.nonzero(kind == _DYN_WRITE)[0].tolist():
        a = sram0 + int(slot_of[gid]) * words_per_slice
        writable[a:a + words_per_slice] = True
    fwd = np.arange(sram0, dtype=np.int64)
    # byte moves: (instance, dst store row, src store row) for every plane moved
    moves = np.nonzero(np.isin(gk, (_LOAD, _STORE, _COPY)))[0]
    mdst, msrc, mlv = [], [], []
    for kk in (_LOAD, _STORE, _COPY):
        gi = moves[gk[moves] == kk]
        if not len(gi):
            continue
        gids = gi_group[gi]
        if kk == _COPY:
            width = dst_width[gids]
            dst = ranges(np.array([m.dst_row0[g] for g in gids.tolist()], np.int64) + gi_k[gi] * width, width)
            src = src_flat[ranges(src_off[gi], width)]
        else:
            w = words_of.width[gids]
            word = words_of.of(gi, gi_group, gi_k)
            sram = sram0 + np.repeat(slot_of[gids], w) * words_per_slice + word
            if kk == _LOAD:
                dst = ranges(np.array([m.dst_row0[g] for g in gids.tolist()], np.int64) + gi_k[gi] * w, w)
                src = sram
                ro = ~writable[src]
                fwd[dst[ro]] = src[ro]
                src_flat = fwd[src_flat]
                keep = ~ro
                dst, src = dst[keep], src[keep]
                mdst.append(dst)
                msrc.append(src)
                mlv.append(np.repeat(lv[gi], w)[keep])
                continue
            else:
                dst = sram
                src = src_flat[ranges(src_off[gi], w)]
            width = w
        mdst.append(dst)
        msrc.append(src)
        mlv.append(np.repeat(lv[gi], width))
    if mdst:
        dst, src, mv = np.concatenate(mdst), np.concatenate(msrc), np.concatenate(mlv)
    if mdst and len(mv):
        o = np.argsort(mv, kind="stable")
        dst, src, mv = dst[o], src[o], mv[o]
        cut = np.nonzero(np.diff(mv))[0] + 1
        for a, b in zip(np.concatenate([[0], cut]).tolist(), np.concatenate([cut, [len(mv)]]).tolist()):
            steps.append((int(mv[a]), 0, Copy(dst[a:b], src[a:b])))
    # lanewise kinds: one call per (level, kind)
    li = np.nonzero(gk == _LANES)[0]
    if len(li):
        bkey = lv[li] * (int(key_of.max()) + 1) + key_of[gi_group[li]]
        o = np.argsort(bkey, kind="stable")
        li, bkey = li[o], bkey[o]
        cut = np.nonzero(np.diff(bkey))[0] + 1
        for a, b in zip(np.concatenate([[0], cut]).tolist(), np.concatenate([cut, [len(li)]]).tolist()):
            gi = li[a:b]
            gids = gi_group[gi]
            g = groups[int(gids[0])]
            srcs, dsts = m._operands(g)
            planes = int(src_planes[g.id])
            src = src_flat[ranges(src_off[gi], np.full(len(gi), planes))] if planes else np.zeros(0, np.int64)
            width = int(dst_width[g.id])
            dst_rows = ranges(np.array([m.dst_row0[x] for x in gids.tolist()], np.int64) + gi_k[gi] * width,
                              np.full(len(gi), width)).reshape(len(gi), width) if width else None
            dst = [(name, dst_rows[:, lo:hi].reshape(-1)) for name, lo, hi in dsts] if width else []
            sem = SEMANTICS[g.spec.mnemonic]
            each = None
            if sem.each:
                values = {f: np.array([groups[x].field(f) for x in gids.tolist()], np.int64) for f in sem.each}
                each = {f: v for f, v in values.items() if (v != v[0]).any()} or None
            steps.append((int(lv[gi[0]]), 1, Lanes(sem.fn, g, len(gi), src, srcs, dst, planes, each)))
    slot_key = {slot: key for key, slot in m._slots.items()}

    def kept(g, rows: np.ndarray | None) -> _Kept | None:
        """A keeper of ``prepare``'s value when every operand row is a never-written SRAM word."""
        if SEMANTICS[g.spec.mnemonic].prepare is None or rows is None or not len(rows):
            return None
        rows = rows.reshape(-1)
        if rows.min() < sram0 or writable[rows].any():
            return None
        slots = np.unique((rows - sram0) // words_per_slice).tolist()
        return _Kept([m.slice_state(*slot_key[s]) for s in slots])

    for level, *segs in nodes:
        if len(segs) == 1:
            gid, k0, k1 = segs[0]
            src = m.src_rows.get(gid)
            src = None if src is None else fwd[src]
            steps.append((level, 2, Unit(groups[gid], k0, k1, src,
                                         kept(groups[gid], None if src is None else src[k0:k1]))))
        else:
            src = np.concatenate([fwd[m.src_rows[gid][k0:k1].reshape(-1)] for gid, k0, k1 in segs])
            g0 = groups[segs[0][0]]
            steps.append((level, 2, Merged(g0, sum(k1 - k0 for _, k0, k1 in segs), src, kept(g0, src))))
    steps.sort(key=lambda s: (s[0], s[1]))
    batches: dict[str, int] = {}
    for _, _, s in steps:
        batches[type(s).__name__] = batches.get(type(s).__name__, 0) + 1
    # what a run writes in SRAM (restored when a run falls back to the reference engine)
    sram_bytes: dict[tuple[int, int], list[int]] = {}
    for gid in np.nonzero(words_of.width)[0].tolist():
        g = groups[gid]
        pos = m.cfgs[g.chip].queues[g.queue].position
        b = sram_bytes.setdefault((g.chip, pos), [0, 0])
        b[1 if kind[gid] == _STORE else 0] += g.count * int(words_of.width[gid]) * m.lanes
    saved_rows = np.nonzero(writable)[0]  # the words of its stores, the slices of data-dependent ones
    busy = {(ci, qi): sum(g.count * max(1, g.occupancy) for g in gs) for ci, qi, gs in m.queues}
    executed = {g.id: g.count for g in groups}
    return Plan([s for _, _, s in steps], [lvl for lvl, _, _ in steps], int(lv.max()) + 1 if len(lv) else 0, int(count.sum()), busy, executed,
                saved_rows,
                {k: tuple(v) for k, v in sram_bytes.items()}, batches)
