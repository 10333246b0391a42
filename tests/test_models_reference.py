"""The numpy Llama reference against transformers (the golden fixtures): the tiny model in the
default suite; SmolLM2-135M through the importer, the reference and the interpreter in the slow
suite (teacher forcing: >= 62/64 top-1, misses only at near ties, cosine >= 0.999 per step)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from lpu.compile import TOLERANCE
from lpu.dsl.frontend import parse_module
from lpu.dsl.interpreter import run_function
from lpu.models import smollm2
from lpu.models.fixtures import cosine_rows, teacher_forced_report
from lpu.models.importer import import_gguf
from lpu.models.llama import load_llama
from lpu.models.reference import LlamaReference
from lpu.models.tokenizer import Tokenizer
from models_helpers import TINY_GGUF, assert_transformers_weights, needs_smollm2, smollm2_golden, tiny_golden


@pytest.fixture(scope="module")
def tiny():
    return load_llama(TINY_GGUF)


def test_tiny_weights_are_transformers(tiny):
    assert_transformers_weights(*tiny, tiny_golden())


def test_tiny_reference_is_transformers(tiny):
    cfg, w = tiny
    ref = LlamaReference(cfg, w)
    for p in tiny_golden().prompts:
        logits = ref.teacher_forced(p.ids, p.generated)
        assert logits.shape == (65, 512)
        report = teacher_forced_report(logits, p)
        assert report.hits == 64, str(report)
        # transformers' logits are stored as float16: they agree to its rounding
        assert report.cosines.min() >= 0.99999, str(report)
        np.testing.assert_allclose(logits, p.logits, rtol=0, atol=2 ** -6)
        np.testing.assert_array_equal(np.argsort(-logits, -1, kind="stable")[:, :2], p.top2_ids)
        assert ref.generate(p.ids, 64) == p.generated, p.name


def test_one_token_at_a_time_is_all_at_once(tiny):
    cfg, w = tiny
    ids = tiny_golden().prompt("code").ids + tiny_golden().prompt("code").generated[:10]
    ref = LlamaReference(cfg, w, context=32)
    whole = ref.forward(ids)
    ref.reset()
    steps = np.stack([ref.step(t) for t in ids])
    np.testing.assert_allclose(steps, whole, rtol=0, atol=1e-5 * np.abs(whole).max())
    assert ref.pos == len(ids)
    with pytest.raises(ValueError, match="position 32 is past the context of 32"):
        ref.forward(list(range(32 - len(ids) + 1)))


def test_f16_mode_rounds_the_matmul_operands(tiny):
    cfg, w = tiny
    ids = tiny_golden().prompt("fox").ids
    f32 = LlamaReference(cfg, w).forward(ids)
    f16 = LlamaReference(cfg, w, mxm_dtype="f16").forward(ids)
    assert 0 < np.abs(f16 - f32).max() < 0.05 * np.abs(f32).max()
    assert cosine_rows(f16, f32).min() > 0.9999
    with pytest.raises(ValueError, match="mxm_dtype must be"):
        LlamaReference(cfg, w, mxm_dtype="f8")


# --- the real model (slow) ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smol():
    return load_llama(smollm2.gguf_path())


@pytest.mark.slow
@needs_smollm2
def test_smollm2_checkpoint_is_the_fixtures():
    import hashlib

    h = hashlib.sha256(open(smollm2.gguf_path(), "rb").read()).hexdigest()
    assert h == smollm2_golden().gguf_sha256


@pytest.mark.slow
@needs_smollm2
def test_smollm2_weights_are_transformers(smol):
    assert_transformers_weights(*smol, smollm2_golden())


@pytest.mark.slow
@needs_smollm2
def test_smollm2_reference_is_transformers(smol):
    cfg, w = smol
    assert (cfg.blocks, cfg.dim, cfg.ffn, cfg.heads, cfg.kv_heads, cfg.vocab, cfg.rope_base, cfg.tied) == \
        (30, 576, 1536, 9, 3, 49152, 100000.0, True)
    for mxm in (None, "f16"):
        ref = LlamaReference(cfg, w, mxm_dtype=mxm)
        for p in smollm2_golden().prompts:
            report = teacher_forced_report(ref.teacher_forced(p.ids, p.generated), p)
            assert report.passed(min_hits=62, min_cosine=0.9999 if mxm is None else 0.999), f"{mxm} {p.name}: {report}"
            assert ref.generate(p.ids, 16) == p.generated[:16], f"{mxm} {p.name}"


@pytest.mark.slow
@needs_smollm2
def test_smollm2_imported_on_the_interpreter(tmp_path, smol):
    cfg, w = smol
    r = import_gguf(smollm2.gguf_path(), str(tmp_path / "smollm2.lpu"))
    assert r.nbytes > 250e6 and len(r.files) == 2 + 30 * 9 + 3 + 2
    m = parse_module(open(r.module).read(), r.module)
    p = smollm2_golden().prompt("capital")
    assert Tokenizer.load(os.path.join(r.folder, "tokenizer.json")).encode(p.text) == p.ids
    ids = p.ids + p.generated[:8]
    state: dict = {}
    rows, nexts = [], []
    for pos, t in enumerate(ids):
        nxt, logits = run_function(m, "main", {"token": np.asarray(t, np.int32), "pos": np.asarray(pos, np.int32)},
                                   base_dir=str(tmp_path), sram=state)
        rows.append(logits[0])
        nexts.append(int(nxt[0, 0]))
    got = np.stack(rows)
    want = LlamaReference(cfg, w, mxm_dtype="f16").forward(ids)
    assert float(np.abs(got - want).max() / np.abs(want).max()) < TOLERANCE["f16"]
    tf = got[len(p.ids) - 1:]
    assert nexts[len(p.ids) - 1:] == p.generated[:9]      # argmax on the chip's side too
    assert cosine_rows(tf, p.logits[:9]).min() >= 0.999
