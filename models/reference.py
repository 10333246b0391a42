"""A numpy Llama forward pass with a KV cache and greedy decoding: the cross-check.

``LlamaReference(cfg, weights)`` computes in float32 from the same dequantized weights the
importer writes, the way transformers' ``LlamaForCausalLM`` computes (RMSNorm, RoPE in the
"half" style, grouped-query attention, SwiGLU, tied or separate output). With
``mxm_dtype="f16"`` (or ``"bf16"``) it rounds every matmul operand — weights, activations, the
KV cache — to that type where the imported ``.lpu`` module casts, so it follows the module's
numerics step for step (the reference interpreter then agrees with it to f16's tolerance).
"""

from __future__ import annotations

import numpy as np

from lpu.models.llama import LlamaConfig, rope_tables

def _mxm_type(name: str | None):
    if name is None:
        return None
    if name == "f16":
        return np.dtype(np.float16)
    if name == "bf16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    raise ValueError(f"mxm_dtype must be None, 'f16' or 'bf16', not {name!r}")


def rmsnorm(x: np.ndarray, g: np.ndarray, eps: float) -> np.ndarray:
    var = np.mean(x * x, axis=-1, keepdims=True, dtype=np.float32)
    return (x * (np.float32(1.0) / np.sqrt(var + np.float32(eps)))) * g


def softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """``x`` ``[..., T, hd]`` rotated in the "half" style by ``cos``/``sin`` ``[T, hd/2]``."""
    h = x.shape[-1] // 2
    u, v = x[..., :h], x[..., h:]
    return np.concatenate([u * cos - v * sin, v * cos + u * sin], axis=-1)


class LlamaReference:
    """A Llama model decoding token by token (or a run of tokens at once) with a KV cache."""

    def __init__(self, cfg: LlamaConfig, weights: dict[str, np.ndarray], context: int = 256,
                 mxm_dtype: str | None = None):
        self.cfg = cfg
        self.context = context
        self.mxm = _mxm_type(mxm_dtype)
        r = self._round
        self.w = {k: (r(v) if v.ndim == 2 else v.astype(np.float32)) for k, v in weights.items()}
        self.out = self.w["token_embd"].T if cfg.tied else self.w["output"]
        self.cos, self.sin = rope_tables(cfg, context)
        self.reset()

    def _round(self, x: np.ndarray) -> np.ndarray:
        """``x`` rounded to the MXM type (and back to float32); unchanged in float32 mode."""
        if self.mxm is None:
            return np.asarray(x, dtype=np.float32)
        return np.asarray(x, dtype=np.float32).astype(self.mxm).astype(np.float32)

    def reset(self) -> None:
        """Forget every position: the next token is at position 0."""
        c = self.cfg
        self.k = np.zeros((c.blocks, c.kv_heads, self.context, c.head_dim), np.float32)
        self.v = np.zeros_like(self.k)
        self.pos = 0

    def forward(self, tokens) -> np.ndarray:
        """Logits ``[T, vocab]`` (float32) of ``tokens`` at the next ``T`` positions, each seeing
        the positions before it; the KV cache keeps them."""
        c, w, r = self.cfg, self.w, self._round
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        T, p0 = len(tokens), self.pos
        if p0 + T > self.context:
            raise ValueError(f"position {p0 + T - 1} is past the context of {self.context}")
        hd, g = c.head_dim, c.group
        cos, sin = self.cos[p0:p0 + T], self.sin[p0:p0 + T]
        allowed = np.arange(p0 + T)[None, :] <= np.arange(p0, p0 + T)[:, None]   # [T, p0 + T]
        bias = np.where(allowed, np.float32(0), np.float32(-np.inf))
        scale = np.float32(1.0 / np.sqrt(hd))
        x = w["token_embd"][tokens].astype(np.float32)                            # [T, d]
        for b in range(c.blocks):
            p = f"blk.{b}."
            h = r(rmsnorm(x, w[p + "attn_norm"], c.rms_eps))
            q = (h @ w[p + "attn_q"]).reshape(T, c.kv_heads, g, hd).transpose(1, 2, 0, 3)   # [kv, g, T, hd]
            k = (h @ w[p + "attn_k"]).reshape(T, c.kv_heads, hd).transpose(1, 0, 2)          # [kv, T, hd]
            v = (h @ w[p + "attn_v"]).reshape(T, c.kv_heads, hd).transpose(1, 0, 2)
            q = r(rope(q, cos, sin))
            self.k[b, :, p0:p0 + T] = r(rope(k, cos, sin))
            self.v[b, :, p0:p0 + T] = r(v)
            K, V = self.k[b, :, :p0 + T], self.v[b, :, :p0 + T]                        # [kv, P, hd]
            s = np.einsum("kgtd,kpd->kgtp", q, K) * scale + bias                      # [kv, g, T, P]
            o = np.einsum("kgtp,kpd->kgtd", r(softmax(s)), V)                          # [kv, g, T, hd]
            o = r(o.transpose(2, 0, 1, 3).reshape(T, c.dim))
            x = x + o @ w[p + "attn_output"]
            h2 = r(rmsnorm(x, w[p + "ffn_norm"], c.rms_eps))
            gate, up = h2 @ w[p + "ffn_gate"], h2 @ w[p + "ffn_up"]
            f = r(gate / (np.float32(1) + np.exp(-gate)) * up)
            x = x + f @ w[p + "ffn_down"]
        self.pos = p0 + T
        hn = r(rmsnorm(x, w["output_norm"], c.rms_eps))
        return (hn @ self.out).astype(np.float32)

    def step(self, token: int) -> np.ndarray:
        """The logits ``[vocab]`` after one more token."""
        return self.forward([token])[0]

    def generate(self, prompt, n: int) -> list[int]:
        """Greedy decoding from the start: ``n`` tokens after ``prompt`` (no stop token)."""
        self.reset()
        logits = self.forward(prompt)[-1]
        out: list[int] = []
        for _ in range(n):
            out.append(int(np.argmax(logits)))
            if len(out) < n:
                logits = self.step(out[-1])
        return out

    def teacher_forced(self, prompt, continuation) -> np.ndarray:
        """Logits ``[len(continuation) + 1, vocab]``: at the prompt's last position, then after
        each token of ``continuation`` (row ``i`` predicts ``continuation[i]``)."""
        self.reset()
        ids = list(prompt) + list(continuation)
        return self.forward(ids)[len(prompt) - 1:]
