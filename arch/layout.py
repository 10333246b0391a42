"""How tensors sit in SRAM: vectors of ``lanes`` elements, a w-byte type as w words.

Word k of a vector holds byte k (little-endian) of every lane's element, so that a vector of
a w-byte type travels as a group of w streams, stream k carrying byte k.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np

from lpu.arch.isa import DTYPE_BYTES

def _bf16() -> np.dtype | None:
    try:  # bf16 comes from ml_dtypes, as numpy has none
        import ml_dtypes
    except ImportError:  # pragma: no cover - ml_dtypes is a dependency
        return None
    return np.dtype(ml_dtypes.bfloat16)


class _Dtypes(Mapping):
    """Element type name -> numpy dtype. bf16's comes from ml_dtypes, imported the first time
    bf16 is asked for: importing it takes most of a second, which every tool run paid before
    (and most read no bf16)."""

    def __init__(self) -> None:
        self._known = {"i8": np.dtype("<i1"), "i16": np.dtype("<i2"), "i32": np.dtype("<i4"),
                       "f16": np.dtype("<f2"), "f32": np.dtype("<f4")}
        self._names = ("i8", "i16", "i32", "f16", "bf16", "f32")

    def __getitem__(self, name: str) -> np.dtype | None:
        if name == "bf16" and name not in self._known:
            self._known[name] = _bf16()
        return self._known[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


NUMPY_DTYPES: Mapping[str, np.dtype | None] = _Dtypes()


def element_type_of(dtype: np.dtype) -> str | None:
    """The element type name of a numpy dtype, or None when the machine has no such type."""
    dtype = np.dtype(dtype)
    # bf16 last, so that ml_dtypes is imported only for a dtype that is none of the others
    for name in sorted(NUMPY_DTYPES, key=lambda n: n == "bf16"):
        dt = NUMPY_DTYPES[name]
        if dt is not None and dtype == dt:
            return name
    return None


def vectors(shape: tuple[int, ...], lanes: int) -> int:
    """Vectors a tensor of this shape occupies (the last one padded with zeros)."""
    return max(1, -(-math.prod(shape) // lanes))


def words(shape: tuple[int, ...], dtype: str, lanes: int) -> int:
    return vectors(shape, lanes) * DTYPE_BYTES[dtype]


def to_sram(array: np.ndarray, dtype: str, lanes: int) -> bytes:
    """The SRAM image (words x lanes bytes) of a tensor."""
    w = DTYPE_BYTES[dtype]
    flat = np.ascontiguousarray(array, dtype=NUMPY_DTYPES[dtype]).reshape(-1)
    n = vectors(array.shape, lanes)
    padded = np.zeros(n * lanes, dtype=flat.dtype)
    padded[: flat.size] = flat
    planes = padded.view(np.uint8).reshape(n, lanes, w)  # vector, lane, byte
    return planes.transpose(0, 2, 1).tobytes()  # vector, byte (= word), lane


def from_sram(image: bytes | np.ndarray, shape: tuple[int, ...], dtype: str, lanes: int) -> np.ndarray:
    """Inverse of ``to_sram``."""
    w = DTYPE_BYTES[dtype]
    n = vectors(shape, lanes)
    raw = np.frombuffer(image, dtype=np.uint8, count=n * w * lanes).reshape(n, w, lanes)
    flat = np.ascontiguousarray(raw.transpose(0, 2, 1)).view(NUMPY_DTYPES[dtype]).reshape(-1)
    return flat[: math.prod(shape)].reshape(shape).copy()
