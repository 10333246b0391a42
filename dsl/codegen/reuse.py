"""SRAM reuse inside a function: addresses for the general path's temporaries, after scheduling.

Lowering gives every vector its own place (``vector.Storage``): a slice, which fixes the
timing, and a row of a per-(value, slice) tensor, which does not — a read or write takes the
same cycles at any address of its slice. So addresses are chosen once the schedule is known:
a temporary vector lives in its slice from its first ``write`` to its last ``read`` (plus the
cycles its port is held), and two temporaries of one slice may share words when their lives do
not overlap — the later one's first write lands after the earlier one's last read. Each
slice's temporaries are packed first fit, in order of birth, into one arena tensor
(``<prefix>sram_<slice>``), and every instruction's address is rewritten into it.

Never reused: arguments (the host writes them before the run), results (read after it),
tensors with initial contents (constants, weights). A function whose fixed tensors plus its
arenas exceed a slice's words is a diagnostic at the op of the vector that did not fit.
"""

from __future__ import annotations

import dataclasses

from lpu.arch.isa import DTYPE_BYTES
from lpu.asm.records import SymRef
from lpu.diagnostics import DiagnosticError, error


def reuse_sram(insts: list, storage, fixed: set[str], cfg) -> list:
    """``insts`` (scheduled) with every temporary's address moved into its slice's arena;
    ``storage`` loses the temporaries' symbols and gains the arenas."""
    temps = {name for name, s in storage.symbols.items() if name not in fixed and s.image is None}
    if not temps:
        return insts
    birth: dict[tuple[str, int], int] = {}
    death: dict[tuple[str, int], int] = {}
    locs: dict[tuple[str, int], object] = {}
    for inst in insts:
        m = inst.spec.mnemonic
        if m not in ("read", "write"):
            continue
        ref = inst.args[0]
        if ref.symbol not in temps:
            continue
        w = DTYPE_BYTES[storage.symbols[ref.symbol].dtype]
        key = (ref.symbol, ref.offset // w)
        if m == "write":
            birth[key] = min(birth.get(key, inst.cycle), inst.cycle)
            locs.setdefault(key, inst.loc)
        # a w-word access holds the port w cycles: the place is busy until the last of them
        death[key] = max(death.get(key, inst.cycle), inst.cycle + DTYPE_BYTES[inst.dtype])
    fixed_words: dict[str, int] = {}
    for name, sym in storage.symbols.items():
        if name not in temps:
            fixed_words[sym.slice] = fixed_words.get(sym.slice, 0) + sym.rows * DTYPE_BYTES[sym.dtype]
    place: dict[tuple[str, int], int] = {}
    arenas: dict[str, int] = {}
    by_slice: dict[str, list] = {}
    for key in death:
        by_slice.setdefault(storage.symbols[key[0]].slice, []).append(key)
    for sl, keys in by_slice.items():
        keys.sort(key=lambda k: (birth.get(k, 0), k))
        free: dict[int, list[tuple[int, int]]] = {}  # width -> [(busy until, address)]
        top = 0
        for k in keys:
            w = DTYPE_BYTES[storage.symbols[k[0]].dtype]
            b = birth.get(k, 0)
            blocks = free.setdefault(w, [])
            i = next((i for i, (until, _) in enumerate(blocks) if until < b), None)
            if i is None:
                addr, top = top, top + w
            else:
                addr = blocks.pop(i)[1]
            place[k] = addr
            blocks.append((death[k], addr))
        arenas[sl] = top
        if fixed_words.get(sl, 0) + storage.others(sl) + top > cfg.words:
            worst = max(keys, key=lambda k: place[k])
            raise DiagnosticError(error(f"the values of this function need more than the {cfg.words} words of "
                                        f"slice {sl}, even with buffers reused after their last read",
                                        locs.get(worst)))
    names = {sl: f"{storage.prefix}sram_{sl.lower()}" for sl in arenas}
    out = []
    for inst in insts:
        ref = inst.args[0] if inst.args else None
        if isinstance(ref, SymRef) and ref.symbol in temps and inst.spec.mnemonic in ("read", "write"):
            s = storage.symbols[ref.symbol]
            w = DTYPE_BYTES[s.dtype]
            key = (ref.symbol, ref.offset // w)
            new = SymRef(names[s.slice], place[key] + ref.offset % w)
            inst = dataclasses.replace(inst, args=(new,) + tuple(inst.args[1:]))
        out.append(inst)
    for name in temps:
        del storage.symbols[name]
    for sl, top in arenas.items():
        if top:
            storage.add_arena(names[sl], sl, top)
    return out
