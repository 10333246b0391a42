"""lpu-sim on many chips: the multi-chip examples against numpy on the two-chips and node
(8-chip) topologies, both directions of a link at once, and determinism of whole multi-chip
runs (outputs, stats and trace byte for byte)."""

from __future__ import annotations

import json
import os

import numpy as np

from lpu.linker.link import link_objects
from lpu.linker.system import load_system
from lpu.sim.cli import simulate
from lpu.sim.trace import trace
from test_sim import EX, _ring, obj_of


def _example(name: str, objects: list[str]):
    d = os.path.join(EX, name)
    objs = [(n, obj_of(os.path.join(d, f"{n}.lpu"))) for n in objects]
    return link_objects(objs, load_system(os.path.join(d, "system.toml")))


def test_pipeline_example_on_two_chips():
    """examples/asm/pipeline: chip0 sends a + b east, chip1 stores relu(a + b + c) (i8 wrapping)."""
    img = _example("pipeline", ["producer", "consumer"])
    res = simulate(img, outputs=["y"])
    a, b, c = (np.load(os.path.join(EX, "pipeline", f"{n}.npy")) for n in "abc")
    s = (a.astype(np.int8) + b + c).astype(np.int8)
    assert res.hazards == [] and np.array_equal(res.outputs["y"], np.maximum(s, 0))
    assert [c.name for c in img.chips] == ["chip0", "chip1"] and res.stats["chips"] == 2
    assert res.machine.cycles == 318 and res.stats["c2c_bytes"] == 320


def test_allgather_example_on_eight_chips():
    """examples/asm/allgather: every chip of the node ends with all 8 vectors, row j from chip j."""
    img = _example("allgather", [f"chip{i}" for i in range(8)])
    res = simulate(img, outputs=[f"chip{i}:all" for i in range(8)])
    assert res.hazards == []
    want = np.stack([np.load(os.path.join(EX, "allgather", f"v{j}.npy")) for j in range(8)])
    for i in range(8):
        assert np.array_equal(res.outputs[f"chip{i}:all"], want), i
    assert res.stats["chips"] == 8 and res.stats["c2c_bytes"] == 8 * 7 * 320


def test_both_directions_of_a_link_at_once(tmp_path):
    """On two-chips, chip0's L8 and chip1's L0 are one cable: each end sends to the other in the
    same cycles, i16 vectors (2 streams, 640 bytes: 20 cycles on the link)."""
    va = np.arange(320, dtype=np.int16) * 3
    vb = -np.arange(320, dtype=np.int16)
    np.save(tmp_path / "va.npy", va)
    np.save(tmp_path / "vb.npy", vb)
    # chip0: MEM_E43 (91) -> C2C_E (94) in 2 + 3 = 5; lands at 5 + 20 + 200 = 225
    (tmp_path / "chip0.lpu").write_text("""target "lpu-v1"
data @v : tensor<320xi16> in MEM_E43 = load("va.npy")
reserve @got : tensor<320xi16> in MEM_E42
kernel @k {
  @0 MEM_E43 read.i16 [@v], s0e
  @5 C2C_E send.i16 s0e, @chip1
  @225 C2C_E recv.i16 @chip1, s2w
  @231 MEM_E42 write.i16 [@got], s2w
}
""")
    # chip1: MEM_W43 (3) -> C2C_W (0) in 2 + 3 = 5, the same cycles the other way
    (tmp_path / "chip1.lpu").write_text("""target "lpu-v1"
data @v : tensor<320xi16> in MEM_W43 = load("vb.npy")
reserve @got : tensor<320xi16> in MEM_W42
kernel @k {
  @0 MEM_W43 read.i16 [@v], s0w
  @5 C2C_W send.i16 s0w, @chip0
  @225 C2C_W recv.i16 @chip0, s2e
  @231 MEM_W42 write.i16 [@got], s2e
}
""")
    (tmp_path / "sys.toml").write_text('topology = "two-chips"\n[chips.chip0]\nobjects = ["chip0"]\n'
                                       '[chips.chip1]\nobjects = ["chip1"]\n')
    objs = [(n, obj_of(str(tmp_path / f"{n}.lpu"))) for n in ("chip0", "chip1")]
    img = link_objects(objs, load_system(str(tmp_path / "sys.toml")))
    res = simulate(img, outputs=["chip0:got", "chip1:got"])
    assert res.hazards == []
    assert np.array_equal(res.outputs["chip0:got"], vb) and np.array_equal(res.outputs["chip1:got"], va)
    assert res.stats["c2c_bytes"] == 2 * 640 and res.machine.cycles == 233


def test_multichip_runs_are_identical(tmp_path):
    """Two runs of the 8-chip ring and of the allgather: the same outputs, stats and trace."""
    for img, outs in ((_ring(tmp_path), [f"chip{i}:got" for i in range(8)]),
                      (_example("allgather", [f"chip{i}" for i in range(8)]), [f"chip{i}:all" for i in range(8)])):
        a, b = simulate(img, outputs=outs), simulate(img, outputs=outs)
        assert all(a.outputs[o].tobytes() == b.outputs[o].tobytes() for o in outs)
        assert json.dumps(a.stats) == json.dumps(b.stats)
        ta, tb = trace(a.machine), trace(b.machine)
        assert ta == tb
        events = json.loads(ta)["traceEvents"]
        chips = {e["args"]["name"] for e in events if e.get("name") == "process_name"}
        assert chips == {f"chip chip{i}" for i in range(8)}
        # one slice per issued instruction, on every chip
        assert sum(e["ph"] == "X" for e in events) == a.stats["instructions"]
