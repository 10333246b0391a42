"""What a run reports: cycles, time at the clock, busy fractions, MXM utilization, bytes moved,
and the series of stream values in flight (the trace's counter; the trace itself: ``trace.py``)."""

from __future__ import annotations

import numpy as np

from lpu.arch.config import load_config
from lpu.arch.isa import UNIT_KINDS


def stats(m) -> dict:
    cycles = max(1, m.cycles)
    mhz = (m.cfgs[0] if m.cfgs else load_config())["clock.mhz"]
    units: dict[str, dict] = {}
    per_queue = []
    for (ci, qi), busy in sorted(m.busy.items()):
        q = m.cfgs[ci].queues[qi]
        frac = min(1.0, busy / cycles)
        per_queue.append({"chip": m.chip_names[ci], "unit": q.name, "busy": round(frac, 6)})
        u = units.setdefault(q.kind, {"queues": 0, "busy_sum": 0.0, "busy_max": 0.0})
        u["queues"] += 1
        u["busy_sum"] += frac
        u["busy_max"] = max(u["busy_max"], frac)
    planes_total = sum(sum(1 for q in c.queues if q.kind == "mxm") for c in m.cfgs)
    mm_cycles = sum(p.mm_cycles for p in m.planes.values())
    return {
        "cycles": m.cycles,
        "clock_mhz": mhz,
        "time_us": round(m.cycles / mhz, 6),
        "instructions": m.instructions,
        "chips": len(m.cfgs),
        "busy": {k: {"queues": u["queues"], "mean": round(u["busy_sum"] / u["queues"], 6),
                     "max": round(u["busy_max"], 6)} for k, u in sorted(units.items(), key=lambda x: UNIT_KINDS.index(x[0]))},
        "mxm": {"planes_used": len(m.planes), "planes": planes_total, "mm_cycles": mm_cycles,
                "utilization_used": round(mm_cycles / (cycles * max(1, len(m.planes))), 6),
                "utilization_all": round(mm_cycles / (cycles * max(1, planes_total)), 6)},
        "sram_bytes": {"read": sum(s.bytes_read for s in m.sram.values()),
                       "written": sum(s.bytes_written for s in m.sram.values())},
        "c2c_bytes": sum(m.c2c_bytes.values()),
        "hazards": len(m.hazards),
        "queues": per_queue,
    }


def stats_text(s: dict) -> str:
    out = [f"cycles: {s['cycles']:,} ({s['time_us']:.3f} us at {s['clock_mhz']} MHz)",
           f"instructions: {s['instructions']:,} on {s['chips']} chip{'s' if s['chips'] != 1 else ''}"]
    for k, u in s["busy"].items():
        out.append(f"busy {k}: {u['mean'] * 100:.1f}% mean, {u['max'] * 100:.1f}% max over {u['queues']} "
                   f"queue{'s' if u['queues'] != 1 else ''}")
    x = s["mxm"]
    out.append(f"mxm utilization: {x['utilization_used'] * 100:.1f}% of {x['planes_used']} plane"
               f"{'s' if x['planes_used'] != 1 else ''} used, {x['utilization_all'] * 100:.1f}% of all {x['planes']}")
    out.append(f"sram bytes: {s['sram_bytes']['read']:,} read, {s['sram_bytes']['written']:,} written")
    out.append(f"c2c bytes: {s['c2c_bytes']:,} sent")
    out.append(f"hazards: {s['hazards']}")
    return "\n".join(out) + "\n"


def occupancy_series(intervals: list[tuple[np.ndarray, np.ndarray, bool]], end: int) -> list[tuple[int, int, int]]:
    """(cycle, east, west) at every cycle the count of live stream values changes."""
    n = end + 2
    deltas = {False: np.zeros(n, np.int64), True: np.zeros(n, np.int64)}
    for start, stop, west in intervals:
        np.add.at(deltas[west], np.clip(start, 0, n - 1), 1)
        np.add.at(deltas[west], np.clip(stop + 1, 0, n - 1), -1)
    e, w = np.cumsum(deltas[False]), np.cumsum(deltas[True])
    change = np.nonzero(np.diff(np.concatenate([[-1], e])) | np.diff(np.concatenate([[-1], w])))[0]
    return [(int(c), int(e[c]), int(w[c])) for c in change]
