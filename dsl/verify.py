"""Verification of a ``df`` module: every op's verifier, each failure a diagnostic at the op's
``.lpu`` location (re-exported by ``lpu.dsl.frontend``, whose API it is part of).

A module of 50,000 ops has a few dozen distinct op signatures (class, operand and result types,
attributes); an op whose verifier looks at nothing else is verified once per signature.
"""

from __future__ import annotations

from functools import lru_cache

from xdsl.dialects.builtin import FileLineColLoc, ModuleOp
from xdsl.ir import Block, Operation
from xdsl.utils.exceptions import VerifyException

from lpu.diagnostics import Diagnostic, DiagnosticError, SourceLoc, SourceManager, error
from lpu.dsl import dialect as D
from lpu.dsl import types as T

MAX_ERRORS = 20
_MISSING = object()


def loc_of(op: Operation) -> SourceLoc | None:
    """The ``.lpu`` location an op carries (its own, or the one of the op a rewrite replaced)."""
    loc = op.location
    if isinstance(loc, FileLineColLoc):
        return SourceLoc(loc.filename.data, loc.line.data, loc.column.data, len(op.name) - 3)
    parent = op.parent_op()
    return loc_of(parent) if parent is not None else None


#: traits whose verifiers (if any) look at nothing but the op itself
_LOCAL_TRAITS = ("Pure", "DfCanonicalization", "ConstantLike", "HasFolder")


@lru_cache(maxsize=None)
def _verifies_locally(cls) -> bool:
    """Whether an op's verifier depends only on its class, operand and result types and
    attributes: no regions, no symbol lookups, no parent or position checks (terminators)."""
    return (issubclass(cls, D.DfOp) and cls.SYMBOL is None and not cls.get_irdl_definition().regions
            and cls not in (D.CallOp, D.GetOp) and all(type(t).__name__ in _LOCAL_TRAITS for t in cls.traits))


def _verify_message(op: Operation) -> str | None:
    try:
        op.verify_()
    except VerifyException as e:
        message = str(e)
        if not message.startswith(f"'{op.name}'"):
            message = f"'{op.name}' op {message}"
        return message
    return None


def nested_ops(root: Operation) -> list[Operation]:
    """The ops inside ``root`` in ``walk()`` order (pre-order), without its nested generators."""
    out: list[Operation] = []

    def add(block: Block) -> None:
        for op in block.ops:
            out.append(op)
            for region in op.regions:
                for inner in region.blocks:
                    add(inner)

    for region in root.regions:
        for block in region.blocks:
            add(block)
    return out


def verify_diagnostics(module: ModuleOp) -> list[Diagnostic]:
    """Every op's verifier, each failure a diagnostic at the op's ``.lpu`` location.

    A module of 50,000 ops has a few dozen distinct op signatures (class, operand and result
    types, attributes): an op whose verifier looks at nothing else is verified once per
    signature, and the outcome reused for every op that shares it."""
    diags = verify_ops(nested_ops(module))
    if len(diags) >= MAX_ERRORS:
        diags.append(error("too many errors emitted, stopping now"))
    return diags


class VerifyMemo:
    """What ``verify_ops`` learnt about op signatures, to share between calls on parts of one
    module (an interner keeps what it has seen alive: make one per check, not per program)."""

    def __init__(self) -> None:
        self.outcome: dict[tuple, str | None] = {}
        self.intern = T.Interner()


def verify_ops(ops: list[Operation], limit: int = MAX_ERRORS, memo: VerifyMemo | None = None) -> list[Diagnostic]:
    """The verifier diagnostics of ``ops`` (in order), at most ``limit`` of them."""
    diags: list[Diagnostic] = []
    memo = memo or VerifyMemo()
    outcome, intern = memo.outcome, memo.intern
    for op in ops:
        cls = type(op)
        if _verifies_locally(cls):
            key = (cls, *[intern(v.type) for v in op.operands], None, *[intern(r.type) for r in op.results],
                   intern.attrs(op.attributes), intern.attrs(op.properties))
            message = outcome.get(key, _MISSING)
            if message is _MISSING:
                message = outcome[key] = _verify_message(op)
        else:
            message = _verify_message(op)
        if message is not None:
            diags.append(error(message, loc_of(op)))
            if len(diags) >= limit:
                break
    return diags


def verify_module(module: ModuleOp, sources: SourceManager | None = None) -> None:
    """Raise ``DiagnosticError`` with every verifier failure (``sources``, if given, receives
    nothing: it is the caller's, for printing the diagnostics with their source lines)."""
    diags = verify_diagnostics(module)
    if diags:
        raise DiagnosticError(diags)
