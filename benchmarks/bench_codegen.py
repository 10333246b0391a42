"""Code generation benchmark: simulated cycles against the analytical lower bound.

Cases: i8 GEMV (with 4, 2 and 1 MXM planes) and f16 GEMV. For each: the simulated cycle count, the lower bound for this chip configuration
(docs/codegen.md derives it: the largest of MXM compute, weight-stream bandwidth into the
planes and SRAM read ports), their ratio, and the compile time; fewer MXM planes show what
spreading the blocks over the planes buys. One figure per line.

    .venv/bin/python benchmarks/bench_codegen.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np

from lpu.arch.config import load_config
from lpu.arch.isa import DTYPE_BYTES
from lpu.compile import matches
from lpu.dsl.interpreter import run_function
from lpu.dsl.codegen import compile_function
from lpu.dsl.frontend import parse_module
from lpu.linker.link import link_objects
from lpu.sim.cli import simulate


def gemv_bounds(K: int, N: int, cfg, elem: str = "i8") -> dict[str, float]:
    """Lower bounds in cycles for ``x (K) · W (K × N)`` on one chip, weights of type ``elem``."""
    planes = sum(1 for q in cfg.queues if q.kind == "mxm")
    occupancy = cfg["mxm.int_occupancy"] if elem == "i8" else cfg["mxm.float_occupancy"]
    macs_per_cycle = planes * cfg["mxm.rows"] * cfg["mxm.cols"] / occupancy
    nbytes = K * N * DTYPE_BYTES[elem]
    # every weight byte enters a plane through lw: max_rows_per_lw rows of `lanes` bytes per
    # plane per cycle, and no more than the streams flowing toward the planes carry
    lw_bytes = planes * cfg["mxm.max_rows_per_lw"] * cfg.lanes
    stream_bytes = 2 * cfg.streams * cfg.lanes
    sram_bytes = len(cfg.mem_slices) * cfg.lanes / cfg["mem.read_port_cycles_per_word"]
    return {
        "mxm compute": K * N / macs_per_cycle,
        "weight streams": nbytes / min(lw_bytes, stream_bytes),
        "sram ports": nbytes / sram_bytes,
    }


def gemv_case(K: int, N: int, cfg, tmp: str, max_planes: int | None = None, seed: int = 0, elem: str = "i8"):
    rng = np.random.default_rng(seed)
    if elem == "i8":
        w, x, acc = rng.integers(-128, 128, (K, N)).astype(np.int8), rng.integers(-128, 128, K).astype(np.int8), "i32"
    else:
        w, x, acc = rng.standard_normal((K, N)).astype(np.float16), rng.standard_normal(K).astype(np.float16), "f32"
    np.save(os.path.join(tmp, "w.npy"), w)
    src = (f'target "{cfg.name}"\ndata @w : tensor<{K}x{N}x{elem}> = load("w.npy")\n'
           f"func @gemv(%x: tensor<{K}x{elem}>) -> tensor<{N}x{acc}> {{\n"
           f"  %w = get @w : tensor<{K}x{N}x{elem}>\n  %y = matmul %x, %w : tensor<{N}x{acc}>\n  return %y\n}}\n")
    module = parse_module(src, os.path.join(tmp, "gemv.lpu"))
    t0 = time.perf_counter()
    c = compile_function(module, "gemv", cfg, tmp, max_planes)
    compile_s = time.perf_counter() - t0
    r = simulate(link_objects([("gemv", c.obj)]), inputs=c.inputs({"x": x}, cfg.lanes), outputs=c.output_symbols())
    y = c.result(r.outputs, cfg.lanes)
    ref = run_function(module, "gemv", {"x": x}, base_dir=tmp)[0]
    ok = not r.hazards and matches(y, ref)
    return r.machine.cycles, compile_s, ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1024 x 1024 instead of 4096 x 4096")
    args = ap.parse_args(argv)
    cfg = load_config("lpu-v1")
    n = 1024 if args.quick else 4096
    with tempfile.TemporaryDirectory() as tmp:
        for elem, plane_counts in (("i8", (None, 2, 1)), ("f16", (None,))):
            bounds = gemv_bounds(n, n, cfg, elem)
            bound = max(bounds.values())
            name = f"{elem} gemv {n}x{n}"
            for what, v in bounds.items():
                print(f"{name} bound ({what}): {v:.1f} cycles")
            print(f"{name} lower bound: {math.ceil(bound)} cycles")
            for planes in plane_counts:
                tag = "" if planes is None else f" ({planes} plane{'s' if planes > 1 else ''})"
                cycles, secs, ok = gemv_case(n, n, cfg, tmp, planes, elem=elem)
                if not ok:
                    print(f"{name}{tag}: WRONG RESULT OR HAZARDS", file=sys.stderr)
                    return 1
                print(f"{name}{tag} cycles: {cycles} cycles")
                print(f"{name}{tag} cycles/bound: {cycles / bound:.2f}x")
                print(f"{name}{tag} compile: {secs:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
