"""Symbol parameters (``@name: TYPE``, references to SRAM tensors bound by each call): syntax and
round trips (.lpu and MLIR), the verifier's exact messages, the interpreter's binding, ``inline``'s
substitution, incremental checking and the source index."""

import os

import numpy as np
import pytest

from lpu.dsl import types as T
from lpu.dsl.cli import emit_mlir, parse_mlir
from lpu.dsl.frontend import SymbolParam, check_module, parse_module, source_index
from lpu.dsl.incremental import IncrementalChecker
from lpu.dsl.interpreter import run_function
from lpu.dsl.passes import run_pipeline
from lpu.dsl.printer import print_module
from dsl_helpers import ROOT, errors, parse

# the module of these tests; tests/test_dsl_mlir.py reads it back from upstream mlir-opt too
BLOCK = open(os.path.join(ROOT, "tests", "fixtures", "mlir", "symbols.lpu"), encoding="utf-8").read()


def reference(steps):
    """numpy: each step's two blocks, their caches growing one row a step."""
    w0, w1 = np.full((4, 4), 0.5), np.full((4, 4), 0.25)
    k0, k1 = np.zeros((3, 4), np.float16), np.zeros((3, 4), np.float16)
    out = []
    for pos, x in enumerate(steps):
        y0 = (x.astype(np.float64) @ w0).astype(np.float32).astype(np.float16)
        k0[pos] = y0[0]
        a = k0.astype(np.float64).sum(0, keepdims=True).astype(np.float32).astype(np.float16)
        y1 = (a.astype(np.float64) @ w1).astype(np.float32).astype(np.float16)
        k1[pos] = y1[0]
        b = k1.astype(np.float64).sum(0, keepdims=True).astype(np.float32).astype(np.float16)
        out.append((a, b))
    return out


def run_steps(m, steps):
    sram, out = {}, []
    for pos, x in enumerate(steps):
        out.append(run_function(m, "main", {"x": x, "pos": np.asarray(pos, np.int32)}, sram=sram))
    return out, sram


STEPS = [np.asarray([[1, 2, 3, 4]], np.float16) * (i + 1) for i in range(3)]


def test_calls_bind_symbol_parameters_to_the_tensors_passed():
    m = parse(BLOCK)
    got, sram = run_steps(m, STEPS)
    for (a, b), (ra, rb) in zip(got, reference(STEPS)):
        assert np.array_equal(a, ra) and np.array_equal(b, rb)
    # each block wrote its own cache, through its caller's own symbol parameter for @two
    assert np.array_equal(sram["blk1_kt"][2], (got[2][0].astype(np.float64) @ np.full((4, 4), 0.25))
                          .astype(np.float32).astype(np.float16)[0])
    assert set(sram) == {"blk0_wq", "blk1_wq", "blk0_kt", "blk1_kt"}


def test_printer_and_mlir_round_trip():
    m = parse(BLOCK)
    text = print_module(m)
    assert "func @two(@w: tensor<4x4xf16>, %x: tensor<1x4xf16>, @k: tensor<3x4xf16>, %pos: tensor<i32>)" in text
    assert "%b = call @two(@blk1_wq, %a, @blk1_kt, %pos) : tensor<1x4xf16>" in text
    again = parse_module(text, "p.lpu")
    assert again.is_structurally_equivalent(m) and print_module(again) == text
    mlir = emit_mlir(m)
    assert 'sym_params = ["wq", "kt"], sym_param_types = [tensor<4x4xf16>, tensor<3x4xf16>], ' \
           "sym_param_positions = [2 : i64, 3 : i64]" in mlir
    assert "sym_args = [@blk1_wq, @blk1_kt], sym_arg_positions = [0 : i64, 2 : i64]" in mlir
    back = parse_mlir(mlir, "m.mlir")
    assert print_module(back) == text
    assert [np.array_equal(a, b) for a, b in zip(run_steps(back, STEPS)[0][-1], run_steps(m, STEPS)[0][-1])] == [True, True]


def test_inline_substitutes_the_symbols_and_runs_the_same():
    m = parse(BLOCK)
    want, want_sram = run_steps(m, STEPS)
    run_pipeline(m, "inline,unroll,df-decompose,canonicalize,cse,dce")
    text = print_module(m)
    main = text[text.index("func @main"):]
    assert "call @" not in main and "%w_0 = get @blk1_wq" in main and "store %k_2, @blk1_kt, %pos" in main
    got, sram = run_steps(m, STEPS)
    for g, w in zip(got, want):
        assert all(np.array_equal(a, b) for a, b in zip(g, w))
    assert all(np.array_equal(sram[k], want_sram[k]) for k in want_sram)


def test_a_function_with_symbol_parameters_runs_with_them_bound():
    m = parse(BLOCK)
    x = STEPS[0]
    (y,) = run_function(m, "block", {"x": x, "pos": np.asarray(1, np.int32)},
                        symbols={"wq": "blk1_wq", "kt": "blk0_kt"})
    assert np.array_equal(y, (x.astype(np.float64) @ np.full((4, 4), 0.25)).astype(np.float32).astype(np.float16))
    bad = [({}, "no tensor for symbol parameter '@wq' of '@block' (run_function(..., symbols={'wq': 'tensor'}))"),
           ({"wq": "blk0_kt", "kt": "blk0_kt"}, "'@blk0_kt' of type tensor<3x4xf16> is given for the symbol parameter "
                                                 "'@wq' of '@block', of type tensor<4x4xf16>"),
           ({"wq": "nope", "kt": "blk0_kt"}, "'@nope' given for '@wq' is not a tensor (data or reserve) of this module"),
           ({"wq": "blk0_wq", "kt": "blk0_kt", "q": "blk0_kt"}, "'@block' has no symbol parameter '@q'")]
    from lpu.diagnostics import DiagnosticError
    for symbols, message in bad:
        with pytest.raises(DiagnosticError) as e:
            run_function(m, "block", {"x": x, "pos": np.asarray(1, np.int32)}, symbols=symbols)
        assert [d.message for d in e.value.diagnostics] == [message]


def _with_main(call: str, extra: str = "") -> str:
    head = BLOCK[:BLOCK.index("func @two")]
    return head + extra + ("func @main(%x: tensor<1x4xf16>, %pos: tensor<i32>) -> tensor<1x4xf16> {\n"
                           f"  %a = {call}\n  return %a\n}}\n")


@pytest.mark.parametrize("call,message", [
    ("call @block(%x, %pos, @blk0_kt, @blk0_kt)",
     "18:8: 'df.call' op '@blk0_kt' of type tensor<3x4xf16> is passed for the symbol parameter '@wq' of '@block', "
     "of type tensor<4x4xf16>"),
    ("call @block(%x, %pos, @blk0_wq)", "18:8: 'df.call' op '@block' takes 4 arguments, not 3"),
    ("call @block(%x, @blk0_wq, %pos, @blk0_kt)",
     "18:8: 'df.call' op argument 2 of '@block' is its value parameter '%pos' (pass a value %name, not a symbol)"),
    ("call @block(%x, %pos, %x, @blk0_kt)",
     "18:8: 'df.call' op argument 3 of '@block' is its symbol parameter '@wq' (pass a tensor @name, not a value)"),
    ("call @block(%x, %pos, @nothing, @blk0_kt)",
     "18:8: 'df.call' op '@nothing' is not a tensor (data or reserve) of this module nor a symbol parameter of "
     "the function"),
])
def test_calls_are_checked_against_the_symbol_parameters(call, message):
    assert errors(_with_main(call)) == [message]


def test_body_symbols_are_parameters_or_module_tensors():
    text = BLOCK.replace("%w = get @wq\n", "%w = get @wq\n  %v = get @unknown : tensor<4x4xf16>\n")
    assert errors(text) == ["8:8: 'df.get' op '@unknown' is not a tensor (data or reserve) of this module nor a "
                            "symbol parameter of the function"]
    # a parameter is the function's own: another function does not see it
    text = BLOCK.replace("%y = call @block(%x, %pos, @w, @k)", "%z = get @wq : tensor<4x4xf16>\n"
                                                               "  %y = call @block(%x, %pos, @w, @k)")
    assert errors(text) == ["18:8: 'df.get' op '@wq' is not a tensor (data or reserve) of this module nor a "
                            "symbol parameter of the function"]


def test_parameter_names_are_checked():
    text = BLOCK.replace("@kt: tensor<3x4xf16>)", "@wq: tensor<3x4xf16>)")
    assert errors(text) == ["6:75: redefinition of symbol parameter '@wq'",
                            "11:10: 'df.get' of '@kt' needs its result types after ':' ('@kt' is not defined above)"]
    text = BLOCK.replace("@kt", "@blk0_kt")
    assert errors(text) == ["6:6: 'df.func' op symbol parameter '@blk0_kt' has the name of the module's reserve "
                            "'@blk0_kt' (a parameter may not hide a module symbol)"]
    text = BLOCK.replace("%h = cast %s", "%y2 = call @two(%x, %x, @kt, %pos)\n  %h = cast %s")
    assert "'df.call' op argument 1 of '@two' is its symbol parameter '@w' (pass a tensor @name, not a value)" in \
        [e.split(": ", 1)[1] for e in errors(text)]
    kernel = 'kernel @k {\n  @0 MEM_W0 read.f16 [@blk0_kt], s0e\n}\n'
    assert errors(_with_main("call @k(%x) {inputs = [@blk0_wq]} : tensor<1x4xf16>", kernel).replace(
        "%a = call", "%a = call")) == [
        "21:8: 'df.call' op operand of type tensor<1x4xf16> cannot be written to '@blk0_wq' of type tensor<4x4xf16>"]
    assert errors(_with_main("call @k(@blk0_wq) : tensor<1x4xf16>", kernel)) == ["21:8: 'df.call' op '@k' is not a function: only a "
                                                               "function takes symbol arguments"]
    assert errors(_with_main("get %x, @blk0_wq")) == ["18:16: 'df.get' takes its @symbol as operand 1"]
    assert errors(_with_main("add @blk0_wq(@blk0_kt), %x")) == ["18:12: 'df.add' takes no @symbol operand"]


def test_kernel_tensors_may_be_symbol_parameters():
    text = """reserve @a : tensor<320xi8>
reserve @b : tensor<320xi8>

kernel @copy {
  @0 MEM_W0 read.i8 [@a], s0e
}

func @f(%x: tensor<320xi8>, @in: tensor<320xi8>, @out: tensor<320xi8>) -> tensor<320xi8> {
  %y = call @copy(%x) {inputs = [@in], outputs = [@out]}
  return %y
}

func @main(%x: tensor<320xi8>) -> tensor<320xi8> {
  %y = call @f(%x, @a, @b)
  return %y
}
"""
    m = parse(text)
    seen = {}

    def copy(sram):  # the kernel sees the module's tensors, as the call bound them
        seen.update({k: v.copy() for k, v in sram.items()})
        sram["b"] = sram["a"] + 1

    x = np.arange(320).astype(np.int8)
    (y,) = run_function(m, "main", {"x": x}, kernels={"copy": copy})
    assert np.array_equal(seen["a"], x) and np.array_equal(y, x + np.int8(1))


def _pos(text: str, line: int, token: str, nth: int = 0) -> tuple[int, int]:
    """(line, column) of the ``nth`` occurrence of ``token`` on ``line`` (1-based)."""
    src, col = text.split("\n")[line - 1], -1
    for _ in range(nth + 1):
        col = src.index(token, col + 1)
    return line, col + 1


def test_source_index_and_incremental_checking():
    m = parse(BLOCK)
    index = source_index(m)
    wq = index.at(*_pos(BLOCK, 7, "@wq"))  # the use of @wq in @block's get
    assert wq == SymbolParam("wq", None, "block") and T.type_text(wq.type) == "tensor<4x4xf16>"
    d = index.definition(wq)
    assert (d.line, d.col, d.length) == (*_pos(BLOCK, 6, "@wq"), 3)
    assert index.at(*_pos(BLOCK, 6, "@wq")) == wq
    assert [(l.line, l.col) for l in index.references(wq)] == [_pos(BLOCK, 7, "@wq")]
    k = index.at(*_pos(BLOCK, 18, "@k"))  # @k, passed on by @two
    assert k == SymbolParam("k", None, "two") and k != SymbolParam("k", None, "block")
    assert [(l.line, l.col) for l in index.references(k)] == [_pos(BLOCK, 18, "@k")]
    assert [(l.line, l.col) for l in index.references("blk1_kt")] == [_pos(BLOCK, 24, "@blk1_kt")]
    assert index.references("wq") == []  # the name alone is no module symbol

    checker = IncrementalChecker("t.lpu")
    changed = BLOCK.replace("@wq: tensor<4x4xf16>", "@wq: tensor<4x2xf16>")
    for text in (BLOCK, changed, BLOCK):
        fast, full = checker.check(text), check_module(text, "t.lpu")
        assert fast[1] == full[1] and checker.incremental
        assert source_index(fast[0]).param_defs == source_index(full[0]).param_defs
        assert source_index(fast[0]).symbol_uses == source_index(full[0]).symbol_uses
    # a changed symbol parameter re-verifies the function's callers too
    checker.check(BLOCK)
    _m, diags = checker.check(changed)
    assert [f"{d.loc.line}:{d.loc.col}: {d.message}" for d in diags] == [
        "9:8: 'df.cast' op cannot change the shape: tensor<1x2xf32> to tensor<1x4xf16>",
        "18:8: 'df.call' op '@w' of type tensor<4x4xf16> is passed for the symbol parameter '@wq' of '@block', "
        "of type tensor<4x2xf16>",
        "23:8: 'df.call' op '@blk0_wq' of type tensor<4x4xf16> is passed for the symbol parameter '@wq' of '@block', "
        "of type tensor<4x2xf16>"]
    assert checker.reverified == 3  # @block itself, and both its callers
