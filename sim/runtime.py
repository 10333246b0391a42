"""A loaded system image, run step after step: the host's side of an LPU program that keeps
state in SRAM (a KV cache, a running count) from one run to the next.

    from lpu.sim.runtime import Runtime

    rt = Runtime.load("accumulate.lpx")          # or Runtime(image) for a linked SystemImage
    rt.write("x", np.arange(320, dtype=np.int32))
    for _ in range(3):
        step = rt.run()                          # from cycle 0; step.cycles, step.hazards
    rt.read("total")                             # 3 · x

Loading builds the machine once: the image's SRAM data is written into the chips' slices, the
schedule and streams are resolved, and the execution plan (``plan.py``) is built. A run starts
every queue at cycle 0 with fresh streams and MXM planes; SRAM is as the last run (and the
host's writes since) left it, so nothing is copied again but what the program moves. Names are
SRAM symbols as ``lpu-sim`` takes them: ``sym``, or ``chip:sym`` when several chips have one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lpu.sim import io as simio
from lpu.sim.hazards import Hazard, to_diagnostic
from lpu.sim.machine import Machine


@dataclass
class Step:
    """What one run did: its cycle count and hazards (strict: the first, where it stopped)."""

    cycles: int
    hazards: list[Hazard] = field(default_factory=list)
    instructions: int = 0
    wall_seconds: float = 0.0
    engine: str = "plan"  # "plan", or "reference" when the plan handed the run over

    @property
    def ok(self) -> bool:
        return not self.hazards


class Runtime:
    """One system image (one chip or many), loaded once and run as often as the host likes."""

    def __init__(self, image, name: str = "<image>", strict: bool = True, engine: str = "plan") -> None:
        self.machine = Machine(image, name, strict=strict, engine=engine)
        if engine == "plan":
            self.machine.execution_plan()  # built once here, reused by every run
        self.steps = 0

    @classmethod
    def load(cls, path: str, strict: bool = True, engine: str = "plan") -> "Runtime":
        from lpu.sim.cli import load_image

        return cls(load_image(path), path, strict, engine)

    @property
    def symbols(self) -> list[str]:
        """Every SRAM symbol, as ``chip:sym``."""
        m = self.machine
        return [f"{c.name}:{s.name}" for c in m.image.chips for s in c.symbols]

    def write(self, name: str, array: np.ndarray) -> None:
        """Write a tensor into an SRAM symbol (type and shape checked); it stays until a run or
        another write changes it."""
        simio.write_input(self.machine, name, np.asarray(array))

    def read(self, name: str) -> np.ndarray:
        """An SRAM symbol's tensor as it is now."""
        return simio.read_output(self.machine, name)

    def run(self) -> Step:
        """Run the whole program once, from cycle 0."""
        m = self.machine.run()
        self.steps += 1
        return Step(m.cycles, list(m.hazards), m.instructions, m.wall_seconds,
                    "plan" if m.plan_reason is None else "reference")

    def diagnostics(self, step: Step) -> list:
        """The step's hazards as diagnostics (``file:line:col: error: …`` at their source lines)."""
        return [to_diagnostic(h, self.machine) for h in step.hazards]
