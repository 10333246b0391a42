"""The conformance sweep: the onnx package's backend node tests of the listed ops
(``onnx_backend.LISTED``) and its stored model tests (``light_*`` CNNs, pytorch-converted,
pytorch-operator), each run through the toolchain as an ONNX backend on the reference
interpreter or compiled, linked and simulated.

    python -m lpu.models.onnx_suite [--device reference|simulator] [--ops Add,Conv] [--models]
                                    [--failures] [--json OUT.json] [--timeout S] [--progress]
    python -m lpu.models.onnx_suite --markdown REFERENCE.json SIMULATOR.json

prints the pass count per op and in total (``op: passed/total``), then, with ``--failures``,
each failing test and its reason — the lists docs/onnx.md gives. Exit status 0 always: the
figures are the output; the tests (tests/test_onnx_node.py) pin them.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from lpu.models.onnx_backend import LISTED, Case, Outcome, node_cases, run_case

#: the node tests no lowering can pass, and why: the language has no such type
OUT_OF_SCOPE = {
    "test_equal_string": "STRING tensors: the lanes hold numbers only (no string type in the language)",
    "test_equal_string_broadcast": "STRING tensors: the lanes hold numbers only (no string type in the language)",
}


def data_dir() -> str:
    import onnx.backend.test

    return os.path.join(os.path.dirname(onnx.backend.test.__file__), "data")


@dataclass
class ModelTest:
    """A stored model test: its model and the inputs and outputs of its first data set."""

    group: str          # light, pytorch-converted, pytorch-operator
    name: str
    path: str
    inputs: list
    outputs: list


def model_tests(groups=("light", "pytorch-converted", "pytorch-operator")) -> list[ModelTest]:
    """The onnx wheel's stored model tests: ``light/light_*.onnx`` with ``*_output_0.pb`` (only
    the output is stored; the input is the runner's, ``light_inputs``), and the pytorch
    directories' ``model.onnx`` with ``test_data_set_0``."""
    from onnx import TensorProto, numpy_helper

    def read(path):
        t = TensorProto()
        with open(path, "rb") as f:
            t.ParseFromString(f.read())
        return numpy_helper.to_array(t)

    out = []
    root = data_dir()
    for group in groups:
        if group == "light":
            for path in sorted(glob.glob(os.path.join(root, "light", "light_*.onnx"))):
                name = os.path.basename(path)[:-5]
                want = os.path.join(root, "light", name + "_output_0.pb")
                out.append(ModelTest(group, name, path, None, [read(want)] if os.path.exists(want) else []))
            continue
        for d in sorted(glob.glob(os.path.join(root, group, "test_*"))):
            ds = os.path.join(d, "test_data_set_0")
            if not os.path.exists(os.path.join(d, "model.onnx")) or not os.path.isdir(ds):
                continue
            ins = [read(p) for p in sorted(glob.glob(os.path.join(ds, "input_*.pb")),
                                           key=lambda p: int(p.rsplit("_", 1)[1][:-3]))]
            outs = [read(p) for p in sorted(glob.glob(os.path.join(ds, "output_*.pb")),
                                            key=lambda p: int(p.rsplit("_", 1)[1][:-3]))]
            out.append(ModelTest(group, os.path.basename(d), os.path.join(d, "model.onnx"), ins, outs))
    return out


def light_inputs(model) -> list[np.ndarray]:
    """The light models' inputs as onnx's runner makes them for their stored outputs
    (``Runner.generate_dummy_data(..., random=False)``: ``arange(n) / n`` in each input's shape)."""
    from onnx.backend.test.runner import Runner

    inits = {t.name for t in model.graph.initializer}
    return [Runner.generate_dummy_data(vi, seed=0, random=False) for vi in model.graph.input if vi.name not in inits]


def run_model_test(t: ModelTest, device: str, rtol: float = 1e-3, atol: float = 1e-7,
                   timeout: float | None = None) -> Outcome:
    import onnx

    model = onnx.load(t.path)
    inputs = t.inputs if t.inputs is not None else light_inputs(model)
    case = Case(t.group, t.name, model, inputs, t.outputs, rtol, atol)
    return run_case(case, device, timeout=timeout)


#: ``lpu import --dtype``: each mode's bound on |y − x·w| of a FLOAT matmul, element (i, j), as a
#: multiple of its scale: Σ_k |x_ik·w_kj| for the float modes, K·max|x_i|·max|w_j| for i8
#: (docs/onnx.md derives them; K = the contraction length, u = the unit roundoff of f32)
def dtype_bound(dtype: str, k: int) -> float:
    u = 2.0 ** -24
    return {"f32": 2 * u + 2.0 ** -32 + k * u,                      # three dropped products + the f32 sums
            "f16": 2 * 2.0 ** -11 + 2.0 ** -22 + k * u,             # both operands rounded to f16
            "bf16": 2 * 2.0 ** -8 + 2.0 ** -16 + k * u,             # both operands rounded to bf16
            "i8": 1 / 127 + 1 / (4 * 127 ** 2) + u}[dtype]          # half a step of each, per row and column


def dtype_errors(m: int = 8, k: int = 256, n: int = 64, seed: int = 0, device: str = "reference") -> dict:
    """The measured error of a FLOAT MatMul (x [m, k] at run time, W [k, n] an initializer,
    both standard normal) in each ``--dtype``: the largest |y − x·w| (x·w exact, float64) over
    the element's scale (``dtype_bound``'s), with the bound beside it."""
    from onnx import TensorProto, helper, numpy_helper

    from lpu.models.onnx_backend import prepare

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "mm",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
                          initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    exact = x.astype(np.float64) @ w.astype(np.float64)
    absolute = np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64)
    peak = k * np.abs(x).max(axis=1, keepdims=True).astype(np.float64) * np.abs(w).max(axis=0, keepdims=True)
    out = {}
    for dtype in ("f32", "f16", "bf16", "i8"):
        y = prepare(model, device, dtype).run([x])[0].astype(np.float64)
        scale = peak if dtype == "i8" else absolute
        out[dtype] = (float(np.max(np.abs(y - exact) / scale)), dtype_bound(dtype, k))
    return out


def sweep(device: str, ops=LISTED, progress=None, timeout: float | None = None, names=None) -> list[Outcome]:
    """Every node test of ``ops`` (only those in ``names`` when given) run on ``device``."""
    out = []
    for c in node_cases(ops):
        if names is not None and c.name not in names:
            continue
        o = run_case(c, device, timeout=timeout)
        if progress:
            progress(o)
        out.append(o)
    return out


def per_op(outcomes: list[Outcome]) -> dict[str, tuple[int, int]]:
    total, passed = Counter(), Counter()
    for o in outcomes:
        total[o.case.op] += 1
        passed[o.case.op] += o.passed
    return {op: (passed[op], total[op]) for op in sorted(total)}


def table(outcomes: list[Outcome], device: str) -> str:
    rows = per_op(outcomes)
    lines = [f"{op}: {p}/{n}" for op, (p, n) in rows.items()]
    p = sum(o.passed for o in outcomes)
    lines.append(f"total ({device}): {p}/{len(outcomes)}")
    return "\n".join(lines) + "\n"


def record(o: Outcome) -> dict:
    """An outcome as the JSON the sweep writes (``--json``) and ``--markdown`` reads."""
    return {"op": o.case.op, "name": o.case.name, "passed": o.passed,
            "reason": OUT_OF_SCOPE.get(o.case.name, o.reason), "cycles": o.cycles, "seconds": round(o.seconds, 3)}


def markdown(reference: list[dict], simulator: list[dict]) -> str:
    """docs/onnx.md's conformance section from two sweeps' records: the pass count per op on
    the interpreter and on the simulator, the totals, then every failure with its reason."""
    def counts(rs):
        c = {}
        for r in rs:
            p, n = c.get(r["op"], (0, 0))
            c[r["op"]] = (p + bool(r["passed"]), n + 1)
        return c

    ref, sim = counts(reference), counts(simulator)
    out = ["| op | tests | interpreter | simulator |", "|---|---:|---:|---:|"]
    for op in sorted(set(ref) | set(sim)):
        pr, nr = ref.get(op, (0, 0))
        ps, ns = sim.get(op, (0, 0))
        out.append(f"| {op} | {max(nr, ns)} | {pr} | {ps} |")
    pr, ps = sum(r["passed"] for r in reference), sum(r["passed"] for r in simulator)
    out.append(f"| **total** | **{len(reference)}** | **{pr}** | **{ps}** |")
    out.append("")
    out.append(f"Interpreter: {pr}/{len(reference)} passed ({100 * pr / max(len(reference), 1):.1f}%); "
               f"simulator: {ps}/{len(simulator)} compiled and matched ({100 * ps / max(len(simulator), 1):.1f}%).")
    out += _failures(reference, simulator, lambda r: f"`{r['name']}` ({r['op']})")
    return "\n".join(out) + "\n"


def _failures(reference: list[dict], simulator: list[dict], label) -> list[str]:
    """The two runs' failure lists, each failure ``label(record)`` and its reason."""
    out = []
    for title, rs in (("the interpreter", reference), ("the simulator", simulator)):
        bad = [r for r in rs if not r["passed"]]
        out += ["", f"Failures on {title} ({len(bad)}):", ""]
        out += [f"- {label(r)}: {r['reason']}" for r in bad] or ["- none"]
    return out


def models_markdown(reference: list[dict], simulator: list[dict]) -> str:
    """docs/onnx.md's stored-models section from the two runs' records: the counts per group,
    each model's outcome and cycles, then every failure with its reason."""
    sim = {r["name"]: r for r in simulator}
    groups: dict = {}
    for r in reference:
        g = groups.setdefault(r["group"], [0, 0, 0])
        g[0] += 1
        g[1] += bool(r["passed"])
        g[2] += bool(sim[r["name"]]["passed"])
    out = ["| group | models | interpreter | simulator |", "|---|---:|---:|---:|"]
    out += [f"| {g} | {n} | {pr} | {ps} |" for g, (n, pr, ps) in groups.items()]
    n, pr, ps = (sum(v[i] for v in groups.values()) for i in range(3))
    out += [f"| **total** | **{n}** | **{pr}** | **{ps}** |", "",
            "| model | interpreter | simulator | cycles |", "|---|---|---|---:|"]
    for r in reference:
        s = sim[r["name"]]
        out.append(f"| {r['group']}/{r['name']} | {'ok' if r['passed'] else 'fails'} | "
                   f"{'ok' if s['passed'] else 'fails'} | {s['cycles'] if s['passed'] else ''} |")
    out += _failures(reference, simulator, lambda r: f"`{r['group']}/{r['name']}`")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lpu.models.onnx_suite", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("reference", "simulator"), default="reference")
    ap.add_argument("--ops", help="comma-separated op types (default: every listed op)")
    ap.add_argument("--models", action="store_true", help="the stored model tests instead of the node tests")
    ap.add_argument("--failures", action="store_true", help="list each failure with its reason")
    ap.add_argument("--json", help="write every outcome to this file (rewritten after each test)")
    ap.add_argument("--timeout", type=float, default=None, metavar="S",
                    help="a test taking longer than S seconds fails (default: no limit)")
    ap.add_argument("--progress", action="store_true", help="print each outcome to stderr as it comes")
    ap.add_argument("--markdown", nargs=2, metavar=("REFERENCE.json", "SIMULATOR.json"),
                    help="print docs/onnx.md's conformance table from two sweeps' --json files, and run nothing")
    args = ap.parse_args(argv)
    if args.markdown:
        recs = []
        for path in args.markdown:
            with open(path, encoding="utf-8") as f:
                recs.append(json.load(f))
        sys.stdout.write(markdown(*recs))
        return 0
    t0 = time.perf_counter()
    outcomes: list[Outcome] = []

    def done(o: Outcome) -> None:
        outcomes.append(o)
        if args.progress:
            print(f"{o.case.name}: {'ok' if o.passed else 'FAIL ' + o.reason}"
                  + (f" ({o.cycles} cycles)" if o.cycles else "") + f" {o.seconds:.1f} s", file=sys.stderr, flush=True)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump([record(x) for x in outcomes], f, indent=0)
                f.write("\n")

    if args.models:
        for t in model_tests():
            o = run_model_test(t, args.device, timeout=args.timeout)
            done(o)
            print(f"{t.group}/{t.name}: {'ok' if o.passed else 'FAIL ' + o.reason}"
                  + (f" ({o.cycles} cycles)" if o.cycles else ""), flush=True)
    else:
        ops = tuple(args.ops.split(",")) if args.ops else LISTED
        sweep(args.device, ops, progress=done, timeout=args.timeout)
    sys.stdout.write(table(outcomes, args.device))
    if args.failures:
        for o in outcomes:
            if not o.passed:
                print(f"  {o.case.name}: {OUT_OF_SCOPE.get(o.case.name, o.reason)}")
    print(f"seconds: {time.perf_counter() - t0:.1f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
