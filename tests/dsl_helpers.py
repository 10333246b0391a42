"""Shared helpers of the dataflow tests."""

import os
import shutil

import numpy as np

from lpu.diagnostics import DiagnosticError
from lpu.dsl.frontend import parse_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
# upstream mlir-opt (Debian's mlir-NN-tools install it as mlir-opt-NN); tests needing it skip without
MLIR_OPT = next((shutil.which(n) for n in ["mlir-opt", *[f"mlir-opt-{v}" for v in range(22, 13, -1)]]
                 if shutil.which(n)), None)


def parse(text: str, name: str = "t.lpu"):
    return parse_module(text, name)


def errors(text: str, name: str = "t.lpu") -> list[str]:
    """Every diagnostic of ``text`` as 'line:col: message'."""
    try:
        parse_module(text, name)
    except DiagnosticError as e:
        return [f"{d.loc.line}:{d.loc.col}: {d.message}" if d.loc else d.message for d in e.diagnostics]
    return []


def func(body: str, sig: str = "(%x: tensor<4x320xf16>) -> tensor<4x320xf16>") -> str:
    return f"func @f{sig} {{\n" + "\n".join("  " + l for l in body.strip().splitlines()) + "\n}\n"


def f64(a):
    return np.asarray(a, dtype=np.float64)
