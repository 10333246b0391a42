"""``lpu-opt``: reads ``.lpu`` (or MLIR text), runs a pass pipeline, prints ``.lpu`` or MLIR.

Like ``mlir-opt``: ``-p 'df-decompose,cse'``, ``--print-ir-after-all``, ``--verify-diagnostics``
(the input's ``// expected-error {{...}}`` comments must match the diagnostics exactly), ``-o``.
``--emit mlir`` prints MLIR's generic form with ``loc(...)`` on every op, which upstream
``mlir-opt --allow-unregistered-dialect`` parses; its output reads back (``lpu.dsl.mlir``).
"""

from __future__ import annotations

import re
import sys

from xdsl.dialects.builtin import ModuleOp

from lpu.diagnostics import Diagnostic, DiagnosticError, SourceLoc, SourceManager, error, print_diagnostics, render
from lpu.files import read_text, write_atomic
from lpu.dsl.mlir import emit_mlir, parse_mlir
from lpu.tool import ArgumentParser, run_tool

PROG = "lpu-opt"


def emit(module: ModuleOp, form: str) -> str:
    from lpu.dsl.printer import print_module
    return emit_mlir(module) if form == "mlir" else print_module(module)


# how MLIR text starts (after comments), and .lpu never does: a module in generic or custom form,
# a generic op, or an alias definition (mlir-opt's `#loc = loc(unknown)` comes first)
# (comments skipped whole, never backtracked into: a `// CHECK: "df.x"` line is not MLIR)
_MLIR_START = re.compile(r'(?:\s|//[^\n]*+)*+(?:"[A-Za-z_][\w$]*\.|builtin\.module\b|module\b|[#!][\w$.-]+\s*=)')


def optimize(text: str, filename: str, pipeline: str = "", *, input_format: str = "auto",
             after_pass=None) -> ModuleOp:
    """What ``lpu-opt`` does, as a library call: parse (and verify), run ``pipeline``."""
    from lpu.dsl.frontend import parse_module, verify_module
    from lpu.dsl.passes import run_pipeline
    if input_format == "auto":
        input_format = "mlir" if filename.endswith(".mlir") or _MLIR_START.match(text) else "lpu"
    if input_format == "mlir":
        module = parse_mlir(text, filename)
        verify_module(module)
    else:
        module = parse_module(text, filename)
    if pipeline:
        run_pipeline(module, pipeline, after_pass)
    return module


_EXPECTED = re.compile(r"//\s*expected-(error|warning|note)(@[-+]?\d+)?\s*\{\{(.*?)\}\}")


def check_expected(text: str, filename: str, diags: list[Diagnostic]) -> list[Diagnostic]:
    """``--verify-diagnostics``: the mismatches between ``// expected-error {{msg}}`` comments
    (``@+N``/``@-N`` for another line) and the diagnostics produced, as diagnostics."""
    expected = []
    for n, line in enumerate(text.splitlines(), 1):
        for m in _EXPECTED.finditer(line):
            offset = int(m.group(2)[1:]) if m.group(2) else 0
            expected.append([m.group(1), n + offset, m.group(3), n, False])
    problems = []
    flat = [d for top in diags for d in [top, *top.notes]]
    for d in flat:
        line = d.loc.line if d.loc is not None else 0
        for e in expected:
            if not e[4] and e[0] == d.severity and e[1] == line and e[2] in d.message:
                e[4] = True
                break
        else:
            problems.append(error(f"unexpected {d.severity}: {d.message}", d.loc))
    for kind, line, msg, written, seen in expected:
        if not seen:
            problems.append(error(f"expected {kind} \"{msg}\" was not produced", SourceLoc(filename, written, 1)))
    return problems


def build_parser() -> ArgumentParser:
    from lpu.dsl.passes import DEFAULT_PIPELINE, PASSES
    p = ArgumentParser(prog=PROG, description="The dataflow optimizer: .lpu in, passes, .lpu or MLIR out.")
    p.add_argument("input", nargs="?", default="-", help="input file (.lpu or .mlir; '-' is stdin)")
    p.add_argument("-o", dest="output", default="-", metavar="FILE", help="output file (default: stdout)")
    p.add_argument("-p", "--passes", default="", metavar="PIPELINE",
                   help=f"passes to run, e.g. 'df-decompose,unroll{{factor=2}},cse'; 'default' is "
                        f"'{DEFAULT_PIPELINE}'. Passes: {', '.join(PASSES)}")
    p.add_argument("--emit", choices=["lpu", "mlir"], default="lpu", help="output form (default: lpu)")
    p.add_argument("--input-format", choices=["auto", "lpu", "mlir"], default="auto")
    p.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass to stderr")
    p.add_argument("--verify-diagnostics", action="store_true",
                   help="check the diagnostics against the input's '// expected-error {{...}}' comments")
    p.add_argument("--list-passes", action="store_true", help="list the passes and their options")
    return p


def _list_passes() -> str:
    from xdsl.passes import get_pass_option_infos
    from lpu.dsl.passes import PASSES
    lines = []
    for name, cls in PASSES.items():
        opts = ", ".join(f"{o.name}: {o.expected_type}" for o in get_pass_option_infos(cls))
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        lines.append(f"{name}{'{' + opts + '}' if opts else ''}  {doc}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body(sources: SourceManager) -> int:
        if args.list_passes:
            sys.stdout.write(_list_passes())
            return 0
        text = read_text(args.input)
        name = "<stdin>" if args.input == "-" else args.input
        sources.add(name, text)

        def after(p, module):
            if args.print_ir_after_all:
                sys.stderr.write(f"// -----// IR Dump After {p.name} //----- //\n{emit(module, args.emit)}\n")

        if args.verify_diagnostics:
            try:
                optimize(text, name, args.passes, input_format=args.input_format, after_pass=after)
                diags = []
            except DiagnosticError as e:
                diags = e.diagnostics
            problems = check_expected(text, name, diags)
            if problems:
                raise DiagnosticError(problems)
            return 0
        module = optimize(text, name, args.passes, input_format=args.input_format, after_pass=after)
        write_atomic(args.output, emit(module, args.emit))
        return 0

    return run_tool(body, PROG)


__all__ = ["main", "optimize", "emit_mlir", "parse_mlir", "check_expected", "render", "print_diagnostics"]

if __name__ == "__main__":
    sys.exit(main())
