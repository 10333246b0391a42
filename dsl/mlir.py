"""MLIR text in and out of ``df`` modules: what ``lpu-opt --emit mlir`` prints and what reads back,
also after upstream ``mlir-opt`` has rewritten it.

``mlir-opt`` renames every value (``%x`` becomes ``%arg0``) and, with ``--mlir-print-debuginfo``,
prints locations as ``#loc`` aliases defined *after* the module, which MLIR allows for locations
only. So reading MLIR back (1) resolves location aliases wherever they are defined, (2) maps every
location to the ``file:line:col`` the rest of the toolchain works with — a named location
``loc("df.add"("f":3:4))`` to its child, ``fused[...]`` to its first file position,
``callsite(A at B)`` to ``A`` (where the op is), a range ``"f":3:4 to 5:6`` to its start — and
(3) names each function's arguments after its kept ``arg_names`` and its returned values after
``df.result_names`` (which ``emit_mlir`` adds for the purpose), so ``lpu run --input x=…
--output y=…`` and the printed ``.lpu`` see ``%x`` and ``%y`` again. Symbol parameters are plain attributes
(``sym_params``, ``sym_args``), which ``mlir-opt`` keeps as they are.
"""

from __future__ import annotations

import io
import re

from xdsl.dialects.builtin import ArrayAttr, FileLineColLoc, IntAttr, LocationAttr, ModuleOp, StringAttr, UnknownLoc
from xdsl.ir import SSAValue
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError
from xdsl.utils.lexer import Input, Span
from xdsl.utils.mlir_lexer import MLIRTokenKind

from lpu.diagnostics import DiagnosticError, SourceLoc, error

# A top-level location alias definition: MLIR prints these at the start of a line, before or
# after the module (`#loc3 = loc("f.lpu":6:8)`), and lets an op use one before it is defined.
_LOC_ALIAS = re.compile(r"^(#[A-Za-z_][A-Za-z0-9_$.-]*)[ \t]*=[ \t]*(?=loc\s*\()", re.M)


class _LocationAliases:
    """Every location alias of one text: where it is defined, and what it stands for once read."""

    def __init__(self, text: str, filename: str) -> None:
        self.offsets: dict[str, int] = {}  # where each definition's loc(...) starts
        self.names: dict[str, Span] = {}  # where each alias is defined
        self.duplicates: list[Span] = []
        source = Input(text, filename)
        for m in _LOC_ALIAS.finditer(text):
            span = Span(m.start(1), m.end(1), source)
            if m.group(1) in self.offsets:
                self.duplicates.append(span)
            else:
                self.offsets[m.group(1)], self.names[m.group(1)] = m.end(), span
        self.values: dict[str, LocationAttr] = {}
        self.reading: set[str] = set()


class _MLIRParser(Parser):
    """xDSL's parser, reading locations as the toolchain keeps them (see the module's doc)."""

    def __init__(self, ctx, text: str, filename: str, aliases: _LocationAliases) -> None:
        super().__init__(ctx, text, filename)
        self._text, self._filename, self._aliases = text, filename, aliases

    # --- locations ----------------------------------------------------------------------------
    def _parse_location(self) -> LocationAttr:
        if self.parse_optional_keyword("unknown"):
            return UnknownLoc()
        token = self._current_token
        if token.kind == MLIRTokenKind.HASH_IDENT:
            self._consume_token()
            return self._alias(token.text, token.span)
        if (name := self.parse_optional_str_literal()) is not None:
            if self.parse_optional_punctuation(":") is not None:
                return self._file_position(name)
            if self._current_token.kind == MLIRTokenKind.L_PAREN:  # a named location: its child
                with self.in_parens():
                    return self._parse_location()
            return UnknownLoc()  # a bare name says nothing of where
        if self.parse_optional_keyword("callsite"):
            with self.in_parens():
                callee = self._parse_location()
                self.parse_keyword("at")
                caller = self._parse_location()
            return callee if isinstance(callee, FileLineColLoc) else caller
        if self.parse_optional_keyword("fused"):
            if self.parse_optional_punctuation("<") is not None:  # metadata, of no use here
                self.parse_attribute()
                self.parse_punctuation(">")
            parts = self.parse_comma_separated_list(self.Delimiter.SQUARE, self._parse_location)
            return next((p for p in parts if isinstance(p, FileLineColLoc)), UnknownLoc())
        self.raise_error("expected a location: unknown, \"file\":line:col, a name, callsite(...), "
                         "fused[...] or a #alias")

    def _file_position(self, filename: str) -> FileLineColLoc:
        """``"f":L:C``, or a range (``"f":L``, ``"f":L:C to :C2``, ``… to L2:C2``): its start."""
        line = self.parse_integer(False, False)
        col = self.parse_integer(False, False) if self.parse_optional_punctuation(":") is not None else 1
        if self.parse_optional_keyword("to"):
            if self.parse_optional_punctuation(":") is not None:
                self.parse_integer(False, False)
            else:
                self.parse_integer(False, False)
                if self.parse_optional_punctuation(":") is not None:
                    self.parse_integer(False, False)
        return FileLineColLoc(StringAttr(filename), IntAttr(line), IntAttr(col))

    def _alias(self, name: str, span) -> LocationAttr:
        aliases = self._aliases
        if name in aliases.values:
            return aliases.values[name]
        if name in aliases.offsets:
            if name in aliases.reading:
                self.raise_error(f"location alias '{name}' is defined in terms of itself", span)
            aliases.reading.add(name)
            # read the definition where it stands (before or after this use), then come back
            sub = _MLIRParser(self.ctx, self._text, self._filename, aliases)
            sub._resume_from(aliases.offsets[name])
            value = sub.parse_optional_location()
            aliases.reading.discard(name)
            if value is None:
                self.raise_error(f"location alias '{name}' is not a location", span)
            aliases.values[name] = value
            return value
        defined = self.attribute_aliases.get(name)
        if isinstance(defined, LocationAttr):
            return defined
        if defined is not None:
            self.raise_error(f"'{name}' is not a location alias", span)
        self.raise_error(f"undefined location alias '{name}'", span)

    def _parse_alias_def(self) -> None:
        """A location alias was (or will be) read where it was first used; read it again here
        only to step over it. Other aliases are xDSL's."""
        token = self._current_token
        if token.kind != MLIRTokenKind.HASH_IDENT or token.text not in self._aliases.offsets:
            return super()._parse_alias_def()
        self._consume_token()
        self.parse_punctuation("=", "after attribute alias name")
        self._alias(token.text, token.span)
        self.parse_optional_location()


def parse_mlir(text: str, filename: str) -> ModuleOp:
    """MLIR text (generic or xDSL custom form) of a ``df`` module, as ``lpu-opt --emit mlir``
    prints it or as ``mlir-opt`` (with or without ``--mlir-print-debuginfo``) gives it back."""
    from lpu.dsl import dialect as D
    from lpu.dsl.passes import context

    aliases = _LocationAliases(text, filename)
    try:
        if aliases.duplicates:
            span = aliases.duplicates[0]
            raise ParseError(span, f"re-declaration of alias '{span.text}'")
        parser = _MLIRParser(context(), text, filename, aliases)
        for name, span in aliases.names.items():  # an unused alias is read too: a bad one is an error
            parser._alias(name, span)
        module = parser.parse_module()
    except ParseError as e:
        span = e.span
        line = text.count("\n", 0, span.start) + 1
        col = span.start - (text.rfind("\n", 0, span.start) + 1) + 1
        msg = str(e.msg if hasattr(e, "msg") else e).strip().splitlines()[-1]
        raise DiagnosticError(error(msg, SourceLoc(filename, line, col, max(1, span.end - span.start)))) from None
    for op in module.ops:
        if isinstance(op, D.FuncOp):
            _name_values(op)
    return module


def _name_values(func) -> None:
    """The names ``mlir-opt`` dropped, back from the function's attributes: its arguments'
    (``arg_names``) and its results' (``df.result_names``, which only the MLIR form carries)."""
    from lpu.dsl.dialect import set_name

    block = func.body.block
    names = func.arg_names.data if func.arg_names is not None else ()
    for arg, name in zip(block.args, names):
        if isinstance(name, StringAttr) and SSAValue.is_valid_name(name.data):
            set_name(arg, name.data)
    results = func.attributes.pop(_RESULT_NAMES, None)
    ret = block.last_op
    if isinstance(results, ArrayAttr) and ret is not None:
        taken = {a.name_hint for a in block.args}
        for value, name in zip(ret.operands, results.data):
            if isinstance(name, StringAttr) and name.data and name.data not in taken and \
                    value.name_hint is None and SSAValue.is_valid_name(name.data):
                set_name(value, name.data)
                taken.add(name.data)


#: a function's result names (``lpu run --output y=…`` names a result by its returned value,
#: whose name MLIR does not keep), written into the MLIR form only and taken out when read back
_RESULT_NAMES = "df.result_names"


def _printer(out):
    """xDSL's printer with names that never collide: it prints a second ``%s`` as ``%s_1``
    even when the program has its own ``%s_1`` (the language keeps the names it reads, and
    a decomposition gives its ops the name of the op they replace)."""
    from xdsl.printer import Printer

    class _Printer(Printer):
        def print_ssa_value(self, value) -> str:
            hint = value.name_hint
            if value in self._ssa_values or not hint:
                return super().print_ssa_value(value)
            names = self.ssa_names
            i = names.get(hint, 0)
            name = hint if i == 0 else f"{hint}_{i}"
            while i and name in names:
                i += 1
                name = f"{hint}_{i}"
            names[hint] = i + 1
            names.setdefault(name, 1)
            self._ssa_values[value] = name
            self.print_string(f"%{name}")
            return name

    return _Printer(stream=out, print_generic_format=True, print_debuginfo=True)


def emit_mlir(module: ModuleOp) -> str:
    """MLIR's generic form with ``loc(...)`` on every op, which upstream
    ``mlir-opt --allow-unregistered-dialect`` parses."""
    from lpu.dsl import dialect as D
    named = []
    for op in module.ops:
        ret = op.body.block.last_op if isinstance(op, D.FuncOp) else None
        if ret is not None and _RESULT_NAMES not in op.attributes:
            names = [v.name_hint or "" for v in ret.operands]
            if any(names):
                op.attributes[_RESULT_NAMES] = ArrayAttr([StringAttr(n) for n in names])
                named.append(op)
    out = io.StringIO()
    try:
        _printer(out).print_op(module)
    finally:
        for op in named:
            del op.attributes[_RESULT_NAMES]
    return out.getvalue() + "\n"


__all__ = ["parse_mlir", "emit_mlir"]
