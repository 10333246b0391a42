"""``lpu-opt``: the dataflow optimizer (issue 5) — not built yet; says so clearly instead of failing obscurely."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("lpu-opt: error: the dataflow optimizer (issue 5) is not built yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
