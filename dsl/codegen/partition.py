"""Many chips, automatically: a function that does not fit one chip is cut into a pipeline.

``partition(module, name, cfg, chips)`` places the top-level ops of ``@name`` on chips the way
a person would write ``chip = N`` and ``send``/``recv`` by hand (``multichip.py`` compiles the
result):

- the *heavy* ops — calls of functions (a model's blocks) and matmuls — are cut, in program
  order, into consecutive groups, one a chip, each group's SRAM (``footprint``: the tensors its
  ops read, each counted where it is used, a template's own words once a chip) within
  ``FILL`` of the chip's capacity; with ``chips`` given, the groups are balanced over that
  many chips, else as few chips as fit are used;
- ops that only compute from arguments, constants and module tensors that nothing writes
  (a table lookup by the position, a `get` of a weight) are *replicated*: each chip that uses
  one runs its own copy (the host writes arguments to every chip that reads them);
- every other op runs on the chip of its latest operand (values flow forward through the
  pipeline), and a value used on another chip than its producer's is sent there once
  (``send`` after the producer, ``recv`` before the first use).
"""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation

from lpu.arch.isa import DTYPE_BYTES
from lpu.diagnostics import DiagnosticError, error
from lpu.dsl import dialect as D
from lpu.dsl import types as T
from lpu.dsl.codegen.vector import vector_count

#: the share of a chip's SRAM a group's tensors may take (the rest: temporaries, tables, the
#: rounding of each slice's share)
FILL = 0.9


def tensor_words(ty, lanes: int) -> int:
    return vector_count(tuple(T.shape_of(ty)), lanes) * DTYPE_BYTES[T.elem_of(ty)]


def _stored(module: ModuleOp) -> set[str]:
    """Module tensors some op writes (``store``), directly or through a symbol parameter."""
    out = set()
    for op in module.walk():
        if op.name == "df.store":
            out.add(D.get_sym(op, "tensor"))
        if isinstance(op, D.CallOp):
            out.update(D.get_syms(op, "sym_args") or [])
    return out


def _heavy(op: Operation) -> bool:
    return isinstance(op, (D.CallOp, D.MatmulOp))


def _gets(v, out: set) -> None:
    """The ``get``s a value is computed from through light ops (views, casts, lookups): what a
    chip holds to compute it."""
    op = v.owner
    if not isinstance(op, Operation) or _heavy(op):
        return
    if isinstance(op, D.GetOp):
        out.add(op)
        return
    for u in op.operands:
        _gets(u, out)


def footprint(op: Operation, lanes: int, seen: set) -> int:
    """Words of SRAM ``op`` adds to a chip that already holds ``seen`` (tensors and callees,
    updated): the tensors its operands are computed from, the tensors passed for symbol
    parameters, and a callee's own tensors once a chip (an estimate from their shapes)."""
    words = 0
    gets: set = set()
    for v in op.operands:
        _gets(v, gets)
    for g in gets:
        sym = D.get_sym(g, "tensor")
        if sym not in seen:
            seen.add(sym)
            words += tensor_words(g.result.type, lanes)
    if isinstance(op, D.CallOp):
        for sym in D.get_syms(op, "sym_args") or []:
            t = D.module_symbol(op, sym)
            if t is not None and hasattr(t, "type") and sym not in seen:
                seen.add(sym)
                words += tensor_words(t.type, lanes)
        name = D.get_sym(op, "callee")
        f = D.module_symbol(op, name)
        if isinstance(f, D.FuncOp) and ("@" + name) not in seen:  # its own constants, once a chip
            seen.add("@" + name)
            for inner in f.body.walk():
                if isinstance(inner, D.GetOp):
                    t = D.module_symbol(f, D.get_sym(inner, "tensor"))
                    if isinstance(t, (D.DataOp, D.ReserveOp)):
                        words += tensor_words(t.type, lanes)
    return words


def needs_chips(module: ModuleOp, name: str, cfg) -> int:
    """How many chips ``@name`` needs by its tensors' words (1 if it fits one)."""
    from lpu.dsl.interpreter import function

    groups = _groups(function(module, name), cfg, None)
    return len(groups)


def _groups(fn: D.FuncOp, cfg, chips: int | None) -> list[list[Operation]]:
    lanes = cfg.lanes
    capacity = len(cfg.mem_slices) * cfg.words * FILL
    heavy = [op for op in fn.body.block.ops if _heavy(op)]
    if not heavy:
        return [[]]
    def greedy(limit: float) -> list[list[Operation]] | None:
        """Consecutive groups, each holding at most ``limit`` words (None if one op alone
        needs more)."""
        groups: list[list[Operation]] = [[]]
        seen: set = set()
        used = 0.0
        for op in heavy:
            trial = set(seen)
            w = footprint(op, lanes, trial)
            if groups[-1] and used + w > limit:
                groups.append([])
                trial, used = set(), 0.0
                w = footprint(op, lanes, trial)
            if w > limit:
                return None
            groups[-1].append(op)
            seen, used = trial, used + w
        return groups

    groups = greedy(capacity)
    if groups is None:
        op = next(op for op in heavy if footprint(op, lanes, set()) > capacity)
        raise DiagnosticError(error(f"'{op.name.removeprefix('df.')}' needs {footprint(op, lanes, set()):,} words of "
                                    f"SRAM, more than {FILL:.0%} of one chip's {len(cfg.mem_slices) * cfg.words:,}",
                                    _loc(op)))
    if chips is None:
        return groups
    if len(groups) > chips:
        raise DiagnosticError(error(f"the function needs {len(groups)} chips' SRAM, more than the {chips} asked for",
                                    _loc(fn)))
    lo, hi = 0, int(capacity)  # the least limit that still fits the chips: balanced groups
    while lo < hi:
        mid = (lo + hi) // 2
        g = greedy(mid)
        if g is not None and len(g) <= chips:
            hi = mid
        else:
            lo = mid + 1
    groups = greedy(lo)
    while len(groups) < chips and any(len(g) > 1 for g in groups):  # more chips than needed: split further
        i = max(range(len(groups)), key=lambda k: (len(groups[k]), -k))
        g = groups[i]
        groups[i:i + 1] = [g[:len(g) // 2], g[len(g) // 2:]]
    return groups


def _loc(op):
    from lpu.dsl.frontend import loc_of

    return loc_of(op)


def partition(module: ModuleOp, name: str, cfg, chips: int | None = None) -> ModuleOp:
    """A clone of ``module`` with ``@name``'s ops placed on chips (module doc)."""
    from lpu.dsl.interpreter import function

    module = module.clone()
    fn = function(module, name)
    if any(D.get_int(op, "chip") is not None or isinstance(op, (D.SendOp, D.RecvOp)) for op in fn.body.block.ops):
        raise DiagnosticError(error("the function already places ops on chips ('chip = N', send/recv); "
                                    "compile it without --chips", _loc(fn)))
    groups = _groups(fn, cfg, chips)
    n = len(groups) if chips is None else chips
    chip_of_heavy = {op: c for c, g in enumerate(groups) for op in g}
    stored = _stored(module)
    args = set(fn.body.block.args)
    block = fn.body.block
    ops = list(block.ops)
    ret = ops[-1]

    def replicable(op) -> bool:
        if _heavy(op) or isinstance(op, D.ReturnOp) or op.name == "df.store":
            return False
        if isinstance(op, D.GetOp):
            return D.get_sym(op, "tensor") not in stored
        return all(v in args or v.owner in rep for v in op.operands)

    rep: set = set()
    for op in ops:
        if replicable(op):
            rep.add(op)
    placed: dict = {}  # original value -> chip it is computed on (non-replicated)
    copies: dict = {}  # (original value, chip) -> the value on that chip
    sent: dict = {}  # (original value, chip) -> the received value

    def on_chip(v, c, before):
        """``v`` as a value of chip ``c``, for an op inserted before ``before``."""
        if v in args:
            return v
        if (v, c) in copies:
            return copies[(v, c)]
        op = v.owner
        if op in rep:  # a copy of the op (and of what it needs) on chip c
            new_operands = [on_chip(u, c, before) for u in op.operands]
            clone = op.clone()
            for i, u in enumerate(new_operands):
                clone.operands[i] = u
            clone.attributes["chip"] = D.int_attr(c)
            block.insert_op_before(clone, before)
            for r_old, r_new in zip(op.results, clone.results):
                copies[(r_old, c)] = r_new
            return copies[(v, c)]
        src = placed[v]
        if src == c:
            return v
        if (v, c) not in sent:  # the k-th send from a to b pairs with b's k-th recv from a: adjacent
            send = D.SendOp.create(operands=[v], attributes={"to": D.int_attr(c), "chip": D.int_attr(src)})
            recv = D.RecvOp.create(attributes={"from": D.int_attr(src), "chip": D.int_attr(c)}, result_types=[v.type])
            send.location = recv.location = op.location
            block.insert_op_before(send, before)
            block.insert_op_before(recv, before)
            sent[(v, c)] = recv.results[0]
        return sent[(v, c)]

    last = 0
    for op in ops:
        if op in rep or op is ret:
            continue
        if op in chip_of_heavy:
            c = chip_of_heavy[op]
        else:
            srcs = [placed[v] for v in op.operands if v not in args and v.owner not in rep and v in placed]
            c = max(srcs) if srcs else last
        last = max(last, c)
        for i, v in enumerate(list(op.operands)):
            nv = on_chip(v, c, op)
            if nv is not v:
                op.operands[i] = nv
        op.attributes["chip"] = D.int_attr(c)
        for r in op.results:
            placed[r] = c
    for i, v in enumerate(list(ret.operands)):  # results stay on the chip that computes them
        if v.owner in rep:
            ret.operands[i] = on_chip(v, n - 1, ret)
    for op in reversed(ops):  # the replicated originals: every use now reads a chip's copy
        if op in rep:
            op.detach()
            op.erase()
    return module
