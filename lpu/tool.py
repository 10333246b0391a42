"""The frame every command-line tool runs in: diagnostics on stderr, exit status 0 or 1."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from lpu.diagnostics import DiagnosticError, SourceManager, print_diagnostics


def run_tool(body: Callable[[SourceManager], int | None], argv0: str) -> int:
    """Run ``body``; a ``DiagnosticError`` becomes printed diagnostics and exit status 1."""
    sources = SourceManager()
    try:
        return body(sources) or 0
    except DiagnosticError as e:
        print_diagnostics(e.diagnostics, sources)
        return 1
    except KeyboardInterrupt:
        print(f"{argv0}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


class ArgumentParser(argparse.ArgumentParser):
    """A usage error exits with status 1, as every tool's errors do."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")
