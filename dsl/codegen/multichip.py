"""Multi-chip compilation: a ``df`` function whose ops carry ``chip = N`` becomes one object per
chip, its ``send``/``recv`` lowered to C2C instructions timed against the topology's links,
plus the system file for ``lpu-ld``.

**Partitioning.** Chip ``c``'s part of the function is a function of its own (``chip_function``):
the ops placed on ``c``, with every ``recv`` on ``c`` turned into an argument and every value
``c`` sends made a result (plus the function's results computed on ``c``). Each part goes
through the one-chip compiler (``compile_function``), whatever it supports. A value used on
another chip than the one computing it must travel by ``send``/``recv`` (an error otherwise);
arguments are written by the host to every chip that uses them.

**Kernels of a chip's object**, run end to end (lpu-ld): ``recv-in`` (the received values its
computation reads, written into the compiled part's input slices), the part's own kernel,
``send`` (each vector of a sent value read from its result slice onto a stream toward the
C2C slice wired to the peer, and sent), ``recv-out`` (received values that are only results,
kept in a reserved tensor near the C2C slice). All chips start at cycle 0 together, so every
cycle is global: a send issued at ``t`` lands at ``t + busy + latency`` (busy: the vector's
bytes over ``c2c.link_bytes_per_cycle``; latency: the wire's, else ``c2c.link_latency``), and
the receiver's ``recv`` is placed no earlier. Chips are scheduled in dependence order, so a
pipeline (chip 0 → chip 1 → …) and a gather (chips → chip 0) both work; a cycle of
dependences between chips is an error.

What travels is a compiled value's vectors as they lie in SRAM (for a GEMV: its ``result_rows``,
one i32/f32 vector per 320 columns, padding included); a received value can feed a GEMV's
``x`` (every plane's copy is written from the one stream as it passes) or be a result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import ArrayAttr, FunctionType, ModuleOp, StringAttr

from lpu.arch.isa import DTYPE_BYTES
from lpu.asm.emit import emit
from lpu.asm.records import Placement, Program, Tensor
from lpu.diagnostics import DiagnosticError, error
from lpu.dsl import dialect as D
from lpu.dsl import types as T
from lpu.dsl.frontend import loc_of
from lpu.dsl.codegen.c2c import (Transfer, _link, _recv_kernel, _send_kernel, as_vectors, chip_name,
                                 from_vectors, n_vectors)
from lpu.dsl.lpu_dialect import kernel_text, to_kernel


def chip_of(op) -> int:
    return D.get_int(op, "chip", 0)


def chips_used(func: D.FuncOp) -> list[int]:
    return sorted({chip_of(op) for op in func.body.block.ops if not isinstance(op, D.ReturnOp)}
                  | {D.get_int(op, "to") for op in func.body.block.ops if isinstance(op, D.SendOp)})


def is_multichip(module: ModuleOp, name: str) -> bool:
    from lpu.dsl.interpreter import function

    return len(chips_used(function(module, name))) > 1


def check_placement(func: D.FuncOp) -> None:
    """Every operand is an argument or a value of the op's own chip."""
    args = set(func.body.block.args)
    for op in func.body.block.ops:
        if isinstance(op, D.ReturnOp):
            continue
        for v in op.operands:
            if v in args:
                continue
            if chip_of(v.owner) != chip_of(op):
                raise DiagnosticError(error(
                    f"'{op.name.removeprefix('df.')}' on chip {chip_of(op)} uses a value computed on chip "
                    f"{chip_of(v.owner)}: send it ('send ... {{to = {chip_of(op)}}}' and 'recv')", loc_of(op)))


@dataclass
class Part:
    """Chip ``c``'s share of the function, as a function of its own."""

    chip: int
    module: ModuleOp | None  # None: the chip only forwards or receives
    name: str
    recv_args: list[tuple[int, str]] = field(default_factory=list)  # (recv op index, argument name)
    results: list[int] = field(default_factory=list)  # original op index of each result's producer (-1: arg)
    result_values: list = field(default_factory=list)


def chip_function(module: ModuleOp, name: str, chip: int) -> Part:
    """Clone ``module`` and cut ``@name`` down to the ops on ``chip`` (module doc)."""
    from lpu.dsl.interpreter import function

    orig = function(module, name)
    ops = list(orig.body.block.ops)
    index = {op: i for i, op in enumerate(ops)}
    mine = [i for i, op in enumerate(ops) if not isinstance(op, D.ReturnOp) and chip_of(op) == chip]
    wanted = []  # values of chip's ops the part must produce
    for i in mine:
        if isinstance(ops[i], D.SendOp) and ops[i].operands[0].owner in index:
            wanted.append(ops[i].operands[0])
    for v in ops[-1].operands:
        if v.owner in index and chip_of(v.owner) == chip and not isinstance(v.owner, D.RecvOp):
            wanted.append(v)
    wanted = list(dict.fromkeys(wanted))
    compute = [i for i in mine if not isinstance(ops[i], (D.SendOp, D.RecvOp))]
    part = Part(chip, None, name)
    if not compute:
        return part
    m2 = module.clone()
    f2 = function(m2, name)
    ops2 = list(f2.body.block.ops)
    block = f2.body.block
    names = [a.data for a in orig.arg_names.data] if orig.arg_names is not None else \
        [a.name_hint or f"arg{i}" for i, a in enumerate(orig.body.block.args)]
    for i in mine:
        if isinstance(ops[i], D.RecvOp) and any(not isinstance(u.operation, (D.ReturnOp, D.SendOp))
                                                for u in ops[i].results[0].uses):
            arg = block.insert_arg(ops2[i].results[0].type, len(block.args))
            ops2[i].results[0].replace_all_uses_with(arg)
            part.recv_args.append((i, f"recv{i}"))
            names.append(f"recv{i}")
    results = [ops2[index[v.owner]].results[v.index] for v in wanted]
    part.results = [index[v.owner] for v in wanted]
    part.result_values = wanted
    ret = ops2[-1]
    new_ret = D.ReturnOp.create(operands=results)
    block.insert_op_before(new_ret, ret)
    ret.detach()
    ret.erase()
    for i in reversed(range(len(ops2) - 1)):
        if i not in compute:
            ops2[i].detach()
            ops2[i].erase(safe_erase=False)
    f2.function_type = FunctionType.from_lists([a.type for a in block.args], [v.type for v in results])
    f2.arg_names = ArrayAttr([StringAttr(n) for n in names])
    part.module = m2
    return part


@dataclass
class ChipCode:
    chip: int
    part: Part
    compiled: object | None  # the part's Compiled
    kernels: list = field(default_factory=list)  # KernelOp, in run order
    tensors: list[Tensor] = field(default_factory=list)
    start: dict[str, int] = field(default_factory=dict)  # kernel name -> global start cycle
    length: int = 0
    obj: object = None
    recv_symbols: dict[int, str] = field(default_factory=dict)  # recv op index -> reserve tensor (results)
    cfg: object = None
    sent_args: dict[str, str] = field(default_factory=dict)  # tensor -> argument the host writes there


def _result_rows(c, k: int) -> list[tuple[str, int]]:
    """The vectors of the compiled part's ``k``-th result, as (symbol, word offset)."""
    if hasattr(c, "result_vectors"):  # a compiler path that says where its results lie
        return c.result_vectors(k)
    if hasattr(c, "outs"):  # the general path: each value's vectors, in order, as rows of symbols
        v = c.outs[k]
        return [(vec.symbol, vec.row * DTYPE_BYTES[v.elem]) for vec in v.vecs]
    from lpu.dsl.codegen.sram_layout import result_rows

    if k != 0 or not hasattr(c, "plan"):
        raise DiagnosticError(error("multi-chip: this compiled share does not say where its result lies"))
    w = DTYPE_BYTES[c.plan.y_dtype]
    # GEMV: column block j; GEMM: (row m, column block j) -- sorted, both are row-major vectors
    return [(sym, row * w) for _, (sym, row) in sorted(result_rows(c.layout).items())]


def _arg_rows(c, arg: str) -> list[list[tuple[str, int]]]:
    """For each vector of argument ``arg`` of the compiled part, the (symbol, word offset)s it
    must be written to (a GEMV's x: one copy per plane)."""
    if isinstance(getattr(c, "args", None), dict) and arg in c.args:  # the general path
        v = c.args[arg]
        return [[(vec.symbol, vec.row * DTYPE_BYTES[v.elem])] for vec in v.vecs]
    plan = getattr(c, "plan", None)
    if plan is None or getattr(plan, "x_arg", None) != arg:
        raise DiagnosticError(error("multi-chip: a received value can feed a matmul's left operand or the general "
                                    "path's arguments only"))
    w = DTYPE_BYTES[plan.elem]
    if hasattr(plan, "M"):  # GEMM: vector (m, i) is row i·M + m of every plane's copy of X
        return [[(pl.x_symbol, (i * plan.M + m) * w) for pl in c.layout.planes]
                for m in range(plan.M) for i in range(plan.k)]
    return [[(pl.x_symbol, i * w) for pl in c.layout.planes] for i in range(plan.k)]


# --- the whole program --------------------------------------------------------------------------
@dataclass
class MultiCompiled:
    """One object per chip, the system they link in, and how arguments and results map onto
    each chip's SRAM symbols (``chipN:symbol``)."""

    func: str
    chips: dict[int, ChipCode]
    system_text: str
    system_source: str
    result_at: list[tuple[int, object]]  # per function result: (chip, ("part", k) | ("recv", op index))
    result_types: list
    arg_names: list[str]
    lanes: int
    cycles: int = 0
    op_names: dict = field(default_factory=dict)  # (file, line, column) -> the df op there

    def tensor(self, sym: str, read) -> np.ndarray | None:
        """Module tensor ``@sym`` as the chip that holds it keeps it (``read("chipN:symbol")``)."""
        for c, code in sorted(self.chips.items()):
            if code.compiled is not None and hasattr(code.compiled, "tensor"):
                got = code.compiled.tensor(sym, lambda s, c=c: read(f"{chip_name(c)}:{s}"))
                if got is not None:
                    return got
        return None

    def kernel_names(self, c: int) -> list[str]:
        """Chip ``c``'s kernels, in run order."""
        code = self.chips[c]
        return [k.program.kernels[0].name if k is code.compiled else k.sym_name.data for k in code.kernels]

    def objects(self) -> list[tuple[str, object]]:
        return [(chip_name(c), code.obj) for c, code in sorted(self.chips.items())]

    def system(self):
        from lpu.linker.system import system_from_text

        return system_from_text(self.system_text, self.system_source)

    def link(self):
        from lpu.linker.link import link_objects

        return link_objects(self.objects(), self.system())

    def inputs(self, args: dict[str, np.ndarray], lanes: int | None = None) -> dict[str, np.ndarray]:
        out = {}
        for c, code in self.chips.items():
            for sym, name in code.sent_args.items():
                out[f"{chip_name(c)}:{sym}"] = as_vectors(np.asarray(args[name]), self.lanes)
            if code.compiled is None:
                continue
            sub = dict(args)
            for i, name in code.part.recv_args:  # written by the recv-in kernel; zeros until then
                ty = self._recv_type(code, i)
                sub[name] = np.zeros(T.shape_of(ty), T.dtype(T.elem_of(ty)))
            for sym, a in code.compiled.inputs(sub, lanes).items():
                out[f"{chip_name(c)}:{sym}"] = a
        return out

    def _recv_type(self, code, i):
        from lpu.dsl.interpreter import function

        f = function(code.part.module, self.func)
        names = [a.data for a in f.arg_names.data]
        return f.body.block.args[names.index(f"recv{i}")].type

    def output_symbols(self) -> list[str]:
        out = []
        for c, (kind, k) in self.result_at:
            code = self.chips[c]
            if kind == "part":
                out += [f"{chip_name(c)}:{s}" for s in code.compiled.output_symbols()]
            else:
                out.append(f"{chip_name(c)}:{code.recv_symbols[k]}")
        return list(dict.fromkeys(out))

    @property
    def program(self):  # for callers that read the chip configuration from a one-chip Compiled
        return next(code.compiled.program for code in self.chips.values() if code.compiled is not None)

    def results(self, parts: dict[str, np.ndarray], lanes: int | None = None) -> list[np.ndarray]:
        """Every result of the function, in order."""
        lanes = lanes or self.program.config.lanes
        out = []
        for (c, (kind, k)), ty in zip(self.result_at, self.result_types):
            code = self.chips[c]
            prefix = f"{chip_name(c)}:"
            if kind == "part":
                mine = {s[len(prefix):]: a for s, a in parts.items() if s.startswith(prefix)}
                out.append(part_results(code.compiled, mine, lanes)[k])
            else:
                out.append(from_vectors(parts[prefix + code.recv_symbols[k]], T.shape_of(ty)))
        return out

    def result(self, parts: dict[str, np.ndarray], lanes: int) -> np.ndarray:
        return self.results(parts, lanes)[0]


def part_results(compiled, parts: dict[str, np.ndarray], lanes: int) -> list[np.ndarray]:
    """Every result of one chip's part (a one-result kernel has only ``result``)."""
    if hasattr(compiled, "results"):
        return compiled.results(parts)
    return [compiled.result(parts, lanes)]

    def write_objects(self, directory: str) -> list[str]:
        """``chipN.o`` per chip and ``system.toml`` (the input of ``lpu-ld``) into ``directory``
        (their paths); also ``chipN.lpu``, each chip's assembly."""
        from lpu.asm.objfile import write_object
        from lpu.files import write_atomic

        os.makedirs(directory, exist_ok=True)
        paths = []
        for name, obj in self.objects():
            paths.append(os.path.join(directory, name + ".o"))
            write_atomic(paths[-1], write_object(obj))
        for c in sorted(self.chips):  # the same programs as assembly, for reading or lpu-as
            write_atomic(os.path.join(directory, chip_name(c) + ".lpu"), self.chip_assembly(c))
        paths.append(os.path.join(directory, "system.toml"))
        write_atomic(paths[-1], self.system_text)
        return paths

    def chip_assembly(self, c: int, source: str = "") -> str:
        """Chip ``c``'s program as one ``.lpu`` assembly file (tensors with their placements and
        bytes, then its kernels in run order): ``lpu-as`` makes the chip's object from it."""
        from lpu.dsl.codegen import tensor_declaration

        code = self.chips[c]
        cfg = code.cfg
        out = [f"// {chip_name(c)} of @{self.func}: compiled from {source or 'a df function'}; "
               f"{len(code.kernels)} kernel(s), {code.length} cycles", f'target "{cfg.name}"', ""]
        out += [tensor_declaration(t, cfg) for t in code.tensors]
        return "\n".join(out) + "\n" + "\n".join(
            "\n" + kernel_text(k.kernel if k is code.compiled else k, cfg, True, self.op_names) for k in code.kernels)

    def assembly(self, source: str = "") -> str:
        """Every chip's assembly (``lpu compile -S``), one after the other; ``--objects DIR``
        writes them as separate ``chipN.lpu`` files."""
        return "\n".join(f"// ===== {chip_name(c)} =====\n" + self.chip_assembly(c, source)
                         for c in sorted(self.chips))


def compile_any(module: ModuleOp, name: str, cfg, base_dir: str = ".", file: str = "<codegen>",
                system: str | None = None, max_planes: int | None = None, chips: int | None = None):
    """``compile_multichip`` when ``@name`` places ops on several chips, else ``compile_function``.
    A function that places nothing is split over ``chips`` chips, or over as many as its
    tensors need when they do not fit one (``partition.py``); functions compiled once
    (``template.py``) are shared by every chip."""
    from lpu.dsl.codegen import compile_function
    from lpu.dsl.codegen.partition import needs_chips, partition
    from lpu.dsl.codegen.template import template_cache

    with template_cache():
        if is_multichip(module, name):
            if chips is not None:
                raise DiagnosticError(error("the function already places ops on chips ('chip = N', send/recv); "
                                            "compile it without --chips", loc_of(_func(module, name))))
            return compile_multichip(module, name, cfg, system, base_dir, file)
        n = chips if chips is not None else needs_chips(module, name, cfg)
        if n > 1:
            return compile_multichip(partition(module, name, cfg, n), name, cfg, system, base_dir, file)
        if system is not None:  # a one-chip function runs on chip0 of any system; still, a bad file is an error
            from lpu.linker.system import load_system

            load_system(system)
        return compile_function(module, name, cfg, base_dir, max_planes, file)


def _func(module, name):
    from lpu.dsl.interpreter import function

    return function(module, name)


def compile_multichip(module: ModuleOp, name: str, cfg, system_path: str | None, base_dir: str = ".",
                      file: str = "<codegen>") -> MultiCompiled:
    """Compile ``@name`` whose ops are placed on several chips (module doc)."""
    from lpu.dsl.codegen import compile_function
    from lpu.dsl.interpreter import arg_names, function
    from lpu.linker.system import load_system

    from lpu.dsl.codegen import source_op_names

    func = function(module, name)
    names = source_op_names(module)
    check_placement(func)
    chips = chips_used(func)
    topo = system_path or ("two-chips" if max(chips) < 2 else "node" if max(chips) < 8 else "two-nodes")
    system = load_system(topo)
    for c in chips:
        if chip_name(c) not in system.chips:
            raise DiagnosticError(error(f"the function places ops on chip {c}, but the system '{topo}' has no "
                                        f"chip '{chip_name(c)}'", loc_of(func)))
    ops = list(func.body.block.ops)
    # pair the k-th send from a to b with the k-th recv on b from a
    sends: dict[tuple[int, int], list[int]] = {}
    recvs: dict[tuple[int, int], list[int]] = {}
    for i, op in enumerate(ops):
        if isinstance(op, D.SendOp):
            sends.setdefault((chip_of(op), D.get_int(op, "to")), []).append(i)
        elif isinstance(op, D.RecvOp):
            recvs.setdefault((D.get_int(op, "from"), chip_of(op)), []).append(i)
    transfers: list[Transfer] = []
    for key in sorted(set(sends) | set(recvs)):
        s, r = sends.get(key, []), recvs.get(key, [])
        if len(s) != len(r):
            op = ops[(s or r)[-1]]
            raise DiagnosticError(error(f"chip {key[0]} sends {len(s)} value(s) to chip {key[1]}, which receives "
                                        f"{len(r)}", loc_of(op)))
        for a, b in zip(s, r):
            transfers.append(Transfer(a, b, key[0], key[1], T.elem_of(ops[a].operands[0].type),
                                      send_loc=loc_of(ops[a]), recv_loc=loc_of(ops[b])))
    codes: dict[int, ChipCode] = {}
    for c in chips:
        part = chip_function(module, name, c)
        compiled = compile_function(part.module, name, cfg, base_dir, file=file) if part.module is not None else None
        code = ChipCode(c, part, compiled)
        code.cfg = cfg
        if compiled is not None:
            code.tensors = list(compiled.program.tensors)
        codes[c] = code
    for tr in transfers:
        code = codes[tr.src]
        value = ops[tr.send].operands[0]
        producer = value.owner
        if value in func.body.block.args:  # an argument forwarded: the host writes it to a tensor here
            w = DTYPE_BYTES[tr.dtype]
            vecs = n_vectors(T.shape_of(value.type), cfg.lanes)
            c2c, _ = _link(system, cfg, chip_name(tr.src), chip_name(tr.dst))
            pc = cfg.queue_by_name[c2c].position
            near = min(cfg.mem_slices, key=lambda s: abs(s.position - pc))
            sym = f"send{tr.send}"
            code.tensors.append(Tensor(sym, tr.dtype, (vecs, cfg.lanes), Placement(near.name), None, True, None,
                                       vecs * w))
            code.sent_args[sym] = arg_names(func)[func.body.block.args.index(value)]
            tr.rows = [(sym, v * w) for v in range(vecs)]
            continue
        if isinstance(producer, D.RecvOp):
            raise DiagnosticError(error("multi-chip: forwarding a received value is not supported yet",
                                        loc_of(ops[tr.send])))
        k = code.part.results.index(ops.index(producer))
        tr.rows = _result_rows(code.compiled, k)
    for tr in transfers:  # both ends must see the same vectors (row-major, padded rows)
        want = n_vectors(T.shape_of(ops[tr.recv].results[0].type), cfg.lanes)
        if len(tr.rows) != want:
            raise DiagnosticError(error(f"multi-chip: the sent value is {len(tr.rows)} vectors in SRAM, the received "
                                        f"one {want}", loc_of(ops[tr.send])))
    # schedule chips in dependence order: a chip's computation starts once its inputs landed
    done: set[int] = set()
    for _ in range(len(chips) + 1):
        for c in chips:
            if c in done:
                continue
            code = codes[c]
            incoming = [tr for tr in transfers if tr.dst == c and (tr.recv, f"recv{tr.recv}") in code.part.recv_args]
            if any(not tr.arrivals for tr in incoming):
                continue
            t = 0
            if incoming:
                items = []
                for tr in incoming:
                    dests = _arg_rows(code.compiled, f"recv{tr.recv}")
                    items += [(tr, v, dests[v], code.tensors) for v in range(len(tr.arrivals))]
                kop, n = _recv_kernel(f"{name}_recv_in", cfg, system, chip_name(c), items, t)
                code.kernels.append(kop)
                code.start[kop.sym_name.data] = t
                t += n
            # arguments are sent first (they need no computation), computed values after it
            early = [tr for tr in transfers if tr.src == c and tr.rows and tr.rows[0][0] in code.sent_args]
            late = [tr for tr in transfers if tr.src == c and tr not in early]
            for outgoing, kname in ((early, f"{name}_send_args"), (None, name), (late, f"{name}_send")):
                if outgoing is None:
                    if code.compiled is not None:
                        code.kernels.append(code.compiled)  # its kernel record, no IR needed
                        code.start[name] = t
                        t += code.compiled.cycles
                elif outgoing:
                    kop, n = _send_kernel(kname, cfg, system, chip_name(c), outgoing, code.tensors, t)
                    code.kernels.append(kop)
                    code.start[kname] = t
                    t += n
            code.length = t
            done.add(c)
    if len(done) != len(chips):
        raise DiagnosticError(error("multi-chip: the chips wait on each other in a cycle (a value must be received "
                                    "before the chip can compute what it sends)", loc_of(func)))
    # received values that are results only: one reserve tensor each, after the chip's other kernels
    for c in chips:
        code = codes[c]
        items = []
        for tr in transfers:
            if tr.dst != c or (tr.recv, f"recv{tr.recv}") in code.part.recv_args:
                continue
            w = DTYPE_BYTES[tr.dtype]
            vecs = len(tr.arrivals)
            c2c, _ = _link(system, cfg, chip_name(c), chip_name(tr.src))
            pc = cfg.queue_by_name[c2c].position
            near = min((s for s in cfg.mem_slices), key=lambda s: abs(s.position - pc))
            sym = f"recv{tr.recv}"
            code.tensors.append(Tensor(sym, tr.dtype, (vecs, cfg.lanes), Placement(near.name), None, True, None,
                                       vecs * w))
            code.recv_symbols[tr.recv] = sym
            items += [(tr, v, [(sym, v * w)], code.tensors) for v in range(vecs)]
        if items:
            kop, n = _recv_kernel(f"{name}_recv_out", cfg, system, chip_name(c), items, code.length)
            code.kernels.append(kop)
            code.start[kop.sym_name.data] = code.length
            code.length += n
    for c in chips:
        code = codes[c]
        kernels = [k.program.kernels[0] if k is code.compiled else to_kernel(k, cfg, file) for k in code.kernels]
        code.obj = emit(Program(cfg.name, cfg, code.tensors, [], kernels, file, names))
    results = []
    for v in ops[-1].operands:
        if v in func.body.block.args:
            raise DiagnosticError(error("multi-chip: returning an argument is not supported", loc_of(ops[-1])))
        c = chip_of(v.owner)
        if isinstance(v.owner, D.RecvOp):
            results.append((c, ("recv", ops.index(v.owner))))
        else:
            results.append((c, ("part", codes[c].part.results.index(ops.index(v.owner)))))
    src = topo if os.sep not in topo and not topo.endswith(".toml") else os.path.abspath(topo)
    text = (f"# written by lpu compile for @{name}: one object per chip\n"
            f"topology = {src!r}\n".replace("'", '"'))
    for c in chips:
        text += f'\n[chips.{chip_name(c)}]\nobjects = ["{chip_name(c)}"]\n'
    mc = MultiCompiled(name, codes, text, "<lpu compile system>", results,
                       [v.type for v in ops[-1].operands], arg_names(func), cfg.lanes,
                       max(code.length for code in codes.values()), names)
    return mc
