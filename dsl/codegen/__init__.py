"""Code generation: ``df`` functions to scheduled ``lpu`` kernels, emitted as objects.

The pipeline, one module a stage: ``register_block`` (blocks and planes), ``sram_layout``
(slices, addresses and the streams the layout implies), ``schedule`` (issue cycles, as
``lpu`` dialect ops), then emission: the kernel op to assembler records
(``lpu_dialect.to_kernel``, which runs the assembler's own queue and timing checks) and
``lpu.asm.emit.emit`` to an object. No assembly text on the way.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from lpu.asm.emit import emit
from lpu.asm.objfile import ObjectFile
from lpu.asm.printer import tensor_type
from lpu.asm.records import Program
from lpu.dsl.codegen.register_block import GemvPlan, register_block
from lpu.dsl.codegen.schedule import schedule
from lpu.dsl.codegen.sram_layout import Layout, pack_inputs, result_rows, sram_layout, unpack_y
from lpu.dsl.lpu_dialect import KernelOp, kernel_text, to_kernel


@dataclass
class Compiled:
    """One compiled function: its object, its scheduled kernel and how its arguments and
    result map onto SRAM symbols."""

    func: str
    plan: GemvPlan
    layout: Layout
    kernel: KernelOp
    program: Program
    obj: ObjectFile
    cycles: int  # the kernel's length
    times: dict[str, float] = field(default_factory=dict)

    def inputs(self, args: dict[str, np.ndarray], lanes: int) -> dict[str, np.ndarray]:
        return pack_inputs(self.plan, self.layout, args, self.program.config)

    def output_symbols(self) -> list[str]:
        return sorted({sym for sym, _ in result_rows(self.layout).values()})

    def result(self, parts: dict[str, np.ndarray], lanes: int) -> np.ndarray:
        return unpack_y(self.plan, self.layout, parts, lanes)

    def assembly(self, source: str = "") -> str:
        """The scheduled program as ``.lpu`` assembly (``lpu compile -S``); ``lpu-as`` reads
        it back to the same code. Data tensors are written as their exact bytes."""
        return assembly_text(self.func, self.program, self.kernel, self.cycles, source)


def assembly_text(func: str, program: Program, kernel: KernelOp, cycles: int, source: str = "") -> str:
    cfg = program.config
    out = [f"// {func}: compiled from {source or 'a df function'}; {cycles} cycles",
           f'target "{cfg.name}"', ""]
    out += [tensor_declaration(t, cfg) for t in program.tensors]
    out.append("")
    return "\n".join(out) + kernel_text(kernel, cfg, True, program.op_names)


def source_op_names(module: ModuleOp) -> dict[tuple[str, int, int], str]:
    """The ``df`` op written at each location of a parsed module: (file, line, column) ->
    ``df.softmax``. The compiled instructions carry these locations (a decomposed softmax's
    primitives carry the softmax's), so an object can name the source op of every word."""
    from xdsl.dialects.builtin import FileLineColLoc

    names: dict[tuple[str, int, int], str] = {}
    for op in module.walk():
        loc = op.location
        if isinstance(loc, FileLineColLoc) and loc.line.data > 0:
            names.setdefault((loc.filename.data, loc.line.data, loc.column.data), op.name)
    return names


def name_source_ops(c, names: dict[tuple[str, int, int], str]):
    """``c`` (a compiled function) with its program and object naming the source op of every
    location its words carry (the object's ``.lpu.ops``)."""
    from lpu.asm.objfile import used_op_names

    c.program.op_names = names
    c.obj.op_names = used_op_names(c.obj, names)
    return c


def tensor_declaration(t, cfg) -> str:
    """An SRAM tensor record as its ``.lpu`` declaration (contents as exact bytes in hex)."""
    from lpu.arch.layout import from_sram

    head = ("global " if t.is_global else "") + ("data" if t.image is not None else "reserve")
    line = f"{head} @{t.name} : {tensor_type(t.shape, t.dtype)} in {t.placement}"
    if t.image is not None:
        line += f' = hex"{from_sram(t.image, t.shape, t.dtype, cfg.lanes).tobytes().hex()}"'
    return line


def compile_function(module: ModuleOp, name: str, cfg, base_dir: str = ".", max_planes: int | None = None,
                     file: str = "<codegen>") -> Compiled:
    """Compile ``@name`` of a parsed ``df`` module for chip ``cfg``; raises ``DiagnosticError``.

    A lone ``y = x · W`` takes the GEMV path (register-block, sram-layout, schedule); every
    other function the general path (``general.compile_general``). The object names the
    source op of each location (``source_op_names``)."""
    return name_source_ops(_compile_function(module, name, cfg, base_dir, max_planes, file), source_op_names(module))


def _compile_function(module: ModuleOp, name: str, cfg, base_dir: str, max_planes: int | None, file: str):
    from lpu.dsl.interpreter import _State

    if not is_gemv(module, name):
        from lpu.dsl.codegen.general import compile_general

        return compile_general(module, name, cfg, base_dir if os.path.isdir(base_dir) else ".", file)
    t0 = time.perf_counter()
    loc = _matmul_loc(module, name)
    state = _State(module, base_dir if os.path.isdir(base_dir) else ".", {})
    weights = lambda d: state.tensor(d.sym_name.data, d)  # noqa: E731
    if max_planes is None:
        # small problems: fewer planes can win (no partial sums to add, nearer weight slices);
        # compiling is cheap there, so try each count and keep the shortest kernel
        plan = register_block(module, name, cfg, weights)
        if plan.blocks <= SMALL_BLOCKS:
            best = min((_compile(register_block(module, name, cfg, weights, p), cfg, name, file, t0, loc)
                        for p in range(1, len(plan.planes) + 1)), key=lambda c: c.cycles)
            return best
    plan = register_block(module, name, cfg, weights, max_planes)
    return _compile(plan, cfg, name, file, t0, loc)


SMALL_BLOCKS = 16


def is_gemv(module: ModuleOp, name: str) -> bool:
    """The function is one ``matmul`` of a vector or matrix (``get`` ops aside) and returns it:
    GEMV (and GEMM) blocking handles it as a whole; a batch of matrices goes the general way."""
    from lpu.dsl import dialect as D
    from lpu.dsl.interpreter import function

    ops = [op for op in function(module, name).body.block.ops if not isinstance(op, D.GetOp)]
    return (len(ops) == 2 and isinstance(ops[0], D.MatmulOp) and isinstance(ops[1], D.ReturnOp)
            and ops[1].operands[0] is ops[0].results[0] and len(ops[0].lhs.type.get_shape()) <= 2
            and len(ops[0].rhs.type.get_shape()) == 2)


def _matmul_loc(module: ModuleOp, name: str):
    """The location of the function's one ``matmul``, as the lpu ops carry it."""
    from xdsl.dialects.builtin import FileLineColLoc

    from lpu.dsl import dialect as D
    from lpu.dsl.interpreter import function

    mm = next(op for op in function(module, name).body.block.ops if isinstance(op, D.MatmulOp))
    return mm.location if isinstance(mm.location, FileLineColLoc) else None


def _compile(plan: GemvPlan, cfg, name: str, file: str, t0: float, loc=None) -> Compiled:
    times = {}
    t1 = time.perf_counter()
    layout = sram_layout(plan, cfg)
    t2 = time.perf_counter()
    kop = schedule(plan, layout, cfg, name)
    if loc is not None:  # every instruction of the blocked GEMV/GEMM comes from its one matmul
        for op in kop.insts():
            op.location = loc
    t3 = time.perf_counter()
    kernel = to_kernel(kop, cfg, file)
    prog = Program(cfg.name, cfg, list(layout.tensors), [], [kernel], file)
    obj = emit(prog)
    t4 = time.perf_counter()
    times.update({"register-block": t1 - t0, "sram-layout": t2 - t1, "schedule": t3 - t2, "emit": t4 - t3})
    return Compiled(name, plan, layout, kop, prog, obj, kernel.length, times)
