"""What the general path's transposes and SRAM reuse buy, each against its baseline in the same
run (docs/codegen.md, "Transposes" and "SRAM reuse"):

- a transpose of a computed tensor through the SXM's 16 x 16 block transposes against moving
  lane runs straight from the source (``gather``, the path below ``SXM_FROM`` elements):
  simulated cycles and compile time, results equal to the interpreter's;
- the words of the fullest MEM slice for the dataflow examples with temporaries reused after
  their last read, against every value in its own words (cycles are the same: an address never
  changes timing);
- compile speed as functions grow (docs/codegen.md, "Compile speed"): generated functions of
  1 to 32 blocks (``matmul`` 640 x 640 f16, ``cast``, ``tanh``, ``mul``, residual ``add``) and
  f32 ``add``s of 64 to 4096 rows of 4096, each compiled through the whole general path
  (passes, lowering, list scheduling under both priorities, stream allocation, SRAM reuse,
  emit): seconds, instructions the scheduler placed, instructions/s, and the growth of the
  time against the growth of the instructions (1.00: linear).
"""

from __future__ import annotations

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def transpose_rows(a: int, b: int, elem: str) -> None:
    import lpu.dsl.codegen.lower_matmul as M
    from lpu.compile import run_source

    src = f'''target "lpu-v1"
func @main(%x: tensor<{a}x{b}x{elem}>) -> tensor<{b}x{a}x{elem}> {{
  %r = neg %x
  %t = transpose %r {{perm = [1, 0]}}
  return %t
}}
'''
    name = f"{elem} transpose {a}x{b}"
    cycles = {}
    saved = M.SXM_FROM
    for how, limit in (("sxm", saved), ("lane runs", 1 << 60)):
        M.SXM_FROM = limit
        try:
            t0 = time.perf_counter()
            out = run_source(src, "t.lpu", check=True)
            dt = time.perf_counter() - t0
        finally:
            M.SXM_FROM = saved
        assert out.hazards == [] and out.result.tobytes() == out.reference.tobytes()
        cycles[how] = out.cycles
        print(f"{name} ({how}) cycles: {out.cycles} cycles")
        print(f"{name} ({how}) compile+simulate: {dt:.2f} s")
    print(f"{name} sxm speedup: {cycles['lane runs'] / cycles['sxm']:.2f}x")


def reuse_rows(example: str) -> None:
    import lpu.dsl.codegen.general as G
    from lpu.arch.isa import DTYPE_BYTES
    from lpu.compile import compile_source

    path = os.path.join(ROOT, "examples", f"{example}.lpu")
    text = open(path).read()
    peak = {}
    for reuse in (True, False):
        G.REUSE = reuse
        try:
            c, _ = compile_source(text, path)
        finally:
            G.REUSE = True
        words: dict[str, int] = {}
        for t in c.program.tensors:
            words[t.placement.slice] = words.get(t.placement.slice, 0) + t.shape[0] * DTYPE_BYTES[t.dtype]
        peak[reuse] = (max(words.values()), sum(words.values()), c.cycles)
    (m1, s1, c1), (m0, s0, c0) = peak[True], peak[False]
    assert c1 == c0
    print(f"{example} sram fullest slice (reuse): {m1} words")
    print(f"{example} sram fullest slice (no reuse): {m0} words")
    print(f"{example} sram words, all slices (reuse): {s1} words")
    print(f"{example} sram words, all slices (no reuse): {s0} words")
    print(f"{example} sram saved by reuse: {s0 / s1:.2f}x")


def blocks_source(n: int, rows: int = 8, d: int = 640) -> str:
    lines = ['target "lpu-v1"'] + [f"data @w{i} : tensor<{d}x{d}xf16> = [0.01]" for i in range(n)]
    lines.append(f"func @main(%h0: tensor<{rows}x{d}xf16>) -> tensor<{rows}x{d}xf16> {{")
    for i in range(n):
        lines += [f"  %g{i} = get @w{i} : tensor<{d}x{d}xf16>",
                  f"  %m{i} = matmul %h{i}, %g{i} : tensor<{rows}x{d}xf32>",
                  f"  %c{i} = cast %m{i} : tensor<{rows}x{d}xf16>",
                  f"  %t{i} = tanh %c{i}", f"  %s{i} = mul %t{i}, 0.5", f"  %h{i + 1} = add %s{i}, %h{i}"]
    return "\n".join(lines + [f"  return %h{n}", "}"]) + "\n"


def add_source(rows: int) -> str:
    t = f"tensor<{rows}x4096xf32>"
    return f'target "lpu-v1"\nfunc @main(%a: {t}, %b: {t}) -> {t} {{\n  %c = add %a, %b\n  return %c\n}}\n'


def scaling_rows(name: str, unit: str, sizes, source) -> None:
    import math

    from lpu.arch.config import load_config
    from lpu.dsl.codegen import compile_function
    from lpu.dsl.frontend import parse_module

    cfg = load_config("lpu-v1")
    rows = []
    for n in sizes:
        module = parse_module(source(n), f"{name}.lpu")
        t0 = time.perf_counter()
        c = compile_function(module, "main", cfg)
        secs = time.perf_counter() - t0
        rows.append((n, secs, c.scheduled))
        label = f"compile {name} {n} {unit}"
        print(f"{label}: {secs:.2f} s")
        print(f"{label} scheduled: {c.scheduled} instructions")
        print(f"{label} rate: {c.scheduled / secs:.0f} instructions/s")
        print(f"{label} cycles: {c.cycles} cycles")
    (n0, s0, i0), (n1, s1, i1) = rows[0], rows[-1]
    print(f"compile {name} {n0} -> {n1} {unit} time growth per instruction growth: "
          f"{math.log(s1 / s0) / math.log(i1 / i0):.2f}x")


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    transpose_rows(64, 64, "i8")
    if not quick:
        transpose_rows(80, 100, "f16")
    for ex in (["mlp"] if quick else ["mlp", "decoder"]):
        reuse_rows(ex)
    scaling_rows("blocks", "blocks", [1, 2, 4, 8] if quick else [1, 2, 4, 8, 16, 32], blocks_source)
    scaling_rows("f32 add", "x 4096", [64, 256] if quick else [64, 256, 1024, 4096], add_source)


if __name__ == "__main__":
    main(sys.argv[1:])
