"""``lpu compile`` and ``lpu run``: a ``.lpu`` file's df function through the code generator,
the linker and the simulator. The driver entries in ``lpu/driver.py`` are thin; tests call
``compile_source`` and ``run_source`` directly."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from lpu.arch.config import load_config
from lpu.diagnostics import DiagnosticError, SourceManager, error
from lpu.files import read_text, write_atomic


@dataclass
class RunOutcome:
    compiled: object  # lpu.dsl.codegen.Compiled
    cycles: int
    hazards: list
    inputs: dict[str, np.ndarray]
    result: np.ndarray
    reference: np.ndarray | None = None
    times: dict[str, float] = field(default_factory=dict)
    tol: float | None = None  # function_tolerance of the compiled function

    @property
    def matches(self) -> bool | None:
        if self.reference is None:
            return None
        return matches(self.result, self.reference, self.tol)


def _module(text: str, path: str, sources: SourceManager | None):
    from lpu.dsl.frontend import parse_module

    if sources is not None:
        sources.add(path, text)
    return parse_module(text, path)


def _func_name(module, name: str | None) -> str:
    """The function to compile: the one named, else ``@main``, else the first (as ``lpu run``)."""
    from lpu.dsl.run import choose_function

    return choose_function(module, name).sym_name.data


def compile_source(text: str, path: str, func: str | None = None, config: str | None = None,
                   max_planes: int | None = None, sources: SourceManager | None = None, system: str | None = None,
                   chips: int | None = None):
    """Compile the df function of a ``.lpu`` file to a ``Compiled`` (object, kernel, bindings);
    a function placed on several chips to a ``MultiCompiled`` (an object per chip, ``system``)."""
    from lpu.dsl.codegen.multichip import compile_any

    module = _module(text, path, sources)
    cfg = load_config(config)
    base = os.path.dirname(os.path.abspath(path)) if path not in ("-", "<input>") else os.getcwd()
    return compile_any(module, _func_name(module, func), cfg, base, path, system, max_planes, chips), module


def link_compiled(c):
    from lpu.linker.link import link_objects

    if hasattr(c, "link"):  # multi-chip: its objects on the system it was compiled for
        return c.link()
    return link_objects([(c.func, c.obj)])


def run_source(text: str, path: str, inputs: dict[str, np.ndarray] | None = None, func: str | None = None,
               check: bool = False, seed: int = 0, config: str | None = None,
               max_planes: int | None = None, chips: int | None = None) -> RunOutcome:
    """Compile, link and simulate; arguments not given get the interpreter's seeded random
    values (``random_input`` with ``seed``), so ``--check`` compares like with like."""
    from lpu.dsl import types as T
    from lpu.dsl.interpreter import arg_names, function, random_input, run_function
    from lpu.sim.cli import simulate

    t0 = time.perf_counter()
    c, module = compile_source(text, path, func, config, max_planes, chips=chips)
    t1 = time.perf_counter()
    fn = function(module, c.func)
    rng = np.random.default_rng(seed)
    args = dict(inputs or {})
    for name, arg in zip(arg_names(fn), fn.body.block.args):
        if name not in args:
            args[name] = random_input(arg.type, rng)
        else:
            want = (T.shape_of(arg.type), T.dtype(T.elem_of(arg.type)))
            if (args[name].shape, args[name].dtype) != want:
                raise DiagnosticError(error(f"input '{name}' is {args[name].dtype}{list(args[name].shape)} but "
                                            f"'%{name}' is {T.type_text(arg.type)}"))
    image = link_compiled(c)
    t2 = time.perf_counter()
    lanes = c.program.config.lanes
    r = simulate(image, path, inputs=c.inputs(args, lanes), outputs=c.output_symbols())
    t3 = time.perf_counter()
    out = RunOutcome(c, r.machine.cycles, list(r.hazards), args, c.result(r.outputs, lanes),
                     times={"compile": t1 - t0, "link": t2 - t1, "simulate": t3 - t2})
    if check:
        base = os.path.dirname(os.path.abspath(path))
        out.reference = run_function(module, c.func, args, base_dir=base)[0]
        out.tol = function_tolerance(module, c.func)
    return out


# --- the driver's subcommands ----------------------------------------------------------------
def add_compile_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a .lpu file with a df function ('-' for stdin)")
    p.add_argument("-o", dest="output", metavar="FILE", help="output: a linked system image (.lpx), or with -S "
                   "the scheduled assembly ('-' for stdout)")
    p.add_argument("-S", dest="assembly", action="store_true", help="write the scheduled .lpu assembly")
    p.add_argument("--function", "-f", metavar="NAME", help="the function to compile (default: @main, else the first)")
    p.add_argument("--config", metavar="FILE|NAME", default=None, help="chip configuration (default: lpu-v1)")
    p.add_argument("--system", metavar="FILE|NAME", default=None, help="multi-chip: the system (topology) the "
                   "chips run on, a system file or a built-in name (default: node)")
    p.add_argument("--chips", metavar="N", type=_chips, default=None, help="split the function over N chips "
                   "(a pipeline; default: as many as its tensors need)")
    p.add_argument("--objects", metavar="DIR", default=None, help="multi-chip: also write one object per chip and "
                   "the system file for lpu-ld into DIR")


def _chips(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"invalid chip count '{text}' (an integer >= 1)")
    return n


def _read_input(path: str) -> str:
    return sys.stdin.read() if path == "-" else read_text(path)


def run_compile(args: argparse.Namespace, sources: SourceManager) -> int:
    from lpu.linker.imagefile import write_image

    text = _read_input(args.input)
    name = "<stdin>" if args.input == "-" else args.input
    c, _ = compile_source(text, name, args.function, args.config, sources=sources, system=args.system,
                          chips=args.chips)
    if args.objects and hasattr(c, "write_objects"):
        c.write_objects(args.objects)
    if args.assembly:
        data: bytes | str = c.assembly(name)
        out = args.output or "-"
    else:
        data = write_image(link_compiled(c))
        out = args.output or os.path.splitext(os.path.basename(name))[0] + ".lpx"
    if out == "-":
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
    else:
        write_atomic(out, data)
    return 0


#: floats: the machine adds partial sums in another order than the interpreter (which sums in
#: float64 and rounds once), so results agree to a few f32 ulps of the largest magnitude
FLOAT_RTOL = 1e-5
#: f16/bf16 results: a sum that differs in its last f32 bit can round an f16 intermediate
#: (a layernorm's mean, a softmax's 1/sum) the other way, which moves the result by an ulp of
#: its type — so two ulps (2^-9 for f16's 10-bit fraction, 2^-6 for bf16's 7) of the largest
#: magnitude, and of each element
TOLERANCE = {"f32": FLOAT_RTOL, "f16": 2.0 ** -9, "bf16": 2.0 ** -6}


def tolerance(dtype) -> float:
    from lpu.arch.layout import NUMPY_DTYPES

    for name, t in TOLERANCE.items():
        if np.dtype(NUMPY_DTYPES[name]) == np.dtype(dtype):
            return t
    return FLOAT_RTOL


def function_tolerance(module, name: str) -> float | None:
    """The tolerance of a function's float results: that of the least precise float type any
    of its values (or its callees') has — a sum one f32 bit away upstream rounds an f16
    intermediate the other way, and that ulp of f16 travels to an f32 result. None when the
    function computes in no narrower float type than its results."""
    from lpu.dsl import dialect as D
    from lpu.dsl import types as T
    from lpu.dsl.interpreter import function

    seen, todo, tols = set(), [name], []
    while todo:
        f = function(module, todo.pop())
        for op in f.body.walk():
            if isinstance(op, D.CallOp) and isinstance(D.module_symbol(op, D.get_sym(op, "callee")), D.FuncOp):
                callee = D.get_sym(op, "callee")
                if callee not in seen:
                    seen.add(callee)
                    todo.append(callee)
            for r in op.results:
                e = T.elem_of(r.type) if T.is_tensor(r.type) else None
                if e in TOLERANCE:
                    tols.append(TOLERANCE[e])
    return max(tols) if tols else None


def matches(got: np.ndarray, want: np.ndarray, tol: float | None = None) -> bool:
    """Integers exactly; floats within ``tolerance`` of the largest magnitude of ``want`` (plus
    the same fraction of each element); NaN where the reference has NaN. ``tol``: a looser
    tolerance for results computed through narrower types (``function_tolerance``)."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return False
    if np.issubdtype(got.dtype, np.integer):
        return bool(np.array_equal(got, want))
    tol = max(tolerance(got.dtype), tol or 0.0)
    g, w = got.astype(np.float64), want.astype(np.float64)
    finite = np.isfinite(w)
    scale = float(np.max(np.abs(w[finite]))) if finite.any() else 0.0
    return bool(np.allclose(g, w, rtol=tol, atol=tol * scale, equal_nan=True))


# --- lpu run: the compiled path behind lpu.dsl.run's SIMULATE hook -----------------------
LAST: dict = {}  # the last simulated run: cycles, hazards (for --check and the summary line)
CHIPS: dict = {}  # lpu run --chips N


def simulate_function(module, name: str, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """``lpu.dsl.run.SIMULATE``: compile ``@name``, link, simulate; its results."""
    from lpu.dsl.codegen.multichip import compile_any
    from lpu.dsl.frontend import loc_of
    from lpu.dsl.interpreter import function
    from lpu.sim.cli import simulate

    loc = loc_of(function(module, name))
    file = loc.file if loc is not None else "<input>"
    cfg = load_config(None)

    c = compile_any(module, name, cfg, os.path.dirname(os.path.abspath(file)), file=file, chips=CHIPS.get("n"))
    r = simulate(link_compiled(c), file, inputs=c.inputs(inputs, cfg.lanes), outputs=c.output_symbols())
    LAST.clear()
    LAST.update(cycles=r.machine.cycles, hazards=list(r.hazards))
    print(f"lpu run: @{name}: {r.machine.cycles} cycles, {len(r.hazards)} hazards", file=sys.stderr)
    for h in r.hazards[:10]:
        print(f"lpu run: hazard: {h}", file=sys.stderr)
    if hasattr(c, "results"):  # the general path returns every result of the function
        return c.results(r.outputs)
    return [c.result(r.outputs, cfg.lanes)]


def install() -> None:
    from lpu.dsl import run as R

    R.SIMULATE = simulate_function


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    from lpu.dsl import run as R

    R.add_run_arguments(p)
    p.add_argument("--check", action="store_true",
                   help="also run the reference interpreter on the same inputs and compare (exit 1 if different)")
    p.add_argument("--chips", metavar="N", type=_chips, default=None, help="split the function over N chips "
                   "(a pipeline; default: as many as its tensors need)")
    p.add_argument("--shape", metavar="NAME=D0xD1", action="append", default=[],
                   help="an ONNX model's input size for a dynamic dimension (repeatable; docs/onnx.md)")


def run_command(args: argparse.Namespace, sources: SourceManager) -> int:
    """``lpu run``: lpu.dsl.run's command with the compiler installed, plus ``--check``."""
    from lpu.dsl import run as R

    if args.program.endswith(".onnx"):  # an ONNX model: imported, then run as the import (docs/onnx.md)
        from lpu.models.onnx_run import run

        return run(args)
    install()
    CHIPS["n"] = getattr(args, "chips", None)
    if not args.check or args.reference:
        return R.run_command(args, sources) or (1 if LAST.get("hazards") else 0)
    inputs = {n: R.load_npy(p) for n, p in R._pairs(args.input, "--input").items()}
    names, got = R.run_program(args.program, function=args.function, inputs=inputs, seed=args.seed, reference=False)
    _, want = R.run_program(args.program, function=args.function, inputs=inputs, seed=args.seed, reference=True)
    status = 1 if LAST.get("hazards") else 0
    from lpu.dsl.frontend import parse_module
    from lpu.dsl.run import choose_function

    module = parse_module(read_text(args.program), args.program)
    tol = function_tolerance(module, choose_function(module, args.function).sym_name.data)
    for n, g, w in zip(names, got, want):
        same = matches(g, w, tol)
        how = "equal to" if np.issubdtype(g.dtype, np.integer) else \
            f"within {max(tolerance(g.dtype), tol or 0):g} (relative) of"
        print(f"{n}: {how if same else 'DIFFERENT from'} the reference interpreter "
              f"({g.dtype}{list(g.shape)}, {LAST.get('cycles')} cycles)")
        status = status or (0 if same else 1)
    return status
