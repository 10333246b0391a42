"""The general path: any function of vector ops (and, through ``lower``, views of them).

``compile_general`` runs the ``df`` pipeline (``inline, unroll, df-decompose, canonicalize,
cse, dce``) on a copy of the module, lowers the function's primitives to snippets
(``lower.py``) over vectors laid out in SRAM (``vector.py``), list-schedules them with
stream allocation (``snippets.py``, ``streams.py``), and emits the ``lpu`` kernel op through
the assembler's checks to an object — the same back end as the GEMV path.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np

from lpu.asm.emit import emit
from lpu.asm.objfile import ObjectFile
from lpu.asm.records import Program
from lpu.dsl.codegen.chain import fuse
from lpu.dsl.codegen.lower import Lowering
from lpu.dsl.codegen.lower_call import KernelCall
from lpu.dsl.codegen.reuse import reuse_sram
from lpu.dsl.codegen.snippets import _io, schedule_snippets
from lpu.dsl.codegen.vector import SramBudget, Storage, VValue
from lpu.dsl.lpu_dialect import KernelOp, LpuInstOp, kernel_of

#: every call of a function is inlined (a kernel of its own per function would need an ABI)
PIPELINE = "inline{max_ops=1000000000},unroll,df-decompose,canonicalize,cse,dce"
#: chain runs of elementwise ops on the VXM (``chain.fuse``); off only to measure what it buys
FUSE = True
#: the least vectors a row takes for argmax to be lowered in one pass (``_argmax_lowered``)
ARGMAX_VECTORS = 4
#: temporaries share SRAM words once their lives are over (``reuse.py``); off only to compare
REUSE = True


@dataclass
class VectorCompiled:
    """One compiled function of the general path (the interface of ``Compiled``)."""

    func: str
    storage: Storage
    args: dict[str, VValue]
    outs: list[VValue]
    program: Program
    obj: ObjectFile
    cycles: int
    snippets: int = 0
    times: dict[str, float] = field(default_factory=dict)
    scheduled: int = 0  # instructions the scheduler placed (before ``refold`` folds runs into repeats)
    _kernel: KernelOp | None = None
    params: dict[str, VValue] = field(default_factory=dict)  # symbol parameter -> its storage (a template's)
    layouts: dict = field(default_factory=dict)  # module tensor written at run time or bound -> (VValue, renames)

    def tensor(self, sym: str, read) -> np.ndarray | None:
        """Module tensor ``@sym`` as the program keeps it in SRAM (``read(symbol)`` gives an
        SRAM symbol's contents, e.g. ``Runtime.read``): a KV cache after some steps. None if
        this program does not hold it in a layout it knows."""
        if sym not in self.layouts:
            return None
        v, renames = self.layouts[sym]
        lanes = self.program.config.lanes
        parts = {s: self.storage._vectors(read(renames.get(s, s))) for s in {vec.symbol for vec in v.vecs}}
        from lpu.dsl.codegen.vector import unpack

        return unpack(np.stack([parts[vec.symbol][vec.row] for vec in v.vecs]), v.shape, lanes)

    @property
    def kernel(self) -> KernelOp:
        """The scheduled kernel as ``lpu`` ops (built on first use: a model's ~10^5
        instructions are emitted from their records, and most compiles never need the IR)."""
        if self._kernel is None:
            k = self.program.kernels[0]
            self._kernel = KernelOp.build_from(k.name, [LpuInstOp.from_inst(x, self.program.config) for x in
                                                        sorted(k.insts, key=lambda x: (x.cycle, x.queue))])
        return self._kernel

    def inputs(self, args: dict[str, np.ndarray], lanes: int | None = None) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name, v in self.args.items():
            self.storage.write_value(v, args[name], out)
        return out

    def output_symbols(self) -> list[str]:
        return sorted({vec.symbol for v in self.outs for vec in v.vecs})

    def results(self, parts: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [self.storage.read_value(v, parts) for v in self.outs]

    def result(self, parts: dict[str, np.ndarray], lanes: int | None = None) -> np.ndarray:
        return self.results(parts)[0]

    def assembly(self, source: str = "") -> str:
        from lpu.dsl.codegen import assembly_text

        return assembly_text(self.func, self.program, self.kernel, self.cycles, source)


def stored_tensors(fn) -> tuple[set[str], set]:
    """The module tensors ``fn`` stores into, and the ``get`` results of them still read after
    a later store of the same tensor (program order): those are copied where the ``get``
    stands (a snapshot); every other ``get`` is the tensor's own vectors, its reads ordered
    before the store's writes by the list scheduler (``snippets._list_order``)."""
    from lpu.dsl import dialect as D

    block = fn.body.block
    order = {op: i for i, op in enumerate(block.ops)}

    def top(op):  # the op of the function's own block that holds ``op``
        while op is not None and op not in order:
            op = op.parent_op()
        return op

    stored: set[str] = set()
    snapshots: set = set()
    gets: dict[str, list] = {}
    for op in block.ops:
        if op.name == "df.store":
            sym = D.get_sym(op, "tensor")
            stored.add(sym)
            for g in gets.get(sym, ()):
                if any(order.get(top(u.operation), -1) > order[op] for u in g.result.uses):
                    snapshots.add(g.result)
        elif isinstance(op, D.GetOp) and op.result.uses:
            gets.setdefault(D.get_sym(op, "tensor"), []).append(op)
    return stored, snapshots


def compile_general(module, name: str, cfg, base_dir: str = ".", file: str = "<codegen>",
                    prefix: str = "", bound: set[str] | None = None, copies: int = 1,
                    budget: SramBudget | None = None) -> VectorCompiled:
    """``bound``: arguments a template (``template.py``) binds to each call's own tensor,
    whose storage is counted ``copies`` times; ``budget``: the chip's words already taken."""
    from lpu.dsl import types as T
    from lpu.dsl.codegen.template import callees, candidates, template_for
    from lpu.dsl.frontend import loc_of
    from lpu.dsl.interpreter import _State, arg_names, function
    from lpu.dsl.kernels import kernel_program
    from lpu.dsl.passes import run_pipeline

    t0 = time.perf_counter()
    original = module
    module = module.clone()
    # functions big enough to compile once are kept as calls while loops unroll; those still
    # called twice or more stay calls (templates), the rest are inlined after all
    maybe = candidates(module, function(module, name))
    keep = ",".join(sorted(maybe))
    run_pipeline(module, f'inline{{max_ops=1000000000 keep="{keep}"}},unroll' if keep else "inline{max_ops=1000000000},unroll")
    calls = {c: ops for c, ops in callees(function(module, name)).items() if c in maybe and len(ops) >= 2}
    keep = ",".join(sorted(calls))
    pipeline = PIPELINE.replace("inline{max_ops=1000000000}", f'inline{{max_ops=1000000000 keep="{keep}"}}'
                                if keep else "inline{max_ops=1000000000}")
    kept = [k for k, lowered in (("argmax", _argmax_lowered), ("rope", _ropes_lowered)) if lowered(module, cfg)]
    if kept:  # rope as one SXM trip (lower.Lowering.rope) rather than its slices; argmax as one pass
        pipeline = pipeline.replace("df-decompose", f'df-decompose{{keep="{",".join(kept)}"}}')
    run_pipeline(module, pipeline)
    t1 = time.perf_counter()
    fn = function(module, name)
    calls = {c: ops for c, ops in callees(fn).items() if c in calls}
    templates = {c: template_for(original, c, ops, cfg, base_dir, file) for c, ops in sorted(calls.items())}
    state = _State(module, base_dir, {})
    storage = Storage.for_chip(cfg, budget=budget)
    storage.prefix = prefix
    for c, tpl in templates.items():
        tpl.charge(storage.budget, len(calls[c]))
    value_of = lambda sym: state.tensor(sym, state.symbols[sym])  # noqa: E731
    low = Lowering(storage, cfg, value_of, lambda k: kernel_program(module, k, cfg, value_of))
    low.templates = templates
    low.module_op = state.symbols.get
    from lpu.dsl import dialect as D

    low.params = dict(fn.sym_param_list())
    low.copies = copies
    low.stored, low.snapshots = stored_tensors(fn)

    low.weights = {op.rhs for op in fn.body.block.ops if isinstance(op, D.MatmulOp)}
    for op in reversed(list(fn.body.block.ops)):  # views of a weight matrix: its source is laid out for lw too
        if isinstance(op, (D.SliceOp, D.ReshapeOp, D.ConcatOp)) and op.results[0] in low.weights:
            low.weights.update(op.operands)
    low.weight_syms = {D.get_sym(op, "tensor") for op in fn.body.block.ops
                       if isinstance(op, D.GetOp) and op.result in low.weights}
    low.tables = {op.result for op in fn.body.block.ops if isinstance(op, D.GetOp) and op.result.uses
                  and all(_looked_up(u) for u in op.result.uses)
                  and not all(isinstance(u.operation, D.TransposeOp) for u in op.result.uses)}
    # tensors only transposed (by the compiler, as constants): only the transposes are laid out
    low.compile_time = {op.result for op in fn.body.block.ops if isinstance(op, D.GetOp) and op.result.uses
                        and all(isinstance(u.operation, D.TransposeOp) for u in op.result.uses)}
    # tensors only passed to templates at bound positions: each call lays them out its own way
    low.bound_gets = {op.result for op in fn.body.block.ops if isinstance(op, D.GetOp) and op.result.uses
                      and all(isinstance(u.operation, D.CallOp) and D.get_sym(u.operation, "callee") in templates
                              and u.index in templates[D.get_sym(u.operation, "callee")].bound
                              for u in op.result.uses)}
    args = {}
    for aname, arg in zip(arg_names(fn), fn.body.block.args):
        v = storage.alloc(f"in_{aname}", tuple(T.shape_of(arg.type)), T.elem_of(arg.type), None, True,
                          loc_of(fn), weights=arg in low.weights, fixed=True,
                          copies=copies if bound and aname in bound else 1)
        low.values[arg] = args[aname] = v
    outs = []
    for op in fn.body.block.ops:
        if op.name == "df.return":
            outs = [low.values[v] for v in op.operands]
            break
        low.lower(op)
    storage.check_capacity()
    t2 = time.perf_counter()
    # results, and tensors written at run time (what a store writes is read by the next run),
    # are written to SRAM: never only passed along a chain
    keep = {v for o in outs for v in o.vecs} | {v for m in low.mutable.values() for v in m.vecs}
    insts, spliced, length = _schedule(low.snips, keep, cfg, {v for m in low.mutable.values() for v in m.vecs})
    if REUSE:  # addresses of temporaries, now that their lives are known
        fixed = {vec.symbol for v in list(args.values()) + outs for vec in v.vecs} | low.fixed_symbols
        insts = reuse_sram(insts, storage, fixed, cfg)
    insts += spliced
    insts.sort(key=lambda x: (x.cycle, x.queue))
    from lpu.dsl.codegen.unroll import refold
    scheduled = len(insts)
    insts = refold(insts, keep=spliced)  # unroll: regular runs as one instruction + repeat; no cycle changes
    t3 = time.perf_counter()
    kernel = kernel_of(name, insts, cfg)
    shared = [t for tpl in templates.values() for t in tpl.shared_tensors()]
    prog = Program(cfg.name, cfg, storage.tensors() + list(low.kernel_tensors.values()) + shared + low.instance_list,
                   [], [kernel], file)
    obj = emit(prog)
    t4 = time.perf_counter()
    times = {"passes": t1 - t0, "lower": t2 - t1, "schedule": t3 - t2, "emit": t4 - t3}
    params = {p: v for p, v in low.mutable.items() if p in low.params}
    return VectorCompiled(name, storage, args, outs, prog, obj, max(kernel.length, length), len(low.snips), times,
                          params=params, layouts=low.layouts, scheduled=scheduled)


def _ropes_lowered(module, cfg) -> bool:
    """Every ``rope`` of the module is one the lowering does directly: the "half" style, a row
    within one vector, one row of cos/sin for every row of the input."""
    from lpu.dsl import dialect as D
    from lpu.dsl import types as T

    ropes = [op for op in module.walk() if isinstance(op, D.RopeOp)]
    return bool(ropes) and all(
        (op.style is None or op.style.data == "half") and T.shape_of(op.input.type)[-1] <= cfg.lanes
        and all(math.prod(T.shape_of(v.type)[:-1]) == 1 for v in (op.cos, op.sin)) for op in ropes)


def _argmax_lowered(module, cfg) -> bool:
    """Every ``argmax``/``argmin`` of the module is one the lowering does directly
    (``lower_reduce.argmax``): over the last axis of f32 rows of at least ``ARGMAX_VECTORS``
    vectors (fewer take longer in one pass than in the definition's two) whose every index an
    f32 holds."""
    from lpu.dsl import dialect as D
    from lpu.dsl import types as T

    args = [op for op in module.walk() if isinstance(op, (D.ArgmaxOp, D.ArgminOp))]
    return bool(args) and all(
        T.elem_of(op.input.type) == "f32" and len(T.shape_of(op.input.type)) >= 1
        and D.get_int(op, "axis", -1) % len(T.shape_of(op.input.type)) == len(T.shape_of(op.input.type)) - 1
        and ARGMAX_VECTORS <= -(-T.shape_of(op.input.type)[-1] // cfg.lanes) < (1 << 24) // cfg.lanes for op in args)


def _looked_up(use) -> bool:
    """A use that reads a tensor only through run-time slices (or at compile time: a transpose
    of a constant is done by the compiler), so the tensor can be laid out as a gather table."""
    from lpu.dsl import dialect as D

    op = use.operation
    return (isinstance(op, D.SliceOp) and use.index == 0 and len(op.operands) > 1) or isinstance(op, D.TransposeOp)


def _schedule(items: list, keep: set, cfg, mutable: set | None = None) -> tuple[list, list, int]:
    """Schedules the lowered items; a called kernel (``lower_call.KernelCall``) cuts them: the
    items before it end before its cycle 0, those after it start when it has ended. Returns
    the scheduled instructions, the kernels' instructions (shifted to where they run; their
    SRAM tensors are not the code generator's to reuse) and the length."""
    from lpu.dsl.codegen.template import TemplateCall

    segments: list[tuple[list, KernelCall | TemplateCall | None]] = [([], None)]
    for it in items:
        if isinstance(it, (KernelCall, TemplateCall)):
            segments[-1] = (segments[-1][0], it)
            segments.append(([], None))
        else:
            segments[-1][0].append(it)
    # a value read across a cut is read from SRAM: it may not vanish into a chain
    reads = [{v for it in seg for v in _io(it)[0]} for seg, _ in segments] if len(segments) > 1 else [set()]
    insts, spliced, offset = [], [], 0
    for i, (seg, call) in enumerate(segments):
        others = set().union(*reads[:i], *reads[i + 1:])
        sched = schedule_snippets(fuse(seg, keep | others, cfg) if FUSE else seg, cfg, mutable=mutable)
        insts += [dataclasses.replace(x, cycle=x.cycle + offset) for x in sched.insts] if offset else sched.insts
        offset += sched.length
        if isinstance(call, TemplateCall):
            spliced += [dataclasses.replace(x, cycle=x.cycle + offset) for x in call.insts()]
            offset += call.length
        elif call is not None:
            spliced += [dataclasses.replace(x, cycle=x.cycle + offset) for x in call.kernel.insts]
            offset += call.kernel.length
    return insts, spliced, offset

