"""Incremental checking of an assembly document: the assembler's own checks, re-run only where
an edit can change their result.

A document is cut at kernel boundaries into *blocks* (a kernel from its header line to its
closing brace) and the *top level* (everything else: target, data, reserve, extern). The
grammar is a sequence of items that each end with a newline, so a file whose blocks and top
level each parse on their own parses, as a whole, into exactly their concatenation; each block
is parsed by ``lpu.asm.parser.parse`` at its own line numbers and cached by its text and first
line. When a block does not stand alone (an unclosed kernel, a syntax error outside an
instruction line), the whole file is parsed instead.

Checking mirrors ``lpu.asm.assembler.assemble`` step by step with the same functions: the
top level through ``Checker.run`` (the assembler's public hooks) (externs, tensors), each kernel through
``Checker.kernel`` (cached by its block and the symbols it can see), then the queue and
stream-timing checks under the same gating as the assembler (they run only when nothing else
failed). ``tests/test_lsp_analysis.py`` checks, on random edits, that the diagnostics are those
of ``assemble`` on the whole text.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from lpu.asm.assembler import Checker, resolve_config
from lpu.asm.parser import MAX_ERRORS, RawKernel, RawModule, parse, parses_without_recovery
from lpu.asm.records import Inst, Kernel, Program
from lpu.asm.timing import Read, Write, arrival, check_timing, stream_events
from lpu.diagnostics import Diagnostic, DiagnosticError, SourceLoc

HEADER_RE = re.compile(r"^[ \t]*(?:global[ \t]+)?kernel\b")
CLOSE_RE = re.compile(r"^[ \t]*\}[ \t]*(?://.*)?\r?$")
_BLANK_RE = re.compile(r"^[ \t\f\r]*(?://.*)?$")


@dataclass(slots=True)
class Block:
    start: int  # 1-based line of the kernel header
    end: int  # 1-based line of the closing brace (or the last line, when there is none)
    text: str


def split_blocks(lines: list[str]) -> list[Block]:
    """Kernel blocks: a header line up to the first closing-brace line after it."""
    blocks: list[Block] = []
    i, n = 0, len(lines)
    while i < n:
        if HEADER_RE.match(lines[i]):
            j = i + 1
            while j < n and not CLOSE_RE.match(lines[j]):
                j += 1
            end = min(j, n - 1)
            blocks.append(Block(i + 1, end + 1, "\n".join(lines[i:end + 1]) + "\n"))
            i = end + 1
        else:
            i += 1
    return blocks


@dataclass(slots=True)
class KernelTiming:
    """What the queue and timing checks found in one kernel (for hints and hovers)."""

    length: int | None  # cycles, when the queue check passed
    writes: list[Write] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)


@dataclass(slots=True)
class _Checked:
    kernel: Kernel
    diags: list[Diagnostic]
    sequence: list[Diagnostic] | None = None  # the queue check's diagnostics, once run
    timing: list[Diagnostic] | None = None  # the stream-timing check's, once run
    events: KernelTiming | None = None


@dataclass(slots=True)
class _Entry:
    """A parsed block, and its check under the latest symbol context."""

    raw: RawKernel
    diags: list[Diagnostic]
    context: tuple | None = None
    checked: _Checked | None = None
    index: object | None = None  # what the language server's index derived from the block


@dataclass(slots=True)
class KernelView:
    raw: RawKernel
    start: int
    end: int
    kernel: Kernel | None = None
    insts: dict[int, Inst] = field(default_factory=dict)  # index in raw.insts -> checked Inst
    clean: bool = False  # its own instructions checked without an error
    checked: _Checked | None = None
    entry: _Entry | None = None  # the cache entry of its block (incremental parses only)
    index: object | None = None  # the index's data for a kernel without an entry


@dataclass
class AsmSnapshot:
    """One analysis of one version of a document."""

    file: str
    text: str
    lines: list[str]
    raw: RawModule
    diagnostics: list[Diagnostic]
    config: object | None = None  # ChipConfig
    program: Program | None = None
    kernels: list[KernelView] = field(default_factory=list)
    incremental: bool = True  # False when the whole file had to be parsed
    reparsed: int = 0  # blocks parsed anew by this analysis
    rechecked: int = 0  # kernels checked anew

    @property
    def tensors(self) -> dict:
        return {t.name: t for t in self.program.tensors} if self.program else {}

    def timing(self, view: KernelView) -> KernelTiming | None:
        """The queue and stream timing of a kernel whose instructions checked cleanly, computed
        on demand with the assembler's functions (also when another kernel has errors)."""
        c = view.checked
        if c is None or not view.clean or self.config is None:
            return None
        if c.events is None:
            if c.sequence is None:
                scratch = Checker(RawModule(self.file), self.config, "")
                scratch.sequence(c.kernel)
                c.sequence = scratch.diags
            if c.sequence:
                c.events = KernelTiming(None)
            else:
                writes, reads = stream_events(c.kernel, self.config)
                link_reads(writes, reads)
                c.events = KernelTiming(c.kernel.length, writes, reads)
        return c.events


def link_reads(writes: list[Write], reads: list[Read]) -> None:
    """Point each read at the value it meets: the nearest writer upstream on its diagonal
    (architecture page, section 2), found with the timing module's ``arrival``."""
    by_stream: dict[tuple[bool, int], list[Write]] = {}
    for w in writes:
        for s in range(w.base, w.base + w.width):
            by_stream.setdefault((w.west, s), []).append(w)
    for r in reads:
        best = None
        for w in by_stream.get((r.west, r.base), ()):
            if arrival(w, r.position) == r.issue:
                if best is None or (w.position < best.position if r.west else w.position > best.position):
                    best = w
        r.write = best


class AsmDocument:
    """Analyses successive versions of one document, reusing what an edit did not touch."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.base_dir = os.path.dirname(os.path.abspath(file)) if file not in ("-", "<input>", "<stdin>") \
            else os.getcwd()
        self._entries: dict[tuple[str, int], _Entry] = {}

    def analyze(self, text: str) -> AsmSnapshot:
        if not text.endswith("\n"):
            text += "\n"
        lines = text.split("\n")[:-1]
        snap = self._parse(text, lines)
        try:
            self._check(snap)
        except DiagnosticError as e:  # an unknown target: nothing more can be checked
            snap.diagnostics = list(e.diagnostics)
        snap.diagnostics.sort(key=_position)
        return snap

    # --- parsing ------------------------------------------------------------------------------
    def _parse(self, text: str, lines: list[str]) -> AsmSnapshot:
        blocks = split_blocks(lines)
        entries: dict[tuple[str, int], _Entry] = {}
        reparsed = 0
        ok = True
        for b in blocks:
            key = (b.text, b.start)
            e = self._entries.get(key)
            if e is None:
                reparsed += 1
                e = self._parse_block(b, lines)
                if e is None:
                    ok = False
                    break
            entries[key] = e
        if ok:
            top_lines = list(lines)
            for b in blocks:
                top_lines[b.start - 1:b.end] = [""] * (b.end - b.start + 1)
            top, top_diags = parse("\n".join(top_lines) + "\n", self.file)
            # a syntax error outside kernels may be reported with text of the lines after it
            ok = not top.kernels and not top_diags and _accounts_for(top_lines, 1, len(top_lines), top, top_diags)
        if ok:
            diags = list(top_diags)
            for b in blocks:
                diags.extend(entries[(b.text, b.start)].diags)
            ok = len(diags) < MAX_ERRORS
        if not ok:  # some block does not stand alone: parse the file as lpu-as does
            raw, diags = parse(text, self.file)
            self._entries = {}
            snap = AsmSnapshot(self.file, text, lines, raw, list(diags), incremental=False)
            snap.kernels = [KernelView(rk, rk.line, _closing_line(lines, rk.line)) for rk in raw.kernels]
            return snap
        self._entries = entries
        raw = top
        raw.kernels = [entries[(b.text, b.start)].raw for b in blocks]
        snap = AsmSnapshot(self.file, text, lines, raw, diags, reparsed=reparsed)
        snap.kernels = [KernelView(entries[(b.text, b.start)].raw, b.start, b.end, entry=entries[(b.text, b.start)])
                        for b in blocks]
        return snap

    def _parse_block(self, b: Block, lines: list[str]) -> _Entry | None:
        """A kernel parsed on its own, if it stands alone: one kernel item from the header line
        to the closing line, with at most errors inside instruction lines (which the parser
        reports line by line, whatever surrounds the kernel)."""
        text = "\n" * (b.start - 1) + b.text
        raw, diags = parse(text, self.file)
        if len(raw.kernels) != 1 or len(raw.items) != 1:
            return None
        rk = raw.kernels[0]
        if rk.line != b.start or getattr(rk, "end_line", b.end) != b.end or not CLOSE_RE.match(lines[b.end - 1]):
            return None
        if diags:
            if any(d.loc is None or not b.start < d.loc.line < b.end for d in diags):
                return None
            if not parses_without_recovery(text):  # a grammar-level error: its message may quote
                return None  # text beyond the block, so only the whole file's parse says it right
        if not _accounts_for(lines, b.start, b.end, raw, diags):
            return None
        return _Entry(rk, list(diags))

    # --- checking -----------------------------------------------------------------------------
    def _check(self, snap: AsmSnapshot) -> None:
        """``assemble`` and ``Checker.run``, with each kernel's check taken from the cache
        when its text and the symbols it can see are unchanged."""
        raw, diags, file = snap.raw, snap.diagnostics, self.file
        target_loc = SourceLoc(file, raw.target[1], raw.target[2], len(raw.target[0]) + 2) if raw.target else None
        cfg = resolve_config(raw, None, target_loc, diags)
        snap.config = cfg
        kernels = raw.kernels
        raw.kernels = []
        a = Checker(raw, cfg, self.base_dir)
        prog = a.run(target_loc)  # externs and tensors: the top level, without kernels
        raw.kernels = kernels
        snap.program = prog
        context = (id(cfg), _symbol_context(a))
        earlier: list[str] = []
        for view in snap.kernels:
            rk = view.raw
            entry = view.entry
            key = (context, tuple(earlier))
            if entry is not None and entry.context == key and entry.checked is not None:
                checked = entry.checked
                a.diags.extend(checked.diags)
            else:
                snap.rechecked += 1
                n = len(a.diags)
                k = a.kernel(rk)
                checked = _Checked(k, a.diags[n:])
                if entry is not None:
                    entry.context, entry.checked = key, checked
            view.checked = checked
            view.kernel = checked.kernel
            view.clean = not checked.diags
            view.insts = _match(rk, checked.kernel)
            kloc = a.loc(rk.line, rk.name_col, len(rk.name) + 1)
            if a.define(rk.name, "kernel", checked.kernel, kloc):
                prog.kernels.append(checked.kernel)
            earlier.append(rk.name)
        by_kernel = {id(v.kernel): v.checked for v in snap.kernels}
        if not a.diags:  # the queue check runs only on a file with no other error, as in run()
            for k in prog.kernels:
                c = by_kernel[id(k)]
                if c.sequence is None:
                    n = len(a.diags)
                    a.sequence(k)
                    c.sequence = a.diags[n:]
                else:
                    a.diags.extend(c.sequence)
            if not a.diags:
                for k in prog.kernels:
                    c = by_kernel[id(k)]
                    if c.timing is None:
                        c.timing = check_timing(k, cfg)
                    a.diags.extend(c.timing)
        diags.extend(a.diags)


def _symbol_context(a: Checker) -> tuple:
    """Everything about the symbols defined before the kernels that a kernel's check reads."""
    out = []
    for name, (kind, record, loc) in a.symbols.items():
        if kind == "tensor":
            out.append((name, kind, loc, record.dtype, record.shape, record.placement, record.words))
        else:
            out.append((name, kind, loc))
    return tuple(out), tuple(a.externs)


def _accounts_for(lines: list[str], first: int, last: int, raw: RawModule, diags: list[Diagnostic]) -> bool:
    """Every non-blank line from ``first`` to ``last`` is an item, an instruction, a kernel's
    closing line or the line of a syntax error: the parse did not give up and drop statements."""
    seen: set[int] = set()
    for d in diags:
        if d.loc is None or d.loc.line < first or d.loc.line > last:
            return False
        seen.add(d.loc.line)
    for t in raw.tensors:
        seen.add(t.line)
    for _name, line, _col in raw.externs:
        seen.add(line)
    if raw.target:
        seen.add(raw.target[1])
    for it in raw.items:
        if isinstance(it, tuple) and it[0] == "target":
            seen.add(it[2])
    for rk in raw.kernels:
        seen.add(rk.line)
        seen.update(ri.line for ri in rk.insts)
    for i in range(first - 1, last):
        if i + 1 not in seen and not _BLANK_RE.match(lines[i]) and not CLOSE_RE.match(lines[i]):
            return False
    return True


def _closing_line(lines: list[str], start: int) -> int:
    j = start
    while j < len(lines) and not CLOSE_RE.match(lines[j]):
        j += 1
    return min(j, len(lines) - 1) + 1


def _match(rk: RawKernel, k: Kernel) -> dict[int, Inst]:
    """Which raw instruction each checked one came from (failed ones are skipped, in order)."""
    out: dict[int, Inst] = {}
    j = 0
    for i, ri in enumerate(rk.insts):
        if j >= len(k.insts):
            break
        inst = k.insts[j]
        where = SourceLoc(*ri.loc) if ri.loc else None
        if inst.cycle == ri.cycle and (inst.loc == where if where else inst.loc.line == ri.line):
            out[i] = inst
            j += 1
    return out


def _position(d: Diagnostic):
    return (d.loc.line, d.loc.col) if d.loc is not None else (0, 0)
