"""``lpu-lsp``: the language server for ``.lpu`` files, speaking LSP over standard input/output."""

from __future__ import annotations

import logging
import sys

from lpu import __version__
from lpu.tool import ArgumentParser


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="lpu-lsp", description="The .lpu language server (Language Server Protocol over stdio).")
    ap.add_argument("--stdio", action="store_true", help="talk over standard input/output (the default and only transport)")
    ap.add_argument("--debounce-ms", type=int, default=None, metavar="MS",
                    help="wait this long after an edit before checking (default 50; the client's "
                         "initializationOptions.debounceMs overrides it)")
    ap.add_argument("--log", metavar="FILE", help="write the server's log to FILE")
    ap.add_argument("--version", action="version", version=f"lpu-lsp {__version__}")
    args = ap.parse_args(argv)
    if args.debounce_ms is not None and args.debounce_ms < 0:
        ap.error("--debounce-ms must be at least 0")
    if args.log:
        logging.basicConfig(filename=args.log, level=logging.INFO)
    from lpu.lsp.server import build_server

    server = build_server()
    if args.debounce_ms is not None:
        server.debounce_ms = args.debounce_ms
    server.start_io()
    return 0


if __name__ == "__main__":
    sys.exit(main())
