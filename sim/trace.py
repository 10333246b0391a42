"""The Chrome/Perfetto trace of a run (``lpu-sim --trace``; docs/simulator.md, "Traces").

One process per chip; one complete event (``"ph": "X"``) per executed issue, on the track of
what the issue holds, for as long as it holds it:

- a MEM ``read``/``gather`` on its slice's read port, a ``write`` on the write port (a slice
  reads and writes in the same cycle, and an f16 read holds the port 2 cycles);
- an MXM ``mm`` on its plane, for the plane's occupancy (4 cycles for f16), while the plane's
  queue issues ``lw``/``iw``/``acc`` on the queue's own track;
- a C2C ``send``/``deskew`` on its link (busy while the vector serializes), a ``recv`` on the
  link's receiving side — the links of one C2C slice work side by side;
- anything else on its queue's track, one cycle.

Chrome and Perfetto need the complete events of one track to nest or be disjoint. A program
without hazards never overlaps two issues on one of these resources; one with hazards (an
``--no-strict`` run) may, and an issue that would overlap the track's last one without nesting
goes to another track of the same resource (``MEM_W3 read (2)``), so every trace is valid.

Which track an issue takes comes from the semantics registry (``Semantics.port``/``link``),
not from mnemonics. The machine is read through ``_issues`` and a few lookups only
(``word_loc``, ``inst_text``, ``stream_occupancy``), so its core can change underneath.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from lpu.sim.semantics import SEMANTICS

#: the order of a queue's tracks: its own, then its resources'
_RANK = {None: 0, "read": 1, "write": 2, "plane": 3, "send": 4, "hold": 4, "recv": 5}
_SUFFIX = {None: "", "read": " read", "write": " write", "plane": " plane"}


@dataclass(frozen=True, slots=True)
class Issued:
    """Issues the machine executed: one instruction word's ``count`` repetitions from ``issue``,
    ``period`` apart."""

    chip: int
    queue: int
    word: int
    spec: object  # InstrSpec
    dtype: str | None
    fields: tuple
    issue: int
    period: int
    count: int


def _issues(m) -> list[Issued]:
    """What the trace needs from a finished run: every group of issues with how many of its
    repetitions executed (a strict run stops early). The one place that reads the machine's
    schedule records (``Machine.groups``, ``Machine.executed``)."""
    executed = m.executed
    out = []
    for g in m.groups:
        n = executed.get(g.id, 0)
        if n:
            out.append(Issued(g.chip, g.queue, g.word, g.spec, g.dtype, g.fields, g.issue, g.period, n))
    return out


def _resource(spec, fields) -> tuple[str | None, int]:
    """(resource kind, link) an issue holds: a port, the plane, a link's side, or its queue."""
    sem = SEMANTICS.get(spec.mnemonic)
    if sem is None:
        return None, -1
    if sem.link is not None:
        names = [o.name for o in spec.operands]
        return sem.link, fields[names.index("link")] if "link" in names else -1
    return sem.port, -1


def _track_name(queue: str, kind: str | None, link: int) -> str:
    if kind in ("send", "hold"):
        return f"{queue} L{link}"
    if kind == "recv":
        return f"{queue} L{link} recv"
    return queue + _SUFFIX.get(kind, f" {kind}")


def _op_names(m) -> list[dict[tuple[str, int, int], str]]:
    """Per chip, (file, line, column) -> the source op there (the image's ``.lpu.ops``)."""
    out = []
    for chip in m.image.chips:
        files = chip.files
        out.append({(files[f], line, col): name for (f, line, col), name in getattr(chip, "op_names", {}).items()
                    if f < len(files)})
    return out


def trace(m) -> str:
    """Chrome trace event JSON of a finished run: 1 us of trace time is one machine cycle."""
    names = _op_names(m)
    # (chip, queue, rank, link) -> events (start, end, name, args); one slice per repetition
    tracks: dict[tuple[int, int, int, int], list] = {}
    kinds: dict[tuple[int, int, int, int], str | None] = {}
    for it in _issues(m):
        cfg = m.cfgs[it.chip]
        dur = max(1, it.spec.occupancy_for(cfg, it.dtype))
        kind, link = _resource(it.spec, it.fields)
        key = (it.chip, it.queue, _RANK.get(kind, len(_RANK)), link)
        kinds[key] = kind
        text = m.inst_text(it.chip, it.queue, it.word)
        args = {"instruction": text}
        loc = m.word_loc(it.chip, it.queue, it.word)
        cat = None
        if loc is not None:
            args["loc"] = str(loc)
            cat = names[it.chip].get((loc.file, loc.line, loc.col))
            if cat is not None:
                args["op"] = cat
        events = tracks.setdefault(key, [])
        for k in range(it.count):
            t = it.issue + k * it.period
            events.append((t, t + dur, text, cat, dict(args, repetition=k)))
    ev: list[dict] = []
    for ci, name in enumerate(m.chip_names):
        ev.append({"name": "process_name", "ph": "M", "pid": ci, "args": {"name": f"chip {name}"}})
        ev.append({"name": "process_sort_index", "ph": "M", "pid": ci, "args": {"sort_index": ci}})
    slices: list[dict] = []
    tids: dict[int, int] = {}  # chip -> next thread id
    for key in sorted(tracks):
        chip, queue, _, link = key
        base = _track_name(m.cfgs[chip].queues[queue].name, kinds[key], link)
        for lane, events in enumerate(_lanes(tracks[key])):
            tid = tids.get(chip, 0)
            tids[chip] = tid + 1
            ev.append({"name": "thread_name", "ph": "M", "pid": chip, "tid": tid,
                       "args": {"name": base if lane == 0 else f"{base} ({lane + 1})"}})
            ev.append({"name": "thread_sort_index", "ph": "M", "pid": chip, "tid": tid, "args": {"sort_index": tid}})
            for start, end, text, cat, args in events:
                e = {"name": text, "ph": "X", "pid": chip, "tid": tid, "ts": start, "dur": end - start, "args": args}
                if cat is not None:
                    e["cat"] = cat
                slices.append(e)
    ev += slices
    for ci, series in m.stream_occupancy().items():
        for c, e, w in series:
            ev.append({"name": "streams in flight", "ph": "C", "pid": ci, "ts": c, "args": {"east": e, "west": w}})
    return json.dumps({"traceEvents": ev, "displayTimeUnit": "ns",
                       "otherData": {"time": "1 us of trace time = 1 machine cycle"}}, separators=(",", ":"))


def _lanes(events: list) -> list[list]:
    """The events of one resource cut into tracks on which they never overlap: each goes to the
    first track whose last event has ended (a hazard-free program needs one)."""
    ends: list[int] = []
    lanes: list[list] = []
    for e in sorted(events, key=lambda e: (e[0], e[1])):
        for i, end in enumerate(ends):
            if end <= e[0]:
                break
        else:
            i = len(ends)
            ends.append(0)
            lanes.append([])
        ends[i] = e[1]
        lanes[i].append(e)
    return lanes
