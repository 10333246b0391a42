"""Frontend benchmark: parse+verify and the default pipeline on a generated 50,000-op module.

Prints one figure per line (``name: value unit``); the baseline is xDSL's own MLIR text parser
reading the same module (its generic MLIR form), measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import time

OPS = ("add", "mul", "sub", "max")


def generate(n_ops: int, funcs: int = 10) -> str:
    """``funcs`` functions of chained elementwise, matmul, softmax and loop ops; ``n_ops`` in all."""
    per = n_ops // funcs
    lines = ['target "lpu-v1"', "", "data @w : tensor<320x320xf16> = [0.5]", ""]
    for f in range(funcs):
        lines.append(f"func @f{f}(%x: tensor<4x320xf16>, %g: tensor<320xf16>) -> tensor<4x320xf16> {{")
        lines.append("  %w = get @w : tensor<320x320xf16>")
        prev, count, i = "%x", 1, 0
        while count < per - 2:
            k = i % 8
            if k == 3:
                lines.append(f"  %m{i} = matmul {prev}, %w : tensor<4x320xf32>")
                lines.append(f"  %v{i} = cast %m{i} : tensor<4x320xf16>")
                count += 2
            elif k == 5:
                lines.append(f"  %v{i} = softmax {prev}")
                count += 1
            elif k == 7:
                lines.append(f"  %v{i} = rmsnorm {prev}, %g {{eps = 1e-05}}")
                count += 1
            else:
                lines.append(f"  %v{i} = {OPS[i % 4]} {prev}, %x : tensor<4x320xf16>")
                count += 1
            prev = f"%v{i}"
            i += 1
        lines += [f"  return {prev}", "}", ""]
    return "\n".join(lines)


def count_ops(module) -> int:
    return sum(1 for _ in module.walk()) - 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ops", type=int, default=50_000)
    args = ap.parse_args(argv)
    from lpu.dsl.cli import emit_mlir, parse_mlir
    from lpu.dsl.frontend import check_module, parse_module
    from lpu.dsl.passes import DEFAULT_PIPELINE, run_pipeline

    text = generate(args.ops)
    check_module("func @warm() {\n  return\n}\n", "warm.lpu")  # grammar tables loaded, not timed
    gc.collect()
    t0 = time.perf_counter()
    module = parse_module(text, "bench.lpu")
    t1 = time.perf_counter()
    n = count_ops(module)
    ours = n / (t1 - t0)
    print(f"module: {n} ops")
    print(f"parse+verify .lpu: {ours:,.0f} ops/s")

    mlir = emit_mlir(module)
    gc.collect()
    t0 = time.perf_counter()
    baseline_module = parse_mlir(mlir, "bench.mlir")
    baseline_module.verify()
    t1 = time.perf_counter()
    theirs = count_ops(baseline_module) / (t1 - t0)
    print(f"parse+verify xDSL MLIR text (baseline): {theirs:,.0f} ops/s")
    print(f"parse+verify .lpu/xDSL MLIR: {ours / theirs:.2f}x")

    gc.collect()
    t0 = time.perf_counter()
    run_pipeline(module, DEFAULT_PIPELINE, verify_each=False)
    t1 = time.perf_counter()
    print(f"default pipeline ({DEFAULT_PIPELINE}, verified at the end): {t1 - t0:.2f} s")
    print(f"default pipeline: {n / (t1 - t0):,.0f} ops/s")
    print(f"module after pipeline: {count_ops(module)} ops")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
