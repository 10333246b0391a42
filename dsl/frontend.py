"""The dataflow frontend: ``.lpu`` text to a ``builtin.module`` of ``df`` ops.

Lark LALR runs the ``_Build`` transformer during parsing (no parse tree is built): each
statement's callback resolves its operand names and creates its xDSL op on the spot, with the
op's ``.lpu`` location. Name resolution and type inference errors are collected, not raised,
so one run reports every mistake of a file; a syntax error drops its line and parsing resumes.

Library API (docs/dataflow.md): ``parse_module``, ``verify_module``, ``source_index``,
``loc_of``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import weakref
from dataclasses import dataclass, field
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from lark import Lark, Token, Transformer, UnexpectedInput
from xdsl.dialects.builtin import (
    ArrayAttr,
    FileLineColLoc,
    FunctionType,
    IntAttr,
    ModuleOp,
    StringAttr,
    SymbolRefAttr,
    UnitAttr,
)
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.utils.exceptions import VerifyException

from lpu.asm.parser import int_literal as _int
from lpu.asm.parser import list_elements
from lpu.asm.records import MAX_RANK
from lpu.asm.parser import number_literal as _number
from lpu.asm.parser import string_literal as _string
from lpu.perf import without_gc
from lpu.diagnostics import Diagnostic, DiagnosticError, SourceLoc, error
from lpu.dsl import dialect as D
from lpu.dsl import types as T
from lpu.dsl.fastpath import STMTS_PATTERN, split_statements
from lpu.dsl.verify import MAX_ERRORS, loc_of, verify_diagnostics, verify_module, verify_ops

__all__ = ["MAX_ERRORS", "SourceIndex", "SymbolParam", "check_module", "loc_of", "parse_module", "signatures_of", "source_index",
           "verify_diagnostics", "verify_module", "verify_ops"]



class SymbolParam:
    """A function's symbol parameter ``@name: TYPE`` in the source index: the key of its
    definition and of every use inside the function (a name, scoped to one function; compared
    equal when the function and the name are). ``func`` is the function's name, ``type`` the
    parameter's tensor type."""

    __slots__ = ("name", "type", "func")

    def __init__(self, name: str, type, func: str):
        self.name, self.type, self.func = name, type, func

    def __eq__(self, other) -> bool:
        return isinstance(other, SymbolParam) and (self.func, self.name) == (other.func, other.name)

    def __hash__(self) -> int:
        return hash((self.func, self.name))

    def __repr__(self) -> str:
        return f"SymbolParam(@{self.name} of @{self.func})"


@dataclass
class SourceIndex:
    """Where every named thing of a parsed module is defined and used (for the language
    server's go-to-definition, references and hover). A use of a function's symbol parameter
    is keyed by its ``SymbolParam`` (defined in ``param_defs``), a use of a module symbol by
    its name."""

    file: str
    value_defs: dict[SSAValue, SourceLoc] = field(default_factory=dict)
    value_uses: list[tuple[SourceLoc, SSAValue]] = field(default_factory=list)
    symbol_defs: dict[str, SourceLoc] = field(default_factory=dict)
    symbol_uses: list[tuple[SourceLoc, "str | SymbolParam"]] = field(default_factory=list)
    op_locs: dict[Operation, SourceLoc] = field(default_factory=dict)
    param_defs: dict[SymbolParam, SourceLoc] = field(default_factory=dict)

    def at(self, line: int, col: int):
        """The SSA value, ``@symbol`` name or ``SymbolParam`` whose definition or use covers
        (line, col)."""
        for loc, v in [*((l, v) for v, l in self.value_defs.items()), *self.value_uses,
                       *((l, s) for s, l in self.symbol_defs.items()), *self.symbol_uses,
                       *((l, p) for p, l in self.param_defs.items())]:
            if loc.line == line and loc.col <= col < loc.col + loc.length:
                return v
        return None

    def definition(self, target) -> SourceLoc | None:
        if isinstance(target, str):
            return self.symbol_defs.get(target)
        if isinstance(target, SymbolParam):
            return self.param_defs.get(target)
        return self.value_defs.get(target)

    def references(self, target) -> list[SourceLoc]:
        if isinstance(target, (str, SymbolParam)):
            return [l for l, s in self.symbol_uses if s == target and isinstance(s, type(target))]
        return [l for l, v in self.value_uses if v is target]


_INDEX: "weakref.WeakKeyDictionary[ModuleOp, SourceIndex]" = weakref.WeakKeyDictionary()


def source_index(module: ModuleOp) -> SourceIndex | None:
    return _INDEX.get(module)


class _Poison:
    """Stands for a value whose defining statement had an error, to stop cascades."""


POISON = _Poison()


class _Build(Transformer):
    def __init__(self, file: str):
        super().__init__(visit_tokens=False)
        # statement shape -> (op class, attributes, result types), for lpu.dsl.fastpath; kept
        # across parses (a shape means the same op in every file)
        self.shapes: dict[tuple, tuple] = {}
        self.reset(file)

    def reset(self, file: str) -> None:
        self.file = file
        self.file_attr = StringAttr(file)
        if len(self.shapes) > 50_000:
            self.shapes.clear()
        self._pending = None
        self.diags: list[Diagnostic] = []
        self.index = SourceIndex(file)
        self.symbols: dict[str, Operation] = {}
        self.blocks: list[Block] = []
        self.scopes: list[dict[str, SSAValue | _Poison]] = []
        self.target_decl: tuple | None = None
        self.signatures: dict[str, list[str]] = {}
        self.func_syms: dict[str, SymbolParam] = {}  # the symbol parameters of the function being read
        self.last_built: tuple | None = None  # (cls, values, attributes, result types) of the last op

    # --- helpers -----------------------------------------------------------------------------
    def loc(self, t: Token, length: int | None = None) -> SourceLoc:
        return SourceLoc(self.file, t.line, t.column, len(t.value) if length is None else length)

    def err(self, message: str, t: Token | SourceLoc, length: int | None = None) -> Diagnostic:
        d = error(message, t if isinstance(t, SourceLoc) else self.loc(t, length))
        self.diags.append(d)
        return d

    def at(self, op: Operation, t: Token) -> Operation:
        op.location = self.location(t.line, t.column)
        return op

    def location(self, line: int, col: int) -> FileLineColLoc:
        # built without re-verifying its parameters (a file name and two ints, made here)
        loc = FileLineColLoc.__new__(FileLineColLoc)
        loc.__dict__.update(filename=self.file_attr, line=_int_attr(line), column=_int_attr(col))
        return loc

    def peek(self, name: str):
        """The value ``%name`` (without the ``%``) stands for here, with no side effect; None
        when undefined or poisoned."""
        for scope in reversed(self.scopes):
            if name in scope:
                v = scope[name]
                return None if v is POISON else v
        return None

    def lookup(self, t: Token):
        name = t.value[1:]
        for scope in reversed(self.scopes):
            if name in scope:
                v = scope[name]
                if v is not POISON:
                    self.index.value_uses.append((self.loc(t), v))
                return v
        self.err(f"use of undefined value '{t.value}'", t)
        return POISON

    def define(self, t: Token, v: SSAValue | _Poison) -> None:
        name = t.value[1:]
        scope = self.scopes[-1]
        if name in scope:
            prev = scope[name]
            d = self.err(f"redefinition of value '{t.value}'", t)
            if prev is not POISON and prev in self.index.value_defs:
                d.note("previous definition is here", self.index.value_defs[prev])
            return
        scope[name] = v
        if v is not POISON:
            if not v.name_hint:
                D.set_name(v, name)
            self.index.value_defs[v] = self.loc(t)

    def define_symbol(self, t: Token, op: Operation) -> None:
        name = t.value[1:]
        if name in self.symbols:
            self.err(f"redefinition of '@{name}'", t).note("previous definition is here", self.index.symbol_defs[name])
            return
        self.symbols[name] = op
        self.index.symbol_defs[name] = self.loc(t)

    def type_of(self, t: Token):
        ty = T.parse_type(t.value)
        if 0 in T.shape_of(ty):  # as the assembler says of its tensors
            self.err("a tensor dimension must be at least 1", t)
        elif len(T.shape_of(ty)) > MAX_RANK:  # numpy holds 64; objects and images 8
            self.err(f"a tensor has at most {MAX_RANK} dimensions, not {len(T.shape_of(ty))}", t)
        return ty

    # --- module items --------------------------------------------------------------------------
    def start(self, c):
        return [x for x in c if isinstance(x, Operation)]

    def target(self, c):
        t = c[0]
        if self.target_decl is not None:
            self.err("a file has one 'target' directive", t).note("the first is here", self.target_decl[1])
            return None
        self.target_decl = (_string(t.value), self.loc(t))
        return None

    def placement(self, c):
        return c[0], c[1]

    def init_load(self, c):
        return ("load", StringAttr(_string(c[0].value)), c[0])

    def init_hex(self, c):
        return ("hex", StringAttr(c[0].value[4:-1]), c[0])

    def init_list(self, c):
        return ("list", c[0], None)

    def _tensor(self, c, cls, init=None):
        is_global = isinstance(c[0], Token) and c[0].type == "GLOBAL"
        sym, ty, placement = c[1:4] if is_global else c[0:3]
        attrs = {"sym_name": StringAttr(sym.value[1:]), "type": self.type_of(ty)}
        if is_global:
            attrs["global"] = UnitAttr()
        if placement is not None:
            attrs["placement"] = StringAttr(placement[0].value)
            if placement[1] is not None:
                attrs["address"] = D.int_attr(_int(placement[1].value))
        if init is not None:
            kind, value, _ = init
            attrs["init_kind"] = StringAttr(kind)
            if kind == "list":
                value = self._list_init(value, attrs["type"], ty)
                if value is None:
                    return None
            attrs["init"] = value
        op = self.at(cls.create(attributes=attrs), c[0])
        self.define_symbol(sym, op)
        return op

    def _list_init(self, values, ttype, tok):
        flat = list(list_elements(values))
        shape, elem = T.shape_of(ttype), T.elem_of(ttype)
        n = math.prod(shape)
        if any(isinstance(v, (str, tuple)) for v in flat):
            self.err("a tensor's list holds numbers only", tok)
            return None
        if len(flat) not in (1, n):
            self.err(f"{len(flat)} values given for {T.type_text(ttype)}, which holds {n}", tok)
            return None
        try:
            return _fill(flat, shape, elem)
        except ValueError as e:
            self.err(f"a tensor's list {e}", tok)
            return None

    def data(self, c):
        return self._tensor(c[:-1], D.DataOp, c[-1])

    def reserve(self, c):
        return self._tensor(c, D.ReserveOp)

    def extern(self, c):
        t = c[0]
        op = self.at(D.ExternOp.create(attributes={"sym_name": StringAttr(t.value[1:])}), t)
        self.define_symbol(t, op)
        return op

    def kernel(self, c):
        t = c[0]
        from lpu.asm.parser import parse as parse_asm
        padded = "\n" * (t.line - 1) + " " * (t.column - 1) + t.value + "\n"
        raw, diags = parse_asm(padded, self.file)
        self.diags.extend(diags)
        if not raw.kernels:
            return None
        rk = raw.kernels[0]
        attrs = {"sym_name": StringAttr(rk.name), "text": StringAttr(t.value)}
        if rk.is_global:
            attrs["global"] = UnitAttr()
        op = self.at(D.KernelOp.create(attributes=attrs), t)
        name_tok = Token("SYMBOL", "@" + rk.name, line=rk.line, column=rk.name_col)
        self.define_symbol(name_tok, op)
        return op

    # --- functions --------------------------------------------------------------------------
    def _pending_block(self) -> Block:
        if self._pending is None:
            self._pending = Block()
            self.scopes.append({})
            self.func_syms = {}
        return self._pending

    def param(self, c):
        name, ty = c
        block = self._pending_block()
        arg = block.insert_arg(self.type_of(ty), len(block.args))
        self.define(name, arg)
        return name

    def sym_param(self, c):
        name, ty = c
        self._pending_block()
        return ("sym_param", name, self.type_of(ty))

    def types(self, c):
        return [self.type_of(t) for t in c]

    def params(self, c):
        return c

    def func_head(self, c):
        sym, params, results = c
        block = self._pending if params else None
        self._pending = None
        if block is None:
            block = Block()
            self.scopes.append({})
            self.func_syms = {}
        self.blocks.append(block)
        ftype = FunctionType.from_lists([a.type for a in block.args], results or [])
        values = [p for p in params or [] if isinstance(p, Token)]
        attrs = {"sym_name": StringAttr(sym.value[1:]), "function_type": ftype,
                 "arg_names": ArrayAttr([StringAttr(p.value[1:]) for p in values])}
        syms = []
        for i, p in enumerate(params or []):
            if isinstance(p, tuple):  # a symbol parameter: in scope from here to the function's end
                _kind, tok, ty = p
                key = SymbolParam(tok.value[1:], ty, sym.value[1:])
                prev = self.func_syms.get(key.name)
                if prev is not None:
                    self.err(f"redefinition of symbol parameter '{tok.value}'", tok).note(
                        "previous definition is here", self.index.param_defs[prev])
                    continue
                self.func_syms[key.name] = key
                self.index.param_defs[key] = self.loc(tok)
                syms.append((i, key))
        if syms:
            attrs["sym_params"] = ArrayAttr([StringAttr(p.name) for _i, p in syms])
            attrs["sym_param_types"] = ArrayAttr([p.type for _i, p in syms])
            attrs["sym_param_positions"] = D.ints_attr([i for i, _p in syms])
        return sym, attrs

    def func(self, c):
        sym, attrs = c[0]
        block = self.blocks.pop()
        self.scopes.pop()
        self.func_syms = {}
        op = self.at(D.FuncOp.create(attributes=attrs, regions=[Region(block)]), sym)
        self.define_symbol(sym, op)
        return op

    def body(self, c):
        return None

    def stmts(self, c):
        split_statements(self, c[0])
        return None

    def results(self, c):
        return c

    def use(self, c):
        return ("use", self.lookup(c[0]), c[0])

    def _symbol_use(self, t: Token) -> str:
        name = t.value[1:]
        self.index.symbol_uses.append((self.loc(t), self.func_syms.get(name, name)))
        return name

    def sym(self, c):
        return ("sym", self._symbol_use(c[0]), c[0])

    def callee(self, c):
        self.index.symbol_uses.append((self.loc(c[0]), c[0].value[1:]))
        return ("callee", c[0].value[1:], c[0], c[1] or [])

    def args(self, c):
        return c

    def literal(self, c):
        """A number where an operand stands (``mul %x, 0.125``): a rank-0 constant of the other
        operand's element type, made by ``op`` once that type is known."""
        first = c[0]
        v = _number(c[-1].value)
        if len(c) == 2 and first.value == "-":
            v = -v
        return ("lit", v, first, sum(len(t.value) for t in c) if len(c) == 1 else
                c[-1].column + len(c[-1].value) - first.column)

    def operands(self, c):
        return c

    def iters(self, c):
        return c

    def iter(self, c):
        return c[0], self.lookup(c[1]), c[1]

    # --- attribute values -----------------------------------------------------------------
    def number(self, c):
        if len(c) == 2:
            v = _number(c[1].value)
            return -v if c[0].value == "-" else v
        return _number(c[0].value)

    def list(self, c):
        return [x for x in c if x is not None]

    def string(self, c):
        return _string(c[0].value)

    def symbol(self, c):
        return ("sym", self._symbol_use(c[0]))

    def attr(self, c):
        return c[0], c[1]

    def attrs(self, c):
        return [x for x in c if x is not None]

    # --- statements ---------------------------------------------------------------------
    def op(self, c):
        results, name, operands, attrs, types = c
        self.last_built = None
        cls = _op_class(name.value)
        if cls is None or cls in (D.FuncOp, D.ForOp, D.DataOp, D.ReserveOp, D.ExternOp, D.KernelOp):
            d = self.err(f"unknown operation '{name.value}'", name)
            close = difflib.get_close_matches(name.value.removeprefix("df."), _STATEMENT_OPS, 1)
            if close:
                d.note(f"did you mean '{close[0]}'?")
            return self._poison(results)
        values, attributes, literals = [], {}, []
        for i, o in enumerate(operands or []):
            if o[0] == "use":
                values.append(o[1])
            elif o[0] == "lit":
                if not (issubclass(cls, D.BinaryOp) or (cls is D.SelectOp and len(values) > 0)):
                    self.err(f"'{cls.name}' takes no number operand (only the binary ops do: "
                             f"{', '.join([*D.BINARY_OPS, *D.COMPARE_OPS])}; and select's values)", o[2], o[3])
                    return self._poison(results)
                literals.append((len(values), o))
                values.append(None)
            elif cls.SYMBOL is None:
                self.err(f"'{cls.name}' takes no @symbol operand", o[2])
                return self._poison(results)
            else:
                at = getattr(cls, "SYMBOL_AT", 0)
                if i != at or cls.SYMBOL in attributes:
                    self.err(f"'{cls.name}' takes its @symbol as operand {at + 1}", o[2])
                    return self._poison(results)
                attributes[cls.SYMBOL] = SymbolRefAttr(o[1])
                if o[0] == "callee":
                    syms = [(k, a) for k, a in enumerate(o[3]) if a[0] == "sym"]
                    if syms and cls is not D.CallOp:
                        self.err(f"'{cls.name}' takes no @symbol argument", syms[0][1][2])
                        return self._poison(results)
                    values.extend(a[1] for a in o[3] if a[0] == "use")
                    if syms:
                        attributes["sym_args"] = ArrayAttr([SymbolRefAttr(a[1]) for _k, a in syms])
                        attributes["sym_arg_positions"] = D.ints_attr([k for k, _a in syms])
                elif cls is D.CallOp:
                    self.err("a call needs its arguments in parentheses: @f(%a, ...)", o[2])
                    return self._poison(results)
        if any(v is POISON for v in values):
            return self._poison(results)
        for key, value in attrs or []:
            a = self._attr(cls, key, value, types)
            if a is None:
                return self._poison(results)
            attributes[key.value] = a
        if literals:
            consts = self._literals(cls, name, values, literals, attributes.get("chip"))
            if consts is None:
                return self._poison(results)
            for (k, _o), c in zip(literals, consts):
                values[k] = c.result
        if types is None:
            types = self._infer(cls, name, values, attributes)
            if types is None:
                return self._poison(results)
        nres = len(results or [])
        if nres != len(types):
            self.err(f"'{cls.name}' gives {len(types)} result{'s' if len(types) != 1 else ''} but "
                     f"{nres} name{'s are' if nres != 1 else ' is'} bound", name)
            return self._poison(results)
        self.last_built = (cls, values, attributes, types)
        op = cls.create(operands=values, result_types=types, attributes=attributes,
                        location=self.location(name.line, name.column))
        self.blocks[-1].add_op(op)
        self.index.op_locs[op] = self.loc(name)
        for t, r in zip(results or [], op.results):
            self.define(t, r)
        return None

    def _literals(self, cls, name: Token, values, literals, chip):
        """The constants of ``literals`` (number operands of a binary op), each of the element type
        of the op's value operand, added to the block before the op, at its location."""
        others = [v for v in (values[1:] if cls is D.SelectOp else values) if v is not None]  # (select: a, b)
        if not others:
            self.err(f"'{cls.name}' needs a value operand beside its numbers", name)
            return None
        elem = T.elem_of(others[0].type)
        consts = []
        for _k, (_kind, v, tok, length) in literals:
            try:
                if elem in T.INTS and not isinstance(v, int):
                    raise ValueError(f"is not an integer, as the other operand's {elem} needs")
                attr = _fill([v], (), elem)
            except ValueError as e:
                text = str(e).replace("holds a value out of range for", "is out of range for")
                self.err(f"the number {v!r} {text}", tok, length)
                return None
            attrs = {"value": attr} if chip is None else {"value": attr, "chip": chip}
            c = D.ConstantOp.create(result_types=[attr.type], attributes=attrs,
                                    location=self.location(name.line, name.column))
            self.blocks[-1].add_op(c)
            consts.append(c)
        return consts

    def _poison(self, results):
        for t in results or []:
            self.define(t, POISON)
        return None

    def _attr(self, cls, key: Token, value, types):
        kind = "int" if key.value == "chip" else cls.ATTRS.get(key.value)
        if kind is None:
            known = ", ".join(f"'{k}'" for k in [*cls.ATTRS, "chip"])
            self.err(f"'{cls.name}' has no attribute '{key.value}' (it has {known})", key)
            return None
        try:
            return _convert(kind, value, types)
        except ValueError as e:
            self.err(f"'{key.value}' {e}", key)
            return None

    def _infer(self, cls, name: Token, values, attributes):
        if cls in (D.GetOp, D.CallOp):
            sym = attributes[cls.SYMBOL].root_reference.data if cls.SYMBOL in attributes else None
            if cls is D.GetOp and sym in self.func_syms:
                return [self.func_syms[sym].type]
            target = self.symbols.get(sym)
            if target is None and cls is D.CallOp and sym in self.signatures:
                try:  # a function defined further down: its signature line says what it returns
                    return [T.parse_type(t) for t in self.signatures[sym]]
                except T.TypeError_:
                    pass
            if target is None:
                self.err(f"'{cls.name}' of '@{sym}' needs its result types after ':' "
                         f"('@{sym}' is not defined above)", name)
                return None
            if isinstance(target, D.FuncOp):
                return list(target.function_type.outputs.data)
            if isinstance(target, (D.DataOp, D.ReserveOp)) and cls is D.GetOp:
                return [target.type]
            outs = D.get_syms(SimpleNamespace(attributes=attributes), "outputs") or []
            found = [self.func_syms.get(s) or self.symbols.get(s) for s in outs]
            if isinstance(target, D.KernelOp) and all(isinstance(f, (D.DataOp, D.ReserveOp, SymbolParam))
                                                      for f in found):
                return [f.type for f in found]
            self.err(f"'{cls.name}' of '@{sym}' needs its result types after ':'", name)
            return None
        try:
            types = cls.infer([v.type for v in values], SimpleNamespace(attributes=attributes))
        except VerifyException as e:
            self.err(f"'{cls.name}' op {e}", name)
            return None
        except (IndexError, TypeError):
            self.err(f"'{cls.name}' cannot take {len(values)} operand{'s' if len(values) != 1 else ''}", name)
            return None
        if types is None:
            if not _has_results(cls):
                return []
            self.err(f"'{cls.name}' needs its result type after ':'", name)
        return types

    def for_head(self, c):
        iv, lo, hi, step, iters, types = c
        inits = [v for _, v, _ in iters or []]
        block = Block(arg_types=[T.index_type(), *[v.type if v is not POISON else T.index_type() for v in inits]])
        self.blocks.append(block)
        self.scopes.append({})
        self.define(iv, block.args[0])
        for (name, v, _t), arg in zip(iters or [], block.args[1:]):
            self.define(name, POISON if v is POISON else arg)
        return iv, _int(lo.value), _int(hi.value), _int(step.value) if step else 1, inits, types

    def for_op(self, c):
        results, (iv, lo, hi, step, inits, types), _body = c
        block = self.blocks.pop()
        self.scopes.pop()
        if len(self.blocks) > MAX_LOOP_DEPTH:  # the function's block, then the enclosing loops
            if len(self.blocks) == MAX_LOOP_DEPTH + 1:  # once, at the outermost loop too deep
                self.err(f"loops nest at most {MAX_LOOP_DEPTH} deep", iv)
            return self._poison(results)
        if any(v is POISON for v in inits):
            return self._poison(results)
        if types is not None and types != [v.type for v in inits]:
            self.err("the types after ':' must be those of the iteration values", iv)
            return self._poison(results)
        if len(results or []) != len(inits):
            self.err(f"a loop with {len(inits)} iteration value{'s' if len(inits) != 1 else ''} "
                     f"gives as many results, not {len(results or [])}", iv)
            return self._poison(results)
        op = D.ForOp.create(operands=inits, result_types=[v.type for v in inits], regions=[Region(block)],
                            attributes={"lower": D.int_attr(lo), "upper": D.int_attr(hi), "step": D.int_attr(step)})
        # the location is that of the `for` keyword, one column before the counter's `%` minus "for "
        op.location = FileLineColLoc(self.file_attr, IntAttr(iv.line), IntAttr(max(1, iv.column - 4)))
        self.blocks[-1].add_op(op)
        for t, r in zip(results or [], op.results):
            self.define(t, r)
        return None


# Verifying, printing and lowering walk regions recursively (here and in xDSL): a program of loops
# nested a thousand deep raised RecursionError. Real programs nest a few.
MAX_LOOP_DEPTH = 32


@lru_cache(maxsize=1 << 17)  # line and column numbers: a 50,000-line file must not miss
def _int_attr(v: int) -> IntAttr:
    return IntAttr(v)


@lru_cache(maxsize=None)
def _has_results(cls) -> bool:
    return bool(cls.get_irdl_definition().results)


_STATEMENT_OPS = sorted(n[3:] for n in D.BY_NAME)


@lru_cache(maxsize=None)
def _op_class(name: str):
    return D.BY_NAME.get(name if name.startswith("df.") else "df." + name)


def _convert(kind: str, value, types):
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be an integer")
        return D.int_attr(value)
    if kind == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError("must be a number")
        return D.float_attr(value)
    if kind == "ints":
        if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
            raise ValueError("must be a list of integers")
        return D.ints_attr(value)
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return StringAttr(value)
    if kind == "sym":
        if not (isinstance(value, tuple) and value[0] == "sym"):
            raise ValueError("must be a @symbol")
        return SymbolRefAttr(value[1])
    if kind == "syms":
        if not isinstance(value, list) or not all(isinstance(v, tuple) for v in value):
            raise ValueError("must be a list of @symbols")
        return ArrayAttr([SymbolRefAttr(v[1]) for v in value])
    if kind == "value":
        if not types or len(types) != 1:
            raise ValueError("needs the constant's type after ':'")
        flat = list(list_elements(value if isinstance(value, list) else [value]))
        if not all(isinstance(v, (int, float)) for v in flat):
            raise ValueError("must be a number or a list of numbers")
        shape, elem = T.shape_of(types[0]), T.elem_of(types[0])
        n = math.prod(shape)
        if len(flat) not in (1, n):
            raise ValueError(f"has {len(flat)} values but {T.type_text(types[0])} holds {n}")
        return _fill(flat, shape, elem)
    raise ValueError("has an unknown kind")


# One value fills a whole tensor (`= [0]`): the contents are made at once, so a type's size is
# bounded before they are (tensor<100000x100000xi8> = [1] asked numpy for 9.3 GiB). 256 MiB is
# beyond the SRAM of a chip (lpu-v1: 230 MB), where such contents go.
MAX_FILL_BYTES = 1 << 28


def _fill(flat: list, shape: tuple, elem: str):
    size = math.prod(shape) * T.dtype(elem).itemsize
    if size > MAX_FILL_BYTES:
        raise ValueError(f"fills {size} bytes, more than {MAX_FILL_BYTES} (a chip's SRAM holds less)")
    arr = np.asarray(flat, dtype=np.float64 if elem in T.FLOATS else np.int64)
    if elem in T.INTS:
        info = np.iinfo(T.dtype(elem))
        if arr.min() < info.min or arr.max() > info.max:
            raise ValueError(f"holds a value out of range for {elem}")
    arr = arr.reshape(shape) if arr.size == math.prod(shape) else np.broadcast_to(arr.reshape(()), shape)
    return D.dense_attr(arr, elem)


@lru_cache(maxsize=None)
def _grammar(fast: bool = True) -> str:
    """The grammar, with the STMTS terminal of the fast path (``fast=False``: without it, every
    statement goes through ``stmt``; the tests compare the two)."""
    with open(os.path.join(os.path.dirname(__file__), "dataflow.lark"), encoding="utf-8") as f:
        text = f.read()
    if not fast:
        return text.replace("body: (stmt | stmts | _NL)*", "body: (stmt | _NL)*").replace("stmts: STMTS\n", "")
    return text + "\nSTMTS.3: /" + STMTS_PATTERN.replace("/", "\\/") + "/\n"


@lru_cache(maxsize=None)
def _parser(fast: bool = True) -> tuple[Lark, _Build]:
    """The LALR parser, built once, and the transformer it calls during parsing; the
    transformer's state is reset before each parse (parsing is not re-entrant)."""
    build = _Build("<input>")
    return Lark(_grammar(fast), parser="lalr", lexer="contextual", transformer=build,
                propagate_positions=False, maybe_placeholders=True, cache=True), build


_NAMES = {
    "_NL": "end of line", "NAME": "an operation name", "SYMBOL": "a symbol (@name)", "VALUE": "a value (%name)",
    "INT": "an integer", "FLOAT": "a number", "STRING": "a string", "TENSOR_TYPE": "a tensor type",
    "COMMA": "','", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'", "COLON": "':'",
    "EQUAL": "'='", "LPAR": "'('", "RPAR": "')'", "SIGN": "a sign", "HEX_BYTES": "hex bytes",
    "GLOBAL": "'global'", "KERNEL": "a kernel", "$END": "end of file", "MORETHAN": "'>'", "__ANON_0": "'->'",
}


_FIRST_TOKEN = re.compile(r"%[A-Za-z0-9_$.-]+|[A-Za-z_][A-Za-z0-9_.]*")


def _describe(terminals) -> str:
    # (STMTS, the fast path's run of statements, is expected wherever VALUE and NAME are)
    names = sorted({_NAMES.get(t, f"'{t.lower()}'" if t.isalpha() and t.isupper() else t)
                    for t in terminals if t != "STMTS"})
    if len(names) > 6:
        names = names[:6] + ["..."]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _diagnose(e: UnexpectedInput, file: str, lines: list[str]) -> Diagnostic:
    from lark import UnexpectedCharacters, UnexpectedToken
    if isinstance(e, UnexpectedToken) and e.token.type != "$END":
        tok = e.token
        if tok.type == "STMTS":  # (the root lexer's token where a statement may not start): its first token
            first = _FIRST_TOKEN.match(tok.value).group()
            tok = Token("VALUE" if first[0] == "%" else "NAME", first, line=tok.line, column=tok.column)
        shown = "end of line" if tok.type == "_NL" else f"'{tok.value}'"
        return error(f"unexpected {shown}, expected {_describe(e.accepts or e.expected)}",
                     SourceLoc(file, tok.line, tok.column, 1 if tok.type == "_NL" else max(1, len(tok.value))))
    if isinstance(e, UnexpectedCharacters):
        line = lines[e.line - 1] if 0 < e.line <= len(lines) else ""
        ch = line[e.column - 1] if 0 < e.column <= len(line) else ""
        return error(f"unexpected character {ch!r}", SourceLoc(file, e.line, e.column))
    last = max(1, len(lines))
    expected = getattr(e, "expected", None) or []
    return error(f"unexpected end of file, expected {_describe(expected) if expected else 'more'}",
                 SourceLoc(file, last, len(lines[-1]) + 1 if lines else 1))


_SIGNATURE = re.compile(r"^[ \t]*func[ \t]+@([A-Za-z_][A-Za-z0-9_.$]*)[ \t]*\([^)]*\)[ \t]*(?:->([^{\n]*))?\{", re.M)


def signatures_of(text: str) -> dict[str, list[str]]:
    """Each function's result types as its header writes them (``call`` of a function defined
    further down takes its result types from here)."""
    return {m.group(1): [t for t in re.split(r"[\s,]+", m.group(2) or "") if t] for m in _SIGNATURE.finditer(text)}


def _parse(text: str, file: str, fast: bool = True, signatures: dict | None = None,
           symbols: dict | None = None) -> tuple[ModuleOp | None, _Build, list[Diagnostic]]:
    """``signatures`` and ``symbols`` (name -> op defined above) stand for the rest of a file
    when ``text`` is one item of it (lpu.dsl.incremental)."""
    parser, build = _parser(fast)
    if not text.endswith("\n"):
        text += "\n"
    lines = text.split("\n")
    syntax: list[Diagnostic] = []
    if signatures is None:
        signatures = signatures_of(text)
    while True:
        build.reset(file)
        build.signatures = signatures
        if symbols:
            build.symbols.update(symbols)
        try:
            items = parser.parse("\n".join(lines))
            break
        except UnexpectedInput as e:
            d = _diagnose(e, file, lines)
            syntax.append(d)
            line = d.loc.line
            if not (1 <= line <= len(lines)) or not lines[line - 1].strip() or len(syntax) >= MAX_ERRORS \
                    or "end of file" in d.message:
                if len(syntax) >= MAX_ERRORS:
                    syntax.append(error("too many errors emitted, stopping now"))
                return None, build, syntax
            lines[line - 1] = ""  # drop the line and go on, to report every syntax error
    module = ModuleOp([op for op in items if op is not None])
    if build.target_decl is not None:
        module.attributes["df.target"] = StringAttr(build.target_decl[0])
    _INDEX[module] = build.index
    return module, build, syntax + build.diags


def parse_module(text: str, filename: str = "<input>") -> ModuleOp:
    """Parse and verify a ``.lpu`` file's dataflow level (its kernels are kept as ``df.kernel``
    ops, checked by the assembly parser). Raises ``DiagnosticError`` with every diagnostic."""
    module, diags = check_module(text, filename)
    if diags:
        raise DiagnosticError(diags)
    return module


@without_gc
def check_module(text: str, filename: str = "<input>") -> tuple[ModuleOp | None, list[Diagnostic]]:
    """Like ``parse_module``, but returns what it could build together with every diagnostic
    (the language server shows both)."""
    module, _build, diags = _parse(text, filename)
    if module is None:
        return None, diags
    if not diags:
        diags = verify_diagnostics(module)
    return module, diags
