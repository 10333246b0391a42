"""Instruction words in time: issue cycles of queue sections, and whole queue programs.

Every queue of a chip starts at cycle 0. An object's kernels run end to end, objects of one
phase side by side, phases one after another; this module turns those segments into one word
stream per queue, with canonical ``nop``s in the gaps, and checks that nothing a segment
started is still under way when the next one begins. Everything per word is numpy: a system
holds millions of instructions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from lpu.arch.isa import BY_MNEMONIC, DTYPE_LO, DTYPE2_LO, DTYPES, ISA, OPERANDS_LO, TYPE_BITS
from lpu.asm.emit import _canonical_nops
from lpu.arch.isa import encode
from lpu.asm.objfile import ObjectFile, QueueCode
from lpu.diagnostics import Diagnostic, SourceLoc, error

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


def check_words(words: np.ndarray) -> None:
    """Raise ``MalformedCode`` unless every word decodes (opcode, type fields, reserved bits)."""
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
        raise MalformedCode(f"word {i} (0x{int(w[i]):016x}) is not a valid instruction")


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


def nop_words(gap: int) -> list[int]:
    return [encode(_NOP, None, None, (n,)) for n in _canonical_nops(gap)]


@dataclass(slots=True)
class Segment:
    """One queue section of one object, placed at its start cycle on its chip."""

    start: int
    object: str
    code: QueueCode
    timing: Timing
    file_map: np.ndarray  # object file index -> chip file index
    offset: int = 0  # index of its first word in the queue program (set by build_queue)


@dataclass(slots=True)
class QueueBuild:
    words: np.ndarray
    lines: np.ndarray
    segments: list[Segment] = field(default_factory=list)


def _leading_nops(words: np.ndarray) -> int:
    op = words & np.uint64(0xFF)
    not_nop = np.nonzero(op != _NOP.opcode)[0]
    return int(not_nop[0]) if len(not_nop) else len(words)


def build_queue(segments: list[Segment]) -> QueueBuild:
    """One queue's whole program from cycle 0: segments in order, canonical nops in the gaps.
    The caller has checked that segments do not overlap."""
    segments = sorted(segments, key=lambda s: s.start)
    word_parts: list[np.ndarray] = []
    line_parts: list[np.ndarray] = []
    t = 0
    count = 0
    for seg in segments:
        words = np.asarray(seg.code.words, dtype=np.uint64)
        lines = np.asarray(seg.code.lines, dtype=np.uint32).reshape(-1, 3)
        # The segment's leading nops join the gap before it, so that the program holds one
        # canonical run of nops there (what the assembler would have written for that gap).
        lead = _leading_nops(words)
        gap = seg.start - t + int(seg.timing.cycles[lead]) if lead < len(words) else seg.start - t
        if lead == len(words):
            lead = 0
            gap = seg.start - t
        words, lines = words[lead:], lines[lead:]
        if len(lines):
            has = lines[:, 1] != 0
            lines = lines.copy()
            lines[has, 0] = seg.file_map[lines[has, 0]]
            lines[~has] = 0
        if gap > 0:
            nops = np.array(nop_words(gap), dtype=np.uint64)
            word_parts.append(nops)
            # as the assembler does: the nops before an instruction carry its location
            where = lines[0] if len(lines) else np.zeros(3, dtype=np.uint32)
            line_parts.append(np.repeat(where[None, :], len(nops), axis=0))
            count += len(nops)
        seg.offset = count - lead
        word_parts.append(words)
        line_parts.append(lines)
        count += len(words)
        t = seg.start + seg.timing.end
    words = np.concatenate(word_parts) if word_parts else np.zeros(0, dtype=np.uint64)
    lines = np.concatenate(line_parts) if line_parts else np.zeros((0, 3), dtype=np.uint32)
    return QueueBuild(words, lines, segments)


def check_code(obj: ObjectFile, name: str, cfg) -> tuple[dict[int, Timing], list[Diagnostic]]:
    """Validate an object's queue sections against its chip and time them: code index ->
    Timing. Problems of a corrupted object are diagnostics naming it."""
    diags: list[Diagnostic] = []
    timings: dict[int, Timing] = {}
    kernels = {k.name for k in obj.kernels}
    seen: set[tuple[str, str]] = set()
    for ci, code in enumerate(obj.code):
        where = f"object '{name}', section {code.section_name}"
        if code.queue not in cfg.queue_by_name:
            diags.append(error(f"{where}: chip configuration '{cfg.name}' has no queue '{code.queue}'"))
            continue
        if code.kernel not in kernels:
            diags.append(error(f"{where}: no kernel '{code.kernel}' in the object"))
            continue
        if (code.kernel, code.queue) in seen:
            diags.append(error(f"{where}: queue {code.queue} appears twice in kernel '{code.kernel}'"))
            continue
        seen.add((code.kernel, code.queue))
        lines = np.asarray(code.lines)
        if lines.shape != (len(code.words), 3):
            diags.append(error(f"{where}: {len(code.words)} words but {len(lines)} line entries"))
            continue
        if len(lines) and int(lines[lines[:, 1] != 0, 0].max(initial=0)) >= max(len(obj.files), 1):
            diags.append(error(f"{where}: the line table names a file the object does not list"))
            continue
        bad = next((r for r in code.relocs if not 0 <= r.word < len(code.words)), None)
        if bad is not None:
            diags.append(error(f"{where}: relocation at word {bad.word}, past the section's end"))
            continue
        try:
            check_words(code.words)
            timings[ci] = timing(code.words, cfg)
        except MalformedCode as e:
            diags.append(error(f"{where}: {e}"))
            continue
    return timings, diags


def word_loc(files: list[str], lines: np.ndarray, i: int) -> SourceLoc | None:
    """The ``.lpu`` location of word ``i`` of a queue, from its line table."""
    if not 0 <= i < len(lines):
        return None
    f, line, col = (int(x) for x in lines[i])
    if line == 0 or f >= len(files):
        return None
    return SourceLoc(files[f], line, col)
