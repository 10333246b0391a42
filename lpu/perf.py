"""Small performance helpers shared by the tools."""

from __future__ import annotations

import functools
import gc


def without_gc(fn):
    """Run ``fn`` with the cyclic garbage collector paused. For passes that build hundreds of
    thousands of acyclic records, the collector would otherwise rescan the growing heap of them
    again and again; reference counting still frees everything as usual."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        collecting = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if collecting:
                gc.enable()

    return wrapper
