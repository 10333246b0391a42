"""lpu import's errors: each unsupported or broken checkpoint gets one clear line naming what is
wrong, exit status 1 and no traceback; nothing is left half written."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from lpu.driver import main as lpu_main
from models_helpers import TINY_GGUF, tiny_variant


def _import(capsys, gguf: str, out: str, *options: str) -> str:
    assert lpu_main(["import", gguf, "-o", out, *options]) == 1
    cap = capsys.readouterr()
    assert cap.out == "" and "Traceback" not in cap.err
    return cap.err


CASES = [  # (TinySpec changes, the message after "<file>: error: ")
    (dict(architecture="gpt2"), "architecture 'gpt2' is not supported (supported: llama)"),
    (dict(omit=("llama.block_count",)), "metadata key 'llama.block_count' (the number of blocks) is missing"),
    (dict(omit=("llama.attention.layer_norm_rms_epsilon",)),
     "metadata key 'llama.attention.layer_norm_rms_epsilon' (RMSNorm's epsilon) is missing"),
    (dict(types={"blk.1.ffn_up": "Q5_0"}),
     "tensor 'blk.1.ffn_up.weight' has type Q5_0, which is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)"),
    (dict(drop=("blk.1.ffn_up",)), "tensor 'blk.1.ffn_up.weight' is missing"),
    (dict(extra_tensors={"blk.0.attn_q.bias": np.zeros(64)}),
     "tensor 'blk.0.attn_q.bias' is not supported (biases are not part of a Llama block)"),
    (dict(extra_tensors={"blk.2.attn_q.weight": np.zeros((64, 64))}),
     "tensor 'blk.2.attn_q.weight' is not supported (the model has 2 blocks)"),
    (dict(extra_tensors={"pos_embd.weight": np.zeros((4, 64))}),
     "tensor 'pos_embd.weight' is not supported (a Llama checkpoint holds token_embd, output_norm, output and "
     "blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,ffn_norm,ffn_gate,ffn_up,ffn_down})"),
    (dict(drop=("blk.0.attn_norm",), extra_tensors={"blk.0.attn_norm.weight": np.ones(32)}),
     "tensor 'blk.0.attn_norm.weight' has shape [32], not [64] (GGUF order)"),
    (dict(metadata={"llama.rope.scaling.type": "yarn"}), "rope scaling type 'yarn' is not supported (supported: none)"),
    (dict(metadata={"llama.rope.scaling.factor": 4.0}), "rope scaling type 'linear' is not supported (supported: none)"),
    (dict(extra_tensors={"rope_freqs.weight": np.ones(8)}),
     "tensor 'rope_freqs.weight' (RoPE frequency factors, Llama 3.1's rope scaling) is not supported"),
    (dict(metadata={"llama.rope.dimension_count": 8}),
     "partial rotary embedding ('llama.rope.dimension_count' = 8 of head dimension 16) is not supported"),
    (dict(metadata={"llama.expert_count": 8}), "mixture of experts ('llama.expert_count' = 8) is not supported"),
    (dict(metadata={"llama.attention.key_length": 32}),
     "'llama.attention.key_length' = 32, not the head dimension 16: heads of another width than d / heads are not supported"),
]


@pytest.mark.parametrize("changes,message", CASES, ids=[c[1][:40] for c in CASES])
def test_unsupported_checkpoints(tmp_path, capsys, changes, message):
    path = tiny_variant(tmp_path, **changes)
    err = _import(capsys, path, str(tmp_path / "m.lpu"))
    assert err == f"{path}: error: {message}\n"
    assert sorted(os.listdir(tmp_path)) == ["variant.gguf"]  # nothing written


def test_heads_that_do_not_divide_the_width(tmp_path, capsys):
    path = tiny_variant(tmp_path, metadata={"llama.attention.head_count": 5, "llama.attention.head_count_kv": 5})
    assert _import(capsys, path, str(tmp_path / "m.lpu")) == (
        f"{path}: error: 5 attention heads and 5 key/value heads do not divide the width 64 into heads and groups\n")


def test_options_out_of_range(tmp_path, capsys):
    out = str(tmp_path / "m.lpu")
    assert _import(capsys, TINY_GGUF, out, "--context", "1000") == (
        f"{TINY_GGUF}: error: --context 1000: the context bucket must be 1 to the model's context length 512\n")
    assert _import(capsys, TINY_GGUF, out, "--blocks", "3") == f"{TINY_GGUF}: error: --blocks 3: the model has 2 blocks\n"
    assert _import(capsys, TINY_GGUF, str(tmp_path / "m.txt")) == (
        f"error: the output '{tmp_path / 'm.txt'}' must be a .lpu file (its weights go in the folder beside it)\n")
    # (--dtype takes f32 and i8 too, for ONNX models; a GGUF checkpoint's matrices are f16 or bf16)
    assert _import(capsys, TINY_GGUF, out, "--dtype", "f32") == \
        "error: --dtype f32: the matrices' type must be one of f16, bf16\n"
    assert os.listdir(tmp_path) == []


def test_a_file_where_the_folder_goes(tmp_path, capsys):
    (tmp_path / "m").write_text("in the way")
    out = str(tmp_path / "m.lpu")
    assert _import(capsys, TINY_GGUF, out) == (
        f"{out}: error: cannot write the weights' folder '{tmp_path / 'm'}': a file of that name is in the way\n")


def test_f16_overflow_names_the_tensor_and_the_way_out(tmp_path, capsys):
    big = np.zeros((128, 64), np.float32)
    big[3, 5] = 1e5
    path = tiny_variant(tmp_path, drop=("blk.0.ffn_gate",), extra_tensors={"blk.0.ffn_gate.weight": big})
    out = tmp_path / "m.lpu"
    assert lpu_main(["import", path, "-o", str(out), "--context", "8"]) == 1  # f16 fails mid-way ...
    assert capsys.readouterr().err == (f"{path}: error: tensor 'blk.0.ffn_gate.weight' holds values up to 100000, "
                                       f"beyond f16's range (65504): import with --dtype bf16\n")
    assert sorted(os.listdir(tmp_path)) == ["variant.gguf"]  # ... and leaves no staging folder
    assert lpu_main(["import", path, "-o", str(out), "--context", "8", "--dtype", "bf16"]) == 0


def test_an_unsupported_tokenizer_is_a_warning(tmp_path, capsys):
    path = tiny_variant(tmp_path, metadata={"tokenizer.ggml.model": "llama"})
    out = tmp_path / "m.lpu"
    assert lpu_main(["import", path, "-o", str(out), "--context", "8"]) == 0
    assert capsys.readouterr().err == (f"{path}: warning: tokenizer model 'llama' is not supported (supported: gpt2, "
                                       f"byte-level BPE); no tokenizer.json written\n")
    assert not (tmp_path / "m" / "tokenizer.json").exists() and (tmp_path / "m" / "config.json").exists()


def test_not_gguf_through_a_real_process(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"\x00" * 64)
    p = subprocess.run([sys.executable, "-m", "lpu.driver", "import", str(bad), "-o", str(tmp_path / "m.lpu")],
                       capture_output=True, text=True)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr == f"{bad}: error: not a GGUF file (it starts with b'\\x00\\x00\\x00\\x00', not b'GGUF')\n"


# the messages tested above besides CASES', as docs/models.md spells them (file name "model.gguf")
OTHERS = [
    "not a GGUF file (it starts with b'PK\\x03\\x04', not b'GGUF')",          # test_models_gguf.py
    "--context 1000: the context bucket must be 1 to the model's context length 512",
    "tensor 'blk.0.ffn_gate.weight' holds values up to 100000, beyond f16's range (65504): import with --dtype bf16",
]


def test_docs_show_the_messages_as_tested():
    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs", "models.md"), encoding="utf-8").read()
    shown = [line.removeprefix("model.gguf: error: ") for line in doc.splitlines() if line.startswith("model.gguf: error: ")]
    assert len(shown) >= 10
    tested = {m for _, m in CASES} | set(OTHERS)
    assert [m for m in shown if m not in tested] == []
