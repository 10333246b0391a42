"""``lpu run``: runs a ``.lpu`` program's function on named ``.npy`` inputs.

The options are shared by both ways of running: ``--reference`` runs the reference interpreter
(this module); without it, ``lpu run`` compiles and simulates (``lpu.compile`` plugs in ``SIMULATE``).
Arguments without ``--input`` get seeded random values, so every example runs as it is.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

import numpy as np

from lpu.diagnostics import DiagnosticError, SourceManager, error
from lpu.files import read_npy, read_text

#: set by the compiler (issue 6): (module, function name, inputs, args) -> outputs
SIMULATE: Callable | None = None


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("program", help="the .lpu file")
    p.add_argument("--function", "-f", metavar="NAME", help="function to run (default: @main, else the first)")
    p.add_argument("--input", "-i", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an argument's value (repeatable); others get seeded random values")
    p.add_argument("--output", "-o", action="append", default=[], metavar="NAME=FILE.npy",
                   help="save a result (named as the returned value, or result0, result1...)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: 0)")
    p.add_argument("--reference", action="store_true", help="run the reference interpreter")
    p.add_argument("--quiet", "-q", action="store_true", help="do not print the results")


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise DiagnosticError(error(f"{what} '{item}' is not NAME=FILE.npy"))
        out[name.lstrip("%")] = path
    return out


def load_npy(path: str) -> np.ndarray:
    return read_npy(path)


def result_names(func) -> list[str]:
    """Results are named after the values the function returns (``return %y`` -> ``y``)."""
    ret = func.body.block.last_op
    names, seen = [], set()
    for i, v in enumerate(ret.operands):
        n = v.name_hint if v.name_hint and v.name_hint not in seen else f"result{i}"
        seen.add(n)
        names.append(n)
    return names


def choose_function(module, name: str | None):
    from lpu.dsl import dialect as D
    from lpu.dsl.interpreter import function
    if name:
        return function(module, name.lstrip("@"))
    funcs = [op for op in module.ops if isinstance(op, D.FuncOp)]
    if not funcs:
        raise DiagnosticError(error("the program has no function to run"))
    return next((f for f in funcs if f.sym_name.data == "main"), funcs[0])


def run_program(path: str, *, function: str | None = None, inputs: dict[str, np.ndarray] | None = None,
                seed: int = 0, reference: bool = True, notes: list[str] | None = None):
    """Parse ``path``, pick the function, fill missing inputs; returns (names, results)."""
    from lpu.dsl.frontend import parse_module
    from lpu.dsl.interpreter import arg_names, check_inputs, random_input, run_function
    from lpu.dsl import types as T
    module = parse_module(read_text(path), path)
    func = choose_function(module, function)
    name = func.sym_name.data
    given = dict(inputs or {})
    rng = np.random.default_rng(seed)
    for arg_name, arg in zip(arg_names(func), func.body.block.args):
        if arg_name not in given:
            given[arg_name] = random_input(arg.type, rng)
            if notes is not None:
                notes.append(f"%{arg_name}: random {T.type_text(arg.type)} (--seed {seed})")
    check_inputs(func, given)  # every --input names an argument and has its shape and type
    if reference:
        results = run_function(module, name, given, base_dir=os.path.dirname(os.path.abspath(path)))
    else:
        if SIMULATE is None:  # the compiled path registers itself when imported
            from lpu.compile import install
            install()
        results = SIMULATE(module, name, given)
    return result_names(func), results


def run_command(args: argparse.Namespace, sources: SourceManager) -> int:
    from lpu.files import write_atomic
    inputs = {n: load_npy(p) for n, p in _pairs(args.input, "--input").items()}
    notes: list[str] = []
    names, results = run_program(args.program, function=args.function, inputs=inputs, seed=args.seed,
                                 reference=args.reference, notes=notes)
    for n in notes:
        print(f"lpu run: note: {n}", file=sys.stderr)
    outputs = _pairs(args.output, "--output")
    unknown = sorted(set(outputs) - set(names))
    if unknown:
        raise DiagnosticError(error(f"no result named '{unknown[0]}' (results: {', '.join(names)})"))
    for n, r in zip(names, results):
        if n in outputs:
            import io
            buf = io.BytesIO()
            np.save(buf, r, allow_pickle=False)
            write_atomic(outputs[n], buf.getvalue())
        if not args.quiet:
            with np.printoptions(threshold=16, edgeitems=4, linewidth=100):
                print(f"{n}: {r.dtype}{list(r.shape)} = {r}")
    return 0
