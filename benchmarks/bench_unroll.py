"""What ``unroll`` (repeat folding on kernels) buys on the general path: the dataflow examples
(the decoder layer by default) compiled with folding, and the same kernels with every
``repeat`` written out (``unroll{full=true}``). For each: instructions in the object, object
bytes, simulation time of both (best of a few runs) and their ratio; the cycle count and
result must be identical (checked: zero hazards, equal outputs). One figure per line.

    .venv/bin/python benchmarks/bench_unroll.py [decoder mlp ...]
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from lpu.arch.config import load_config
from lpu.asm.emit import emit
from lpu.asm.objfile import write_object
from lpu.asm.records import Program
from lpu.dsl.codegen import compile_function
from lpu.dsl.codegen.unroll import expand_kernel
from lpu.dsl.frontend import parse_module
from lpu.dsl.interpreter import arg_names, function, random_input
from lpu.dsl.lpu_dialect import to_kernel
from lpu.linker.link import link_objects
from lpu.sim.cli import simulate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = 5


def simulated(obj, c, args):
    """(cycles, hazards, outputs, best seconds of RUNS simulations)."""
    best = float("inf")
    for _ in range(RUNS):
        image = link_objects([("main", obj)])
        t0 = time.perf_counter()
        with np.errstate(all="ignore"):
            r = simulate(image, inputs=c.inputs(args), outputs=c.output_symbols())
        best = min(best, time.perf_counter() - t0)
    return r.machine.cycles, len(r.hazards), r.outputs, best


def rows(name: str, cfg) -> None:
    path = os.path.join(ROOT, "examples", f"{name}.lpu")
    module = parse_module(open(path).read(), path)
    fn = function(module, "main")
    rng = np.random.default_rng(0)
    args = {n: random_input(a.type, rng) for n, a in zip(arg_names(fn), fn.body.block.args)}
    c = compile_function(module, "main", cfg, os.path.dirname(path), file=path)
    flat = to_kernel(expand_kernel(c.kernel, cfg), cfg)
    flat_obj = emit(Program(cfg.name, cfg, list(c.program.tensors), [], [flat], path))
    folded = c.program.kernels[0]
    cycles, hazards, out, secs = simulated(c.obj, c, args)
    cycles2, hazards2, out2, secs2 = simulated(flat_obj, c, args)
    same = cycles == cycles2 and hazards == hazards2 == 0 and out.keys() == out2.keys() and all(
        np.array_equal(out[k], out2[k]) for k in out)
    if not same:
        raise SystemExit(f"bench_unroll: {name}: the folded and unrolled kernels differ")
    print(f"{name} cycles (unroll, unroll off): {cycles} cycles")
    print(f"{name} instructions: {len(folded.insts)} instructions")
    print(f"{name} (unroll off) instructions: {len(flat.insts)} instructions")
    print(f"{name} unroll instructions saved: {len(flat.insts) / len(folded.insts):.2f}x")
    print(f"{name} object: {len(write_object(c.obj))} bytes")
    print(f"{name} (unroll off) object: {len(write_object(flat_obj))} bytes")
    print(f"{name} simulate: {secs * 1000:.1f} ms")
    print(f"{name} (unroll off) simulate: {secs2 * 1000:.1f} ms")
    print(f"{name} unroll simulation speedup: {secs2 / secs:.2f}x")


def main(argv=None) -> int:
    cfg = load_config("lpu-v1")
    for name in (argv if argv is not None else sys.argv[1:]) or ["decoder"]:
        rows(name, cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
