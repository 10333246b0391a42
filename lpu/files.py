"""Reading inputs and writing outputs the way every tool does: outputs appear whole or not at all."""

from __future__ import annotations

import os
import sys
import tempfile

from lpu.diagnostics import DiagnosticError, SourceLoc, error


def read_text(path: str) -> str:
    """The text of ``path`` (``-`` is standard input); a missing file is a diagnostic."""
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise DiagnosticError(error(f"'{path}' is not UTF-8 text ({e.reason} at byte {e.start})", SourceLoc(path))) from None
    except OSError as e:
        raise DiagnosticError(error(f"cannot read '{path}': {e.strerror}", SourceLoc(path))) from None


def read_bytes(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise DiagnosticError(error(f"cannot read '{path}': {e.strerror}", SourceLoc(path))) from None


def write_atomic(path: str, data: bytes | str) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place.

    ``-`` writes to standard output. Whatever stood at ``path`` before is untouched on failure.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    except OSError as e:
        raise DiagnosticError(error(f"cannot write '{path}': {e.strerror}", SourceLoc(path))) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise DiagnosticError(error(f"cannot write '{path}': {e.strerror}", SourceLoc(path))) from None
