"""Lowering of a ``call`` of an assembly kernel (a part of ``lower.Lowering``).

``%r = call @k(%x) {inputs = [@a], outputs = [@b]}``: the kernel is hand-scheduled code with
its own cycles, units and streams, so the function runs around it, not through it:

1. before: every operand is copied into its ``inputs`` tensor, in the assembler's layout for
   that tensor (the tensor flattened into vectors of 320 lanes, the last one padded with
   zeros — what the simulator's host writes and what the reference interpreter runs the
   kernel on), through the VXM (``mov``, or ``select`` on a lane mask to zero the padding);
2. a ``KernelCall`` item: ``general.compile_general`` cuts the function's items there, so
   everything before it has landed when the kernel's cycle 0 comes, and everything after it
   starts once the kernel's last result has landed (its length, as the assembler computes
   it). The kernel's instructions are spliced in unchanged, shifted to that cycle;
3. after: each result is read from its ``outputs`` tensor — in place when its layout is the
   function's own (rows of whole vectors, or one row), copied out when a later kernel call
   could overwrite it, regathered when its rows do not start on vector boundaries.

A ``get`` of a tensor after a kernel call that writes it (or whose ``inputs`` name it) would
read what the run left there, which the code generator (that reads a ``data`` tensor's
contents at compile time) cannot know: a diagnostic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lpu.arch.layout import vectors
from lpu.asm.records import Kernel, Tensor
from lpu.diagnostics import DiagnosticError, SourceLoc, error
from lpu.dsl import dialect as D
from lpu.dsl import types as T
from lpu.dsl.codegen.snippets import Src
from lpu.dsl.codegen.vector import Vec, VValue, unsupported


@dataclass
class KernelCall:
    """Where a kernel runs in the function: a barrier with the kernel's instructions."""

    kernel: Kernel
    loc: SourceLoc | None = None


class CallLowering:
    def call(self, op, loc) -> None:
        name = D.get_sym(op, "callee")
        if name in self.templates:  # a function compiled once (template.py)
            self.template_call(op, self.templates[name], loc)
            return
        if not isinstance(D.module_symbol(op, name), D.KernelOp):  # a function inlining left (recursion)
            raise unsupported(op, f"a call of '@{name}' that is not inlined")
        from lpu.dsl.kernels import symbols_used, the_kernel

        prog = self.kernel_program(name)
        kernel = the_kernel(prog, name)
        tensors = {t.name: t for t in prog.tensors}
        reads, writes = symbols_used(kernel)
        ins, outs = D.get_syms(op, "inputs") or [], D.get_syms(op, "outputs") or []
        for sym in sorted(reads | writes | set(ins) | set(outs)):
            self.kernel_tensors.setdefault(sym, tensors[sym])
        for v, sym in zip(op.args, ins):
            self.to_tensor(self.values[v], tensors[sym], op, loc)
        self.snips.append(KernelCall(kernel, loc))
        self.kernel_writes |= writes | set(ins)  # (the call itself writes the inputs)
        later = any(isinstance(o, D.CallOp) for o in _after(op))
        for res, sym in zip(op.res, outs):
            self.values[res] = self.from_tensor(tensors[sym], tuple(T.shape_of(res.type)), later, op, loc)

    def _tensor_vecs(self, t: Tensor, op) -> list[Vec]:
        if t.placement.slice is None:
            raise DiagnosticError(error(f"the code generator needs '@{t.name}' in one MEM slice ('in MEM_W0', …) "
                                        "to pass values to and from a kernel through it", op_loc(op)))
        return [Vec(t.placement.slice, t.name, i) for i in range(vectors(t.shape, self.lanes))]

    def flat(self, x: VValue, loc) -> VValue:
        """``x`` as the assembler lays a tensor out: its elements in row-major order, 320 a vector."""
        if not x.splat and (x.rows == 1 or x.N % self.lanes == 0):
            return x
        n = int(np.prod(x.shape)) if x.shape else 1
        return self.gather((n,), x.elem, [x], np.zeros(n, int), np.arange(n), loc)

    def to_tensor(self, x: VValue, t: Tensor, op, loc) -> None:
        L = self.lanes
        dst = self._tensor_vecs(t, op)
        src = self.flat(x, loc)
        n = int(np.prod(x.shape)) if x.shape else 1
        valid = n - (len(dst) - 1) * L  # the last vector's lanes that hold elements
        e = x.elem
        for k, (s, d) in enumerate(zip(src.vecs, dst)):
            if k == len(dst) - 1 and valid < L:  # the padding lanes are zeros, as the host writes them
                self.emit("select", e, [Src(self.lane_mask(valid, e, loc), e), Src(s, e),
                                        Src(self.lane_mask(0, e, loc), e)], d, loc=loc)
            else:
                self.emit("mov", e, [Src(s, e)], d, loc=loc)

    def from_tensor(self, t: Tensor, shape: tuple[int, ...], copy: bool, op, loc) -> VValue:
        L = self.lanes
        vecs = self._tensor_vecs(t, op)
        n = int(np.prod(shape)) if shape else 1
        N = shape[-1] if shape else 1
        rows = n // N
        if N != 1 and (rows == 1 or N % L == 0):  # the function's own layout
            v = VValue(shape, t.dtype, vecs)
            if not copy:
                return v
            out = self.temp(shape, t.dtype, loc)
            self.map1("mov", v, out, loc)
            return out
        flat = VValue((len(vecs) * L,), t.dtype, vecs)
        return self.gather(shape, t.dtype, [flat], np.zeros(n, int), np.arange(n), loc)

    def check_get(self, op) -> None:
        sym = D.get_sym(op, "tensor")
        if sym in self.kernel_writes:
            raise DiagnosticError(error(f"'@{sym}' is read after a kernel call that writes it; the code generator "
                                        "reads a tensor's contents at compile time (pass it to the kernel's caller "
                                        "as a result instead)", op_loc(op)))


def op_loc(op):
    from lpu.dsl.frontend import loc_of

    return loc_of(op)


def _after(op):
    o = op.next_op
    while o is not None:
        yield o
        o = o.next_op

