"""The golden fixtures ``models/golden/make_fixtures.py`` writes, and the issue's check of a
model's teacher-forced logits against them.

``load_golden("tests/fixtures/smollm2")`` reads ``golden.json`` and ``logits.npz``;
``check_teacher_forced(logits, prompt)`` says whether logits ``[65, vocab]`` (the prompt's last
position, then after each of the 64 reference tokens) pass: the reference's next token at
least ``min_hits`` times, every miss where the reference's top two logits are within
``tie`` of each other, and every row's cosine similarity with the reference's logits (where
stored) at least ``min_cosine``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

#: tests/fixtures of the source tree this package is in (None in an installed copy)
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures")


@dataclass
class GoldenPrompt:
    name: str
    text: str                       # the prompt as the model sees it (a chat prompt rendered)
    ids: list[int]
    generated: list[int]            # greedy, 64 tokens
    top2_ids: np.ndarray            # [65, 2]: teacher-forced positions, best first
    top2_logits: np.ndarray         # [65, 2]
    messages: list | None = None    # a chat prompt's messages
    logits: np.ndarray | None = None  # [65, vocab] float32 (from float16), where stored

    @property
    def margins(self) -> np.ndarray:
        """The reference's top-1 minus top-2 logit at each position."""
        return self.top2_logits[:, 0] - self.top2_logits[:, 1]


@dataclass
class Golden:
    model: str
    gguf_sha256: str
    versions: dict
    prompts: list[GoldenPrompt]
    corpus: list[dict]              # text, transformers (ids), smollm (ids), decoded
    weights_sha256: dict            # transformers' weight name -> sha256 of its float32 bytes

    def prompt(self, name: str) -> GoldenPrompt:
        return next(p for p in self.prompts if p.name == name)


def load_golden(folder: str) -> Golden:
    with open(os.path.join(folder, "golden.json"), encoding="utf-8") as f:
        g = json.load(f)
    npz = np.load(os.path.join(folder, "logits.npz"))
    prompts = [GoldenPrompt(name=p["name"], text=p["text"], ids=p["ids"], generated=p["generated"],
                            top2_ids=np.asarray(p["top2_ids"], np.int64),
                            top2_logits=np.asarray(p["top2_logits"], np.float32),
                            messages=p.get("messages"),
                            logits=npz[p["name"]].astype(np.float32) if p["name"] in npz.files else None)
               for p in g["prompts"]]
    return Golden(model=g["model"], gguf_sha256=g["gguf_sha256"], versions=g["versions"], prompts=prompts,
                  corpus=g["tokenizer_corpus"], weights_sha256=g["weights_sha256"])


@dataclass
class TeacherForcing:
    hits: int
    steps: int
    misses: list[int] = field(default_factory=list)        # positions where top-1 differs
    near_ties: list[int] = field(default_factory=list)     # ... and the reference's margin is within tie
    cosines: np.ndarray | None = None

    def passed(self, min_hits: int, min_cosine: float) -> bool:
        return (self.hits >= min_hits and self.misses == self.near_ties
                and (self.cosines is None or float(self.cosines.min()) >= min_cosine))

    def __str__(self) -> str:
        s = f"top-1 {self.hits}/{self.steps}, misses at {self.misses} (near ties {self.near_ties})"
        if self.cosines is not None:
            s += f", cosine min {float(self.cosines.min()):.6f}"
        return s


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def teacher_forced_report(logits: np.ndarray, prompt: GoldenPrompt, tie: float = 0.1) -> TeacherForcing:
    """How ``logits`` (rows for the reference's positions, at least the 64 that predict its
    generated tokens) compare with the reference's."""
    steps = len(prompt.generated)
    pred = np.asarray(logits)[:steps].argmax(-1)
    misses = [i for i in range(steps) if int(pred[i]) != prompt.generated[i]]
    near = [i for i in misses if prompt.margins[i] <= tie]
    cos = None
    if prompt.logits is not None:
        n = min(len(logits), len(prompt.logits))
        cos = cosine_rows(np.asarray(logits)[:n], prompt.logits[:n])
    return TeacherForcing(hits=steps - len(misses), steps=steps, misses=misses, near_ties=near, cosines=cos)
