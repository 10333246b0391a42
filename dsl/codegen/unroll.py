"""unroll on kernels: the fully unrolled schedule kept compact as ``repeat``, or written out.

The schedulers place every instruction at its own cycle (the loops of the blocking are fully
unrolled: each weight row group, each activation row, each result). ``compact`` folds each
queue's runs of the same instruction at a constant spacing ``D`` — identical fields, MEM
addresses advancing by their stride (one vector unless the instruction gives one) — into the
first instruction plus ``repeat N, D``: the TSP's one instruction word for a whole strided
sweep. ``expand`` is its inverse: every ``repeat`` written out as the instructions it issues,
each at its own cycle and address (the fully unrolled loop). Neither changes a cycle; folding
shrinks the instruction words (and the assembler's and simulator's work).

This is the kernel level of the ``lpu-opt`` pass ``unroll`` (``lpu.dsl.passes.loops``; on
``df`` functions the same pass unrolls ``for`` loops): ``unroll`` folds every ``lpu.kernel``
(``fold_kernel``), ``unroll{factor=F}`` folds with at most ``F`` repetitions per ``repeat``,
``unroll{full=true}`` expands (``expand_kernel``). Folding starts from the expanded kernel,
so it is idempotent and a kernel folded with one factor can be refolded with another.
"""

from __future__ import annotations

from lpu.arch.isa import BY_MNEMONIC, DTYPE_BYTES, OPERAND_KINDS
from lpu.asm.operands import stride_of
from lpu.asm.records import Inst, SymRef

_REPEAT = BY_MNEMONIC["repeat"]
#: both fields of ``repeat N, D`` are counts: a run's repetitions and its spacing must fit
_COUNT_MAX = (1 << OPERAND_KINDS["count"].bits) - 1


def _step(inst: Inst) -> int:
    """Words a repetition of ``inst`` advances its MEM address by (the simulator's rule)."""
    w = DTYPE_BYTES.get(inst.dtype, 1) if inst.dtype else 1
    for o, v in zip(inst.spec.operands, inst.args):
        if o.kind.name == "stride":
            return stride_of(v, w)
    return w


def _repeated(inst: Inst, k: int) -> tuple:
    """The operands of the ``k``-th repetition of ``inst``: only ``addr`` operands advance
    (a ``permute``'s table, for one, stays where it is)."""
    step = _step(inst)
    return tuple(a if o.kind.name != "addr" else SymRef(a.symbol, a.offset + k * step) if isinstance(a, SymRef)
                 else a + k * step for o, a in zip(inst.spec.operands, inst.args))


def _foldable(inst: Inst) -> bool:
    # ICU instructions (nop, repeat, notify, sync) are not re-issued by a repeat
    return "any" not in inst.spec.units


_ADDR: dict[str, tuple[int, ...]] = {}  # mnemonic -> positions of its addr operands


def _addr_positions(spec) -> tuple[int, ...]:
    p = _ADDR.get(spec.mnemonic)
    if p is None:
        p = _ADDR[spec.mnemonic] = tuple(i for i, o in enumerate(spec.operands) if o.kind.name == "addr")
    return p


def _follows(a: Inst, b: Inst, k: int) -> bool:
    """Whether ``b`` is what the ``k``-th repetition of ``a`` issues."""
    if b.spec is not a.spec or b.dtype != a.dtype or b.dtype2 != a.dtype2:
        return False
    addr = _addr_positions(a.spec)
    if not addr:
        return b.args == a.args
    step = None
    for i, (x, y) in enumerate(zip(a.args, b.args)):
        if i in addr:
            if step is None:
                step = _step(a)
            if isinstance(x, SymRef):
                if not isinstance(y, SymRef) or y.symbol != x.symbol or y.offset != x.offset + k * step:
                    return False
            elif isinstance(y, SymRef) or y != x + k * step:  # an absolute address
                return False
        elif x != y:
            return False
    return True


def _by_queue(insts: list[Inst]) -> list[list[Inst]]:
    queues: dict[int, list[Inst]] = {}
    for x in sorted(insts, key=lambda x: (x.queue, x.cycle)):
        queues.setdefault(x.queue, []).append(x)
    return list(queues.values())


def compact(insts: list[Inst], factor: int = 0, keep: frozenset[int] = frozenset()) -> list[Inst]:
    """Fold runs into ``repeat`` (see the module doc); at most ``factor`` repetitions per
    ``repeat`` if ``factor`` > 0 (a longer run becomes several instruction + ``repeat``
    pairs). Instructions whose ``id`` is in ``keep`` stay as they are and end a run.
    ``insts`` must hold no other ``repeat`` (``expand`` first). The result is sorted by
    (cycle, queue)."""
    most = min(factor, _COUNT_MAX) if factor > 0 else _COUNT_MAX
    out: list[Inst] = []
    for q in _by_queue(insts):
        i = 0
        while i < len(q):
            a = q[i]
            run, d = 1, None
            while _foldable(a) and id(a) not in keep and i + run < len(q) and run <= most:
                b = q[i + run]
                gap = b.cycle - q[i + run - 1].cycle
                if (d is not None and gap != d) or gap > _COUNT_MAX or id(b) in keep or not _follows(a, b, run):
                    break
                d = gap
                run += 1
            out.append(a)
            if run > 1:
                out.append(Inst(a.cycle + d, a.queue, _REPEAT, None, None, (run - 1, d), a.loc))
            i += run
    out.sort(key=lambda x: (x.cycle, x.queue))
    return out


def expand(insts: list[Inst]) -> list[Inst]:
    """The inverse of ``compact``: every ``repeat`` written out as the instructions it issues,
    each at its own cycle and address. The result is sorted by (cycle, queue)."""
    out: list[Inst] = []
    for q in _by_queue(insts):
        last = None
        for x in q:
            if x.spec is _REPEAT and last is not None:
                n, d = x.args
                out.extend(Inst(last.cycle + k * d, last.queue, last.spec, last.dtype, last.dtype2,
                                _repeated(last, k), last.loc) for k in range(1, n + 1))
                last = None
                continue
            out.append(x)
            last = x if _foldable(x) else None
    out.sort(key=lambda x: (x.cycle, x.queue))
    return out


# --- on lpu.kernel ops ---------------------------------------------------------------------------
def kernel_insts(kop, cfg) -> list[Inst]:
    """The instruction records of an ``lpu.kernel`` op (in its op order)."""
    return [op.to_inst(cfg) for op in kop.insts()]


def _rebuilt(kop, insts: list[Inst], cfg):
    from lpu.dsl.lpu_dialect import KernelOp, LpuInstOp

    new = KernelOp.build_from(kop.sym_name.data, [LpuInstOp.from_inst(x, cfg) for x in insts],
                              kop.is_global is not None)
    if kop.target is not None:
        new.attributes["target"] = kop.target
    return new


def _same(a: list[Inst], b: list[Inst]) -> bool:
    return len(a) == len(b) and all(x.cycle == y.cycle and x.queue == y.queue and x.spec is y.spec
                                    and x.dtype == y.dtype and x.dtype2 == y.dtype2 and x.args == y.args
                                    for x, y in zip(a, b))


def fold_kernel(kop, cfg, factor: int = 0):
    """``kop`` with its regular runs folded into ``repeat`` (at most ``factor`` repetitions
    each if ``factor`` > 0): a new ``lpu.kernel``, or ``kop`` itself if it is folded so
    already. Existing ``repeat``s are expanded first, so folding a folded kernel gives it back."""
    insts = kernel_insts(kop, cfg)
    folded = refold(insts, factor)
    return kop if _same(insts, folded) else _rebuilt(kop, folded, cfg)


def expand_kernel(kop, cfg):
    """``kop`` with every ``repeat`` written out (fully unrolled): a new ``lpu.kernel``, or
    ``kop`` itself if it holds no ``repeat``."""
    insts = kernel_insts(kop, cfg)
    if not any(x.spec is _REPEAT for x in insts):
        return kop
    return _rebuilt(kop, expand(insts), cfg)


def refold(insts: list[Inst], factor: int = 0, keep: list[Inst] = ()) -> list[Inst]:
    """``compact(expand(insts))``: folds a schedule that may already hold ``repeat``s, sorted
    by (cycle, queue). The instructions of ``keep`` (a called kernel's, spliced in as written)
    are left exactly as they are, their ``repeat``s included."""
    kept = frozenset(id(x) for x in keep)
    if not kept:
        return compact(expand(insts), factor)
    return compact(expand([x for x in insts if id(x) not in kept]) + [x for x in insts if id(x) in kept],
                   factor, kept)
