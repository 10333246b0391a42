"""A tiny random-weight Llama checkpoint, written as a GGUF file the way llama.cpp writes one.

The default tests run the whole path — import, tokenizer, interpreter, compiler — on this model
in seconds. It has SmolLM2's metadata keys and layout at toy size (2 blocks, d = 64, FFN 128,
4 query / 2 key-value heads of 16, a 512-token byte-level BPE vocabulary learned from
``TRAINING_TEXT``, RoPE base 1e4, tied embeddings) and its tensors in every type the importer
dequantizes (block 0 all Q4_1 as SmolLM2's; block 1 one matrix of each of Q4_0, Q8_0, F16,
BF16, F32, Q4_1), Q and K stored in llama.cpp's interleaved order. Everything follows from the
seed: the same spec gives the same bytes.

    python -m lpu.models.tiny tests/fixtures/tiny/tiny-llama.gguf
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from lpu.models.tokenizer import CONTROL, NORMAL, Tokenizer, byte_alphabet

TRAINING_TEXT = """\
The quick brown fox jumps over the lazy dog. A tensor streaming processor moves data on streams
between memory slices and functional units; every cycle is planned by the compiler, so the
machine runs the same way every time. The model reads a token, looks up its embedding, and each
block normalizes, attends to the tokens before it, and mixes the result through a gated
feed-forward layer. Then it predicts the next token, and the next, one at a time.
def add(a, b):
    return a + b

for i in range(10):
    print(i, add(i, 2))
Once upon a time there was a little model that wanted to talk. It learned the words the, and,
of, to, in, is, it, that, was, for, on, with, as, at, by, this, from, they, we, you, there.
Numbers: 1 2 3 4 5 6 7 8 9 0, 2024, 3.14159, 100%.
"""

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a tiny test model.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# block 1's matrices, one of each type; block 0 is all Q4_1 like SmolLM2's
_BLOCK1_TYPES = {"attn_q": "Q4_0", "attn_k": "Q8_0", "attn_v": "F16", "attn_output": "BF16",
                 "ffn_gate": "F32", "ffn_up": "Q4_1", "ffn_down": "Q4_0"}


@dataclass(frozen=True)
class TinySpec:
    seed: int = 0
    blocks: int = 2
    dim: int = 64
    ffn: int = 128
    heads: int = 4
    kv_heads: int = 2
    vocab: int = 512
    rope_base: float = 10000.0
    rms_eps: float = 1e-5
    context_length: int = 512
    tied: bool = True
    architecture: str = "llama"
    embedding_type: str = "Q8_0"
    # tensor name (without .weight) -> type, overriding the defaults above
    types: dict = field(default_factory=dict)
    # metadata added or replaced (key -> value: int as uint32, float as float32, str, bool), and
    # keys left out
    metadata: dict = field(default_factory=dict)
    omit: tuple = ()
    # tensors left out (names without .weight), and extra ones (full name -> float32 array in
    # numpy order, written as F32) added
    drop: tuple = ()
    extra_tensors: dict = field(default_factory=dict)

    def tensor_type(self, name: str) -> str:
        if name in self.types:
            return self.types[name]
        kind = name.rsplit(".", 1)[-1]
        if name == "token_embd" or name == "output":
            return self.embedding_type
        if kind in ("attn_norm", "ffn_norm") or name == "output_norm":
            return "F32"
        if name.startswith("blk.1."):
            return _BLOCK1_TYPES[kind]
        return "Q4_1"


def train_bpe(text: str, vocab: int) -> tuple[list[str], list[str]]:
    """Tokens (the specials, the 256 byte characters, then one per merge) and merges learned on
    ``text`` greedily: the most frequent pair first, ties to the smallest pair."""
    alphabet = list(byte_alphabet())
    tokens = list(SPECIAL_TOKENS) + alphabet
    splitter = Tokenizer(tokens=tokens, merges=[], token_types=[NORMAL] * len(tokens), pre="smollm")
    spell = str.maketrans({i: c for i, c in enumerate(alphabet)})
    words = Counter(tuple(p.encode("utf-8").decode("latin-1").translate(spell)) for p in splitter.split(text))
    merges: list[str] = []
    known = set(tokens)
    while len(tokens) < vocab:
        pairs: Counter = Counter()
        for w, n in words.items():
            for a, b in zip(w, w[1:]):
                pairs[a, b] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(f"{best[0]} {best[1]}")
        joined = best[0] + best[1]
        if joined not in known:
            tokens.append(joined)
            known.add(joined)
        nxt: Counter = Counter()
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            nxt[tuple(out)] += n
        words = nxt
    return tokens, merges


def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF-order rows of a Q or K weight (``[out, in]``) into llama.cpp's interleaved order (what
    its converter writes; ``lpu.models.llama.unpermute`` undoes it)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def random_weights(spec: TinySpec, vocab: int) -> dict[str, np.ndarray]:
    """Float32 weights in numpy (PyTorch) order ``[out, in]``, HF's Q/K order, from the seed."""
    rng = np.random.default_rng(spec.seed)
    d, hd = spec.dim, spec.dim // spec.heads
    kv = spec.kv_heads * hd

    def linear(n_out, n_in):
        return (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)

    def norm():
        return (1.0 + 0.1 * rng.standard_normal(d)).astype(np.float32)

    w = {"token_embd": (0.5 * rng.standard_normal((vocab, d))).astype(np.float32)}
    for b in range(spec.blocks):
        p = f"blk.{b}."
        w[p + "attn_norm"] = norm()
        w[p + "attn_q"] = linear(d, d)
        w[p + "attn_k"] = linear(kv, d)
        w[p + "attn_v"] = linear(kv, d)
        w[p + "attn_output"] = linear(d, d)
        w[p + "ffn_norm"] = norm()
        w[p + "ffn_gate"] = linear(spec.ffn, d)
        w[p + "ffn_up"] = linear(spec.ffn, d)
        w[p + "ffn_down"] = linear(d, spec.ffn)
    w["output_norm"] = norm()
    if not spec.tied:
        w["output"] = (0.5 * rng.standard_normal((vocab, d))).astype(np.float32)
    return w


def write_gguf(path: str, spec: TinySpec = TinySpec()) -> None:
    """Write the checkpoint ``spec`` describes to ``path`` (through a temporary file)."""
    import gguf

    tokens, merges = train_bpe(TRAINING_TEXT, spec.vocab)
    types = [CONTROL] * len(SPECIAL_TOKENS) + [NORMAL] * (len(tokens) - len(SPECIAL_TOKENS))
    weights = random_weights(spec, len(tokens))

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".gguf", dir=directory)
    os.close(fd)
    try:
        w = gguf.GGUFWriter(tmp, spec.architecture)
        a = spec.architecture
        meta = {"general.type": "model", "general.name": f"tiny-llama seed {spec.seed}",
                f"{a}.block_count": spec.blocks, f"{a}.context_length": spec.context_length,
                f"{a}.embedding_length": spec.dim, f"{a}.feed_forward_length": spec.ffn,
                f"{a}.attention.head_count": spec.heads, f"{a}.attention.head_count_kv": spec.kv_heads,
                f"{a}.rope.freq_base": float(spec.rope_base),
                f"{a}.attention.layer_norm_rms_epsilon": float(spec.rms_eps),
                "general.file_type": 3,  # MOSTLY_Q4_1, as SmolLM2's
                f"{a}.vocab_size": len(tokens), f"{a}.rope.dimension_count": spec.dim // spec.heads,
                "tokenizer.ggml.add_space_prefix": False, "tokenizer.ggml.add_bos_token": False,
                "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "smollm"}
        meta.update(spec.metadata)
        for key, value in meta.items():
            if key in spec.omit:
                continue
            if isinstance(value, bool):
                w.add_bool(key, value)
            elif isinstance(value, int):
                w.add_uint32(key, value)
            elif isinstance(value, float):
                w.add_float32(key, value)
            else:
                w.add_string(key, value)
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_pad_token_id(2)
        w.add_chat_template(CHAT_TEMPLATE)
        w.add_quantization_version(2)
        names = ["token_embd"] + [f"blk.{b}.{t}" for b in range(spec.blocks) for t in
                                  ("attn_norm", "ffn_down", "ffn_gate", "ffn_up", "ffn_norm",
                                   "attn_k", "attn_output", "attn_q", "attn_v")] + ["output_norm"]
        if not spec.tied:
            names.append("output")
        tensors = [(n + ".weight", weights[n], spec.tensor_type(n)) for n in names if n not in spec.drop]
        tensors += [(n, np.asarray(a, dtype=np.float32), "F32") for n, a in spec.extra_tensors.items()]
        for name, a, kind in tensors:
            if name.endswith("attn_q.weight"):
                a = permute_qk(a, spec.heads)
            elif name.endswith("attn_k.weight"):
                a = permute_qk(a, spec.kv_heads)
            qtype = gguf.GGMLQuantizationType[kind]
            if kind == "F32":
                w.add_tensor(name, a)
            else:
                w.add_tensor(name, gguf.quants.quantize(a, qtype), raw_dtype=qtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m lpu.models.tiny OUT.gguf", file=sys.stderr)
        return 1
    write_gguf(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
