"""lpu.sim.runtime: an image loaded once and run step after step, SRAM kept between runs —
persistence (examples/asm/accumulate.lpu over several runs), the same results as fresh lpu-sim
runs from the same SRAM contents, two chips, determinism, and the docs/simulator.md example."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest

from lpu.asm.cli import main as as_main
from lpu.linker.cli import main as ld_main
from lpu.linker.imagefile import write_image
from lpu.linker.link import link_objects
from lpu.linker.system import load_system
from lpu.sim.cli import main as sim_main, simulate
from lpu.sim.runtime import Runtime
from test_sim import EX, ROOT, obj_of
from test_sim_plan import compiled

ACCUMULATE = os.path.join(EX, "accumulate.lpu")


def accumulate_image():
    return link_objects([("accumulate", obj_of(ACCUMULATE))])


@pytest.mark.parametrize("engine", ["plan", "reference"])
def test_sram_persists_from_run_to_run(engine):
    rt = Runtime(accumulate_image(), engine=engine)
    x = (np.arange(320, dtype=np.int32) - 100) * 7
    rt.write("x", x)
    for n in range(1, 5):
        step = rt.run()
        assert step.ok and step.cycles == 16 and step.instructions == 7
        assert step.engine == engine
        assert np.array_equal(rt.read("total"), n * x) and np.array_equal(rt.read("runs"), np.full(320, n))
    rt.write("x", np.ones(320, np.int32))  # the host's write is there for the next run, and stays
    rt.run()
    rt.run()
    assert np.array_equal(rt.read("total"), 4 * x + 2) and np.array_equal(rt.read("runs"), np.full(320, 6))


def test_a_run_neither_reloads_the_image_nor_rebuilds_the_plan(monkeypatch):
    rt = Runtime(accumulate_image())
    plan = rt.machine.execution_plan()
    monkeypatch.setattr(rt.machine, "load_image_sram", lambda: pytest.fail("the image was loaded again"))
    monkeypatch.setattr("lpu.sim.plan.build", lambda m: pytest.fail("the plan was built again"))
    for _ in range(3):
        assert rt.run().engine == "plan"
    assert rt.machine.execution_plan() is plan and rt.steps == 3


def test_a_step_is_a_fresh_lpu_sim_run_from_the_same_sram(tmp_path):
    """After some runs, lpu-sim on the image with the runtime's SRAM contents as --input gives
    what the runtime's next run gives: cycles, outputs, stats."""
    image = accumulate_image()
    (tmp_path / "acc.lpx").write_bytes(write_image(image))
    rt = Runtime.load(str(tmp_path / "acc.lpx"))
    rng = np.random.default_rng(0)
    for _ in range(3):
        rt.write("x", rng.integers(-2**31, 2**31, 320, dtype=np.int32))  # wraps as it accumulates
        rt.run()
    args = []
    for sym in ("total", "x", "runs"):
        np.save(tmp_path / f"{sym}.npy", rt.read(sym))
        args += ["--input", f"{sym}={tmp_path / sym}.npy", "--output", f"{sym}={tmp_path / sym}.out.npy"]
    assert sim_main([str(tmp_path / "acc.lpx"), "--stats", "none"] + args) == 0
    step = rt.run()
    fresh = simulate(image, inputs={s: np.load(tmp_path / f"{s}.npy") for s in ("total", "x", "runs")},
                     outputs=["total", "runs"])
    assert step.cycles == fresh.machine.cycles == 16
    for sym in ("total", "runs"):
        assert rt.read(sym).tobytes() == np.load(tmp_path / f"{sym}.out.npy").tobytes() == fresh.outputs[sym].tobytes()


def test_a_compiled_program_run_after_run_matches_fresh_runs():
    """The decoder layer, step after step with new inputs each time: each step's outputs and
    cycles are a fresh simulation's (the program's temporaries in SRAM are written before they
    are read, so what the last run left there does not matter)."""
    image, inputs, outputs = compiled(os.path.join(ROOT, "examples", "decoder.lpu"))
    rt = Runtime(image)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        step_inputs = {k: (v + rng.normal(0, 0.1, v.shape)).astype(v.dtype) if v.dtype.kind == "f" else v
                       for k, v in inputs.items()}
        for k, v in step_inputs.items():
            rt.write(k, v)
        step = rt.run()
        fresh = simulate(image, inputs=step_inputs, outputs=outputs)
        assert step.ok and step.engine == "plan" and step.cycles == fresh.machine.cycles
        for s in outputs:
            assert rt.read(s).tobytes() == fresh.outputs[s].tobytes()


def two_chip_accumulator(tmp_path):
    """examples/asm/pipeline with a consumer that also keeps a running sum of y on chip1."""
    d = os.path.join(EX, "pipeline")
    for f in ("producer.lpu", "system.toml", "a.npy", "b.npy", "c.npy"):
        shutil.copy(os.path.join(d, f), tmp_path / f)
    consumer = open(os.path.join(d, "consumer.lpu")).read()
    consumer = consumer.replace("global reserve @y : tensor<320xi8> in MEM_E1",
                                "global reserve @y : tensor<320xi8> in MEM_E1\n"
                                "global reserve @sum : tensor<320xi8> in MEM_E2")
    # y is on s3e at the VXM (47) in 315; @sum, read at 310 from MEM_E2 (50), passes 47 in 315
    consumer = consumer.replace("  @317 MEM_E1 write.i8 [@y], s3e",
                                "  @317 MEM_E1 write.i8 [@y], s3e\n"
                                "  @310 MEM_E2 read.i8 [@sum], s4w\n"
                                "  @315 VXM.2 add.i8 s3e, s4w, s5e\n"
                                "  @320 MEM_E2 write.i8 [@sum], s5e")
    (tmp_path / "consumer.lpu").write_text(consumer)
    objs = [(n, obj_of(str(tmp_path / f"{n}.lpu"))) for n in ("producer", "consumer")]
    return link_objects(objs, load_system(str(tmp_path / "system.toml")))


def test_two_chips_step_after_step(tmp_path):
    rt = Runtime(two_chip_accumulator(tmp_path))
    assert "chip1:sum" in rt.symbols and "chip0:a" in rt.symbols
    rng = np.random.default_rng(4)
    total = np.zeros(320, np.int8)
    c = np.load(tmp_path / "c.npy")
    for _ in range(4):
        a, b = (rng.integers(-128, 128, 320, dtype=np.int8) for _ in range(2))
        rt.write("chip0:a", a)
        rt.write("b", b)  # one chip has it: no chip name needed
        step = rt.run()
        y = np.maximum((a + b + c).astype(np.int8), 0)
        total = (total + y).astype(np.int8)
        assert step.ok and step.engine == "plan" and len(rt.machine.cfgs) == 2
        assert np.array_equal(rt.read("chip1:y"), y) and np.array_equal(rt.read("chip1:sum"), total)


def test_runs_are_deterministic(tmp_path):
    image = two_chip_accumulator(tmp_path)
    seen = []
    for _ in range(2):
        rt = Runtime(image)
        trail = []
        for k in range(3):
            rt.write("chip0:a", np.full(320, k - 1, np.int8))
            step = rt.run()
            trail.append((step.cycles, rt.read("chip1:y").tobytes(), rt.read("chip1:sum").tobytes()))
        seen.append(trail)
    assert seen[0] == seen[1]


def test_a_hazard_in_a_run_is_reported_and_the_next_run_goes_on(tmp_path):
    # the index of a gather from SRAM the host writes: out of range in one run, not the next
    from test_sim_instructions import GATHER

    idx = np.zeros(320, np.int32)
    np.save(tmp_path / "table.npy", np.arange(8 * 320).reshape(8, 320).astype(np.int8))
    np.save(tmp_path / "idx.npy", idx)
    (tmp_path / "t.lpu").write_text(GATHER)
    rt = Runtime(link_objects([("t", obj_of(str(tmp_path / "t.lpu")))]))
    table = np.arange(8 * 320).reshape(8, 320).astype(np.int8)
    for i, want in ((3, "plan"), (9000, "reference"), (5, "plan")):
        idx[0] = i
        rt.write("idx", idx)
        step = rt.run()
        assert step.engine == want
        if i < 8:
            assert step.ok and np.array_equal(rt.read("out"), table[i + 1])
        else:
            assert [h.kind for h in step.hazards] == ["address out of range"]
            (d,) = rt.diagnostics(step)
            assert d.message == ("address out of range (words 9001..9001 of a 8192-word slice) on chip chip0, "
                                 "cycle 3, MEM_W0: gather.i8 [@table + 1], s0e, s8e")
            assert d.loc.line == 7


def test_the_documented_example_runs(tmp_path, monkeypatch):
    doc = open(os.path.join(ROOT, "docs", "simulator.md")).read()
    section = doc[doc.index("## Running an image step after step"):]
    sh = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    py = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(ROOT)
    tools = {"lpu-as": as_main, "lpu-ld": ld_main}
    for line in sh.strip().splitlines():
        argv = line.split("#")[0].split()
        argv = [str(tmp_path / a) if a.endswith((".o", ".lpx")) else a for a in argv]
        assert tools[argv[0]](argv[1:]) == 0
    exec(compile(py.replace('"accumulate.lpx"', repr(str(tmp_path / "accumulate.lpx"))), "simulator.md", "exec"), {})
