"""stream-alloc as a pass of its own: on kernels the general path schedules, it re-allocates
every in-flight value's stream group; the kernel still meets every timing rule (the
assembler's check), links, simulates with zero hazards in the same cycles and gives the same
bytes. Under a stream limit it reports the value it cannot place at its df op;
``schedule-general{streams=N}`` schedules within the limit instead (later cycles, pinned)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpu.arch.config import load_config
from lpu.asm.emit import emit
from lpu.asm.records import Program
from lpu.diagnostics import DiagnosticError
from lpu.dsl.cli import optimize
from lpu.dsl.codegen.general import compile_general
from lpu.dsl.codegen.stream_alloc import Value, allocate, stream_alloc
from lpu.dsl.codegen.streams import stream_limit
from lpu.dsl.frontend import parse_module
from lpu.dsl.interpreter import arg_names, function, random_input
from lpu.dsl.lpu_dialect import KernelOp, to_kernel
from lpu.dsl.passes import PASSES
from lpu.dsl.printer import print_module
from lpu.linker.link import link_objects
from lpu.sim.cli import simulate
from test_codegen_random import programs

CFG = load_config("lpu-v1")
EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")

F32 = '''target "lpu-v1"

func @main(%x: tensor<4x640xf32>, %b: tensor<640xf32>) -> tensor<4x640xf32> {
  %y = add %x, %b
  %z = mul %y, %x
  return %z
}
'''


def _compile(text: str, path: str, streams: int | None = None, given: dict | None = None, seed: int = 0):
    module = parse_module(text, path)
    with stream_limit(streams):
        c = compile_general(module, "main", CFG, os.path.dirname(path) or ".", path)
    fn = function(module, "main")
    rng = np.random.default_rng(seed)
    args = {n: random_input(a.type, rng) for n, a in zip(arg_names(fn), fn.body.block.args)}
    args.update(given or {})
    return c, args


def _run(c, kop: KernelOp, args):
    """Assemble (every timing rule checked), link and simulate ``kop`` over ``c``'s tensors."""
    kernel = to_kernel(kop, CFG, "t.lpu")
    obj = emit(Program(CFG.name, CFG, c.storage.tensors(), [], [kernel], "t.lpu"))
    r = simulate(link_objects([(c.func, obj)]), "t.lpu", inputs=c.inputs(args), outputs=c.output_symbols())
    return r.machine.cycles, list(r.hazards), c.results(r.outputs)


def _streams(kop: KernelOp) -> list[str]:
    """Every stream operand of the kernel, in op order."""
    return [a.data for op in kop.insts() for o in op.SPEC.operands if o.role
            for a in [op.attributes.get(o.name)] if a is not None and hasattr(a, "data")]


def _top(kop: KernelOp) -> int:
    return max(int(s[1:-1]) for s in _streams(kop))


def test_registered_in_lpu_opt():
    assert PASSES["stream-alloc"].name == "stream-alloc"


@pytest.mark.parametrize("example, cycles", [
    ("softmax.lpu", 416),
    ("layernorm.lpu", 365),
    ("attention.lpu", 645),
    ("mlp.lpu", 933),
])
def test_reallocated_kernel_runs_the_same(example, cycles):
    """schedule-general's kernel, re-allocated: other streams, same cycles, same bytes."""
    path = os.path.join(EXAMPLES, example)
    c, args = _compile(open(path).read(), path)
    before = _run(c, c.kernel, args)
    kop = c.kernel.clone()
    values = stream_alloc(kop, CFG)
    after = _run(c, kop, args)
    assert before[0] == after[0] == cycles and before[1] == after[1] == []
    assert all(a.dtype == b.dtype and a.tobytes() == b.tobytes() for a, b in zip(before[2], after[2]))
    assert _streams(kop) != _streams(c.kernel)  # the pass really chose again
    again = c.kernel.clone()
    stream_alloc(again, CFG)
    assert _streams(again) == _streams(kop)  # deterministically
    for v in values:  # every operand of a value starts on a multiple of its alignment
        assert all((b - v.span[0] + v.base) % a == 0 for b, _, a in v.operands.values())


@pytest.mark.parametrize("example, streams, cycles", [
    ("softmax.lpu", 8, 416),
    ("softmax.lpu", 4, 444),
    ("layernorm.lpu", 4, 480),
    ("attention.lpu", 8, 663),
    ("mlp.lpu", 8, 1194),
])
def test_schedule_under_a_stream_limit(example, streams, cycles):
    """schedule-general{streams=N} waits for streams where the default would take more; the
    kernel then allocates within N streams, runs with zero hazards and matches the interpreter."""
    from lpu.compile import matches
    from lpu.dsl.interpreter import run_function

    path = os.path.join(EXAMPLES, example)
    text = open(path).read()
    c, args = _compile(text, path, streams)
    kop = c.kernel.clone()
    stream_alloc(kop, CFG, streams)
    assert _top(kop) < streams
    got_cycles, hazards, results = _run(c, kop, args)
    assert (got_cycles, hazards) == (cycles, [])
    want = run_function(parse_module(text, path), "main", args, base_dir=EXAMPLES)
    assert all(matches(g, w) for g, w in zip(results, want))


def test_lpu_opt_pipeline(tmp_path):
    """lpu-opt -p 'schedule-general{streams=4},stream-alloc{streams=4}': a kernel on s0..s3 that
    lpu-as assembles to the cycles pinned above."""
    from lpu.asm.assembler import assemble

    path = os.path.join(EXAMPLES, "softmax.lpu")
    m = optimize(open(path).read(), path, "schedule-general{streams=4},stream-alloc{streams=4}")
    (kop,) = [op for op in m.ops if isinstance(op, KernelOp)]
    assert {s[1:-1] for s in _streams(kop)} == {"0", "2"}  # group bases: f32 on s0..s3, f16 on s0/s2
    prog = assemble(print_module(m), "softmax.s")
    assert prog.kernels[0].length == 444
    # stream-alloc alone keeps the scheduler's cycles and chooses the same as the library call
    m2 = optimize(open(path).read(), path, "schedule-general,stream-alloc")
    c, _ = _compile(open(path).read(), path)
    k2 = c.kernel.clone()
    stream_alloc(k2, CFG)
    (kop2,) = [op for op in m2.ops if isinstance(op, KernelOp)]
    assert _streams(kop2) == _streams(k2)


def test_gemv_kernel_of_the_schedule_stage(tmp_path):
    """The GEMV stages' kernel (repeats; lw's 16 rows from 16 slices: one value) re-allocates too."""
    from lpu.asm.assembler import assemble

    np.save(tmp_path / "w.npy", np.random.default_rng(0).integers(-128, 128, (640, 330)).astype(np.int8))
    text = ('target "lpu-v1"\n\ndata @w : tensor<640x330xi8> = load("w.npy")\n\n'
            'func @gemv(%x: tensor<640xi8>) -> tensor<330xi32> {\n  %w = get @w : tensor<640x330xi8>\n'
            '  %y = matmul %x, %w : tensor<330xi32>\n  return %y\n}\n')
    (tmp_path / "g.lpu").write_text(text)
    stages = "register-block,sram-layout,schedule"
    before = assemble(print_module(optimize(text, str(tmp_path / "g.lpu"), stages)), "g.s")
    after = assemble(print_module(optimize(text, str(tmp_path / "g.lpu"), stages + ",stream-alloc")), "g.s")
    assert before.kernels[0].length == after.kernels[0].length == 127
    key = lambda p: sorted((i.cycle, i.queue, i.spec.mnemonic) for i in p.kernels[0].insts)  # noqa: E731
    assert key(before) == key(after)
    with pytest.raises(DiagnosticError) as e:
        optimize(text, str(tmp_path / "g.lpu"), stages + ",stream-alloc{streams=16}")
    (d,) = e.value.diagnostics
    assert (d.loc, d.message) == (None, "no free stream group of 16 streams westward for this value over "
                                        "positions 1..34, cycles 2..54 (streams=16)")
    assert d.notes[0].message == "the value is produced by '@0 MEM_W12 read.i8 [@w_w1_15], s31w' in kernel @gemv"


def test_no_free_group_is_reported_at_the_df_op(tmp_path):
    path = str(tmp_path / "f32.lpu")
    (tmp_path / "f32.lpu").write_text(F32)
    with pytest.raises(DiagnosticError) as e:
        optimize(F32, path, "schedule-general,stream-alloc{streams=8}")
    (d,) = e.value.diagnostics
    assert (str(d.loc), d.message) == (f"{path}:5:8", "no free stream group of 4 streams eastward for this value "
                                       "over positions 45..47, cycles 23..25 (streams=8)")
    assert d.notes[0].message == ("the value is produced by '@21 MEM_W1 read.f32 [@main_in_x_mem_w1], s8e' "
                                  "in kernel @main")
    # the scheduler honours the limit instead: later cycles, and the allocation then fits
    m = optimize(F32, path, "schedule-general{streams=8},stream-alloc{streams=8}")
    (kop,) = [op for op in m.ops if isinstance(op, KernelOp)]
    assert _top(kop) < 8
    for bad in ("stream-alloc{streams=0}", "schedule-general{streams=33}"):
        with pytest.raises(DiagnosticError) as e:
            optimize(F32, path, "schedule-general," + bad if bad.startswith("stream") else bad)
        assert "is not between 1 and the 32 streams of each direction of lpu-v1" in str(e.value)


# --- the allocator on random values ------------------------------------------------------------
@st.composite
def _values(draw):
    """Random values: an operand or two (widths 1, 2, 4, 16, aligned originally), each write
    a few diagonal segments of random positions, in random directions."""
    out = []
    for _ in range(draw(st.integers(1, 25))):
        west = draw(st.booleans())
        v = Value(west)
        width = draw(st.sampled_from([1, 2, 4, 4, 16]))
        base = draw(st.integers(0, 32 // width - 1)) * width
        v.operands[(len(out), 0)] = (base, width, width)
        if width == 1 and draw(st.booleans()):  # an lw-like operand: rows of 1 beside it
            v.operands[(len(out), 1)] = (base, 4, 1)
        lo_s, hi_s = v.span
        for _ in range(draw(st.integers(1, 3))):
            d = draw(st.integers(0, 6))
            p = draw(st.integers(0, 20))
            q = draw(st.integers(p, 24))
            v.cells.extend((s, d, p, q) for s in range(lo_s, hi_s))
        v.appear = v.last = draw(st.integers(0, 30))
        v.producer = len(out)
        out.append(v)
    return sorted(out, key=lambda v: (v.appear, v.producer))


def _cells(v: Value):
    delta = v.base - v.span[0]
    return [(v.west, s + delta, d, lo, hi) for s, d, lo, hi in v.cells]


@given(_values(), st.sampled_from([4, 8, 16, 32]))
@settings(max_examples=150, deadline=None)
def test_allocation_never_shares_a_cell(values, n):
    failed = allocate(values, n)
    placed = values if failed is None else values[:values.index(failed)]
    for v in placed:
        assert 0 <= v.base and v.base + v.width <= n
        assert all((b - v.span[0] + v.base) % a == 0 for b, _, a in v.operands.values())
    taken = {}
    for v in placed:
        for west, s, d, lo, hi in _cells(v):
            for a, b in taken.get((west, s, d), []):
                assert hi < a or b < lo, "two values on one cell"
        for west, s, d, lo, hi in _cells(v):
            taken.setdefault((west, s, d), []).append((lo, hi))
    if failed is not None:  # it really fits nowhere among the values placed before it
        for base in range(0, n - failed.width + 1):
            failed.base = base
            aligned = all((b - failed.span[0] + base) % a == 0 for b, _, a in failed.operands.values())
            clash = any(not (hi < a or b < lo) for west, s, d, lo, hi in _cells(failed)
                        for a, b in taken.get((west, s, d), []))
            assert not aligned or clash
    # lowest group first: each placed value could not have gone lower
    fresh = {}
    for v in placed:
        for base in range(0, v.base):
            delta = base - v.span[0]
            aligned = all((b + delta) % a == 0 for b, _, a in v.operands.values())
            clash = any(not (hi < a or b < lo) for s, d, lo, hi in v.cells
                        for a, b in fresh.get((v.west, s + delta, d), []))
            assert not aligned or clash
        for west, s, d, lo, hi in _cells(v):
            fresh.setdefault((west, s, d), []).append((lo, hi))


def test_first_fit_can_strand_a_wide_value_and_widest_first_fits_it():
    """First fit in appearance order can leave no aligned pair of streams for a 2-wide value
    among 1-wide ones (positions 0..6 of one diagonal, 4 streams); the second order, widest
    first, fits every value (the decoder layer once needed it for a 16-row weight load)."""
    from lpu.dsl.codegen.stream_alloc import Value

    def value(i, width, lo, hi):
        v = Value(False)
        v.operands = {(i, 0): (0, width, width)}
        v.cells = [(s, 0, lo, hi) for s in range(width)]
        v.producer = i
        return v

    specs = [(1, 0, 4), (1, 4, 5), (1, 4, 5), (1, 2, 6), (2, 1, 3)]
    stuck = allocate([value(i, *sp) for i, sp in enumerate(specs)], 4)
    assert stuck is not None and stuck.width == 2
    widest = sorted((value(i, *sp) for i, sp in enumerate(specs)), key=lambda u: -u.width)
    assert allocate(widest, 4) is None
    assert sorted((v.producer, v.base) for v in widest) == [(0, 2), (1, 0), (2, 1), (3, 3), (4, 0)]


def test_a_kernel_that_breaks_a_timing_rule_is_not_allocated(tmp_path):
    """The values come from the assembler's links of reads to writes, so a kernel whose reads
    meet nothing is reported (at the df op) rather than allocated."""
    from xdsl.dialects.builtin import StringAttr

    path = str(tmp_path / "f32.lpu")
    (tmp_path / "f32.lpu").write_text(F32)
    c, _ = _compile(F32, path)
    kop = c.kernel.clone()
    read = next(op for op in kop.insts() if op.SPEC.mnemonic == "read")
    read.attributes["dst"] = StringAttr("s28" + read.attributes["dst"].data[-1])
    with pytest.raises(DiagnosticError) as e:
        stream_alloc(kop, CFG)
    d = e.value.diagnostics[0]
    assert str(d.loc).startswith(f"{path}:") and d.message.startswith("no value on s")
    read.attributes["unit"] = StringAttr("VXM.0")
    with pytest.raises(DiagnosticError) as e:
        stream_alloc(kop, CFG)
    assert [(str(d.loc), d.message) for d in e.value.diagnostics] == [(f"{path}:4:8", "'read' cannot execute on VXM.0")]


# --- assembly kernels in a module (df.kernel): a scheduled .s read back, hand-written code ------
def _kernel_part(text: str) -> str:
    return text[text.index("global kernel"):]


def test_a_scheduled_s_file_read_back_allocates_the_same(tmp_path):
    """lpu-opt prog.s -p stream-alloc (the kernel as text) makes what the in-memory pipeline
    makes; its diagnostic points at the instruction's line of the .s file."""
    path = str(tmp_path / "f32.lpu")
    (tmp_path / "f32.lpu").write_text(F32)
    scheduled = print_module(optimize(F32, path, "schedule-general"))
    (tmp_path / "f32.s").write_text(scheduled)
    again = print_module(optimize(scheduled, str(tmp_path / "f32.s"), "stream-alloc"))
    assert _kernel_part(again) == _kernel_part(print_module(optimize(F32, path, "schedule-general,stream-alloc")))
    with pytest.raises(DiagnosticError) as e:
        optimize(scheduled, str(tmp_path / "f32.s"), "stream-alloc{streams=8}")
    (d,) = e.value.diagnostics
    line = next(i for i, t in enumerate(scheduled.splitlines(), 1) if "@21    MEM_W1  read.f32 [@main_in_x_mem_w1]" in t)
    assert str(d.loc) == f"{tmp_path / 'f32.s'}:{line}:3"
    assert d.message == ("no free stream group of 4 streams eastward for this value over positions 45..47, "
                         "cycles 23..25 (streams=8)")


@pytest.mark.parametrize("example, output, cycles, moved", [
    ("vadd", "sum", 8, True), ("gemv", "y", 52, True), ("copy", "dst", 91, False),  # copy: s0e already
])
def test_hand_written_kernels(example, output, cycles, moved):
    """examples/asm: re-allocated (other streams), they run as before: same cycles, same result."""
    from lpu.asm.assembler import assemble

    asm = os.path.join(EXAMPLES, "asm")
    src = os.path.join(asm, f"{example}.lpu")
    outs, code = [], []
    for text in [open(src).read(), print_module(optimize(open(src).read(), src, "stream-alloc"))]:
        prog = assemble(text, os.path.join(asm, f"{example}_alloc.lpu"), CFG)
        r = simulate(link_objects([(example, emit(prog))]), "t.lpu", outputs=[output])
        assert (r.machine.cycles, list(r.hazards)) == (cycles, [])
        outs.append(r.outputs[output])
        code.append(sorted((i.cycle, i.queue, i.spec.mnemonic, i.args) for i in prog.kernels[0].insts))
    assert outs[0].tobytes() == outs[1].tobytes()
    assert [c[:3] for c in code[0]] == [c[:3] for c in code[1]] and (code[0] != code[1]) == moved  # only streams


def test_the_kernels_own_groups_are_the_last_resort(monkeypatch):
    """When neither order fits but the scheduler's groups lie within the limit, they are kept
    (so schedule-general{streams=N},stream-alloc{streams=N} always allocates)."""
    import lpu.dsl.codegen.stream_alloc as SA

    path = os.path.join(EXAMPLES, "softmax.lpu")
    c, _ = _compile(open(path).read(), path, 8)
    monkeypatch.setattr(SA, "allocate", lambda values, n: values[0])  # first fit "fails" every time
    kop = c.kernel.clone()
    stream_alloc(kop, CFG, 8)
    assert _streams(kop) == _streams(c.kernel)
    with pytest.raises(DiagnosticError):  # below the kernel's own streams nothing is left
        stream_alloc(c.kernel.clone(), CFG, 4)


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.sampled_from([None, 16]), st.integers(0, 3))
def test_random_programs_reallocated_run_the_same(prog, streams, seed):
    """Random df programs (test_codegen_random's), scheduled with or without a stream limit and
    re-allocated within it: the kernel meets every timing rule, runs with zero hazards in the
    same cycles, and its results are the same bytes."""
    text, _, given_inputs = prog
    c, args = _compile(text, "random.lpu", streams, given_inputs, seed)
    before = _run(c, c.kernel, args)
    kop = c.kernel.clone()
    stream_alloc(kop, CFG, streams)
    after = _run(c, kop, args)
    assert before[0] == after[0] and before[1] == after[1] == [], text
    assert all(a.tobytes() == b.tobytes() for a, b in zip(before[2], after[2])), text
