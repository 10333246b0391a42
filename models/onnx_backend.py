"""The toolchain as an ONNX backend (``onnx.backend.base.Backend``): a model imported
(``onnx_import.convert``, weights inline) and run on the reference interpreter
(``device="reference"``) or compiled, linked and simulated (``device="simulator"``).

``node_cases(ops)`` are the ONNX backend node tests of those op types, made by the onnx
package's own generator (``onnx.backend.test.case.node.collect_testcases``: the installed
wheel ships no node test data, and ``backend-test-tools generate-data`` writes only its model
tests); ``run_case`` runs one and compares as onnx's backend test runner does
(``assert_allclose`` with the case's rtol/atol, the ONNX dtype and shape exactly).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lpu.diagnostics import DiagnosticError

#: the op types the issue lists; their node tests are the conformance sweep
LISTED = ("MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Exp", "Log", "Tanh", "Erf",
          "Sigmoid", "Relu", "Gelu", "Softmax", "LayerNormalization", "RMSNormalization", "ReduceMean", "ReduceSum",
          "ReduceMax", "ArgMax", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Split",
          "Slice", "Gather", "Where", "Cast", "Constant", "ConstantOfShape", "Shape", "Expand", "Equal", "Less",
          "Greater", "Attention", "RotaryEmbedding", "Conv", "MaxPool", "AveragePool", "GlobalAveragePool",
          "BatchNormalization", "Clip")


class Prepared:
    """A model imported once, run on given inputs (``BackendRep``)."""

    def __init__(self, model, device: str = "reference", dtype: str = "f32", name: str = "model.onnx",
                 frozen: dict | None = None):
        from lpu.dsl.frontend import parse_module
        from lpu.models.onnx_import import convert, unsupported_error

        self.device = device
        t0 = time.perf_counter()
        self.frozen = dict(frozen or {})
        self.conversion = convert(model, name, dtype=dtype, embed=True, frozen=self.frozen)
        if self.conversion.unsupported:
            raise unsupported_error(self.conversion, name)
        self.graph_inputs = [vi.name for vi in model.graph.input
                             if vi.name not in {t.name for t in model.graph.initializer}]
        self.path = name + ".lpu"
        self.module = parse_module(self.conversion.text, self.path)
        self.compiled = None
        self.times = {"import": time.perf_counter() - t0}
        self.cycles: int | None = None
        self.hazards: list = []

    def feeds(self, inputs) -> dict[str, np.ndarray]:
        from lpu.models.onnx_emit import CARRIER, np_dtype, to_carrier, Unsupported

        if not isinstance(inputs, dict):
            inputs = dict(zip(self.graph_inputs, inputs))
        args = {}
        for p in self.conversion.inputs:
            a = inputs[p.name]
            try:
                args[p.arg] = to_carrier(np.asarray(a), p.onnx, f"input '{p.name}'")
            except Unsupported as e:
                from lpu.diagnostics import error
                raise DiagnosticError(error(str(e))) from None
            assert args[p.arg].dtype == np_dtype(CARRIER[p.onnx])
        return args

    def compile(self):
        from lpu.arch.config import load_config
        from lpu.dsl.codegen.multichip import compile_any

        if self.compiled is None:
            t0 = time.perf_counter()
            self.config = load_config(None)
            self.compiled = compile_any(self.module, "main", self.config, ".", file=self.path)
            self.times["compile"] = time.perf_counter() - t0
        return self.compiled

    def run(self, inputs, **kwargs) -> list[np.ndarray]:
        args = self.feeds(inputs)
        if all(p.empty for p in self.conversion.outputs):  # nothing to compute: every output is empty
            results = []
        elif self.device == "reference":
            from lpu.dsl.interpreter import run_function

            results = run_function(self.module, "main", args, base_dir=".")
        else:
            from lpu.compile import link_compiled
            from lpu.sim.cli import simulate

            c = self.compile()
            t0 = time.perf_counter()
            r = simulate(link_compiled(c), self.path, inputs=c.inputs(args, self.config.lanes),
                         outputs=c.output_symbols())
            self.times["simulate"] = time.perf_counter() - t0
            self.cycles, self.hazards = r.machine.cycles, list(r.hazards)
            results = c.results(r.outputs) if hasattr(c, "results") else [c.result(r.outputs, self.config.lanes)]
        results = iter(results)
        return [np.zeros(p.shape, p.dtype) if p.empty else self._out(p, next(results)) for p in self.conversion.outputs]

    @staticmethod
    def _out(port, r: np.ndarray) -> np.ndarray:
        from lpu.models.onnx_emit import BOOL

        r = np.asarray(r)
        if port.onnx == BOOL:
            return r != 0
        return r.astype(port.dtype).reshape(port.shape)


def prepare(model, device: str = "reference", dtype: str = "f32", **kwargs) -> Prepared:
    return Prepared(model, device, dtype)


def prepare_for(model, inputs: list, device: str = "reference", dtype: str = "f32",
                name: str = "model.onnx") -> Prepared:
    """``prepare`` for these inputs: a graph input that a node needs known at import time (a
    Reshape's shape, a Slice's starts, a Conv's weights fed as an input) is bound to its value,
    as a static compiler specializes a model to what it must know. ``Prepared.frozen`` says which."""
    names = [vi.name for vi in model.graph.input if vi.name not in {t.name for t in model.graph.initializer}]
    given = dict(zip(names, inputs))
    frozen: dict = {}
    for _ in range(len(names) + 1):
        try:
            return Prepared(model, device, dtype, name=name, frozen=frozen)
        except DiagnosticError:
            from lpu.models.onnx_import import convert

            conv = convert(model, name, dtype=dtype, embed=True, frozen=frozen)
            new = [n for n in conv.needs_constant if n not in frozen]
            if not new:
                raise
            frozen.update({n: given[n] for n in new})
    raise AssertionError("unreachable")


# --- the node tests ---------------------------------------------------------------------------------
@dataclass
class Case:
    op: str            # the op type the test is for
    name: str
    model: object
    inputs: list
    outputs: list
    rtol: float
    atol: float


_CASES: list | None = None


def node_cases(ops=LISTED) -> list[Case]:
    """The onnx package's node tests for ``ops`` (a test ``*_expanded*`` — the op's function body
    written out as other ops — counts for the op it expands)."""
    global _CASES
    if _CASES is None:
        import warnings

        from onnx.backend.test.case.node import collect_testcases

        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            _CASES = collect_testcases()
    by_name = {}
    for t in _CASES:
        if len(t.model.graph.node) == 1:
            by_name[t.name] = t.model.graph.node[0].op_type
    out = []
    for t in _CASES:
        base = t.name.split("_expanded")[0]
        op = by_name.get(base) or by_name.get(t.name)
        if op in ops:
            for inputs, outputs in t.data_sets:
                out.append(Case(op, t.name, t.model, [_array(a) for a in inputs], [_array(a) for a in outputs],
                                t.rtol, t.atol))
    return out


def _array(a):
    from onnx import TensorProto, numpy_helper

    return numpy_helper.to_array(a) if isinstance(a, TensorProto) else np.asarray(a)


@dataclass
class Outcome:
    case: Case
    device: str
    passed: bool
    reason: str = ""
    cycles: int | None = None
    seconds: float = 0.0
    times: dict = field(default_factory=dict)
    frozen: list = field(default_factory=list)   # graph inputs bound at import time


def compare(got: list, want: list, rtol: float, atol: float) -> str:
    """'' when ``got`` matches ``want`` as onnx's runner requires, else why not."""
    if len(got) != len(want):
        return f"{len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        w = np.asarray(w)
        if g.shape != w.shape:
            return f"output {i} has shape {list(g.shape)}, expected {list(w.shape)}"
        if g.dtype != w.dtype:
            return f"output {i} is {g.dtype}, expected {w.dtype}"
        try:
            if w.dtype.kind in "biu":
                np.testing.assert_array_equal(g, w)
            else:
                np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol)
        except AssertionError as e:
            lines = [x for x in str(e).splitlines() if "Max absolute" in x or "Max relative" in x or "Mismatch" in x]
            return f"output {i} differs: " + "; ".join(x.strip() for x in lines)
    return ""


class OutOfTime(BaseException):  # not an Exception: no `except Exception` on the way swallows it
    """A case that ran past the sweep's time budget (``run_case(..., timeout=S)``)."""


def run_case(case: Case, device: str, dtype: str = "f32", timeout: float | None = None) -> Outcome:
    """``case`` imported and run on ``device``; ``timeout``: seconds after which it is a failure
    ("over S s"), so one huge test cannot stall a sweep (SIGALRM: the main thread only)."""
    import signal
    import threading

    t0 = time.perf_counter()
    alarm = timeout is not None and threading.current_thread() is threading.main_thread()
    if alarm:
        def expire(signum, frame):
            raise OutOfTime()
        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        rep = prepare_for(case.model, case.inputs, device, dtype)
        got = rep.run(case.inputs)
    except OutOfTime:
        return Outcome(case, device, False, f"over the sweep's {timeout:g} s budget (import, compile and run)",
                       seconds=time.perf_counter() - t0)
    except DiagnosticError as e:
        d = e.diagnostics[0]
        return Outcome(case, device, False, d.message.split("\n")[0], seconds=time.perf_counter() - t0)
    except Exception as e:  # a bug of ours is a failure with its reason, not a crash of the sweep
        return Outcome(case, device, False, f"internal error: {type(e).__name__}: {e}",
                       seconds=time.perf_counter() - t0)
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    why = compare(got, case.outputs, case.rtol, case.atol)
    frozen = sorted(rep.frozen)
    if not why and rep.hazards:
        why = f"{len(rep.hazards)} hazards"
    return Outcome(case, device, not why, why, rep.cycles, time.perf_counter() - t0, dict(rep.times), frozen)
