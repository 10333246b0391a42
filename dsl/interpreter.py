"""The reference interpreter: runs ``df`` functions on numpy arrays, on xDSL's interpreter
framework, with the machine's numerics (``lpu.dsl.numerics``). It is the golden model compiled
programs are checked against, and the check that every pass preserves meaning.

Chips: every op runs where its ``chip`` attribute says (default 0), in program order; a
``send`` queues its value on the (from, to) channel and a ``recv`` takes the oldest one.
SRAM tensors (``data``/``reserve``) hold their contents for the whole run (and, given one
``sram`` dict, from run to run), ``store`` writes into them, and a function's symbol parameters
are bound by each call to the tensors it passes (``_State.bindings``); an assembly kernel
called with ``call`` runs through a Python reference given to ``run_function(kernels=...)``, or,
without one, on the simulator over those tensors (``lpu.dsl.kernels``).
"""

from __future__ import annotations

import os
from collections import deque
from typing import Callable

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.interpreter import (
    Interpreter,
    InterpreterFunctions,
    ReturnedValues,
    impl,
    impl_terminator,
    register_impls,
)
from xdsl.ir import Operation
from lpu.diagnostics import DiagnosticError, SourceLoc, error
from lpu.files import parse_npy
from lpu.dsl import dialect as D
from lpu.dsl import numerics as N
from lpu.dsl import types as T
from lpu.dsl.frontend import loc_of

KernelRef = Callable[[dict[str, np.ndarray]], None]


class RunError(DiagnosticError):
    """A run-time error of the reference: a diagnostic at the op (or data tensor) that failed,
    so every tool that reads df data (the compiler too) reports it like any other error."""

    def __init__(self, message: str, op: Operation | None = None, loc: SourceLoc | None = None):
        self.loc = loc if loc is not None else loc_of(op) if op is not None else None
        super().__init__(error(message, self.loc))
        self.op = op


def _elem(op: Operation) -> str:
    return T.elem_of(op.results[0].type)


class _State:
    def __init__(self, module: ModuleOp, base_dir: str, kernels: dict[str, KernelRef],
                 sram: dict[str, np.ndarray] | None = None):
        self.module = module
        self.base_dir = base_dir
        self.kernels = kernels
        self.sram: dict[str, np.ndarray] = sram if sram is not None else {}
        self.channels: dict[tuple[int, int], deque] = {}
        self.symbols = {op.sym_name.data: op for op in module.ops if "sym_name" in op.attributes}
        # the symbol parameters of the functions being run, innermost call last: name -> the
        # module tensor it is bound to
        self.bindings: list[dict[str, str]] = [{}]

    def resolve(self, name: str) -> str:
        """The module tensor ``@name`` stands for in the function being run."""
        return self.bindings[-1].get(name, name)

    def tensor(self, name: str, op: Operation) -> np.ndarray:
        """The contents of the module's SRAM tensor ``@name`` (made from its initial contents on
        first use, then kept: ``store`` writes into it)."""
        if name not in self.sram:
            self.sram[name] = self._initial(self.symbols[name])
        return self.sram[name]

    def simulate_kernel(self, name: str, op: Operation) -> None:
        from lpu.arch.config import load_config
        from lpu.dsl.kernels import simulate_kernel

        target = self.module.attributes.get("df.target")
        cfg = load_config(target.data if target is not None else None)
        hazards = simulate_kernel(self.module, name, cfg, self.sram, lambda sym: self.tensor(sym, op))
        if hazards:
            raise RunError(f"assembly kernel '@{name}' has a hazard when it runs alone on the simulator: "
                           f"{hazards[0]}", op)

    def _initial(self, t: Operation) -> np.ndarray:
        shape, elem = T.shape_of(t.type), T.elem_of(t.type)
        if isinstance(t, D.ReserveOp):
            return np.zeros(shape, dtype=T.dtype(elem))
        kind = t.init_kind.data
        if kind == "list":
            return D.dense_value(t.init)
        if kind == "hex":
            raw = bytes.fromhex(t.init.data)
            need = int(np.prod(shape)) * T.dtype(elem).itemsize
            if len(raw) != need:
                raise RunError(f"'@{t.sym_name.data}' has {len(raw)} bytes of hex data but "
                               f"{T.type_text(t.type)} needs {need}", t)
            return np.frombuffer(raw, dtype=T.dtype(elem)).reshape(shape).copy()
        return load_npy(t, self.base_dir)


#: what an .npy file's float dtype is, as an element type ('f64' converts too; '|V2' is how
#: numpy writes ml_dtypes' bfloat16)
_FLOAT_FILES = {"float16": "f16", "float32": "f32", "float64": "f64", "bfloat16": "bf16"}


def load_npy(t: D.DataOp, base_dir: str) -> np.ndarray:
    """The contents of ``data @t = load("file.npy")``: the file's array, of exactly the declared
    shape. A float file converts to a float tensor of another type (f32 -> f16, f64 -> bf16,
    f16 -> f32, ...), rounded to nearest even as ``cast`` rounds; a bf16 file written by
    ml_dtypes (numpy's ``|V2``) is read as bf16. Anything else that differs is an error at the
    ``load``."""
    shape, elem, name, file = T.shape_of(t.type), T.elem_of(t.type), t.sym_name.data, t.init.data
    path = os.path.join(base_dir, file)
    try:
        with open(path, "rb") as f:
            arr = parse_npy(f.read())  # a damaged header is checked before numpy reads it
    except (OSError, ValueError, EOFError) as e:
        raise RunError(f"cannot load '{file}' for '@{name}': {getattr(e, 'strerror', None) or e}", t,
                       _load_loc(t)) from None
    if not isinstance(arr, np.ndarray):  # np.load opens .npz archives too
        raise RunError(f"cannot load '{file}' for '@{name}': not a .npy file (an .npz archive holds several "
                       "arrays)", t, _load_loc(t))
    if arr.dtype.kind == "V" and arr.dtype.itemsize == 2 and arr.dtype.fields is None:
        arr = arr.view(T.dtype("bf16"))
    held = f"{arr.dtype}{list(arr.shape)}"
    if arr.shape != shape:
        raise RunError(f"'{file}' holds {held} but '@{name}' is {T.type_text(t.type)}", t, _load_loc(t))
    if arr.dtype == T.dtype(elem):
        return arr
    src = _FLOAT_FILES.get(str(arr.dtype))
    if src is not None and elem in T.FLOATS:
        return N.convert(arr, "f32", elem)  # (floats: the source type does not matter)
    kind = "floats" if src is not None else "integers" if arr.dtype.kind in "iub" else "neither floats nor integers"
    why = (" (a float file converts to any float type; integers and floats do not convert into each other)"
           if src is not None or elem in T.FLOATS else "")
    raise RunError(f"'{file}' holds {held}, {kind}, but '@{name}' is {T.type_text(t.type)}{why}", t, _load_loc(t))


def _load_loc(t: Operation) -> SourceLoc | None:
    """The ``load("...")`` of ``data @t`` in its source file (the op's own location when the
    file cannot be read)."""
    loc = loc_of(t)
    if loc is None:
        return None
    try:
        with open(loc.file, encoding="utf-8") as f:
            for _ in range(loc.line - 1):
                f.readline()
            line = f.readline()
    except OSError:
        return loc
    col = line.find("load(", loc.col - 1)
    end = line.find(")", col)
    if col < 0 or end < 0:
        return loc
    return SourceLoc(loc.file, loc.line, col + 1, end - col + 1)


def _checked(v: np.ndarray, op: Operation) -> np.ndarray:
    want = op.results[0].type
    assert v.shape == T.shape_of(want) and v.dtype == T.dtype(T.elem_of(want)), (op.name, v.shape, v.dtype)
    return v


class DfFunctions(InterpreterFunctions):
    def __init__(self, state: _State):
        self.state = state

    @impl(D.ConstantOp)
    def run_constant(self, interp, op, args):
        return (D.dense_value(op.value),)

    @impl(D.GetOp)
    def run_get(self, interp, op, args):
        return (self.state.tensor(self.state.resolve(D.get_sym(op, "tensor")), op).copy(),)

    @impl(D.StoreOp)
    def run_store(self, interp, op, args):
        name = self.state.resolve(D.get_sym(op, "tensor"))
        t = self.state.tensor(name, op)
        v = args[0]
        offsets = D.get_ints(op, "offsets") or [0] * v.ndim
        if len(args) > 1:
            i = int(args[1])
            offsets = [o + i * s for o, s in zip(offsets, D.get_ints(op, "step"))]
        for d, (o, s, n) in enumerate(zip(offsets, v.shape, t.shape)):
            if o < 0 or o + s > n:
                raise RunError(f"window [{o}, {o + s}) of axis {d} is outside the {n} elements of '@{name}'", op)
        t[tuple(slice(o, o + s) for o, s in zip(offsets, v.shape))] = v
        return ()

    @impl(D.MatmulOp)
    def run_matmul(self, interp, op, args):
        return (_checked(N.matmul(args[0], args[1], T.elem_of(op.lhs.type)), op),)

    @impl(D.CastOp)
    def run_cast(self, interp, op, args):
        return (N.convert(args[0], T.elem_of(op.input.type), _elem(op)),)

    @impl(D.QuantizeOp)
    def run_quantize(self, interp, op, args):
        return (N.quantize(args[0], D.get_float(op, "scale"), D.get_int(op, "zero_point", 0), _elem(op)),)

    @impl(D.DequantizeOp)
    def run_dequantize(self, interp, op, args):
        return (N.dequantize(args[0], D.get_float(op, "scale"), D.get_int(op, "zero_point", 0), _elem(op)),)

    @impl(D.ReduceSumOp)
    def run_reduce_sum(self, interp, op, args):
        return (N.reduce_sum(args[0], D.get_int(op, "axis", -1), T.elem_of(op.input.type)),)

    @impl(D.ReduceMaxOp)
    def run_reduce_max(self, interp, op, args):
        return (N.reduce_max(args[0], D.get_int(op, "axis", -1), _elem(op)),)

    @impl(D.ReduceMinOp)
    def run_reduce_min(self, interp, op, args):
        return (N.reduce_min(args[0], D.get_int(op, "axis", -1), _elem(op)),)

    @impl(D.ArgmaxOp)
    def run_argmax(self, interp, op, args):
        return (N.argmax(args[0], D.get_int(op, "axis", -1), T.elem_of(op.input.type)),)

    @impl(D.ArgminOp)
    def run_argmin(self, interp, op, args):
        return (N.argmin(args[0], D.get_int(op, "axis", -1), T.elem_of(op.input.type)),)

    @impl(D.SelectOp)
    def run_select(self, interp, op, args):
        return (_checked(N.select(*args), op),)

    @impl(D.SoftmaxOp)
    def run_softmax(self, interp, op, args):
        return (N.softmax(args[0], _elem(op), D.get_int(op, "axis", -1)),)

    @impl(D.RopeOp)
    def run_rope(self, interp, op, args):
        return (_checked(N.rope(*args, _elem(op), D.get_str(op, "style", "half")), op),)

    @impl(D.LayernormOp)
    def run_layernorm(self, interp, op, args):
        return (N.layernorm(*args, D.get_float(op, "eps", 1e-5), _elem(op)),)

    @impl(D.RmsnormOp)
    def run_rmsnorm(self, interp, op, args):
        return (N.rmsnorm(*args, D.get_float(op, "eps", 1e-5), _elem(op)),)

    @impl(D.TransposeOp)
    def run_transpose(self, interp, op, args):
        perm = D.get_ints(op, "perm")
        return (np.ascontiguousarray(np.transpose(args[0], perm)),)

    @impl(D.ReshapeOp)
    def run_reshape(self, interp, op, args):
        return (args[0].reshape(T.shape_of(op.result.type)).copy(),)

    @impl(D.SliceOp)
    def run_slice(self, interp, op, args):
        x = args[0]
        offsets, sizes = D.get_ints(op, "offsets"), D.get_ints(op, "sizes")
        if len(args) > 1:
            i = int(args[1])
            offsets = [o + i * s for o, s in zip(offsets, D.get_ints(op, "step"))]
        for d, (o, s, n) in enumerate(zip(offsets, sizes, x.shape)):
            if o < 0 or o + s > n:
                raise RunError(f"window [{o}, {o + s}) of axis {d} is outside its {n} elements", op)
        return (x[tuple(slice(o, o + s) for o, s in zip(offsets, sizes))].copy(),)

    @impl(D.ConcatOp)
    def run_concat(self, interp, op, args):
        axis = D.get_int(op, "axis", 0)
        return (np.concatenate(args, axis=axis),)

    @impl(D.ForOp)
    def run_for(self, interp, op, args):
        values = tuple(args)
        lo, hi, step = D.get_int(op, "lower"), D.get_int(op, "upper"), D.get_int(op, "step")
        for i in range(lo, hi, step):
            values = interp.run_ssacfg_region(op.body, (np.asarray(i, dtype=np.int32), *values), "for")
        return values

    @impl_terminator(D.YieldOp)
    def run_yield(self, interp, op, args):
        return ReturnedValues(args), ()

    @impl_terminator(D.ReturnOp)
    def run_return(self, interp, op, args):
        return ReturnedValues(args), ()

    @impl(D.SendOp)
    def run_send(self, interp, op, args):
        key = (D.get_int(op, "chip", 0), D.get_int(op, "to"))
        self.state.channels.setdefault(key, deque()).append((args[0].copy(), op))
        return ()

    @impl(D.RecvOp)
    def run_recv(self, interp, op, args):
        chip, src = D.get_int(op, "chip", 0), D.get_int(op, "from")
        q = self.state.channels.get((src, chip))
        if not q:
            raise RunError(f"chip {chip} receives from chip {src}, which has sent nothing it has not received", op)
        value, send = q.popleft()
        if value.shape != T.shape_of(op.result.type) or value.dtype != T.dtype(_elem(op)):
            raise RunError(f"receives {T.type_text(op.result.type)} but the value sent is "
                           f"{T.type_text_of(value.shape, T.elem_of(send.input.type))}", op)
        return (value,)

    @impl(D.CallOp)
    def run_call(self, interp, op, args):
        name = D.get_sym(op, "callee")
        target = self.state.symbols.get(name)
        state = self.state
        if isinstance(target, D.FuncOp):
            params = [p for p, _t in target.sym_param_list()]
            syms = [state.resolve(s) for s in D.get_syms(op, "sym_args") or []]
            state.bindings.append(dict(zip(params, syms)))
            try:
                return interp.run_ssacfg_region(target.body, tuple(args), name)
            finally:
                state.bindings.pop()
        ref = state.kernels.get(name)
        ins = [state.resolve(s) for s in D.get_syms(op, "inputs") or []]
        outs = [state.resolve(s) for s in D.get_syms(op, "outputs") or []]
        for sym, v in zip(ins, args):
            state.tensor(sym, op)
            state.sram[sym] = v.copy()
        for sym in outs:
            state.tensor(sym, op)
        if ref is not None:
            ref(state.sram)
        else:  # no Python reference: the kernel runs on the simulator, the machine's reference
            state.simulate_kernel(name, op)
        return tuple(state.sram[sym].copy() for sym in outs)


for _kind, _cls in [*D.BINARY_OPS.items(), *D.COMPARE_OPS.items()]:
    def _run_binary(self, interp, op, args, _kind=_kind):
        return (N.binary(_kind, args[0], args[1], _elem(op)),)
    setattr(DfFunctions, f"run_{_kind}", impl(_cls)(_run_binary))
for _kind, _cls in D.UNARY_OPS.items():
    def _run_unary(self, interp, op, args, _kind=_kind):
        return (N.unary(_kind, args[0], _elem(op), D.get_str(op, "approximate", "tanh")),)
    setattr(DfFunctions, f"run_{_kind}", impl(_cls)(_run_unary))
DfFunctions = register_impls(DfFunctions)


class _Tracker(Interpreter.Listener):
    """Remembers the op being run, to put its location on whatever goes wrong inside it."""

    def __init__(self) -> None:
        self.op: Operation | None = None

    def will_interpret_op(self, op, args) -> None:
        self.op = op


def function(module: ModuleOp, name: str) -> D.FuncOp:
    for op in module.ops:
        if isinstance(op, D.FuncOp) and op.sym_name.data == name:
            return op
    funcs = [op.sym_name.data for op in module.ops if isinstance(op, D.FuncOp)]
    raise DiagnosticError(error(f"no function '@{name}' in this module" +
                                (f" (it has {', '.join('@' + f for f in funcs)})" if funcs else "")))


def arg_names(func: D.FuncOp) -> list[str]:
    names = [a.data for a in func.arg_names.data] if func.arg_names is not None else []
    args = func.body.block.args
    return [names[i] if i < len(names) else (a.name_hint or f"arg{i}") for i, a in enumerate(args)]


def check_inputs(func: D.FuncOp, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    loc = loc_of(func)
    values = []
    names = arg_names(func)
    for name, arg in zip(names, func.body.block.args):
        if name not in inputs:
            raise DiagnosticError(error(f"no input for argument '%{name}' of '@{func.sym_name.data}'", loc))
        v = np.asarray(inputs[name])
        shape, elem = T.shape_of(arg.type), T.elem_of(arg.type)
        if v.shape != shape or v.dtype != T.dtype(elem):
            raise DiagnosticError(error(f"input '{name}' is {v.dtype}{list(v.shape)} but '%{name}' is "
                                        f"{T.type_text(arg.type)}", loc))
        values.append(v)
    extra = sorted(set(inputs) - set(names))
    if extra:
        raise DiagnosticError(error(f"'@{func.sym_name.data}' has no argument '%{extra[0]}' "
                                    f"(its arguments: {', '.join('%' + n for n in names)})", loc))
    return values


def random_input(arg_type, rng: np.random.Generator) -> np.ndarray:
    """Seeded inputs for arguments nobody gave: small integers, or normal floats."""
    shape, elem = T.shape_of(arg_type), T.elem_of(arg_type)
    if elem in T.INTS:
        return rng.integers(-8, 8, size=shape).astype(T.dtype(elem))
    return N.convert(rng.standard_normal(size=shape), "f32", elem) if elem != "f32" else \
        rng.standard_normal(size=shape).astype(np.float32)


def check_symbols(module: ModuleOp, func: D.FuncOp, symbols: dict[str, str] | None) -> dict[str, str]:
    """The module tensors the entry function's symbol parameters are bound to (``symbols``:
    parameter name -> tensor name, both without '@'), checked like a call's."""
    loc = loc_of(func)
    fname = func.sym_name.data
    symbols = dict(symbols or {})
    tensors = {op.sym_name.data: op for op in module.ops if isinstance(op, (D.DataOp, D.ReserveOp))}
    params = func.sym_param_list()
    for pname, ptype in params:
        if pname not in symbols:
            raise DiagnosticError(error(f"no tensor for symbol parameter '@{pname}' of '@{fname}' "
                                        f"(run_function(..., symbols={{'{pname}': 'tensor'}}))", loc))
        t = tensors.get(symbols[pname])
        if t is None:
            raise DiagnosticError(error(f"'@{symbols[pname]}' given for '@{pname}' is not a tensor (data or "
                                        f"reserve) of this module", loc))
        if t.type != ptype:
            raise DiagnosticError(error(f"'@{symbols[pname]}' of type {T.type_text(t.type)} is given for the symbol "
                                        f"parameter '@{pname}' of '@{fname}', of type {T.type_text(ptype)}", loc))
    extra = sorted(set(symbols) - {p for p, _t in params})
    if extra:
        raise DiagnosticError(error(f"'@{fname}' has no symbol parameter '@{extra[0]}'", loc))
    return symbols


def initial_sram(module: ModuleOp, *, base_dir: str = ".") -> dict[str, np.ndarray]:
    """Every SRAM tensor (data, reserve) of ``module`` with its initial contents: what a
    ``sram`` state of ``run_function`` starts from (it fills itself lazily otherwise)."""
    state = _State(module, base_dir, {})
    for op in module.ops:
        if isinstance(op, (D.DataOp, D.ReserveOp)):
            state.tensor(op.sym_name.data, op)
    return state.sram


def run_function(module: ModuleOp, name: str, inputs: dict[str, np.ndarray], *,
                 kernels: dict[str, KernelRef] | None = None, base_dir: str | None = None,
                 sram: dict[str, np.ndarray] | None = None,
                 symbols: dict[str, str] | None = None) -> list[np.ndarray]:
    """Run ``@name`` on ``inputs`` (keyed by argument name, without '%'); its results.

    ``base_dir`` is where ``load("x.npy")`` paths start (default: the directory of the file
    the module was parsed from). Errors are ``DiagnosticError`` at the op that failed.

    ``sram`` carries the SRAM tensors from one run to the next: a dict, symbol name (without
    '@') -> ndarray, that the run fills with a tensor's initial contents on its first use and
    updates in place (``store`` writes into the arrays, a kernel call replaces them); pass the
    same dict to the next run and it sees what this one stored. Without it, every run starts
    from the module's initial contents. ``symbols`` binds the symbol parameters of ``@name``
    (parameter -> module tensor), as a call's ``@symbol`` arguments do."""
    func = function(module, name)
    args = check_inputs(func, inputs)
    bound = check_symbols(module, func, symbols)
    if base_dir is None:
        loc = loc_of(func)
        base_dir = os.path.dirname(loc.file) if loc is not None and os.path.exists(loc.file) else "."
    state = _State(module, base_dir, kernels or {}, sram)
    state.bindings = [bound]
    tracker = _Tracker()
    interp = Interpreter(module, listeners=(tracker,))
    interp.register_implementations(DfFunctions(state))
    try:
        with np.errstate(all="ignore"):
            results = interp.run_ssacfg_region(func.body, tuple(args), name)
    except RunError as e:
        loc = e.loc if e.loc is not None else loc_of(tracker.op) if tracker.op is not None else None
        raise DiagnosticError(error(str(e), loc)) from None
    for (src, dst), q in state.channels.items():
        if q:
            raise DiagnosticError(error(f"chip {src} sent chip {dst} a value that was never received",
                                        loc_of(q[0][1])))
    return [np.asarray(r) for r in results]


__all__ = ["run_function", "initial_sram", "random_input", "arg_names", "function", "KernelRef", "SourceLoc"]
