"""The machine-level xDSL dialect ``lpu``: one op per ISA instruction, generated from the table.

``lpu.arch.isa.ISA`` is the only place an instruction is described; this module walks it and
makes one ``IRDLOperation`` class per entry (``lpu.read``, ``lpu.mm``, ``lpu.cmp.eq`` …). Every
op carries where and when it issues (``unit``: the queue name, ``cycle``: the issue cycle), its
element types, and one attribute per ISA operand, named as the table names it:

- stream operands: ``StringAttr`` in assembly spelling (``"s3w"``);
- SRAM operands (``addr``, ``table``): ``SymbolRefAttr`` plus ``<name>_offset`` (words), or a
  plain ``IntegerAttr`` for an absolute address;
- links: ``IntegerAttr`` (physical link) or ``SymbolRefAttr`` (a peer chip, resolved by lpu-ld);
- everything else (rows, slots, modes, flags, counts): ``IntegerAttr`` field values.

A ``lpu.kernel`` op holds a kernel's instructions in one block. The ops convert to and from the
assembler's records (``to_inst``/``from_inst``), so a compiled kernel goes to the encoder
(``lpu.asm.emit.emit``) with no text in between; ``kernel_text`` prints the same kernel as
``.lpu`` assembly that ``lpu-as`` reads back to the same bytes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from xdsl.dialects.builtin import FileLineColLoc, IntAttr, IntegerAttr, StringAttr, SymbolRefAttr, i64
from xdsl.ir import Attribute, Block, Dialect, Region
from xdsl.irdl import IRDLOperation, attr_def, irdl_op_definition, opt_attr_def, region_def, traits_def
from xdsl.traits import NoTerminator
from xdsl.utils.exceptions import VerifyException

from lpu.arch.isa import DTYPE_BYTES, ISA, InstrSpec, group_width, runs_on
from lpu.asm.operands import stream_text
from lpu.asm.records import Inst, Kernel, PeerRef, SymRef
from lpu.diagnostics import Diagnostic, DiagnosticError, SourceLoc, error

_STREAM_KINDS = ("stream", "src_or_imm")
_SYMBOL_KINDS = ("addr", "table")


@lru_cache(maxsize=65536)
def _int(v: int) -> IntegerAttr:
    # attributes are immutable values, so one instance per value serves every op (a compiled
    # GEMM builds ~10^5 of them; creating each costs more than the rest of the op)
    return IntegerAttr(v, i64)


@lru_cache(maxsize=4096)
def _str(v: str) -> StringAttr:
    return StringAttr(v)


@lru_cache(maxsize=4096)
def _sym(v: str) -> SymbolRefAttr:
    return SymbolRefAttr(v)


@lru_cache(maxsize=4096)
def _file_loc(file: str, line: int, col: int) -> FileLineColLoc:
    return FileLineColLoc(StringAttr(file), IntAttr(line), IntAttr(col))


def _stream_field(text: str) -> int:
    index = int(text[1:-1])
    return index | (32 if text[-1] == "w" else 0)


class LpuInstOp(IRDLOperation):
    """An instruction of the machine, placed on a queue at an issue cycle."""

    SPEC: ClassVar[InstrSpec]
    unit = attr_def(StringAttr)
    cycle = attr_def(IntegerAttr)
    dtype = opt_attr_def(StringAttr)
    dtype2 = opt_attr_def(StringAttr)

    # --- from and to the assembler's records ---------------------------------------------------
    @classmethod
    def from_inst(cls, inst: Inst, cfg) -> "LpuInstOp":
        spec = inst.spec
        op_cls = OP_BY_MNEMONIC[spec.mnemonic]
        attrs: dict[str, Attribute] = {"unit": _str(cfg.queues[inst.queue].name), "cycle": _int(inst.cycle)}
        if inst.dtype is not None:
            attrs["dtype"] = _str(inst.dtype)
        if inst.dtype2 is not None:
            attrs["dtype2"] = _str(inst.dtype2)
        for o, v in zip(spec.operands, inst.args):
            if o.optional and not v:
                continue
            attrs.update(_operand_attrs(o, v))
        op = op_cls.create(attributes=attrs)
        if inst.loc is not None and inst.loc.line > 0:  # the df op it came from, for diagnostics
            op.location = _file_loc(inst.loc.file, inst.loc.line, inst.loc.col)
        return op

    def to_inst(self, cfg, loc: SourceLoc | None = None) -> Inst:
        spec = self.SPEC
        q = cfg.queue_by_name.get(self.unit.data)
        if q is None:
            raise DiagnosticError(error(f"unknown unit '{self.unit.data}'", loc))
        args = tuple(self.field(o) for o in spec.operands)
        return Inst(self.cycle.value.data, q.index, spec, self.dtype.data if self.dtype else None,
                    self.dtype2.data if self.dtype2 else None, args, loc)

    def field(self, o):
        """The encoded value of one ISA operand (a ``SymRef``/``PeerRef`` for relocations)."""
        a = self.attributes.get(o.name)
        if a is None:
            return 0
        if isinstance(a, StringAttr):
            return _stream_field(a.data)
        if isinstance(a, SymbolRefAttr):
            name = a.root_reference.data
            if o.kind.name == "link":
                return PeerRef(name)
            off = self.attributes.get(o.name + "_offset")
            return SymRef(name, off.value.data if off is not None else 0)
        v = a.value.data
        if o.kind.name == "stride":  # bit 16 says the stride was given
            return (v & 0xFFFF) | (1 << 16)
        return v

    def verify_(self) -> None:
        """What the assembler checks about one instruction on its own; the queue and cycle
        checks need the chip and the whole kernel (``verify_kernel``)."""
        spec = self.SPEC
        dtype = self.dtype.data if self.dtype else None
        dtype2 = self.dtype2.data if self.dtype2 else None
        if spec.types and dtype is None:
            raise VerifyException(f"'{spec.mnemonic}' needs an element type (one of {', '.join(spec.types)})")
        if spec.types and dtype not in spec.types:
            raise VerifyException(f"'{spec.mnemonic}' does not take {dtype} (it takes {', '.join(spec.types)})")
        if not spec.types and dtype is not None:
            raise VerifyException(f"'{spec.mnemonic}' takes no element type")
        if spec.types2 and dtype2 not in spec.types2:
            raise VerifyException(f"'{spec.mnemonic}' needs a second element type")
        values = {o.name: self.field(o) for o in spec.operands}
        for o in spec.operands:
            a = self.attributes.get(o.name)
            if a is None:
                if not o.optional:
                    raise VerifyException(f"'{spec.mnemonic}' is missing its operand '{o.name}'")
                continue
            if o.role and isinstance(a, StringAttr):
                base = values[o.name] & 31
                align = DTYPE_BYTES[dtype] if o.width == "rows" else group_width(spec, o, dtype, dtype2, values)
                if base % align:
                    raise VerifyException(f"misaligned stream group: '{o.name}' needs a group starting at a "
                                          f"multiple of {align}, not {a.data}")


def _operand_attrs(o, v) -> dict[str, Attribute]:
    kind = o.kind.name
    if isinstance(v, SymRef):
        out: dict[str, Attribute] = {o.name: _sym(v.symbol)}
        if v.offset:
            out[o.name + "_offset"] = _int(v.offset)
        return out
    if isinstance(v, PeerRef):
        return {o.name: _sym(v.chip)}
    if kind in _STREAM_KINDS and not v >> 32:
        return {o.name: _str(stream_text(v))}
    if kind == "src_or_imm":
        return {o.name: _int(v)}
    if kind == "stride":
        s = v & 0xFFFF
        return {o.name: _int(s - (1 << 16) if s >> 15 else s)}
    return {o.name: _int(v)}


def _op_class(spec: InstrSpec) -> type[LpuInstOp]:
    body: dict = {"name": f"lpu.{spec.mnemonic}", "SPEC": spec, "__module__": __name__,
                  "__annotations__": {"SPEC": ClassVar[InstrSpec]}}
    for o in spec.operands:
        body[o.name] = opt_attr_def(Attribute)
        if o.kind.name in _SYMBOL_KINDS:
            body[o.name + "_offset"] = opt_attr_def(IntegerAttr)
    cls_name = "".join(p.capitalize() for p in spec.mnemonic.split(".")) + "Op"
    return irdl_op_definition(type(cls_name, (LpuInstOp,), body))


OPS: tuple[type[LpuInstOp], ...] = tuple(_op_class(s) for s in ISA)
OP_BY_MNEMONIC: dict[str, type[LpuInstOp]] = {c.SPEC.mnemonic: c for c in OPS}


@irdl_op_definition
class KernelOp(IRDLOperation):
    """A kernel: its instructions in issue order (cycle, then queue), in one block."""

    name = "lpu.kernel"
    sym_name = attr_def(StringAttr)
    body = region_def("single_block")
    is_global = opt_attr_def(IntegerAttr)
    target = opt_attr_def(StringAttr)  # the chip configuration, when the kernel stands in a df module
    traits = traits_def(NoTerminator())

    def print_lpu(self) -> str:
        """The kernel as ``.lpu`` assembly (what the df printer writes for it in a module)."""
        from lpu.arch.config import load_config

        return kernel_text(self, load_config(self.target.data if self.target is not None else None))

    @classmethod
    def build_from(cls, name: str, ops: list[LpuInstOp], is_global: bool = True) -> "KernelOp":
        attrs: dict[str, Attribute] = {"sym_name": StringAttr(name)}
        if is_global:
            attrs["is_global"] = _int(1)
        return cls.create(attributes=attrs, regions=[Region(Block(ops))])

    def insts(self) -> list[LpuInstOp]:
        return [op for op in self.body.block.ops if isinstance(op, LpuInstOp)]


Lpu = Dialect("lpu", [*OPS, KernelOp], [])


def to_kernel(kop: KernelOp, cfg, file: str = "<codegen>") -> Kernel:
    """The assembler's kernel record, checked as the assembler checks a kernel (queues known
    and able to run each op, cycles in order, ports and stream timing); raises
    ``DiagnosticError`` with every problem. The kernel's length is computed as ``lpu-as`` does."""
    diags: list[Diagnostic] = []
    k = Kernel(kop.sym_name.data, [], kop.is_global is not None)
    for op in kop.insts():
        loc = op_loc(op)  # the df op it came from: the line table's entry for its word
        q = cfg.queue_by_name.get(op.unit.data)
        if q is None:
            diags.append(error(f"unknown unit '{op.unit.data}'", loc or SourceLoc(file)))
            continue
        if not runs_on(op.SPEC, q.kind):
            diags.append(error(f"'{op.SPEC.mnemonic}' cannot execute on {q.name}", loc or SourceLoc(file)))
            continue
        k.insts.append(op.to_inst(cfg, loc))
    if diags:
        raise DiagnosticError(diags)
    k.insts.sort(key=lambda inst: (inst.queue, inst.cycle))
    diags = sequence_and_time(k, cfg)
    if diags:
        raise DiagnosticError(diags)
    return k


def op_loc(op: LpuInstOp) -> SourceLoc | None:
    """The source location an lpu op carries (``from_inst`` sets it from its record's): the
    ``df`` op it was compiled from, or an assembly kernel's own line."""
    loc = op.location
    if isinstance(loc, FileLineColLoc) and loc.line.data > 0:
        return SourceLoc(loc.filename.data, loc.line.data, loc.column.data)
    return None


def sequence_and_time(k: Kernel, cfg) -> list[Diagnostic]:
    """The assembler's own queue sequencing and stream-timing checks on a kernel record."""
    # The assembler keeps these checks on its private class; reuse them rather than repeat them.
    from lpu.asm.assembler import _Assembler
    from lpu.asm.timing import check_timing

    a = _Assembler.__new__(_Assembler)
    a.cfg, a.diags, a._tails = cfg, [], {}
    a.sequence(k)
    if a.diags:
        return a.diags
    return check_timing(k, cfg)


def kernel_of(name: str, insts: list[Inst], cfg, is_global: bool = True) -> Kernel:
    """The kernel record of a code generator's own instructions (each carrying the location of
    the df op it came from), checked as ``to_kernel`` checks a kernel op — without building the
    ``lpu`` ops (``KernelOp.build_from`` does that when the IR is wanted)."""
    k = Kernel(name, sorted(insts, key=lambda inst: (inst.queue, inst.cycle)), is_global)
    diags = sequence_and_time(k, cfg)
    if diags:
        raise DiagnosticError(diags)
    return k


def op_text(op: LpuInstOp, cfg, with_loc: bool = False, op_names: dict | None = None) -> str:
    """One op as an assembly line; with ``with_loc``, ended by its ``loc(...)`` (named after the
    source op at that location when ``op_names`` has it: ``lpu.asm.printer.inst_text``)."""
    from lpu.asm.printer import inst_text

    return inst_text(op.to_inst(cfg, op_loc(op) if with_loc else None), op.unit.data, with_loc, op_names)


__all__ = ["Lpu", "LpuInstOp", "KernelOp", "OPS", "OP_BY_MNEMONIC", "to_kernel", "kernel_of", "op_loc", "op_text",
           "kernel_text"]


def kernel_text(kop: KernelOp, cfg, with_loc: bool = False, op_names: dict | None = None) -> str:
    """The kernel as ``.lpu`` assembly, one instruction a line with its issue cycle, in cycle
    order — what ``lpu compile -S`` writes (``with_loc``: each line ends with the location of
    the df op it came from, so the object keeps its line table) and ``lpu-as`` reads back to
    the same object."""
    insts = sorted(((op.cycle.value.data, cfg.queue_by_name[op.unit.data].index, i, op)
                    for i, op in enumerate(kop.insts())), key=lambda x: x[:3])
    head = f"{'global ' if kop.is_global is not None else ''}kernel @{kop.sym_name.data} {{"
    return "\n".join([head] + ["  " + op_text(op, cfg, with_loc, op_names) for *_, op in insts] + ["}"]) + "\n"
