"""``make demo``: the flagship example end to end — the transformer decoder layer of
``examples/decoder.lpu`` compiled to scheduled assembly, assembled by ``lpu-as``'s library,
linked, simulated, and compared with the reference interpreter."""

from __future__ import annotations

import os
import sys
import time

from lpu.asm.assembler import assemble
from lpu.asm.emit import emit
from lpu.asm.objfile import read_object, write_object
from lpu.compile import matches, tolerance
from lpu.diagnostics import DiagnosticError, SourceManager, print_diagnostics
from lpu.linker.link import link_objects
from lpu.sim.cli import simulate
from lpu.sim.report import stats_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGSHIP = os.path.join(ROOT, "examples", "decoder.lpu")


def main() -> int:
    import numpy as np

    from lpu.compile import compile_source
    from lpu.dsl.interpreter import arg_names, function, random_input, run_function

    sources = SourceManager()
    rel = os.path.relpath(FLAGSHIP, ROOT)
    try:
        t0 = time.perf_counter()
        text = open(FLAGSHIP).read()
        c, module = compile_source(text, FLAGSHIP, sources=sources)
        t1 = time.perf_counter()
        asm = c.assembly(rel)
        print(f"$ lpu compile -S {rel} -o decoder.s     # {len(asm.splitlines())} lines, "
              f"{c.cycles} cycles scheduled, {t1 - t0:.1f} s")
        sources.add("decoder.s", asm)
        data = write_object(emit(assemble(asm, "decoder.s")))
        print(f"$ lpu-as decoder.s -o decoder.o           # {len(data)} bytes")
        image = link_objects([("decoder", read_object(data))])
        words = sum(len(q.words) for q in image.chips[0].queues)
        print(f"$ lpu-ld decoder.o -o decoder.lpx         # {words} instruction words")
        fn = function(module, c.func)
        rng = np.random.default_rng(0)
        args = {n: random_input(a.type, rng) for n, a in zip(arg_names(fn), fn.body.block.args)}
        with np.errstate(all="ignore"):
            res = simulate(image, "decoder.lpx", inputs=c.inputs(args), outputs=c.output_symbols())
            ref = run_function(module, c.func, args, base_dir=os.path.dirname(FLAGSHIP))[0]
    except DiagnosticError as e:
        print_diagnostics(e.diagnostics, sources)
        return 1
    print("$ lpu-sim decoder.lpx --input x=x.npy ... --output y=y.npy   # seeded random inputs (--seed 0)")
    sys.stdout.write(stats_text(res.stats))
    y = c.result(res.outputs)
    same = matches(y, ref)
    with np.printoptions(precision=4, suppress=True):
        print(f"y[0, :6]   = {np.asarray(y, np.float32).ravel()[:6]}  (simulated)")
        print(f"ref[0, :6] = {np.asarray(ref, np.float32).ravel()[:6]}  (reference interpreter)")
    print(f"y vs the reference interpreter: {'match' if same else 'DIFFERENT'} "
          f"(float16{list(y.shape)}, within {tolerance(y.dtype):g} relative); "
          f"{res.machine.cycles} cycles, {len(res.hazards)} hazards")
    return 0 if same and not res.hazards else 1


if __name__ == "__main__":
    sys.exit(main())
