"""Named tensors in and out of a machine's SRAM: ``--input``, ``--output``, ``--dump``.

A name is an SRAM symbol of the image: ``NAME`` when exactly one chip has it, else
``CHIP:NAME``. Shapes and element types are checked against the symbol.
"""

from __future__ import annotations

import numpy as np

from lpu.arch.layout import element_type_of, from_sram, to_sram, words
from lpu.diagnostics import DiagnosticError, error
from lpu.linker.image import SymbolInfo


def find_symbol(machine, name: str) -> tuple[int, SymbolInfo]:
    chip_name, _, sym = name.rpartition(":")
    hits = []
    for ci, chip in enumerate(machine.image.chips):
        if chip_name and chip.name != chip_name:
            continue
        for s in chip.symbols:
            if s.name == sym:
                hits.append((ci, s))
    if not hits:
        known = sorted({s.name for c in machine.image.chips for s in c.symbols})
        raise DiagnosticError(error(f"no SRAM symbol '{name}' in {machine.image_name}"
                                    + (f" (symbols: {', '.join(known)})" if known else "")))
    if len(hits) > 1:
        chips = ", ".join(f"{machine.chip_names[ci]}:{sym}" for ci, _ in hits)
        raise DiagnosticError(error(f"SRAM symbol '{name}' is on more than one chip; name one of {chips}"))
    return hits[0]


def _span(machine, ci: int, s: SymbolInfo) -> tuple[object, int]:
    pos = machine.cfgs[ci].slice_by_name[s.slice].position
    return machine.slice_state(ci, pos), s.address


def write_input(machine, name: str, array: np.ndarray, source: str = "") -> None:
    ci, s = find_symbol(machine, name)
    got = element_type_of(array.dtype)
    what = f"'{source}'" if source else "the input"
    if got != s.dtype:
        raise DiagnosticError(error(f"{what} holds {got or array.dtype} elements, but @{s.name} is {s.dtype}"))
    if tuple(array.shape) != tuple(s.shape):
        raise DiagnosticError(error(f"{what} has shape {'x'.join(map(str, array.shape)) or 'scalar'}, but @{s.name} "
                                    f"is {'x'.join(map(str, s.shape))}"))
    data = np.frombuffer(to_sram(array, s.dtype, machine.lanes), np.uint8).reshape(-1, machine.lanes)
    _check_words(s, len(data), machine)
    sl, addr = _span(machine, ci, s)
    sl.preload(addr, data)


def read_output(machine, name: str) -> np.ndarray:
    ci, s = find_symbol(machine, name)
    _check_words(s, words(tuple(s.shape), s.dtype, machine.lanes), machine)
    sl, addr = _span(machine, ci, s)
    return from_sram(sl.span(addr, s.words).tobytes(), tuple(s.shape), s.dtype, machine.lanes)


def _check_words(s: SymbolInfo, need: int, machine) -> None:
    # a tensor's words from its shape and what the image gives the symbol must agree: more
    # would write over its neighbours in SRAM (the image reader refuses such images; images
    # built in memory are checked here)
    if need != s.words:
        raise DiagnosticError(error(f"@{s.name} occupies {s.words} words in {machine.image_name}, but "
                                    f"its shape {'x'.join(map(str, s.shape)) or 'scalar'} of {s.dtype} needs {need}"))


def dump(machine) -> str:
    rows = [("chip", "symbol", "slice", "address", "words", "type")]
    for ci, chip in enumerate(machine.image.chips):
        for s in sorted(chip.symbols, key=lambda s: (s.slice, s.address)):
            rows.append((chip.name, "@" + s.name, s.slice, str(s.address), str(s.words),
                         "tensor<" + "".join(f"{d}x" for d in s.shape) + s.dtype + ">"))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    return "".join("  ".join(c.ljust(w) if i != 3 and i != 4 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths))).rstrip() + "\n" for r in rows)
