"""``lpu-sim``: run a system image from ``lpu-ld``, cycle-exact, on every chip at once.

    lpu-sim IMAGE [--input NAME=f.npy]... [--output NAME=f.npy]... [--dump]
            [--strict | --no-strict] [--stats text|json|none] [--trace FILE]
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass, field

import numpy as np

from lpu.diagnostics import DiagnosticError, SourceManager, error, print_diagnostics
from lpu.files import read_bytes, read_npy, write_atomic
from lpu.sim import io as simio
from lpu.sim.hazards import to_diagnostic
from lpu.sim.machine import Machine
from lpu.sim.report import stats, stats_text
from lpu.sim.trace import trace
from lpu.tool import ArgumentParser, run_tool

PROG = "lpu-sim"


@dataclass
class RunResult:
    machine: Machine
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    @property
    def hazards(self):
        return self.machine.hazards


def load_image(path: str):
    from lpu.linker.imagefile import read_image

    return read_image(read_bytes(path), path)


def simulate(image, name: str = "<image>", inputs: dict[str, np.ndarray] | None = None,
             outputs: list[str] | None = None, strict: bool = True, progress: bool = False) -> RunResult:
    """Run ``image`` with named input tensors; the library call behind ``lpu-sim``."""
    m = Machine(image, name, strict=strict)
    for sym, array in (inputs or {}).items():
        simio.write_input(m, sym, array)
    for sym in outputs or []:
        simio.find_symbol(m, sym)  # a misspelt output is an error before a long run
    m.run(progress=progress)
    res = RunResult(m, stats=stats(m))
    for sym in outputs or []:
        res.outputs[sym] = simio.read_output(m, sym)
    return res


def _pair(text: str, flag: str) -> tuple[str, str]:
    name, eq, path = text.partition("=")
    if not eq or not name or not path:
        raise DiagnosticError(error(f"{flag} expects NAME=FILE.npy, not '{text}'"))
    return name, path


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Run an LPU system image cycle for cycle on every chip.")
    p.add_argument("image", help="system image from lpu-ld ('-' for standard input)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="write a tensor into the SRAM symbol NAME (or CHIP:NAME) before the run")
    p.add_argument("--output", action="append", default=[], metavar="NAME=FILE.npy",
                   help="read the SRAM symbol NAME back after the run")
    p.add_argument("--dump", action="store_true", help="list the SRAM symbols of the image")
    p.add_argument("--strict", dest="strict", action="store_true", default=True,
                   help="stop at the first hazard (default)")
    p.add_argument("--no-strict", dest="strict", action="store_false", help="run on and report every hazard")
    p.add_argument("--stats", choices=("text", "json", "none"), default="text",
                   help="report on standard output (default: text)")
    p.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace (JSON)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body(sources: SourceManager) -> int:
        inputs = {}
        for text in args.input:
            name, path = _pair(text, "--input")
            inputs[name] = (read_npy(path), path)
        outs = [_pair(t, "--output") for t in args.output]
        image = load_image(args.image)
        m = Machine(image, args.image, strict=args.strict)
        for name, (array, path) in inputs.items():
            simio.write_input(m, name, array, path)
        for name, _ in outs:
            simio.find_symbol(m, name)
        if args.dump:
            sys.stdout.write(simio.dump(m))
        m.run(progress=sys.stderr.isatty())
        if m.hazards:
            shown = m.hazards[:1] if args.strict else m.hazards
            print_diagnostics([to_diagnostic(h, m) for h in shown], sources)
            if args.strict:
                return 1
        for name, path in outs:
            write_atomic(path, _npy_bytes(simio.read_output(m, name)))
        if args.trace:
            write_atomic(args.trace, trace(m))
        s = stats(m)
        if args.stats == "text":
            sys.stdout.write(stats_text(s))
        elif args.stats == "json":
            sys.stdout.write(json.dumps(s, indent=2) + "\n")
        return 1 if m.hazards else 0

    return run_tool(body, PROG)


if __name__ == "__main__":
    sys.exit(main())
