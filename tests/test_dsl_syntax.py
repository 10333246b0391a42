"""Round trips (parse(print(m)) == m) for the examples and for generated modules, and parser
fuzzing: any text gives a module or diagnostics, never a traceback."""

import glob
import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpu.diagnostics import DiagnosticError
from lpu.dsl.frontend import check_module, parse_module, source_index
from lpu.dsl.printer import print_module
from dsl_helpers import EXAMPLES, func, parse


def roundtrip(m):
    text = print_module(m)
    again = parse_module(text, "printed.lpu")
    assert again.is_structurally_equivalent(m), text
    assert print_module(again) == text
    return text


def test_examples_round_trip():
    paths = sorted(glob.glob(os.path.join(EXAMPLES, "*.lpu")))
    assert len(paths) >= 9
    for path in paths:
        with open(path) as f:
            roundtrip(parse_module(f.read(), path))


def test_mixed_file_keeps_kernels_and_tensors():
    text = ('target "lpu-v1"\n\nglobal data @a : tensor<320xi8> in MEM_W0 = load("vadd_a.npy")\n'
            'reserve @s : tensor<320xi8>\nextern @other\n\nglobal kernel @copy {\n'
            '  @0 MEM_W0 read.i8 [@a], s0e   // a comment with } in it\n}\n\n' +
            func("%y = call @copy(%x) {inputs = [@a], outputs = [@s]}\nreturn %y",
                 "(%x: tensor<320xi8>) -> tensor<320xi8>"))
    m = parse(text)
    assert [o.name for o in m.ops] == ["df.data", "df.reserve", "df.extern", "df.kernel", "df.func"]
    assert "@0 MEM_W0 read.i8 [@a], s0e" in roundtrip(m)


def test_source_index_for_the_language_server():
    text = func("%y = neg %x\n%z = add %y, %y\nreturn %z", "(%x: tensor<4xf16>) -> tensor<4xf16>")
    m = parse(text)
    index = source_index(m)
    y = index.at(3, 12)  # the first use of %y on line 3
    assert index.value_defs[y].line == 2 and index.value_defs[y].col == 3
    assert [(l.line, l.col) for l in index.references(y)] == [(3, 12), (3, 16)]
    assert index.symbol_defs["f"].line == 1


def test_syntax_errors_each_reported_and_parsing_resumes():
    text = func("%y = neg %x :\n%z = add %y %y\nreturn %x", "(%x: tensor<4xf16>) -> tensor<4xf16>")
    _m, diags = check_module(text, "t.lpu")
    assert [(d.loc.line, d.loc.col, d.message) for d in diags] == [
        (2, 16, "unexpected end of line, expected a tensor type"),
        (3, 15, "unexpected '%y', expected ',', ':', '{' or end of line"),
    ]


# --- generated modules -------------------------------------------------------------------
ELEMS = ["f16", "bf16", "f32"]
UNARY = ["exp", "tanh", "sigmoid", "relu", "neg", "abs", "gelu", "silu", "softmax"]
BINARY = ["add", "sub", "mul", "max", "min"]


@st.composite
def modules(draw):
    elem = draw(st.sampled_from(ELEMS))
    n = draw(st.sampled_from([1, 3, 320]))
    t = f"tensor<2x{n}x{elem}>"
    values = ["%x"]
    lines = []
    for i in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["unary", "binary", "const", "literal", "chip", "loop"]))
        v = f"%v{i}"
        if kind == "unary":
            lines.append(f"{v} = {draw(st.sampled_from(UNARY))} {draw(st.sampled_from(values))}")
        elif kind == "binary":
            a, b = draw(st.sampled_from(values)), draw(st.sampled_from(values))
            lines.append(f"{v} = {draw(st.sampled_from(BINARY))} {a}, {b}")
        elif kind == "const":
            c = draw(st.floats(-100, 100, allow_nan=False, width=16))
            lines.append(f"{v}c = constant {{value = {c!r}}} : tensor<{elem}>")
            lines.append(f"{v} = mul {draw(st.sampled_from(values))}, {v}c")
        elif kind == "literal":  # a number operand, on either side
            c = draw(st.integers(-100, 100)) if elem.startswith("i") else \
                draw(st.floats(-100, 100, allow_nan=False, width=16))
            a = draw(st.sampled_from(values))
            op = draw(st.sampled_from(BINARY))
            lines.append(f"{v} = {op} {a}, {c!r}" if draw(st.booleans()) else f"{v} = {op} {c!r}, {a}")
        elif kind == "chip":
            lines.append(f"{v} = relu {draw(st.sampled_from(values))} {{chip = {draw(st.integers(0, 3))}}}")
        else:
            lines += [f"{v} = for %i{i} = 0 to {draw(st.integers(0, 3))} iter(%a{i} = {draw(st.sampled_from(values))}) : {t} {{",
                      f"  %b{i} = add %a{i}, %a{i}", f"  yield %b{i}", "}"]
        values.append(v)
    lines.append(f"return {values[-1]}")
    return func("\n".join(lines), f"(%x: {t}) -> {t}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules())
def test_generated_modules_round_trip_and_run_the_same(text):
    m = parse(text)
    roundtrip(m)
    from lpu.dsl.interpreter import random_input, run_function
    arg = list(m.ops)[0].body.block.args[0]
    x = random_input(arg.type, np.random.default_rng(0))
    again = parse(print_module(m))
    a, b = run_function(m, "f", {"x": x}), run_function(again, "f", {"x": x})
    assert np.array_equal(a[0], b[0], equal_nan=True)


SAMPLE = open(os.path.join(EXAMPLES, "decoder.lpu")).read()


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(SAMPLE) - 1), st.integers(0, 40), st.text(alphabet="%@{}()[],:=<>x0123 \n-.#\"", max_size=6))
def test_fuzzed_text_gives_diagnostics_not_tracebacks(pos, cut, insert):
    text = SAMPLE[:pos] + insert + SAMPLE[pos + cut:]
    try:
        parse_module(text, "fuzz.lpu")
    except DiagnosticError as e:
        assert e.diagnostics and all(d.message for d in e.diagnostics)


def test_doc_examples_parse_and_run():
    import re
    from lpu.dsl.interpreter import run_function
    with open(os.path.join(os.path.dirname(EXAMPLES), "docs", "dataflow.md")) as f:
        blocks = re.findall(r"```lpu\n(.*?)```", f.read(), re.S)
    assert len(blocks) == 3
    m = parse_module(blocks[2], "doc2.lpu")  # symbol parameters and a store, three steps
    from lpu.dsl.interpreter import run_function as run
    state, rows = {}, []
    for pos in range(3):
        x = np.full((1, 4), pos + 1, np.float16)
        (s,) = run(m, "main", {"x": x, "pos": np.asarray(pos, np.int32)}, sram=state)
        rows.append(2.0 * (pos + 1))
        assert np.array_equal(s, np.full((1, 4), sum(rows), np.float32))
    check_module(blocks[0], "doc0.lpu")  # names a .npy that is not there: parsing is enough
    m = parse_module(blocks[1], "doc1.lpu")
    x = np.arange(8, dtype=np.float16)
    (r,) = run_function(m, "main", {"x": x})
    assert np.array_equal(r, (4 * 0.5 * x).astype(np.float32))
