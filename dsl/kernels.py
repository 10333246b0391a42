"""Assembly kernels of a ``.lpu`` module, as the assembler sees them.

A ``df.call`` of a kernel (``call @k(%x) {inputs = [@a], outputs = [@b]}``) writes its operands
into the SRAM tensors ``inputs`` names, runs the kernel, and reads its results from
``outputs``. Two users need the kernel as machine code:

- the reference interpreter, which runs it on the simulator (the machine's reference) when no
  Python reference is given (``run_function(..., kernels=...)``);
- the code generator, which splices its instructions into the compiled function.

``kernel_program`` assembles one kernel together with the module's tensors. The kernel's text
is placed at its own line and column (as the frontend parses it), so the assembler's
diagnostics (a timing rule the kernel breaks, a tensor it reads that has no placement) point
into the ``.lpu`` file; the tensors follow it as declarations with their contents in hex.
"""

from __future__ import annotations

import numpy as np

from lpu.asm.printer import tensor_type
from lpu.asm.records import Kernel, Program, SymRef
from lpu.dsl import dialect as D
from lpu.dsl import types as T


def kernel_program(module, name: str, cfg, value_of) -> Program:
    """The kernel ``@name`` and the module's tensors, assembled (raises ``DiagnosticError``).
    ``value_of(sym)``: a ``data`` tensor's contents (the interpreter's current SRAM value)."""
    from lpu.asm.assembler import assemble
    from lpu.dsl.frontend import loc_of

    kop = next(op for op in module.ops if isinstance(op, D.KernelOp) and op.sym_name.data == name)
    items = [(kop, kop.text.data)] + [(t, _declaration(t, value_of)) for t in module.ops
                                      if isinstance(t, (D.DataOp, D.ReserveOp))]
    file = "<kernel>"
    where = []
    for op, text in items:
        loc = loc_of(op)
        if loc is not None:
            file = loc.file
        # a tensor's location is its name's: the declaration starts that much further left
        col = loc.col - (text.index("@") if op is not kop else 0) if loc is not None else 1
        where.append(((loc.line, max(col, 1)) if loc is not None else (1 << 30, 1), text))
    # each at its own line and column, so that diagnostics and notes point into the .lpu file
    out, line = [], 1
    for (at, col), text in sorted(where, key=lambda w: w[0]):
        if at < line or at == 1 << 30:  # (two on one line; or no location) the next free line
            at, col = line, 1
        out.append("\n" * (at - line) + " " * (col - 1) + text + "\n")
        line = at + text.count("\n") + 1
    return assemble("".join(out), file, cfg)


def the_kernel(prog: Program, name: str) -> Kernel:
    return next(k for k in prog.kernels if k.name == name)


def symbols_used(kernel: Kernel) -> tuple[set[str], set[str]]:
    """The SRAM tensors the kernel's instructions read, and those they write."""
    reads, writes = set(), set()
    for inst in kernel.insts:
        for a in inst.args:
            if isinstance(a, SymRef):
                (writes if inst.spec.mnemonic == "write" else reads).add(a.symbol)
    return reads, writes


def _declaration(t, value_of) -> str:
    shape, elem = T.shape_of(t.type), T.elem_of(t.type)
    head = f"{'data' if isinstance(t, D.DataOp) else 'reserve'} @{t.sym_name.data} : {tensor_type(shape, elem)}"
    if t.placement is not None:
        head += f" in {t.placement.data}"
        if t.address is not None:
            head += f" at {t.address.value.data}"
    if isinstance(t, D.DataOp):
        value = np.ascontiguousarray(value_of(t.sym_name.data), dtype=T.dtype(elem))
        head += f' = hex"{value.tobytes().hex()}"'
    return head


def simulate_kernel(module, name: str, cfg, sram: dict[str, np.ndarray], value_of) -> list[str]:
    """Run kernel ``@name`` alone on the simulator over the SRAM tensors ``sram`` (updated in
    place with what the run leaves in them); returns its hazards (empty: a clean run)."""
    from lpu.asm.emit import emit
    from lpu.linker.link import link_objects
    from lpu.sim.cli import simulate

    prog = kernel_program(module, name, cfg, value_of)
    kernel = the_kernel(prog, name)
    prog.kernels = [kernel]
    reads, writes = symbols_used(kernel)
    shapes = {t.name: (t.shape, t.dtype) for t in prog.tensors}
    names = sorted((reads | writes | set(sram)) & set(shapes))
    inputs = {s: np.ascontiguousarray(value_of(s)) for s in names}
    r = simulate(link_objects([(name, emit(prog))]), prog.file, inputs=inputs, outputs=names, strict=False)
    for s in names:
        sram[s] = np.asarray(r.outputs[s]).reshape(shapes[s][0]).astype(T.dtype(shapes[s][1]), copy=True)
    return [str(h) for h in r.hazards]
