"""Validate a Chrome trace event file the way a viewer reads it, and print it compactly."""
import json
import sys

doc = json.load(open(sys.argv[1]))
events = doc["traceEvents"]
assert isinstance(events, list)
procs = {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
for e in events:
    assert e["ph"] in ("M", "X", "C"), e
    assert isinstance(e["pid"], int) and e["pid"] in procs, e
    if e["ph"] == "X":
        assert (e["pid"], e["tid"]) in threads and isinstance(e["ts"], int) and e["dur"] >= 1, e
    if e["ph"] == "C":
        assert isinstance(e["ts"], int) and all(isinstance(v, int) for v in e["args"].values()), e
print("processes:", " ".join(procs[p] for p in sorted(procs)))
print("tracks:", ", ".join(sorted(threads.values())))
for e in events:
    if e["ph"] == "X":
        print(f"slice {threads[(e['pid'], e['tid'])]} ts={e['ts']} dur={e['dur']} {e['name']}")
for e in events:
    if e["ph"] == "C":
        print(f"counter ts={e['ts']} east={e['args']['east']} west={e['args']['west']}")
