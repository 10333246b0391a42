"""Rows of ``bench_codegen.py`` for whole functions through the general code generator path:
the decoder layer (and the other dataflow examples with ``--all``). For each: the lower bound
(``lpu.dsl.codegen.bounds``: the largest of the matmuls' throughput bounds and the dependency
chain; docs/codegen.md derives it), simulated cycles, their ratio and the compile time. Every
run is simulated on seeded random inputs and checked against the reference interpreter."""

from __future__ import annotations

import math
import os
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def function_rows(name: str, cfg, ablations: bool = True) -> None:
    from lpu.compile import matches
    from lpu.dsl.codegen import compile_function
    from lpu.dsl.codegen.bounds import function_bounds
    from lpu.dsl.frontend import parse_module
    from lpu.dsl.interpreter import arg_names, function, random_input, run_function
    from lpu.linker.link import link_objects
    from lpu.sim.cli import simulate

    from lpu.dsl.codegen import general

    path = os.path.join(ROOT, "examples", f"{name}.lpu")
    module = parse_module(open(path).read(), path)
    b = function_bounds(module, "main", cfg)
    for what, v in b.items():
        print(f"{name} bound ({what}): {v:.1f} cycles")
    bound = max(b.values())
    print(f"{name} lower bound: {math.ceil(bound)} cycles")
    fn = function(module, "main")
    rng = np.random.default_rng(0)
    args = {n: random_input(a.type, rng) for n, a in zip(arg_names(fn), fn.body.block.args)}
    with np.errstate(all="ignore"):
        ref = run_function(module, "main", args, base_dir=os.path.dirname(path))[0]

    def run():
        t0 = time.perf_counter()
        c = compile_function(module, "main", cfg, os.path.dirname(path), file=path)
        secs = time.perf_counter() - t0
        with np.errstate(all="ignore"):
            r = simulate(link_objects([("main", c.obj)]), inputs=c.inputs(args), outputs=c.output_symbols())
        if r.hazards or not matches(c.result(r.outputs), ref):
            raise SystemExit(f"bench_codegen: {name}: wrong result or hazards ({len(r.hazards)})")
        return r.machine.cycles, secs

    cycles, secs = run()
    print(f"{name} cycles: {cycles} cycles")
    print(f"{name} cycles/bound: {cycles / bound:.2f}x")
    print(f"{name} compile: {secs:.2f} s")
    if ablations:  # what chaining elementwise ops on the VXM buys
        general.FUSE = False
        try:
            off, _ = run()
        finally:
            general.FUSE = True
        print(f"{name} (chains off) cycles/bound: {off / bound:.2f}x")


if __name__ == "__main__":
    import sys

    from lpu.arch.config import load_config

    for n in sys.argv[1:] or ["softmax", "layernorm", "mlp", "attention", "decoder"]:
        function_rows(n, load_config("lpu-v1"))
