"""unroll on lpu.kernel ops (dsl/codegen/unroll.py through the lpu-opt pass `unroll`): regular
runs folded into `repeat`, written out with `full=true`, capped with `factor=F`; no cycle
changes, the same outputs on the simulator, and `schedule{fold=false},unroll` == `schedule`."""

import numpy as np
import pytest
from hypothesis import given, settings, HealthCheck, strategies as st

from lpu.arch.config import load_config
from lpu.arch.isa import BY_MNEMONIC
from lpu.asm.assembler import assemble
from lpu.asm.emit import emit
from lpu.asm.objfile import write_object
from lpu.asm.records import Inst, Program, SymRef
from lpu.asm.timing import issues_of
from lpu.diagnostics import DiagnosticError
from lpu.dsl.cli import optimize
from lpu.dsl.codegen import compile_function
from lpu.dsl.codegen.unroll import compact, expand, expand_kernel, fold_kernel, kernel_insts, refold
from lpu.dsl.frontend import parse_module
from lpu.dsl.interpreter import run_function
from lpu.dsl.lpu_dialect import to_kernel
from lpu.dsl.printer import print_module
from lpu.linker.link import link_objects
from lpu.sim.cli import simulate

CFG = load_config("lpu-v1")
ACC = {"i8": "i32", "f16": "f32"}


def matmul_source(K, N, elem, M=None):
    xs, ys, a = (f"{M}x{K}", f"{M}x{N}", ACC[elem]) if M else (f"{K}", f"{N}", ACC[elem])
    return (f'target "lpu-v1"\n\ndata @w : tensor<{K}x{N}x{elem}> = load("w.npy")\n\n'
            f"func @mm(%x: tensor<{xs}x{elem}>) -> tensor<{ys}x{a}> {{\n"
            f"  %w = get @w : tensor<{K}x{N}x{elem}>\n  %y = matmul %x, %w : tensor<{ys}x{a}>\n  return %y\n}}\n")


def _random(shape, elem, rng):
    if elem == "i8":
        return rng.integers(-128, 128, shape).astype(np.int8)
    return rng.standard_normal(shape).astype(np.float16)


@pytest.fixture
def case(tmp_path):
    """(K, N, elem, M) -> (source path, parsed module, x)."""
    def make(K, N, elem, M=None):
        rng = np.random.default_rng(K * N + (M or 0))
        np.save(tmp_path / "w.npy", _random((K, N), elem, rng))
        path = tmp_path / "mm.lpu"
        path.write_text(matmul_source(K, N, elem, M))
        return str(path), parse_module(path.read_text(), str(path)), _random((M, K) if M else (K,), elem, rng)
    return make


def key(insts):
    """Instruction records as comparable tuples, in order (a kernel's op order is (cycle, queue))."""
    return [(x.cycle, x.queue, x.spec.mnemonic, x.dtype, x.dtype2, x.args) for x in insts]


def count(insts, mnemonic):
    return sum(1 for x in insts if x.spec.mnemonic == mnemonic)


def run(c, kop, x):
    """Simulates the compiled tensors with kernel op ``kop``: (result, cycles, hazards)."""
    k = to_kernel(kop, CFG)  # the assembler's sequencing and stream-timing checks
    obj = emit(Program(CFG.name, CFG, list(c.program.tensors), [], [k], "<test>"))
    r = simulate(link_objects([("mm", obj)]), inputs=c.inputs({"x": x}, CFG.lanes), outputs=c.output_symbols())
    return c.result(r.outputs, CFG.lanes), r.machine.cycles, len(r.hazards)


SHAPES = [(1280, 1280, "i8", None), (640, 330, "f16", None), (640, 330, "i8", 20), (400, 330, "f16", 3)]


@pytest.mark.parametrize("K,N,elem,M", SHAPES)
def test_fold_of_expand_is_the_schedule_and_expand_keeps_every_issue_cycle(case, K, N, elem, M):
    path, module, x = case(K, N, elem, M)
    c = compile_function(module, "mm", CFG, str(path).rsplit("/", 1)[0])
    flat = expand_kernel(c.kernel, CFG)
    folded = kernel_insts(c.kernel, CFG)
    unrolled = kernel_insts(flat, CFG)
    assert count(folded, "repeat") > 0 and count(unrolled, "repeat") == 0
    assert key(kernel_insts(fold_kernel(flat, CFG), CFG)) == key(folded)
    assert key(kernel_insts(fold_kernel(c.kernel, CFG), CFG)) == key(folded)  # idempotent
    # every issue of the folded kernel (repetitions included) is one instruction of the expanded
    # one, at the same cycle on the same queue
    issues = sorted((i.queue, t) for i, cycles in issues_of(to_kernel(c.kernel, CFG)) for t in cycles)
    assert issues == sorted((i.queue, i.cycle) for i in unrolled)
    assert to_kernel(flat, CFG).length == to_kernel(c.kernel, CFG).length == c.cycles


@pytest.mark.parametrize("K,N,elem,M", SHAPES[1:3])
def test_folded_and_expanded_kernels_simulate_alike(case, K, N, elem, M):
    path, module, x = case(K, N, elem, M)
    c = compile_function(module, "mm", CFG, str(path).rsplit("/", 1)[0])
    y, cycles, hazards = run(c, c.kernel, x)
    y2, cycles2, hazards2 = run(c, expand_kernel(c.kernel, CFG), x)
    y4, cycles4, hazards4 = run(c, fold_kernel(c.kernel, CFG, 4), x)
    assert cycles == cycles2 == cycles4 == c.cycles and hazards == hazards2 == hazards4 == 0
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(y, y4)
    ref = run_function(module, "mm", {"x": x}, base_dir=str(path).rsplit("/", 1)[0])[0]
    if elem == "i8":
        np.testing.assert_array_equal(y, ref)


def test_instruction_counts_and_factor(case):
    """i8 GEMV 1280 x 1280 on 4 planes: 5496 issues, 592 instructions folded."""
    path, module, _ = case(1280, 1280, "i8")
    c = compile_function(module, "mm", CFG, str(path).rsplit("/", 1)[0])
    folded = kernel_insts(c.kernel, CFG)
    flat = kernel_insts(expand_kernel(c.kernel, CFG), CFG)
    assert (len(flat), len(folded), count(folded, "repeat")) == (5496, 592, 276)
    # per plane and block: a lw + repeat 19, 1 (20 row groups); per stripe slice and block a
    # read + repeat 19, 1; each plane's x reads of a part's 4 blocks: a read + repeat 3, 22
    assert count(folded, "lw") == 16 and count(flat, "lw") == 320
    assert sorted({x.args for x in folded if x.spec.mnemonic == "repeat"}) == [(3, 22), (19, 1)]
    f4 = kernel_insts(fold_kernel(c.kernel, CFG, 4), CFG)
    reps = [x.args for x in f4 if x.spec.mnemonic == "repeat"]
    # a run of 20 issues is 4 x (instruction + repeat 4, 1); the x reads' runs of 4, one repeat 3
    assert len(f4) == 2224 and max(n for n, _ in reps) == 4
    assert sorted(set(reps)) == [(3, 22), (4, 1)]
    assert key(kernel_insts(fold_kernel(fold_kernel(c.kernel, CFG, 4), CFG), CFG)) == key(folded)
    assert key(kernel_insts(expand_kernel(fold_kernel(c.kernel, CFG, 4), CFG), CFG)) == key(flat)
    # factor=1: every repeat re-issues once, a word for a word: as many words as unfolded
    f1 = kernel_insts(fold_kernel(c.kernel, CFG, 1), CFG)
    assert {x.args[0] for x in f1 if x.spec.mnemonic == "repeat"} == {1} and len(f1) == 5496


# --- the lpu-opt pass ---------------------------------------------------------------------------
def assembled(module, name="sched.lpu"):
    return assemble(print_module(module), name)


def code(prog):
    return [(k.name, key(k.insts), k.length) for k in prog.kernels]


def test_schedule_unfolded_then_unroll_is_schedule(case):
    path, _, _ = case(1280, 1280, "i8")
    text = open(path).read()
    ref = assembled(optimize(text, path, "register-block,sram-layout,schedule"))
    flat = optimize(text, path, "register-block,sram-layout,schedule{fold=false}")
    assert "repeat" not in print_module(flat)
    assert code(assembled(optimize(text, path, "register-block,sram-layout,schedule{fold=false},unroll"))) == code(ref)
    again = assembled(optimize(text, path, "register-block,sram-layout,schedule{fold=false},unroll"))
    assert write_object(emit(again)) == write_object(emit(ref))
    full = assembled(optimize(text, path, "register-block,sram-layout,schedule,unroll{full=true}"))
    assert code(full) == code(assembled(flat))
    assert full.kernels[0].length == ref.kernels[0].length == 149
    f4 = assembled(optimize(text, path, "register-block,sram-layout,schedule,unroll{factor=4}"))
    assert len(f4.kernels[0].insts) == 2224


def test_unroll_full_and_factor_contradict(case):
    path, _, _ = case(320, 320, "i8")
    with pytest.raises(DiagnosticError) as e:
        optimize(open(path).read(), path, "unroll{full=true factor=2}")
    assert str(e.value.diagnostics[0].message) == (
        "unroll: full=true and factor=2 contradict each other (full unrolls completely; factor keeps loops "
        "of that many iterations)")


LOOP = '''target "lpu-v1"
func @f(%a: tensor<4xi32>) -> tensor<4xi32> {
  %r = for %i = 0 to 4 step 1 iter(%acc = %a) : tensor<4xi32> {
    %b = add %acc, %acc : tensor<4xi32>
    yield %b
  }
  return %r
}
'''


def test_for_loops_keep_their_meaning(tmp_path):
    path = tmp_path / "loop.lpu"
    path.write_text(LOOP)
    full = print_module(optimize(LOOP, str(path), "unroll{full=true}"))
    assert full == print_module(optimize(LOOP, str(path), "unroll"))
    assert "for " not in full and full.count(" = add ") == 4
    half = print_module(optimize(LOOP, str(path), "unroll{factor=2}"))
    assert half.count("for ") == 1 and half.count(" = add ") == 3  # two bodies and the counter step


# --- hypothesis: random runs --------------------------------------------------------------------
_READ, _WRITE, _ADD = BY_MNEMONIC["read"], BY_MNEMONIC["write"], BY_MNEMONIC["add"]
_MEM = [q.index for q in CFG.queues if q.kind == "mem"][:3]
_VXM = [q.index for q in CFG.queues if q.kind == "vxm"][:1]

segment = st.tuples(
    st.integers(1, 30),                      # issues in the run
    st.integers(1, 70000),                   # their spacing (beyond a count field sometimes)
    st.integers(1, 9),                       # the gap before the run
    st.sampled_from(["a", "b", None]),       # symbol (None: an absolute address)
    st.integers(0, 50),                      # first offset
    st.sampled_from(["i8", "f16", "i32"]),   # element type (one vector: 1, 2, 4 words)
    st.sampled_from([None, 0, 3, -2]),       # explicit stride (None: the default)
    st.integers(0, 63),                      # stream field
    st.sampled_from(["read", "write", "add"]),
    st.booleans())                           # an irregular run (addresses not advancing)


def _build(queues):
    insts = []
    for q, segs in zip(_MEM + _VXM, queues):
        t = 0
        for n, d, gap, sym, off, dt, stride, stream, m, irregular in segs:
            t += gap
            if q in _VXM:
                spec, dt = _ADD, "i32"
            else:
                spec = _READ if m == "read" else _WRITE
            for k in range(n):
                if spec is _ADD:
                    args = (stream % 32, (stream + k * irregular) % 32, (stream + 1) % 32)
                else:
                    w = {"i8": 1, "f16": 2, "i32": 4}[dt]
                    step = w if stride is None else stride
                    field = 0 if stride is None else (stride & 0xFFFF) | (1 << 16)
                    a = off + (0 if irregular else k * step)
                    args = (SymRef(sym, a) if sym else 100 + a, stream, field)
                insts.append(Inst(t, q, spec, dt, None, args))
                t += d
    return sorted(insts, key=lambda x: (x.cycle, x.queue))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(segment, min_size=1, max_size=4), min_size=1, max_size=4), st.integers(0, 6))
def test_folding_then_expanding_is_the_identity(queues, factor):
    insts = _build(queues)
    folded = compact(insts, factor)
    assert key(expand(folded)) == key(insts)
    assert key(compact(expand(folded), factor)) == key(folded)
    for x in folded:
        if x.spec.mnemonic == "repeat":
            n, d = x.args
            assert 1 <= n <= (factor or 65535) and 1 <= d <= 65535
    # kept instructions (a called kernel's, spliced in) stay as they are and end runs
    kept = insts[::3]
    out = refold(insts, factor, keep=kept)
    assert key(expand(out)) == key(insts) and {id(x) for x in kept} <= {id(x) for x in out}
    # a run of at least two issues at one spacing, addresses advancing, is never left unfolded
    if factor == 0 and all(len(s) == 1 and s[0][0] >= 2 and s[0][1] <= 65535 and not s[0][9] for s in queues):
        assert count(folded, "repeat") == len(queues)


# --- the general path folds its kernels too ----------------------------------------------------
def test_general_path_kernels_are_folded_and_simulate_as_unrolled():
    import os

    from lpu.dsl.interpreter import arg_names, function, random_input

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "softmax.lpu")
    module = parse_module(open(path).read(), path)
    c = compile_function(module, "main", CFG, os.path.dirname(path), file=path)
    folded = kernel_insts(c.kernel, CFG)
    flat_op = expand_kernel(c.kernel, CFG)
    flat = kernel_insts(flat_op, CFG)
    assert count(folded, "repeat") > 0 and count(flat, "repeat") == 0 and len(folded) < len(flat)
    assert key(refold(flat)) == key(folded)
    fn = function(module, "main")
    rng = np.random.default_rng(0)
    args = {n: random_input(a.type, rng) for n, a in zip(arg_names(fn), fn.body.block.args)}
    outs = []
    for kop in (c.kernel, flat_op):
        k = to_kernel(kop, CFG)
        obj = emit(Program(CFG.name, CFG, list(c.program.tensors), [], [k], path))
        with np.errstate(all="ignore"):
            r = simulate(link_objects([("main", obj)]), inputs=c.inputs(args), outputs=c.output_symbols())
        assert r.hazards == [] and r.machine.cycles == c.cycles
        outs.append(c.results(r.outputs)[0])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_schedule_general_unfolded_then_unroll_is_schedule_general():
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "softmax.lpu")
    text = open(path).read()
    ref = print_module(optimize(text, path, "schedule-general"))
    flat = print_module(optimize(text, path, "schedule-general{fold=false}"))
    assert "repeat" in ref and "repeat" not in flat
    assert print_module(optimize(text, path, "schedule-general{fold=false},unroll")) == ref
    assert print_module(optimize(text, path, "schedule-general,unroll{full=true}")) == flat
    assert code(assemble(flat, "s.lpu"))[0][2] == code(assemble(ref, "s.lpu"))[0][2] == 416
