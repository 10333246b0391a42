"""Random small ``df`` programs (random shapes, element types and op chains: elementwise ops
with broadcasting, casts, reductions, matmuls, slices — also by a run-time index —, reshapes,
concats; comparisons, select, reductions and argmax over either axis, softmax, sign, erf, exact
gelu, batched matmuls) compile, run on
the simulator with zero hazards, and match the reference interpreter: bit for bit, except
after a float lane sum (the rotate tree adds in another order), where the stated tolerance
applies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpu.compile import run_source

TYPES = ["i8", "i16", "i32", "f16", "bf16", "f32"]
FLOATS = ("f16", "bf16", "f32")
ACC = {"i8": "i32", "i16": "i32", "i32": "i32", "f16": "f32", "bf16": "f32", "f32": "f32"}


def ttype(shape, elem) -> str:
    return "tensor<" + "".join(f"{d}x" for d in shape) + elem + ">"


@st.composite
def programs(draw):
    elem = draw(st.sampled_from(TYPES))
    rows = draw(st.integers(1, 3))
    n = draw(st.sampled_from([1, 7, 320, 333, 650]))
    shape = (rows, n)
    args = [("a0", shape, elem)]
    lines = []
    cur = "%a0"
    exact = True
    given_inputs = {}  # run-time slice indices: drawn in range (a random i32 would not be)
    for i in range(draw(st.integers(1, 5))):
        v = f"%v{i}"
        choices = ["binary", "unary", "cast", "reduce_max", "reshape", "concat"]
        if elem in ("i8", "f16", "bf16") and shape[-1] > 1:
            choices.append("matmul")
        if shape[-1] > 1:
            choices.append("slice")
        if elem not in FLOATS or i > 0:
            choices.append("reduce_sum")
        if shape[0] * shape[1] <= 700:
            choices.append("transpose")
        if shape[0] > 1:
            choices.append("row")
        # the decoder's ops (issue 11): comparisons, select, reductions and argmax over either
        # axis, and for floats softmax over either axis, sign, erf, exact gelu, batched matmuls
        choices += ["compare", "select", "reduce_axis", "sign"]
        if elem in FLOATS:
            choices += ["softmax", "erf"]
        if elem in ("i8", "f16", "bf16") and shape[0] > 1 and shape[-1] > 1:
            choices.append("batched")
        kind = draw(st.sampled_from(choices))
        if kind == "binary":
            op = draw(st.sampled_from(["add", "sub", "mul", "max", "min"]))
            form = draw(st.sampled_from(["same", "row", "column", "scalar"]))
            if form == "scalar":
                value = draw(st.sampled_from([1.5, -0.25, 3.0] if elem in FLOATS else [1, -3, 7]))
                lines.append(f"  %k{i} = constant {{value = {value}}} : tensor<{elem}>")
                other = f"%k{i}"
            else:
                oshape = {"same": shape, "row": shape[-1:], "column": shape[:-1] + (1,)}[form]
                args.append((f"a{len(args)}", oshape, elem))
                other = f"%a{len(args) - 1}"
            a, b = (cur, other) if draw(st.booleans()) else (other, cur)
            lines.append(f"  {v} = {op} {a}, {b}")
        elif kind == "compare":
            op = draw(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge"]))
            if draw(st.booleans()):
                other = "0.5" if elem in FLOATS else "1"
            else:
                args.append((f"a{len(args)}", shape[-1:], elem))
                other = f"%a{len(args) - 1}"
            lines.append(f"  {v} = {op} {cur}, {other}")
        elif kind == "select":  # on a condition of its own type, from an argument of the same shape
            args.append((f"a{len(args)}", shape[:-1] + (1,), elem))
            args.append((f"a{len(args)}", shape, elem))
            lines.append(f"  {v} = select %a{len(args) - 2}, {cur}, %a{len(args) - 1}")
        elif kind == "reduce_axis":
            op = draw(st.sampled_from(["reduce_max", "reduce_min", "argmax", "argmin"]))
            axis = draw(st.integers(0, 1))
            lines.append(f"  {v} = {op} {cur} {{axis = {axis}}}")
            shape = (1, shape[1]) if axis == 0 else (shape[0], 1)
            if op.startswith("arg"):
                elem = "i32"
        elif kind == "sign":
            lines.append(f"  {v} = sign {cur}")
        elif kind == "softmax":
            lines.append(f"  {v} = softmax {cur} {{axis = {draw(st.integers(0, 1))}}}")
            exact = False
        elif kind == "erf":
            op = draw(st.sampled_from(["erf", 'gelu {approximate = "none"}']))
            lines.append(f"  {v} = {op.replace('gelu', 'gelu ' + cur) if op != 'erf' else 'erf ' + cur}")
        elif kind == "batched":  # each row a batch of one row, times its own matrix
            n_out = draw(st.sampled_from([5, 64, 330]))
            r, k = shape
            args.append((f"a{len(args)}", (r, k, n_out), elem))
            lines.append(f"  {v}x = reshape {cur} : {ttype((r, 1, k), elem)}")
            lines.append(f"  {v}m = matmul {v}x, %a{len(args) - 1} : {ttype((r, 1, n_out), ACC[elem])}")
            lines.append(f"  {v} = reshape {v}m : {ttype((r, n_out), ACC[elem])}")
            shape = (r, n_out)
            if elem in FLOATS:
                exact = False
            elem = ACC[elem]
        elif kind == "unary":
            ops = ["neg", "abs", "relu"] + (["exp", "tanh", "sigmoid"] if elem in FLOATS else [])
            lines.append(f"  {v} = {draw(st.sampled_from(ops))} {cur}")
        elif kind == "cast":
            to = draw(st.sampled_from([t for t in TYPES if t != elem]))
            if elem in FLOATS and to not in FLOATS and not exact:
                to = "f32" if elem != "f32" else "f16"
            lines.append(f"  {v} = cast {cur} : {ttype(shape, to)}")
            elem = to
        elif kind == "matmul":  # by a weight argument; the result is in the accumulator type
            n_out = draw(st.sampled_from([5, 320, 400]))
            args.append((f"a{len(args)}", (shape[-1], n_out), elem))
            shape = shape[:-1] + (n_out,)
            lines.append(f"  {v} = matmul {cur}, %a{len(args) - 1} : {ttype(shape, ACC[elem])}")
            if elem in FLOATS:
                exact = False
            elem = ACC[elem]
        elif kind == "reshape":  # rows joined into one (lanes move between vectors)
            shape = (1, shape[0] * shape[1])
            lines.append(f"  {v} = reshape {cur} : {ttype(shape, elem)}")
        elif kind == "concat":
            axis = draw(st.integers(0, 1))
            lines.append(f"  {v} = concat {cur}, {cur} {{axis = {axis}}}")
            shape = (shape[0] * 2, shape[1]) if axis == 0 else (shape[0], shape[1] * 2)
        elif kind == "transpose":  # through the SXM's 16 x 16 block transposes (or lane runs, if small)
            shape = (shape[1], shape[0])
            lines.append(f"  {v} = transpose {cur} {{perm = [1, 0]}}")
        elif kind == "slice":
            size = draw(st.integers(1, shape[-1] - 1)) if shape[-1] > 2 else 1
            if size == 1 and shape[-1] > 1:
                size = 2 if shape[-1] > 2 else shape[-1]
            off = draw(st.integers(0, shape[-1] - size))
            lines.append(f"  {v} = slice {cur} {{offsets = [0, {off}], sizes = [{shape[0]}, {size}]}}")
            shape = (shape[0], size)
        elif kind == "row":  # rows picked by a run-time index: MEM gathers
            size = draw(st.integers(1, shape[0] - 1))
            name = f"a{len(args)}"
            args.append((name, (), "i32"))
            given_inputs[name] = np.array(draw(st.integers(0, shape[0] - size)), np.int32)
            lines.append(f"  {v} = slice {cur}, %{name} {{offsets = [0, 0], sizes = [{size}, {shape[1]}], "
                         f"step = [1, 0]}}")
            shape = (size, shape[1])
        else:
            lines.append(f"  {v} = {kind} {cur} {{axis = -1}}")
            if kind == "reduce_sum":
                if elem in FLOATS and shape[-1] > 1:
                    exact = False
                elem = ACC[elem]
            shape = shape[:-1] + (1,)
        cur = v
    params = ", ".join(f"%{a}: {ttype(s, e)}" for a, s, e in args)
    text = (f'target "lpu-v1"\nfunc @main({params}) -> {ttype(shape, elem)} {{\n' + "\n".join(lines) +
            f"\n  return {cur}\n}}\n")
    return text, exact, given_inputs


def _check(prog, seed):
    text, exact, inputs = prog
    out = run_source(text, "random.lpu", inputs, check=True, seed=seed)
    assert out.hazards == [], text
    if exact:
        assert out.result.tobytes() == out.reference.tobytes() and out.result.dtype == out.reference.dtype, text
    else:
        assert out.matches, text


# the default run draws the same 30 programs every time (its length and outcome do not depend
# on the draw); the slow suite (`make test-slow`) explores 300 fresh ones
@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.integers(0, 3))
def test_random_programs_match_the_interpreter(prog, seed):
    _check(prog, seed)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.integers(0, 3))
def test_many_random_programs_match_the_interpreter(prog, seed):
    _check(prog, seed)
