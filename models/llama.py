"""A Llama-architecture GGUF checkpoint as a configuration and float32 weights in HF order.

What the importer, the numpy reference and the tests share: ``read_config`` checks that the
file is a Llama model this toolchain can run (and says what is not supported when it is not),
``load_weights`` dequantizes its tensors, un-permutes Q and K from llama.cpp's interleaved
order and transposes every matrix to ``[in, out]`` (for ``x · W``), and ``rope_tables`` /
``causal_mask`` are the compile-time tables a decoder step reads at the current position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from lpu.models.gguf_file import GGUFFile, fail

SUPPORTED_ARCHITECTURES = ("llama",)
SUPPORTED_ROPE_SCALING = ("none",)

# a block's tensors in the order the importer writes them (GGUF names, without "blk.N." and ".weight")
BLOCK_TENSORS = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                 "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")
MATRICES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
NORMS = ("attn_norm", "ffn_norm")

_BLOCK_NAME = re.compile(r"blk\.(\d+)\.(\w+)\.weight")


@dataclass(frozen=True)
class LlamaConfig:
    """The hyperparameters of a Llama checkpoint, from its GGUF metadata."""

    name: str
    blocks: int
    dim: int                 # embedding width d
    ffn: int                 # SwiGLU hidden width
    heads: int               # query heads
    kv_heads: int            # key/value heads (grouped-query attention when fewer)
    vocab: int
    rope_base: float
    rms_eps: float           # as the file stores it (an f32)
    context_length: int      # what the model was trained for
    tied: bool               # no output.weight: the logits use the token embedding

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        return self.heads // self.kv_heads

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim


def read_config(f: GGUFFile) -> LlamaConfig:
    """The checkpoint's configuration; a diagnostic naming what is unsupported or missing."""
    arch = f.require("general.architecture", "the model's architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise fail(f.path, f"architecture '{arch}' is not supported (supported: {', '.join(SUPPORTED_ARCHITECTURES)})")
    p = arch + "."

    def uint(key: str, what: str, default=None) -> int:
        v = f.require(p + key, what) if default is None else f.get(p + key, default)
        if isinstance(v, list):
            raise fail(f.path, f"metadata key '{p + key}' is a list (per-layer values), which is not supported")
        return int(v)

    blocks = uint("block_count", "the number of blocks")
    dim = uint("embedding_length", "the embedding width")
    ffn = uint("feed_forward_length", "the feed-forward width")
    heads = uint("attention.head_count", "the number of attention heads")
    kv_heads = uint("attention.head_count_kv", "", default=heads)  # absent: one per query head, as llama.cpp
    context_length = uint("context_length", "the context length")
    eps = float(f.require(p + "attention.layer_norm_rms_epsilon", "RMSNorm's epsilon"))
    rope_base = float(f.get(p + "rope.freq_base", 10000.0))  # llama.cpp's and transformers' default

    if heads <= 0 or kv_heads <= 0 or dim % heads or heads % kv_heads:
        raise fail(f.path, f"{heads} attention heads and {kv_heads} key/value heads do not divide "
                           f"the width {dim} into heads and groups")
    head_dim = dim // heads
    if head_dim % 2:
        raise fail(f.path, f"head dimension {head_dim} is odd (RoPE rotates pairs)")
    for key in ("attention.key_length", "attention.value_length"):
        n = f.get(p + key)
        if n is not None and int(n) != head_dim:
            raise fail(f.path, f"'{p + key}' = {int(n)}, not the head dimension {head_dim}: "
                               f"heads of another width than d / heads are not supported")
    rot = f.get(p + "rope.dimension_count")
    if rot is not None and int(rot) != head_dim:
        raise fail(f.path, f"partial rotary embedding ('{p}rope.dimension_count' = {int(rot)} of head "
                           f"dimension {head_dim}) is not supported")
    experts = f.get(p + "expert_count")
    if experts:
        raise fail(f.path, f"mixture of experts ('{p}expert_count' = {int(experts)}) is not supported")
    _check_rope_scaling(f, p)

    vocab = f.get(p + "vocab_size")
    if vocab is None:  # older files: the vocabulary's length, else the embedding's rows
        tokens = f.get("tokenizer.ggml.tokens")
        if tokens is not None:
            vocab = len(tokens)
        elif "token_embd.weight" in f.tensors:
            vocab = f.shape("token_embd.weight")[-1]
        else:
            raise fail(f.path, f"metadata key '{p}vocab_size' (the vocabulary's size) is missing")
    name = f.get("general.name") or f.get("general.basename") or "llama"
    cfg = LlamaConfig(name=str(name), blocks=blocks, dim=dim, ffn=ffn, heads=heads, kv_heads=kv_heads,
                      vocab=int(vocab), rope_base=rope_base, rms_eps=eps, context_length=context_length,
                      tied="output.weight" not in f.tensors)
    check_tensors(f, cfg)
    return cfg


def _check_rope_scaling(f: GGUFFile, p: str) -> None:
    kind = f.get(p + "rope.scaling.type")
    factor = f.get(p + "rope.scaling.factor", f.get(p + "rope.scale_linear"))
    if kind is None and factor not in (None, 0.0, 1.0):
        kind = "linear"  # llama.cpp's default when only a factor is given
    if kind is not None and kind not in SUPPORTED_ROPE_SCALING:
        raise fail(f.path, f"rope scaling type '{kind}' is not supported (supported: {', '.join(SUPPORTED_ROPE_SCALING)})")
    if "rope_freqs.weight" in f.tensors:
        raise fail(f.path, "tensor 'rope_freqs.weight' (RoPE frequency factors, Llama 3.1's rope scaling) "
                           "is not supported")


def gguf_shapes(cfg: LlamaConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor the checkpoint must hold, with its shape in GGUF order (``[in, out]``)."""
    d, kv = cfg.dim, cfg.kv_dim
    per_block = {"attn_norm": (d,), "attn_q": (d, d), "attn_k": (d, kv), "attn_v": (d, kv),
                 "attn_output": (d, d), "ffn_norm": (d,), "ffn_gate": (d, cfg.ffn),
                 "ffn_up": (d, cfg.ffn), "ffn_down": (cfg.ffn, d)}
    shapes = {"token_embd.weight": (d, cfg.vocab), "output_norm.weight": (d,)}
    if not cfg.tied:
        shapes["output.weight"] = (d, cfg.vocab)
    for b in range(cfg.blocks):
        for t, s in per_block.items():
            shapes[f"blk.{b}.{t}.weight"] = s
    return shapes


def check_tensors(f: GGUFFile, cfg: LlamaConfig) -> None:
    """Every tensor present, known, of a supported type and of the configuration's shape."""
    want = gguf_shapes(cfg)
    for name in f.tensor_names:
        if name in want:
            continue
        m = _BLOCK_NAME.fullmatch(name)
        if name.endswith(".bias"):
            why = "biases are not part of a Llama block"
        elif m and int(m.group(1)) >= cfg.blocks:
            why = f"the model has {cfg.blocks} blocks"
        else:
            why = ("a Llama checkpoint holds token_embd, output_norm, output and blk.N."
                   "{" + ",".join(BLOCK_TENSORS) + "}")
        raise fail(f.path, f"tensor '{name}' is not supported ({why})")
    for name, shape in want.items():
        if name not in f.tensors:
            raise fail(f.path, f"tensor '{name}' is missing")
        got = f.shape(name)
        if got != shape:
            raise fail(f.path, f"tensor '{name}' has shape [{', '.join(map(str, got))}], not "
                               f"[{', '.join(map(str, shape))}] (GGUF order)")
        f.check_type(name)


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of a Q or K weight (``[out, in]``) from llama.cpp's order back to Hugging Face's.

    llama.cpp's converter interleaves each head's rows (pairs ``(i, i + d/2)`` side by side)
    for its interleaved RoPE; undoing it makes the rotation the "half" (``rotate_half``) style,
    the same reshape-and-swap as transformers' GGUF loader (``_reverse_permute_weights``).
    """
    half = w.shape[0] // n_head // 2
    return w.reshape(n_head, half, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)


def weight_names(cfg: LlamaConfig) -> list[str]:
    """The names ``load_weights`` gives, in the order the importer writes them."""
    names = ["token_embd", "output_norm"] + ([] if cfg.tied else ["output"])
    return names + [f"blk.{b}.{t}" for b in range(cfg.blocks) for t in BLOCK_TENSORS]


_HF_BLOCK = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
             "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj"}


def hf_name(name: str) -> str:
    """transformers' name of the weight ``load_weights`` calls ``name`` (whose matrices are the
    transposes of transformers' ``[out, in]``)."""
    top = {"token_embd": "model.embed_tokens.weight", "output_norm": "model.norm.weight", "output": "lm_head.weight"}
    if name in top:
        return top[name]
    _, b, kind = name.split(".")
    return f"model.layers.{b}.{_HF_BLOCK[kind]}.weight"


def load_weights(f: GGUFFile, cfg: LlamaConfig) -> dict[str, np.ndarray]:
    """The dequantized float32 weights by GGUF name without ``.weight``, in HF order:
    ``token_embd`` ``[vocab, d]``, norms ``[d]``, matrices ``[in, out]`` (``x · W``), Q and K
    un-permuted. These are transformers' weights (its GGUF loader dequantizes with the same
    gguf functions), transposed."""
    out: dict[str, np.ndarray] = {}
    for name in weight_names(cfg):
        w = f.dequantize(name + ".weight")
        kind = name.rsplit(".", 1)[-1]
        if kind == "attn_q":
            w = unpermute(w, cfg.heads)
        elif kind == "attn_k":
            w = unpermute(w, cfg.kv_heads)
        if kind in MATRICES or kind == "output":
            w = np.ascontiguousarray(w.T)
        out[name] = w
    return out


def load_llama(path: str, blocks: int | None = None) -> tuple[LlamaConfig, dict[str, np.ndarray]]:
    """``read_config`` and ``load_weights`` of the checkpoint at ``path``; ``blocks`` keeps only
    the first blocks (a smaller model for quick checks)."""
    f = GGUFFile(path)
    cfg = truncated(read_config(f), blocks, path)
    return cfg, load_weights(f, cfg)


def truncated(cfg: LlamaConfig, blocks: int | None, path: str) -> LlamaConfig:
    if blocks is None:
        return cfg
    if not 1 <= blocks <= cfg.blocks:
        raise fail(path, f"--blocks {blocks}: the model has {cfg.blocks} blocks")
    return replace(cfg, blocks=blocks)


def rope_tables(cfg: LlamaConfig, context: int) -> tuple[np.ndarray, np.ndarray]:
    """``cos``, ``sin`` of ``p · base^(-2i/head_dim)`` for positions ``p < context`` and pairs
    ``i < head_dim/2``, computed in float64 and rounded once to float32: row ``p`` is what a
    decoder step at position ``p`` reads."""
    hd = cfg.head_dim
    inv = np.float64(cfg.rope_base) ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    angles = np.arange(context, dtype=np.float64)[:, None] * inv[None, :]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def causal_mask(context: int) -> np.ndarray:
    """Row ``p``: 0 for positions ``t <= p``, -inf after (added to the attention scores, so the
    positions not yet written in the KV cache get no weight)."""
    m = np.zeros((context, context), dtype=np.float32)
    m[np.triu_indices(context, 1)] = -np.inf
    return m
