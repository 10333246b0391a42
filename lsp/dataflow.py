"""The dataflow level for the language server: ``func`` bodies over tensors, read by the same
front end as ``lpu-opt`` (``lpu.dsl.frontend.check_module``: the same diagnostics), with hover
types, definitions and references of SSA values and symbols from its ``SourceIndex``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lsprotocol import types

from lpu.diagnostics import Diagnostic
from lpu.lsp.asm_features import TOKEN_TYPES, _code_end, _comment_start, comment_folds, encode_tokens
from lpu.lsp.positions import Lines, to_lsp

SOURCE = "lpu-opt"
KEYWORDS = ("target", "data", "reserve", "extern", "kernel", "global", "func", "in", "at", "load", "for", "to",
            "step", "iter")
_TOKEN_RE = re.compile(r'(?P<comment>//.*)|(?P<string>hex"[0-9a-fA-F]*"|"(?:[^"\\\n]|\\.)*")'
                       r"|(?P<type>tensor<[^>\s]*>)|(?P<value>%[A-Za-z0-9_$.-]+)|(?P<sym>@[A-Za-z_][A-Za-z0-9_.$]*)"
                       r"|(?P<cycle>@[0-9]+)|(?P<num>0x[0-9a-fA-F]+|[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)"
                       r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*)")


def available() -> bool:
    try:
        from lpu.dsl import frontend  # noqa: F401
    except Exception:  # noqa: BLE001 - the dataflow level is optional to the server
        return False
    return True


@dataclass
class DataflowSnapshot:
    file: str
    text: str
    lines: list[str]
    module: object | None
    diagnostics: list[Diagnostic]
    index: object | None = None
    ops_by_line: dict[int, list] = field(default_factory=dict)  # line -> [(SourceLoc of name, op)]
    symbol_ops: dict[str, object] = field(default_factory=dict)
    incremental: bool = False  # False when the whole text had to be checked
    reparsed: int = 0  # functions parsed anew by this analysis
    rechecked: int = 0  # functions verified anew


class DataflowDocument:
    """Analyses successive versions of one document; an edit re-parses and re-verifies only
    the functions it can affect (lpu.dsl.incremental: the same results as check_module)."""

    def __init__(self, file: str) -> None:
        from lpu.dsl.incremental import IncrementalChecker

        self.file = file
        self.checker = IncrementalChecker(file)

    def analyze(self, text: str) -> DataflowSnapshot:
        from lpu.dsl import frontend

        module, diags = self.checker.check(text)
        lines = (text if text.endswith("\n") else text + "\n").split("\n")[:-1]
        snap = DataflowSnapshot(self.file, text, lines, module, list(diags), incremental=self.checker.incremental,
                                reparsed=self.checker.reparsed, rechecked=self.checker.reverified)
        if module is not None:
            snap.index = frontend.source_index(module)
            if snap.index is not None:
                for op, loc in snap.index.op_locs.items():
                    snap.ops_by_line.setdefault(loc.line, []).append((loc, op))
            for op in module.ops:
                name = op.attributes.get("sym_name")
                if name is not None:
                    snap.symbol_ops.setdefault(name.data, op)
        snap.diagnostics.sort(key=lambda d: (d.loc.line, d.loc.col) if d.loc is not None else (0, 0))
        return snap


def _is_param(target) -> bool:
    from lpu.dsl.frontend import SymbolParam

    return isinstance(target, SymbolParam)


def _type_text(t) -> str:
    from lpu.dsl import types as T

    try:
        return T.type_text(t)
    except Exception:  # noqa: BLE001 - a type outside the language (a verifier error says so)
        return str(t)


def _op_doc(op) -> str:
    """The first paragraph of an op's (or op class's) docstring."""
    cls = op if isinstance(op, type) else type(op)
    doc = (cls.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(doc.split())


class DataflowView:
    def __init__(self, snap: DataflowSnapshot, uri: str, encoding: str = "utf-16") -> None:
        self.snap = snap
        self.uri = uri
        self.lines = Lines(snap.lines, encoding)

    def diagnostics(self) -> list[types.Diagnostic]:
        return [to_lsp(d, self.lines, self.snap.file, self.uri, SOURCE) for d in self.snap.diagnostics]

    def _target(self, pos: types.Position):
        line, col = self.lines.char(pos)
        index = self.snap.index
        if index is None:
            return None, line, col
        found = index.at(line, col)
        if found is None and col > 1:
            found = index.at(line, col - 1)  # the cursor just after a name
        return found, line, col

    def _loc_range(self, loc) -> types.Range:
        return self.lines.range(loc.line, loc.col, loc.length)

    # --- hover --------------------------------------------------------------------------------
    def hover(self, pos: types.Position) -> types.Hover | None:
        target, line, col = self._target(pos)
        index = self.snap.index
        if target is not None and index is not None:
            if isinstance(target, str):
                text = self._symbol_hover(target)
                loc = next((l for l, s in [*((l, s) for s, l in index.symbol_defs.items()), *index.symbol_uses]
                            if s == target and l.line == line and l.col <= col <= l.col + l.length), None)
            elif _is_param(target):
                d = index.param_defs.get(target)
                text = (f"**@{target.name}** — symbol parameter of @{target.func}\n\n`{_type_text(target.type)}`"
                        "\n\na reference to an SRAM tensor: each call passes a data or reserve tensor "
                        "(or its caller's own symbol parameter) of this type")
                if d is not None:
                    text += f", defined on line {d.line}"
                loc = next((l for l, s in [*((l, p) for p, l in index.param_defs.items()), *index.symbol_uses]
                            if s is target and l.line == line and l.col <= col <= l.col + l.length), None)
            else:
                name = next((l for v, l in index.value_defs.items() if v is target), None)
                shown = self.lines.text(name.line - 1)[name.col - 1:name.col - 1 + name.length] if name else "value"
                text = f"**{shown}** : `{_type_text(target.type)}`"
                owner = getattr(target, "op", None)
                if owner is not None and owner.name.startswith("df."):
                    text += f"\n\nthe result of `{owner.name[3:]}`"
                elif owner is None:
                    text += "\n\nan argument of the function (or a loop's induction/iteration value)"
                if name is not None:
                    text += f", defined on line {name.line}"
                loc = next((l for l, v in [*((l, v) for v, l in index.value_defs.items()), *index.value_uses]
                            if v is target and l.line == line and l.col <= col <= l.col + l.length), None)
            if text is None:
                return None
            rng = self._loc_range(loc) if loc is not None else None
            return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, text), rng)
        for loc, op in self.snap.ops_by_line.get(line, ()):
            if loc.col <= col <= loc.col + loc.length:
                results = ", ".join(_type_text(r.type) for r in op.results)
                text = f"```lpu\n{op.name[3:] if op.name.startswith('df.') else op.name}\n```"
                if _op_doc(op):
                    text += f"\n\n{_op_doc(op)}"
                if results:
                    text += f"\n\nresult: `{results}`"
                return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, text), self._loc_range(loc))
        return None

    def _symbol_hover(self, name: str) -> str | None:
        op = self.snap.symbol_ops.get(name)
        if op is None:
            return f"**@{name}**"
        kind = op.name[3:] if op.name.startswith("df.") else op.name
        text = f"**@{name}** — {kind}"
        ftype = op.attributes.get("function_type")
        if ftype is not None:
            ins = [_type_text(t) for t in ftype.inputs.data]
            if getattr(op, "sym_param_list", None) is not None and op.sym_param_list():
                from lpu.dsl.dialect import merge_positions
                ins = merge_positions(ins, [f"@{n}: {_type_text(t)}" for n, t in op.sym_param_list()],
                                      op.sym_param_positions())
            ins = ", ".join(ins)
            outs = ", ".join(_type_text(t) for t in ftype.outputs.data)
            text += f"\n\n`({ins}) -> ({outs})`"
        ttype = op.attributes.get("type")
        if ttype is not None:
            text += f"\n\n`{_type_text(getattr(ttype, 'type', ttype))}`"
        doc = _op_doc(op)
        return text + (f"\n\n{doc}" if doc else "")

    # --- navigation ---------------------------------------------------------------------------
    def definition(self, pos: types.Position) -> list[types.Location]:
        target, _line, _col = self._target(pos)
        index = self.snap.index
        if target is None:
            return []
        loc = index.definition(target)
        return [types.Location(self.uri, self._loc_range(loc))] if loc is not None else []

    def references(self, pos: types.Position, include_declaration: bool) -> list[types.Location]:
        target, _line, _col = self._target(pos)
        index = self.snap.index
        if target is None:
            return []
        locs = list(index.references(target))
        if include_declaration:
            d = index.definition(target)
            if d is not None:
                locs.insert(0, d)
        locs.sort(key=lambda l: (l.line, l.col))
        return [types.Location(self.uri, self._loc_range(l)) for l in locs]

    # --- completion ---------------------------------------------------------------------------
    def completion(self, pos: types.Position) -> list[types.CompletionItem]:
        from lpu.dsl.dialect import BY_NAME

        line, col = self.lines.char(pos)
        prefix = self.lines.text(line - 1)[:col - 1]
        word = re.search(r"[%@A-Za-z0-9_.$-]*$", prefix).group()
        index = self.snap.index
        if word.startswith("@"):
            names = list(index.symbol_defs) if index else []
            if index:  # the symbol parameters of the function the cursor is in
                names += [p.name for p, l in index.param_defs.items() if l.line <= line <= self._block_end(l.line) and p.name not in names]
            return [types.CompletionItem(f"@{n}", kind=types.CompletionItemKind.Reference) for n in names]
        if word.startswith("%"):
            names = sorted({self.lines.text(l.line - 1)[l.col - 1:l.col - 1 + l.length]
                            for l in index.value_defs.values()}) if index else []
            return [types.CompletionItem(n, kind=types.CompletionItemKind.Variable) for n in names]
        stripped = prefix.strip()
        if re.search(r"=\s*[A-Za-z_.]*$", prefix) or (prefix.startswith((" ", "\t")) and " " not in stripped):
            ops = sorted(n[3:] for n in BY_NAME if n.startswith("df.") and n not in ("df.func", "df.data",
                                                                                          "df.reserve", "df.extern",
                                                                                          "df.kernel"))
            return [types.CompletionItem(n, kind=types.CompletionItemKind.Function,
                                         detail=_op_doc(BY_NAME["df." + n]) or None) for n in ops]
        if " " not in stripped:
            return [types.CompletionItem(k, kind=types.CompletionItemKind.Keyword)
                    for k in ("target", "data", "reserve", "extern", "kernel", "global", "func")]
        return []

    # --- outline, folding, tokens, hints ------------------------------------------------------
    def _block_end(self, line: int) -> int:
        """The line of the brace that closes the block opened on ``line`` (1-based)."""
        depth, opened = 0, False
        for n in range(line, len(self.snap.lines) + 1):
            text = self.lines.text(n - 1)
            code = re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', text[:_comment_start(text)])
            opened = opened or "{" in code
            depth += code.count("{") - code.count("}")
            if opened and depth <= 0:
                return n
        return len(self.snap.lines)

    def symbols(self) -> list[types.DocumentSymbol]:
        index = self.snap.index
        if index is None:
            return []
        out = []
        kinds = {"df.func": types.SymbolKind.Function, "df.kernel": types.SymbolKind.Function,
                 "df.data": types.SymbolKind.Constant, "df.reserve": types.SymbolKind.Variable,
                 "df.extern": types.SymbolKind.Interface}
        for name, loc in index.symbol_defs.items():
            op = self.snap.symbol_ops.get(name)
            opname = op.name if op is not None else ""
            end = self._block_end(loc.line) if opname in ("df.func", "df.kernel") else loc.line
            rng = types.Range(self.lines.position(loc.line, 1),
                              self.lines.position(end, len(self.lines.text(end - 1)) + 1))
            out.append(types.DocumentSymbol(f"@{name}", kinds.get(opname, types.SymbolKind.Variable), rng,
                                            self._loc_range(loc), detail=opname[3:] or None))
        out.sort(key=lambda s: (s.range.start.line, s.range.start.character))
        return out

    def folding(self) -> list[types.FoldingRange]:
        out = []
        for n, text in enumerate(self.snap.lines, start=1):
            code = text[:_comment_start(text)].rstrip()
            if code.endswith("{"):
                end = self._block_end(n)
                if end > n:
                    out.append(types.FoldingRange(n - 1, end - 1, kind=types.FoldingRangeKind.Region))
        out += comment_folds(self.snap.lines)
        out.sort(key=lambda f: f.start_line)
        return out

    def semantic_tokens(self) -> list[int]:
        from lpu.dsl.dialect import BY_NAME

        tokens = []
        defs = {(l.line, l.col) for l in self.snap.index.value_defs.values()} if self.snap.index else set()
        sym_defs = {(l.line, l.col) for l in [*self.snap.index.symbol_defs.values(),
                                               *self.snap.index.param_defs.values()]} if self.snap.index else set()
        for n, text in enumerate(self.snap.lines, start=1):
            for m in _TOKEN_RE.finditer(text):
                kind, col, length = m.lastgroup, m.start() + 1, m.end() - m.start()
                t = {"comment": "comment", "string": "string", "type": "type", "value": "parameter",
                     "sym": "function", "cycle": "decorator", "num": "number"}.get(kind)
                mods = 1 if (n, col) in defs or (n, col) in sym_defs else 0
                if kind == "word":
                    w = m.group()
                    t = "keyword" if w in KEYWORDS or w in ("return", "yield") else \
                        "method" if "df." + w in BY_NAME else None
                if t is not None:
                    tokens.append((n, col, length, t, mods))
        return encode_tokens(tokens, self.lines)

    def inlay_hints(self, rng: types.Range) -> list[types.InlayHint]:
        """After an op whose result type the source leaves to inference: the inferred type."""
        index = self.snap.index
        if index is None:
            return []
        out = []
        done = set()
        for v, loc in index.value_defs.items():
            line = loc.line
            if line in done or not rng.start.line + 1 <= line <= rng.end.line + 1:
                continue
            op = getattr(v, "op", None)
            if op is None or not op.name.startswith("df.") or op.name == "df.for":
                continue
            text = self.lines.text(line - 1)
            code = text[:_comment_start(text)]
            if re.search(r":\s*tensor<", code[code.find("=") + 1:]) or "{" in code.rstrip()[-1:]:
                continue
            done.add(line)
            label = ": " + ", ".join(_type_text(r.type) for r in op.results)
            out.append(types.InlayHint(self.lines.position(line, _code_end(text) + 1), label,
                                       kind=types.InlayHintKind.Type, padding_left=True))
        out.sort(key=lambda h: (h.position.line, h.position.character))
        return out

    def code_actions(self, rng: types.Range) -> list[types.CodeAction]:
        return []


__all__ = ["available", "DataflowDocument", "DataflowView", "TOKEN_TYPES"]
