"""Editor features for the assembly level, answered from the last analysis of a document.

Everything about an instruction comes from the ISA table (``lpu.arch.isa``), formatted by the
same helpers that write ``docs/isa.md``; every cycle and position comes from the assembler's
records and the timing module's stream events.
"""

from __future__ import annotations

import re

from lsprotocol import types

from lpu.arch import isa
from lpu.arch.isadoc import _cost, _syntax, _types, _units
from lpu.asm.assembler import UNIT_KIND_NAMES, parse_tensor_type
from lpu.asm.operands import stream_text
from lpu.asm.timing import Read, Write
from lpu.lsp.asm_analysis import AsmSnapshot
from lpu.lsp.asm_index import AsmIndex, InstAt, Occurrence
from lpu.lsp.positions import Lines

# --- hover ------------------------------------------------------------------------------------


def hover(snap: AsmSnapshot, index: AsmIndex, line: int, col: int) -> tuple[str, tuple[int, int, int]] | None:
    """Markdown for what is at a 1-based line and column, with the (line, col, length) it
    describes."""
    occ = index.occurrence_at(line, col)
    if occ is not None:
        text = symbol_hover(snap, index, occ.name)
        return (text, (occ.line, occ.col, occ.length)) if text else None
    at = index.inst_at(line)
    if at is None:
        return None
    ri = at.raw
    cfg = snap.config
    if ri.mnemonic_col <= col <= ri.mnemonic_col + len(ri.mnemonic):
        inst = at.view.insts.get(at.index)
        spec, dtype = _spec_of(ri.mnemonic) if inst is None else (inst.spec, inst.dtype)
        if spec is None:
            return None
        return mnemonic_hover(spec, dtype, cfg, ri.mnemonic), (line, ri.mnemonic_col, len(ri.mnemonic))
    if ri.unit_col <= col <= ri.unit_col + len(ri.unit):
        q = cfg.queue_by_name.get(ri.unit) if cfg else None
        if q is None:
            return None
        return unit_hover(q, cfg), (line, ri.unit_col, len(ri.unit))
    found = index.operand_at(at, col)
    if found is None:
        return None
    _i, op = found
    text = operand_hover(snap, at, op)
    return (text, (line, op.col, op.length)) if text else None


def _spec_of(mnemonic: str):
    parts = mnemonic.split(".")
    for n in range(len(parts), 0, -1):
        spec = isa.BY_MNEMONIC.get(".".join(parts[:n]))
        if spec is not None:
            types_ = parts[n:]
            return spec, (types_[0] if types_ and types_[0] in isa.DTYPES else spec.default_type)
    return None, None


def mnemonic_hover(spec: isa.InstrSpec, dtype: str | None, cfg, written: str) -> str:
    """The instruction's ISA entry, as ``docs/isa.md`` shows it, with the latency on this chip."""
    out = [f"```lpu\n{written}\n```", "", spec.doc if spec.doc.endswith(".") else spec.doc + ".", "",
           f"- syntax: `{_syntax(spec)}`"]
    if cfg is not None:
        out += [f"- units: {_units(spec, cfg)}", f"- types: {_types(spec)}",
                f"- latency: {_cost(spec, 'latency', cfg)}", f"- occupancy: {_cost(spec, 'occupancy', cfg)}"]
        if spec.latency is not None and (dtype or not spec.types):
            out.append(f"- here (`{dtype or 'untyped'}`): the result is on its stream "
                       f"{spec.latency_for(cfg, dtype)} cycles after issue")
    for op in spec.operands:
        role = {"dst": "destination ", "src": "source "}.get(op.role, "")
        opt = ", optional" if op.optional else ""
        out.append(f"- `{op.name}`: {role}{op.kind.name} (`{op.kind.syntax}`{opt}) — {op.kind.doc}")
    return "\n".join(out)


def unit_hover(q, cfg) -> str:
    kinds = [s.mnemonic for s in isa.ISA if isa.runs_on(s, q.kind) and "any" not in s.units]
    out = [f"**{q.name}** — {UNIT_KIND_NAMES[q.kind]} at position {q.position} (slice {q.slice.name}), "
           f"queue {q.index} of {len(cfg.queues)}"]
    if q.links:
        out.append(f"links: {', '.join(f'L{n}' for n in q.links)}")
    out.append(f"runs: {', '.join(f'`{m}`' for m in kinds)}, and the ICU instructions of every queue")
    return "\n\n".join(out)


def symbol_hover(snap: AsmSnapshot, index: AsmIndex, name: str) -> str | None:
    d = index.definitions.get(name)
    if d is None:
        return None
    if d.kind == "tensor":
        t = snap.tensors.get(name)
        rt = next((x for x in snap.raw.tensors if x.name == name), None)
        if rt is None:
            return None
        parsed = parse_tensor_type(rt.type_text)
        head = f"**@{name}** : `{rt.type_text}` — {'data' if rt.init is not None else 'reserve'}" + \
            (", global" if rt.is_global else "")
        if t is None or parsed is None or snap.config is None:
            return head
        cfg = snap.config
        shape = "×".join(map(str, t.shape))
        where = t.placement.slice or f"any slice of MEM_{t.placement.hemisphere} (the linker chooses)"
        if t.placement.slice:
            where += f" (position {cfg.slice_by_name[t.placement.slice].position})"
        addr = f"word {t.placement.address}" if t.placement.address is not None else "an address the linker chooses"
        return (f"{head}\n\nshape {shape} of {t.dtype}: {t.words} word{'s' if t.words != 1 else ''} of "
                f"{cfg.lanes} bytes\n\nin {where}, at {addr}")
    if d.kind == "kernel":
        view = next((v for v in snap.kernels if v.raw.name == name), None)
        if view is None:
            return None
        out = f"**@{name}** — kernel{', global' if view.raw.is_global else ''}, {len(view.raw.insts)} instructions"
        timing = snap.timing(view)
        if timing is not None and timing.length is not None:
            out += f", {timing.length} cycles"
        return out
    return f"**@{name}** — extern: defined in another object, resolved by the linker"


def operand_hover(snap: AsmSnapshot, at: InstAt, op) -> str | None:
    inst = at.view.insts.get(at.index)
    cfg = snap.config
    if inst is None or cfg is None or inst.arg_locs is None:
        return None
    which = next((i for i, loc in enumerate(inst.arg_locs) if loc is not None and loc.col == op.col), None)
    if which is None:
        return None
    spec_op = inst.spec.operands[which]
    if not spec_op.role or (spec_op.kind.name == "src_or_imm" and inst.args[which] >> 32):
        return None
    q = cfg.queues[inst.queue]
    name = stream_text(inst.args[which])
    head = f"**{op.value}** — {'destination' if spec_op.role == 'dst' else 'source'} `{spec_op.name}` of " \
           f"`{at.raw.mnemonic}` at {q.name} (position {q.position})"
    timing = snap.timing(at.view)
    if timing is None or timing.length is None:
        return head + "\n\ntiming unknown until this kernel's errors are fixed"
    if spec_op.role == "dst":
        writes = [w for w in timing.writes if w.inst is inst]
        if not writes:
            return head
        w = writes[0]
        out = [head, f"issued in cycle {w.issue}, the value is on {_group(w)} at position {w.position} in "
               f"cycle {w.ready} (latency {w.ready - w.issue})"]
        if len(writes) > 1:
            out.append(f"repeated: {len(writes)} values, the last on the stream in cycle {writes[-1].ready}")
        readers = [r for r in timing.reads if r.write is w]
        for r in readers:
            rq = cfg.queues[r.inst.queue]
            out.append(f"read by `{_mnemonic(snap, r)}` at {rq.name} (position {r.position}) in cycle {r.issue}, "
                       f"line {r.inst.loc.line}")
        if not readers:
            out.append("no instruction of this kernel reads it")
        return "\n\n".join(out)
    reads = [r for r in timing.reads if r.inst is inst and r.operand == which]
    if not reads:
        return head
    r = reads[0]
    out = [head, f"read in cycle {r.issue} at position {r.position}"]
    w = r.write
    if w is None:
        out.append(f"no value passes here on {name} in cycle {r.issue}")
    else:
        wq = cfg.queues[w.inst.queue]
        out.append(f"the value: `{_mnemonic(snap, w)}` at {wq.name} (position {w.position}), line "
                   f"{w.inst.loc.line}, issued in cycle {w.issue}, on {_group(w)} in cycle {w.ready}, passes "
                   f"position {r.position} in cycle {r.issue}")
    if len(reads) > 1:
        out.append(f"repeated: {len(reads)} reads, the last in cycle {reads[-1].issue}")
    return "\n\n".join(out)


def _group(w: Write) -> str:
    d = "w" if w.west else "e"
    return f"s{w.base}{d}" if w.width == 1 else f"s{w.base}{d}..s{w.base + w.width - 1}{d}"


def _mnemonic(snap: AsmSnapshot, ev: Write | Read) -> str:
    inst = ev.inst
    parts = [inst.spec.mnemonic] + [t for t in (inst.dtype, inst.dtype2) if t]
    return ".".join(parts)


# --- completion -------------------------------------------------------------------------------
DIRECTIVES = ("target", "data", "reserve", "extern", "kernel", "global")
_INST_PREFIX_RE = re.compile(r"^[ \t]*@[0-9]+(?P<a>[ \t]+(?P<unit>[A-Za-z_][A-Za-z0-9_.]*)?)?"
                             r"(?P<b>[ \t]+(?P<mn>[A-Za-z_][A-Za-z0-9_.]*)?)?(?P<c>[ \t]+(?P<ops>.*))?$")
_WORD_BEFORE_RE = re.compile(r"[A-Za-z0-9_.@]*$")


def completion(snap: AsmSnapshot, index: AsmIndex, line: int, col: int) -> list[types.CompletionItem]:
    text = snap.lines[line - 1] if 0 < line <= len(snap.lines) else ""
    prefix = text[:col - 1]
    cfg = snap.config
    word = _WORD_BEFORE_RE.search(prefix).group()
    in_kernel = index.kernel_at(line)
    if in_kernel is not None and line != in_kernel.start:
        m = _INST_PREFIX_RE.match(prefix)
        if m is None or cfg is None:
            return []
        if m.group("c") is not None:
            return _operand_items(snap, m.group("unit"), m.group("mn"), m.group("ops"), word)
        if m.group("b") is not None:
            return _mnemonic_items(cfg, m.group("unit"), m.group("mn") or "")
        if m.group("a") is not None:
            return [types.CompletionItem(q.name, kind=types.CompletionItemKind.Module,
                                         detail=f"{UNIT_KIND_NAMES[q.kind]} at position {q.position}")
                    for q in cfg.queues]
        return []
    stripped = prefix.lstrip()
    if word.startswith("@") or stripped.endswith("["):
        return _symbol_items(snap, None)
    if " " not in stripped and "\t" not in stripped:
        return [types.CompletionItem(d, kind=types.CompletionItemKind.Keyword) for d in DIRECTIVES]
    if re.match(r"^global[ \t]+[A-Za-z]*$", stripped):
        return [types.CompletionItem(d, kind=types.CompletionItemKind.Keyword) for d in ("data", "reserve", "kernel")]
    if re.search(r"\bin[ \t]+[A-Za-z0-9_]*$", prefix) and cfg is not None:
        return [types.CompletionItem(s.name, kind=types.CompletionItemKind.Module,
                                     detail=f"position {s.position}") for s in cfg.mem_slices] + \
               [types.CompletionItem(h, kind=types.CompletionItemKind.Module, detail="any slice of the hemisphere")
                for h in ("MEM_W", "MEM_E")]
    return []


def _mnemonic_items(cfg, unit: str | None, written: str) -> list[types.CompletionItem]:
    q = cfg.queue_by_name.get(unit or "")
    if q is None:
        return []
    base, dot, _rest = written.partition(".")
    spec = isa.BY_MNEMONIC.get(base) if dot else None
    if spec is not None and "." not in isa.BY_MNEMONIC.get(base).mnemonic and spec.types:
        seconds = spec.types2 or (None,)
        return [types.CompletionItem(f"{base}.{t}" + (f".{t2}" if t2 else ""), kind=types.CompletionItemKind.Function,
                                     detail=spec.doc)
                for t in spec.types for t2 in seconds]
    return [types.CompletionItem(s.mnemonic, kind=types.CompletionItemKind.Function, detail=s.doc)
            for s in isa.ISA if isa.runs_on(s, q.kind)]


def _operand_items(snap: AsmSnapshot, unit: str | None, mnemonic: str | None, ops_text: str,
                   word: str) -> list[types.CompletionItem]:
    cfg = snap.config
    spec, _dtype = _spec_of(mnemonic or "")
    q = cfg.queue_by_name.get(unit or "")
    if spec is None or q is None:
        return []
    if word.startswith("@") or ops_text.rstrip().endswith("["):
        return _symbol_items(snap, q)
    n = ops_text.count(",")
    kinds: list[str] = []
    if n < len(spec.required):
        kinds.append(spec.required[n].kind.name)
    else:
        kinds.append("options")
    items: list[types.CompletionItem] = []
    for kind in kinds:
        if kind in ("stream", "src_or_imm"):
            items += [types.CompletionItem(f"s{i}{d}", kind=types.CompletionItemKind.Variable,
                                           detail="stream flowing " + ("east" if d == "e" else "west"))
                      for d in "ew" for i in range(cfg.streams)]
        elif kind == "addr":
            items += [types.CompletionItem(f"[@{t.name}]", kind=types.CompletionItemKind.Variable,
                                           detail=f"{t.dtype} {'x'.join(map(str, t.shape))} in {t.placement}")
                      for t in snap.program.tensors if t.placement.slice == q.slice.name] if snap.program else []
        elif kind == "acc":
            items += [types.CompletionItem(f"acc{i}", kind=types.CompletionItemKind.EnumMember)
                      for i in range(cfg["mxm.acc_slots"])]
        elif kind == "mode":
            items += [types.CompletionItem(m, kind=types.CompletionItemKind.EnumMember) for m in ("set", "add")]
        elif kind == "link":
            items += [types.CompletionItem(f"L{n}", kind=types.CompletionItemKind.EnumMember) for n in q.links]
        elif kind == "table":
            items += _symbol_items(snap, None)
        elif kind == "options":
            for name, op in spec.optional.items():
                label = name if op.kind.name == "flag" else f"{name}="
                items.append(types.CompletionItem(label, kind=types.CompletionItemKind.Property,
                                                  detail=op.kind.doc))
    return items


def _symbol_items(snap: AsmSnapshot, q) -> list[types.CompletionItem]:
    items = []
    for rt in snap.raw.tensors:
        t = snap.tensors.get(rt.name)
        if q is not None and t is not None and t.placement.slice not in (None, q.slice.name):
            continue
        items.append(types.CompletionItem(f"@{rt.name}", kind=types.CompletionItemKind.Variable,
                                          detail=f"{rt.type_text} in {rt.placement[0]}"))
    for name, _line, _col in snap.raw.externs:
        items.append(types.CompletionItem(f"@{name}", kind=types.CompletionItemKind.Reference, detail="extern"))
    if q is None:
        items += [types.CompletionItem(f"@{v.raw.name}", kind=types.CompletionItemKind.Function, detail="kernel")
                  for v in snap.kernels]
    return items


# --- definitions, references, outline ---------------------------------------------------------


def definition(index: AsmIndex, line: int, col: int) -> Occurrence | None:
    occ = index.occurrence_at(line, col)
    return index.definitions.get(occ.name) if occ is not None else None


def references(index: AsmIndex, line: int, col: int, include_declaration: bool) -> list[Occurrence]:
    occ = index.occurrence_at(line, col)
    if occ is None or occ.name not in index.definitions:
        return []
    return [o for o in index.occurrences_of(occ.name) if include_declaration or not o.is_definition]


def document_symbols(snap: AsmSnapshot, lines: Lines) -> list[types.DocumentSymbol]:
    out = []
    for rt in snap.raw.tensors:
        rng = lines.range(rt.line, 1, len(lines.text(rt.line - 1)))
        sel = lines.range(rt.line, rt.name_col, len(rt.name) + 1)
        detail = f"{rt.type_text} in {rt.placement[0]}" + (f" at {rt.placement[2]}" if rt.placement[2] is not None else "")
        kind = types.SymbolKind.Constant if rt.init is not None else types.SymbolKind.Variable
        out.append(types.DocumentSymbol(f"@{rt.name}", kind, rng, sel, detail=detail))
    for name, line, col in snap.raw.externs:
        rng = lines.range(line, 1, len(lines.text(line - 1)))
        out.append(types.DocumentSymbol(f"@{name}", types.SymbolKind.Interface, rng,
                                        lines.range(line, col, len(name) + 1), detail="extern"))
    for v in snap.kernels:
        rk = v.raw
        rng = types.Range(lines.position(v.start, 1), lines.position(v.end, len(lines.text(v.end - 1)) + 1))
        timing = snap.timing(v)
        detail = f"{len(rk.insts)} instructions" + (f", {timing.length} cycles" if timing and timing.length is not None
                                                     else "")
        out.append(types.DocumentSymbol(f"@{rk.name}", types.SymbolKind.Function, rng,
                                        lines.range(rk.line, rk.name_col, len(rk.name) + 1), detail=detail))
    out.sort(key=lambda s: (s.range.start.line, s.range.start.character))
    return out


def folding_ranges(snap: AsmSnapshot) -> list[types.FoldingRange]:
    out = [types.FoldingRange(v.start - 1, v.end - 1, kind=types.FoldingRangeKind.Region)
           for v in snap.kernels if v.end > v.start]
    out += comment_folds(snap.lines)
    out.sort(key=lambda f: f.start_line)
    return out


_COMMENT_LINE_RE = re.compile(r"^[ \t]*//")


def comment_folds(lines: list[str]) -> list[types.FoldingRange]:
    """Runs of two or more whole-line comments."""
    out = []
    i = 0
    while i < len(lines):
        if _COMMENT_LINE_RE.match(lines[i]):
            j = i
            while j + 1 < len(lines) and _COMMENT_LINE_RE.match(lines[j + 1]):
                j += 1
            if j > i:
                out.append(types.FoldingRange(i, j, kind=types.FoldingRangeKind.Comment))
            i = j + 1
        else:
            i += 1
    return out


# --- inlay hints ------------------------------------------------------------------------------


def inlay_hints(snap: AsmSnapshot, lines: Lines, first: int, last: int) -> list[types.InlayHint]:
    """After each instruction with a stream result, where and when it lands (``→ s2e @5``);
    after each kernel header, the kernel's length. Lines are 1-based, inclusive."""
    out: list[types.InlayHint] = []
    for v in snap.kernels:
        if v.end < first or v.start > last:
            continue
        timing = snap.timing(v)
        if timing is None or timing.length is None:
            continue
        rk = v.raw
        header = lines.text(rk.line - 1)
        out.append(types.InlayHint(lines.position(rk.line, _code_end(header) + 1),
                                   f"{timing.length} cycles", kind=types.InlayHintKind.Type, padding_left=True))
        first_write: dict[int, Write] = {}
        for w in timing.writes:
            first_write.setdefault(id(w.inst), w)
        for i, ri in enumerate(rk.insts):
            if not first <= ri.line <= last:
                continue
            inst = v.insts.get(i)
            w = first_write.get(id(inst)) if inst is not None else None
            if w is None:
                continue
            end = _code_end(lines.text(ri.line - 1))
            out.append(types.InlayHint(lines.position(ri.line, end + 1), f"→ {_group(w)} @{w.ready}",
                                       kind=types.InlayHintKind.Type, padding_left=True))
    return out


def _code_end(text: str) -> int:
    """The number of characters before a line's comment, trailing blanks excluded."""
    cut = _comment_start(text)
    return len(text[:cut].rstrip())


def _comment_start(text: str) -> int:
    in_string = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif text.startswith("//", i):
            return i
        i += 1
    return len(text)


# --- code actions -----------------------------------------------------------------------------
_EMPTY_READ_RE = re.compile(r"^no value on (s[0-9]+[ew]) at .* in cycle ([0-9]+)$")
_NEAREST_RE = re.compile(r"passes .* in cycle ([0-9]+)$")


def move_to_arrival(snap: AsmSnapshot, index: AsmIndex, line: int, message: str, note: str | None):
    """For a "no value on sN at ... in cycle C" error whose note says when the nearest value
    passes (cycle A): edits that move the consumer (and a ``repeat`` right after it) by A - C.
    Returns (title, [(line, col, length, new text)]) or None."""
    m = _EMPTY_READ_RE.match(message)
    n = _NEAREST_RE.search(note or "")
    at = index.inst_at(line)
    if m is None or n is None or at is None:
        return None
    read_cycle, arrival_cycle = int(m.group(2)), int(n.group(1))
    delta = arrival_cycle - read_cycle
    ri = at.raw
    if delta == 0 or ri.cycle + delta < 0:
        return None
    edits = [(ri.line, ri.col, len(str(ri.cycle)) + 1, f"@{ri.cycle + delta}")]
    insts = at.view.raw.insts
    for nxt in insts[at.index + 1:]:
        if nxt.unit != ri.unit:
            continue
        if nxt.mnemonic == "repeat":
            edits.append((nxt.line, nxt.col, len(str(nxt.cycle)) + 1, f"@{nxt.cycle + delta}"))
        break
    title = f"Move to cycle {ri.cycle + delta}, when the value on {m.group(1)} arrives"
    return title, edits


# --- semantic tokens --------------------------------------------------------------------------
TOKEN_TYPES = ["keyword", "function", "variable", "type", "number", "string", "comment", "namespace",
               "method", "parameter", "enumMember", "property", "decorator"]
TOKEN_MODIFIERS = ["declaration", "readonly"]
_T = {t: i for i, t in enumerate(TOKEN_TYPES)}
_STREAM_RE = re.compile(r"^s[0-9]+[ew]$")
_TOP_TOKEN_RE = re.compile(r'(?P<comment>//.*)|(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<hex>hex"[0-9a-fA-F]*")'
                           r"|(?P<type>tensor<[^>\s]*>)|(?P<sym>@[A-Za-z_][A-Za-z0-9_.$]*)"
                           r"|(?P<num>0x[0-9a-fA-F]+|[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)"
                           r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*)")
TOP_KEYWORDS = {"target", "data", "reserve", "extern", "kernel", "global", "in", "at", "load", "loc"}


def semantic_tokens(snap: AsmSnapshot, index: AsmIndex) -> list[tuple[int, int, int, str, int]]:
    """(line, col, length, type, modifiers) for the whole document, in order; 1-based."""
    out: list[tuple[int, int, int, str, int]] = []
    decl = 1
    defs = {(o.line, o.col) for occs in index.top.values() for o in occs if o.is_definition}
    kinds = {name: occ.kind for name, occ in index.definitions.items()}
    for n, text in enumerate(snap.lines, start=1):
        at = index.inst_at(n)
        if at is not None:
            out += _inst_tokens(at, text, kinds)
            continue
        for m in _TOP_TOKEN_RE.finditer(text):
            kind = m.lastgroup
            col = m.start() + 1
            length = m.end() - m.start()
            if kind == "comment":
                out.append((n, col, length, "comment", 0))
            elif kind in ("string", "hex"):
                out.append((n, col, length, "string", 0))
            elif kind == "type":
                out.append((n, col, length, "type", 0))
            elif kind == "sym":
                what = kinds.get(m.group()[1:], "tensor")
                out.append((n, col, length, "function" if what == "kernel" else "variable",
                            decl if (n, col) in defs else 0))
            elif kind == "num":
                out.append((n, col, length, "number", 0))
            elif m.group() in TOP_KEYWORDS:
                out.append((n, col, length, "keyword", 0))
            elif re.match(r"^MEM_[WE][0-9]*$", m.group()):
                out.append((n, col, length, "namespace", 0))
    return out


def _inst_tokens(at: InstAt, text: str, kinds: dict) -> list[tuple[int, int, int, str, int]]:
    ri = at.raw
    n = ri.line
    out = [(n, ri.col, len(str(ri.cycle)) + 1, "decorator", 0), (n, ri.unit_col, len(ri.unit), "namespace", 0)]
    base, dot, suffix = ri.mnemonic.partition(".")
    spec = isa.BY_MNEMONIC.get(ri.mnemonic)
    if spec is not None or not dot:  # cmp.eq is one mnemonic
        out.append((n, ri.mnemonic_col, len(ri.mnemonic), "method", 0))
    else:
        head = base
        rest = suffix.split(".")
        while rest and head + "." + rest[0] in isa.BY_MNEMONIC:
            head += "." + rest.pop(0)
        out.append((n, ri.mnemonic_col, len(head), "method", 0))
        if rest:
            out.append((n, ri.mnemonic_col + len(head) + 1, len(ri.mnemonic) - len(head) - 1, "type", 0))
    for op in ri.operands:
        if op.kind == "name":
            out.append((n, op.col, op.length, "parameter" if _STREAM_RE.match(op.value) else "enumMember", 0))
        elif op.kind == "number":
            out.append((n, op.col, op.length, "number", 0))
        elif op.kind == "keyword":
            key = op.value[0]
            out.append((n, op.col, len(key), "property", 0))
            eq = text.find("=", op.col - 1 + len(key))
            if eq >= 0 and eq + 1 < op.col - 1 + op.length:
                vstart = len(text) - len(text[eq + 1:].lstrip()) + 1
                out.append((n, vstart, op.col + op.length - vstart, "number", 0))
        elif op.kind == "symbol":
            out.append((n, op.col, op.length, "function" if kinds.get(op.value) == "kernel" else "variable", 0))
        elif op.kind == "symref":
            m = re.compile(r"\[[ \t]*(@[A-Za-z_][A-Za-z0-9_.$]*)(?:[ \t]*[-+][ \t]*(0x[0-9a-fA-F]+|[0-9]+))?") \
                .match(text, op.col - 1)
            if m:
                out.append((n, m.start(1) + 1, len(m.group(1)), "variable", 0))
                if m.group(2):
                    out.append((n, m.start(2) + 1, len(m.group(2)), "number", 0))
        elif op.kind == "address":
            m = re.compile(r"\[[ \t]*(0x[0-9a-fA-F]+|[0-9]+)").match(text, op.col - 1)
            if m:
                out.append((n, m.start(1) + 1, len(m.group(1)), "number", 0))
    cut = _comment_start(text)
    if cut < len(text):
        out.append((n, cut + 1, len(text) - cut, "comment", 0))
    out.sort(key=lambda t: t[1])
    return out


def encode_tokens(tokens, lines: Lines) -> list[int]:
    """The protocol's relative encoding of semantic tokens (UTF-16 columns)."""
    data: list[int] = []
    prev_line, prev_col = 0, 0
    for line, col, length, kind, mods in tokens:
        start = lines.position(line, col).character
        end = lines.position(line, col + length).character
        line0 = line - 1
        delta_col = start - prev_col if line0 == prev_line else start
        data += [line0 - prev_line, delta_col, end - start, _T[kind], mods]
        prev_line, prev_col = line0, start
    return data

