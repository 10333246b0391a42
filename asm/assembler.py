"""The assembler: parsed statements, checked against the ISA table and the chip, into records.

Every check reports a diagnostic and goes on, so that one run reports every error of a file.
"""

from __future__ import annotations

import difflib
import math
import os
import re

import numpy as np

from lpu.arch.config import ChipConfig, load_config
from lpu.arch.isa import BY_MNEMONIC, DTYPE_BYTES, DTYPES, INTS, group_width, runs_on
from lpu.arch.layout import NUMPY_DTYPES, element_type_of, to_sram
from lpu.arch.layout import words as tensor_words
from lpu.asm.operands import OperandError, parse_operand
from lpu.asm.parser import RawModule, list_elements, parse
from lpu.asm.records import MAX_RANK, Inst, Kernel, Placement, Program, SymRef, Tensor
from lpu.diagnostics import Diagnostic, DiagnosticError, SourceLoc, error, printable
from lpu.files import NpyError, parse_npy
from lpu.perf import without_gc

_TENSOR_RE = re.compile(r"^tensor<((?:[0-9]+x)*)(i8|i16|i32|f16|bf16|f32)>$")
_HEMI_RE = re.compile(r"^MEM_([WE])$")
_KIND_NAMES = {"mem": "MEM slices", "vxm": "VXM ALUs", "mxm": "MXM planes", "sxm": "SXM units",
               "c2c": "C2C units", "any": "every queue"}
_KIND_ONE = {"mem": "a MEM slice", "vxm": "a VXM ALU", "mxm": "an MXM plane", "sxm": "an SXM unit",
             "c2c": "a C2C unit"}


def _operand_index(ri, loc: SourceLoc) -> int:
    """Which raw operand of ``ri`` a checked operand's location came from."""
    for i, o in enumerate(ri.operands):
        if o.col == loc.col and o.length == loc.length:
            return i
    raise AssertionError("an operand location that no operand has")


def parse_tensor_type(text: str) -> tuple[tuple[int, ...], str] | None:
    m = _TENSOR_RE.match(text)
    if not m:
        return None
    dims = tuple(int(d) for d in m.group(1).split("x") if d)
    return dims, m.group(2)


class _Assembler:
    def __init__(self, raw: RawModule, cfg: ChipConfig, base_dir: str) -> None:
        self.raw = raw
        self.cfg = cfg
        self.file = raw.file
        self.base_dir = base_dir
        self.diags: list[Diagnostic] = []
        self.symbols: dict[str, tuple[str, object, SourceLoc]] = {}  # name -> (kind, record, loc)
        self._checked: dict[tuple, tuple] = {}  # instruction text -> checked fields (see inst)
        self._tails: dict[tuple, int] = {}
        self.op_names: dict[tuple[str, int, int], str] = {}  # from named loc(...) annotations

    def loc(self, line: int, col: int, length: int = 1) -> SourceLoc:
        return SourceLoc(self.file, line, col, length)

    def err(self, message: str, loc: SourceLoc) -> Diagnostic:
        d = error(message, loc)
        self.diags.append(d)
        return d

    def define(self, name: str, kind: str, record, loc: SourceLoc) -> bool:
        if name in self.symbols:
            self.err(f"redefinition of '@{name}'", loc).note("previous definition is here", self.symbols[name][2])
            return False
        self.symbols[name] = (kind, record, loc)
        return True

    # --- data -------------------------------------------------------------------------------
    def tensor(self, rt) -> Tensor | None:
        if rt.placement is None:  # a dataflow tensor: the compiler places it (docs/language.md)
            self.define(rt.name, "unplaced", None, self.loc(rt.line, rt.name_col, len(rt.name) + 1))
            return None
        t = self._tensor(rt)
        if t is None and rt.name not in self.symbols:  # keep the name defined: no cascade of errors
            self.define(rt.name, "broken", None, self.loc(rt.line, rt.name_col, len(rt.name) + 1))
        return t

    def _tensor(self, rt) -> Tensor | None:
        cfg = self.cfg
        name_loc = self.loc(rt.line, rt.name_col, len(rt.name) + 1)
        parsed = parse_tensor_type(rt.type_text)
        if parsed is None:
            self.err(f"invalid tensor type '{rt.type_text}'", self.loc(rt.line, rt.type_col, len(rt.type_text)))
            return None
        shape, dtype = parsed
        if any(d == 0 for d in shape):
            self.err("a tensor dimension must be at least 1", self.loc(rt.line, rt.type_col, len(rt.type_text)))
            return None
        if len(shape) > MAX_RANK:  # what objects and images hold (numpy's own limit is 64)
            self.err(f"a tensor has at most {MAX_RANK} dimensions, not {len(shape)}",
                     self.loc(rt.line, rt.type_col, len(rt.type_text)))
            return None
        pname, pcol, address = rt.placement
        ploc = self.loc(rt.line, pcol, len(pname))
        nwords = tensor_words(shape, dtype, cfg.lanes)
        m = _HEMI_RE.match(pname)
        if m:
            placement = Placement(None, m.group(1), None)
            if address is not None:
                self.err(f"'at' needs a slice, not the hemisphere {pname}", ploc)
                return None
        elif pname in cfg.slice_by_name and cfg.slice_by_name[pname].kind == "mem":
            placement = Placement(pname, None, address)
            if address is not None and not 0 <= address or address is not None and address + nwords > cfg.words:
                self.err(f"@{rt.name} at address {address} needs {nwords} words, past the end of {pname} "
                         f"({cfg.words} words)", ploc)
                return None
        else:
            close = difflib.get_close_matches(pname, [s.name for s in cfg.mem_slices] + ["MEM_W", "MEM_E"], 1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.err(f"unknown MEM slice '{pname}' (a slice such as MEM_W3, or MEM_W/MEM_E for any slice "
                     f"of a hemisphere){hint}", ploc)
            return None
        if nwords > cfg.words:
            self.err(f"@{rt.name} needs {nwords} words, more than a slice holds ({cfg.words})", name_loc)
            return None
        image = None
        if rt.init is not None:
            array = self.contents(rt, shape, dtype)
            if array is None:
                return None
            image = to_sram(array, dtype, cfg.lanes)
        # the object records where the tensor was first written: a loc(...) annotation says so
        t = Tensor(rt.name, dtype, shape, placement, image, rt.is_global,
                   SourceLoc(*rt.loc, len(rt.name) + 1) if rt.loc else name_loc, nwords)
        return t if self.define(rt.name, "tensor", t, name_loc) else None

    def contents(self, rt, shape, dtype) -> np.ndarray | None:
        kind, value, line, col = rt.init
        npdt = NUMPY_DTYPES[dtype]
        if kind == "load":
            loc = self.loc(line, col, len(value) + 2)
            path = value if os.path.isabs(value) else os.path.join(self.base_dir, value)
            try:
                with open(path, "rb") as f:
                    array = parse_npy(f.read())
            except OSError as e:
                self.err(f"cannot load '{printable(value)}': {e.strerror}", loc)
                return None
            except ValueError as e:  # NpyError, or a NUL in the name
                why = e if isinstance(e, NpyError) else "a file name holds no NUL"
                self.err(f"cannot load '{printable(value)}': {why}", loc)
                return None
            got = element_type_of(array.dtype)
            if got != dtype:
                self.err(f"'{value}' holds {got or array.dtype} elements, but @{rt.name} is {dtype}", loc)
                return None
            if tuple(array.shape) != shape:
                want = "x".join(map(str, shape))
                self.err(f"'{value}' has shape {'x'.join(map(str, array.shape)) or 'scalar'}, but @{rt.name} "
                         f"is {want}", loc)
                return None
            return array
        loc = self.loc(line, col, value.length if kind == "list" else 1)
        if kind == "hex":
            raw = bytes.fromhex(value) if len(value) % 2 == 0 else None
            n = math.prod(shape) * DTYPE_BYTES[dtype]
            if raw is None or len(raw) != n:
                self.err(f"hex contents of @{rt.name} must be {n} bytes ({math.prod(shape)} {dtype} elements), "
                         f"not {len(value) / 2:g}", loc)
                return None
            return np.frombuffer(raw, dtype=npdt).reshape(shape)
        elements = list(list_elements(value))
        if len(elements) != math.prod(shape):
            self.err(f"@{rt.name} has {math.prod(shape)} elements, but {len(elements)} values are given", loc)
            return None
        flat = [e.value for e in elements]
        if dtype in INTS:
            info = np.iinfo(npdt)
            for e in elements:
                v, eloc = e.value, self.loc(e.line, e.column, e.length)
                if isinstance(v, float):
                    self.err(f"value {v} is not an integer, but @{rt.name} is {dtype}", eloc)
                    return None
                if not info.min <= v <= info.max:
                    self.err(f"value {v} does not fit {dtype} ({info.min} to {info.max})", eloc)
                    return None
        with np.errstate(over="ignore"):
            return np.array(flat, dtype=np.float64 if dtype not in INTS else np.int64).astype(npdt).reshape(shape)

    # --- kernels ----------------------------------------------------------------------------
    def kernel(self, rk) -> Kernel:
        k = Kernel(rk.name, [], rk.is_global, SourceLoc(*rk.loc, len(rk.name) + 1) if rk.loc
                   else self.loc(rk.line, rk.name_col, len(rk.name) + 1))
        for ri in rk.insts:
            inst = self.inst(ri)
            if inst is not None:
                k.insts.append(inst)
            if getattr(ri, "loc_name", None) is not None:
                self.name_loc(ri)
        return k

    def name_loc(self, ri) -> None:
        """``loc("df.add"("f.lpu":3:8))``: the source op at that location (the object's
        ``.lpu.ops``); one location names one op."""
        name, where = ri.loc_name, ri.loc
        at = self.loc(ri.line, ri.col, len(str(ri.cycle)) + 1)
        if not name:
            self.err("a named location needs a name: loc(\"NAME\"(\"FILE\":LINE:COL))", at)
            return
        if where[1] == 0:
            self.err("a named location needs a line (line 0 is no location)", at)
            return
        known = self.op_names.setdefault(where, name)
        if known != name:
            self.err(f"{where[0]}:{where[1]}:{where[2]} is named '{name}' here but '{known}' before", at)

    def inst(self, ri) -> Inst | None:
        """Check one instruction. Programs repeat the same instruction text at many cycles, so
        a checked instruction's fields are remembered by its text (unit, mnemonic, operands):
        only the cycle and the source positions differ between such instructions."""
        key = ri.key
        if key is None:
            key = (ri.unit, ri.mnemonic, tuple([(o.kind, o.value, type(o.value)) for o in ri.operands]))
        hit = self._checked.get(key)
        if hit is None:
            inst = self._inst(ri)
            if inst is not None and inst.arg_locs is not None:
                where = tuple(None if loc is None else _operand_index(ri, loc) for loc in inst.arg_locs)
                self._checked[key] = (inst.queue, inst.spec, inst.dtype, inst.dtype2, inst.args, where)
            return inst
        queue, spec, dtype, dtype2, args, where = hit
        file, line, ops = self.file, ri.line, ri.operands
        return Inst(ri.cycle, queue, spec, dtype, dtype2, args,
                    SourceLoc(*ri.loc) if ri.loc else SourceLoc(file, line, ri.col, len(str(ri.cycle)) + 1),
                    tuple([None if i is None else SourceLoc(file, line, ops[i].col, ops[i].length) for i in where]))

    def _inst(self, ri) -> Inst | None:
        cfg = self.cfg
        line = ri.line
        q = cfg.queue_by_name.get(ri.unit)
        if q is None:
            close = difflib.get_close_matches(ri.unit, list(cfg.queue_by_name), 1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.err(f"unknown unit '{ri.unit}'{hint}", self.loc(line, ri.unit_col, len(ri.unit)))
            return None
        mloc = self.loc(line, ri.mnemonic_col, len(ri.mnemonic))
        parts = ri.mnemonic.split(".")
        spec = None
        for n in range(len(parts), 0, -1):
            spec = BY_MNEMONIC.get(".".join(parts[:n]))
            if spec is not None:
                types = parts[n:]
                break
        if spec is None:
            close = difflib.get_close_matches(parts[0], list(BY_MNEMONIC), 1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.err(f"unknown mnemonic '{ri.mnemonic}'{hint}", mloc)
            return None
        if not runs_on(spec, q.kind):
            self.err(f"'{spec.mnemonic}' cannot execute on {ri.unit} ({_KIND_ONE[q.kind]}); it runs on "
                     f"{' and '.join(_KIND_NAMES[u] for u in spec.units)}", mloc)
            return None
        dtype = dtype2 = None
        want = (1 if spec.types else 0) + (1 if spec.types2 else 0)
        for t in types:
            if t not in DTYPES:
                self.err(f"unknown element type '{t}' in '{ri.mnemonic}' (types: {', '.join(DTYPES)})", mloc)
                return None
        if not spec.types and types:
            self.err(f"'{spec.mnemonic}' takes no element type", mloc)
            return None
        if spec.types2 and len(types) != 2:
            self.err(f"'{spec.mnemonic}' needs two element types, from and to: {spec.mnemonic}.i32.i8", mloc)
            return None
        if len(types) > want:
            self.err(f"'{ri.mnemonic}': too many element types", mloc)
            return None
        if spec.types:
            dtype = types[0] if types else spec.default_type
            if dtype not in spec.types:
                self.err(f"'{spec.mnemonic}' does not take {dtype} (it takes {', '.join(spec.types)})", mloc)
                return None
        if spec.types2:
            dtype2 = types[1]
        # operands: positional ones in order, then keyword options and flags
        positional, options = [], {}
        for raw in ri.operands:
            if raw.kind == "keyword":
                key = raw.value[0]
                op = spec.optional.get(key)
                if op is not None and op.kind.name == "flag":
                    self.err(f"'{key}' is a flag of '{spec.mnemonic}': write it bare, without a value",
                             self.loc(raw.line, raw.col, raw.length))
                    return None
                if op is None:
                    self.err(f"'{spec.mnemonic}' has no option '{key}'"
                             + (f" (options: {', '.join(spec.optional)})" if spec.optional else ""),
                             self.loc(raw.line, raw.col, raw.length))
                    return None
                options[key] = (op, type(raw)("number", raw.value[1], raw.line, raw.col, raw.length))
            elif raw.kind == "name" and raw.value in spec.optional and spec.optional[raw.value].kind.name == "flag":
                options[raw.value] = (spec.optional[raw.value], raw)
            else:
                positional.append(raw)
        required = spec.required
        if len(positional) != len(required):
            names = ", ".join(o.name for o in required) or "none"
            where = positional[len(required)] if len(positional) > len(required) else None
            loc = self.loc(where.line, where.col, where.length) if where else mloc
            self.err(f"'{spec.mnemonic}' takes {len(required)} operand{'s' if len(required) != 1 else ''} "
                     f"({names}), {len(positional)} given", loc)
            return None
        values: dict[str, object] = {}
        arg_locs: dict[str, SourceLoc] = {}
        ok = True
        for op, raw in list(zip(required, positional)) + list(options.values()):
            loc = self.loc(raw.line, raw.col, raw.length)
            try:
                values[op.name] = parse_operand(op, raw, spec, dtype, cfg, q)
            except OperandError as e:
                self.err(str(e), loc)
                ok = False
                continue
            arg_locs[op.name] = loc
        if not ok:
            return None
        for op in spec.operands:
            if op.role and op.name in values:
                v = values[op.name]
                if op.kind.name == "src_or_imm" and v >> 32:
                    continue
                align = DTYPE_BYTES[dtype] if op.width == "rows" else group_width(spec, op, dtype, dtype2, values)
                span = group_width(spec, op, dtype, dtype2, values)
                base = v & 31
                name = f"s{base}{'w' if v & 32 else 'e'}"
                what = f"{_a(dtype2 if op.width == 't2' else dtype)} vector" if op.width in ("t", "t2") else \
                    f"'{spec.mnemonic}'"
                if base % align:
                    self.err(f"misaligned stream group: {what} needs a group of {align} streams starting at a "
                             f"multiple of {align}, not {name}", arg_locs[op.name])
                    ok = False
                elif base + span > cfg.streams:
                    self.err(f"stream group {name}..s{base + span - 1}{name[-1]} runs past s{cfg.streams - 1}"
                             f"{name[-1]}", arg_locs[op.name])
                    ok = False
        if not ok:
            return None
        for op in spec.operands:
            v = values.get(op.name)
            if isinstance(v, SymRef) and not self.symref(spec, op, v, dtype, q, arg_locs[op.name]):
                ok = False
        if not ok:
            return None
        args = tuple(values.get(op.name, 0) for op in spec.operands)
        return Inst(ri.cycle, q.index, spec, dtype, dtype2, args,
                    SourceLoc(*ri.loc) if ri.loc else self.loc(line, ri.col, len(str(ri.cycle)) + 1),
                    tuple(arg_locs.get(op.name) for op in spec.operands))

    def symref(self, spec, op, ref: SymRef, dtype, q, loc: SourceLoc) -> bool:
        entry = self.symbols.get(ref.symbol)
        if entry is None:
            if ref.symbol in self.externs:
                return True
            close = difflib.get_close_matches(ref.symbol, list(self.symbols), 1)
            hint = f"; did you mean '@{close[0]}'?" if close else ""
            self.err(f"use of undefined symbol '@{ref.symbol}' (define it with 'data' or 'reserve', or "
                     f"declare it 'extern'){hint}", loc)
            return False
        kind, t, dloc = entry
        if kind == "broken":
            return False
        if kind == "unplaced":
            self.err(f"'@{ref.symbol}' has no placement, so a kernel cannot address it; place it in a "
                     f"slice ('in MEM_W3') or leave it to the dataflow level", loc) \
                .note(f"'@{ref.symbol}' is defined here", dloc)
            return False
        if kind != "tensor":
            self.err(f"'@{ref.symbol}' is a kernel, not an SRAM tensor", loc)
            return False
        if op.kind.name == "table":
            if t.dtype not in INTS or math.prod(t.shape) < self.cfg.lanes:
                self.err(f"lane map '@{ref.symbol}' must be an integer tensor of at least {self.cfg.lanes} "
                         f"elements, not {'x'.join(map(str, t.shape))}x{t.dtype}", loc)
                return False
            return True
        if t.placement.slice != q.slice.name:
            where = t.placement.slice or f"any slice of MEM_{t.placement.hemisphere}"
            self.err(f"'@{ref.symbol}' is placed in {where}, but this instruction runs on {q.name}; a MEM "
                     f"instruction addresses its own slice", loc).note(f"'@{ref.symbol}' is defined here", dloc)
            return False
        width = DTYPE_BYTES[dtype]
        if ref.offset < 0 or ref.offset + width > t.words:
            self.err(f"offset {ref.offset} is outside '@{ref.symbol}' ({t.words} word{'s' if t.words != 1 else ''}; "
                     f"{_a(dtype)} vector takes {width})", loc)
            return False
        return True

    # --- queues -----------------------------------------------------------------------------
    def sequence(self, k: Kernel) -> None:
        """Check each queue's cycles (in order, one instruction a cycle, nop and repeat
        respected) and find the kernel's length: the cycle after its last result lands."""
        cfg = self.cfg
        state: dict[int, tuple[int, int, Inst | None, Inst | None]] = {}  # queue -> (ready, last cycle, last inst, last real inst)
        length = 0
        for inst in k.insts:
            ready, last_cycle, last, last_real = state.get(inst.queue, (0, -1, None, None))
            c = inst.cycle
            qname = cfg.queues[inst.queue].name
            if last is not None and c < last_cycle:
                self.err(f"cycles go backwards in queue {qname}: cycle {c} after cycle {last_cycle}", inst.loc) \
                    .note(f"the previous instruction of {qname} is here", last.loc)
                continue
            if last is not None and c == last_cycle:
                self.err(f"two instructions in queue {qname} in cycle {c}", inst.loc) \
                    .note("the other instruction is here", last.loc)
                continue
            spec = inst.spec
            if spec.mnemonic == "repeat":
                n, d = inst.args
                if last_real is None or last is not last_real:
                    self.err("'repeat' must follow the instruction it re-issues", inst.loc)
                    continue
                if c != last_real.cycle + d:
                    self.err(f"'repeat {n}, {d}' re-issues the instruction of cycle {last_real.cycle} first at "
                             f"cycle {last_real.cycle + d}: write it there, not at cycle {c}", inst.loc) \
                        .note("the instruction it repeats is here", last_real.loc)
                    continue
                end = last_real.cycle + n * d
                state[inst.queue] = (end + 1, c, inst, None)
                length = max(length, end + self._tail(last_real))
                continue
            if c < ready:
                self.err(f"queue {qname} is busy until cycle {ready}; cycle {c} is too early", inst.loc) \
                    .note("it is busy because of this instruction", last.loc)
                continue
            if spec.mnemonic == "nop":
                state[inst.queue] = (c + inst.args[0], c, inst, None)
                length = max(length, c + inst.args[0])
                continue
            state[inst.queue] = (c + 1, c, inst, inst if not _is_icu(inst) else None)
            length = max(length, c + self._tail(inst))
        if length > 0xFFFFFFFF:  # the object records a kernel's length in 32 bits
            self.err(f"kernel @{k.name} is {length} cycles long; at most 4294967295 cycles fit an object", k.loc)
        k.length = length

    def _tail(self, inst: Inst) -> int:
        """Cycles from issue until an instruction's last effect: its result landing, or its unit free."""
        key = (inst.spec.opcode, inst.dtype)
        t = self._tails.get(key)
        if t is None:
            spec = inst.spec
            t = self._tails[key] = max(1, spec.latency_for(self.cfg, inst.dtype) + (1 if spec.dsts else 0),
                                       spec.occupancy_for(self.cfg, inst.dtype))
        return t

    def run(self, config_loc) -> Program:
        raw = self.raw
        self.externs = {}
        for name, line, col in raw.externs:
            loc = self.loc(line, col, len(name) + 1)
            if name in self.externs:
                self.err(f"'@{name}' is declared extern twice", loc)
            self.externs[name] = loc
        prog = Program(self.cfg.name, self.cfg, file=self.file)
        for rt in raw.tensors:
            t = self.tensor(rt)
            if t is not None:
                prog.tensors.append(t)
        for name, loc in self.externs.items():
            if name in self.symbols:
                self.err(f"'@{name}' is declared extern but defined in this file", loc) \
                    .note("the definition is here", self.symbols[name][2])
        prog.externs = [n for n in self.externs if n not in self.symbols]
        prog.op_names = self.op_names
        for rk in raw.kernels:
            kloc = self.loc(rk.line, rk.name_col, len(rk.name) + 1)
            k = self.kernel(rk)
            if self.define(rk.name, "kernel", k, kloc):
                prog.kernels.append(k)
        if not self.diags:
            from lpu.asm.timing import check_timing

            for k in prog.kernels:
                self.sequence(k)
            if not self.diags:
                for k in prog.kernels:
                    self.diags.extend(check_timing(k, self.cfg))
        return prog


def _a(dtype: str) -> str:
    return ("an " if dtype[0] in "if" else "a ") + dtype  # an i8, an f16, a bf16


def _is_icu(inst: Inst) -> bool:
    return "any" in inst.spec.units


def assemble(text: str, file: str = "<input>", config: ChipConfig | str | None = None) -> Program:
    """Parse and check an assembly file; raises ``DiagnosticError`` with every error found.

    ``config`` overrides the file's ``target`` (a configuration or a name/path to load).
    """
    return _assemble(text, file, config)


@without_gc
def _assemble(text: str, file: str, config) -> Program:
    raw, diags = parse(text, file)
    target_loc = SourceLoc(file, raw.target[1], raw.target[2], len(raw.target[0]) + 2) if raw.target else None
    cfg = _resolve_config(raw, config, target_loc, diags)
    base_dir = os.path.dirname(os.path.abspath(file)) if file not in ("-", "<input>", "<stdin>") else os.getcwd()
    a = _Assembler(raw, cfg, base_dir)
    prog = a.run(target_loc)
    diags.extend(a.diags)
    if diags:
        raise DiagnosticError(diags)
    return prog


def _resolve_config(raw, config, target_loc, diags) -> ChipConfig:
    if isinstance(config, ChipConfig):
        cfg = config
    elif config is not None:
        cfg = load_config(config)
    else:
        try:
            cfg = load_config(raw.target[0] if raw.target else None, target_loc)
        except DiagnosticError as e:
            diags.extend(e.diagnostics)
            raise DiagnosticError(diags) from None
    if raw.target and config is not None and raw.target[0] != cfg.name:
        diags.append(error(f"this file targets '{raw.target[0]}', but the configuration given is '{cfg.name}'",
                           target_loc))
    return cfg


# --- public hooks for tools that re-run the assembler's steps piecewise ---------------------
# The language server (lpu.lsp.asm_analysis) checks a document kernel by kernel with exactly
# these steps, so its diagnostics are assemble()'s: a Checker per file, ``run`` for the top level
# (target, externs, tensors), ``kernel`` per kernel, ``define`` to enter it, ``sequence`` for the
# queue check; ``diags``, ``symbols`` and ``externs`` hold what they found.
Checker = _Assembler


def resolve_config(raw: RawModule, config, target_loc, diags: list[Diagnostic]) -> ChipConfig:
    """The chip configuration ``assemble`` would use for ``raw`` (its ``target``, or ``config``)."""
    return _resolve_config(raw, config, target_loc, diags)


#: how messages name a unit of each kind ("a MEM slice", "a VXM ALU", ...)
UNIT_KIND_NAMES = _KIND_ONE
