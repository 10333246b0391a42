"""lpu-sim --trace: every example's trace is a valid Chrome trace (schema, complete events nested
or disjoint per track, every track named), overlapping work lies on tracks of its own (ports,
planes, links), and compiled programs' slices name the df op and location they came from."""

from __future__ import annotations

import glob
import json
import os

import pytest
from hypothesis import given, settings, strategies as st

from lpu.dsl.codegen import source_op_names
from lpu.linker.link import link_objects
from lpu.linker.system import load_system
from lpu.sim.cli import main as sim_main, simulate
from lpu.sim.trace import _lanes, trace
from compiled_examples import COMPILED, ROOT, compiled, kernel_lines, rel
from test_sim import EX, obj_of, run_text
from trace_format import TraceError, slices, track_names, validate

ASM = sorted(glob.glob(os.path.join(EX, "*.lpu")) + [d for d in glob.glob(os.path.join(EX, "*"))
                                                      if os.path.isfile(os.path.join(d, "system.toml"))])


def asm_image(path: str):
    """An assembly example linked: a file alone, or a directory's objects on its system."""
    if path.endswith(".lpu"):
        return link_objects([(os.path.splitext(os.path.basename(path))[0], obj_of(path))])
    objs = [(os.path.splitext(os.path.basename(f))[0], obj_of(f)) for f in sorted(glob.glob(os.path.join(path, "*.lpu")))]
    return link_objects(objs, load_system(os.path.join(path, "system.toml")))


def _run(img):
    r = simulate(img)
    assert r.hazards == []
    return r, validate(trace(r.machine))


@pytest.mark.parametrize("path", ASM, ids=rel)
def test_assembly_example_trace_is_valid(path):
    r, doc = _run(asm_image(path))
    xs = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert len(xs) == r.stats["instructions"]  # one slice per executed issue
    assert all("loc" in e["args"] and "op" not in e["args"] and "cat" not in e for e in xs)  # no df ops here


@pytest.mark.parametrize("path", COMPILED, ids=rel)
def test_compiled_example_trace_is_valid_and_names_its_df_ops(path):
    _, module, img = compiled(path)
    r, doc = _run(img)
    names = source_op_names(module)
    xs = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert len(xs) == r.stats["instructions"]
    in_kernels = kernel_lines(module)
    for e in xs:
        file, line, col = e["args"]["loc"].rsplit(":", 2)
        where = (file, int(line), int(col))
        if where in names:  # an instruction of a df op: the op's name, as the argument and the category
            assert e["args"]["op"] == e["cat"] == names[where], e
        else:  # a called assembly kernel's instruction, at its own line
            assert file == path and int(line) in in_kernels and "op" not in e["args"], e


def test_softmax_trace_times_the_softmax():
    """Every slice of the compiled softmax is the df.softmax's (examples/softmax.lpu:6:8); a
    write and a read of one slice that overlap lie on its write and read ports."""
    path = os.path.join(ROOT, "examples", "softmax.lpu")
    _, _, img = compiled(path)
    _, doc = _run(img)
    xs = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert {(e["cat"], e["args"]["loc"]) for e in xs} == {("df.softmax", f"{path}:6:8")}
    s = slices(doc)
    assert ("MEM_W2 write", "write.f16 [@sram_mem_w2], s0w", 259, 261) in s
    assert ("MEM_W2 read", "read.f16 [@in_x_mem_w2], s0e", 260, 262) in s


def test_allgather_sends_on_their_links():
    """chip0 of the allgather sends on L1 in [5, 15) and on L2 in [6, 16) from one C2C slice:
    one track per link (they overlapped on the C2C_W track without nesting)."""
    _, doc = _run(asm_image(os.path.join(EX, "allgather")))
    chip0 = [(t, n, a, b) for (t, n, a, b), e in zip(slices(doc), [e for e in doc["traceEvents"] if e["ph"] == "X"])
             if e["pid"] == 0]
    assert ("C2C_W L1", "send.i8 s0w, L1", 5, 15) in chip0
    assert ("C2C_W L2", "send.i8 s0w, L2", 6, 16) in chip0
    assert any(t == "C2C_W L1 recv" and n.startswith("recv.i8 L1") for t, n, _, _ in chip0)


def test_f16_mm_holds_its_plane_while_the_queue_issues():
    """An f16 mm holds the plane 4 cycles; the plane's queue issues lw, iw and acc meanwhile,
    on the queue's own track (the GEMM's weights stream in during the previous block)."""
    _, _, img = compiled(os.path.join(ROOT, "examples", "gemm_f16.lpu"))
    _, doc = _run(img)
    s = slices(doc)
    mms = [(t, a, b) for t, n, a, b in s if n.startswith("mm.f16")]
    assert mms and all(t.endswith(" plane") and b - a == 4 for t, a, b in mms)
    plane, a, b = mms[-1]
    queue = plane.removesuffix(" plane")
    inside = [n for t, n, x, _ in s if t == queue and a < x < b]
    assert inside and all(n.split(".")[0] in ("lw", "iw", "acc") for n in inside)


def test_hazardous_run_still_writes_a_valid_trace(tmp_path, monkeypatch):
    """Two i32 reads overlapping on a read port (a hazard, --no-strict): the second goes to a
    second track of that port."""
    res = run_text(tmp_path, """target "lpu-v1"
reserve @a : tensor<320xi32> in MEM_W0
kernel @k {
  @0 MEM_W0 read.i32 [@a], s0e
  @2 MEM_W0 read.i32 [@a], s4e
}
""", strict=False, monkeypatch=monkeypatch)
    assert [h.kind for h in res.hazards] == ["MEM port conflict"]
    doc = validate(trace(res.machine))
    assert sorted(slices(doc)) == [("MEM_W0 read", "read.i32 [@a], s0e", 0, 4),
                                   ("MEM_W0 read (2)", "read.i32 [@a], s4e", 2, 6)]


def test_lpu_sim_writes_the_trace(tmp_path, capsys):
    path = os.path.join(ROOT, "examples", "kernel_call.lpu")
    lpx = tmp_path / "k.lpx"
    from lpu.linker.imagefile import write_image

    lpx.write_bytes(write_image(compiled(path)[2]))
    out = tmp_path / "k.json"
    assert sim_main([str(lpx), "--stats", "none", "--trace", str(out)]) == 0
    doc = validate(out.read_text())
    cycles: dict = {}
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            cycles[e.get("cat")] = cycles.get(e.get("cat"), 0) + e["dur"]
    assert cycles == {"df.max": 9, "df.relu": 8, None: 8, "df.call": 6}  # docs/simulator.md; None: the kernel's
    assert {"process_name", "thread_name"} <= {e["name"] for e in doc["traceEvents"] if e["ph"] == "M"}


# --- the validator and the track assignment ------------------------------------------------------
def _doc(events):
    meta = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": "chip chip0"}},
            {"name": "thread_name", "ph": "M", "pid": 0, "tid": 0, "args": {"name": "C2C_W"}}]
    return json.dumps({"traceEvents": meta + events})


def _x(name, ts, dur, tid=0):
    return {"name": name, "ph": "X", "pid": 0, "tid": tid, "ts": ts, "dur": dur}


def test_validator_rejects_what_viewers_reject():
    # the issue's allgather trace: two sends on one track, overlapping without nesting
    with pytest.raises(TraceError, match=r"'send.i8 s0w, L2' \[6, 16\) overlaps 'send.i8 s0w, L1' \[5, 15\)"):
        validate(_doc([_x("send.i8 s0w, L1", 5, 10), _x("send.i8 s0w, L2", 6, 10)]))
    validate(_doc([_x("outer", 5, 10), _x("inner", 6, 4), _x("same", 6, 4), _x("after", 15, 1)]))  # nested
    with pytest.raises(TraceError, match=r"track \(0, 1\) of 'x' has no thread_name"):
        validate(_doc([_x("x", 0, 1, tid=1)]))
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        validate(_doc([{"name": "x", "ph": "X", "pid": 0, "tid": 0, "ts": 0}]))  # no dur
    with pytest.raises(jsonschema.ValidationError):
        validate(_doc([{"name": "streams in flight", "ph": "C", "pid": 0, "ts": 0, "args": {"east": "1"}}]))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 12)), max_size=40))
def test_lanes_never_overlap_and_are_as_few_as_the_deepest_overlap(spans):
    events = [(s, s + d, "", None, {}) for s, d in spans]
    lanes = _lanes(events)
    assert sorted(e[:2] for lane in lanes for e in lane) == sorted(e[:2] for e in events)
    for lane in lanes:
        assert all(a[1] <= b[0] for a, b in zip(lane, lane[1:]))
    depth = max((sum(1 for s, e, *_ in events if s <= t < e) for t in range(80)), default=0)
    assert len(lanes) == depth


def test_two_runs_write_the_same_trace():
    _, _, img = compiled(os.path.join(ROOT, "examples", "multichip", "pipeline_2chips.lpu"))
    a, b = simulate(img), simulate(img)
    ta = trace(a.machine)
    assert ta == trace(b.machine)
    assert set(track_names(json.loads(ta)).values()) >= {"C2C_E L8", "C2C_W L0 recv"}
