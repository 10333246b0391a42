"""From checked records to an object: per-queue word streams with nops, relocations, lines.

Also the inverse, ``decode_queue``: a queue's words back to instructions with issue cycles,
which the disassembler, the linker and the simulator share.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lpu.arch.isa import BY_MNEMONIC, decode, encode
from lpu.asm.objfile import (R_LPU_PEER, R_LPU_SRAM, R_LPU_TABLE, KernelInfo, ObjectFile, QueueCode, Reloc,
                             SramSection, used_op_names)
from lpu.asm.records import Inst, PeerRef, Program, SymRef
from lpu.perf import without_gc

_NOP = BY_MNEMONIC["nop"]
_NOP_MAX = (1 << 32) - 1
_RELOC_FOR_KIND = {"addr": R_LPU_SRAM, "table": R_LPU_TABLE, "link": R_LPU_PEER}


@without_gc
def emit(prog: Program) -> ObjectFile:
    cfg = prog.config
    obj = ObjectFile(cfg.text, cfg.source)
    files: dict[str, int] = {}

    def where(loc) -> tuple[int, int, int]:
        return (files.setdefault(loc.file, len(files)), loc.line, loc.col) if loc else (0, 0, 0)

    for t in prog.tensors:
        obj.sram.append(SramSection(t.name, t.dtype, t.shape, t.placement, t.words, t.image, t.is_global,
                                    where(t.loc)))
    obj.externs = list(prog.externs)
    for k in prog.kernels:
        obj.kernels.append(KernelInfo(k.name, k.length, k.is_global, where(k.loc)))
        by_queue: dict[int, list[Inst]] = {}
        for inst in k.insts:
            by_queue.setdefault(inst.queue, []).append(inst)
        for qi in sorted(by_queue):
            obj.code.append(_queue_code(k.name, cfg.queues[qi].name, by_queue[qi], files))
    obj.files = list(files)
    obj.op_names = used_op_names(obj, prog.op_names)
    return obj


def _queue_code(kernel: str, queue: str, insts: list[Inst], files: dict[str, int]) -> QueueCode:
    words: list[int] = []
    lines: list[tuple[int, int, int]] = []
    relocs: list[Reloc] = []
    ready = 0
    last_real = None
    encoded: dict[tuple, int] = {}  # instruction fields but symbols -> word
    for inst in insts:
        loc = inst.loc
        fi = files.setdefault(loc.file, len(files)) if loc else 0
        where = (fi, loc.line, loc.col) if loc else (0, 0, 0)
        gap = inst.cycle - ready
        while gap > 0:
            n = min(gap, _NOP_MAX)
            words.append(_nop_word(n))
            lines.append(where)
            gap -= n
        spec = inst.spec
        args = inst.args
        # the word is the same for every instruction of these fields but its symbols' (each a
        # relocation of its own: a read's address differs from one vector to the next)
        key = (spec.opcode, inst.dtype, inst.dtype2,
               *[None if isinstance(v, (SymRef, PeerRef)) else v for v in args])
        word = encoded.get(key)
        if word is None:
            fields = [0 if v is None or isinstance(v, (SymRef, PeerRef)) else v for v in args]
            word = encoded[key] = encode(spec, inst.dtype, inst.dtype2, tuple(fields))
        for op, v in zip(spec.operands, args):
            if isinstance(v, SymRef):
                relocs.append(Reloc(len(words), _RELOC_FOR_KIND[op.kind.name], v.symbol, v.offset))
            elif isinstance(v, PeerRef):
                relocs.append(Reloc(len(words), _RELOC_FOR_KIND[op.kind.name], v.chip, 0))
        words.append(word)
        lines.append(where)
        m = spec.mnemonic
        if m == "nop":
            ready = inst.cycle + inst.args[0]
        elif m == "repeat":
            ready = last_real.cycle + inst.args[0] * inst.args[1] + 1
        else:
            ready = inst.cycle + 1
        if "any" not in spec.units:
            last_real = inst
    return QueueCode(kernel, queue, np.array(words, dtype=np.uint64),
                     np.array(lines, dtype=np.uint32).reshape(-1, 3), relocs)


@lru_cache(maxsize=4096)
def _nop_word(n: int) -> int:
    return encode(_NOP, None, None, (n,))


def _canonical_nops(gap: int) -> list[int]:
    out = []
    while gap > 0:
        out.append(min(gap, _NOP_MAX))
        gap -= out[-1]
    return out


def decode_queue(code: QueueCode, queue_index: int, files: list[str], keep_nops: bool = False) -> list[Inst]:
    """The instructions of a queue section with their issue cycles. A run of nops that the
    assembler would have generated for the gap before the next instruction — the same counts
    and that instruction's line-table entry — is folded into the cycles (unless ``keep_nops``);
    any other nop is kept, so that printing and re-assembling gives the same words and the same
    line table. Relocated fields come back as SymRef/PeerRef."""
    from lpu.diagnostics import SourceLoc

    relocs = {r.word: r for r in code.relocs}
    out: list[Inst] = []
    t = 0
    last_real_cycle = 0
    run: list[Inst] = []  # pending nops
    run_start = 0  # the word index of the first pending nop
    words = code.words.tolist()
    lines = code.lines.tolist()
    lines += [[0, 0, 0]] * (len(words) - len(lines))  # words without an entry: no location
    for i, word in enumerate(words):
        spec, dtype, dtype2, fields = decode(word)
        f, line, col = lines[i]
        loc = SourceLoc(files[f], line, col) if line and f < len(files) else None
        m = spec.mnemonic
        r = relocs.get(i)
        if r is not None:
            fields = list(fields)
            for j, op in enumerate(spec.operands):
                if _RELOC_FOR_KIND.get(op.kind.name) == r.type:
                    fields[j] = PeerRef(r.symbol) if r.type == R_LPU_PEER else SymRef(r.symbol, r.addend)
                    break
            fields = tuple(fields)
        inst = Inst(t, queue_index, spec, dtype, dtype2, fields, loc)
        if m == "nop":
            if not run:
                run_start = i
            run.append(inst)
            t += fields[0]
            continue
        if run:
            # an explicit nop of the programmer's keeps its own line: folded, it would come back
            # with the next instruction's (the assembler's choice for the nops it makes); a nop
            # without a line (the linker's, between objects) has none to keep
            generated = ([n.args[0] for n in run] == _canonical_nops(sum(n.args[0] for n in run))
                         and all(lines[j] == lines[i] or lines[j][1] == 0 for j in range(run_start, i)))
            if keep_nops or not generated:
                out.extend(run)
            run = []
        out.append(inst)
        if m == "repeat":
            t = last_real_cycle + fields[0] * fields[1] + 1
        else:
            if "any" not in spec.units:
                last_real_cycle = t
            t += 1
    out.extend(run)  # trailing nops are always the programmer's
    return out
