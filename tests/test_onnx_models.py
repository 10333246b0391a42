"""The stored models the onnx package ships with expected outputs (its ``light_*`` CNNs, the
pytorch-converted and pytorch-operator models: ``onnx_suite.model_tests``), imported and run
against their stored outputs on the interpreter and compiled on the simulator.

The outcomes are pinned in ``tests/fixtures/onnx/models_reference.json`` and
``models_simulator.json`` (``python -m lpu.models.onnx_suite --models --json``, without the
seconds); docs/onnx.md lists them and every failure's reason. The models that take more than
about a second to compile, and the light CNNs (224 × 224 images: ~10 s each on the interpreter),
run under ``-m slow``.
"""

from __future__ import annotations

import json
import os

import pytest

from lpu.models.onnx_suite import model_tests, models_markdown, record, run_model_test

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures", "onnx")
DOC = os.path.join(os.path.dirname(HERE), "docs", "onnx.md")


def _load(name: str) -> dict[str, dict]:
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return {r["name"]: r for r in json.load(f)}


REFERENCE = _load("models_reference.json")
SIMULATOR = _load("models_simulator.json")
TESTS = {t.name: t for t in model_tests()}

#: more than about a second to compile and simulate (or, for a failure, the sweep's budget)
SLOW = {"test_Conv2d_depthwise_with_multiplier", "test_Conv2d_groups", "test_Conv2d_groups_thnn",
        "test_Conv3d_dilated", "test_Conv3d_dilated_strided", "test_Conv3d_groups", "test_Conv3d_stride",
        "test_Conv3d_stride_padding", "test_ConvTranspose2d", "test_ConvTranspose2d_no_bias",
        "test_MaxPool2d_stride_padding_dilation", "test_MaxPool3d_stride_padding", "test_ReflectionPad2d",
        "test_Softplus", "test_log_softmax_dim3", "test_operator_convtranspose", "test_operator_maxpool",
        "test_operator_symbolic_override", "test_softmax_functional_dim3"}


#: failures of the time budget: not rerun (they would only take the budget to fail again)
UNRUN = ("over the sweep's", "not compiled:")


def _pinned(o, group: str) -> dict:
    r = record(o)
    del r["seconds"]
    return {"group": group, **r}


def _params(pinned: dict, slow) -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if slow(n) else n for n in pinned]


def test_the_stored_models_are_the_packages():
    assert sorted(TESTS) == sorted(REFERENCE) == sorted(SIMULATOR)
    assert len(TESTS) == 126
    assert {t.group for t in TESTS.values()} == {"light", "pytorch-converted", "pytorch-operator"}


@pytest.mark.parametrize("name", _params(REFERENCE, lambda n: n.startswith("light_")))
def test_model_on_the_interpreter(name):
    t = TESTS[name]
    assert _pinned(run_model_test(t, "reference"), t.group) == REFERENCE[name]


@pytest.mark.parametrize("name", _params(SIMULATOR, lambda n: n in SLOW or n.startswith("light_")))
def test_model_on_the_simulator(name):
    """Pass or fail as pinned, each pass in its pinned cycles, each failure for its reason."""
    want = SIMULATOR[name]
    if want["reason"].startswith(UNRUN):
        pytest.skip(want["reason"])
    t = TESTS[name]
    assert _pinned(run_model_test(t, "simulator"), t.group) == want


def test_totals():
    assert sum(r["passed"] for r in REFERENCE.values()) == 122
    assert sum(r["passed"] for r in SIMULATOR.values()) == 111
    # a model that fails on the simulator fails as on the interpreter, or ran out of time
    for n, r in SIMULATOR.items():
        if not r["passed"]:
            assert r["reason"].startswith(UNRUN) or r["reason"] == REFERENCE[n]["reason"], n


def test_docs_list_the_models():
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    begin, end = "<!-- models: begin -->\n", "<!-- models: end -->"
    assert doc[doc.index(begin) + len(begin):doc.index(end)] == models_markdown(list(REFERENCE.values()),
                                                                                  list(SIMULATOR.values()))
