"""What a well-formed object holds, beyond its bytes: the checks the object reader and the linker share.

``lpu.asm.objfile.read_object`` refuses a file that fails any of them, so every tool that reads
objects (``lpu-objdump``, ``lpu-ld``) sees only objects whose every word decodes, whose every
tensor occupies the words its shape needs, and whose disassembly reads back. The linker runs the
same checks on objects built in memory (the compiler's). Each check gives a message naming the
part of the object it is about, or None.
"""

from __future__ import annotations

from functools import lru_cache

from lpu.arch.isa import BY_OPCODE
from lpu.arch.layout import words as tensor_words
from lpu.asm.objfile import R_LPU_PEER, R_LPU_SRAM, R_LPU_TABLE, ObjectFile, QueueCode, SramSection
from lpu.asm.printer import tensor_type
from lpu.asm.records import MAX_RANK, SYMBOL_NAME_RE
from lpu.asm.words import MalformedCode, check_words, timing

_FIELD_KIND = {R_LPU_SRAM: "addr", R_LPU_TABLE: "table", R_LPU_PEER: "link"}


@lru_cache(maxsize=None)
def _kinds(spec) -> frozenset[str]:
    return frozenset(op.kind.name for op in spec.operands)


def is_symbol_name(name: str) -> bool:
    return SYMBOL_NAME_RE.fullmatch(name) is not None


def _bad_file(where: tuple[int, int, int] | object, files: int) -> bool:
    f, line, _col = (int(x) for x in where)
    return line != 0 and f >= files


def tensor_problem(s: SramSection, cfg, files: int | None = None) -> str | None:
    """What is wrong with an SRAM section of an object for chip ``cfg``, or None. ``files``: how
    many source files the object lists (None: its definition line is not checked)."""
    what = f"tensor '@{s.symbol}'"
    if not is_symbol_name(s.symbol):
        return f"tensor name {s.symbol!r} is not a symbol"
    if len(s.shape) > MAX_RANK:
        return f"{what} has {len(s.shape)} dimensions (at most {MAX_RANK})"
    if any(d < 1 for d in s.shape):
        return f"{what} has a dimension of 0"
    need = tensor_words(s.shape, s.dtype, cfg.lanes)
    if s.words != need:
        return f"{what} occupies {s.words} words, but {tensor_type(s.shape, s.dtype)} needs {need}"
    if need > cfg.words:
        return f"{what} needs {need} words, more than a slice holds ({cfg.words})"
    if s.image is not None and len(s.image) != s.words * cfg.lanes:
        return (f"the SRAM image of {what} holds {len(s.image)} bytes, but {s.words} words of {cfg.lanes} lanes "
                f"are {s.words * cfg.lanes}")
    p = s.placement
    if (p.slice is None) == (p.hemisphere is None):
        return f"{what} names {'both a slice and' if p.slice else 'neither a slice nor'} a hemisphere"
    if p.slice is not None:
        sl = cfg.slice_by_name.get(p.slice)
        if sl is None or sl.kind != "mem":
            return f"{what} is placed in '{p.slice}', which is not a MEM slice of '{cfg.name}'"
    elif p.hemisphere not in ("W", "E"):
        return f"{what} asks for hemisphere {p.hemisphere!r} (W or E)"
    if p.address is not None and (p.slice is None or not 0 <= p.address <= cfg.words - s.words):
        return f"{what} at word {p.address} ends past the end of its slice ({cfg.words} words)"
    if files is not None and _bad_file(s.where, files):
        return f"the definition line of {what} names a file the object does not list"
    return None


def code_problem(obj: ObjectFile, code: QueueCode, cfg, kernels: set[str], tensors: set[str]) -> str | None:
    """What is wrong with a queue section of ``obj`` for chip ``cfg``, or None. ``kernels`` and
    ``tensors`` are the names the object defines (tensors and externs: what an SRAM relocation
    may name)."""
    if code.queue not in cfg.queue_by_name:
        return f"chip configuration '{cfg.name}' has no queue '{code.queue}'"
    if code.kernel not in kernels:
        return f"no kernel '{code.kernel}' in the object"
    lines = code.lines
    n = len(code.words)
    if lines.shape != (n, 3):
        return f"{n} words but {len(lines)} line entries"
    if n and int(lines[lines[:, 1] != 0, 0].max(initial=0)) >= max(len(obj.files), 1):
        return "the line table names a file the object does not list"
    try:
        check_words(code.words, cfg.queue_by_name[code.queue])
        timing(code.words)  # 'repeat' stands where it can re-issue
    except MalformedCode as e:
        return str(e)
    seen: set[int] = set()
    words = code.words.tolist() if code.relocs else []
    for r in code.relocs:
        if not 0 <= r.word < n:
            return f"relocation at word {r.word}, past the section's end ({n} words)"
        kind = _FIELD_KIND.get(r.type)
        if kind is None:
            return f"relocation at word {r.word} has unknown type {r.type}"
        if r.word in seen:
            return f"word {r.word} has two relocations"
        seen.add(r.word)
        spec = BY_OPCODE[words[r.word] & 0xFF]  # a known opcode: check_words said so
        if kind not in _kinds(spec):
            return f"relocation at word {r.word} fills the {kind} field of '{spec.mnemonic}', which has none"
        if not is_symbol_name(r.symbol):
            return f"relocation at word {r.word} names {r.symbol!r}, which is not a symbol"
        if r.type == R_LPU_PEER:
            if r.addend:
                return f"peer relocation at word {r.word} has an addend ({r.addend})"
        elif r.symbol not in tensors:
            return f"relocation at word {r.word} names '@{r.symbol}', which is no tensor or extern of the object"
    return None


def object_problems(obj: ObjectFile, cfg) -> list[tuple[str, str]]:
    """Every problem of ``obj`` for chip ``cfg``: (the part it is in, message) pairs."""
    out: list[tuple[str, str]] = []
    files = len(obj.files)
    defined: set[str] = set()
    for k in obj.kernels:
        if not is_symbol_name(k.name):
            out.append((".lpu.kernels", f"kernel name {k.name!r} is not a symbol"))
        elif k.name in defined:
            out.append((".lpu.kernels", f"kernel '@{k.name}' is defined twice"))
        elif _bad_file(k.where, files):
            out.append((".lpu.lines", f"the definition line of kernel '@{k.name}' names a file the object does "
                                      "not list"))
        defined.add(k.name)
    for s in obj.sram:
        problem = tensor_problem(s, cfg, files)
        if problem is None and s.symbol in defined:
            problem = f"'@{s.symbol}' is defined twice"
        if problem is not None:
            out.append((".lpu.tensors", problem))
        defined.add(s.symbol)
    for name in obj.externs:
        if not is_symbol_name(name):
            out.append((".symtab", f"extern {name!r} is not a symbol"))
        elif name in defined:
            out.append((".symtab", f"'@{name}' is both defined and extern"))
    kernels = {k.name for k in obj.kernels}
    tensors = {s.symbol for s in obj.sram} | set(obj.externs)
    pairs: set[tuple[str, str]] = set()
    for code in obj.code:
        problem = code_problem(obj, code, cfg, kernels, tensors)
        if problem is None and (code.kernel, code.queue) in pairs:
            problem = f"queue {code.queue} appears twice in kernel '{code.kernel}'"
        pairs.add((code.kernel, code.queue))
        if problem is not None:
            out.append((code.section_name, problem))
    return out
