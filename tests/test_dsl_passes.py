"""Passes: expected IR, semantics preserved (interpretation before == after, bit for bit),
locations inherited by the ops a rewrite creates."""

import numpy as np
import pytest

from lpu.diagnostics import DiagnosticError
from lpu.dsl.frontend import loc_of
from lpu.dsl.interpreter import run_function
from lpu.dsl.passes import run_pipeline
from lpu.dsl.printer import print_module
from dsl_helpers import func, parse

rng = np.random.default_rng(4)
SIG = "(%x: tensor<4x320xf16>, %g: tensor<320xf16>, %b: tensor<320xf16>) -> tensor<4x320xf16>"


def same_after(text, spec, **inputs):
    m = parse(text)
    before = run_function(m, "f", inputs)
    run_pipeline(m, spec)
    after = run_function(m, "f", inputs)
    for a, b in zip(before, after):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    return m


def inputs():
    return dict(x=(rng.standard_normal((4, 320)) * 2).astype(np.float16),
                g=rng.standard_normal(320).astype(np.float16), b=rng.standard_normal(320).astype(np.float16))


@pytest.mark.parametrize("op", ["%y = softmax %x", "%y = layernorm %x, %g, %b {eps = 0.001}",
                                "%y = rmsnorm %x, %g", "%y = gelu %x", "%y = silu %x"])
def test_decompose_is_bit_exact_and_keeps_locations(op):
    m = same_after(func(op + "\nreturn %y", SIG), "df-decompose", **inputs())
    names = {o.name for o in m.walk()}
    assert not names & {"df.softmax", "df.layernorm", "df.rmsnorm", "df.gelu", "df.silu"}
    body = list(m.ops)[0].body.block.ops
    assert {loc_of(o).line for o in body if o.name != "df.return"} == {2}


def test_decompose_softmax_expected_ir():
    m = parse(func("%y = softmax %x\nreturn %y", "(%x: tensor<4x320xf16>) -> tensor<4x320xf16>"))
    run_pipeline(m, "df-decompose")
    assert print_module(m) == """func @f(%x: tensor<4x320xf16>) -> tensor<4x320xf16> {
  %y = reduce_max %x {axis = -1} : tensor<4x1xf16>
  %y_0 = sub %x, %y : tensor<4x320xf16>
  %y_1 = exp %y_0 : tensor<4x320xf16>
  %y_2 = reduce_sum %y_1 {axis = -1} : tensor<4x1xf32>
  %y_3 = recip %y_2 : tensor<4x1xf32>
  %y_4 = cast %y_3 : tensor<4x1xf16>
  %y_5 = mul %y_1, %y_4 : tensor<4x320xf16>
  return %y_5
}
"""


def test_canonicalize_folds_constants_and_cse_dce():
    text = func("%a = constant {value = 2.0} : tensor<f16>\n%b = constant {value = 3.0} : tensor<f16>\n"
                "%c = mul %a, %b\n%d = add %x, %c\n%e = add %x, %c\n%unused = exp %x\n%f = add %d, %e\n"
                "%g = cast %f : tensor<4x320xf16>\nreturn %g", "(%x: tensor<4x320xf16>) -> tensor<4x320xf16>")
    m = same_after(text, "canonicalize,cse,dce", x=inputs()["x"])
    assert print_module(m) == """func @f(%x: tensor<4x320xf16>) -> tensor<4x320xf16> {
  %d = add %x, 6.0 : tensor<4x320xf16>
  %f = add %d, %d : tensor<4x320xf16>
  return %f
}
"""
    const = list(m.ops)[0].body.block.first_op  # (printed as the number operand of the add)
    assert const.name == "df.constant" and loc_of(const).line == 4  # the folded constant keeps the location of the `mul`


def test_send_recv_are_never_removed():
    text = func("send %x {to = 1}\n%y = recv {from = 0, chip = 1} : tensor<4x320xf16>\n"
                "%z = recv {from = 0, chip = 1} : tensor<4x320xf16>\nreturn %x",
                "(%x: tensor<4x320xf16>) -> tensor<4x320xf16>")
    m = parse(text)
    run_pipeline(m, "canonicalize,cse,dce")
    assert [o.name for o in list(m.ops)[0].body.block.ops] == ["df.send", "df.recv", "df.recv", "df.return"]


LOOP = ("%z = constant {value = 0} : tensor<2xi32>\n"
        "%r = for %i = 0 to 4 iter(%a = %z) : tensor<2xi32> {\n"
        "  %s = slice %x, %i {offsets = [0], sizes = [2], step = [2]}\n  %n = add %a, %s\n  yield %n\n}\nreturn %r")
LOOP_SIG = "(%x: tensor<8xi32>) -> tensor<2xi32>"


def test_unroll_fully_then_canonicalize_gives_static_slices():
    x = np.arange(8, dtype=np.int32) * 3
    m = same_after(func(LOOP, LOOP_SIG), "unroll,canonicalize,dce", x=x)
    text = print_module(m)
    assert "for" not in text
    assert [line.strip() for line in text.splitlines() if "slice" in line] == [
        f"%s{'' if k == 0 else '_' + str(k - 1)} = slice %x {{offsets = [{2 * k}], sizes = [2]}} : tensor<2xi32>"
        for k in range(4)] or text.count("slice %x {offsets") == 4


def test_unroll_by_factor():
    x = np.arange(8, dtype=np.int32)
    m = same_after(func(LOOP, LOOP_SIG), "unroll{factor=2}", x=x)
    loops = [o for o in m.walk() if o.name == "df.for"]
    assert len(loops) == 1 and loops[0].attributes["step"].value.data == 2
    assert sum(1 for o in loops[0].body.block.ops if o.name == "df.slice") == 2


def test_unroll_factor_must_divide():
    m = parse(func(LOOP, LOOP_SIG))
    with pytest.raises(DiagnosticError) as e:
        run_pipeline(m, "unroll{factor=3}")
    d = e.value.diagnostics[0]
    assert (d.message, d.loc.line) == ("unroll factor 3 does not divide the trip count 4 of this loop", 3)


def test_inline_small_functions():
    text = (func("%y = call @g(%x)\n%z = call @g(%y)\nreturn %z", "(%x: tensor<8xi32>) -> tensor<8xi32>") +
            "func @g(%a: tensor<8xi32>) -> tensor<8xi32> {\n  %b = add %a, %a\n  return %b\n}\n")
    m = same_after(text, "inline", x=np.arange(8, dtype=np.int32))
    f = list(m.ops)[0]
    assert [o.name for o in f.body.block.ops] == ["df.add", "df.add", "df.return"]
    assert [loc_of(o).line for o in f.body.block.ops][:2] == [2, 3]  # the calls' lines


def test_inline_respects_max_ops():
    text = (func("%y = call @g(%x)\nreturn %y", "(%x: tensor<8xi32>) -> tensor<8xi32>") +
            "func @g(%a: tensor<8xi32>) -> tensor<8xi32> {\n  %b = add %a, %a\n  return %b\n}\n")
    m = parse(text)
    run_pipeline(m, "inline{max_ops=1}")
    assert any(o.name == "df.call" for o in m.walk())


def test_unknown_pass_is_a_diagnostic():
    with pytest.raises(DiagnosticError) as e:
        run_pipeline(parse(func("return %x")), "no-such-pass")
    assert "invalid pass pipeline 'no-such-pass'" in e.value.diagnostics[0].message
