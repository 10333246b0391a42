"""C2C lowering for multi-chip compilation: values as vectors, the wires between two chips, and
the ``send``/``recv`` kernels around a chip's share (used by ``multichip``; docs/codegen.md,
"Multi-chip").

A value travels as its SRAM vectors, row-major (each row of the last dimension padded to whole
vectors). A send kernel reads each vector so that it passes the C2C slice in the cycle its
``send`` issues, on whichever wire to the peer lands it first; a recv kernel takes each vector
no earlier than it lands (each link's in its sends' order) and writes it into every slice that
needs it as it passes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lpu.arch.isa import BY_MNEMONIC, DTYPE_BYTES
from lpu.asm.operands import stream_field
from lpu.asm.records import Inst, SymRef
from lpu.diagnostics import DiagnosticError, SourceLoc, error
from lpu.dsl.lpu_dialect import KernelOp, LpuInstOp, to_kernel


def chip_name(c: int) -> str:
    return f"chip{c}"


@dataclass
class Transfer:
    """The k-th send from chip ``src`` to chip ``dst`` and the k-th recv there."""

    send: int  # op index
    recv: int
    src: int
    dst: int
    dtype: str
    rows: list[tuple[str, int]] = field(default_factory=list)  # (symbol, word offset) of each vector on src
    arrivals: list[int] = field(default_factory=list)  # global cycle each vector lands in dst's buffer
    links: list[tuple[int, int]] = field(default_factory=list)  # per vector: (src's link, dst's link)
    send_loc: SourceLoc | None = None  # the df send's location: its reads and sends carry it
    recv_loc: SourceLoc | None = None  # the df recv's: its recvs and writes


# --- values as vectors: rows of the last dimension, cut into lanes-wide vectors, padded ---------
def n_vectors(shape, lanes: int) -> int:
    rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    return rows * -(-(shape[-1] if shape else 1) // lanes)


def as_vectors(a: np.ndarray, lanes: int) -> np.ndarray:
    """``a`` as (vectors, lanes), row-major: each row's last dimension padded to whole vectors."""
    rows = a.reshape(-1, a.shape[-1] if a.ndim else 1)
    padded = np.zeros((rows.shape[0], -(-rows.shape[1] // lanes) * lanes), a.dtype)
    padded[:, :rows.shape[1]] = rows
    return padded.reshape(-1, lanes)


def from_vectors(v: np.ndarray, shape) -> np.ndarray:
    """The inverse of ``as_vectors``."""
    shape = tuple(shape)
    last = shape[-1] if shape else 1
    rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    return v.reshape(rows, -1)[:, :last].reshape(shape)


# --- C2C: the wires between two chips and the kernels around each chip's share ----------------
def _links(system, cfg, a: str, b: str) -> list[tuple[int, int, int]]:
    """Every wire from chip ``a`` to chip ``b``: (a's link, b's link, latency), by a's link."""
    ends = []
    for w in system.wires:
        for x, lx, y, ly in ((w.chip_a, w.link_a, w.chip_b, w.link_b), (w.chip_b, w.link_b, w.chip_a, w.link_a)):
            if x == a and y == b:
                ends.append((lx, ly, w.latency if w.latency is not None else cfg["c2c.link_latency"]))
    if not ends:
        raise DiagnosticError(error(f"the system '{system.source}' has no link from '{a}' to '{b}'"))
    return sorted(ends)


def _c2c_queue(cfg, link: int) -> str:
    return [q for q in cfg.queues if q.kind == "c2c"][link // cfg["c2c.links_per_slice"]].name


def _link(system, cfg, a: str, b: str) -> tuple[str, int]:
    """The C2C queue of chip ``a`` with its lowest link wired to ``b``, and that wire's latency."""
    link, _, lat = _links(system, cfg, a, b)[0]
    return _c2c_queue(cfg, link), lat


def _slice_of(tensors, sym: str) -> str:
    return next(t.placement.slice for t in tensors if t.name == sym)


class _Timeline:
    """Queue issue cycles and port cycles taken on one chip, for one kernel (local cycles)."""

    def __init__(self) -> None:
        self.busy: dict[tuple[str, str], set[int]] = {}

    def free(self, key, c: int, n: int = 1) -> bool:
        b = self.busy.get(key, ())
        return all(x not in b for x in range(c, c + n))

    def take(self, key, c: int, n: int = 1) -> None:
        self.busy.setdefault(key, set()).update(range(c, c + n))


def _recv_kernel(name, cfg, system, me: str, items, start: int) -> tuple[KernelOp, int]:
    """``recv`` every vector of ``items`` [(transfer, vector, [(symbol, offset)], tensors)] no
    earlier than it lands, and write it into each of its destinations as it passes them."""
    qidx = {q.name: q.index for q in cfg.queues}
    tl = _Timeline()
    insts = []
    recv_lat = cfg["c2c.recv_latency"]
    last_on: dict[int, int] = {}  # link -> cycle of its latest recv (recvs take a link's vectors in order)
    for tr, v, dests, tensors in items:
        link = tr.links[v][1]
        qname = _c2c_queue(cfg, link)
        pc = cfg.queue_by_name[qname].position
        west_edge = pc == min(q.position for q in cfg.queues)
        w = DTYPE_BYTES[tr.dtype]
        places = [(sym, off, cfg.queue_by_name[_slice_of(tensors, sym)].position, _slice_of(tensors, sym))
                  for sym, off in dests]
        r = max(0, tr.arrivals[v] - start, last_on.get(link, -1) + 1)
        while not (tl.free(("queue", qname), r) and all(
                tl.free(("queue", sl), r + recv_lat + abs(q - pc)) and tl.free(("write", sl), r + recv_lat + abs(q - pc), w)
                for _, _, q, sl in places)):
            r += 1
        grp = stream_field(0, not west_edge)  # away from the edge the link is on
        insts.append(Inst(r, qidx[qname], BY_MNEMONIC["recv"], tr.dtype, None, (link, grp), tr.recv_loc))
        tl.take(("queue", qname), r)
        last_on[link] = r
        for sym, off, q, sl in places:
            at = r + recv_lat + abs(q - pc)
            tl.take(("queue", sl), at)
            tl.take(("write", sl), at, w)
            insts.append(Inst(at, qidx[sl], BY_MNEMONIC["write"], tr.dtype, None, (SymRef(sym, off), grp, 0),
                              tr.recv_loc))
    insts.sort(key=lambda x: (x.cycle, x.queue))
    kop = KernelOp.build_from(name, [LpuInstOp.from_inst(x, cfg) for x in insts])
    return kop, to_kernel(kop, cfg).length


def _send_kernel(name, cfg, system, me: str, transfers, tensors, start: int) -> tuple[KernelOp, int]:
    """Read each vector of each transfer from its slice so that it passes the C2C slice in the
    cycle its ``send`` issues, on whichever of the wires to the peer lands it first (all wires
    between two chips carry a value's vectors in parallel); sends on one link are ``busy``
    cycles apart."""
    qidx = {q.name: q.index for q in cfg.queues}
    tl = _Timeline()
    insts = []
    read_lat = cfg["mem.read_latency"]
    link_free: dict[int, int] = {}  # link -> first cycle it can send again
    west_end = min(q.position for q in cfg.queues)
    for tr in transfers:
        wires = _links(system, cfg, me, chip_name(tr.dst))
        w = DTYPE_BYTES[tr.dtype]
        busy = math.ceil(cfg.lanes * w / cfg["c2c.link_bytes_per_cycle"])
        tr.arrivals, tr.links = [], []
        for sym, off in tr.rows:
            sl = _slice_of(tensors, sym)
            q = cfg.queue_by_name[sl].position
            best = None  # the vector goes on whichever wire to the peer sends it first
            for link, peer_link, lat in wires:
                qname = _c2c_queue(cfg, link)
                pc = cfg.queue_by_name[qname].position
                r = 0
                while True:
                    s = r + read_lat + abs(q - pc)
                    if (s >= link_free.get(link, 0) and tl.free(("queue", qname), s) and tl.free(("queue", sl), r)
                            and tl.free(("read", sl), r, w)):
                        break
                    r += 1
                if best is None or s + lat < best[0] + best[5]:
                    best = (s, r, link, peer_link, qname, lat, pc)
            s, r, link, peer_link, qname, lat, pc = best
            grp = stream_field(0, pc == west_end)  # toward the edge the link is on
            tl.take(("queue", qname), s)
            tl.take(("queue", sl), r)
            tl.take(("read", sl), r, w)
            link_free[link] = s + busy
            insts.append(Inst(r, qidx[sl], BY_MNEMONIC["read"], tr.dtype, None, (SymRef(sym, off), grp, 0),
                              tr.send_loc))
            insts.append(Inst(s, qidx[qname], BY_MNEMONIC["send"], tr.dtype, None, (grp, link), tr.send_loc))
            tr.arrivals.append(start + s + busy + lat)
            tr.links.append((link, peer_link))
    insts.sort(key=lambda x: (x.cycle, x.queue))
    kop = KernelOp.build_from(name, [LpuInstOp.from_inst(x, cfg) for x in insts])
    return kop, to_kernel(kop, cfg).length
