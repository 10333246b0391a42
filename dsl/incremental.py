"""Incremental checking of a dataflow file (the language server's as-you-type diagnostics):
``check_module``'s result, re-doing only what an edit can change.

A file is a sequence of top-level items, each ending with a newline. It is cut into its
``func`` blocks (a header line to the line where its braces close) and the *top level*
(everything else: target, tensors, externs, kernels), which is parsed as one text with the
function lines blanked. Each function is parsed on its own, at its own line numbers, by the
same front end (``lpu.dsl.frontend._parse``), given what the whole file would have given it:
the symbols defined above it and the result types every function header declares. What a
function's statements can read of the rest of the file is exactly the symbols its text names
(``@name``), so a function's parse is cached under its text, its first line and what those
names stand for; the verifier's result likewise, under what those names stand for in the
whole module (a changed signature re-checks the functions that call it, and only those).

The result equals ``check_module`` on the whole text: diagnostics in the same order, the same
ops and the same source index. Whatever this cannot reproduce exactly falls back to
``check_module``: a syntax error anywhere (its recovery drops lines file-wide), a symbol
defined twice across items, braces that do not close, a block that is not one function.
``tests/test_dsl_incremental.py`` compares the two on random edit sequences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from xdsl.dialects.builtin import ModuleOp, StringAttr

from lpu.diagnostics import Diagnostic, error
from lpu.dsl import dialect as D
from lpu.dsl import frontend as F
from lpu.dsl.verify import MAX_ERRORS, VerifyMemo, nested_ops, verify_ops
from lpu.perf import without_gc

_FUNC_RE = re.compile(r"[ \t]*func[ \t]*@([A-Za-z_][A-Za-z0-9_.$]*)")
_KERNEL_RE = re.compile(r"[ \t]*(?:global[ \t]+)?kernel\b")
_SYMREF_RE = re.compile(r"@([A-Za-z_][A-Za-z0-9_.$]*)")
_REST_RE = re.compile(r"[ \t\f\r]*(?://.*)?")


@dataclass(slots=True)
class FuncBlock:
    start: int  # 1-based line of the ``func`` header
    end: int  # 1-based line of its closing brace
    name: str
    text: str


def _close(lines: list[str], i: int, nested: bool) -> int | None:
    """The 0-based line where the braces opened on line ``i`` close (``nested``: counting
    nested pairs, as in a function; else at the first '}', as in a kernel), outside strings
    and comments; None if they never do or the closing line goes on after the brace."""
    depth, opened = 0, False
    for j in range(i, len(lines)):
        text, k, n = lines[j], 0, len(lines[j])
        while k < n:
            c = text[k]
            if c == '"':
                k += 1
                while k < n and text[k] != '"':
                    k += 2 if text[k] == "\\" else 1
            elif c == "/" and text.startswith("//", k):
                break
            elif c == "{":
                depth, opened = depth + 1, True
            elif c == "}" and opened:
                depth -= 1
                if depth == 0 or not nested:
                    return j if _REST_RE.fullmatch(text, k + 1) else None
            k += 1
    return None


def split_functions(lines: list[str]) -> list[FuncBlock] | None:
    """The file's ``func`` blocks, in order (kernels are skipped whole); None when a block's
    braces do not close cleanly."""
    out: list[FuncBlock] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        m = _FUNC_RE.match(line)
        if m is not None:
            end = _close(lines, i, nested=True)
            if end is None:
                return None
            out.append(FuncBlock(i + 1, end + 1, m.group(1), "\n".join(lines[i:end + 1]) + "\n"))
            i = end + 1
        elif _KERNEL_RE.match(line):
            end = _close(lines, i, nested=False)
            if end is None:
                return None
            i = end + 1
        else:
            i += 1
    return out


def _fingerprint(op) -> tuple | None:
    """What a statement can learn about a symbol (its kind and type)."""
    if op is None:
        return None
    if isinstance(op, D.FuncOp):  # (its symbol parameters are part of its signature)
        return ("func", op.function_type, tuple(op.sym_param_list()), tuple(op.sym_param_positions()))
    if isinstance(op, (D.DataOp, D.ReserveOp)):
        return (op.name, op.type)
    return (op.name,)


@dataclass(slots=True)
class _Func:
    op: D.FuncOp
    index: F.SourceIndex
    diags: list[Diagnostic]
    refs: tuple[str, ...]
    verify_key: tuple | None = None
    verify_diags: list[Diagnostic] = field(default_factory=list)


@dataclass(slots=True)
class _Top:
    text: str
    ops: list
    index: F.SourceIndex
    diags: list[Diagnostic]
    symbols: dict
    target: tuple | None


class _Fallback(Exception):
    """This version cannot be checked piecewise exactly: check the whole text."""


class IncrementalChecker:
    """Checks successive versions of one file, reusing the functions an edit did not touch.
    ``reparsed`` and ``reverified`` count the functions the last check did anew;
    ``incremental`` is False when it had to check the whole text."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._funcs: dict[tuple, _Func] = {}
        self._top: _Top | None = None
        self.reparsed = self.reverified = 0
        self.incremental = False

    @without_gc
    def check(self, text: str) -> tuple[ModuleOp | None, list[Diagnostic]]:
        if not text.endswith("\n"):
            text += "\n"
        self.reparsed = self.reverified = 0
        try:
            result = self._check(text)
            self.incremental = True
            return result
        except Exception:  # noqa: BLE001 - _Fallback, or anything unforeseen: the whole text is
            self._funcs, self._top = {}, None  # always right (the tests require the piecewise path too)
            self.incremental = False
            return F.check_module(text, self.file)

    # --- parsing ------------------------------------------------------------------------------
    def _top_level(self, lines: list[str], blocks: list[FuncBlock]) -> _Top:
        top_lines = list(lines)
        for b in blocks:
            top_lines[b.start - 1:b.end] = [""] * (b.end - b.start + 1)
        text = "\n".join(top_lines) + "\n"
        if self._top is not None and self._top.text == text:
            return self._top
        module, build, diags = F._parse(text, self.file)
        if module is None or len(diags) != len(build.diags):  # a syntax error
            raise _Fallback
        ops = list(module.ops)
        if any(isinstance(op, D.FuncOp) for op in ops):  # a function the split did not see
            raise _Fallback
        for op in ops:
            op.detach()
        return _Top(text, ops, build.index, list(build.diags), dict(build.symbols), build.target_decl)

    def _function(self, b: FuncBlock, above: dict, signatures: dict, cache: dict) -> _Func:
        refs = tuple(sorted(set(_SYMREF_RE.findall(b.text))))
        context = tuple((name, _fingerprint(above.get(name)), tuple(signatures.get(name, ()))) for name in refs)
        key = (b.text, b.start, context)
        entry = self._funcs.get(key) or cache.get(key)
        if entry is None:
            self.reparsed += 1
            symbols = {name: above[name] for name in refs if name in above}
            module, build, diags = F._parse("\n" * (b.start - 1) + b.text, self.file, signatures=signatures,
                                            symbols=symbols)
            if module is None or len(diags) != len(build.diags):
                raise _Fallback
            ops = list(module.ops)
            if len(ops) != 1 or not isinstance(ops[0], D.FuncOp) or ops[0].sym_name.data != b.name:
                raise _Fallback
            ops[0].detach()
            entry = _Func(ops[0], build.index, list(build.diags), refs)
        cache[key] = entry
        return entry

    def _check(self, text: str) -> tuple[ModuleOp, list[Diagnostic]]:
        lines = text.split("\n")[:-1]
        blocks = split_functions(lines)
        if not blocks:
            raise _Fallback
        top = self._top_level(lines, blocks)
        names = [b.name for b in blocks]
        if len(set(names)) != len(names) or set(names) & set(top.index.symbol_defs):
            raise _Fallback  # a redefinition across items: its note points into another item
        signatures = F.signatures_of(text)

        # the items in file order, each function seeing the symbols defined above it
        top_by_line = sorted(((F.loc_of(op).line, op) for op in top.ops), key=lambda t: t[0])
        above: dict = {}
        funcs: list[tuple[FuncBlock, _Func]] = []
        cache: dict[tuple, _Func] = {}
        t = 0
        for b in blocks:
            while t < len(top_by_line) and top_by_line[t][0] < b.start:
                self._define(top_by_line[t][1], top, above)
                t += 1
            entry = self._function(b, above, signatures, cache)
            above[b.name] = entry.op
            funcs.append((b, entry))
        self._funcs, self._top = cache, top

        ordered = sorted([(F.loc_of(op).line, 0, op, None) for op in top.ops]
                         + [(b.start, 1, e.op, e) for b, e in funcs], key=lambda t: (t[0], t[1]))
        module = ModuleOp([])
        for _line, _kind, op, _entry in ordered:
            if op.parent is not None:
                op.detach()
            module.body.block.add_op(op)
        if top.target is not None:
            module.attributes["df.target"] = StringAttr(top.target[0])

        diags = self._build_diags(top, funcs)
        if not diags:
            diags = self._verify(module, ordered)
        F._INDEX[module] = self._index(top, funcs)
        return module, diags

    @staticmethod
    def _define(op, top: _Top, above: dict) -> None:
        sym = op.attributes.get("sym_name")
        if isinstance(sym, StringAttr) and top.symbols.get(sym.data) is op:
            above[sym.data] = op

    # --- results ------------------------------------------------------------------------------
    @staticmethod
    def _build_diags(top: _Top, funcs: list[tuple[FuncBlock, _Func]]) -> list[Diagnostic]:
        """Name and type errors in the order one parse of the file reports them: item by item."""
        out: list[Diagnostic] = []
        pending = list(top.diags)
        for b, e in funcs:
            while pending and pending[0].loc is not None and pending[0].loc.line < b.start:
                out.append(pending.pop(0))
            out.extend(e.diags)
        return out + pending

    def _verify(self, module: ModuleOp, ordered: list) -> list[Diagnostic]:
        first: dict = {}
        for op in module.ops:
            sym = op.attributes.get("sym_name")
            if isinstance(sym, StringAttr):
                first.setdefault(sym.data, op)
        diags: list[Diagnostic] = []
        memo = VerifyMemo()  # (the functions of a file share most op signatures)
        for _line, _kind, op, entry in ordered:
            if entry is None:
                diags += verify_ops([op, *nested_ops(op)], memo=memo)
                continue
            key = tuple((name, _fingerprint(first.get(name))) for name in entry.refs)
            if entry.verify_key != key:
                self.reverified += 1
                entry.verify_key, entry.verify_diags = key, verify_ops([op, *nested_ops(op)], memo=memo)
            diags += entry.verify_diags
            if len(diags) >= MAX_ERRORS:
                break
        if len(diags) >= MAX_ERRORS:
            diags = diags[:MAX_ERRORS] + [error("too many errors emitted, stopping now")]
        return diags

    def _index(self, top: _Top, funcs: list[tuple[FuncBlock, _Func]]) -> F.SourceIndex:
        index = F.SourceIndex(self.file)
        defs = [*top.index.symbol_defs.items()]
        for _b, e in funcs:
            index.value_defs.update(e.index.value_defs)
            index.value_uses += e.index.value_uses
            index.symbol_uses += e.index.symbol_uses
            index.op_locs.update(e.index.op_locs)
            index.param_defs.update(e.index.param_defs)
            defs += e.index.symbol_defs.items()
        index.symbol_defs = dict(sorted(defs, key=lambda kv: (kv[1].line, kv[1].col)))
        return index
