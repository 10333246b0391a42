"""A df ``call`` of an assembly kernel: compiled (the kernel's instructions spliced into the
function's schedule), run by the reference interpreter on the simulator, and the
diagnostics of what cannot work."""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pytest

from lpu.compile import compile_source, run_source
from lpu.diagnostics import DiagnosticError
from lpu.driver import main as lpu_main
from lpu.dsl.frontend import parse_module
from lpu.dsl.interpreter import run_function

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "kernel_call.lpu")

HEAD = '''target "lpu-v1"
data @a : tensor<320xi8> in MEM_W0 = [0]
data @b : tensor<320xi8> in MEM_E0 = [0]
reserve @sum : tensor<320xi8> in MEM_E1
kernel @vadd {
  @0 MEM_W0  read.i8  [@a], s0e
  @0 MEM_E0  read.i8  [@b], s1w
  @3 VXM.0   add.i8   s0e, s1w, s2e
  @7 MEM_E1  write.i8 [@sum], s2e
}
'''

# a 2 x 400 tensor is three vectors in the kernel's tensors (flattened), but two rows of two
# vectors each in the function's own layout: the operands are regathered on the way in and out
RAGGED = '''target "lpu-v1"
reserve @a : tensor<2x400xi8> in MEM_W0
reserve @b : tensor<2x400xi8> in MEM_E0
reserve @c : tensor<2x400xi8> in MEM_E1
kernel @vadd3 {
  @0 MEM_W0  read.i8  [@a], s0e
  @0 MEM_E0  read.i8  [@b], s1w
  @1 MEM_W0  read.i8  [@a + 1], s0e
  @1 MEM_E0  read.i8  [@b + 1], s1w
  @2 MEM_W0  read.i8  [@a + 2], s0e
  @2 MEM_E0  read.i8  [@b + 2], s1w
  @3 VXM.0   add.i8   s0e, s1w, s2e
  @4 VXM.0   add.i8   s0e, s1w, s2e
  @5 VXM.0   add.i8   s0e, s1w, s2e
  @7 MEM_E1  write.i8 [@c], s2e
  @8 MEM_E1  write.i8 [@c + 1], s2e
  @9 MEM_E1  write.i8 [@c + 2], s2e
}
func @main(%x: tensor<2x400xi8>, %y: tensor<2x400xi8>) -> tensor<2x400xi8>, tensor<2x400xi8>, tensor<2x1xi8> {
  %s = call @vadd3(%x, %y) {inputs = [@a, @b], outputs = [@c]}
  %t = call @vadd3(%s, %x) {inputs = [@a, @b], outputs = [@c]}
  %u = sub %s, %t
  %m = reduce_max %t {axis = 1}
  return %u, %t, %m
}
'''

# f16: two words a vector; 330 lanes: the second vector's padding lanes are written as zeros
F16 = '''target "lpu-v1"
reserve @a : tensor<330xf16> in MEM_W0
reserve @b : tensor<330xf16> in MEM_E0
reserve @c : tensor<330xf16> in MEM_E1
kernel @vmul {
  @0 MEM_W0  read.f16  [@a], s0e
  @0 MEM_E0  read.f16  [@b], s2w
  @2 MEM_W0  read.f16  [@a + 2], s0e
  @2 MEM_E0  read.f16  [@b + 2], s2w
  @3 VXM.0   mul.f16   s0e, s2w, s4e
  @5 VXM.0   mul.f16   s0e, s2w, s4e
  @7 MEM_E1  write.f16 [@c], s4e
  @9 MEM_E1  write.f16 [@c + 2], s4e
}
func @main(%x: tensor<330xf16>, %y: tensor<330xf16>) -> tensor<330xf16>, tensor<330xf32> {
  %e = exp %x
  %p = call @vmul(%e, %y) {inputs = [@a, @b], outputs = [@c]}
  %w = cast %p : tensor<330xf32>
  return %p, %w
}
'''


def test_example_compiles_runs_and_matches_numpy():
    x = np.arange(-320, 320).astype(np.int8)
    y = (np.arange(640) * 7).astype(np.int8)
    out = run_source(open(EXAMPLE).read(), EXAMPLE, {"x": x, "y": y}, check=True)
    assert out.hazards == [] and out.matches
    want = np.maximum((np.maximum(x, 0).astype(np.int8) + y).astype(np.int8), y)
    assert np.array_equal(out.result, want)
    assert out.cycles == 31


def test_the_kernel_is_spliced_in_unchanged_after_its_inputs_land():
    c, _ = compile_source(open(EXAMPLE).read(), EXAMPLE)
    text = c.assembly()
    body = text[text.index("global kernel @main"):]
    # the inputs' last write is at cycle 9 (one word): the kernel starts at cycle 10, its
    # instructions 10 cycles later than written; the function goes on after its length, 10 + 9
    for line in ["@10    MEM_W0  read.i8 [@a], s0e", "@11    MEM_E0  read.i8 [@b + 1], s1w",
                 "@13    VXM.0   add.i8 s0e, s1w, s2e", "@14    VXM.0   add.i8 s0e, s1w, s2e",
                 "@18    MEM_E1  write.i8 [@sum + 1], s2e", "@20    MEM_E1  read.i8 [@sum], s0w"]:
        assert line in body
    assert "reserve @sum : tensor<640xi8> in MEM_E1" in text
    assert sum(1 for ln in body.splitlines() if "add.i8" in ln) == 2


@pytest.mark.parametrize("src,cycles", [(RAGGED, 734), (F16, 51)])
def test_layouts_and_repeated_calls_match_the_interpreter(src, cycles):
    from lpu.compile import matches

    out = run_source(src, "k.lpu")
    assert out.hazards == [] and out.cycles == cycles
    got = out.compiled.results(_parts(out))
    want = run_function(parse_module(src, "k.lpu"), "main", out.inputs)
    assert len(got) == len(want) and all(matches(g, w) for g, w in zip(got, want))


def test_every_result_of_a_function_with_two_calls():
    rng = np.random.default_rng(1)
    x, y = (rng.integers(-128, 128, (2, 400)).astype(np.int8) for _ in range(2))
    out = run_source(RAGGED, "k.lpu", {"x": x, "y": y})
    s = (x + y).astype(np.int8)
    t = (s + x).astype(np.int8)
    got = out.compiled.results(_parts(out))
    assert np.array_equal(got[0], (s - t).astype(np.int8))  # %s survives the second call
    assert np.array_equal(got[1], t)
    assert np.array_equal(got[2], t.max(axis=1, keepdims=True))


def _parts(out):
    from lpu.compile import link_compiled
    from lpu.sim.cli import simulate

    c = out.compiled
    r = simulate(link_compiled(c), "k.lpu", inputs=c.inputs(out.inputs), outputs=c.output_symbols())
    return r.outputs


def test_the_interpreter_runs_a_kernel_on_the_simulator():
    m = parse_module(HEAD + "func @f(%x: tensor<320xi8>, %y: tensor<320xi8>) -> tensor<320xi8> {\n"
                     "  %s = call @vadd(%x, %y) {inputs = [@a, @b], outputs = [@sum]}\n  return %s\n}\n", "k.lpu")
    rng = np.random.default_rng(2)
    x, y = (rng.integers(-128, 128, 320).astype(np.int8) for _ in range(2))
    (sim,) = run_function(m, "f", {"x": x, "y": y})

    def vadd(sram):
        sram["sum"][:] = sram["a"] + sram["b"]
    (ref,) = run_function(m, "f", {"x": x, "y": y}, kernels={"vadd": vadd})
    assert np.array_equal(sim, (x + y).astype(np.int8)) and np.array_equal(sim, ref)


def test_schedule_general_splices_the_kernel_and_drops_it(tmp_path):
    from lpu.asm.assembler import assemble
    from lpu.asm.emit import emit
    from lpu.dsl.cli import main as opt_main
    from lpu.linker.link import link_objects
    from lpu.sim.cli import simulate

    src = tmp_path / "k.lpu"
    src.write_text(open(EXAMPLE).read())
    out = tmp_path / "k.s"
    assert opt_main([str(src), "-p", "schedule-general", "-o", str(out)]) == 0
    text = out.read_text()
    assert "kernel @vadd2" not in text and text.count("kernel @") == 1
    assert text.count("reserve @sum :") == 1
    prog = assemble(text, str(out))
    x = np.arange(-320, 320).astype(np.int8)
    y = (np.arange(640) * 7).astype(np.int8)
    c, _ = compile_source(open(EXAMPLE).read(), EXAMPLE)
    inputs = {f"main_{k}": v for k, v in c.inputs({"x": x, "y": y}).items()}
    outs = [f"main_{s}" for s in c.output_symbols()]
    r = simulate(link_objects([("k", emit(prog))]), "k", inputs=inputs, outputs=outs)
    assert r.hazards == [] and r.machine.cycles == 31
    got = c.results({s: r.outputs[f"main_{s}"] for s in c.output_symbols()})[0]
    assert np.array_equal(got, np.maximum((np.maximum(x, 0).astype(np.int8) + y).astype(np.int8), y))


GET_AFTER = HEAD + '''func @main(%x: tensor<320xi8>, %y: tensor<320xi8>) -> tensor<320xi8> {
  %s = call @vadd(%x, %y) {inputs = [@a, @b], outputs = [@sum]}
  %g = get @sum : tensor<320xi8>
  %r = add %s, %g
  return %r
}
'''
CALL = '''func @main(%x: tensor<320xi8>, %y: tensor<320xi8>) -> tensor<320xi8> {
  %s = call @vadd(%x, %y) {inputs = [@a, @b], outputs = [@sum]}
  return %s
}
'''


@pytest.mark.parametrize("src,want", [
    (GET_AFTER, """k.lpu:13:8: error: '@sum' is read after a kernel call that writes it; the code generator reads a \
tensor's contents at compile time (pass it to the kernel's caller as a result instead)
  %g = get @sum : tensor<320xi8>
       ^~~
"""),
    (HEAD.replace("@7 MEM_E1", "@6 MEM_E1") + CALL, """k.lpu:9:31: error: no value on s2e at MEM_E1 (position 49) in cycle 6
  @6 MEM_E1  write.i8 [@sum], s2e
                              ^~~
k.lpu:8:3: note: the nearest value on s2e, written here in cycle 3, passes MEM_E1 (position 49) in cycle 7
  @3 VXM.0   add.i8   s0e, s1w, s2e
  ^~
"""),
    (HEAD.replace("in MEM_W0 = [0]", "= [0]") + CALL, """k.lpu:6:23: error: '@a' has no placement, so a kernel \
cannot address it; place it in a slice ('in MEM_W3') or leave it to the dataflow level
  @0 MEM_W0  read.i8  [@a], s0e
                      ^~~~
k.lpu:2:6: note: '@a' is defined here
data @a : tensor<320xi8> = [0]
     ^~
"""),
    (HEAD + "reserve @h : tensor<320xi8> in MEM_E\n" + CALL.replace("[@a, @b]", "[@a, @h]"), """k.lpu:13:8: \
error: the code generator needs '@h' in one MEM slice ('in MEM_W0', …) to pass values to and from a kernel through it
  %s = call @vadd(%x, %y) {inputs = [@a, @h], outputs = [@sum]}
       ^~~~
"""),
])
def test_what_cannot_compile_is_a_diagnostic(src, want, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "k.lpu").write_text(src)
    assert lpu_main(["compile", "k.lpu", "-o", "k.lpx"]) == 1
    assert capsys.readouterr().err == want
    assert not (tmp_path / "k.lpx").exists()


def test_calls_of_big_functions_and_batched_matmuls_compile():
    body = "\n".join(f"  %v{i + 1} = add %v{i}, %v{i}" for i in range(40))
    src = textwrap.dedent(f'''\
        target "lpu-v1"
        func @g(%v0: tensor<8xi32>) -> tensor<8xi32> {{
        {body}
          return %v40
        }}
        func @main(%a: tensor<8xi32>, %y: tensor<2x3x4xi8>, %w: tensor<4x5xi8>) -> tensor<8xi32>, tensor<2x3x5xi32> {{
          %r = call @g(%a)
          %m = matmul %y, %w : tensor<2x3x5xi32>
          return %r, %m
        }}
        ''')
    out = run_source(src, "big.lpu", check=True)
    assert out.hazards == [] and out.matches
    lone = '''target "lpu-v1"
func @main(%y: tensor<2x3x4xi8>, %w: tensor<4x5xi8>) -> tensor<2x3x5xi32> {
  %m = matmul %y, %w : tensor<2x3x5xi32>
  return %m
}
'''
    out = run_source(lone, "mm.lpu", check=True)
    assert out.hazards == [] and out.matches


def test_a_kernel_that_does_not_assemble_is_a_diagnostic_of_the_reference_run_too():
    m = parse_module(HEAD.replace("@7 MEM_E1", "@6 MEM_E1") + CALL, "k.lpu")
    with pytest.raises(DiagnosticError) as e:
        run_function(m, "main", {"x": np.zeros(320, np.int8), "y": np.zeros(320, np.int8)})
    (d,) = e.value.diagnostics
    assert d.message == "no value on s2e at MEM_E1 (position 49) in cycle 6"
    assert (d.loc.file, d.loc.line, d.loc.col) == ("k.lpu", 9, 31)
