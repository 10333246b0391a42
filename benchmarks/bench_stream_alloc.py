"""stream-alloc on the general path's kernels (docs/codegen.md, "stream-alloc as a pass"):

- how many streams a direction the scheduler's kernel uses, and the fewest stream-alloc can
  re-allocate the same kernel into (same cycles: the pass moves no instruction);
- what a stream limit costs the scheduler: cycles of ``schedule-general{streams=N}`` against
  the default schedule of the same run;
- the pass's time against the time of the schedule it allocates.

Every kernel is checked by the assembler's timing rules (``to_kernel``) after the pass.
"""

from __future__ import annotations

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = ["softmax", "layernorm", "attention", "mlp", "decoder"]
LIMITS = (16, 8)


def _used(kop, cfg) -> int:
    """Streams a direction the kernel touches: one past the highest stream of any group."""
    from lpu.dsl.codegen.stream_alloc import kernel_values

    return max(b + w for v in kernel_values(kop, cfg) for b, w, _ in v.operands.values())


def main(quick: bool = False) -> None:
    from lpu.arch.config import load_config
    from lpu.diagnostics import DiagnosticError
    from lpu.dsl.codegen.general import compile_general
    from lpu.dsl.codegen.stream_alloc import stream_alloc
    from lpu.dsl.codegen.streams import stream_limit
    from lpu.dsl.frontend import parse_module
    from lpu.dsl.lpu_dialect import to_kernel

    cfg = load_config("lpu-v1")
    for name in EXAMPLES[:3] if quick else EXAMPLES:
        path = os.path.join(ROOT, "examples", f"{name}.lpu")
        module = parse_module(open(path).read(), path)
        t0 = time.perf_counter()
        c = compile_general(module, "main", cfg, os.path.dirname(path), path)
        t_compile = time.perf_counter() - t0
        kop = c.kernel.clone()
        t0 = time.perf_counter()
        values = stream_alloc(kop, cfg)
        t_alloc = time.perf_counter() - t0
        to_kernel(kop, cfg, path)
        print(f"{name} values: {len(values)} values")
        print(f"{name} cycles (default): {c.cycles} cycles")
        print(f"{name} stream-alloc: {t_alloc:.2f} s")
        print(f"{name} stream-alloc/compile time: {t_alloc / t_compile:.2f}x")
        print(f"{name} streams used (scheduler): {_used(c.kernel, cfg)} streams")
        fewest = None
        for n in range(_used(c.kernel, cfg), 0, -1):  # the fewest the same kernel fits in
            try:
                stream_alloc(c.kernel.clone(), cfg, n)
            except DiagnosticError:
                break
            fewest = n
        print(f"{name} streams needed (stream-alloc, same schedule): {fewest} streams")
        for n in LIMITS:
            with stream_limit(n):
                limited = compile_general(module, "main", cfg, os.path.dirname(path), path)
            print(f"{name} cycles (schedule-general{{streams={n}}}): {limited.cycles} cycles")
            print(f"{name} cycles streams={n}/default: {limited.cycles / c.cycles:.2f}x")


if __name__ == "__main__":
    main("--quick" in sys.argv)
