"""The onnx package's backend node tests of the listed ops through the toolchain as an ONNX
backend (``lpu.models.onnx_backend``): every one on the reference interpreter, a bounded subset
(one or two an op) compiled, linked and simulated, and — under ``-m slow`` — every one on the
simulator. The tests' models and data are made by the package's own generators
(``onnx.backend.test.case.node.collect_testcases``: the wheel ships no node test data, and
``backend-test-tools generate-data`` writes only the model tests).

The pinned outcomes are ``tests/fixtures/onnx/node_reference.json`` and ``node_simulator.json``
(``python -m lpu.models.onnx_suite --json``, without the seconds); docs/onnx.md's table is
generated from them (``--markdown``) and checked here.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from lpu.models.onnx_backend import LISTED, node_cases, run_case
from lpu.models.onnx_suite import markdown, record

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures", "onnx")
DOC = os.path.join(os.path.dirname(HERE), "docs", "onnx.md")


def _load(name: str) -> list[dict]:
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return json.load(f)


REFERENCE = _load("node_reference.json")
SIMULATOR = _load("node_simulator.json")
BY_NAME = {r["name"]: r for r in REFERENCE}
SIM_BY_NAME = {r["name"]: r for r in SIMULATOR}

#: the totals docs/onnx.md states
TOTAL, REFERENCE_PASSED, SIMULATOR_PASSED = 709, 707, 707
#: the node tests no lowering can pass: the language has no string type
STRINGS = {"test_equal_string", "test_equal_string_broadcast"}

#: one or two cheap node tests an op, compiled and simulated in the default run (their cycles
#: are the sweep's, pinned in node_simulator.json)
SIMULATED = [
    "test_add_bcast", "test_add_uint8", "test_argmax_keepdims_random", "test_attention_3d",
    "test_attention_4d_causal_expanded", "test_averagepool_2d_ceil", "test_averagepool_2d_dilations",
    "test_batchnorm_epsilon", "test_cast_FLOAT_to_FLOAT16", "test_cast_FLOAT16_to_INT4", "test_clip_default_int8_min",
    "test_clip_splitbounds", "test_concat_2d_axis_1", "test_constant", "test_constantofshape_int_zeros",
    "test_conv_with_strides_padding", "test_basic_conv_without_padding", "test_div_bcast", "test_div_uint8",
    "test_equal_bcast", "test_erf", "test_exp", "test_expand_dim_changed", "test_flatten_axis2",
    "test_gather_0", "test_gather_2d_indices", "test_gelu_tanh_1", "test_gemm_all_attributes",
    "test_gemm_transposeB", "test_globalaveragepool_precomputed", "test_greater_bcast",
    "test_layer_normalization_2d_axis1", "test_less_int16", "test_log", "test_matmul_2d", "test_matmul_4d",
    "test_maxpool_2d_ceil", "test_maxpool_with_argmax_2d_precomputed_strides", "test_mul_int8",
    "test_pow_bcast_array", "test_reciprocal", "test_reduce_max_keepdims_random",
    "test_reduce_mean_do_not_keepdims_random", "test_reduce_sum_keepdims_random", "test_relu",
    "test_reshape_negative_dim", "test_rms_normalization_2d_axis1", "test_rotary_embedding",
    "test_shape_start_1", "test_sigmoid", "test_slice_neg_steps", "test_softmax_axis_1",
    "test_split_equal_parts_2d", "test_sqrt", "test_squeeze", "test_sub_bcast", "test_tanh",
    "test_transpose_all_permutations_3", "test_unsqueeze_two_axes", "test_where_long_example",
]


@pytest.fixture(scope="module")
def cases():
    return {c.name: c for c in node_cases()}


def test_the_sweep_is_every_listed_node_test(cases):
    """The onnx package's node tests of the listed ops, as pinned: none gained or lost."""
    assert len(cases) == TOTAL
    assert sorted(cases) == sorted(BY_NAME) == sorted(SIM_BY_NAME)
    assert {c.op for c in cases.values()} == set(LISTED)
    assert all(BY_NAME[n]["op"] == c.op for n, c in cases.items())


def _pinned(o) -> dict:
    r = record(o)
    del r["seconds"]
    return r


@pytest.mark.parametrize("op", LISTED)
def test_every_node_test_on_the_interpreter(cases, op):
    """Each listed op's node tests on the reference interpreter: the pinned pass set, and each
    failure's exact reason."""
    got = [_pinned(run_case(c, "reference")) for c in cases.values() if c.op == op]
    assert got and got == [r for r in REFERENCE if r["op"] == op]


def test_interpreter_totals():
    assert sum(r["passed"] for r in REFERENCE) == REFERENCE_PASSED
    assert {r["name"] for r in REFERENCE if not r["passed"]} == STRINGS


@pytest.mark.parametrize("name", SIMULATED)
def test_a_subset_on_the_simulator(cases, name):
    """A bounded subset compiled, linked and simulated: matches the onnx reference's outputs,
    in the sweep's cycle count."""
    o = run_case(cases[name], "simulator")
    assert o.passed, o.reason
    assert o.cycles == SIM_BY_NAME[name]["cycles"]


def test_the_subset_covers_every_op(cases):
    assert {cases[n].op for n in SIMULATED} == set(LISTED)
    assert all(SIM_BY_NAME[n]["passed"] for n in SIMULATED)


def test_simulator_totals():
    """At least 90% of the listed node tests compile and match on the simulator; the failures
    are exactly the STRING ones."""
    passed = sum(r["passed"] for r in SIMULATOR)
    assert passed == SIMULATOR_PASSED and passed >= 0.9 * TOTAL
    assert {r["name"] for r in SIMULATOR if not r["passed"]} == STRINGS


@pytest.mark.slow
@pytest.mark.parametrize("op", LISTED)
def test_every_node_test_on_the_simulator(cases, op):
    """The whole sweep on the simulator, an op at a time: the pinned pass set, cycles and
    reasons (about 12 minutes)."""
    for c in cases.values():
        if c.op != op:
            continue
        assert _pinned(run_case(c, "simulator")) == SIM_BY_NAME[c.name]


def _section(text: str, begin: str, end: str) -> str:
    m = re.search(re.escape(begin) + r"\n(.*?)" + re.escape(end), text, re.S)
    assert m, begin
    return m.group(1)


def test_docs_table_is_the_pinned_sweep():
    """docs/onnx.md's conformance table and failure lists are ``--markdown`` of the pinned
    outcomes, and its totals the numbers above."""
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    assert _section(doc, "<!-- node-table: begin -->", "<!-- node-table: end -->") == markdown(REFERENCE, SIMULATOR)
    assert f"| **total** | **{TOTAL}** | **{REFERENCE_PASSED}** | **{SIMULATOR_PASSED}** |" in doc
