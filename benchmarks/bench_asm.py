"""Assembler speed: a generated 100,000-instruction file, end to end (parse, check, time, encode,
write the ELF object), and llvm-mc assembling the same count of RISC-V instructions when it is
installed — both in this run, so the ratio compares like with like on this machine.

    python benchmarks/bench_asm.py [N]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from lpu.asm.assembler import assemble
from lpu.asm.emit import emit
from lpu.asm.objfile import write_object
from lpu.asm.parser import parse


def generate(n: int) -> str:
    """A timing-valid kernel of n instructions: a read, two VXM ops and a write per step,
    steps 4 cycles apart, so the streams, queues and timing checks all do real work."""
    lines = [
        'target "lpu-v1"',
        'data @a : tensor<64x320xi8> in MEM_W3 = hex"' + "01" * (64 * 320) + '"',
        "reserve @b : tensor<64x320xi8> in MEM_E2",
        "kernel @k {",
    ]
    step = 4
    for i in range(n):
        j, k = divmod(i, 4)
        t = j * step
        a = j % 64
        if k == 0:
            lines.append(f"  @{t} MEM_W3 read.i8 [@a + {a}], s{j % 8}e")
        elif k == 1:
            lines.append(f"  @{t + 6} VXM.{j % 4} add.i8 s{j % 8}e, 3, s{8 + j % 8}e")
        elif k == 2:
            lines.append(f"  @{t + 8} VXM.{4 + j % 4} mul.i8 s{8 + j % 8}e, s{8 + j % 8}e, s{16 + j % 8}e  // square")
        else:
            lines.append(f"  @{t + 13} MEM_E2 write.i8 [@b + {a}], s{16 + j % 8}e")
    lines.append("}")
    return "\n".join(lines) + "\n"


def riscv(n: int) -> str:
    ops = ["add a0, a1, a2", "addi t0, t1, 42", "lw a3, 8(sp)", "sw a4, 12(sp)", "xor s1, s2, s3"]
    return "\n".join(ops[i % len(ops)] for i in range(n)) + "\n"


def best_of(runs: int, fn) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    text = generate(n)
    name = f"{n // 1000}k"
    assemble(text, "warmup.lpu")  # the grammar cache and imports are not what we measure

    t_parse = best_of(3, lambda: parse(text, "bench.lpu"))
    obj = None

    def full():
        nonlocal obj
        obj = write_object(emit(assemble(text, "bench.lpu")))

    t_all = best_of(3, full)
    rate = n / t_all
    print(f"parse {name}: {n / t_parse:.0f} instructions/s")
    print(f"assemble {name}: {rate:.0f} instructions/s")
    print(f"assemble {name} object: {len(obj)} bytes")

    mc = shutil.which("llvm-mc")
    if mc:
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "bench.s")
            with open(src, "w") as f:
                f.write(riscv(n))
            cmd = [mc, "-triple=riscv64", "-filetype=obj", src, "-o", os.path.join(tmp, "bench.o")]
            t_mc = best_of(2, lambda: subprocess.run(cmd, check=True))
        print(f"llvm-mc riscv64 {name}: {n / t_mc:.0f} instructions/s")
        print(f"lpu-as/llvm-mc: {t_mc / t_all:.3f}x")
    else:
        print("llvm-mc: not installed (install Debian's llvm for the ratio)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
