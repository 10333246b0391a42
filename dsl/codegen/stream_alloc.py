"""``stream-alloc``: a stream group for every in-flight value of a scheduled kernel.

A scheduled ``lpu.kernel`` fixes where and when every value appears on a stream (its
producer's position and ready cycle) and where and when it is read; which *streams* carry it
is a separate choice. This pass makes that choice again, on its own, for the whole kernel:

1. **Values.** The assembler's timing check (``lpu.asm.timing``: ``stream_events``,
   ``link_reads``) lists every stream write and read of the kernel, repeats included, and
   links each read to the write it meets. Stream operands that must name the same streams are
   tied into one *value*: a read and the write it meets, and every repetition of a repeated
   instruction (one operand field serves them all). ``lw``'s rows and ``transpose``'s 16
   vectors are one operand over several writes, so those writes move together. Each operand
   keeps its offset from the value's first stream, so a value is moved as a whole.
2. **Space-time segments.** Each write occupies, on each stream of its group, the cells of
   its diagonal from the writer's position to its farthest reader (architecture page,
   section 2: a reader sees the nearest writer upstream on its diagonal). Two values may share
   a stream and a diagonal only where these position intervals do not touch; an overlap means
   a reader would meet the other value, or two writes land on one cell.
3. **Allocation** (interval colouring): values in order of the cycle they first appear (then
   the producer's place in the kernel), each on the lowest group — in its own direction, which
   the geometry fixes — whose every operand starts at a multiple of its alignment (the ISA
   table's group width; ``lw`` rows: the element width) and whose cells are all free. First
   fit can strand a 16-stream value (an ``lw`` of 16 rows, a ``transpose``) among narrow ones
   where the scheduler's own choice fitted (the decoder layer); then the allocation is made
   once more with the widest values first (the same order within a width); when that fails
   too but the kernel's own groups lie within the limit, they are kept (a kernel that meets
   every timing rule is an allocation). Then every producer's and reader's stream operand is
   rewritten. Deterministic.

A value that finds no group is a ``DiagnosticError`` at its producer's location (the ``df`` op
an ``lpu`` op came from): the scheduler that made the kernel can be run again with the same
limit (``schedule-general{streams=N}``), which then places the op at a later cycle instead.

Options: ``streams=N`` uses only the stream indices ``0 .. N-1`` of each direction (default:
all the chip has, ``cfg.streams``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass

from lpu.arch.isa import DTYPE_BYTES, group_width, runs_on
from lpu.asm.operands import stream_text
from lpu.asm.records import Kernel
from lpu.asm.timing import link_reads, stream_events
from lpu.diagnostics import DiagnosticError, SourceLoc, error
from lpu.dsl.lpu_dialect import KernelOp, LpuInstOp, op_text, sequence_and_time


@dataclass(slots=True)
class Value:
    """One allocation unit: stream operands that must move together, and their cells."""

    west: bool
    operands: dict[tuple[int, int], tuple[int, int, int]] = field(default_factory=dict)
    #: (op index, operand index) -> (original base, width, alignment)
    cells: list[tuple[int, int, int, int]] = field(default_factory=list)
    #: (original stream, diagonal, first position, last position), one per stream of each write
    appear: int = 1 << 62  # the first cycle a write of it is on its stream
    last: int = -1  # the last cycle it is read (or appears, if never read)
    producer: int = 1 << 62  # op index of its first write (the earliest to appear)
    base: int | None = None  # its allocated first stream

    @property
    def span(self) -> tuple[int, int]:
        """(lowest original stream, one past the highest) over its operands."""
        return (min(b for b, _, _ in self.operands.values()),
                max(b + w for b, w, _ in self.operands.values()))

    @property
    def width(self) -> int:
        lo, hi = self.span
        return hi - lo

    @property
    def positions(self) -> tuple[int, int]:
        return min(c[2] for c in self.cells), max(c[3] for c in self.cells)


class Cells:
    """The stream cells taken: (west, stream, diagonal) -> position intervals."""

    def __init__(self) -> None:
        self.taken: dict[tuple[bool, int, int], list[tuple[int, int]]] = {}

    def free(self, v: Value, delta: int) -> bool:
        get = self.taken.get
        for s, d, lo, hi in v.cells:
            for a, b in get((v.west, s + delta, d), ()):
                if a <= hi and lo <= b:
                    return False
        return True

    def take(self, v: Value, delta: int) -> None:
        for s, d, lo, hi in v.cells:
            self.taken.setdefault((v.west, s + delta, d), []).append((lo, hi))


def _op_loc(op: LpuInstOp) -> SourceLoc | None:
    """The df op an lpu op came from (the general path records it; the GEMV/GEMM stages do
    not yet)."""
    from lpu.dsl.verify import loc_of

    loc = loc_of(op)
    if loc is not None and loc.file and loc.line > 0:
        return SourceLoc(loc.file, loc.line, loc.col)
    return None


def kernel_values(kop: KernelOp, cfg) -> list[Value]:
    """The in-flight values of a kernel that meets every timing rule (else the assembler's
    diagnostics), each with its operands and cells, in allocation order."""
    ops = kop.insts()
    index: dict[int, int] = {}
    insts = []
    diags: list = []
    for i, op in enumerate(ops):  # what to_kernel checks, at the df ops' locations
        loc = _op_loc(op)
        q = cfg.queue_by_name.get(op.unit.data)
        if q is None or not runs_on(op.SPEC, q.kind):
            what = f"cannot execute on {q.name}" if q is not None else f"names an unknown unit '{op.unit.data}'"
            diags.append(error(f"'{op.SPEC.mnemonic}' {what}", loc))
            continue
        inst = op.to_inst(cfg, loc)
        index[id(inst)] = i
        insts.append(inst)
    if diags:
        raise DiagnosticError(diags)
    by_index = {i: inst for inst in insts for i in [index[id(inst)]]}
    insts.sort(key=lambda x: (x.queue, x.cycle))
    kernel = Kernel(kop.sym_name.data, insts, False)
    # queues, sequencing, ports, stream timing: a kernel that breaks a rule is not allocated
    diags = sequence_and_time(kernel, cfg)
    if diags:
        raise DiagnosticError(diags)
    writes, reads = stream_events(kernel, cfg)
    diags = link_reads(writes, reads, cfg)
    if diags:  # the timing check passed, so this cannot happen
        raise DiagnosticError(diags)

    # one node per stream operand, tied to the nodes it must share streams with (union-find)
    parent: dict[tuple[int, int], tuple[int, int]] = {}

    def find(n):
        root = n
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[n] != root:
            parent[n], n = root, parent[n]
        return root

    dst_of: dict[int, int] = {}

    def dst_node(inst):
        i = dst_of.get(id(inst))
        if i is None:
            i = dst_of[id(inst)] = next(k for k, o in enumerate(inst.spec.operands) if o.role == "dst")
        return (index[id(inst)], i)

    far: dict[int, int] = {}  # id(write) -> the farthest position a reader meets it
    last: dict[int, int] = {}
    for r in reads:
        w = r.write
        a, b = find((index[id(r.inst)], r.operand)), find(dst_node(w.inst))
        if a != b:
            parent[max(a, b)] = min(a, b)
        k = id(w)
        f = far.get(k, w.position)
        far[k] = min(f, r.position) if w.west else max(f, r.position)
        last[k] = max(last.get(k, w.ready), r.issue)
    for w in writes:
        find(dst_node(w.inst))

    values: dict[tuple[int, int], Value] = {}
    for w in writes:
        n = dst_node(w.inst)
        v = values.get(find(n))
        if v is None:
            v = values[find(n)] = Value(w.west)
        diag = w.ready + w.position if w.west else w.ready - w.position
        q = far.get(id(w), w.position)
        lo, hi = min(q, w.position), max(q, w.position)
        v.cells.extend((s, diag, lo, hi) for s in range(w.base, w.base + w.width))
        if (w.ready, n[0]) < (v.appear, v.producer):
            v.appear, v.producer = w.ready, n[0]
        v.last = max(v.last, last.get(id(w), w.ready))
    for n in parent:
        op, inst = ops[n[0]], by_index[n[0]]
        o = op.SPEC.operands[n[1]]
        fields = {oo.name: a for oo, a in zip(op.SPEC.operands, inst.args)}
        width = group_width(op.SPEC, o, inst.dtype, inst.dtype2, fields)
        align = DTYPE_BYTES[inst.dtype] if o.width == "rows" else width
        values[find(n)].operands[n] = (fields[o.name] & 31, width, align)
    return sorted(values.values(), key=lambda v: (v.appear, v.producer, v.span))


def allocate(values: list[Value], n: int) -> Value | None:
    """Interval colouring: each value, in the order given, on the lowest group inside streams
    ``0 .. n-1`` where every operand is aligned and every cell is free (sets ``base``); the
    first value that fits nowhere, or None."""
    cells = Cells()
    for v in values:
        lo, hi = v.span
        for base in range(0, n - (hi - lo) + 1):
            delta = base - lo
            if all((b + delta) % a == 0 for b, _, a in v.operands.values()) and cells.free(v, delta):
                cells.take(v, delta)
                v.base = base
                break
        else:
            return v
    return None


def stream_alloc(kop: KernelOp, cfg, streams: int | None = None) -> list[Value]:
    """Allocates a stream group to every in-flight value of ``kop`` in place, using stream
    indices ``0 .. streams-1`` of each direction; the values with their groups (``base``).
    A value that fits nowhere is a ``DiagnosticError`` at its producer's location."""
    n = cfg.streams if streams is None else streams
    if not 1 <= n <= cfg.streams:
        raise DiagnosticError(error(f"stream-alloc: streams={n} is not between 1 and the {cfg.streams} streams "
                                    f"of each direction of {cfg.name}"))
    ops = kop.insts()
    values = kernel_values(kop, cfg)
    v = allocate(values, n)
    if v is not None and allocate(sorted(values, key=lambda u: -u.width), n) is None:
        v = None  # first fit fragmented the streams; the widest values first fit them
    if v is not None and all(u.span[1] <= n for u in values):
        # the kernel's own groups fit the limit: they are an allocation (it meets every timing
        # rule, so no two values share a cell), so schedule-general{streams=N} always allocates
        for u in values:
            u.base = u.span[0]
        v = None
    if v is not None:
        p0, p1 = v.positions
        producer = ops[v.producer]
        d = error(f"no free stream group of {v.width} stream{'s' if v.width > 1 else ''} "
                  f"{'westward' if v.west else 'eastward'} for this value over positions {p0}..{p1}, "
                  f"cycles {v.appear}..{v.last} (streams={n})", _op_loc(producer))
        text = " ".join(op_text(producer, cfg).split())
        d.note(f"the value is produced by '{text}' in kernel @{kop.sym_name.data}")
        raise DiagnosticError(d)
    for v in values:
        delta = v.base - v.span[0]
        for (i, k), (b, _, _) in v.operands.items():
            ops[i].attributes[ops[i].SPEC.operands[k].name] = StringAttr(stream_text((b + delta) | (32 if v.west else 0)))
    return values


@dataclass(frozen=True)
class StreamAllocPass(ModulePass):
    """stream-alloc: a stream group for every in-flight value of each lpu.kernel, never two on one cell

    Option streams=N: only stream indices 0..N-1 of each direction (default: all the chip has)."""

    name = "stream-alloc"
    streams: int | None = None

    def apply(self, ctx, op: ModuleOp) -> None:
        from lpu.arch.config import load_config
        from lpu.dsl import dialect as D

        for k in [k for k in op.walk() if isinstance(k, KernelOp)]:
            cfg = load_config(k.target.data if k.target is not None else None)
            stream_alloc(k, cfg, self.streams)
        for k in [k for k in op.ops if isinstance(k, D.KernelOp)]:
            text_kernel_alloc(op, k, self.streams)


def text_kernel_alloc(module: ModuleOp, k, streams: int | None) -> None:
    """An assembly kernel of a ``.lpu`` module (``df.kernel``: hand-written, or a scheduled
    ``.s`` file read back): assembled with the module's tensors (its instructions located at
    their ``.lpu`` lines), allocated, and printed back as its text, one instruction a line."""
    from lpu.dsl.codegen.passes import _base, _config
    from lpu.dsl.interpreter import _State
    from lpu.dsl.kernels import kernel_program, the_kernel
    from lpu.dsl.lpu_dialect import kernel_text

    cfg = _config(module)
    state = _State(module, _base(k), {})
    name = k.sym_name.data
    kernel = the_kernel(kernel_program(module, name, cfg, lambda sym: state.tensor(sym, state.symbols[sym])), name)
    kop = KernelOp.build_from(name, [LpuInstOp.from_inst(i, cfg) for i in kernel.insts], kernel.is_global)
    stream_alloc(kop, cfg, streams)
    k.attributes["text"] = StringAttr(kernel_text(kop, cfg).rstrip("\n"))
