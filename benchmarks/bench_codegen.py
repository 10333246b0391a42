"""Code generation benchmark: simulated cycles against the analytical lower bound.

Cases: i8 and f16 GEMV 4096 × 4096, i8 and f16 GEMM 256 × 4096 × 4096. For each: the
simulated cycle count, the lower bound for this chip configuration (docs/codegen.md derives
it: the largest of MXM compute, weight-stream bandwidth into the planes and SRAM read ports),
their ratio, and the compile time. Then what each pass buys, the same figures with it reduced
or disabled (docs/codegen.md, "What each pass buys"):

- register-block reduced: fewer MXM planes (GEMV, GEMM); GEMM tiles of 8 rows instead of 64
  (each weight load serves 8 rows); GEMM without register blocking = each row of X as its own
  GEMV (M × the simulated GEMV);
- unroll disabled: every ``repeat`` written out (same cycles, more instruction words).

Every run is simulated and checked against the reference interpreter (zero hazards, equal
results). One figure per line.

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
from lpu.asm.emit import emit
from lpu.asm.records import Program
from lpu.compile import matches
from lpu.dsl.codegen import _compile, compile_function
from lpu.dsl.codegen.register_block import register_block
from lpu.dsl.codegen.unroll import expand
from lpu.dsl.frontend import parse_module
from lpu.dsl.interpreter import _State, run_function
from lpu.dsl.lpu_dialect import KernelOp, LpuInstOp, to_kernel
from lpu.linker.link import link_objects
from lpu.sim.cli import simulate


def bounds(M: int, K: int, N: int, cfg, elem: str = "i8") -> dict[str, float]:
    """Lower bounds in cycles for ``X (M × K) · W (K × N)`` on one chip (M = 1: GEMV)."""
    planes = sum(1 for q in cfg.queues if q.kind == "mxm")
    occupancy = cfg["mxm.int_occupancy"] if elem == "i8" else cfg["mxm.float_occupancy"]
    macs_per_cycle = planes * cfg["mxm.rows"] * cfg["mxm.cols"] / occupancy
    w = DTYPE_BYTES[elem]
    # every weight byte enters a plane through lw, and every activation through mm, on the
    # streams flowing toward the planes: max_rows_per_lw rows of `lanes` bytes per plane per
    # cycle, and no more than the streams carry. Weights (K·N) only once when each is reused
    # for all M rows; the activations (M·K) at least once.
    lw_bytes = planes * cfg["mxm.max_rows_per_lw"] * cfg.lanes
    stream_bytes = 2 * cfg.streams * cfg.lanes
    sram_bytes = len(cfg.mem_slices) * cfg.lanes / cfg["mem.read_port_cycles_per_word"]
    nbytes = (K * N + (M * K if M > 1 else 0)) * w
    # a plane's one queue issues every lw, iw, mm and acc, one a cycle (architecture page):
    # one mm per row per 320 x 320 block (ragged edges are whole blocks), each block installed
    # at least once per acc_slots rows (a row's K-sum lives in a slot until its acc; draining
    # and re-adding costs an acc a row, more than the ~21/64 of a re-install), one acc per row
    # per column of blocks
    R, C = cfg["mxm.rows"], cfg["mxm.cols"]
    k, n = -(-K // R), -(-N // C)
    install = R // (cfg["mxm.max_rows_per_lw"] // w) + 1
    issues = M * k * n + k * n * -(-M // cfg["mxm.acc_slots"]) * install + M * n
    return {
        "mxm compute": M * K * N / macs_per_cycle,
        "weight streams": nbytes / min(lw_bytes, stream_bytes),
        "sram ports": nbytes / sram_bytes,
        "plane issue slots": issues / planes,
    }


#: the bounds the issue names; "plane issue slots" is this machine's too (docs/codegen.md)
RESOURCE_BOUNDS = ("mxm compute", "weight streams", "sram ports")


def source(M: int, K: int, N: int, elem: str) -> str:
    acc = "i32" if elem == "i8" else "f32"
    xt, yt = (f"{K}x{elem}", f"{N}x{acc}") if M == 1 else (f"{M}x{K}x{elem}", f"{M}x{N}x{acc}")
    return (f'target "lpu-v1"\ndata @w : tensor<{K}x{N}x{elem}> = load("w.npy")\n'
            f"func @f(%x: tensor<{xt}>) -> tensor<{yt}> {{\n"
            f"  %w = get @w : tensor<{K}x{N}x{elem}>\n  %y = matmul %x, %w : tensor<{yt}>\n  return %y\n}}\n")


class Case:
    """One matmul: its module, inputs and reference result, written under ``tmp``."""

    def __init__(self, M: int, K: int, N: int, elem: str, cfg, tmp: str, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        shape = (K,) if M == 1 else (M, K)
        if elem == "i8":
            w, x = rng.integers(-128, 128, (K, N)).astype(np.int8), rng.integers(-128, 128, shape).astype(np.int8)
        else:
            w, x = rng.standard_normal((K, N)).astype(np.float16), rng.standard_normal(shape).astype(np.float16)
        np.save(os.path.join(tmp, "w.npy"), w)
        self.cfg, self.tmp, self.x = cfg, tmp, x
        self.module = parse_module(source(M, K, N, elem), os.path.join(tmp, "f.lpu"))
        self.ref = run_function(self.module, "f", {"x": x}, base_dir=tmp)[0]

    def compile(self, max_planes=None, tile_rows=None):
        t0 = time.perf_counter()
        if tile_rows is None:
            c = compile_function(self.module, "f", self.cfg, self.tmp, max_planes)
        else:
            state = _State(self.module, self.tmp, {})
            plan = register_block(self.module, "f", self.cfg, lambda d: state.tensor(d.sym_name.data, d),
                                  max_planes, tile_rows)
            c = _compile(plan, self.cfg, "f", "<bench>", t0)
        return c, time.perf_counter() - t0

    def run(self, c, obj=None) -> int:
        """Simulate; the cycle count, after checking zero hazards and the interpreter's result."""
        r = simulate(link_objects([("f", obj or c.obj)]), inputs=c.inputs({"x": self.x}, self.cfg.lanes),
                     outputs=c.output_symbols())
        if r.hazards or not matches(c.result(r.outputs, self.cfg.lanes), self.ref):
            raise SystemExit(f"bench_codegen: wrong result or hazards ({len(r.hazards)})")
        return r.machine.cycles


def without_unroll(c, cfg):
    """The compiled kernel with every repeat written out: (instructions, object)."""
    k = to_kernel(c.kernel, cfg)
    flat = KernelOp.build_from(c.kernel.sym_name.data, [LpuInstOp.from_inst(x, cfg) for x in expand(k.insts)])
    kf = to_kernel(flat, cfg)
    assert kf.length == k.length
    return len(kf.insts), emit(Program(cfg.name, cfg, list(c.layout.tensors), [], [kf], "<bench>"))


def report(name: str, cycles: int, bound: float) -> None:
    print(f"{name} cycles: {cycles} cycles")
    print(f"{name} cycles/bound: {cycles / bound:.2f}x")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1024 instead of 4096, 64 GEMM rows instead of 256")
    args = ap.parse_args(argv)
    cfg = load_config("lpu-v1")
    n = 1024 if args.quick else 4096
    m = 64 if args.quick else 256
    with tempfile.TemporaryDirectory() as tmp:
        gemv_i8 = None
        for M, elem in ((1, "i8"), (1, "f16"), (m, "i8"), (m, "f16")):
            name = f"{elem} gemv {n}x{n}" if M == 1 else f"{elem} gemm {M}x{n}x{n}"
            b = bounds(M, n, n, cfg, elem)
            bound = max(b.values())
            for what, v in b.items():
                print(f"{name} bound ({what}): {v:.1f} cycles")
            print(f"{name} lower bound: {math.ceil(bound)} cycles")
            case = Case(M, n, n, elem, cfg, tmp)
            c, secs = case.compile()
            cycles = case.run(c)
            report(name, cycles, bound)
            resources = max(b[x] for x in RESOURCE_BOUNDS)
            print(f"{name} cycles/resource bound (compute, streams, ports only): {cycles / resources:.2f}x")
            print(f"{name} compile: {secs:.2f} s")
            words = len(to_kernel(c.kernel, cfg).insts)
            print(f"{name} instructions: {words} instructions")
            if elem == "f16":
                continue
            if M == 1:
                gemv_i8 = cycles
                for planes in (2, 1):
                    cp, _ = case.compile(max_planes=planes)
                    report(f"{name} (register-block: {planes} plane{'s' if planes > 1 else ''})", case.run(cp), bound)
            else:
                ct, _ = case.compile(tile_rows=8)
                report(f"{name} (register-block: tiles of 8 rows)", case.run(ct), bound)
                report(f"{name} (register-block off: {M} gemvs)", M * gemv_i8, bound)
            flat_words, obj = without_unroll(c, cfg)
            flat_cycles = case.run(c, obj)
            print(f"{name} (unroll off) cycles: {flat_cycles} cycles")
            print(f"{name} (unroll off) instructions: {flat_words} instructions")
            print(f"{name} unroll instructions saved: {flat_words / words:.2f}x")
    from codegen_functions import function_rows  # the decoder layer, on the general path

    function_rows("decoder", cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
