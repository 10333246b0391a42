"""unroll: the fully unrolled schedule kept compact as ``repeat``.

The schedulers place every instruction at its own cycle (the loops of the blocking are fully
unrolled: each weight row group, each activation row, each result). This pass folds each
queue's runs of the same instruction at a constant spacing ``D`` — identical fields, MEM
addresses advancing by the default stride (one vector) — into the first instruction plus
``repeat N, D``: the TSP's one instruction word for a whole strided sweep. Cycles do not
change; instruction words (and the simulator's and assembler's work) shrink. Disabled
(``compact=False`` in the schedulers, ``no unroll`` in the benchmark) the program is the same
schedule written one instruction per issue.
"""

from __future__ import annotations

from lpu.arch.isa import BY_MNEMONIC, DTYPE_BYTES, OPERAND_KINDS
from lpu.asm.records import Inst, SymRef

_REPEAT = BY_MNEMONIC["repeat"]
_COUNT_MAX = (1 << OPERAND_KINDS["count"].bits) - 1


def _follows(a: Inst, b: Inst, k: int) -> bool:
    """Whether ``b`` is what the ``k``-th repetition of ``a`` issues."""
    if b.spec is not a.spec or b.dtype != a.dtype or b.dtype2 != a.dtype2:
        return False
    step = DTYPE_BYTES.get(a.dtype, 1) if a.dtype else 1
    for o, x, y in zip(a.spec.operands, a.args, b.args):
        if isinstance(x, SymRef):
            if not isinstance(y, SymRef) or y.symbol != x.symbol or y.offset != x.offset + k * step:
                return False
        elif o.kind == "stride" and x:
            return False  # an explicit stride: keep it simple, do not fold
        elif x != y:
            return False
    return True


def compact(insts: list[Inst]) -> list[Inst]:
    """Fold runs into ``repeat`` (see the module doc); the result is sorted by (cycle, queue)."""
    queues: dict[int, list[Inst]] = {}
    for x in sorted(insts, key=lambda x: (x.queue, x.cycle)):
        queues.setdefault(x.queue, []).append(x)
    out: list[Inst] = []
    for q in queues.values():
        i = 0
        while i < len(q):
            a = q[i]
            run, d = 1, None
            while i + run < len(q) and run <= _COUNT_MAX:
                b = q[i + run]
                gap = b.cycle - q[i + run - 1].cycle
                if (d is not None and gap != d) or not _follows(a, b, run):
                    break
                d = gap
                run += 1
            out.append(a)
            if run > 1:
                out.append(Inst(a.cycle + d, a.queue, _REPEAT, None, None, (run - 1, d)))
            i += run
    out.sort(key=lambda x: (x.cycle, x.queue))
    return out


def expand(insts: list[Inst]) -> list[Inst]:
    """The inverse of ``compact``: every ``repeat`` written out as the instructions it issues
    (what a schedule is without this pass; used to measure what the pass buys)."""
    queues: dict[int, list[Inst]] = {}
    for x in sorted(insts, key=lambda x: (x.queue, x.cycle)):
        queues.setdefault(x.queue, []).append(x)
    out: list[Inst] = []
    for q in queues.values():
        last = None
        for x in q:
            if x.spec is _REPEAT and last is not None:
                n, d = x.args
                step = DTYPE_BYTES.get(last.dtype, 1) if last.dtype else 1
                for k in range(1, n + 1):
                    args = tuple(SymRef(a.symbol, a.offset + k * step) if isinstance(a, SymRef) else a
                                 for a in last.args)
                    out.append(Inst(last.cycle + k * d, last.queue, last.spec, last.dtype, last.dtype2, args))
                last = None
                continue
            out.append(x)
            last = x
    out.sort(key=lambda x: (x.cycle, x.queue))
    return out
