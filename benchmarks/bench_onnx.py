"""ONNX models on the simulated chip: the stored models the onnx package ships with expected
outputs (pytorch-converted, pytorch-operator, the light_* CNNs) that compile and match on the
simulator (tests/fixtures/onnx/models_simulator.json pins which), each imported, compiled and
simulated against its stored outputs; then the backend node tests' totals.

    python benchmarks/bench_onnx.py [--models A,B] [--sweep]

Prints ``name: value unit`` lines: per model its cycles, the lower bound
(``lpu.dsl.codegen.bounds.function_bounds``: the matmuls' throughput and the dependency chain,
docs/codegen.md), their ratio and the compile time; ``onnx node reference`` is the node tests
run on the interpreter now, ``onnx node simulator`` the pinned full simulator sweep
(``--sweep`` runs it, about 12 minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "onnx")


def model_rows(t) -> None:
    import onnx

    from lpu.dsl.codegen.bounds import function_bounds
    from lpu.models.onnx_backend import compare, prepare_for
    from lpu.models.onnx_suite import light_inputs

    model = onnx.load(t.path)
    inputs = t.inputs if t.inputs is not None else light_inputs(model)
    rep = prepare_for(model, inputs, "simulator", name=t.name + ".onnx")
    got = rep.run(inputs)
    why = compare(got, t.outputs, 1e-3, 1e-7)
    if why or rep.hazards:
        raise SystemExit(f"bench_onnx: {t.name}: {why or f'{len(rep.hazards)} hazards'}")
    # at least one cycle: a function of views alone (a Pad's concat, a reshape) bounds at 0
    bound = max(1.0, *function_bounds(rep.module, "main", rep.config).values())
    print(f"{t.name} cycles: {rep.cycles} cycles")
    print(f"{t.name} bound: {math.ceil(bound)} cycles")
    print(f"{t.name} cycles/bound: {rep.cycles / bound:.2f}x")
    print(f"{t.name} compile: {rep.times['compile']:.2f} s", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="comma-separated model test names (default: every one pinned as passing)")
    ap.add_argument("--sweep", action="store_true", help="run the node tests' simulator sweep too")
    args = ap.parse_args(argv)

    from lpu.models.onnx_suite import model_tests, sweep

    with open(os.path.join(FIXTURES, "models_simulator.json"), encoding="utf-8") as f:
        pinned = {r["name"]: r for r in json.load(f)}
    names = args.models.split(",") if args.models else [n for n, r in pinned.items() if r["passed"]]
    tests = {t.name: t for t in model_tests()}
    for n in names:
        model_rows(tests[n])

    t0 = time.perf_counter()
    ref = sweep("reference")
    print(f"onnx node reference: {sum(o.passed for o in ref)}/{len(ref)} tests")
    print(f"onnx node reference sweep: {time.perf_counter() - t0:.1f} s")
    if args.sweep:
        t0 = time.perf_counter()
        sim = sweep("simulator", timeout=300)
        print(f"onnx node simulator: {sum(o.passed for o in sim)}/{len(sim)} tests")
        print(f"onnx node simulator sweep: {time.perf_counter() - t0:.1f} s")
    else:
        with open(os.path.join(FIXTURES, "node_simulator.json"), encoding="utf-8") as f:
            sim = json.load(f)
        print(f"onnx node simulator: {sum(r['passed'] for r in sim)}/{len(sim)} tests")
    print(f"onnx models simulator: {sum(r['passed'] for r in pinned.values())}/{len(pinned)} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
