"""lpu import: the configuration and weights read from a GGUF checkpoint, the module and files
it writes, and the imported tiny model run on the reference interpreter step by step against
the numpy reference (and through it transformers)."""

from __future__ import annotations

import json
import os

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lpu.compile import TOLERANCE
from lpu.driver import main as lpu_main
from lpu.dsl.frontend import parse_module
from lpu.dsl.interpreter import run_function
from lpu.models.fixtures import teacher_forced_report
from lpu.models.gguf_file import GGUFFile
from lpu.models.importer import import_gguf
from lpu.models.llama import (LlamaConfig, causal_mask, load_llama, read_config, rope_tables, unpermute,
                              weight_names)
from lpu.models.reference import LlamaReference
from lpu.models.tiny import TinySpec, permute_qk, random_weights
from lpu.models.tokenizer import Tokenizer
from models_helpers import TINY_DIR, TINY_GGUF, tiny_golden, tiny_variant


@pytest.fixture(scope="module")
def tiny_import(tmp_path_factory):
    out = tmp_path_factory.mktemp("imp") / "tiny.lpu"
    return import_gguf(TINY_GGUF, str(out))


def test_config_of_the_tiny_checkpoint():
    cfg = read_config(GGUFFile(TINY_GGUF))
    assert cfg == LlamaConfig(name="tiny-llama seed 0", blocks=2, dim=64, ffn=128, heads=4, kv_heads=2, vocab=512,
                              rope_base=10000.0, rms_eps=float(np.float32(1e-5)), context_length=512, tied=True)
    assert (cfg.head_dim, cfg.group, cfg.kv_dim) == (16, 2, 32)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 8), st.integers(1, 5))
def test_unpermute_undoes_llama_cpps_permutation(heads, half, cols):
    w = np.arange(heads * 2 * half * cols, dtype=np.float32).reshape(heads * 2 * half, cols)
    np.testing.assert_array_equal(unpermute(permute_qk(w, heads), heads), w)


def test_unpermute_pairs_rows_as_transformers_does():
    # llama.cpp's row 2i of a head is HF's row i and its row 2i+1 is HF's row i + hd/2
    w = np.arange(8, dtype=np.float32)[:, None]             # one head of 8 rows
    np.testing.assert_array_equal(unpermute(w, 1)[:, 0], [0, 2, 4, 6, 1, 3, 5, 7])


def test_weights_are_the_generators_in_hf_order(tmp_path):
    # Q and K (and a matrix of each orientation) stored exactly, so the loader's un-permutation
    # and transposition are seen bit for bit
    exact = {"blk.0.attn_q": "F32", "blk.0.attn_k": "F32", "blk.0.ffn_down": "F32", "token_embd": "F32"}
    path = tiny_variant(tmp_path, types=exact)
    cfg, w = load_llama(path)
    hf = random_weights(TinySpec(types=exact), cfg.vocab)
    assert list(w) == weight_names(cfg)
    for name in ("blk.0.attn_q", "blk.0.attn_k", "blk.0.ffn_down"):
        np.testing.assert_array_equal(w[name], hf[name].T)
    np.testing.assert_array_equal(w["token_embd"], hf["token_embd"])
    assert w["blk.0.attn_k"].shape == (64, 32) and w["blk.0.ffn_down"].shape == (128, 64)


def test_rope_tables_and_mask():
    cfg = read_config(GGUFFile(TINY_GGUF))
    cos, sin = rope_tables(cfg, 8)
    assert cos.shape == sin.shape == (8, 8) and cos.dtype == np.float32
    p, i = 5, 3
    angle = p * 10000.0 ** (-2 * i / 16)
    assert cos[p, i] == np.float32(np.cos(angle)) and sin[p, i] == np.float32(np.sin(angle))
    m = causal_mask(4)
    assert m.tolist() == [[0, -np.inf, -np.inf, -np.inf], [0, 0, -np.inf, -np.inf],
                          [0, 0, 0, -np.inf], [0, 0, 0, 0]]


def test_import_writes_the_module_and_every_file(tiny_import):
    r = tiny_import
    folder = r.folder
    assert os.path.basename(folder) == "tiny" and os.path.dirname(folder) == os.path.dirname(os.path.abspath(r.module))
    names = sorted(os.listdir(folder))
    assert names == sorted(r.files)
    assert names == sorted([n + ".npy" for n in weight_names(r.config)] +
                           ["rope_cos.npy", "rope_sin.npy", "causal_mask.npy", "config.json", "tokenizer.json"])
    assert not [n for n in os.listdir(os.path.dirname(folder)) if n.startswith(".tmp")]
    _, w = load_llama(TINY_GGUF)
    for name, a in w.items():
        got = np.load(os.path.join(folder, name + ".npy"))
        if a.ndim == 1:
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, a)
        else:
            assert got.dtype == np.float16
            np.testing.assert_array_equal(got, a.astype(np.float16))
    cos, sin = rope_tables(r.config, 256)
    np.testing.assert_array_equal(np.load(os.path.join(folder, "rope_cos.npy")), cos)
    np.testing.assert_array_equal(np.load(os.path.join(folder, "causal_mask.npy")), causal_mask(256))
    meta = json.load(open(os.path.join(folder, "config.json")))
    assert meta["context"] == 256 and meta["dtype"] == "f16" and meta["model"]["dim"] == 64
    assert meta["eos_id"] == 2 and meta["module"] == "tiny.lpu" and len(meta["source_sha256"]) == 64
    tok = Tokenizer.load(os.path.join(folder, "tokenizer.json"))
    assert tok.encode("The quick brown fox") == tiny_golden().prompt("fox").ids


def test_the_module_text_is_the_checked_in_one(tiny_import):
    # the imported module's exact text: the shape docs/models.md shows (SmolLM2's is the same at
    # its sizes); regenerate with `lpu import tests/fixtures/tiny/tiny-llama.gguf -o tests/fixtures/tiny/tiny.lpu`
    # then delete tests/fixtures/tiny/tiny/
    want = open(os.path.join(TINY_DIR, "tiny.lpu"), encoding="utf-8").read()
    assert open(tiny_import.module, encoding="utf-8").read() == want


def test_the_module_parses_and_runs_a_step(tiny_import):
    m = parse_module(open(tiny_import.module).read(), tiny_import.module)
    nxt, logits = run_function(m, "main", {"token": np.asarray(5, np.int32), "pos": np.asarray(0, np.int32)},
                               base_dir=os.path.dirname(tiny_import.module))
    assert nxt.shape == (1, 1) and nxt.dtype == np.int32 and logits.shape == (1, 512)
    assert int(nxt[0, 0]) == int(np.argmax(logits))


def _interpret(module_path: str, tokens: list[int]) -> np.ndarray:
    """Logits of the imported module run step by step, the KV cache kept between runs."""
    m = parse_module(open(module_path).read(), module_path)
    state: dict = {}
    rows = []
    for pos, t in enumerate(tokens):
        _, logits = run_function(m, "main", {"token": np.asarray(t, np.int32), "pos": np.asarray(pos, np.int32)},
                                 base_dir=os.path.dirname(module_path), sram=state)
        rows.append(logits[0])
    assert {"blk0_kt", "blk0_v"} <= set(state)              # the KV cache lives on in the state
    return np.stack(rows)


def _max_rel(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_interpreter_step_by_step_matches_the_reference(tiny_import):
    g = tiny_golden().prompt("fox")
    ids = g.ids + g.generated
    got = _interpret(tiny_import.module, ids)
    cfg, w = load_llama(TINY_GGUF)
    ref = LlamaReference(cfg, w, context=256, mxm_dtype="f16")
    want = ref.forward(ids)
    # the same f16 roundings, but sums in another order can round a value the other way
    assert _max_rel(got, want) < TOLERANCE["f16"]
    # and against transformers (float32): the teacher-forcing criteria
    report = teacher_forced_report(got[len(g.ids) - 1:], g)
    assert report.passed(min_hits=62, min_cosine=0.999), str(report)


def test_bf16_import_runs_as_the_bf16_reference(tmp_path):
    r = import_gguf(TINY_GGUF, str(tmp_path / "b.lpu"), dtype="bf16", context=32)
    wq = np.load(os.path.join(r.folder, "blk.0.attn_q.npy"))
    assert wq.dtype == np.dtype("V2") and wq.shape == (64, 64)   # numpy's file of ml_dtypes' bf16
    _, w = load_llama(TINY_GGUF)
    np.testing.assert_array_equal(wq.view(ml_dtypes.bfloat16), w["blk.0.attn_q"].astype(ml_dtypes.bfloat16))
    assert "tensor<64x64xbf16>" in open(r.module).read() and "tensor<32x32xf32>" in open(r.module).read()
    ids = tiny_golden().prompt("code").ids
    got = _interpret(r.module, ids)
    cfg = r.config
    want = LlamaReference(cfg, w, context=32, mxm_dtype="bf16").forward(ids)
    assert _max_rel(got, want) < TOLERANCE["bf16"]


def test_untied_output_and_fewer_blocks(tmp_path):
    path = tiny_variant(tmp_path, tied=False)
    r = import_gguf(path, str(tmp_path / "u.lpu"), blocks=1, context=16)
    text = open(r.module).read()
    assert "data @output : tensor<64x512xf16>" in text and "%Wt = get @output" in text
    assert "@blk1_" not in text and r.config.blocks == 1
    got = _interpret(r.module, [3, 9, 27])
    cfg, w = load_llama(path, blocks=1)
    assert not cfg.tied
    want = LlamaReference(cfg, w, context=16, mxm_dtype="f16").forward([3, 9, 27])
    assert _max_rel(got, want) < TOLERANCE["f16"]


def test_reimport_replaces_the_folder_whole(tmp_path):
    out = tmp_path / "m.lpu"
    import_gguf(TINY_GGUF, str(out), context=8)
    (tmp_path / "m" / "stale.npy").write_bytes(b"old")
    import_gguf(TINY_GGUF, str(out), context=16)
    assert not (tmp_path / "m" / "stale.npy").exists()
    assert np.load(tmp_path / "m" / "causal_mask.npy").shape == (16, 16)
    assert "tensor<16x16xf32>" in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "m.lpu"]


def test_failed_import_leaves_what_was_there(tmp_path):
    out = tmp_path / "m.lpu"
    import_gguf(TINY_GGUF, str(out), context=8)
    before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}
    module = out.read_bytes()
    assert lpu_main(["import", TINY_GGUF, "-o", str(out), "--context", "4096"]) == 1
    assert out.read_bytes() == module
    assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "m.lpu"]


def test_lpu_import_command(tmp_path, capsys):
    out = tmp_path / "sub" / "tiny.lpu"                     # the folder is made
    assert lpu_main(["import", TINY_GGUF, "-o", str(out), "--context", "64"]) == 0
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == ""                   # quiet on success
    assert "tensor<2x16x64xf16>" in out.read_text()
    assert lpu_main(["import", TINY_GGUF, "-o", str(out), "--context", "64", "-v"]) == 0
    err = capsys.readouterr().err
    assert err == (f"{out}: 2 blocks, d = 64, 4/2 heads, vocabulary 512, context 64, f16; 25 files, "
                   f"{sum(os.path.getsize(p) for p in (tmp_path / 'sub' / 'tiny').iterdir()) / 1e6:.1f} MB in "
                   f"{tmp_path / 'sub' / 'tiny'}/\n")


def test_vocabulary_size_from_the_token_list(tmp_path):
    cfg = read_config(GGUFFile(tiny_variant(tmp_path, omit=("llama.vocab_size",))))
    assert cfg.vocab == 512
