"""register-block: a ``df`` vector-times-matrix into 320 × 320 MXM blocks over the planes.

``y = x · W`` with ``x`` of K elements and ``W`` of K × N becomes ``k × n`` blocks
(``k = ⌈K/320⌉``, ``n = ⌈N/320⌉``; ragged edges are padded with zeros, which add nothing to
the sums). Block ``(i, j)`` multiplies the ``i``-th 320-slice of ``x`` by rows ``320i…`` and
columns ``320j…`` of ``W`` (output column ``j``).

The blocks, column after column, are cut into one contiguous run per plane of equal length
(± 1 block), so every plane does the same work; planes are taken in the order west, east,
west, east, so that small problems use both hemispheres' streams. A plane's run is a list of
*parts*: the K blocks ``i0 … i1-1`` of one column ``j``, accumulated in one accumulator slot
(``set`` first, ``add`` after) and emitted once. A column whose blocks fall to two or more
planes (at most the runs' ends) is *split*: its parts' partial sums are added on the VXM
(``combine``). Each plane computes its split parts first, so the adds overlap the planes'
remaining work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from lpu.diagnostics import DiagnosticError, error
from lpu.dsl import dialect as D
from lpu.dsl import types as T
from lpu.dsl.frontend import loc_of


@dataclass
class PlaneWork:
    plane: str  # queue name, e.g. MXM_W0
    parts: list[tuple[int, int, int]] = field(default_factory=list)  # (j, i0, i1), in issue order

    @property
    def blocks(self) -> int:
        return sum(i1 - i0 for _, i0, i1 in self.parts)


@dataclass
class GemvPlan:
    """What register blocking decided for one ``y = x · W``."""

    func: str
    x_arg: str  # the argument's name (without %)
    y_dtype: str
    K: int
    N: int
    k: int  # blocks along K
    n: int  # blocks along N
    weights: np.ndarray | None  # W padded to (320k, 320n); None when W is an argument
    elem: str
    planes: list[PlaneWork]
    w_arg: str | None = None  # the argument holding W, when it is one

    @property
    def blocks(self) -> int:
        return self.k * self.n


def plane_order(cfg) -> list[str]:
    """MXM planes alternating between the hemispheres: W0, E0, W1, E1 on lpu-v1."""
    west = [q.name for q in cfg.queues if q.kind == "mxm" and q.slice.hemisphere == "W"]
    east = [q.name for q in cfg.queues if q.kind == "mxm" and q.slice.hemisphere == "E"]
    out = []
    for i in range(max(len(west), len(east))):
        out += west[i:i + 1] + east[i:i + 1]
    return out


def _unsupported(what: str, op) -> DiagnosticError:
    return DiagnosticError(error(f"the code generator does not handle {what} yet "
                                 "(supported: 'y = matmul x, W' with x a vector argument and W an argument or a 'data' "
                                 "tensor, i8, f16 or bf16)", loc_of(op)))


def register_block(module: ModuleOp, name: str, cfg, weights_of, max_planes: int | None = None,
                   tile_rows: int | None = None) -> GemvPlan:
    """Match ``@name`` against the forms the code generator handles and block it.
    ``tile_rows`` caps the rows of ``X`` sharing one weight load (GEMM; default: the
    accumulator slots).

    ``weights_of(data_op)`` gives a ``data`` tensor's contents (the interpreter's loader)."""
    from lpu.dsl.interpreter import arg_names, function

    func = function(module, name)
    body = [op for op in func.body.block.ops]
    args = list(func.body.block.args)
    names = arg_names(func)
    mm = next((op for op in body if isinstance(op, D.MatmulOp)), None)
    if mm is None:
        raise _unsupported("a function without a matmul", func)
    for op in body:
        if not isinstance(op, (D.GetOp, D.MatmulOp, D.ReturnOp)):
            raise _unsupported(f"'{op.name.removeprefix('df.')}'", op)
    ret = body[-1]
    if len(ret.operands) != 1 or ret.operands[0] is not mm.results[0]:
        raise _unsupported("a function that does not return its matmul", ret)
    if mm.lhs not in args:
        raise _unsupported("a matmul whose left operand is not an argument", mm)
    w_arg = None
    if mm.rhs in args:  # weights given at run time: the input binding stripes them
        w_arg = names[args.index(mm.rhs)]
        w = None
        K, N = T.shape_of(mm.rhs.type)
    else:
        get = mm.rhs.owner
        if not isinstance(get, D.GetOp):
            raise _unsupported("a matmul whose right operand is neither an argument nor a 'data' tensor", mm)
        data = D.module_symbol(get, D.get_sym(get, "tensor"))
        if not isinstance(data, D.DataOp):
            raise _unsupported("a matmul whose right operand is a 'reserve' tensor", get)
        w = np.asarray(weights_of(data))
        K, N = w.shape
    xshape, elem = T.shape_of(mm.lhs.type), T.elem_of(mm.lhs.type)
    if len(xshape) not in (1, 2) or elem not in ("i8", "f16", "bf16"):
        raise _unsupported(f"a matmul of {T.type_text(mm.lhs.type)}", mm)
    lanes = cfg.lanes
    k, n = -(-K // lanes), -(-N // lanes)
    padded = None if w is None else pad(w, k, n, lanes)
    order = plane_order(cfg)[:max_planes]
    if len(xshape) == 2:  # GEMM: several rows of x through each installed block
        from lpu.dsl.codegen.gemm import block_gemm

        return block_gemm(name, names[args.index(mm.lhs)], T.elem_of(mm.result.type), xshape[0], K, N, k, n,
                          padded, elem, order, w_arg, cfg, tile_rows, loc_of(mm))
    planes = [PlaneWork(p) for p in order[:min(len(order), k * n)]]
    split_blocks(planes, k, n)
    return GemvPlan(name, names[args.index(mm.lhs)], T.elem_of(mm.result.type), K, N, k, n, padded, elem, planes,
                    w_arg)


def pad(w: np.ndarray, k: int, n: int, lanes: int) -> np.ndarray:
    """``W`` with zero rows and columns up to whole blocks."""
    padded = np.zeros((k * lanes, n * lanes), dtype=w.dtype)
    padded[:w.shape[0], :w.shape[1]] = w
    return padded


def split_blocks(planes: list[PlaneWork], k: int, n: int) -> None:
    """Cut the ``k·n`` blocks (column-major) into one run per plane, and each run into parts;
    split parts first."""
    total = k * n
    start = 0
    for p, work in enumerate(planes):
        size = total // len(planes) + (1 if p < total % len(planes) else 0)
        parts = []
        b = start
        while b < start + size:
            j, i0 = divmod(b, k)
            i1 = min(k, i0 + start + size - b)
            parts.append((j, i0, i1))
            b += i1 - i0
        start += size
        work.parts = parts
    owners: dict[int, int] = {}
    for work in planes:
        for j, _, _ in work.parts:
            owners[j] = owners.get(j, 0) + 1
    for work in planes:
        work.parts.sort(key=lambda part: owners[part[0]] == 1)  # stable: split parts first


def split_columns(planes: list[PlaneWork]) -> dict[int, list[tuple[int, int]]]:
    """Columns computed by more than one part: j -> [(plane index, part index)]."""
    where: dict[int, list[tuple[int, int]]] = {}
    for p, work in enumerate(planes):
        for c, (j, _, _) in enumerate(work.parts):
            where.setdefault(j, []).append((p, c))
    return {j: v for j, v in where.items() if len(v) > 1}
