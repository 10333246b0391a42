"""Chip-to-chip links, resolved before any data moves (their timing is static too).

A ``send`` of a w-byte vector issued at t keeps its link busy for ceil(lanes·w / bytes per
cycle) cycles, [t, t + busy); the vector lands in the peer's receive buffer at
t + busy + latency (the wire's latency from the system image, else ``c2c.link_latency``).
A ``recv`` at r takes the oldest vector that has landed by r (a vector landing in cycle r can
be taken in cycle r). Receiving from an empty buffer, a buffer holding more than
``c2c.recv_buffer_depth`` vectors, a send or ``deskew`` on a busy link, and any of the three on a
link the system image does not wire are hazards (a recv there puts zeros on its stream).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from lpu.sim.program import Group


@dataclass(slots=True)
class LinkHazard:
    kind: str  # "busy", "empty", "overflow", "unconnected"
    group: int
    k: int
    cycle: int
    detail: str
    other: int = -1  # busy: the group holding the link
    other_k: int = -1


@dataclass(slots=True)
class LinkResult:
    recv_src: dict[int, np.ndarray] = field(default_factory=dict)  # recv group -> (count, planes) rows
    hazards: list[LinkHazard] = field(default_factory=list)
    bytes_sent: dict[int, int] = field(default_factory=dict)  # chip -> bytes


def resolve_links(groups: list[Group], cfgs: list, chip_names: list[str], wires: list[tuple],
                  send_src: dict[int, np.ndarray], recv_planes: dict[int, int], role) -> LinkResult:
    """``wires``: (chip a, link a, chip b, link b, latency or None) by chip index.
    ``send_src``: a send group's stream rows; ``recv_planes``: planes a recv group writes;
    ``role(group)``: "send", "recv" or "hold" (the semantics registry says which)."""
    out = LinkResult()
    peer: dict[tuple[int, int], tuple[int, int, int]] = {}
    for a, la, b, lb, lat in wires:
        peer[(a, la)] = (b, lb, lat)
        peer[(b, lb)] = (a, la, lat)
    # per (chip, link): intervals the link is busy sending; per receiving (chip, link): arrivals
    busy: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}
    arrivals: dict[tuple[int, int], list[tuple[int, int, int]]] = {}  # (cycle, send group, k)
    recvs: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for g in groups:
        m = role(g)
        if m is None:
            continue
        cfg = cfgs[g.chip]
        link = g.field("link")
        occ = g.occupancy
        cyc = g.cycles().tolist()
        p = peer.get((g.chip, link))
        if p is None:  # whatever it sends goes nowhere; whatever it receives comes from nowhere
            out.hazards.append(LinkHazard("unconnected", g.id, 0, g.issue,
                                          f"L{link} of chip {chip_names[g.chip]} is not wired to any chip"))
            continue
        if m == "recv":
            for k, c in enumerate(cyc):
                recvs.setdefault((g.chip, link), []).append((c, g.id, k))
            continue
        for k, c in enumerate(cyc):
            busy.setdefault((g.chip, link), []).append((c, c + occ, g.id, k))
        if m == "send":
            out.bytes_sent[g.chip] = out.bytes_sent.get(g.chip, 0) + g.count * cfg.lanes * len(send_src[g.id][0])
            b, lb, lat = p
            lat = cfg["c2c.link_latency"] if lat is None else lat
            for k, c in enumerate(cyc):
                arrivals.setdefault((b, lb), []).append((c + occ + lat, g.id, k))
    for (chip, link), spans in busy.items():
        spans.sort()
        end, holder = -1, None
        for s, e, gid, k in spans:
            if s < end:
                out.hazards.append(LinkHazard("busy", gid, k, s, f"L{link} is busy until cycle {end}",
                                              holder[0], holder[1]))
            if e > end:
                end, holder = e, (gid, k)
    by_id = {g.id: g for g in groups if g.id in send_src or g.id in recv_planes}
    for key in set(arrivals) | set(recvs):
        chip, link = key
        depth = cfgs[chip]["c2c.recv_buffer_depth"]
        arr = sorted(arrivals.get(key, []))
        rcv = sorted(recvs.get(key, []))
        # arrivals before receptions in the same cycle
        events = [(c, 0, gid, k) for c, gid, k in arr] + [(c, 1, gid, k) for c, gid, k in rcv]
        heapq.heapify(events)
        buffer: list[tuple[int, int]] = []
        head = 0
        taken: dict[int, list[np.ndarray]] = {}
        while events:
            c, what, gid, k = heapq.heappop(events)
            if what == 0:
                if len(buffer) - head >= depth:
                    out.hazards.append(LinkHazard("overflow", gid, k, c,
                                                  f"L{link} of chip {chip_names[chip]} already holds {depth} vectors"))
                    continue
                buffer.append((gid, k))
                continue
            planes = recv_planes[gid]
            if head < len(buffer):
                sg, sk = buffer[head]
                head += 1
                rows = send_src[sg][sk]
                if len(rows) != planes:  # a vector received as another width: bytes as they are
                    rows = np.concatenate([rows, np.zeros(planes, rows.dtype)])[:planes]
            else:
                out.hazards.append(LinkHazard("empty", gid, k, c, f"the receive buffer of L{link} is empty"))
                rows = np.zeros(planes, np.int64)
            taken.setdefault(gid, []).append((k, rows))
        for gid, items in taken.items():
            g = by_id[gid]
            arr2 = np.zeros((g.count, recv_planes[gid]), np.int64)
            for k, rows in items:
                arr2[k] = rows
            out.recv_src[gid] = arr2
    for g in groups:
        if g.id in recv_planes and g.id not in out.recv_src:
            out.recv_src[g.id] = np.zeros((g.count, recv_planes[g.id]), np.int64)
    return out
