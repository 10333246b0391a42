"""Instruction words in time: issue cycles of queue sections, and whole queue programs.

Every queue of a chip starts at cycle 0. An object's kernels run end to end, objects of one
phase side by side, phases one after another; this module turns those segments into one word
stream per queue, with canonical ``nop``s in the gaps, and checks that nothing a segment
started is still under way when the next one begins. Everything per word is numpy: a system
holds millions of instructions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lpu.arch.isa import BY_MNEMONIC, encode
from lpu.asm.emit import _canonical_nops
from lpu.asm.objfile import ObjectFile, QueueCode
from lpu.asm.objcheck import code_problem
from lpu.asm.words import Timing, timing
from lpu.diagnostics import Diagnostic, SourceLoc, error

_NOP = BY_MNEMONIC["nop"]



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
    Timing. Problems of a corrupted object (the object reader's checks, for objects built in
    memory) are diagnostics naming it."""
    diags: list[Diagnostic] = []
    timings: dict[int, Timing] = {}
    kernels = {k.name for k in obj.kernels}
    tensors = {s.symbol for s in obj.sram} | set(obj.externs)
    seen: set[tuple[str, str]] = set()
    for ci, code in enumerate(obj.code):
        problem = code_problem(obj, code, cfg, kernels, tensors)
        if problem is None and (code.kernel, code.queue) in seen:
            problem = f"queue {code.queue} appears twice in kernel '{code.kernel}'"
        seen.add((code.kernel, code.queue))
        if problem is not None:
            diags.append(error(f"object '{name}', section {code.section_name}: {problem}"))
            continue
        timings[ci] = timing(code.words, cfg)
    return timings, diags


def word_loc(files: list[str], lines: np.ndarray, i: int) -> SourceLoc | None:
    """The ``.lpu`` location of word ``i`` of a queue, from its line table."""
    if not 0 <= i < len(lines):
        return None
    f, line, col = (int(x) for x in lines[i])
    if line == 0 or f >= len(files):
        return None
    return SourceLoc(files[f], line, col)
