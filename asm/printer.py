"""Assembly text from records or objects: the disassembler's and the compiler's printer.

What it prints, the assembler reads back to the same object, byte for byte: instructions carry
their source location as ``loc("file":line:col)`` (``loc("df.add"("file":line:col))`` where the
object names the source op there), data its exact bytes as ``hex"..."``.
"""

from __future__ import annotations


from lpu.arch.config import config_from_text
from lpu.arch.layout import from_sram
from lpu.asm.emit import decode_queue
from lpu.asm.objfile import ObjectFile
from lpu.asm.operands import operand_text
from lpu.asm.records import Inst

def inst_text(inst: Inst, queue_name: str, with_loc: bool = True, op_names: dict | None = None) -> str:
    """One instruction as an assembly line. ``op_names`` ((file, line, col) -> name, an object's
    ``.lpu.ops``) names the source op at the instruction's location: ``loc("df.add"("f":3:8))``,
    MLIR's named location."""
    spec = inst.spec
    mnemonic = spec.mnemonic
    if spec.types:
        mnemonic += "." + inst.dtype
    if spec.types2:
        mnemonic += "." + inst.dtype2
    ops = [t for op, v in zip(spec.operands, inst.args) if (t := operand_text(op, v, inst.dtype)) is not None]
    text = f"@{inst.cycle:<5} {queue_name:<7} {mnemonic}"
    if ops:
        text += " " + ", ".join(ops)
    if with_loc and inst.loc is not None and inst.loc.line > 0:
        loc = inst.loc
        where = f"{_quote(loc.file)}:{loc.line}:{loc.col}"
        name = op_names.get((loc.file, loc.line, loc.col)) if op_names else None
        text += f" loc({_quote(name)}({where}))" if name else f" loc({where})"
    return text


def _quote(s: str) -> str:
    """A string literal that the lexer reads back as ``s``: a backslash, a quote and every
    character that is not printable (a newline or form feed in a file name, a NUL) escaped."""
    return '"' + "".join(_ESCAPES.get(c) or (c if c.isprintable() else _escape(c)) for c in s) + '"'


_ESCAPES = {"\\": "\\\\", '"': '\\"'}


def _escape(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def _def_loc(obj: ObjectFile, where) -> str:
    f, line, col = where
    return f" loc({_quote(obj.files[f])}:{line}:{col})" if line > 0 and f < len(obj.files) else ""


def tensor_type(shape, dtype) -> str:
    return "tensor<" + "".join(f"{d}x" for d in shape) + dtype + ">"


def disassemble(obj: ObjectFile, with_loc: bool = True, source: str = "") -> str:
    cfg = config_from_text(obj.config_text, obj.config_source or "<object>")
    out = []
    if source:
        out.append(f"// disassembly of {source}")
    out.append(f"target {_quote(cfg.name)}")
    if obj.sram or obj.externs:
        out.append("")
    for s in obj.sram:
        head = ("global " if s.is_global else "") + ("data" if s.image is not None else "reserve")
        line = f"{head} @{s.symbol} : {tensor_type(s.shape, s.dtype)} in {s.placement}"
        if s.image is not None:
            elems = from_sram(s.image, s.shape, s.dtype, cfg.lanes)
            line += f' = hex"{elems.tobytes().hex()}"'
        out.append(line + (_def_loc(obj, s.where) if with_loc else ""))
    for name in obj.externs:
        out.append(f"extern @{name}")
    names = {(obj.files[f], line, col): n for (f, line, col), n in obj.op_names.items() if f < len(obj.files)}
    by_kernel: dict[str, list] = {}
    for code in obj.code:
        by_kernel.setdefault(code.kernel, []).append(code)
    for k in obj.kernels:
        out.append("")
        out.append(f"{'global ' if k.is_global else ''}kernel @{k.name}"
                   f"{_def_loc(obj, k.where) if with_loc else ''} {{  // {k.length} cycles")
        insts: list[tuple[int, int, Inst]] = []
        for code in by_kernel.get(k.name, []):
            q = cfg.queue_by_name.get(code.queue)
            qi = q.index if q is not None else len(cfg.queues)
            for inst in decode_queue(code, qi, obj.files):
                insts.append((inst.cycle, qi, inst, code.queue))
        insts.sort(key=lambda x: (x[0], x[1]))
        for _c, _qi, inst, qname in insts:
            out.append("  " + inst_text(inst, qname, with_loc, names))
        out.append("}")
    return "\n".join(out) + "\n"

