"""Functions compiled once and called many times: identical layers share one schedule.

A model is the same block (same shapes, different weights) called again and again. The general
path would inline every call and schedule the whole model as one list of snippets; instead a
function called from two or more places that is big enough (``TEMPLATE_OPS`` ops) or takes
symbol parameters is a *template*: compiled once, by the general path, as a function of its
own (``Template``), and each call becomes a barrier item (``TemplateCall``) whose instructions
are the template's, shifted to where the call runs — as a called assembly kernel is spliced in
(``lower_call.py``). Compiling thirty layers costs one layer plus laying out the weights.

How a call meets its template:

- an operand that is a ``get`` of a module tensor at every call (a weight matrix), and every
  symbol parameter, is **bound**: the template's storage for it (slices, rows) is the same at
  every call, its words are counted once per call (``Storage.alloc(copies=…)``), and each
  call's own tensor is laid out exactly so (``instance_tensors``) — the call's instructions
  name it instead of the template's. Timing depends only on slices, so the schedule holds;
- any other operand is **copied** (a ``mov`` a vector) into the template's argument vectors
  before the call, and each result copied out of the template's result vectors after it (the
  next call of the template writes them again).

Templates are cached for the whole compile (``template_cache``), so the chips of a pipeline
that run the same block share one compile too.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np

from lpu.arch.isa import DTYPE_BYTES
from lpu.asm.records import Placement, SymRef, Tensor
from lpu.diagnostics import SourceLoc
from lpu.dsl import dialect as D
from lpu.dsl import types as T
from lpu.dsl.codegen.snippets import Src
from lpu.dsl.codegen.vector import VValue, pack

#: a function called twice or more with at least this many ops (its body as written) is
#: compiled once; smaller ones are inlined, where the scheduler can overlap them with their
#: neighbours (a template call is a barrier)
TEMPLATE_OPS = 16


@dataclass
class Template:
    """A function compiled once (``compiled``: its ``VectorCompiled``) for calls that bind the
    operand positions ``bound`` (to module tensors) and copy the others."""

    name: str
    compiled: object  # general.VectorCompiled
    arg_names: list[str]
    bound: frozenset[int]
    copies: int  # calls its bound storage was counted for

    @property
    def kernel(self):
        return self.compiled.program.kernels[0]

    def bound_symbols(self) -> set[str]:
        """The storage each call has its own of: bound arguments and symbol parameters."""
        return {vec.symbol for i, a in enumerate(self.arg_names) if i in self.bound
                for vec in self.compiled.args[a].vecs} | \
            {vec.symbol for v in self.compiled.params.values() for vec in v.vecs}

    def shared_tensors(self) -> list[Tensor]:
        """The template's tensors every call shares (constants, argument and result vectors,
        its arenas); bound storage is each call's own (``instance_tensors``)."""
        bound = self.bound_symbols()
        return [t for t in self.compiled.program.tensors if t.name not in bound]

    def charge(self, budget, calls: int) -> None:
        """Counts, in a chip's budget, the words the template takes with ``calls`` calls."""
        bound = self.bound_symbols()
        for t in self.compiled.program.tensors:
            budget.add(t.placement.slice, t.words * (calls if t.name in bound else 1))


@dataclass
class TemplateCall:
    """Where a call of a template runs: a barrier with the template's instructions, its
    bound symbols renamed to the call's own tensors."""

    template: Template
    renames: dict[str, str]
    loc: SourceLoc | None = None

    def insts(self) -> list:
        import dataclasses

        out = []
        for x in self.template.kernel.insts:
            if x.args and isinstance(x.args[0], SymRef) and x.args[0].symbol in self.renames:
                ref = x.args[0]
                x = dataclasses.replace(x, args=(SymRef(self.renames[ref.symbol], ref.offset),) + tuple(x.args[1:]))
            out.append(x)
        return out

    @property
    def length(self) -> int:
        return self.template.compiled.cycles


_CACHE: ContextVar[dict | None] = ContextVar("template_cache", default=None)


@contextmanager
def template_cache():
    """Templates compiled inside are kept for the whole block (one compile of a program, all
    its chips)."""
    token = _CACHE.set({})
    try:
        yield
    finally:
        _CACHE.reset(token)


def callees(fn: D.FuncOp) -> dict[str, list]:
    """The functions ``fn`` calls, with their call ops in order."""
    out: dict[str, list] = {}
    for op in fn.body.walk():
        if isinstance(op, D.CallOp):
            out.setdefault(D.get_sym(op, "callee"), []).append(op)
    return out


def candidates(module, fn: D.FuncOp) -> set[str]:
    """The functions ``fn`` calls that are big enough (or take symbol parameters) to be
    compiled once, if they are called twice or more once loops are unrolled."""
    from lpu.dsl.passes.loops import _size

    out = set()
    for name in callees(fn):
        f = D.module_symbol(fn, name)
        if isinstance(f, D.FuncOp) and (_size(f) >= TEMPLATE_OPS or _has_symbol_params(f)):
            out.add(name)
    return out


def _has_symbol_params(f) -> bool:
    return bool(f.attributes.get("sym_params"))


def bound_positions(calls: list) -> frozenset[int]:
    """Operand positions that every call fills with a ``get`` of a module tensor."""
    n = len(calls[0].operands)
    return frozenset(i for i in range(n) if all(isinstance(c.operands[i].owner, D.GetOp) for c in calls))


def template_for(module, name: str, calls: list, cfg, base_dir: str, file: str) -> Template:
    """The template of ``@name`` for ``calls`` (compiled, or from the cache)."""
    from lpu.dsl.codegen.general import compile_general
    from lpu.dsl.interpreter import arg_names, function

    bound = bound_positions(calls)
    cache = _CACHE.get()
    key = (name, bound, cfg.name, base_dir)
    if cache is not None and key in cache and cache[key].copies >= len(calls):
        return cache[key]
    fn = function(module, name)
    names = arg_names(fn)
    compiled = compile_general(module, name, cfg, base_dir, file, prefix=f"{name}_",
                               bound={names[i] for i in bound}, copies=len(calls))
    tpl = Template(name, compiled, names, bound, len(calls))
    if cache is not None:
        cache[key] = tpl
    return tpl


class TemplateLowering:
    """``Lowering``'s part: a call of a template (``lower.Lowering.call``)."""

    def template_call(self, op, tpl: Template, loc) -> None:
        renames: dict[str, str] = {}
        for i, (aname, operand) in enumerate(zip(tpl.arg_names, op.operands)):
            v = tpl.compiled.args[aname]
            if i in tpl.bound:
                renames.update(self.instance_tensors(tpl, v, D.get_sym(operand.owner, "tensor"), loc))
                continue
            x = self.values[operand]
            for a, b in zip(x.vecs, v.vecs):
                self.emit("mov", x.elem, [Src(a, x.elem)], b, loc=loc)
        callee = D.module_symbol(op, tpl.name)
        for (pname, _), sym in zip(callee.sym_param_list(), D.get_syms(op, "sym_args") or []):
            if pname in tpl.compiled.params:  # (a parameter the template never reads or writes has no storage)
                renames.update(self.instance_tensors(tpl, tpl.compiled.params[pname], sym, loc))
        self.snips.append(TemplateCall(tpl, renames, loc))
        for res, out in zip(op.results, tpl.compiled.outs):
            copy = self.temp(out.shape, out.elem, loc)
            self.map1("mov", out, copy, loc)
            self.values[res] = copy

    def instance_tensors(self, tpl: Template, v: VValue, sym: str, loc) -> dict[str, str]:
        """The call's own tensors for a bound operand (``get @sym``) or symbol parameter: the
        module tensor laid out as the template lays its parameter out, one tensor per slice
        (a ``reserve`` without contents); the renames."""
        key = (sym, tpl.name, tuple(vec.symbol for vec in v.vecs[:1]))
        done = self.instances.get(key)
        if done is not None:
            return done
        a = self.weights_of(sym) if isinstance(self.module_op(sym), D.DataOp) else None
        rows = pack(np.asarray(a, dtype=T.dtype(v.elem)), self.lanes) if a is not None else None
        per: dict[str, list] = {}
        for k, vec in enumerate(v.vecs):
            per.setdefault(vec.symbol, []).append((vec.row, k, vec.slice))
        renames = {}
        for tsym, items in per.items():
            items.sort()
            sl = items[0][2]
            name = f"{sym}_{sl.lower()}"
            n = 1
            while name in self.instance_names:
                n += 1
                name = f"{sym}_{sl.lower()}_{n}"
            self.instance_names.add(name)
            image = None
            if rows is not None:
                from lpu.arch.layout import to_sram

                image = to_sram(np.stack([rows[k] for _, k, _ in items]), v.elem, self.lanes)
            w = DTYPE_BYTES[v.elem]
            self.instance_list.append(Tensor(name, v.elem, (len(items), self.lanes), Placement(sl), image, False,
                                             None, len(items) * w))
            renames[tsym] = name
        self.instances[key] = renames
        self.layouts.setdefault(sym, (v, renames))
        return renames


__all__ = ["Template", "TemplateCall", "TemplateLowering", "template_cache", "template_for", "candidates",
           "callees", "TEMPLATE_OPS"]
