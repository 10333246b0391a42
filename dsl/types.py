"""Tensor types of the dataflow level: builtin ``tensor<640x640xi8>`` types over the machine's
six element types, and their numpy counterparts.

The text form is the one both levels of the language share (``TENSOR_TYPE`` in the grammars),
so types are parsed and printed through small caches: a 50,000-op module names a few dozen.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
from xdsl.dialects.builtin import (
    BFloat16Type,
    Float16Type,
    Float32Type,
    IntegerType,
    TensorType,
)
from xdsl.ir import Attribute

from lpu.arch.layout import NUMPY_DTYPES

ELEMENT_TYPES: dict[str, Attribute] = {
    "i8": IntegerType(8),
    "i16": IntegerType(16),
    "i32": IntegerType(32),
    "f16": Float16Type(),
    "bf16": BFloat16Type(),
    "f32": Float32Type(),
}
_NAME_OF = {v: k for k, v in ELEMENT_TYPES.items()}
INTS = ("i8", "i16", "i32")
FLOATS = ("f16", "bf16", "f32")

# What a sum of products or of lanes accumulates in: the MXM's i32 and f32 accumulators.
ACCUMULATOR = {"i8": "i32", "i16": "i32", "i32": "i32", "f16": "f32", "bf16": "f32", "f32": "f32"}
# Element types the MXM multiplies (the weights a plane holds).
MATMUL_INPUTS = ("i8", "f16", "bf16")

_TYPE_RE = re.compile(r"^tensor<((?:[0-9]+x)*)(i8|i16|i32|f16|bf16|f32)>$")

#: the loop counter of ``for`` is a rank-0 i32 tensor, so ordinary ops can compute with it
INDEX_TYPE_TEXT = "tensor<i32>"


class TypeError_(ValueError):
    """A type text that names no tensor type of the language."""


@lru_cache(maxsize=4096)
def parse_type(text: str) -> TensorType:
    m = _TYPE_RE.match(text)
    if m is None:
        raise TypeError_(f"invalid tensor type '{text}'")
    dims = [int(d) for d in m.group(1).split("x") if d]
    return TensorType(ELEMENT_TYPES[m.group(2)], dims)


@lru_cache(maxsize=4096)
def type_text(t: Attribute) -> str:
    if not isinstance(t, TensorType) or t.element_type not in _NAME_OF:
        return str(t)
    dims = "".join(f"{d}x" for d in t.get_shape())
    return f"tensor<{dims}{_NAME_OF[t.element_type]}>"


def tensor_type(shape, elem: str) -> TensorType:
    return parse_type(type_text_of(tuple(shape), elem))


def type_text_of(shape: tuple[int, ...], elem: str) -> str:
    return "tensor<" + "".join(f"{d}x" for d in shape) + elem + ">"


# shape_of and elem_of run for every op a pass makes or checks. Hashing a type walks its
# parameters, so these look types up by identity (nearly every type is one of the shared
# objects parse_type hands out); an entry keeps its type alive, so no id is reused under it.
_BY_ID: dict[int, tuple] = {}


def _facts(t: Attribute) -> tuple:
    hit = _BY_ID.get(id(t))
    if hit is None:
        if len(_BY_ID) > 4096:
            _BY_ID.clear()
        shape = tuple(t.get_shape()) if isinstance(t, TensorType) else None  # type: ignore[attr-defined]
        elem = _NAME_OF.get(getattr(t, "element_type", None), "") if isinstance(t, TensorType) else ""
        hit = _BY_ID[id(t)] = (t, shape, elem)
    return hit


def shape_of(t: Attribute) -> tuple[int, ...]:
    shape = _facts(t)[1]
    if shape is None:
        return tuple(t.get_shape())  # type: ignore[attr-defined]  (raises as before for a non-tensor)
    return shape


def elem_of(t: Attribute) -> str:
    """The element type name of a tensor type ('' for anything else)."""
    return _facts(t)[2]


def is_tensor(t: Attribute) -> bool:
    return isinstance(t, TensorType) and t.element_type in _NAME_OF


def dtype(elem: str) -> np.dtype:
    return NUMPY_DTYPES[elem]


def index_type() -> TensorType:
    return parse_type(INDEX_TYPE_TEXT)


class Interner:
    """Small integers for attributes, equal numbers for equal attributes: a key made of them
    hashes in constant time, where hashing an xDSL attribute walks its parameters. Each
    distinct attribute *object* is hashed once (most ops share their type objects: the type
    caches above hand out one object per type). Keeps what it has seen alive, so an ``id`` is
    never reused while the interner lives: make one per pass or per verification."""

    __slots__ = ("_ids", "_values", "_keep")

    def __init__(self) -> None:
        self._ids: dict[int, int] = {}
        self._values: dict = {}
        self._keep: list = []

    def __call__(self, attr) -> int:
        n = self._ids.get(id(attr))
        if n is None:
            n = self._values.setdefault(attr, len(self._values))
            self._ids[id(attr)] = n
            self._keep.append(attr)
        return n

    def attrs(self, attributes: dict) -> tuple:
        if not attributes:
            return ()
        return tuple((k, self(v)) for k, v in sorted(attributes.items(), key=_first))


def _first(item):
    return item[0]
