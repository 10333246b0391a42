"""``make demo``: the flagship example end to end — assemble, link, simulate, compare with numpy."""

from __future__ import annotations

import os
import sys

import numpy as np

from lpu.asm.cli import assemble_file
from lpu.asm.objfile import read_object
from lpu.diagnostics import DiagnosticError, SourceManager, print_diagnostics
from lpu.linker.link import link_objects
from lpu.sim.cli import simulate
from lpu.sim.report import stats_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "asm")
FLAGSHIP = os.path.join(EXAMPLES, "gemv.lpu")
HAND_COUNT = 52  # derived step by step in the comments of gemv.lpu


def main() -> int:
    sources = SourceManager()
    rel = os.path.relpath(FLAGSHIP, ROOT)
    try:
        data = assemble_file(FLAGSHIP, sources=sources)
        print(f"$ lpu-as {rel} -o gemv.o      # {len(data)} bytes")
        image = link_objects([("gemv", read_object(data))])
        print(f"$ lpu-ld gemv.o -o gemv.lpx   # {sum(len(q.words) for q in image.chips[0].queues)} instruction words")
        res = simulate(image, "gemv.lpx", outputs=["y"])
    except DiagnosticError as e:
        print_diagnostics(e.diagnostics, sources)
        return 1
    print("$ lpu-sim gemv.lpx --output y=y.npy")
    sys.stdout.write(stats_text(res.stats))
    x = np.load(os.path.join(EXAMPLES, "gemv_x.npy")).astype(np.int64)
    w = np.stack([np.load(os.path.join(EXAMPLES, f"gemv_w{j}.npy")) for j in range(16)], axis=1)
    w = w.reshape(-1, w.shape[-1])  # W[j::16] striped over 16 slices, rows interleaved back
    ref = (x @ w.astype(np.int64)).astype(np.int32)
    same = np.array_equal(res.outputs["y"], ref)
    print(f"y == x . W (numpy): {'yes' if same else 'NO'}; cycles {res.machine.cycles} "
          f"(hand count in gemv.lpu: {HAND_COUNT})")
    return 0 if same and not res.hazards and res.machine.cycles == HAND_COUNT else 1


if __name__ == "__main__":
    sys.exit(main())
