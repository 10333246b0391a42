"""lpu-sim: examples against numpy, instructions, hazards (exact text, cycle, line), many chips,
determinism, and a property test of VXM programs against numpy."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lpu.asm.timing
from lpu.arch.layout import NUMPY_DTYPES
from lpu.asm.cli import assemble_file
from lpu.asm.objfile import read_object
from lpu.linker.link import link_objects
from lpu.linker.system import load_system
from lpu.sim.cli import main as sim_main, simulate
from lpu.sim.hazards import to_diagnostic
from lpu.sim.trace import trace
from lpu.diagnostics import SourceManager, render

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EX = os.path.join(ROOT, "examples", "asm")


def obj_of(path, monkeypatch=None):
    if monkeypatch is not None:  # hazard tests: programs the assembler's timing check would refuse
        monkeypatch.setattr(lpu.asm.timing, "check_timing", lambda k, cfg: [])
    return read_object(assemble_file(path))


def run_text(tmp_path, text, inputs=None, outputs=(), strict=True, monkeypatch=None, name="t.lpu", npys=None):
    for n, a in (npys or {}).items():
        np.save(tmp_path / n, a)
    p = tmp_path / name
    p.write_text(text)
    img = link_objects([(p.stem, obj_of(str(p), monkeypatch))])
    return simulate(img, str(p), inputs=inputs, outputs=list(outputs), strict=strict)


def first_error(res) -> str:
    return render(to_diagnostic(res.hazards[0], res.machine), SourceManager())


# --- examples --------------------------------------------------------------------------------
def test_copy_example():
    img = link_objects([("copy", obj_of(os.path.join(EX, "copy.lpu")))])
    res = simulate(img, outputs=["dst"])
    assert res.hazards == [] and res.machine.cycles == 91
    assert np.array_equal(res.outputs["dst"], np.load(os.path.join(EX, "copy_src.npy")))


def test_vadd_example_wraps():
    img = link_objects([("vadd", obj_of(os.path.join(EX, "vadd.lpu")))])
    res = simulate(img, outputs=["sum"])
    a, b = np.load(os.path.join(EX, "vadd_a.npy")), np.load(os.path.join(EX, "vadd_b.npy"))
    assert np.array_equal(res.outputs["sum"], (a + b).astype(np.int8))
    assert res.machine.cycles == 8


def test_gemv_example_matches_numpy_and_hand_count():
    img = link_objects([("gemv", obj_of(os.path.join(EX, "gemv.lpu")))])
    res = simulate(img, outputs=["y"])
    x = np.load(os.path.join(EX, "gemv_x.npy")).astype(np.int64)
    w = np.concatenate([np.load(os.path.join(EX, f"gemv_w{j}.npy"))[:, None] for j in range(16)], axis=1)
    w = w.reshape(320, 320).astype(np.int64)  # gemv_wJ holds rows J, J+16, ...
    assert np.array_equal(res.outputs["y"], (x @ w).astype(np.int32))
    assert np.array_equal(res.outputs["y"], np.load(os.path.join(EX, "gemv_y_expected.npy")))
    assert res.machine.cycles == 52  # "The kernel is 52 cycles long" in gemv.lpu
    assert res.stats["mxm"]["mm_cycles"] == 1 and res.stats["instructions"] == 345


def test_input_replaces_symbol_and_checks_type(tmp_path):
    img = link_objects([("copy", obj_of(os.path.join(EX, "copy.lpu")))])
    src = np.arange(320, dtype=np.int8)
    res = simulate(img, inputs={"src": src}, outputs=["dst"])
    assert np.array_equal(res.outputs["dst"], src)
    from lpu.diagnostics import DiagnosticError

    with pytest.raises(DiagnosticError) as e:
        simulate(img, inputs={"src": src.astype(np.int16)})
    assert e.value.diagnostics[0].message == "the input holds i16 elements, but @src is i8"
    with pytest.raises(DiagnosticError) as e:
        simulate(img, outputs=["nope"])
    assert e.value.diagnostics[0].message.startswith("no SRAM symbol 'nope' in <image> (symbols: dst, src)")


# --- one VXM instruction at a time -----------------------------------------------------------
VXM_PROG = """target "lpu-v1"
data @a : tensor<320x{t}> in MEM_W0 = load("a.npy")
data @b : tensor<320x{t}> in MEM_E0 = load("b.npy")
reserve @out : tensor<320x{t2}> in MEM_E1
kernel @k {{
  @0 MEM_W0 read.{t} [@a], s0e
  @0 MEM_E0 read.{t} [@b], s4w
  @3 VXM.0 {op} {args}
  @{w} MEM_E1 write.{t2} [@out], s8e
}}
"""


def _operands(t, rng):
    if t in ("i8", "i16", "i32"):
        info = np.iinfo(NUMPY_DTYPES[t])
        return (rng.integers(info.min, info.max, 320, endpoint=True).astype(NUMPY_DTYPES[t]),
                rng.integers(info.min, info.max, 320, endpoint=True).astype(NUMPY_DTYPES[t]))
    return (rng.normal(0, 3, 320).astype(NUMPY_DTYPES[t]), rng.normal(0, 3, 320).astype(NUMPY_DTYPES[t]))


def _f(fn):
    return lambda a, b, t: fn(a.astype(np.float32), b.astype(np.float32)).astype(NUMPY_DTYPES[t]) \
        if t in ("f16", "bf16", "f32") else fn(a, b).astype(NUMPY_DTYPES[t])


BINARY_REF = {
    "add": _f(np.add), "sub": _f(np.subtract), "mul": _f(np.multiply), "max": _f(np.maximum),
    "min": _f(np.minimum), "and": _f(np.bitwise_and), "or": _f(np.bitwise_or), "xor": _f(np.bitwise_xor),
    "cmp.eq": lambda a, b, t: (a == b).astype(NUMPY_DTYPES[t]),
    "cmp.lt": lambda a, b, t: (a < b).astype(NUMPY_DTYPES[t]),
    "cmp.le": lambda a, b, t: (a <= b).astype(NUMPY_DTYPES[t]),
}


@pytest.mark.parametrize("t", ["i8", "i16", "i32", "f16", "f32"])  # bf16 has no .npy form
@pytest.mark.parametrize("op", list(BINARY_REF))
def test_vxm_binary(tmp_path, op, t):
    if op in ("and", "or", "xor") and t not in ("i8", "i16", "i32"):
        pytest.skip("integer only")
    rng = np.random.default_rng(1)
    a, b = _operands(t, rng)
    b[:40] = a[:40]  # some equal lanes for the comparisons
    text = VXM_PROG.format(t=t, t2=t, op=f"{op}.{t}", args="s0e, s4w, s8e", w=7)
    res = run_text(tmp_path, text, outputs=["out"], npys={"a.npy": a, "b.npy": b})
    assert res.hazards == []
    with np.errstate(all="ignore"):
        assert np.array_equal(res.outputs["out"].view(np.uint8), BINARY_REF[op](a, b, t).view(np.uint8))


def test_vxm_result_cycle_is_latency(tmp_path):
    """A write one cycle early meets nothing: the add's result is on s8e at the VXM in cycle 5."""
    a = np.ones(320, np.int8)
    text = VXM_PROG.format(t="i8", t2="i8", op="add.i8", args="s0e, s4w, s8e", w=6)
    res = run_text(tmp_path, text, npys={"a.npy": a, "b.npy": a}, monkeypatch=pytest.MonkeyPatch())
    assert first_error(res).splitlines()[0] == (
        f"{tmp_path}/t.lpu:9:3: error: empty stream read (no value on s8e at MEM_E1, position 49) on chip "
        "chip0, cycle 6, MEM_E1: write.i8 [@out], s8e")


@pytest.mark.parametrize("op,t,w", [("neg", "i8", 7), ("abs", "i16", 7), ("relu", "f32", 7), ("exp", "f32", 9),
                                     ("tanh", "f16", 9), ("sigmoid", "f16", 9), ("recip", "f32", 9),
                                     ("mov", "i32", 7)])
def test_vxm_unary(tmp_path, op, t, w):
    rng = np.random.default_rng(2)
    a, _ = _operands(t, rng)
    text = VXM_PROG.format(t=t, t2=t, op=f"{op}.{t}", args="s0e, s8e", w=w)
    res = run_text(tmp_path, text, outputs=["out"], npys={"a.npy": a, "b.npy": a})
    nt = NUMPY_DTYPES[t]
    ref = {"neg": lambda x: -x, "abs": np.abs, "relu": lambda x: np.maximum(x, 0), "mov": lambda x: x,
           "exp": lambda x: np.exp(x.astype(np.float64)), "tanh": lambda x: np.tanh(x.astype(np.float64)),
           "sigmoid": lambda x: 1 / (1 + np.exp(-x.astype(np.float64))),
           "recip": lambda x: 1 / x.astype(np.float64)}[op](a)
    assert np.array_equal(res.outputs["out"].view(np.uint8), np.asarray(ref).astype(nt).view(np.uint8))


def test_cvt_requantizes_with_saturation(tmp_path):
    a = np.array([1000, -1000, 24, 40, 8, -24, 100000, 7] * 40, np.int32)
    text = VXM_PROG.format(t="i32", t2="i8", op="cvt.i32.i8", args="s0e, s8e, shift=4", w=7)
    res = run_text(tmp_path, text, outputs=["out"], npys={"a.npy": a, "b.npy": a})
    # 1000/16 = 62.5 -> 62 (even); -62.5 -> -62; 1.5 -> 2; 2.5 -> 2; 0.5 -> 0; -1.5 -> -2; 6250 -> 127
    assert res.outputs["out"][:8].tolist() == [62, -62, 2, 2, 0, -2, 127, 0]


def test_vxm_immediate_operand(tmp_path):
    a = np.arange(320).astype(np.int16)
    text = VXM_PROG.format(t="i16", t2="i16", op="mul.i16", args="s0e, -3, s8e", w=7)
    res = run_text(tmp_path, text, outputs=["out"], npys={"a.npy": a, "b.npy": a})
    assert np.array_equal(res.outputs["out"], (a * -3).astype(np.int16))


# --- SXM, MEM strides, MXM f16 ---------------------------------------------------------------
SXM_PROG = """target "lpu-v1"
data @a : tensor<{n}x320xi8> in MEM_E43 = load("a.npy")
reserve @out : tensor<{n}x320xi8> in MEM_E42
kernel @k {{
  @0 MEM_E43 read.i8 [@a], s{s}e
{more}  @5 SXM_E {op}
  @{w} MEM_E42 write.i8 [@out], s16w
{morew}}}
"""


def test_sxm_shift_rotate(tmp_path):
    a = np.arange(320).astype(np.int8)
    for op, ref in [("shift.i8 s0e, 3, s16w", np.concatenate([[0, 0, 0], a[:-3]])),
                    ("shift.i8 s0e, -2, s16w", np.concatenate([a[2:], [0, 0]])),
                    ("rotate.i8 s0e, 5, s16w", np.roll(a, 5))]:
        # read at 0: s0e at position 91 in cycle 2, at SXM_E (92) in 3; result at 92 in 5 + 2,
        # at MEM_E42 (position 90) in 9. (issue at 5 means the read must arrive at 5: read at 2)
        text = SXM_PROG.format(n=1, s=0, more="", op=op, w=9, morew="").replace("@0 MEM_E43", "@2 MEM_E43")
        res = run_text(tmp_path, text, outputs=["out"], npys={"a.npy": a.reshape(1, 320)})
        assert res.hazards == [] and np.array_equal(res.outputs["out"][0], ref), op


def test_sxm_transpose_16x16_superlanes(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 127, (16, 320)).astype(np.int8)
    lines = []
    for i in range(16):  # MEM_E(43-i) at position 91-i: a read at 22-i passes SXM_E (92) in cycle 25
        lines.append(f"  @{22 - i} MEM_E{43 - i} read.i8 [@a{i}], s{i}e")
    lines.append("  @25 SXM_E transpose.i8 s0e, s16w")
    for i in range(16):  # the result is at 92 in cycle 25 + 18 = 43; MEM_Ei (48+i) meets it in 43 + 44 - i
        lines.append(f"  @{43 + 44 - i} MEM_E{i} write.i8 [@o{i}], s{16 + i}w")
    text = ('target "lpu-v1"\n' + "".join(f'data @a{i} : tensor<320xi8> in MEM_E{43 - i} = load("a{i}.npy")\n'
                                           for i in range(16))
            + "".join(f"reserve @o{i} : tensor<320xi8> in MEM_E{i}\n" for i in range(16))
            + "kernel @k {\n" + "\n".join(lines) + "\n}\n")
    res = run_text(tmp_path, text, outputs=[f"o{i}" for i in range(16)], npys={f"a{i}.npy": a[i] for i in range(16)})
    assert res.hazards == []
    out = np.stack([res.outputs[f"o{i}"] for i in range(16)])
    assert np.array_equal(out, a.reshape(16, 20, 16).transpose(2, 1, 0).reshape(16, 320))
    assert res.machine.cycles == 88


def test_mem_strided_repeat(tmp_path):
    a = np.arange(8 * 320).reshape(8, 320).astype(np.int8)
    text = """target "lpu-v1"
data @a : tensor<8x320xi8> in MEM_W0 = load("a.npy")
reserve @out : tensor<4x320xi8> in MEM_E1
kernel @k {
  @0 MEM_W0 read.i8 [@a + 1], s0e, stride=2
  @1 MEM_W0 repeat 3, 1
  @5 MEM_E1 write.i8 [@out], s0e
  @6 MEM_E1 repeat 3, 1
}
"""
    res = run_text(tmp_path, text, outputs=["out"], npys={"a.npy": a})
    assert res.hazards == [] and np.array_equal(res.outputs["out"], a[1::2])
    assert res.machine.cycles == 9


# --- hazards: each at a known cycle and line ---------------------------------------------------
HAZARD_CASES = {
    "conflict": ("""target "lpu-v1"
reserve @a : tensor<320xi8> in MEM_W0
kernel @k {
  @0 MEM_W0 read.i8 [@a], s0e
  @3 VXM.0 mov.i8 s0e, s8e
  @3 VXM.1 mov.i8 s0e, s8e
}
""", "t.lpu:6:3: error: stream write conflict (two values land on s8e at VXM, position 47 in cycle 5) on chip "
     "chip0, cycle 3, VXM.1: mov.i8 s0e, s8e"),
    "misaligned": ("""target "lpu-v1"
reserve @a : tensor<320xi16> in MEM_W0
reserve @b : tensor<320xi8> in MEM_W0
kernel @k {
  @0 MEM_W0 read.i16 [@a], s0e
  @2 MEM_W0 write.i8 [@b], s1e
}
""", None),
    "port": ("""target "lpu-v1"
reserve @a : tensor<320xi32> in MEM_W0
kernel @k {
  @0 MEM_W0 read.i32 [@a], s0e
  @2 MEM_W0 read.i32 [@a], s4e
}
""", "t.lpu:5:3: error: MEM port conflict (the read port is busy until cycle 4) on chip chip0, cycle 2, MEM_W0: "
     "read.i32 [@a], s4e"),
    "range": ("""target "lpu-v1"
kernel @k {
  @0 MEM_W0 read.i8 [8190], s0e
  @1 MEM_W0 repeat 3, 1
}
""", "t.lpu:3:3: error: address out of range (words 8192..8192 of a 8192-word slice) on chip chip0, cycle 2, "
     "MEM_W0: read.i8 [8190], s0e"),
    "weights": ("""target "lpu-v1"
reserve @x : tensor<320xi8> in MEM_W43
kernel @k {
  @0 MEM_W43 read.i8 [@x], s0w
  @4 MXM_W0 mm.i8 s0w, acc0, set
}
""", "t.lpu:5:3: error: mm with no installed weights on chip chip0, cycle 4, MXM_W0: mm.i8 s0w, acc0, set"),
    "deadlock": ("""target "lpu-v1"
kernel @k {
  @0 VXM.0 nop 3
  @3 VXM.0 sync 7
}
""", "t.lpu:4:3: error: sync that can never be released (deadlock) (barrier 7) on chip chip0, cycle 3, VXM.0: sync 7"),
}


@pytest.mark.parametrize("case", list(HAZARD_CASES))
def test_hazard(tmp_path, monkeypatch, case):
    text, want = HAZARD_CASES[case]
    res = run_text(tmp_path, text, monkeypatch=monkeypatch)
    got = first_error(res).splitlines()
    if want is not None:
        assert got[0] == f"{tmp_path}/{want}"
        assert got[1] == text.splitlines()[int(want.split(":")[1]) - 1]
        assert got[2] == "  ^"
    else:
        assert got[0] == (f"{tmp_path}/t.lpu:6:3: error: misaligned group read (s1e read as a 1-stream group at "
                          "MEM_W0, position 46, written as a 2-stream group from s0e) on chip chip0, cycle 2, "
                          "MEM_W0: write.i8 [@b], s1e")


def test_no_strict_collects_every_hazard(tmp_path, monkeypatch):
    text = """target "lpu-v1"
reserve @a : tensor<320xi8> in MEM_W0
reserve @b : tensor<320xi8> in MEM_E1
kernel @k {
  @0 MEM_W0 read.i8 [@a], s0e
  @4 MEM_E1 write.i8 [@b], s0e
  @9 MEM_E1 write.i8 [@b], s5e
}
"""
    res = run_text(tmp_path, text, monkeypatch=monkeypatch, strict=False)
    assert [(h.kind, h.cycle) for h in res.hazards] == [("empty stream read", 4), ("empty stream read", 9)]
    strict = run_text(tmp_path, text, monkeypatch=monkeypatch, strict=True)
    assert strict.machine.instructions == 1  # stopped before the write of cycle 4


# --- many chips ------------------------------------------------------------------------------
def test_pingpong_two_chips():
    d = os.path.join(EX, "pingpong")
    objs = [(n, obj_of(os.path.join(d, f"{n}.lpu"))) for n in ("ping", "pong")]
    img = link_objects(objs, load_system(os.path.join(d, "system.toml")))
    res = simulate(img, outputs=["got"])
    assert res.hazards == [] and np.array_equal(res.outputs["got"], np.load(os.path.join(d, "msg.npy")))
    assert res.machine.cycles == 221 and res.stats["c2c_bytes"] == 320


def _ring(tmp_path, recv_cycle=215):
    objs = []
    for i in range(8):
        nxt, prv = (i + 1) % 8, (i - 1) % 8
        np.save(tmp_path / f"v{i}.npy", np.full(320, i, np.int8))
        p = tmp_path / f"c{i}.lpu"
        p.write_text(f"""target "lpu-v1"
data @v : tensor<320xi8> in MEM_W43 = load("v{i}.npy")
reserve @got : tensor<320xi8> in MEM_W42
kernel @k {{
  @0 MEM_W43 read.i8 [@v], s0w
  @5 C2C_W send.i8 s0w, @chip{nxt}
  @{recv_cycle} C2C_W recv.i8 @chip{prv}, s0e
  @{recv_cycle + 6} MEM_W42 write.i8 [@got], s0e
}}
""")
        objs.append((f"c{i}", obj_of(str(p))))
    sysf = tmp_path / "sys.toml"
    sysf.write_text('topology = "node"\n' + "".join(f'[chips.chip{i}]\nobjects = ["c{i}"]\n' for i in range(8)))
    return link_objects(objs, load_system(str(sysf)))


def test_ring_on_eight_chips(tmp_path):
    res = simulate(_ring(tmp_path), outputs=[f"chip{i}:got" for i in range(8)])
    assert res.hazards == []
    for i in range(8):
        assert (res.outputs[f"chip{i}:got"] == (i - 1) % 8).all()
    assert res.stats["chips"] == 8 and res.stats["c2c_bytes"] == 8 * 320


def test_link_hazards_from_image(tmp_path):
    """Link timing the linker would refuse, made by editing an image: empty buffer, link busy."""
    img = _ring(tmp_path)
    from lpu.arch.isa import BY_MNEMONIC, encode
    from lpu.sim.program import decode_word

    chip = img.chips[1]
    q = next(q for q in chip.queues if q.queue == "C2C_W")
    words = q.words.copy()
    for i, w in enumerate(words.tolist()):
        spec, *_ , f = decode_word(w)
        if spec.mnemonic == "nop" and f[0] > 100:
            words[i] = encode(BY_MNEMONIC["nop"], None, None, (f[0] - 10,))  # recv 10 cycles early
            break
    q.words = words
    res = simulate(img, strict=False)
    kinds = [(h.kind, img.chips[h.chip].name, h.cycle) for h in res.hazards]
    assert ("receive from an empty buffer", "chip1", 205) in kinds


# --- determinism and the trace ----------------------------------------------------------------
def test_two_runs_identical(tmp_path):
    img = link_objects([("gemv", obj_of(os.path.join(EX, "gemv.lpu")))])
    a, b = simulate(img, outputs=["y"]), simulate(img, outputs=["y"])
    assert a.outputs["y"].tobytes() == b.outputs["y"].tobytes()
    assert json.dumps(a.stats) == json.dumps(b.stats)
    ta, tb = trace(a.machine), trace(b.machine)
    assert ta == tb
    t = json.loads(ta)["traceEvents"]
    names = {e["args"]["name"] for e in t if e.get("name") == "thread_name"}
    assert {"MXM_W0", "MXM_W0 plane", "MEM_W43 read", "MEM_W27 read"} <= names  # tracks: tests/test_sim_trace.py
    mm = [e for e in t if e.get("ph") == "X" and e["name"].startswith("mm.i8")]
    assert [(e["ts"], e["dur"]) for e in mm] == [(40, 1)]
    assert any(e.get("ph") == "C" for e in t)


def test_cli_strict_hazard_exit_status(tmp_path, monkeypatch, capsys):
    text, want = HAZARD_CASES["port"]
    p = tmp_path / "t.lpu"
    p.write_text(text)
    from lpu.linker.imagefile import write_image

    img = link_objects([("t", obj_of(str(p), monkeypatch))])
    (tmp_path / "t.lpx").write_bytes(write_image(img))
    assert sim_main([str(tmp_path / "t.lpx")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{tmp_path}/{want}"
    assert err[3] == f"{tmp_path}/t.lpu:4:3: note: it is busy because of this instruction"


# --- property: random VXM chains equal numpy ------------------------------------------------------
_CHAIN_OPS = ["add", "sub", "mul", "max", "min", "and", "or", "xor", "neg", "abs", "relu", "mov"]


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["i8", "i16", "i32"]),
       st.lists(st.tuples(st.sampled_from(_CHAIN_OPS), st.one_of(st.none(), st.integers(-100, 100))),
                min_size=1, max_size=6),
       st.integers(0, 2 ** 31))
def test_property_vxm_chain(tmp_path_factory, t, ops, seed):
    tmp = tmp_path_factory.mktemp("chain")
    rng = np.random.default_rng(seed)
    nt = NUMPY_DTYPES[t]
    info = np.iinfo(nt)
    a = rng.integers(info.min, info.max, 320, endpoint=True).astype(nt)
    bs = rng.integers(info.min, info.max, (len(ops), 320), endpoint=True).astype(nt)
    lines = ["  @0 MEM_W0 read.%s [@a], s0e" % t]
    ref = a.copy()
    src = "s0e"
    for i, (op, imm) in enumerate(ops):
        c = 3 + 2 * i
        if op in ("neg", "abs", "relu", "mov"):
            lines.append(f"  @{c} VXM.0 {op}.{t} {src}, s8e")
            ref = {"neg": np.negative, "abs": np.abs, "relu": lambda x: np.maximum(x, 0), "mov": lambda x: x}[op](ref)
        else:
            if imm is None:
                # b_i sits in MEM_Ei (position 48 + i): read in cycle i, it passes the VXM in cycle c
                lines.append(f"  @{i} MEM_E{i} read.{t} [@b{i}], s4w")
                operand, other = "s4w", bs[i]
            else:
                operand, other = str(imm), np.array(imm).astype(nt)
            lines.append(f"  @{c} VXM.0 {op}.{t} {src}, {operand}, s8e")
            with np.errstate(over="ignore"):
                ref = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "max": np.maximum, "min": np.minimum,
                       "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor}[op](ref, other)
        ref = np.asarray(ref).astype(nt)
        src = "s8e"
    lines.append(f"  @{3 + 2 * len(ops) + 2} MEM_E1 write.{t} [@out], s8e")
    text = (f'target "lpu-v1"\ndata @a : tensor<320x{t}> in MEM_W0 = load("a.npy")\n'
            + "".join(f'data @b{i} : tensor<320x{t}> in MEM_E{i} = load("b{i}.npy")\n' for i in range(len(ops)))
            + f"reserve @out : tensor<320x{t}> in MEM_E1\nkernel @k {{\n" + "\n".join(lines) + "\n}\n")
    res = run_text(tmp, text, outputs=["out"], npys={"a.npy": a, **{f"b{i}.npy": bs[i] for i in range(len(ops))}})
    assert res.hazards == []
    assert np.array_equal(res.outputs["out"], ref)
