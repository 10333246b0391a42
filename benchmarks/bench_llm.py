"""SmolLM2-135M on simulated chips: compile time, chips, cycles per decode and prompt token,
tokens/s at the chip's clock against the analytical lower bound (docs/llm.md), and the
simulator's wall time per token.

    python benchmarks/bench_llm.py [--tokens N] [--blocks N]

Prints ``name: value unit`` lines. The bound is the larger of two (docs/llm.md, "The bound"):
every weight byte of a token streamed into the MXM planes once, and the token's dependency
chain at the least latency the floor plan allows, plus the C2C hops between the chips.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def token_bound(module, cfg, chips: int) -> dict[str, float]:
    """The lower bounds of one token (cycles): weight streams, dependency chain (+ hops)."""
    from lpu.dsl.codegen.bounds import function_bounds

    b = function_bounds(module, "main", cfg, chips)
    hop = cfg["c2c.link_latency"]
    return {"weights": b["weight streams"], "chain": b["dependency chain"] + (chips - 1) * hop}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=4, help="decode steps to time (default 4)")
    ap.add_argument("--blocks", type=int, default=None, help="keep only the first N blocks")
    args = ap.parse_args(argv)

    from lpu.models.importer import import_gguf
    from lpu.models.runtime import CompiledModel, clock_hz
    from lpu.models.smollm2 import gguf_path

    folder = tempfile.mkdtemp(prefix="bench_llm_")
    path = os.path.join(folder, "smollm2.lpu")
    t0 = time.perf_counter()
    import_gguf(gguf_path(), path, blocks=args.blocks)
    t1 = time.perf_counter()
    m = CompiledModel.build(path)
    hz = clock_hz(m.cfg)
    name = "smollm2-135m" + (f" ({args.blocks} blocks)" if args.blocks else "")
    print(f"{name} import: {t1 - t0:.1f} s")
    print(f"{name} compile: {m.times['compile']:.1f} s")
    print(f"{name} link: {m.times['link']:.1f} s")
    print(f"{name} load (simulator plan): {m.times['load']:.1f} s")
    print(f"{name} chips: {m.chips} chips")
    prompt = [1, 504, 3458, 282]  # any ids: the schedule is static, the cycles do not depend on them
    gen = m.generate(prompt, args.tokens)
    dec = sum(gen.decode_cycles) / len(gen.decode_cycles)
    pre = sum(gen.prefill_cycles) / len(gen.prefill_cycles)
    b = token_bound(m.module, m.cfg, m.chips)
    bound = max(b.values())
    print(f"{name} cycles per decode token: {dec:.0f} cycles")
    print(f"{name} cycles per prompt token: {pre:.0f} cycles")
    print(f"{name} decode rate at {hz / 1e6:g} MHz: {hz / dec:.0f} tokens/s")
    print(f"{name} bound, weights streamed once: {b['weights']:.0f} cycles")
    print(f"{name} bound, dependency chain and C2C hops: {b['chain']:.0f} cycles")
    print(f"{name} lower bound per token: {bound:.0f} cycles")
    print(f"{name} decode cycles/bound: {dec / bound:.2f}x")
    print(f"{name} decode cycles/weight-stream bound: {dec / b['weights']:.2f}x")
    print(f"{name} bound rate at {hz / 1e6:g} MHz: {hz / bound:.0f} tokens/s")
    walls = gen.wall_seconds[len(gen.prefill_cycles):]
    print(f"{name} simulator wall time per token: {sum(walls) / len(walls):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
