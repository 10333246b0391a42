"""``lpu import``: a Llama GGUF checkpoint to a ``.lpu`` module and its ``.npy`` weights.

``import_gguf("model.gguf", "out/model.lpu")`` writes ``out/model.lpu`` (readable, editable,
recompilable: ``lpu_text``) and, beside it, the folder ``out/model/`` holding every tensor the
module ``load``s plus ``config.json`` (the model's figures and the import's options) and
``tokenizer.json`` (the checkpoint's tokenizer, for ``lpu generate``). Both appear whole: the
folder is built under a temporary name and renamed into place, an earlier folder of that name
replaced only then; the module is written last, atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field

import numpy as np

from lpu.diagnostics import Diagnostic, DiagnosticError, SourceLoc, error
from lpu.files import write_atomic
from lpu.models.gguf_file import GGUFFile, fail
from lpu.models.llama import LlamaConfig, causal_mask, load_weights, read_config, rope_tables, truncated
from lpu.models.lpu_text import module_text

DTYPES = ("f16", "bf16")
DEFAULT_CONTEXT = 256
F16_MAX = 65504.0


@dataclass
class Imported:
    """What ``import_gguf`` wrote."""

    module: str                          # the .lpu file
    folder: str                          # the weights' folder beside it
    config: LlamaConfig
    context: int
    dtype: str
    files: list[str] = field(default_factory=list)   # in the folder
    warnings: list[Diagnostic] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(os.path.getsize(os.path.join(self.folder, f)) for f in self.files)


def _numpy_type(dtype: str):
    if dtype == "f16":
        return np.float16
    import ml_dtypes

    return ml_dtypes.bfloat16


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def import_gguf(path: str, out: str, context: int = DEFAULT_CONTEXT, dtype: str = "f16",
                blocks: int | None = None, target: str | None = None) -> Imported:
    """Import the checkpoint at ``path`` to the module ``out`` (``.lpu``) and the folder beside
    it; ``context`` is the compile-time context bucket (the KV cache's positions), ``dtype`` the
    matrices' type, ``blocks`` keeps only the first blocks."""
    from lpu.arch.config import DEFAULT_TARGET
    from lpu.models.tokenizer import Tokenizer

    if not out.endswith(".lpu"):
        raise DiagnosticError(error(f"the output '{out}' must be a .lpu file (its weights go in the folder beside it)"))
    if dtype not in DTYPES:
        raise DiagnosticError(error(f"--dtype {dtype}: the matrices' type must be one of {', '.join(DTYPES)}"))
    f = GGUFFile(path)
    cfg = truncated(read_config(f), blocks, path)
    if not 1 <= context <= cfg.context_length:
        raise fail(path, f"--context {context}: the context bucket must be 1 to the model's context "
                         f"length {cfg.context_length}")
    warnings: list[Diagnostic] = []
    try:
        tokenizer = Tokenizer.from_gguf(f)
    except DiagnosticError as e:  # the weights still import; only lpu generate needs the tokenizer
        tokenizer = None
        warnings += [Diagnostic("warning", d.message + "; no tokenizer.json written", d.loc) for d in e.diagnostics]
    weights = load_weights(f, cfg)
    ty = _numpy_type(dtype)

    out_dir = os.path.dirname(os.path.abspath(out))
    stem = os.path.splitext(os.path.basename(out))[0]
    folder = os.path.join(out_dir, stem)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise DiagnosticError(error(f"cannot write the weights' folder '{folder}': a file of that name is in the way",
                                    SourceLoc(out)))
    header = [f"{cfg.name}: imported by `lpu import` from {os.path.basename(path)}",
              f"{cfg.blocks} blocks, d = {cfg.dim}, ffn {cfg.ffn}, {cfg.heads} query / {cfg.kv_heads} kv heads of "
              f"{cfg.head_dim}, vocabulary {cfg.vocab}, context bucket {context}.",
              f"Residual stream and elementwise math in f32; MXM operands (weights, matmul inputs) in {dtype}.",
              "Weights in HF order ([in, out] for x·W; GGUF/PyTorch store [out, in]; Q/K un-permuted from",
              "llama.cpp's interleaved order so RoPE is the \"half\" (rotate_half) style); docs/models.md."]
    text = module_text(cfg, stem, context, dtype, header, target or DEFAULT_TARGET)

    try:
        os.makedirs(out_dir, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".tmp-import-", dir=out_dir)
    except OSError as e:
        raise DiagnosticError(error(f"cannot write '{out}': {e.strerror}", SourceLoc(out))) from None
    try:
        new = os.path.join(staging, stem)
        os.mkdir(new)
        files = _write_weights(new, path, cfg, weights, ty, dtype, context)
        if tokenizer is not None:
            _write_text(os.path.join(new, "tokenizer.json"), tokenizer.to_json())
            files.append("tokenizer.json")
        meta = {"model": asdict(cfg), "context": context, "dtype": dtype, "target": target or DEFAULT_TARGET,
                "source": os.path.basename(path), "source_sha256": _sha256(path),
                "bos_id": tokenizer.bos_id if tokenizer else None, "eos_id": tokenizer.eos_id if tokenizer else None,
                "module": os.path.basename(out)}
        _write_text(os.path.join(new, "config.json"), json.dumps(meta, indent=1) + "\n")
        files.append("config.json")
        if os.path.isdir(folder):
            os.rename(folder, os.path.join(staging, "previous"))
        os.rename(new, folder)
        write_atomic(out, text)
    except OSError as e:
        raise DiagnosticError(error(f"cannot write '{out}': {e.strerror}", SourceLoc(out))) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Imported(module=out, folder=folder, config=cfg, context=context, dtype=dtype, files=files,
                    warnings=warnings)


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _write_weights(folder: str, path: str, cfg: LlamaConfig, weights: dict[str, np.ndarray], ty, dtype: str,
                   context: int) -> list[str]:
    files = []

    def save(name: str, a: np.ndarray) -> None:
        np.save(os.path.join(folder, name + ".npy"), a, allow_pickle=False)
        files.append(name + ".npy")

    for name, w in weights.items():
        if w.ndim == 1:
            save(name, w.astype(np.float32))
            continue
        if dtype == "f16":
            peak = float(np.abs(w).max())
            if peak > F16_MAX:
                raise fail(path, f"tensor '{name}.weight' holds values up to {peak:g}, beyond f16's range "
                                 f"({F16_MAX:g}): import with --dtype bf16")
        save(name, w.astype(ty))
    cos, sin = rope_tables(cfg, context)
    save("rope_cos", cos)
    save("rope_sin", sin)
    save("causal_mask", causal_mask(context))
    return files


# --- the command line ---------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a Llama-architecture GGUF checkpoint, or an ONNX model (.onnx: "
                   "docs/onnx.md)")
    p.add_argument("-o", dest="output", metavar="OUT.lpu",
                   help="the module to write; its weights go in the folder OUT/ beside it")
    p.add_argument("--context", type=int, default=DEFAULT_CONTEXT, metavar="N",
                   help=f"GGUF: the compile-time context bucket: positions the KV cache holds (default {DEFAULT_CONTEXT})")
    p.add_argument("--dtype", choices=("f16", "bf16", "i8", "f32"), default=None,
                   help="the matrices' type, the MXM's operands (GGUF: f16 (default) or bf16; ONNX: f32 (default: "
                        "three bf16 products), f16, bf16 or i8)")
    p.add_argument("--blocks", type=int, metavar="N", help="GGUF: keep only the first N blocks (a smaller model for quick checks)")
    p.add_argument("--target", metavar="NAME", help="the module's target configuration (default: the default chip)")
    p.add_argument("--shape", action="append", metavar="NAME=D0xD1...", help="ONNX: the static shape of an input "
                   "with dynamic dimensions (repeatable)")
    p.add_argument("--embed", action="store_true", help="ONNX: the weights inline in the module (hex), no folder")
    p.add_argument("--report", action="store_true", help="ONNX: print the op-support table, write nothing "
                   "(exit 1 when a node is not supported)")
    p.add_argument("-v", "--verbose", action="store_true", help="say what was written")


def run(args: argparse.Namespace, sources) -> int:
    from lpu.diagnostics import print_diagnostics
    from lpu.models import onnx_import

    if onnx_import.is_onnx(args.model):
        return onnx_import.run(args, sources)
    if args.output is None:
        raise DiagnosticError(error("the output is missing: -o OUT.lpu"))
    if args.report or args.shape or args.embed:
        flag = "--report" if args.report else "--shape" if args.shape else "--embed"
        raise fail(args.model, f"{flag} is for ONNX models (.onnx); a GGUF checkpoint imports without it")
    r = import_gguf(args.model, args.output, context=args.context, dtype=args.dtype or "f16", blocks=args.blocks,
                    target=args.target)
    print_diagnostics(r.warnings, sources)
    if not args.verbose:
        return 0
    c = r.config
    print(f"{r.module}: {c.blocks} blocks, d = {c.dim}, {c.heads}/{c.kv_heads} heads, vocabulary {c.vocab}, "
          f"context {r.context}, {r.dtype}; {len(r.files)} files, {r.nbytes / 1e6:.1f} MB in {r.folder}/",
          file=sys.stderr)
    return 0
