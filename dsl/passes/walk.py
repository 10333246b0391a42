"""Single-walk drivers for the df passes: ``canonicalize``, ``cse``, ``dce`` and the driver of
``df-decompose``.

xDSL's generic drivers (``PatternRewriteWalker``'s worklist, trait and memory-effect queries
per op, liveness propagation) cost tens of microseconds per op and dominated the default
pipeline on a 50,000-op module. In ``df``, what they compute is simple: an op is removable
when it is ``Pure`` and unused (every other op has unknown effects, is a terminator or a
symbol), and rewrites only ever replace an op by ops inserted before it. So each pass here is
one walk in block order, with the same result as xDSL's pass (``tests/test_dsl_passes.py``
compares the printed IR of both on every example and on the benchmark's module).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, Region
from xdsl.passes import ModulePass
from xdsl.traits import IsolatedFromAbove, IsTerminator, Pure, SymbolOpInterface

from lpu.dsl.dialect import set_name
from lpu.dsl.types import Interner


@lru_cache(maxsize=None)
def _pure(cls) -> bool:
    """No memory effects and not a terminator or symbol (xDSL's ``would_be_trivially_dead``):
    removable when unused, mergeable with an equal op."""
    traits = getattr(cls, "traits", ())
    return any(isinstance(t, Pure) for t in traits) and \
        not any(isinstance(t, (IsTerminator, SymbolOpInterface)) for t in traits)


@lru_cache(maxsize=None)
def _terminator(cls) -> bool:
    return any(isinstance(t, IsTerminator) for t in getattr(cls, "traits", ()))


@lru_cache(maxsize=None)
def _isolated(cls) -> bool:
    traits = getattr(cls, "traits", None)
    return traits is None or any(isinstance(t, IsolatedFromAbove) for t in traits)


def _unused(op: Operation) -> bool:
    for r in op.results:
        if r.first_use is not None:
            return False
    return True


class DirectRewriter:
    """The part of xDSL's ``PatternRewriter`` the df patterns use (``replace``), applied at
    once: new ops go before the replaced op, its uses move to the new values (with xDSL's
    name-hint rules), it is erased. ``added`` collects the new ops, for the walk to visit."""

    def __init__(self) -> None:
        self.added: list[Operation] = []
        self.has_done_action = False

    def replace(self, op: Operation, new_ops, new_results=None, safe_erase: bool = True) -> None:
        if isinstance(new_ops, Operation):
            new_ops = [new_ops]
        new_ops = list(new_ops)
        if new_results is None:
            new_results = list(new_ops[-1].results) if new_ops else []
        block = op.parent_block()
        if new_ops:
            block.insert_ops_before(new_ops, op)
        for old, new in zip(op.results, new_results, strict=True):
            old.replace_all_uses_with(new)
            if new is not None and not new.name_hint:
                set_name(new, old.name_hint)
        if len(new_results) == 1 and new_results[0] is not None and new_results[0].name_hint is not None:
            hint = new_results[0].name_hint
            for new_op in new_ops:
                for r in new_op.results:
                    if not r.name_hint:
                        set_name(r, hint)
        block.erase_op(op, safe_erase=safe_erase)
        self.added.extend(new_ops)
        self.has_done_action = True


def _blocks(region: Region):
    yield from region.blocks


def rewrite_in_order(module: ModuleOp, patterns, *, recurse_into_new: bool = True, drop_dead: bool = False) -> bool:
    """Applies the first matching pattern to each op, in block order (nested regions first
    walked as they come); new ops are visited too when ``recurse_into_new``. With
    ``drop_dead``, unused pure ops are erased where the walk meets them. Returns whether
    anything changed."""
    changed = False
    by_class: dict[type, list] = {}

    def visit(op: Operation) -> None:
        nonlocal changed
        cls = type(op)
        if drop_dead and _pure(cls) and _unused(op):
            op.parent_block().erase_op(op)
            changed = True
            return
        for region in op.regions:
            for block in region.blocks:
                walk_block(block)
        applicable = by_class.get(cls)
        if applicable is None:  # a pattern may name the op classes it matches (ROOTS)
            applicable = by_class[cls] = [p for p in patterns if issubclass(cls, getattr(p, "ROOTS", object))]
        for pattern in applicable:
            rewriter = DirectRewriter()
            pattern.match_and_rewrite(op, rewriter)
            if rewriter.has_done_action:
                changed = True
                if recurse_into_new:
                    for new in rewriter.added:
                        if new.parent is not None:
                            visit(new)
                return

    def walk_block(block: Block) -> None:
        op = block.first_op
        while op is not None:
            nxt = op.next_op
            visit(op)
            op = nxt

    for region in module.regions:
        for block in region.blocks:
            walk_block(block)
    return changed


def drop_dead_ops(root: Operation) -> bool:
    """Erases every unused pure op, users before their operands' definers (one reverse walk
    per block: an op dies when its last user does). What xDSL's ``region_dce`` computes for
    df, where only pure ops are ever removable."""
    changed = False

    def sweep(block: Block) -> None:
        nonlocal changed
        op = block.last_op
        while op is not None:
            prev = op.prev_op
            for region in op.regions:
                for inner in region.blocks:
                    sweep(inner)
            if _pure(type(op)) and _unused(op):
                block.erase_op(op)
                changed = True
            op = prev

    for region in root.regions:
        for block in region.blocks:
            sweep(block)
    return changed


@dataclass(frozen=True)
class CanonicalizePass(ModulePass):
    """The df canonicalization patterns (``lpu.dsl.passes.canonical``) and removal of unused
    pure ops, to a fixed point."""

    name = "canonicalize"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from lpu.dsl.passes.canonical import PATTERNS
        # One walk reaches the fixed point xDSL's driver iterates to: a df pattern looks at an
        # op and the definers of its operands, which come before it (or enclose it), and the
        # walk visits the ops a rewrite makes before going on.
        rewrite_in_order(op, PATTERNS, drop_dead=True)
        drop_dead_ops(op)


def _cse_key(op: Operation, intern: Interner) -> tuple:
    return (op.name, tuple(op.operands), tuple(intern(r.type) for r in op.results),
            intern.attrs(op.attributes), intern.attrs(op.properties))


@dataclass(frozen=True)
class CsePass(ModulePass):
    """Common subexpression elimination: a pure op equal to one before it in scope (same op,
    operands, result types and attributes) is replaced by it; unused pure ops met on the way
    are erased. Scopes as in xDSL's ``cse``: a nested single-block region sees the ops above
    it, an isolated one (a ``func``) starts afresh."""

    name = "cse"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        erase: list[Operation] = []
        intern = Interner()

        def region(r: Region, scopes: list[dict]) -> None:
            if len(r.blocks) != 1:
                return
            scopes.append({})
            block = r.blocks[0]
            for o in block.ops:
                if o.regions:
                    inner = [] if _isolated(type(o)) else scopes
                    for nested in o.regions:
                        region(nested, inner)
                simplify(o, scopes)
            scopes.pop()

        def simplify(o: Operation, scopes: list[dict]) -> None:
            cls = type(o)
            if _terminator(cls) or not _pure(cls):
                return
            if _unused(o):
                erase.append(o)
                return
            if any(len(r.blocks) > 1 for r in o.regions):
                return
            key = _cse_key(o, intern)
            for scope in reversed(scopes):
                existing = scope.get(key)
                if existing is not None:
                    for old, new in zip(o.results, existing.results):
                        old.replace_all_uses_with(new)
                    erase.append(o)
                    return
            scopes[-1][key] = o

        for r in op.regions:
            region(r, [])
        for o in reversed(erase):
            if o.parent is not None:
                o.parent_block().erase_op(o)


@dataclass(frozen=True)
class DcePass(ModulePass):
    """Dead code elimination: every unused pure op (to a fixed point, in one reverse walk)."""

    name = "dce"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        drop_dead_ops(op)
