"""Incremental checking (lpu.dsl.incremental) equals check_module on the whole text, over random
edit sequences: the same diagnostics, module and source index; and it re-does only the
functions an edit can affect."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpu.dsl.frontend import check_module, source_index
from lpu.dsl.incremental import IncrementalChecker, split_functions
from lpu.dsl.printer import print_module

BASE = """target "lpu-v1"

data @w : tensor<4x4xf16> = [0.5]
reserve @s : tensor<4xf16>
extern @ext

func @first(%x: tensor<4xf16>) -> tensor<4xf16> {
  %a = add %x, %x
  %b = call @later(%a)
  %c = mul %b, %x {chip = 0}
  return %c
}

kernel @k {
  @0 MEM_W0 read.i8 [@s], s0e   // braces } in a comment
}

func @later(%y: tensor<4xf16>) -> tensor<4xf16> {
  %w = get @w : tensor<4x4xf16>
  %m = matmul %y, %w
  %h = cast %m : tensor<4xf16>
  %r = for %i = 0 to 2 iter(%acc = %h) : tensor<4xf16> {
    %n = add %acc, %y
    yield %n
  }
  return %r
}

func @last(%z: tensor<4xf16>) -> tensor<4xf16> {
  %u = call @first(%z)
  %v = softmax %u
  return %v
}
"""

# edits a person makes: each replaces one piece of text by another, wherever it occurs first
# after a position
SWAPS = [("%x", "%y"), ("%y", "%x"), ("f16", "f32"), ("tensor<4xf16>", "tensor<8xf16>"), ("add", "sub"),
         ("add", "ad"), ("@later", "@lat"), ("@first", "@w"), ("matmul", "matmul %y,"), ("\n", "\n\n"),
         ("\n", ""), ("}", ""), ("{", "{{"), ("return", "retur"), ("%", ""), ("@w", "@s"), (" : tensor<4xf16>", ""),
         ("func @last", "func @first"), ("data @w", "data @later"), ("%c", "%a"), ("0.5", "[1, 2]"),
         ("to 2", "to 2 step 3"), (", %x", ""), ("call @later(%a)", "call @later(%a, %a)")]

EDIT = st.one_of(
    st.tuples(st.just("swap"), st.integers(0, len(SWAPS) - 1), st.integers(0, 10_000)),
    st.tuples(st.just("char"), st.sampled_from(list("%@{}()[],:=x0 \n")), st.integers(0, 10_000)),
    st.tuples(st.just("del"), st.integers(1, 3), st.integers(0, 10_000)),
)


def apply(text: str, edit) -> str:
    kind, a, pos = edit
    pos %= max(1, len(text))
    if kind == "swap":
        old, new = SWAPS[a]
        i = text.find(old, pos)
        if i < 0:
            i = text.find(old)
        return text if i < 0 else text[:i] + new + text[i + len(old):]
    if kind == "char":
        return text[:pos] + a + text[pos:]
    return text[:pos] + text[pos + a:]


def summary(module, diags):
    index = source_index(module) if module is not None else None
    printed = print_module(module) if module is not None and not diags else None
    if index is None:
        return diags, printed, None
    defs = index.value_defs
    return (diags, printed, sorted((l.line, l.col, l.length) for l in defs.values()),
            [(l, defs.get(v)) for l, v in index.value_uses], list(index.symbol_defs.items()),
            list(index.symbol_uses), sorted((l.line, l.col) for l in index.op_locs.values()))


def same(checker: IncrementalChecker, text: str) -> None:
    fast = summary(*checker.check(text))
    full = summary(*check_module(text, "t.lpu"))
    assert fast == full, text


def _edit_sequence(edits):
    checker = IncrementalChecker("t.lpu")
    text = BASE
    same(checker, text)
    for e in edits:
        text = apply(text, e)
        same(checker, text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EDIT, min_size=1, max_size=8))
def test_random_edit_sequences_give_the_full_checks_results(edits):
    _edit_sequence(edits)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EDIT, min_size=1, max_size=12))
def test_many_random_edit_sequences(edits):
    _edit_sequence(edits)


def test_an_edit_inside_one_function_reparses_that_function_only():
    checker = IncrementalChecker("t.lpu")
    _m, diags = checker.check(BASE)
    assert diags == [] and checker.incremental and checker.reparsed == 3
    _m, diags = checker.check(BASE.replace("%n = add %acc, %y", "%n = sub %acc, %y"))
    assert diags == [] and checker.incremental
    assert (checker.reparsed, checker.reverified) == (1, 1)


def test_a_changed_signature_rechecks_its_callers():
    checker = IncrementalChecker("t.lpu")
    checker.check(BASE)
    text = BASE.replace("func @later(%y: tensor<4xf16>) -> tensor<4xf16>", "func @later(%y: tensor<4xf16>) -> tensor<4xf32>")
    _m, diags = checker.check(text)
    assert diags == check_module(text, "t.lpu")[1]
    assert [d.message for d in diags] == [
        "'df.mul' op operands have different element types: f32 and f16",
    ]
    assert checker.reparsed == 2  # @later itself and @first, which calls it; not @last


def test_an_error_in_one_function_suppresses_verification_as_the_full_check_does():
    checker = IncrementalChecker("t.lpu")
    checker.check(BASE)
    text = BASE.replace("%u = call @first(%z)", "%u = call @first(%q)")
    assert checker.check(text)[1] == check_module(text, "t.lpu")[1]
    assert [d.message for d in checker.check(text)[1]] == ["use of undefined value '%q'"]


def test_syntax_errors_fall_back_to_the_whole_text():
    checker = IncrementalChecker("t.lpu")
    text = BASE.replace("%c = mul %b, %x {chip = 0}", "%c = mul %b %x")
    assert checker.check(text)[1] == check_module(text, "t.lpu")[1]
    assert not checker.incremental


def test_split_functions_skips_kernels_and_nested_braces():
    blocks = split_functions(BASE.split("\n")[:-1])
    assert [(b.name, b.start, b.end) for b in blocks] == [("first", 7, 12), ("later", 18, 27), ("last", 29, 33)]


def test_the_docs_example(capsys):
    import contextlib
    import os
    import re

    root = os.path.join(os.path.dirname(__file__), "..")
    with open(os.path.join(root, "docs", "dataflow.md"), encoding="utf-8") as f:
        (block,) = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    with contextlib.chdir(root):
        exec(block, {})
    assert capsys.readouterr().out == "[] 1 1\n"


SYM_BASE = """reserve @cache : tensor<4x8xf16>
data @w : tensor<8x8xf16> = [0.5]

func @put(%v: tensor<1x8xf16>, %i: tensor<i32>, @kv: tensor<4x8xf16>, @m: tensor<8x8xf16>) -> tensor<4x8xf16> {
  %mm = get @m
  %p = matmul %v, %mm
  %h = cast %p : tensor<1x8xf16>
  store %h, @kv, %i {offsets = [0, 0], step = [1, 0]}
  %all = get @kv
  return %all
}

func @main(%v: tensor<1x8xf16>, %i: tensor<i32>) -> tensor<4x8xf16> {
  %s = mul %v, 0.5
  %r = call @put(%s, %i, @cache, @w)
  return %r
}
"""
SYM_SWAPS = [("@kv", "@cache"), ("@cache", "@kv"), ("@w)", "@cache)"), ("@m: tensor<8x8xf16>", "@m: tensor<8x4xf16>"),
             (", @m: tensor<8x8xf16>", ""), ("%i, @cache", "@cache, %i"), ("0.5", "%i"), ("store %h", "store %v")]


def _sym_edit_sequence(edits):
    checker = IncrementalChecker("t.lpu")
    text = SYM_BASE
    same(checker, text)
    for kind, a, pos in edits:
        if kind == "swap":
            old, new = SYM_SWAPS[a % len(SYM_SWAPS)]
            i = text.find(old, pos % max(1, len(text)))
            i = text.find(old) if i < 0 else i
            text = text if i < 0 else text[:i] + new + text[i + len(old):]
        else:
            text = apply(text, (kind, a, pos))
        same(checker, text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EDIT, min_size=1, max_size=6))
def test_random_edits_of_symbol_parameters_give_the_full_checks_results(edits):
    _sym_edit_sequence(edits)
