"""A GGUF checkpoint read through PyPI's ``gguf``: its metadata and its tensors, dequantized.

Every problem with the file is a diagnostic at the file (``model.gguf: error: ...``), never a
traceback: a file that is not GGUF, a key or tensor that is missing, a tensor type we do not
dequantize.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lpu.diagnostics import DiagnosticError, SourceLoc, error

GGUF_MAGIC = b"GGUF"

# The tensor types dequantized here, in the order the messages list them. gguf's own
# dequantizers are the definition transformers uses too, so the weights are the same floats.
SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1")

_MISSING = object()


def fail(path: str, message: str) -> DiagnosticError:
    """The diagnostic for a problem with the checkpoint ``path`` as a whole."""
    return DiagnosticError(error(message, SourceLoc(path)))


class GGUFFile:
    """An open GGUF file: ``get``/``require`` for metadata, ``tensor_names``, ``dequantize``.

    The tensors stay memory-mapped until dequantized, so opening a 100 MB file costs little.
    """

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError as e:
            raise fail(path, f"cannot read '{path}': {e.strerror}") from None
        if head != GGUF_MAGIC:
            raise fail(path, f"not a GGUF file (it starts with {head!r}, not {GGUF_MAGIC!r})")
        from gguf import GGUFReader

        try:
            self.reader = GGUFReader(path, "r")
        except Exception as e:  # gguf raises ValueError, IndexError, ... on a damaged file
            raise fail(path, f"damaged GGUF file: {e}") from None
        self.fields = self.reader.fields
        self.tensors = {t.name: t for t in self.reader.tensors}

    # --- metadata --------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        """The value of metadata ``key`` (a number, string, bool or list), or ``default``."""
        field = self.fields.get(key)
        if field is None:
            return default
        return field.contents()

    def require(self, key: str, what: str = "") -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            why = f" ({what})" if what else ""
            raise fail(self.path, f"metadata key '{key}'{why} is missing")
        return value

    # --- tensors ---------------------------------------------------------------------------
    @property
    def tensor_names(self) -> list[str]:
        return list(self.tensors)

    def type_name(self, name: str) -> str:
        return self.tensors[name].tensor_type.name

    def shape(self, name: str) -> tuple[int, ...]:
        """The tensor's shape in GGUF order (fastest-varying dimension first, ``ne0, ne1``)."""
        return tuple(int(n) for n in self.tensors[name].shape)

    def check_type(self, name: str) -> None:
        kind = self.type_name(name)
        if kind not in SUPPORTED_TYPES:
            raise fail(self.path, f"tensor '{name}' has type {kind}, which is not supported "
                                  f"(supported: {', '.join(SUPPORTED_TYPES)})")

    def dequantize(self, name: str) -> np.ndarray:
        """Tensor ``name`` as float32 in numpy (PyTorch) order: GGUF's shape reversed, so a
        linear layer's weight is ``[out, in]``."""
        if name not in self.tensors:
            raise fail(self.path, f"tensor '{name}' is missing")
        self.check_type(name)
        t = self.tensors[name]
        return dequantize(t.data, t.tensor_type.name, tuple(reversed(self.shape(name))))



def dequantize(data: np.ndarray, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    """Raw tensor data of GGUF type ``kind`` (one of ``SUPPORTED_TYPES``) as a fresh float32
    array of numpy ``shape``.

    The block formats (ggml's definitions; gguf implements them and so do we, through it):
    - ``Q8_0``: blocks of 32: an f16 scale ``d``, 32 int8 ``q``; ``x = d * q``.
    - ``Q4_0``: blocks of 32: ``d`` (f16), 16 bytes; the low nibbles are elements 0..15, the
      high nibbles 16..31; ``x = d * (q - 8)``.
    - ``Q4_1``: blocks of 32: ``d`` and ``m`` (f16), 16 bytes of nibbles as Q4_0; ``x = d * q + m``.
    - ``BF16``: the high 16 bits of an f32; ``F16``, ``F32`` as they are.
    Each is evaluated in float32 (``d * q`` rounded, then ``+ m`` rounded), as gguf does.
    """
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize as gguf_dequantize

    if kind not in SUPPORTED_TYPES:
        raise ValueError(f"unsupported GGUF tensor type {kind}")
    out = gguf_dequantize(np.ascontiguousarray(data), GGMLQuantizationType[kind])
    return np.array(out, dtype=np.float32).reshape(shape)
