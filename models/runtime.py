"""A compiled language model on simulated chips, run token after token.

``CompiledModel.build(path)`` compiles an imported module (``lpu import``; its ``@main`` takes
the token id and the position, returns the next token and the logits), links it for as many
chips as it needs, and loads the image once into ``lpu.sim.runtime.Runtime``. Each ``step``
writes the token and position into the chips' input tensors, runs the whole system from cycle
0 and reads the next token and the logits back; the KV caches are SRAM tensors the program
itself writes, so they stay from step to step (positions after the current one are masked, so
what an earlier sequence left there is never read).

``generate`` runs a prompt's tokens one by one (prefill: the caches fill, the predictions of
all but the last are not needed) and then greedy decoding, with the cycles of each step.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from lpu.diagnostics import DiagnosticError, error


@dataclass
class StepResult:
    token: int
    logits: np.ndarray
    cycles: int
    wall_seconds: float


@dataclass
class Generation:
    prompt: list[int]
    tokens: list[int] = field(default_factory=list)
    prefill_cycles: list[int] = field(default_factory=list)
    decode_cycles: list[int] = field(default_factory=list)
    wall_seconds: list[float] = field(default_factory=list)  # the simulator's, per step


class CompiledModel:
    """An imported model compiled, linked and loaded once (module doc)."""

    def __init__(self, compiled, image, module, path: str, cfg, times: dict[str, float]):
        from lpu.sim.runtime import Runtime

        self.compiled, self.module, self.path, self.cfg = compiled, module, path, cfg
        self.times = dict(times)
        t0 = time.perf_counter()
        self.runtime = Runtime(image, path)
        self.times["load"] = time.perf_counter() - t0
        from lpu.dsl import types as T
        from lpu.dsl.interpreter import function

        fn = function(module, "main")
        ctx = [a for a in module.ops if getattr(a, "sym_name", None) is not None
               and a.sym_name.data == "causal_mask"]
        self.context = T.shape_of(ctx[0].type)[0] if ctx else None
        self.vocab = T.shape_of(fn.function_type.outputs.data[-1])[-1]

    @classmethod
    def build(cls, path: str, chips: int | None = None, config: str | None = None) -> "CompiledModel":
        from lpu.arch.config import load_config
        from lpu.compile import compile_source, link_compiled
        from lpu.files import read_text

        cfg = load_config(config)
        t0 = time.perf_counter()
        c, module = compile_source(read_text(path), path, "main", config, chips=chips)
        t1 = time.perf_counter()
        image = link_compiled(c)
        t2 = time.perf_counter()
        return cls(c, image, module, path, cfg, {"compile": t1 - t0, "link": t2 - t1})

    @property
    def chips(self) -> int:
        return len(getattr(self.compiled, "chips", {0: None}))

    def step(self, token: int, pos: int) -> StepResult:
        if self.context is not None and not 0 <= pos < self.context:
            raise DiagnosticError(error(f"position {pos} is past the context bucket of {self.context} "
                                        f"(import with a larger --context)"))
        args = {"token": np.array(token, np.int32), "pos": np.array(pos, np.int32)}
        for sym, a in self.compiled.inputs(args, self.cfg.lanes).items():
            self.runtime.write(sym, a)
        step = self.runtime.run()
        if step.hazards:
            raise DiagnosticError(self.runtime.diagnostics(step) if hasattr(self.runtime, "diagnostics") else
                                  error(f"hazard: {step.hazards[0]}"))
        parts = {s: self.runtime.read(s) for s in self.compiled.output_symbols()}
        nxt, logits = self.compiled.results(parts)
        return StepResult(int(np.asarray(nxt).reshape(-1)[0]), np.asarray(logits).reshape(-1), step.cycles,
                          step.wall_seconds)

    def tensor(self, sym: str) -> np.ndarray:
        """Module tensor ``@sym`` (a KV cache) as the chips hold it now."""
        t = self.compiled.tensor(sym, self.runtime.read)
        if t is None:
            raise DiagnosticError(error(f"the compiled program does not keep '@{sym}' where the host can read it"))
        return t

    def generate(self, prompt: list[int], n: int, on_token=None, on_step=None, stop: set[int] | None = None,
                 logits: list | None = None) -> Generation:
        """``n`` tokens after ``prompt``, greedily; ``on_token(id)`` as each is made,
        ``on_step(i, total, phase)`` after every step, ``logits`` (a list) gets each step's."""
        if not prompt:
            raise DiagnosticError(error("the prompt has no tokens"))
        g = Generation(list(prompt))
        total = len(prompt) + n - 1
        token, pos = prompt[0], 0
        for i in range(total):
            r = self.step(token, pos)
            g.wall_seconds.append(r.wall_seconds)
            if logits is not None:
                logits.append(r.logits)
            if i < len(prompt) - 1:  # prefill: the next token is the prompt's
                g.prefill_cycles.append(r.cycles)
                token = prompt[i + 1]
            else:
                g.decode_cycles.append(r.cycles)
                g.tokens.append(r.token)
                token = r.token
                if on_token is not None:
                    on_token(r.token)
                if stop and r.token in stop:
                    break
            pos += 1
            if on_step is not None:
                on_step(i + 1, total, "prefill" if i < len(prompt) - 1 else "decode")
        return g


def clock_hz(cfg) -> float:
    """The chip configuration's clock, in Hz."""
    return float(cfg["clock.mhz"]) * 1e6


def model_dir(path: str) -> str:
    """The folder of an imported module's weights (beside it, named after it)."""
    return os.path.splitext(os.path.abspath(path))[0]
