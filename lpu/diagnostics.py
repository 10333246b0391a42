"""Diagnostics in the LLVM style: ``file:line:col: error: message``, the source line, a caret.

Every tool reports a user's mistake through this module, so that the command line, the tests
and the language server see the same text at the same place.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass, field
from typing import Iterable


@dataclass(slots=True, unsafe_hash=True)  # not frozen: frozen __init__ costs 3x, and assembly makes millions
class SourceLoc:
    """A 1-based line and column in a named file; ``line == 0`` means "the whole file".
    Treat it as immutable."""

    file: str
    line: int = 0
    col: int = 0
    length: int = 1

    def __str__(self) -> str:
        file = self.file if self.file.isprintable() else printable(self.file)
        if self.line <= 0:
            return file
        return f"{file}:{self.line}:{self.col}"


def printable(text: str) -> str:
    """``text`` with every character that is not printable (a newline, a NUL, a byte of a file
    name that is not UTF-8) written as an escape, so that one message stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(slots=True)
class Diagnostic:
    severity: str  # "error", "warning" or "note"
    message: str
    loc: SourceLoc | None = None
    notes: list["Diagnostic"] = field(default_factory=list)

    def note(self, message: str, loc: SourceLoc | None = None) -> "Diagnostic":
        self.notes.append(Diagnostic("note", message, loc))
        return self


class DiagnosticError(Exception):
    """Raised with every diagnostic a stage found; the tools print them and exit with 1."""

    def __init__(self, diagnostics: Diagnostic | Iterable[Diagnostic]):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(d.message for d in self.diagnostics))


def error(message: str, loc: SourceLoc | None = None) -> Diagnostic:
    return Diagnostic("error", message, loc)


def source_lines(text: str) -> list[str]:
    """The lines of a source text as the lexers count them: ended by ``\n`` (a ``\r`` before it
    dropped), and nothing else. ``str.splitlines`` also breaks at form feeds, ``\x1c``-``\x1e``,
    ``\x85`` and U+2028, which would put every line after one of them under the wrong number."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [x[:-1] if x.endswith("\r") else x for x in lines]


class SourceManager:
    """Holds the text of every file a run has read, to print source lines under diagnostics."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {}

    def add(self, name: str, text: str) -> None:
        self._lines[name] = source_lines(text)

    def line(self, name: str, line: int) -> str | None:
        lines = self._lines.get(name)
        if lines is None:
            lines = []
            try:
                # only a regular file: a line table may name /dev/zero or a FIFO, which never end
                if stat.S_ISREG(os.stat(name).st_mode):
                    with open(name, encoding="utf-8", errors="replace") as f:
                        lines = source_lines(f.read())
            except (OSError, ValueError):  # ValueError: a NUL in the name (from a damaged line table)
                pass
            self._lines[name] = lines
        if 1 <= line <= len(lines):
            return lines[line - 1]
        return None


def render(diag: Diagnostic, sources: SourceManager | None = None) -> str:
    """The text of one diagnostic and its notes, each with its source line and caret."""
    out: list[str] = []
    for d in [diag, *diag.notes]:
        prefix = f"{d.loc}: " if d.loc is not None else ""
        out.append(f"{prefix}{d.severity}: {d.message}")
        if d.loc is not None and d.loc.line > 0 and sources is not None:
            text = sources.line(d.loc.file, d.loc.line)
            if text is not None:
                text = text.expandtabs(1)
                col = max(d.loc.col, 1)
                width = max(1, min(d.loc.length, len(text) - col + 1))
                out.append(text)
                out.append(" " * (col - 1) + "^" + "~" * (width - 1))
    return "\n".join(out)


def print_diagnostics(
    diagnostics: Iterable[Diagnostic], sources: SourceManager | None = None, stream=None
) -> None:
    stream = stream or sys.stderr
    for d in diagnostics:
        print(render(d, sources), file=stream)
