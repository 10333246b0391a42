"""Lower bounds in cycles for a whole ``df`` function on one chip (docs/codegen.md, "Lower
bound for a function"): the throughput bounds of its matmuls (MXM compute, weight streams into
the planes, SRAM read ports) and a dependency bound — the longest chain of dependent ops,
each at the least latency the floor plan allows (``op_latency``). The largest is the bound.
"""

from __future__ import annotations

import math

from lpu.arch.isa import BY_MNEMONIC, DTYPE_BYTES, WEIGHT_BUFFERS
from lpu.dsl import dialect as D
from lpu.dsl import types as T

_TRANSCENDENTAL = ("exp", "tanh", "sigmoid", "rsqrt", "recip")


def _positions(cfg):
    pos = {q.kind: q.position for q in cfg.queues if q.kind in ("vxm",)}
    V = pos["vxm"]
    sxm = min(abs(q.position - V) for q in cfg.queues if q.kind == "sxm")
    mxm = min(abs(q.position - V) for q in cfg.queues if q.kind == "mxm")
    return sxm, mxm


def op_latency(op, cfg) -> int:
    """The least cycles from an op's operands being ready to its result being ready, values
    chained on streams at the VXM (no SRAM round trip counted)."""
    sxm, mxm = _positions(cfg)
    lat = BY_MNEMONIC["add"].latency_for(cfg, "f32")
    name = op.name.removeprefix("df.")
    if name in _TRANSCENDENTAL:
        return BY_MNEMONIC["exp"].latency_for(cfg, "f32")
    if name in D.BINARY_OPS or name in D.COMPARE_OPS or name in D.UNARY_OPS or \
            isinstance(op, (D.SelectOp, D.CastOp, D.QuantizeOp, D.DequantizeOp)):
        return lat
    if isinstance(op, (D.ReduceSumOp, D.ReduceMaxOp, D.ReduceMinOp)):
        shape = T.shape_of(op.input.type)
        axis = D.get_int(op, "axis", -1) % max(len(shape), 1)
        n = shape[axis] if shape else 1
        if axis != len(shape) - 1:
            return lat * math.ceil(math.log2(max(n, 1))) if n > 1 else 0
        steps = lat * math.ceil(math.log2(max(n, 2)))  # two-input combining steps
        lanes = _lane_extreme(min(n, cfg.lanes), sxm, cfg) + steps  # through the SXMs
        if isinstance(op, D.ReduceSumOp):
            # or one pass of an all-ones matrix through the nearest plane: a round trip, one
            # mm (i8 at the integer rate, floats as bf16/f16 parts) and the acc
            e = T.elem_of(op.input.type)
            occ = BY_MNEMONIC["mm"].occupancy_for(cfg, "i8" if e in ("i8",) else "bf16")
            return min(lanes, 2 * mxm + occ + BY_MNEMONIC["acc"].latency_for(cfg, "f32"))
        return lanes
    if isinstance(op, D.MatmulOp):
        e = T.elem_of(op.lhs.type)
        K = T.shape_of(op.lhs.type)[-1]
        occ = BY_MNEMONIC["mm"].occupancy_for(cfg, e)
        kc = math.ceil(K / cfg.lanes)
        return 2 * mxm + kc * occ + BY_MNEMONIC["acc"].latency_for(cfg, "f32")
    if isinstance(op, D.TransposeOp):  # (of a value known at compile time: 0, function_bounds)
        return 2 * sxm + BY_MNEMONIC["transpose"].latency_for(cfg, "i8")
    return 0  # views, constants, get


def _lane_extreme(n: int, sxm: int, cfg) -> int:
    """The least cycles a maximum (or minimum) over ``n`` lanes of a vector spends moving lanes
    (docs/codegen.md, "Lower bound for a function"): only the SXMs move lanes, and the MXM
    cannot take a maximum. A trip VXM → SXM → VXM costs ``2·sxm + latency``. One SXM
    instruction gives one moved vector — each lane from one source lane — except a transpose,
    which gives 16 but each lane from its own superlane of 16. So one trip over more than 16
    lanes needs ``n − 16`` moved vectors from other superlanes, issued on the SXM queues one a
    cycle each; two trips (superlanes first, then ``⌈n/16⌉ − 1`` moves across them) cost two
    trips. The cheaper of the two."""
    trip = 2 * sxm + BY_MNEMONIC["rotate"].latency_for(cfg, "f32")
    if n <= 1:
        return 0
    queues = max(1, sum(1 for q in cfg.queues if q.kind == "sxm"))
    g = int(BY_MNEMONIC["transpose"].operands[0].width)  # a transpose's superlane (the ISA table)
    if n <= g:
        return trip
    one = trip + math.ceil((n - g) / queues) - 1
    two = 2 * trip + math.ceil((math.ceil(n / g) - 1) / queues) - 1
    return min(one, two)


def _fixed(get, written: set) -> bool:
    """A ``get`` of a ``data`` tensor no ``store`` writes: its contents are the compiler's."""
    sym = D.get_sym(get, "tensor")
    return sym not in written and isinstance(D.module_symbol(get, sym), D.DataOp)


def _loaded_by(anc: list[tuple[int, int]], spare: int, rate: int) -> int:
    """The least cycle by which the weights of a set of matmuls can all be in planes: for every
    threshold ``T`` among the matmuls' input cycles, the bytes of those whose input is ready
    at ``T`` or later, less the ``spare`` bytes the planes' buffers can hold at ``T``, stream
    in after ``T`` at ``rate`` bytes a cycle (docs/codegen.md, "Weights through the planes'
    buffers"). ``anc``: (input cycle, weight bytes) of each matmul."""
    best = total = 0
    for t, b in sorted(anc, reverse=True):
        total += b
        if total > spare:
            best = max(best, t + (total - spare) // rate)
    return best


def function_bounds(module, name: str, cfg, chips: int = 1) -> dict[str, float]:
    """The bounds of ``@name`` after the code generator's pipeline (decomposed, unrolled), on
    ``chips`` chips of ``cfg`` (their planes and streams together: any split of the work)."""
    from lpu.dsl.codegen.general import PIPELINE
    from lpu.dsl.interpreter import function
    from lpu.dsl.passes import run_pipeline

    module = module.clone()
    run_pipeline(module, PIPELINE)
    fn = function(module, name)
    ready: dict = {a: 0 for a in fn.body.block.args}
    planes = chips * sum(1 for q in cfg.queues if q.kind == "mxm")
    lw_bytes = planes * cfg["mxm.max_rows_per_lw"] * cfg.lanes
    stream_bytes = chips * 2 * cfg.streams * cfg.lanes
    rate = min(lw_bytes, stream_bytes)
    _, mxm = _positions(cfg)
    widest = max(DTYPE_BYTES[t] for t in BY_MNEMONIC["mm"].types)  # the bytes of a weight a buffer holds
    macs = wbytes = 0.0
    chain = 0
    written = {D.get_sym(op, "tensor") for op in module.walk() if isinstance(op, D.StoreOp)}
    known: set = set()  # values known at compile time: the compiler transposes and reshapes them
    # the matmuls each value depends on (with itself, for a matmul's result): (input cycle, bytes)
    matmuls: dict = {}
    for op in fn.body.block.ops:
        start = max((ready.get(v, 0) for v in op.operands), default=0)
        if isinstance(op, D.ConstantOp) or isinstance(op, D.GetOp) and _fixed(op, written) or \
                isinstance(op, (D.TransposeOp, D.ReshapeOp)) and op.operands[0] in known:
            known.update(op.results)
        done = start + (0 if op.results and op.results[0] in known else op_latency(op, cfg))
        above = frozenset().union(*(matmuls.get(v, frozenset()) for v in op.operands))
        if isinstance(op, D.MatmulOp):
            e = T.elem_of(op.lhs.type)
            rhs = T.shape_of(op.rhs.type)
            K, N = rhs[-2:]
            M = math.prod(T.shape_of(op.result.type)[:-1])  # rows of x, over every batch
            occ = cfg["mxm.int_occupancy"] if e == "i8" else cfg["mxm.float_occupancy"]
            macs += M * K * N * occ  # plane-cycles of MACs: f16 runs at a quarter rate
            nbytes = math.prod(rhs) * DTYPE_BYTES[e]  # (a batched matmul: every batch's matrix)
            wbytes += nbytes
            above = above | {(id(op), start, nbytes)}
            # each plane holds WEIGHT_BUFFERS matrices of rows x cols (the active and the shadow
            # weights): the last weights in, then one mm, the acc and the way back to the VXM
            spare = WEIGHT_BUFFERS * planes * cfg["mxm.rows"] * cfg["mxm.cols"] * widest
            last = _loaded_by([(t, b) for _, t, b in above], spare, rate)
            if last:
                done = max(done, last + BY_MNEMONIC["mm"].occupancy_for(cfg, e)
                           + BY_MNEMONIC["acc"].latency_for(cfg, "f32") + mxm)
        for r in op.results:
            ready[r] = done
            if above:
                matmuls[r] = above
        chain = max(chain, done)
    return {
        "mxm compute": macs / (planes * cfg["mxm.rows"] * cfg["mxm.cols"]),
        "weight streams": wbytes / rate,
        "sram ports": wbytes / (chips * len(cfg.mem_slices) * cfg.lanes),
        "dependency chain": float(chain),
    }
