"""The assembly parser: Lark LALR with the tree built into raw statements during parsing.

The transformer runs inside the LALR parser (``Lark(transformer=...)``), so no parse tree is
ever built: each rule's callback makes a small tuple. Checking against the ISA table and the
chip configuration is the assembler's job (``lpu.asm.assembler``), not the grammar's.
"""

from __future__ import annotations

import ast
import os
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from lpu.asm.records import SYMBOL_NAME, HexInt
from lpu.diagnostics import Diagnostic, DiagnosticError, SourceLoc, error, source_lines

MAX_ERRORS = 20


def _def_loc(tok) -> tuple | None:
    """A definition's ``loc("FILE":LINE:COL)`` token, as (file, line, col)."""
    if tok is None:
        return None
    m = _LOC_RE.fullmatch(tok.value)
    return (_string(m.group(1)), int(m.group(2)), int(m.group(3)))


class ListElement(NamedTuple):
    """A number of a list initializer and where it is written."""

    value: int | float
    line: int
    column: int
    length: int


class ListValue(list):
    """A (nested) list initializer: its elements, and the position of its '['."""

    line: int
    column: int
    length: int


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
    key: str | None = None  # the line's text after its cycle: equal keys, equal instructions
    loc_name: str | None = None  # the source op a named loc("df.add"("f":1:2)) gives


@dataclass(slots=True)
class RawError:
    """A syntax error found inside an instruction line (the parse goes on)."""

    message: str
    line: int
    col: int
    length: int


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
    loc: tuple | None = None  # (file, line, col) from a loc(...) annotation


@dataclass(slots=True)
class RawKernel:
    name: str
    insts: list
    is_global: bool
    line: int
    col: int
    name_col: int
    end_line: int = 0
    loc: tuple | None = None  # (file, line, col) from a loc(...) annotation


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

    # --- everything else ---
    def kernel(self, c):
        is_global = c[0].type == "GLOBAL"
        name, loc, body = c[1:4] if is_global else c[0:3]
        first = c[0]
        k = RawKernel(name.value[1:], split_body(body.value, body.line, body.column), is_global, first.line,
                      first.column, name.column, loc=_def_loc(loc))
        k.end_line = body.end_line if body.end_line is not None else body.line + body.value.count("\n")
        return k

    def target(self, c):
        t = c[0]
        return ("target", _string(t.value), t.line, t.column)

    def extern(self, c):
        t = c[0]
        return ("extern", t.value[1:], t.line, t.column)

    def func(self, c):  # a dataflow function: the assembler skips it
        return None

    def placement(self, c):
        name = c[0]
        addr = _int(c[1].value) if len(c) > 1 and c[1] is not None else None
        return (name.value, name.column, addr)

    def init_load(self, c):
        return ("load", _string(c[0].value), c[0].line, c[0].column)

    def init_hex(self, c):
        return ("hex", c[0].value[4:-1], c[0].line, c[0].column)

    def init_list(self, c):
        return ("list", c[0], c[0].line, c[0].column)

    def number(self, c):  # an element of a list initializer: [1, -2, 3.5]
        text = "".join(t.value for t in c)
        return ListElement(_signed(text), c[0].line, c[0].column, c[-1].end_column - c[0].column)

    def list(self, c):
        out = ListValue(x for x in c[1:-1] if x is not None)
        out.line, out.column = c[0].line, c[0].column
        out.length = c[-1].end_column - c[0].column if c[-1].line == c[0].line else 1
        return out

    def _tensor(self, c, has_init):
        is_global = c[0].type == "GLOBAL" if isinstance(c[0], Token) else False
        rest = c[1:] if is_global else c
        sym, ty, placement = rest[0], rest[1], rest[2]
        init = rest[3] if has_init else None
        first = c[0]
        return RawTensor(sym.value[1:], ty.value, placement, init, is_global, first.line, first.column,
                         sym.column, ty.column, _def_loc(rest[-1]))

    def data(self, c):
        return self._tensor(c, True)

    def reserve(self, c):
        return self._tensor(c, False)

    def start(self, c):
        return c


_NUM = r"[-+]?[ \t]*(?:[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+|0x[0-9a-fA-F]+|[0-9]+)"
_HEAD_RE = re.compile(r"[ \t]*@([0-9]+)[ \t]*([A-Za-z_][A-Za-z0-9_.]*)?[ \t]*([A-Za-z_][A-Za-z0-9_.]*)?")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_SYM_RE = re.compile(f"@({SYMBOL_NAME})")
_NUMBER_RE = re.compile(_NUM)
_KW_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)[ \t]*=[ \t]*(" + _NUM + ")")
_REF_RE = re.compile(r"\[[ \t]*(?:@([A-Za-z_][A-Za-z0-9_.$]*)(?:[ \t]*([-+])[ \t]*(0x[0-9a-fA-F]+|[0-9]+))?"
                     r"|(0x[0-9a-fA-F]+|[0-9]+))[ \t]*\]")
_LOC_START_RE = re.compile(r"(?<![A-Za-z0-9_.])loc[ \t]*\(")
_LOC_RE = re.compile(r'loc[ \t]*\([ \t]*("(?:[^"\\\n]|\\.)*")[ \t]*:[ \t]*([0-9]+)[ \t]*:[ \t]*([0-9]+)[ \t]*\)')
_STR = r'("(?:[^"\\\n]|\\.)*")'
# MLIR's named location on an instruction: loc("df.add"("FILE":LINE:COL)), the source op there
_NAMED_LOC_RE = re.compile(r'loc[ \t]*\([ \t]*' + _STR + r'[ \t]*\([ \t]*' + _STR
                           + r'[ \t]*:[ \t]*([0-9]+)[ \t]*:[ \t]*([0-9]+)[ \t]*\)[ \t]*\)')
_CODE_RE = re.compile(r'(?:[^\n/"]+|"(?:[^"\\\n]|\\.)*"|/(?!/))*')  # a line up to its comment
_WORD_RE = re.compile(r"[^ \t,]+|,")


def _unexpected(text: str, pos: int, expected: str, line: int, col: int) -> "RawError":
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    m = _WORD_RE.match(text, pos)
    shown = f"'{m.group()}'" if m else "end of line"
    return RawError(f"unexpected {shown}, expected {expected}", line, col + pos, len(m.group()) if m else 1)


def split_body(body: str, line: int, col: int) -> list:
    """A kernel body (the KERNEL_BODY terminal, braces included) into RawInst records, one per
    instruction line, and RawError records for lines that are not instructions."""
    out = []
    lines = body[1:-1].split("\n")
    for i, text in enumerate(lines):
        c = col + 1 if i == 0 else 1  # the first line starts after the '{'
        if "/" in text:
            text = _CODE_RE.match(text).group() if '"' in text else text.split("//", 1)[0]
        text = text.rstrip()
        if not text.lstrip():
            continue
        cm = _CYCLE_RE.match(text)
        if cm is None:
            out.append(_split_inst(text, line + i, c))
            continue
        # Programs repeat the same instruction at many cycles: split each distinct text once.
        rest = text[cm.end():]
        base = c + cm.end()
        hit = _LINE_CACHE.get(rest)
        if hit is None:
            ri = _split_inst(text, line + i, c)
            if type(ri) is RawInst:
                if len(_LINE_CACHE) > 1 << 18:
                    _LINE_CACHE.clear()
                _LINE_CACHE[rest] = (ri.unit, ri.mnemonic, ri.unit_col - base, ri.mnemonic_col - base, ri.loc,
                                     [(o.kind, o.value, o.col - base, o.length) for o in ri.operands], ri.loc_name)
                ri.key = rest
            out.append(ri)
            continue
        unit, mnemonic, unit_at, mnemonic_at, loc, ops, loc_name = hit
        ln = line + i
        out.append(RawInst(int(cm.group(1)), unit, mnemonic,
                           [RawOperand(kind, value, ln, base + at, length) for kind, value, at, length in ops],
                           ln, c + cm.start(1) - 1, base + unit_at, base + mnemonic_at, loc, rest, loc_name))
    return out


_CYCLE_RE = re.compile(r"[ \t]*@([0-9]+)[ \t]+")
_LINE_CACHE: dict[str, tuple] = {}  # instruction text after the cycle -> its split (see split_body)


_OP = r"(\[[^\]\n]*\]|[^\s,\[\]]+)"
_NEXT_OP = r"(?:[ \t]*,[ \t]*" + _OP + ")?"
# The common line, whole: cycle, unit, mnemonic and up to five operands (no options, no loc).
_FAST_RE = re.compile(r"[ \t]*@([0-9]+)[ \t]+([A-Za-z_][A-Za-z0-9_.]*)[ \t]+([A-Za-z_][A-Za-z0-9_.]*)"
                      r"(?:[ \t]+" + _OP + _NEXT_OP * 4 + r")?$")
_INT_RE = re.compile(r"0x[0-9a-fA-F]+|[0-9]+")


def _tail_loc(text: str, start: int):
    """The ``loc(...)`` annotation that starts at ``start`` and ends the line: ((file, line,
    col), name or None), or None if it is not one."""
    full = _LOC_RE.match(text, start)
    if full is not None and full.end() == len(text):
        return (_string(full.group(1)), int(full.group(2)), int(full.group(3))), None
    named = _NAMED_LOC_RE.match(text, start) if full is None else None
    if named is not None and named.end() == len(text):
        return (_string(named.group(2)), int(named.group(3)), int(named.group(4))), _string(named.group(1))
    return None


def _split_inst(text: str, line: int, col: int):
    """One instruction line (comment removed) into a RawInst, or a RawError. The common shape is
    matched whole by one regex (after a closing loc(...), as lpu compile -S and the disassembler
    end every line); anything else (options, errors) takes the general path."""
    loc = loc_name = None
    core = text
    if "loc" in text:
        lm = _LOC_START_RE.search(text)
        tail = _tail_loc(text, lm.start()) if lm is not None else None
        if tail is None:
            return _split_inst_general(text, line, col)
        loc, loc_name = tail
        core = text[:lm.start()].rstrip(" \t")
    m = _FAST_RE.match(core)
    if m is None:
        return _split_inst_general(text, line, col)
    ops = []
    for g in range(4, 9):
        tok = m.group(g)
        if tok is None:
            break
        c = col + m.start(g)
        first = tok[0]
        if first == "[":
            r = _REF_RE.fullmatch(tok)
            if r is None:
                return _split_inst_general(text, line, col)
            sym = r.group(1)
            if sym is None:
                ops.append(RawOperand("address", _int(r.group(4)), line, c, len(tok)))
            else:
                off = r.group(3)
                offset = _int(off) if off is not None else 0
                ops.append(RawOperand("symref", (sym, -offset if r.group(2) == "-" else offset), line, c, len(tok)))
        elif first == "@":
            if _SYM_RE.fullmatch(tok) is None:
                return _split_inst_general(text, line, col)
            ops.append(RawOperand("symbol", tok[1:], line, c, len(tok)))
        elif first.isalpha() or first == "_":
            if _NAME_RE.fullmatch(tok) is None:
                return _split_inst_general(text, line, col)
            ops.append(RawOperand("name", tok, line, c, len(tok)))
        elif _INT_RE.fullmatch(tok):
            ops.append(RawOperand("number", _int(tok), line, c, len(tok)))
        else:
            return _split_inst_general(text, line, col)
    return RawInst(int(m.group(1)), m.group(2), m.group(3), ops, line, col + m.start(1) - 1, col + m.start(2),
                   col + m.start(3), loc, loc_name=loc_name)


def _split_inst_general(text: str, line: int, col: int):
    head = _HEAD_RE.match(text)
    if head is None:
        return _unexpected(text, 0, "an instruction (@CYCLE UNIT MNEMONIC OPERANDS) or '}'", line, col)
    cycle, unit, mnemonic = head.groups()
    if mnemonic is None:
        return _unexpected(text, head.end(), "a unit and a mnemonic" if unit is None else "a mnemonic", line, col)
    at = head.start(1) - 1
    ops: list[RawOperand] = []
    loc = loc_name = None
    pos = head.end()
    end = len(text)
    if pos < end and text[pos] not in " \t":
        return _unexpected(text, pos, "an operand", line, col)
    lm = _LOC_START_RE.search(text, pos) if "loc" in text else None
    if lm is not None:
        tail = _tail_loc(text, lm.start())
        if tail is None:
            return RawError("malformed location: expected loc(\"FILE\":LINE:COL) or loc(\"NAME\"(\"FILE\":LINE:COL)) "
                            "at the end of the line", line, col + lm.start(), 3)
        loc, loc_name = tail
        end = lm.start()
        while end > pos and text[end - 1] in " \t":
            end -= 1
    if text[pos:end].strip():
        while True:
            comma = text.find(",", pos, end)
            stop = comma if comma >= 0 else end
            while pos < stop and text[pos] in " \t":
                pos += 1
            if pos == stop:
                return _unexpected(text, pos, "an operand", line, col)
            first = text[pos]
            if first == "[":
                m = _REF_RE.match(text, pos)
            elif first == "@":
                m = _SYM_RE.match(text, pos)
            elif first.isalpha() or first == "_":
                m = _KW_RE.match(text, pos)
                if m is None or m.end() > stop:
                    m = _NAME_RE.match(text, pos)
            else:
                m = _NUMBER_RE.match(text, pos)
            if m is None or m.end() > stop:
                return _unexpected(text, pos, "an operand", line, col)
            e = m.end()
            c, length = col + pos, e - pos
            if first == "[":
                sym = m.group(1)
                if sym is None:
                    ops.append(RawOperand("address", _int(m.group(4)), line, c, length))
                else:
                    off = m.group(3)
                    offset = _int(off) if off is not None else 0
                    ops.append(RawOperand("symref", (sym, -offset if m.group(2) == "-" else offset), line, c, length))
            elif first == "@":
                ops.append(RawOperand("symbol", m.group(1), line, c, length))
            elif m.re is _KW_RE:
                ops.append(RawOperand("keyword", (m.group(1), _signed(m.group(2))), line, c, length))
            elif m.re is _NAME_RE:
                ops.append(RawOperand("name", m.group(), line, c, length))
            else:
                ops.append(RawOperand("number", _signed(m.group()), line, c, length))
            if text[e:stop].strip():
                return _unexpected(text, e, "',' or end of line", line, col)
            if comma < 0:
                break
            pos = comma + 1
    return RawInst(int(cycle), unit, mnemonic, ops, line, col + at, col + head.start(2), col + head.start(3), loc,
                   loc_name=loc_name)


def _signed(text: str):
    sign = text[0]
    if sign in "+-":
        v = _number(text[1:].lstrip())
        return -v if sign == "-" else v
    return _number(text)


def _int(text: str) -> int:
    # not int(text, 0): that rejects leading zeros ("08"); a literal is hex (0x) or decimal
    return HexInt(text, 16) if text[:2] == "0x" else int(text)


def _number(text: str):
    if text.startswith("0x") or text.isdigit():
        return _int(text)
    return float(text)


def _string(text: str) -> str:
    if "\\" not in text:  # no escapes: the text between the quotes
        return text[1:-1]
    try:
        with warnings.catch_warnings():  # "\q": Python warns (on stderr, from 3.12) and keeps it
            warnings.simplefilter("ignore")
            return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text[1:-1]


def list_elements(values: list):
    """The numbers of a (nested) list initializer in order. A loop, not recursion: a list
    nested a thousand deep is a user's input like any other (it raised RecursionError)."""
    stack = [iter(values)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            yield v
        else:
            stack.pop()


# The literal readers, shared with the dataflow level (one language, one reading of its literals).
int_literal, number_literal, string_literal = _int, _number, _string


@lru_cache(maxsize=None)
def _parser() -> Lark:
    grammar = os.path.join(os.path.dirname(__file__), "asm.lark")
    return Lark.open(grammar, parser="lalr", lexer="contextual", transformer=_Build(),
                     propagate_positions=False, maybe_placeholders=True, cache=True)


_NAMES = {
    "_NL": "end of line", "NAME": "a name", "SYMBOL": "a symbol (@name)",
    "INT": "an integer", "FLOAT": "a number", "STRING": "a string", "TENSOR_TYPE": "a tensor type",
    "COMMA": "','", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'", "COLON": "':'",
    "EQUAL": "'='", "LPAR": "'('", "RPAR": "')'", "SIGN": "a sign", "HEX_BYTES": "hex bytes",
    "GLOBAL": "'global'", "$END": "end of file", "KERNEL_BODY": "a kernel body '{ ... }'",
    "FUNC_REST": "a function body", "LIST_OPEN": "'['", "LIST_CLOSE": "']'",
}
# machine-written annotations (the disassembler's): not worth naming in "expected ..." lists
_UNNAMED = {"LOC"}


def _describe(terminals) -> str:
    names = []
    terminals = set(terminals) - _UNNAMED or set(terminals)
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
            lines = source_lines(text)
            return error(f"unexpected end of file, expected {_describe(e.expected)}",
                         SourceLoc(file, max(len(lines), 1), len(lines[-1]) + 1 if lines else 1))
        shown = "end of line" if tok.type == "_NL" else f"'{tok.value}'"
        return error(f"unexpected {shown}, expected {_describe(e.accepts or e.expected)}",
                     SourceLoc(file, tok.line, tok.column, max(1, len(tok.value.strip()) if tok.type != "_NL" else 1)))
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        if ch == "{" and "KERNEL_BODY" in (e.allowed or ()):
            return error("no '}' closes this kernel body", SourceLoc(file, e.line, e.column))
        return error(f"unexpected character {ch!r}", SourceLoc(file, e.line, e.column))
    if isinstance(e, UnexpectedEOF):
        lines = source_lines(text)
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
        current = "\n".join(lines)  # the text as parsed: lines with errors are blanked
        try:
            items = _parser().parse(current)
            break
        except UnexpectedInput as e:
            d = _diagnose(e, file, current)
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
        if it is None:
            continue
        if isinstance(it, RawKernel):
            if any(type(x) is RawError for x in it.insts):
                diags.extend(error(x.message, SourceLoc(file, x.line, x.col, x.length))
                             for x in it.insts if type(x) is RawError)
                it.insts = [x for x in it.insts if type(x) is RawInst]
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
    diags.sort(key=lambda d: (d.loc.line, d.loc.col) if d.loc else (0, 0))
    if len(diags) > MAX_ERRORS:
        del diags[MAX_ERRORS:]
        diags.append(error("too many errors emitted, stopping now"))
    return mod, diags


def parse_or_raise(text: str, file: str = "<input>") -> RawModule:
    mod, diags = parse(text, file)
    if diags:
        raise DiagnosticError(diags)
    return mod


def parses_without_recovery(text: str) -> bool:
    """True when the grammar accepts ``text`` as it is: any diagnostics ``parse`` gives are about
    the inside of instruction lines, reported without dropping lines (for tools that parse a
    file piecewise and must know when a piece's errors could depend on what surrounds it)."""
    try:
        _parser().parse(text)
    except UnexpectedInput:
        return False
    return True
