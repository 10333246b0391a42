"""Instruction words as the machine issues them: which are valid, and the cycle of each.

A queue section is a stream of 64-bit words; these checks and timings are numpy over the whole
stream, from the ISA table. The object reader, the disassembler, the linker and the image reader
share them, so that a word one tool refuses no other tool accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from lpu.arch.isa import (BY_MNEMONIC, BY_OPCODE, DTYPE_LO, DTYPE2_LO, DTYPES, ISA, OPERANDS_LO, TYPE_BITS,
                          DecodeError, decode, runs_on)

_NOP = BY_MNEMONIC["nop"]
_REPEAT = BY_MNEMONIC["repeat"]


def _field(spec, name: str) -> tuple[int, int]:
    op = next(o for o in spec.operands if o.name == name)
    return op.lo, (1 << op.bits) - 1


_NOP_N = _field(_NOP, "n")
_REPEAT_N = _field(_REPEAT, "n")
_REPEAT_D = _field(_REPEAT, "d")


@lru_cache(maxsize=None)
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per opcode, from the ISA table: known, ICU (runs on any queue), the bits a valid word may
    set, and the valid first and second type indices."""
    known = np.zeros(256, dtype=bool)
    icu = np.zeros(256, dtype=bool)
    allowed = np.zeros(256, dtype=np.uint64)
    types_ok = np.zeros((256, 1 << TYPE_BITS), dtype=bool)
    types2_ok = np.zeros((256, 1 << TYPE_BITS), dtype=bool)
    for s in ISA:
        known[s.opcode] = True
        icu[s.opcode] = "any" in s.units
        mask = 0xFF
        for op in s.operands:
            mask |= ((1 << op.bits) - 1) << op.lo
        if s.types:
            mask |= ((1 << TYPE_BITS) - 1) << DTYPE_LO
            for t in s.types:
                types_ok[s.opcode, DTYPES.index(t)] = True
        else:
            types_ok[s.opcode, 0] = True
        if s.types2:
            mask |= ((1 << TYPE_BITS) - 1) << DTYPE2_LO
            for t in s.types2:
                types2_ok[s.opcode, DTYPES.index(t)] = True
        else:
            types2_ok[s.opcode, 0] = True
        allowed[s.opcode] = mask
    assert OPERANDS_LO == 16
    return known, icu, allowed, types_ok, types2_ok


_TAILS: dict[str, np.ndarray] = {}


def _tails(cfg) -> np.ndarray:
    """Per opcode and type index: cycles from issue until the instruction's last effect (its
    result landing on a stream, or its unit free) — the assembler's rule for kernel lengths."""
    if cfg.text in _TAILS:
        return _TAILS[cfg.text]
    tails = np.ones((256, 1 << TYPE_BITS), dtype=np.int64)
    for s in ISA:
        for t in s.types or (None,):
            ti = DTYPES.index(t) if t else 0
            lat = s.latency_for(cfg, t)
            tails[s.opcode, ti] = max(1, lat + (1 if s.dsts else 0), s.occupancy_for(cfg, t))
    _TAILS[cfg.text] = tails
    return tails


class MalformedCode(ValueError):
    """A queue section whose words are not a valid program (a corrupted or foreign object)."""


@dataclass(slots=True)
class Timing:
    """Issue cycles of a queue section's words, relative to its start."""

    cycles: np.ndarray  # int64, one per word
    end: int  # the cycle the queue can issue again after the last word
    last_effect: int  # the cycle after the last result lands / unit frees (0 when empty)
    last_effect_word: int  # the word responsible for it (-1 when empty)


@lru_cache(maxsize=None)
def _runs_on(kind: str) -> np.ndarray:
    """Per opcode: whether a queue of this kind executes it (the assembler's unit rule)."""
    table = np.zeros(256, dtype=bool)
    for s in ISA:
        table[s.opcode] = runs_on(s, kind)
    return table


def check_words(words: np.ndarray, queue=None) -> None:
    """Raise ``MalformedCode`` unless every word decodes (opcode, type fields, reserved bits)
    and, given the configuration's ``queue``, is an instruction that queue executes (an MXM
    instruction in a MEM queue crashed the simulator)."""
    known, _icu, allowed, types_ok, types2_ok = _tables()
    w = np.asarray(words, dtype=np.uint64)
    op = (w & np.uint64(0xFF)).astype(np.intp)
    bad = ~known[op]
    bad |= (w & ~allowed[op]) != 0
    t1 = ((w >> np.uint64(DTYPE_LO)) & np.uint64(7)).astype(np.intp)
    t2 = ((w >> np.uint64(DTYPE2_LO)) & np.uint64(7)).astype(np.intp)
    bad |= ~types_ok[op, t1] | ~types2_ok[op, t2]
    if bad.any():
        i = int(np.argmax(bad))
        try:
            decode(int(w[i]))
            why = "not in the ISA table"  # the tables and decode agree: not reached
        except DecodeError as e:
            why = str(e)
        raise MalformedCode(f"word {i} (0x{int(w[i]):016x}) is not a valid instruction ({why})")
    if queue is not None:
        wrong = ~_runs_on(queue.kind)[op]
        if wrong.any():
            i = int(np.argmax(wrong))
            raise MalformedCode(f"word {i} ('{BY_OPCODE[int(op[i])].mnemonic}') cannot execute on {queue.name}, a "
                                f"{queue.kind} queue")


def timing(words: np.ndarray, cfg=None) -> Timing:
    """Issue cycle of every word: a ``nop n`` holds the queue n cycles, ``repeat n, d`` re-issues
    the instruction before it n more times d cycles apart, anything else takes one cycle."""
    _known, icu, _allowed, _t1, _t2 = _tables()
    w = np.asarray(words, dtype=np.uint64)
    n = len(w)
    if n == 0:
        return Timing(np.zeros(0, dtype=np.int64), 0, 0, -1)
    op = (w & np.uint64(0xFF)).astype(np.intp)
    is_nop = op == _NOP.opcode
    is_rep = op == _REPEAT.opcode
    adv = np.ones(n, dtype=np.int64)
    nop_n = ((w >> np.uint64(_NOP_N[0])) & np.uint64(_NOP_N[1])).astype(np.int64)
    rep_n = ((w >> np.uint64(_REPEAT_N[0])) & np.uint64(_REPEAT_N[1])).astype(np.int64)
    rep_d = ((w >> np.uint64(_REPEAT_D[0])) & np.uint64(_REPEAT_D[1])).astype(np.int64)
    adv[is_nop] = nop_n[is_nop]
    rep_idx = rep_of = None
    if is_rep.any():
        # ``repeat n, d`` re-issues the last instruction before it (nops may stand between, as
        # the assembler writes the repeat d cycles after it); the queue goes on the cycle after
        # the last repetition: issue + n * d + 1
        rep_idx = np.nonzero(is_rep)[0]
        last = np.maximum.accumulate(np.where(is_nop, -1, np.arange(n)))
        rep_of = np.where(rep_idx > 0, last[np.maximum(rep_idx - 1, 0)], -1)
        ok = rep_of >= 0
        ok[ok] = ~icu[op[rep_of[ok]]]
        if not ok.all():
            raise MalformedCode(f"word {int(rep_idx[np.argmin(ok)])}: 'repeat' does not follow an instruction it "
                                "can re-issue")
        adv[rep_idx] = 0
        prov = np.cumsum(adv) - adv  # cycles before repeats take effect: exact between p and i
        gap = prov[rep_idx] - prov[rep_of] - 1
        if (gap >= rep_d[rep_idx]).any():
            bad = int(rep_idx[np.argmax(gap >= rep_d[rep_idx])])
            raise MalformedCode(f"word {bad}: 'repeat' stands after the cycle of the first repetition")
        adv[rep_idx] = rep_n[rep_idx] * rep_d[rep_idx] - gap
    ends = np.cumsum(adv)
    cycles = np.empty(n, dtype=np.int64)
    cycles[0] = 0
    cycles[1:] = ends[:-1]
    last_effect, last_word = 0, -1
    if cfg is not None:
        tails = _tails(cfg)
        t1 = ((w >> np.uint64(DTYPE_LO)) & np.uint64(7)).astype(np.intp)
        effect = cycles + tails[op, t1]
        effect[is_nop] = cycles[is_nop] + nop_n[is_nop]
        if rep_idx is not None:
            effect[rep_of] += rep_n[rep_idx] * rep_d[rep_idx]  # the last repetition's effect
            effect[rep_idx] = 0
        last_word = int(np.argmax(effect))
        last_effect = int(effect[last_word])
    return Timing(cycles, int(ends[-1]), last_effect, last_word)
