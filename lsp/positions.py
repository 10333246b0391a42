"""Between the toolchain's positions (1-based line and character column, ``SourceLoc``) and the
protocol's (0-based line, column in the code units the client and server agreed on: UTF-16
unless the client offers another)."""

from __future__ import annotations

import os
from urllib.parse import quote, unquote, urlparse

from lsprotocol import types

from lpu.diagnostics import Diagnostic, SourceLoc


def _units(ch: str, encoding: str) -> int:
    if encoding == "utf-32":
        return 1
    if encoding == "utf-8":
        return len(ch.encode("utf-8"))
    return 2 if ord(ch) > 0xFFFF else 1


def to_units(line_text: str, char: int, encoding: str = "utf-16") -> int:
    """The column, in the negotiated encoding's code units, of a 0-based character offset."""
    head = line_text[:char]
    if head.isascii() or encoding == "utf-32":
        return len(head)
    return sum(_units(ch, encoding) for ch in head)


def from_units(line_text: str, units: int, encoding: str = "utf-16") -> int:
    """The 0-based character offset of a column in code units (clamped to the line)."""
    if line_text.isascii() or encoding == "utf-32":
        return min(max(units, 0), len(line_text))
    n = 0
    for i, ch in enumerate(line_text):
        if n >= units:
            return i
        n += _units(ch, encoding)
    return len(line_text)


class Lines:
    """A document's lines, for converting columns."""

    def __init__(self, lines: list[str], encoding: str = "utf-16") -> None:
        self.lines = lines
        self.encoding = encoding

    def text(self, line0: int) -> str:
        return self.lines[line0].rstrip("\r") if 0 <= line0 < len(self.lines) else ""

    def position(self, line: int, col: int) -> types.Position:
        """The protocol position of a 1-based line and column."""
        line0 = max(line - 1, 0)
        return types.Position(line0, to_units(self.text(line0), max(col - 1, 0), self.encoding))

    def range(self, line: int, col: int, length: int) -> types.Range:
        if line <= 0:
            return types.Range(types.Position(0, 0), types.Position(0, 0))
        return types.Range(self.position(line, col), self.position(line, col + max(length, 0)))

    def loc_range(self, loc: SourceLoc) -> types.Range:
        return self.range(loc.line, loc.col, loc.length)

    def char(self, pos: types.Position) -> tuple[int, int]:
        """The 1-based line and column of a protocol position."""
        return pos.line + 1, from_units(self.text(pos.line), pos.character, self.encoding) + 1


def path_of(uri: str) -> str:
    """The file name a URI stands for (what lpu-as would be given), or the URI itself."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    return uri


def uri_of(path: str) -> str:
    if "://" in path or path.startswith("untitled:"):
        return path
    return "file://" + quote(os.path.abspath(path))


def to_lsp(d: Diagnostic, lines: Lines, file: str, uri: str, source: str) -> types.Diagnostic:
    """A toolchain diagnostic as the protocol's: the same message at the same range; notes
    become related information (in whichever file they point into)."""
    related = []
    for n in d.notes:
        if n.loc is None:
            continue
        if n.loc.file == file:
            where = types.Location(uri, lines.loc_range(n.loc))
        else:
            where = types.Location(uri_of(n.loc.file), _plain_range(n.loc))
        related.append(types.DiagnosticRelatedInformation(where, n.message))
    rng = lines.loc_range(d.loc) if d.loc is not None and d.loc.file == file else \
        types.Range(types.Position(0, 0), types.Position(0, 0))
    severity = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}.get(
        d.severity, types.DiagnosticSeverity.Information)
    message = d.message
    if d.loc is not None and d.loc.file != file:  # e.g. a chip configuration's own error
        message = f"{d.loc}: {d.message}"
    return types.Diagnostic(rng, message, severity=severity, source=source,
                            related_information=related or None)


def _plain_range(loc: SourceLoc) -> types.Range:
    line0, col0 = max(loc.line - 1, 0), max(loc.col - 1, 0)
    return types.Range(types.Position(line0, col0), types.Position(line0, col0 + max(loc.length, 0)))
