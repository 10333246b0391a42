"""The assembly parser: Lark LALR with the tree built into raw statements during parsing.

The transformer runs inside the LALR parser (``Lark(transformer=...)``), so no parse tree is
ever built: each rule's callback makes a small tuple. Checking against the ISA table and the
chip configuration is the assembler's job (``lpu.asm.assembler``), not the grammar's.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from functools import lru_cache

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from lpu.diagnostics import Diagnostic, DiagnosticError, SourceLoc, error

MAX_ERRORS = 20


@dataclass(slots=True)
class RawOperand:
    kind: str  # name, symbol, number, symref, address, keyword
    value: object
    line: int
    col: int
    length: int


@dataclass(slots=True)
class RawInst:
    cycle: int
    unit: str
    mnemonic: str
    operands: list
    line: int
    col: int  # of the cycle annotation
    unit_col: int
    mnemonic_col: int
    loc: tuple | None = None  # (file, line, col) from a loc(...) annotation


@dataclass(slots=True)
class RawTensor:
    name: str
    type_text: str
    placement: tuple  # (name, name_col, address or None)
    init: tuple | None  # ("load", path) | ("hex", text) | ("list", values); None: reserve
    is_global: bool
    line: int
    col: int
    name_col: int
    type_col: int


@dataclass(slots=True)
class RawKernel:
    name: str
    insts: list
    is_global: bool
    line: int
    col: int
    name_col: int
    end_line: int = 0


@dataclass(slots=True)
class RawModule:
    file: str
    target: tuple | None = None  # (name, line, col)
    tensors: list = field(default_factory=list)
    externs: list = field(default_factory=list)  # (name, line, col)
    kernels: list = field(default_factory=list)
    items: list = field(default_factory=list)  # everything in file order


def _tok(t: Token) -> tuple[int, int, int]:
    return t.line, t.column, len(t.value)


class _Build(Transformer):
    """Rule callbacks that run during the parse; they only reshape tokens into raw records."""

    def __init__(self) -> None:
        super().__init__(visit_tokens=False)

    # --- instructions: the hot path ---
    def op_name(self, c):
        t = c[0]
        return RawOperand("name", t.value, t.line, t.column, len(t.value))

    def op_symbol(self, c):
        t = c[0]
        return RawOperand("symbol", t.value[1:], t.line, t.column, len(t.value))

    def op_number(self, c):
        value, line, col, length = c[0]
        return RawOperand("number", value, line, col, length)

    def op_symref(self, c):
        sym, sign, off = c
        offset = 0
        if off is not None:
            offset = int(off.value, 0)
            if sign.value == "-":
                offset = -offset
        end = (off or sym).end_column if (off or sym).end_column else sym.column + len(sym.value)
        return RawOperand("symref", (sym.value[1:], offset), sym.line, sym.column - 1, end - sym.column + 2)

    def op_address(self, c):
        t = c[0]
        return RawOperand("address", int(t.value, 0), t.line, t.column - 1, len(t.value) + 2)

    def op_keyword(self, c):
        key, (value, _line, _col, length) = c
        return RawOperand("keyword", (key.value, value), key.line, key.column, len(key.value) + 1 + length)

    def number(self, c):
        if len(c) == 2:
            sign, t = c
            v = _number(t.value)
            return (-v if sign.value == "-" else v), sign.line, sign.column, len(t.value) + 1
        t = c[0]
        return _number(t.value), t.line, t.column, len(t.value)

    def loc(self, c):
        s, line, col = c
        return (_string(s.value), int(line.value), int(col.value))

    def inst(self, c):
        cyc, unit, mn, *rest = c
        loc = rest.pop() if rest and (rest[-1] is None or isinstance(rest[-1], tuple)) else None
        ops = [o for o in rest if o is not None]
        return RawInst(int(cyc.value[1:]), unit.value, mn.value, ops, cyc.line, cyc.column,
                       unit.column, mn.column, loc)

    # --- everything else ---
    def kernel(self, c):
        is_global = isinstance(c[0], Token) and c[0].type == "GLOBAL"
        name = c[1] if is_global else c[0]
        insts = [x for x in c if isinstance(x, RawInst)]
        first = c[0]
        return RawKernel(name.value[1:], insts, is_global, first.line, first.column, name.column)

    def target(self, c):
        t = c[0]
        return ("target", _string(t.value), t.line, t.column)

    def extern(self, c):
        t = c[0]
        return ("extern", t.value[1:], t.line, t.column)

    def placement(self, c):
        name = c[0]
        addr = int(c[1].value, 0) if len(c) > 1 and c[1] is not None else None
        return (name.value, name.column, addr)

    def init_load(self, c):
        return ("load", _string(c[0].value), c[0].line, c[0].column)

    def init_hex(self, c):
        return ("hex", c[0].value[4:-1], c[0].line, c[0].column)

    def init_list(self, c):
        return ("list", c[0], 0, 0)

    def list(self, c):
        return [x[0] if isinstance(x, tuple) else x for x in c if x is not None]

    def _tensor(self, c, has_init):
        is_global = c[0].type == "GLOBAL" if isinstance(c[0], Token) else False
        rest = c[1:] if is_global else c
        sym, ty, placement = rest[0], rest[1], rest[2]
        init = rest[3] if has_init else None
        first = c[0]
        return RawTensor(sym.value[1:], ty.value, placement, init, is_global, first.line, first.column,
                         sym.column, ty.column)

    def data(self, c):
        return self._tensor(c, True)

    def reserve(self, c):
        return self._tensor(c, False)

    def start(self, c):
        return c


def _number(text: str):
    if text.startswith("0x") or text.isdigit():
        return int(text, 0)
    return float(text)


def _string(text: str) -> str:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text[1:-1]


@lru_cache(maxsize=None)
def _parser() -> Lark:
    grammar = os.path.join(os.path.dirname(__file__), "asm.lark")
    return Lark.open(grammar, parser="lalr", lexer="contextual", transformer=_Build(),
                     propagate_positions=False, maybe_placeholders=True, cache=True)


_NAMES = {
    "_NL": "end of line", "NAME": "a name", "SYMBOL": "a symbol (@name)", "CYCLE": "a cycle (@N)",
    "INT": "an integer", "FLOAT": "a number", "STRING": "a string", "TENSOR_TYPE": "a tensor type",
    "COMMA": "','", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'", "COLON": "':'",
    "EQUAL": "'='", "LPAR": "'('", "RPAR": "')'", "SIGN": "a sign", "HEX_BYTES": "hex bytes",
    "GLOBAL": "'global'", "$END": "end of file",
}


def _describe(terminals) -> str:
    names = []
    for t in sorted(terminals):
        if t in _NAMES:
            names.append(_NAMES[t])
        elif t.isupper() and not t.startswith("__"):
            names.append(f"'{t.lower()}'")
        else:
            p = _parser().get_terminal(t) if t in {x.name for x in _parser().terminals} else None
            names.append(f"'{p.pattern.value}'" if p is not None else t)
    names = sorted(set(names))
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _diagnose(e: UnexpectedInput, file: str, text: str) -> Diagnostic:
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            lines = text.splitlines()
            return error(f"unexpected end of file, expected {_describe(e.expected)}",
                         SourceLoc(file, max(len(lines), 1), len(lines[-1]) + 1 if lines else 1))
        shown = "end of line" if tok.type == "_NL" else f"'{tok.value}'"
        return error(f"unexpected {shown}, expected {_describe(e.accepts or e.expected)}",
                     SourceLoc(file, tok.line, tok.column, max(1, len(tok.value.strip()) if tok.type != "_NL" else 1)))
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        return error(f"unexpected character {ch!r}", SourceLoc(file, e.line, e.column))
    if isinstance(e, UnexpectedEOF):
        lines = text.splitlines()
        return error(f"unexpected end of file, expected {_describe(e.expected)}",
                     SourceLoc(file, max(len(lines), 1), 1))
    return error(str(e), SourceLoc(file, getattr(e, "line", 0), getattr(e, "column", 0)))


def parse(text: str, file: str = "<input>") -> tuple[RawModule, list[Diagnostic]]:
    """Parse assembly text; syntax errors are returned (every one, up to ``MAX_ERRORS``), with
    the statements that did parse. A line with a syntax error is dropped and parsing resumes."""
    diags: list[Diagnostic] = []
    if not text.endswith("\n"):
        text += "\n"
    lines = text.split("\n")
    while True:
        try:
            items = _parser().parse("\n".join(lines))
            break
        except UnexpectedInput as e:
            d = _diagnose(e, file, text)
            diags.append(d)
            line = d.loc.line if d.loc else 0
            if (isinstance(e, (UnexpectedEOF,)) or (isinstance(e, UnexpectedToken) and e.token.type == "$END")
                    or not (1 <= line <= len(lines)) or not lines[line - 1].strip() or len(diags) >= MAX_ERRORS):
                if len(diags) >= MAX_ERRORS:
                    diags.append(error("too many errors emitted, stopping now"))
                return RawModule(file), diags
            lines[line - 1] = ""
    mod = RawModule(file)
    for it in items:
        if isinstance(it, RawKernel):
            mod.kernels.append(it)
        elif isinstance(it, RawTensor):
            mod.tensors.append(it)
        elif it[0] == "target":
            if mod.target is not None:
                diags.append(error("a file has one 'target' directive", SourceLoc(file, it[2], it[3], 6))
                             .note("the first is here", SourceLoc(file, mod.target[1], mod.target[2], 6)))
            else:
                mod.target = (it[1], it[2], it[3])
        elif it[0] == "extern":
            mod.externs.append((it[1], it[2], it[3]))
        mod.items.append(it)
    return mod, diags


def parse_or_raise(text: str, file: str = "<input>") -> RawModule:
    mod, diags = parse(text, file)
    if diags:
        raise DiagnosticError(diags)
    return mod
