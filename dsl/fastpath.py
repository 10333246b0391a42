"""The common statement shape of a function body, split by compiled regexes instead of Lark.

Lark costs several microseconds per token and a statement is about nine tokens. The grammar
(``dataflow.lark``) therefore has one coarse terminal, ``STMTS``: a run of consecutive lines
that each have the common shape

    [%r ("," %r)* "="] NAME [(%v | @sym) ("," ...)*] ["{" NAME "=" VALUE, ... "}"] [":" TYPE ("," TYPE)*]

with ``VALUE`` a signed number, an ``@symbol`` or a flat ``[list]`` of those, and an operand a
``%value``, an ``@symbol`` or a signed number (``mul %x, 0.125``). The rule's callback
(``split_statements``) cuts the run into statements and hands each to the same code the
general grammar path calls (``_Build.op``), with the same tokens, so what is built and every
diagnostic are exactly what the full grammar would give. Any other line (a ``for``, a call with
``(args)``, a string or nested-list attribute, anything malformed) is not matched by
``STMTS`` and goes through the full grammar token by token; syntax errors are reported there.

The regexes below must accept only what the grammar accepts and split it as Lark's lexer
would; ``tests/test_dsl_fastpath.py`` checks that against a parser without ``STMTS``.
"""

from __future__ import annotations

import re

from lark import Token

from lpu.diagnostics import SourceLoc
from lpu.dsl.dialect import set_name

_WS = r"[ \t\f]*+"
_VALUE = r"%[A-Za-z0-9_$.-]+"
_SYMBOL = r"@[A-Za-z_][A-Za-z0-9_.$]*"
_NAME = r"[A-Za-z_][A-Za-z0-9_.]*+"
_TYPE = r"tensor<(?:[0-9]+x)*+(?:i8|i16|i32|f16|bf16|f32)>"
# a number token as Lark's lexer cuts it (FLOAT before INT), ending where no longer token could
_NUMBER = r"(?:[-+]" + _WS + r")?(?:[0-9]+\.[0-9]*+(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+|0x[0-9a-fA-F]+|[0-9]+)(?![0-9A-Za-z_.])"
_SCALAR = r"(?:" + _NUMBER + "|" + _SYMBOL + r")"
_ATTR_VALUE = r"(?:" + _SCALAR + r"|\[" + _WS + r"(?:" + _SCALAR + r"(?:" + _WS + "," + _WS + _SCALAR + r")*+" + _WS + r")?\])"
_ATTR = _NAME + _WS + "=" + _WS + _ATTR_VALUE
_OPERAND = r"(?:" + _VALUE + "|" + _SYMBOL + "|" + _NUMBER + r")"
# 'for' is a keyword where a statement's op name stands; any other name is an op name
_OP_NAME = r"(?!for(?![A-Za-z0-9_.]))" + _NAME


def _line(named: bool) -> str:
    def g(name: str) -> str:
        return f"(?P<{name}>" if named else "(?:"
    return (r"(?:" + g("results") + _VALUE + r"(?:" + _WS + "," + _WS + _VALUE + r")*+)" + _WS + "=" + _WS + r")?"
            + g("name") + _OP_NAME + r")"
            r"(?:" + _WS + g("operands") + _OPERAND + r"(?:" + _WS + "," + _WS + _OPERAND + r")*+))?"
            r"(?:" + _WS + g("attrs") + r"\{" + _WS + r"(?:" + _ATTR + r"(?:" + _WS + "," + _WS + _ATTR + r")*+"
            + _WS + r")?\}))?"
            r"(?:" + _WS + r":" + _WS + g("types") + _TYPE + r"(?:" + _WS + "," + _WS + _TYPE + r")*+))?")


# the end of a statement: a comment, the newline, blank and comment-only lines, the indentation
_EOL = r"(?:[ \t\f]*+(?://[^\n]*+)?\r?\n)++[ \t\f]*+"

#: the STMTS terminal of dataflow.lark (added to the grammar text when it is loaded)
STMTS_PATTERN = r"(?:" + _line(False) + _EOL + r")++"

_LINE_RE = re.compile(_line(True) + r"(?P<eol>" + _EOL + ")")
_VALUE_RE = re.compile(_VALUE)
_OPERAND_RE = re.compile(_OPERAND)
_TYPE_RE = re.compile(_TYPE)
_ATTR_RE = re.compile(r"(?P<key>" + _NAME + r")" + _WS + "=" + _WS + r"(?P<value>" + _ATTR_VALUE + ")")
_SCALAR_RE = re.compile(_SCALAR)
_SIGN_RE = re.compile(r"([-+])" + _WS)
# a number operand (``mul %x, 0.125``): its statement is built through the general callbacks
_LITERAL_RE = re.compile(r"(?:^|,)" + _WS + r"[-+0-9]")


def split_statements(build, tok: Token) -> None:
    """Builds every statement of a ``STMTS`` token through ``build`` (the frontend's transformer),
    making the tokens the general path would have made, in the order its callbacks run."""
    text = tok.value
    line = tok.line
    line_start = -(tok.column - 1)  # offset of the current line's first character in ``text``
    pos, end = 0, len(text)
    while pos < end:
        m = _LINE_RE.match(text, pos)
        if m is None:  # cannot happen: the terminal matched these lines
            raise AssertionError(f"STMTS line not matched: {text[pos:pos + 80]!r}")
        _statement(build, m, line, line_start)
        eol_start = m.start("eol")
        eol = m.group("eol")
        n = eol.count("\n")
        if n:
            line += n
            line_start = eol_start + eol.rindex("\n") + 1
        pos = m.end()


def _tokens(regex, text: str, offset: int, type_of, line: int, line_start: int) -> list[Token]:
    return [Token(type_of(t.group()), t.group(), start_pos=None, line=line, column=offset + t.start() - line_start + 1)
            for t in regex.finditer(text)]


def _value_type(_s: str) -> str:
    return "VALUE"


def _operand_type(s: str) -> str:
    return "VALUE" if s[0] == "%" else "SYMBOL" if s[0] == "@" else "NUMBER"


def _number_tokens(t: Token) -> list[Token]:
    """A number operand's tokens as Lark cuts them: an optional SIGN, then INT or FLOAT."""
    text = t.value
    sign = _SIGN_RE.match(text)
    digits = text[sign.end():] if sign else text
    kind = "INT" if digits[:2] == "0x" or digits.isdigit() else "FLOAT"
    number = Token(kind, digits, line=t.line, column=t.column + (sign.end() if sign else 0))
    return [Token("SIGN", sign.group(1), line=t.line, column=t.column), number] if sign else [number]


def _type_type(_s: str) -> str:
    return "TENSOR_TYPE"


def _statement(build, m: re.Match, line: int, line_start: int) -> None:
    g = m.group
    operands, attrs = g("operands"), g("attrs")
    if (operands is None or ("@" not in operands and _LITERAL_RE.search(operands) is None)) \
            and (attrs is None or "@" not in attrs):
        # no @symbol: what the op is depends only on this text and the operands' types
        if _known_shape(build, m, line, line_start):
            return
        _general(build, m, line, line_start)
        if build.last_built is not None:
            cls, values, attributes, types = build.last_built
            # (the key holds type ids: the entry keeps those types alive, so no id is reused)
            build.shapes[_shape_key(m, values)] = (cls, attributes, types, [v.type for v in values])
        return
    _general(build, m, line, line_start)


def _shape_key(m: re.Match, values) -> tuple:
    results = m.group("results")
    return (m.group("name"), m.group("attrs"), m.group("types"), results.count(",") + 1 if results else 0,
            *[id(v.type) for v in values])


def _known_shape(build, m: re.Match, line: int, line_start: int) -> bool:
    """A statement whose shape (op, attributes, types, result count, operand types) was built
    before, with every name defined and new: made directly from the recorded op; False, with
    nothing done, for anything else."""
    values, uses = [], []
    operands = m.group("operands")
    if operands is not None:
        base = m.start("operands") - line_start + 1
        for t in _VALUE_RE.finditer(operands):
            text = t.group()
            v = build.peek(text[1:])
            if v is None:
                return False
            values.append(v)
            uses.append((text, base + t.start(), v))
    hit = build.shapes.get(_shape_key(m, values))
    if hit is None:
        return False
    results = m.group("results")
    names = []
    if results is not None:
        scope = build.scopes[-1]
        base = m.start("results") - line_start + 1
        for t in _VALUE_RE.finditer(results):
            if t.group()[1:] in scope or any(t.group() == n for n, _ in names):
                return False  # a redefinition: the general path reports it
            names.append((t.group(), base + t.start()))
    cls, attributes, types, _operand_types = hit
    file, index = build.file, build.index
    for text, col, v in uses:
        index.value_uses.append((SourceLoc(file, line, col, len(text)), v))
    name, col = m.group("name"), m.start("name") - line_start + 1
    op = cls.create(operands=values, result_types=types, attributes=attributes, location=build.location(line, col))
    build.blocks[-1].add_op(op)
    index.op_locs[op] = SourceLoc(file, line, col, len(name))
    scope = build.scopes[-1] if names else None
    for (text, col), r in zip(names, op.results):
        key = text[1:]
        scope[key] = r
        set_name(r, key)  # (xDSL names may not start with a digit: those stay unnamed)
        index.value_defs[r] = SourceLoc(file, line, col, len(text))
    return True


def _general(build, m: re.Match, line: int, line_start: int) -> None:
    """The statement through the general path's callbacks, with the tokens Lark would make."""
    g = m.group
    name = Token("NAME", g("name"), line=line, column=m.start("name") - line_start + 1)
    results = None
    if g("results") is not None:
        results = _tokens(_VALUE_RE, g("results"), m.start("results"), _value_type, line, line_start)
    operands = None
    if g("operands") is not None:
        operands = []
        for t in _tokens(_OPERAND_RE, g("operands"), m.start("operands"), _operand_type, line, line_start):
            if t.type == "VALUE":
                operands.append(build.use([t]))
            elif t.type == "SYMBOL":
                operands.append(build.sym([t]))
            else:
                operands.append(build.literal(_number_tokens(t)))
    attrs = None
    if g("attrs") is not None:
        attrs = []
        base = m.start("attrs")
        for a in _ATTR_RE.finditer(g("attrs")):
            key = Token("NAME", a.group("key"), line=line, column=base + a.start() - line_start + 1)
            attrs.append(build.attr([key, _attr_value(build, a.group("value"), base + a.start("value"), line, line_start)]))
        attrs = build.attrs(attrs)
    types = None
    if g("types") is not None:
        types = build.types(_tokens(_TYPE_RE, g("types"), m.start("types"), _type_type, line, line_start))
    build.op([results, name, operands, attrs, types])


def _attr_value(build, text: str, offset: int, line: int, line_start: int):
    if text[0] == "[":
        return build.list([_scalar(build, s.group(), offset + s.start(), line, line_start)
                           for s in _SCALAR_RE.finditer(text)])
    return _scalar(build, text, offset, line, line_start)


def _scalar(build, text: str, offset: int, line: int, line_start: int):
    if text[0] == "@":
        return build.symbol([Token("SYMBOL", text, line=line, column=offset - line_start + 1)])
    sign = _SIGN_RE.match(text)
    digits = text[sign.end():] if sign else text
    kind = "INT" if digits[:2] == "0x" or digits.isdigit() else "FLOAT"
    number = Token(kind, digits)
    return build.number([Token("SIGN", sign.group(1)), number] if sign else [number])
