"""A validator of Chrome trace event files, the rules ui.perfetto.dev and chrome://tracing read
them by (the "Trace Event Format" document): the JSON object form, the events the simulator
writes (complete ``X``, counter ``C``, metadata ``M``), complete events on one track properly
nested or disjoint, and every track and process named by a metadata event."""

from __future__ import annotations

import json

import jsonschema

_NUMBER = {"type": "number", "minimum": 0}
_ID = {"type": "integer", "minimum": 0}

#: the JSON Object Format with the three phases lpu-sim writes
SCHEMA = {
    "type": "object",
    "required": ["traceEvents"],
    "properties": {
        "traceEvents": {"type": "array", "items": {"$ref": "#/$defs/event"}},
        "displayTimeUnit": {"enum": ["ms", "ns"]},
        "otherData": {"type": "object"},
    },
    "$defs": {
        "event": {
            "type": "object",
            "required": ["name", "ph", "pid"],
            "properties": {"name": {"type": "string"}, "ph": {"enum": ["X", "C", "M"]}, "pid": _ID,
                           "tid": _ID, "ts": _NUMBER, "cat": {"type": "string", "minLength": 1},
                           "args": {"type": "object"}},
            "allOf": [
                {"if": {"properties": {"ph": {"const": "X"}}},
                 "then": {"required": ["tid", "ts", "dur"], "properties": {"dur": _NUMBER}}},
                {"if": {"properties": {"ph": {"const": "C"}}},
                 "then": {"required": ["ts", "args"],
                          "properties": {"args": {"type": "object", "minProperties": 1,
                                                  "additionalProperties": {"type": "number"}}}}},
                {"if": {"properties": {"ph": {"const": "M"}}},
                 "then": {"required": ["args"], "oneOf": [
                     {"properties": {"name": {"const": "process_name"},
                                     "args": {"required": ["name"], "properties": {"name": {"type": "string"}}}}},
                     {"required": ["tid"],
                      "properties": {"name": {"const": "thread_name"},
                                     "args": {"required": ["name"], "properties": {"name": {"type": "string"}}}}},
                     {"properties": {"name": {"const": "process_sort_index"},
                                     "args": {"required": ["sort_index"],
                                              "properties": {"sort_index": {"type": "integer"}}}}},
                     {"required": ["tid"],
                      "properties": {"name": {"const": "thread_sort_index"},
                                     "args": {"required": ["sort_index"],
                                              "properties": {"sort_index": {"type": "integer"}}}}},
                 ]}},
            ],
        },
    },
}


class TraceError(AssertionError):
    pass


def check_nesting(events: list[dict]) -> None:
    """Complete events of one (pid, tid) must nest or be disjoint: sorted by start (longer
    first on a tie), each starts at or after the end of every open event it does not fit in."""
    by_track: dict[tuple[int, int], list[tuple[float, float, str]]] = {}
    for e in events:
        if e["ph"] == "X":
            by_track.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"], e["name"]))
    for track, spans in by_track.items():
        spans.sort(key=lambda s: (s[0], -s[1]))
        open_: list[tuple[float, float, str]] = []
        for start, end, name in spans:
            while open_ and open_[-1][1] <= start:
                open_.pop()
            if open_ and end > open_[-1][1]:
                outer = open_[-1]
                raise TraceError(f"track {track}: '{name}' [{start}, {end}) overlaps '{outer[2]}' "
                                 f"[{outer[0]}, {outer[1]}) without nesting in it")
            open_.append((start, end, name))


def check_names(events: list[dict]) -> None:
    """Every process and every track that holds events is named, once; track names are
    distinct within a process."""
    procs: dict[int, str] = {}
    threads: dict[tuple[int, int], str] = {}
    for e in events:
        if e["ph"] != "M":
            continue
        if e["name"] == "process_name":
            if e["pid"] in procs:
                raise TraceError(f"process {e['pid']} is named twice")
            procs[e["pid"]] = e["args"]["name"]
        elif e["name"] == "thread_name":
            key = (e["pid"], e["tid"])
            if key in threads:
                raise TraceError(f"track {key} is named twice")
            threads[key] = e["args"]["name"]
    for e in events:
        if e["pid"] not in procs:
            raise TraceError(f"process {e['pid']} has no process_name")
        if e["ph"] == "X" and (e["pid"], e["tid"]) not in threads:
            raise TraceError(f"track ({e['pid']}, {e['tid']}) of '{e['name']}' has no thread_name")
    seen: set[tuple[int, str]] = set()
    for (pid, _), name in threads.items():
        if (pid, name) in seen:
            raise TraceError(f"two tracks of process {pid} are named '{name}'")
        seen.add((pid, name))


def validate(text: str) -> dict:
    """The trace document, after checking it; raises ``TraceError`` (or jsonschema's error)."""
    doc = json.loads(text)
    jsonschema.validate(doc, SCHEMA)
    check_names(doc["traceEvents"])
    check_nesting(doc["traceEvents"])
    return doc


def track_names(doc: dict) -> dict[tuple[int, int], str]:
    return {(e["pid"], e["tid"]): e["args"]["name"] for e in doc["traceEvents"]
            if e["ph"] == "M" and e["name"] == "thread_name"}


def slices(doc: dict) -> list[tuple[str, str, int, int]]:
    """(track name, slice name, start, end) of every complete event."""
    names = track_names(doc)
    return [(names[(e["pid"], e["tid"])], e["name"], e["ts"], e["ts"] + e["dur"])
            for e in doc["traceEvents"] if e["ph"] == "X"]
