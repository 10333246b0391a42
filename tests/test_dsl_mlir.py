"""MLIR out and back in (``lpu.dsl.mlir``), also through upstream ``mlir-opt``: argument and result
names, location aliases and every location form, symbol parameters.

``tests/fixtures/mlir/*.mlir-opt.mlir`` are exactly what mlir-opt printed (``make_fixtures.sh``
there), so the default suite checks reading them without mlir-opt; the tests marked for mlir-opt
run the whole trip over every example where it is installed (Debian: ``mlir-19-tools``).
"""

from __future__ import annotations

import glob
import io
import os
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import FileLineColLoc

from lpu.diagnostics import DiagnosticError
from lpu.driver import main as lpu_main
from lpu.dsl.cli import main as opt_main
from lpu.dsl.frontend import parse_module
from lpu.dsl.interpreter import run_function
from lpu.dsl.mlir import emit_mlir, parse_mlir
from lpu.dsl.printer import print_module
from dsl_helpers import EXAMPLES, MLIR_OPT, ROOT
from test_dsl_symbols import STEPS, run_steps

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "mlir")
needs_mlir_opt = pytest.mark.skipif(MLIR_OPT is None, reason="upstream mlir-opt is not installed "
                                    "(apt-get install mlir-19-tools)")


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return f.read()


def locations(module) -> list[tuple[str, tuple | None]]:
    """Every op and block argument with the file position it carries (None: none)."""
    def pos(loc):
        return (loc.filename.data, loc.line.data, loc.column.data) if isinstance(loc, FileLineColLoc) else None
    out = []
    for op in module.walk():
        out.append((op.name, pos(op.location)))
        for region in op.regions:
            for block in region.blocks:
                out += [("arg", pos(a.location)) for a in block.args if getattr(a, "location", None) is not None]
    return out


def names(module) -> list[tuple[str, list[str], list[str]]]:
    """Each function's argument and returned values' names."""
    from lpu.dsl import dialect as D
    return [(f.sym_name.data, [a.name_hint for a in f.body.block.args],
             [v.name_hint for v in f.body.block.last_op.operands]) for f in module.ops if isinstance(f, D.FuncOp)]


# --- what mlir-opt prints, read back (checked-in fixtures) ---------------------------------------
def test_mlir_opt_output_names_the_arguments_and_results_again(tmp_path, capsys):
    # mlir-opt renamed %x to %arg0 and %y to %0; arg_names and df.result_names give them back
    back = tmp_path / "back.lpu"
    (tmp_path / "s.mlir").write_text(fixture("softmax.mlir-opt.mlir"))
    assert opt_main([str(tmp_path / "s.mlir"), "-o", str(back)]) == 0
    assert back.read_text() == ('target "lpu-v1"\n\nfunc @main(%x: tensor<4x320xf16>) -> tensor<4x320xf16> {\n'
                                "  %y = softmax %x : tensor<4x320xf16>\n  return %y\n}\n")
    x = np.random.default_rng(1).standard_normal((4, 320)).astype(np.float16)
    np.save(tmp_path / "x.npy", x)
    assert lpu_main(["run", "--reference", str(back), "--input", f"x={tmp_path / 'x.npy'}",
                     "--output", f"y={tmp_path / 'y.npy'}", "--quiet"]) == 0, capsys.readouterr().err
    want = run_function(parse_module(open(os.path.join(EXAMPLES, "softmax.lpu")).read(), "softmax.lpu"),
                        "main", {"x": x})[0]
    assert np.array_equal(np.load(tmp_path / "y.npy"), want)


def test_names_the_language_reads_are_kept_exactly_and_never_collide_in_mlir():
    # xDSL's name setter dropped a trailing _<digits> (%_0 became an empty name: a traceback),
    # and its printer gave a second %s the name %s_1 that the program's own %s_1 also had
    src = ("func @main(%_0: tensor<4xf32>) -> tensor<4xf32> {\n  %s = softmax %_0 : tensor<4xf32>\n"
           "  %s_1 = add %s, %_0 : tensor<4xf32>\n  return %s_1\n}\n")
    module = parse_module(src, "n.lpu")
    assert print_module(module) == src
    assert names(module) == [("main", ["_0"], ["s_1"])]
    from lpu.dsl.passes import run_pipeline
    run_pipeline(module, "df-decompose")
    text = emit_mlir(module)
    defined = [line.split(" = ")[0].strip() for line in text.splitlines() if " = \"df." in line]
    assert len(defined) == len(set(defined)) > 2
    x = np.linspace(-1, 1, 4, dtype=np.float32)
    want = run_function(parse_module(src, "n.lpu"), "main", {"_0": x})[0]
    assert np.array_equal(run_function(parse_mlir(text, "n.mlir"), "main", {"_0": x})[0], want)


@pytest.mark.parametrize("source, mlir", [("examples/softmax.lpu", "softmax.debuginfo.mlir-opt.mlir"),
                                          ("tests/fixtures/mlir/symbols.lpu", "symbols.debuginfo.mlir-opt.mlir")])
def test_debuginfo_location_aliases_keep_every_location(source, mlir):
    # mlir-opt --mlir-print-debuginfo defines its #loc aliases after the module that uses them
    text = fixture(mlir)
    assert "loc(#loc1)" in text and text.rstrip().endswith(")") and "\n#loc1 = loc(" in text
    original = parse_module(open(os.path.join(ROOT, source), encoding="utf-8").read(), source)
    back = parse_mlir(text, mlir)
    assert back.is_structurally_equivalent(original)
    assert locations(back) == locations(original)
    assert names(back) == names(original)
    assert len([p for _n, p in locations(back) if p is not None]) == len(list(original.walk())) - 1  # all but the module


def test_symbol_parameters_survive_mlir_opt():
    original = parse_module(fixture("symbols.lpu"), "symbols.lpu")
    back = parse_mlir(fixture("symbols.debuginfo.mlir-opt.mlir"), "symbols.mlir")
    want = [(f.sym_name.data, f.sym_param_list(), f.sym_param_positions()) for f in original.ops if hasattr(f, "sym_param_list")]
    got = [(f.sym_name.data, f.sym_param_list(), f.sym_param_positions()) for f in back.ops if hasattr(f, "sym_param_list")]
    assert got == want and got[0][1][0][0] == "wq"
    text = print_module(back)
    assert "func @two(@w: tensor<4x4xf16>, %x: tensor<1x4xf16>, @k: tensor<3x4xf16>, %pos: tensor<i32>)" in text
    assert "%b = call @two(@blk1_wq, %a, @blk1_kt, %pos) : tensor<1x4xf16>" in text and "%0 = get @wq" in text
    (got_out, got_sram), (want_out, want_sram) = run_steps(back, STEPS), run_steps(original, STEPS)
    assert all(np.array_equal(a, b) for g, w in zip(got_out, want_out) for a, b in zip(g, w))
    assert all(np.array_equal(got_sram[k], want_sram[k]) for k in want_sram)


# the file position each op of locations.mlir maps to: a named location is its child, fused its
# first file position, callsite its callee (or else its caller), a bare name or unknown nothing
LOCATION_FORMS = [
    ("builtin.module", None), ("df.func", ("t.lpu", 1, 6)), ("arg", ("t.lpu", 1, 10)),
    ("df.add", ("t.lpu", 2, 8)), ("df.mul", ("t.lpu", 3, 8)), ("df.sub", ("t.lpu", 4, 8)),
    ("df.max", ("t.lpu", 5, 8)), ("df.min", ("t.lpu", 6, 8)), ("df.neg", None), ("df.neg", ("t.lpu", 8, 8)),
    ("df.return", ("t.lpu", 9, 3))]


@pytest.mark.parametrize("name", ["locations.mlir", "locations.debuginfo.mlir-opt.mlir"])
def test_every_location_form_maps_to_its_file_position(name):
    text = fixture(name)
    if "debuginfo" in name:  # mlir-opt's aliases: before the module (a block argument's), after, nested
        assert text.startswith("#loc2 = loc(") and "#loc22 = loc(callsite(#loc19 at #loc20))" in text
    assert locations(parse_mlir(text, name)) == LOCATION_FORMS


def test_lpu_opt_prints_the_locations_it_read(tmp_path):
    src = tmp_path / "l.mlir"
    src.write_text(fixture("locations.debuginfo.mlir-opt.mlir"))
    out = tmp_path / "o.mlir"
    assert opt_main([str(src), "--emit", "mlir", "-o", str(out)]) == 0
    text = out.read_text()
    assert '"df.sub"(%1, %0) : (tensor<4xf16>, tensor<4xf16>) -> tensor<4xf16> loc("t.lpu":4:8)' in text
    assert "#loc" not in text and locations(parse_mlir(text, "o.mlir")) == LOCATION_FORMS


@pytest.mark.parametrize("name", ["softmax.mlir-opt.mlir", "softmax.debuginfo.mlir-opt.mlir", "locations.mlir"])
def test_lpu_opt_knows_mlir_on_standard_input(monkeypatch, capsys, name):
    # mlir-opt's output starts with `module attributes` or with a `#loc = ...` alias
    monkeypatch.setattr("sys.stdin", io.StringIO("// from mlir-opt\n" + fixture(name)))
    assert opt_main(["-"]) == 0
    assert capsys.readouterr().out.startswith(('target "lpu-v1"\n\nfunc @main(%x: tensor<4x320xf16>)',
                                               'target "lpu-v1"\n\nfunc @f(%x: tensor<4xf16>)'))


# --- bad location aliases: diagnostics ----------------------------------------------------------
ONE_OP = ('"builtin.module"() ({{\n'
          '  "df.data"() {{init = dense<1> : tensor<4xi8>, init_kind = "list", sym_name = "a", '
          'type = tensor<4xi8>}} : () -> () loc({use})\n'
          '}}) : () -> ()\n{defs}')


@pytest.mark.parametrize("use, defs, message, line, col", [
    ("#loc1", "", "undefined location alias '#loc1'", 2, 120),
    ("#loc1", '#loc1 = loc("a":1:2)\n#loc1 = loc("a":3:4)\n', "re-declaration of alias '#loc1'", 5, 1),
    ("#loc1", "#loc1 = loc(#loc2)\n#loc2 = loc(fused[#loc1])\n", "location alias '#loc1' is defined in terms of itself", 5, 19),
    ("#map", "#map = 3\n", "'#map' is not a location alias", 3, 120),
    ("#loc1", '#loc1 = loc("a":1:2 at 3)\n', "')' expected", 4, 21),
])
def test_bad_location_aliases_are_diagnostics(tmp_path, capsys, use, defs, message, line, col):
    text = ONE_OP.format(use=use, defs=defs)
    if use == "#map":  # an attribute alias is defined before use
        text = defs + text.replace(defs, "")
    path = tmp_path / "bad.mlir"
    path.write_text(text)
    assert opt_main([str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:{line}:{col}: error: {message}\n"), err
    assert "Traceback" not in err


# --- property: any location tree, aliased anyhow, reads back as its file position ----------------
_FILES = st.sampled_from(["a.lpu", "dir/b.lpu"])
_POS = st.integers(1, 999)


def _leaf():
    unknown = st.just(("unknown",))
    point = st.tuples(st.just("file"), _FILES, _POS, _POS)
    # FileLineColRange forms, as newer MLIR prints them: a line, a column range, a line range
    ranges = st.tuples(st.just("range"), _FILES, _POS, st.sampled_from(["", " to :7", " to 9:7"]))
    bare = st.tuples(st.just("name"), st.sampled_from(["df.add", "x y"]), st.none())
    return unknown | point | ranges | bare


def _tree(children):
    name = st.tuples(st.just("name"), st.sampled_from(["df.add", "df.softmax"]), children)
    fused = st.tuples(st.just("fused"), st.sampled_from(["", '<"cse">']), st.lists(children, min_size=1, max_size=3))
    callsite = st.tuples(st.just("callsite"), children, children)
    alias = st.tuples(st.just("alias"), st.booleans(), children)  # defined before (True) or after the module
    return name | fused | callsite | alias


LOC_TREES = st.recursive(_leaf(), _tree, max_leaves=8)


def _render(tree, defs: list[tuple[bool, str]]) -> str:
    kind = tree[0]
    if kind == "unknown":
        return "unknown"
    if kind == "file":
        return f'"{tree[1]}":{tree[2]}:{tree[3]}'
    if kind == "range":
        return f'"{tree[1]}":{tree[2]}' + ("" if not tree[3] else ":3" + tree[3])
    if kind == "name":
        return f'"{tree[1]}"' + (f"({_render(tree[2], defs)})" if tree[2] is not None else "")
    if kind == "fused":
        return f"fused{tree[1]}[" + ", ".join(_render(t, defs) for t in tree[2]) + "]"
    if kind == "callsite":
        return f"callsite({_render(tree[1], defs)} at {_render(tree[2], defs)})"
    inner = _render(tree[2], defs)
    alias = f"#loc{len(defs) + 1}"
    defs.append((tree[1], f"{alias} = loc({inner})"))
    return alias


def _expected(tree):
    kind = tree[0]
    if kind == "file":
        return tree[1:]
    if kind == "range":
        return (tree[1], tree[2], 3 if tree[3] else 1)
    if kind == "name":
        return _expected(tree[2]) if tree[2] is not None else None
    if kind == "fused":
        return next((p for p in map(_expected, tree[2]) if p is not None), None)
    if kind == "callsite":
        return _expected(tree[1]) or _expected(tree[2])
    if kind == "alias":
        return _expected(tree[2])
    return None


@settings(max_examples=150)
@given(st.lists(LOC_TREES, min_size=1, max_size=4))
def test_any_location_reads_back_as_its_file_position(trees):
    defs: list[tuple[bool, str]] = []
    ops = [f'  "df.reserve"() {{sym_name = "t{i}", type = tensor<4xi8>}} : () -> () loc({_render(t, defs)})'
           for i, t in enumerate(trees)]
    text = "\n".join([*(d for before, d in defs if before), '"builtin.module"() ({', *ops, "}) : () -> ()",
                      *(d for before, d in defs if not before)]) + "\n"
    got = [p for name, p in locations(parse_mlir(text, "p.mlir")) if name == "df.reserve"]
    assert got == [_expected(t) for t in trees], text


def test_an_mlir_syntax_error_is_a_diagnostic_not_a_traceback():
    with pytest.raises(DiagnosticError) as e:
        parse_mlir('"builtin.module"() ({\n}) : () -> () loc(callsite("a":1:2))\n', "e.mlir")
    d = e.value.diagnostics[0]
    assert (d.loc.line, d.loc.col, d.message) == (2, 35, "Expected 'at'")


# --- the whole trip through a real mlir-opt ------------------------------------------------------
TRIP = sorted(glob.glob(os.path.join(EXAMPLES, "*.lpu")) + glob.glob(os.path.join(EXAMPLES, "multichip", "*.lpu"))
              + [os.path.join(FIXTURES, "symbols.lpu")])


@needs_mlir_opt
@pytest.mark.parametrize("path", TRIP, ids=lambda p: os.path.relpath(p, ROOT))
@pytest.mark.parametrize("flags", [["--mlir-print-debuginfo"], ["--mlir-print-debuginfo", "--mlir-print-local-scope"], []],
                         ids=["aliases", "inline", "no-locations"])
def test_upstream_mlir_opt_round_trip(path, flags):
    original = parse_module(open(path, encoding="utf-8").read(), path)
    r = subprocess.run([MLIR_OPT, "--allow-unregistered-dialect", *flags], input=emit_mlir(original),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    back = parse_mlir(r.stdout, "trip.mlir")
    assert back.is_structurally_equivalent(original)
    assert names(back) == names(original)
    if flags:
        assert "#loc" in r.stdout or "--mlir-print-local-scope" in flags
        assert locations(back) == locations(original)


@needs_mlir_opt
def test_the_issue_s_commands_through_mlir_opt(tmp_path, capsys):
    # lpu-opt --emit mlir | mlir-opt --mlir-print-debuginfo | lpu-opt; then lpu run with named inputs
    mlir, opted, back = tmp_path / "s.mlir", tmp_path / "o.mlir", tmp_path / "back.lpu"
    assert opt_main([os.path.join(EXAMPLES, "softmax.lpu"), "--emit", "mlir", "-o", str(mlir)]) == 0
    subprocess.run([MLIR_OPT, "--allow-unregistered-dialect", "--mlir-print-debuginfo", str(mlir), "-o", str(opted)],
                   check=True, timeout=60)
    assert "%arg0" in opted.read_text()
    assert opt_main([str(opted), "-o", str(back)]) == 0
    np.save(tmp_path / "x.npy", np.ones((4, 320), np.float16))
    assert lpu_main(["run", "--reference", str(back), "--input", f"x={tmp_path / 'x.npy'}",
                     "--output", f"y={tmp_path / 'y.npy'}", "--quiet"]) == 0, capsys.readouterr().err
    assert np.array_equal(np.load(tmp_path / "y.npy"), np.full((4, 320), np.float16(1 / 320)))
