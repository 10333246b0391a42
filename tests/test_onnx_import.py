"""lpu import of ONNX models: the module it writes, the op-support report, every error path
(unsupported ops and attributes, dynamic shapes, unsupported types) with its exact message,
nothing half written; lpu run model.onnx --check against onnx's ReferenceEvaluator."""

from __future__ import annotations

import os

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from lpu.driver import main as lpu_main
from lpu.dsl.run import load_npy
from lpu.models.onnx_backend import prepare_for

vi = helper.make_tensor_value_info
W = np.arange(12, dtype=np.float32).reshape(4, 3) / 10


def _model(nodes, inputs, outputs, inits=(), opset=18):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="test")


def _save(tmp_path, model, name="m.onnx") -> str:
    path = str(tmp_path / name)
    onnx.save(model, path)
    return path


def _mlp(batch=2):
    return _model([helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
                   helper.make_node("Relu", ["h"], ["y"], name="act")],
                  [vi("x", T.FLOAT, [batch, 4])], [vi("y", T.FLOAT, [batch, 3])], [numpy_helper.from_array(W, "w")])


def _fails(capsys, argv) -> str:
    assert lpu_main(argv) == 1
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    return cap.err


# --- the module ----------------------------------------------------------------------------------
def test_import_writes_the_module_and_its_weights(tmp_path, capsys):
    path = _save(tmp_path, _mlp())
    out = str(tmp_path / "mlp.lpu")
    assert lpu_main(["import", path, "-o", out]) == 0
    text = open(out).read()
    lines = text.splitlines()
    assert lines[0] == "// imported by `lpu import` from m.onnx (opset 18, 2 nodes, producer test)"
    assert lines[1] == ("// one df op a line, each ending with the ONNX node it comes from; matmuls: FLOAT as six "
                        "products of bf16 parts (docs/onnx.md)")
    assert 'data @w.hi : tensor<4x3xbf16> = load("mlp/w.hi.npy")' in lines
    assert "func @main(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {" in lines
    assert "  %y = relu %t21 : tensor<2x3xf32>  // Relu 'act'" in lines
    assert sum(1 for line in lines if line.endswith("// MatMul 'mm'")) == 21
    assert sorted(os.listdir(tmp_path / "mlp")) == ["onnx.json", "w.hi.npy", "w.lo.npy", "w.mid.npy"]
    # the parts add up to the weight exactly
    parts = [load_npy(str(tmp_path / "mlp" / f"w.{p}.npy")).view(ml_dtypes.bfloat16).astype(np.float32)
             for p in ("hi", "mid", "lo")]
    assert np.array_equal(parts[0] + parts[1] + parts[2], W)
    # the module runs on the interpreter as ONNX's reference evaluator does
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert lpu_main(["run", "--reference", out, "--input", f"x={tmp_path / 'x.npy'}", "-o",
                     f"y={tmp_path / 'y.npy'}", "-q"]) == 0
    want = ReferenceEvaluator(_mlp()).run(None, {"x": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-6, atol=1e-7)


def test_embed_writes_one_file(tmp_path):
    path = _save(tmp_path, _mlp())
    assert lpu_main(["import", path, "-o", str(tmp_path / "e.lpu"), "--embed"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["e.lpu", "m.onnx"]
    assert 'data @w.hi : tensor<4x3xbf16> = hex"' in open(tmp_path / "e.lpu").read()


def test_shape_option_sizes_a_dynamic_input(tmp_path):
    path = _save(tmp_path, _model([helper.make_node("Relu", ["x"], ["y"], name="act")],
                                  [vi("x", T.FLOAT, ["batch", 4])], [vi("y", T.FLOAT, ["batch", 4])]))
    out = str(tmp_path / "r.lpu")
    assert lpu_main(["import", path, "-o", out, "--shape", "x=3x4", "--embed"]) == 0
    assert "func @main(%x: tensor<3x4xf32>) -> tensor<3x4xf32> {" in open(out).read()


def test_an_empty_output_is_known_and_no_result(tmp_path):
    model = _model([helper.make_node("Slice", ["x", "s", "e"], ["y"], name="cut"),
                    helper.make_node("Relu", ["x"], ["z"], name="act")],
                   [vi("x", T.FLOAT, [3, 4])], [vi("y", T.FLOAT, [3, 0]), vi("z", T.FLOAT, [3, 4])],
                   [numpy_helper.from_array(np.array([2], np.int64), "s"),
                    numpy_helper.from_array(np.array([2], np.int64), "e")])
    model.graph.node[0].input.append("ax")
    model.graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "ax"))
    out = str(tmp_path / "s.lpu")
    assert lpu_main(["import", _save(tmp_path, model), "-o", out, "--embed"]) == 0
    text = open(out).read()
    assert "// output 'y' is empty (FLOAT[3, 0]): it holds no values, so it is no result of @main" in text
    assert "func @main(%x: tensor<3x4xf32>) -> tensor<3x4xf32> {" in text
    x = np.ones((3, 4), np.float32)
    got = prepare_for(model, [x]).run([x])
    assert [g.shape for g in got] == [(3, 0), (3, 4)] and got[0].dtype == np.float32


# --- the report ----------------------------------------------------------------------------------
def test_report_of_a_supported_model(tmp_path, capsys):
    path = _save(tmp_path, _mlp())
    assert lpu_main(["import", "--report", path]) == 0
    assert capsys.readouterr().out == (
        f"{path}: opset 18, 2 nodes\n\n"
        "  op type  count  supported  why not\n"
        "  MatMul       1  yes\n"
        "  Relu         1  yes\n\n"
        "2/2 nodes supported (2/2 op types)\n")


def _unsupported():
    return _model([helper.make_node("Hardmax", ["x"], ["h"], name="hm"),
                   helper.make_node("Relu", ["h"], ["r"], name="act"),
                   helper.make_node("Gelu", ["r"], ["g"], name="ge", approximate="sigmoid"),
                   helper.make_node("Shape", ["g"], ["s"], name="sh"),
                   helper.make_node("Reshape", ["g", "s"], ["y"], name="rs")],
                  [vi("x", T.FLOAT, [2, 4])], [vi("y", T.FLOAT, [2, 4])], opset=20)


def test_report_lists_every_unsupported_node(tmp_path, capsys):
    path = _save(tmp_path, _unsupported())
    assert lpu_main(["import", "--report", path]) == 1
    assert capsys.readouterr().out == (
        f"{path}: opset 20, 5 nodes\n\n"
        "  op type  count  supported  why not\n"
        "  Gelu         1  no         approximate = 'sigmoid'\n"
        "  Hardmax      1  no         op type Hardmax is not supported\n"
        "  Relu         1  yes\n"
        "  Reshape      1  yes\n"
        "  Shape        1  yes        folded at import\n\n"
        "3/5 nodes supported (3/5 op types)\n"
        "  node Hardmax 'hm': op type Hardmax is not supported\n"
        "  node Gelu 'ge': approximate = 'sigmoid'\n")


def test_unsupported_nodes_are_one_error_each_and_nothing_is_written(tmp_path, capsys):
    path = _save(tmp_path, _unsupported())
    err = _fails(capsys, ["import", path, "-o", str(tmp_path / "u.lpu")])
    assert err == (f"{path}: error: node Hardmax 'hm': op type Hardmax is not supported\n"
                   f"{path}: error: node Gelu 'ge': approximate = 'sigmoid'\n"
                   f"{path}: error: 2 of 5 nodes are not supported; nothing was written "
                   "(`lpu import --report` shows the op-support table)\n")
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


ERRORS = [  # (model, the message after "<file>: error: ")
    (lambda: _model([helper.make_node("Relu", ["x"], ["y"], name="act")], [vi("x", T.FLOAT, ["batch", 4])],
                    [vi("y", T.FLOAT, ["batch", 4])]),
     "input 'x' has a dynamic dimension 'batch' (axis 0 of [batch, 4]): static shapes are required; give it a "
     "size with --shape x=1x4"),
    (lambda: _model([helper.make_node("Relu", ["x"], ["y"], name="act")], [vi("x", T.FLOAT, None)],
                    [vi("y", T.FLOAT, None)]),
     "input 'x' has no shape: give it one with --shape x=D0xD1x..."),
    (lambda: _model([helper.make_node("Identity", ["x"], ["y"], name="id")], [vi("x", T.STRING, [2])],
                    [vi("y", T.STRING, [2])]),
     "input 'x' has type STRING, which is not supported (supported: FLOAT, FLOAT16, BFLOAT16, INT8, INT16, INT32, "
     "INT64, BOOL, UINT8, UINT16, UINT32, UINT64, DOUBLE, INT4, UINT4, INT2, UINT2, FLOAT8E4M3FN, FLOAT8E4M3FNUZ, "
     "FLOAT8E5M2, FLOAT8E5M2FNUZ, FLOAT4E2M1, FLOAT8E8M0)"),
    (lambda: _model([helper.make_node("Relu", ["x"], ["y"], name="act")], [vi("x", T.COMPLEX64, [2])],
                    [vi("y", T.COMPLEX64, [2])]),
     "input 'x' has type COMPLEX64, which is not supported (supported: FLOAT, FLOAT16, BFLOAT16, INT8, INT16, "
     "INT32, INT64, BOOL, UINT8, UINT16, UINT32, UINT64, DOUBLE, INT4, UINT4, INT2, UINT2, FLOAT8E4M3FN, "
     "FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ, FLOAT4E2M1, FLOAT8E8M0)"),
    (lambda: _model([helper.make_node("Cast", ["x"], ["y"], name="c", to=T.COMPLEX64)], [vi("x", T.FLOAT, [2])],
                    [vi("y", T.COMPLEX64, [2])]),
     "node Cast 'c': output 'y' has type COMPLEX64, which is not supported"),
    (lambda: _model([helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")],
                    [vi("x", T.FLOAT, [2, 4]), vi("s", T.INT64, [2])], [vi("y", T.FLOAT, [4, 2])]),
     "node Reshape 'rs': input 1 ('shape') is computed at run time; it must be known at import time (a constant "
     "or an initializer)"),
]


@pytest.mark.parametrize("make,message", ERRORS, ids=[m[:40] for _, m in ERRORS])
def test_import_errors(tmp_path, capsys, make, message):
    path = _save(tmp_path, make())
    err = _fails(capsys, ["import", path, "-o", str(tmp_path / "x.lpu")])
    first = err.splitlines()[0]
    assert first == f"{path}: error: {message}"
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


def test_another_domain_is_named(tmp_path, capsys):
    model = _model([helper.make_node("FusedGemm", ["x"], ["y"], name="fg", domain="com.microsoft")],
                   [vi("x", T.FLOAT, [2])], [vi("y", T.FLOAT, [2])])
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    path = _save(tmp_path, model)
    err = _fails(capsys, ["import", path, "-o", str(tmp_path / "x.lpu")])
    assert err.splitlines()[0] == (f"{path}: error: node FusedGemm 'fg': domain 'com.microsoft' is not supported "
                                   "(the default ONNX domain only)")


def test_a_file_that_is_not_a_model(tmp_path, capsys):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07garbage")
    err = _fails(capsys, ["import", str(path), "-o", str(tmp_path / "x.lpu")])
    assert err.startswith(f"{path}: error: not an ONNX model")


def test_bad_shape_option(tmp_path, capsys):
    path = _save(tmp_path, _mlp())
    err = _fails(capsys, ["import", path, "-o", str(tmp_path / "x.lpu"), "--shape", "x=2xq"])
    assert err == "error: --shape 'x=2xq' is not NAME=D0xD1x... (sizes of at least 1)\n"
    err = _fails(capsys, ["import", path, "-o", str(tmp_path / "x.lpu"), "--shape", "z=2x4"])
    assert err == f"{path}: error: --shape z=...: the model has no input 'z' (inputs: x)\n"


# --- lpu run model.onnx ----------------------------------------------------------------------------
def test_run_check_on_the_simulator(tmp_path, capsys):
    path = _save(tmp_path, _mlp())
    assert lpu_main(["run", path, "--check"]) == 0
    cap = capsys.readouterr()
    assert cap.out == ("y: within 1e-05 (relative) of onnx.reference.ReferenceEvaluator on the simulator "
                       "(float32[2, 3], 237 cycles)\n")
    assert cap.err == (f"lpu run: note: input 'x': random float32[2, 4] (--seed 0)\n"
                       f"lpu run: {path}: 237 cycles, 0 hazards\n")


def test_run_reference_with_given_input(tmp_path, capsys):
    path = _save(tmp_path, _mlp(batch=1))
    np.save(tmp_path / "x.npy", np.ones((1, 4), np.float32))
    assert lpu_main(["run", "--reference", path, "--input", f"x={tmp_path / 'x.npy'}"]) == 0
    assert capsys.readouterr().out == "y: float32[1, 3] = [[1.8       2.2       2.6000001]]\n"


def test_run_errors(tmp_path, capsys):
    path = _save(tmp_path, _mlp())
    np.save(tmp_path / "x.npy", np.ones((1, 4), np.float32))
    err = _fails(capsys, ["run", path, "--input", f"q={tmp_path / 'x.npy'}"])
    assert err == f"{path}: error: --input q=...: the model has no input 'q' (inputs: x)\n"
    dyn = _save(tmp_path, _model([helper.make_node("Relu", ["x"], ["y"], name="act")],
                                 [vi("x", T.FLOAT, ["n"])], [vi("y", T.FLOAT, ["n"])]), "d.onnx")
    err = _fails(capsys, ["run", dyn, "--check"])
    assert err == (f"{dyn}: error: input 'x' has a dynamic dimension 'n' (axis 0 of [n]): static shapes are "
                   "required; give it a size with --shape x=1\n")
    assert lpu_main(["run", dyn, "--check", "--shape", "x=5"]) == 0


LOWERING_ERRORS = [  # a node the lowering refuses: (node, inputs, initializers, the message after "node ...: ")
    (helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="ct", output_shape=[5, 5]),
     [vi("x", T.FLOAT, [1, 1, 3, 3])], [numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")],
     "node ConvTranspose 'ct': output_shape (give pads and output_padding)"),
    (helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="ct", auto_pad="SAME_UPPER"),
     [vi("x", T.FLOAT, [1, 1, 3, 3])], [numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")],
     "node ConvTranspose 'ct': auto_pad = 'SAME_UPPER' (give pads)"),
    (helper.make_node("PRelu", ["x", "s"], ["y"], name="pr"), [vi("x", T.FLOAT, [2, 3, 4])],
     [numpy_helper.from_array(np.ones(5, np.float32), "s")],
     "node PRelu 'pr': a slope of shape [5] for an input of shape [2, 3, 4]"),
    (helper.make_node("Tile", ["x", "r"], ["y"], name="tl"), [vi("x", T.FLOAT, [2, 3, 4])],
     [numpy_helper.from_array(np.array([2, 2], np.int64), "r")],
     "node Tile 'tl': 2 repeats for an input of rank 3"),
]


@pytest.mark.parametrize("node,inputs,inits,message", LOWERING_ERRORS, ids=[m[-40:] for *_, m in LOWERING_ERRORS])
def test_lowering_errors(tmp_path, capsys, node, inputs, inits, message):
    model = _model([node], inputs, [vi("y", T.FLOAT, None)], inits)
    path = _save(tmp_path, model)
    err = _fails(capsys, ["import", path, "-o", str(tmp_path / "x.lpu")])
    assert err.splitlines()[0] == f"{path}: error: {message}"
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


def test_new_lowerings_match_onnx_reference():
    """Elu, Selu, PRelu (a slope a channel), Softplus, LogSoftmax, Tile, InstanceNormalization and
    ConvTranspose on the interpreter against onnx's ReferenceEvaluator (the stored models test
    them on the simulator: tests/test_onnx_models.py)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    cases = [
        (helper.make_node("Elu", ["x"], ["y"], alpha=0.5), []),
        (helper.make_node("Selu", ["x"], ["y"]), []),
        (helper.make_node("PRelu", ["x", "s"], ["y"]),
         [numpy_helper.from_array(np.array([0.1, 0.2, 0.3], np.float32).reshape(3, 1, 1), "s")]),
        (helper.make_node("Softplus", ["x"], ["y"]), []),
        (helper.make_node("LogSoftmax", ["x"], ["y"], axis=2), []),
        (helper.make_node("Tile", ["x", "r"], ["y"]), [numpy_helper.from_array(np.array([1, 2, 1, 3], np.int64), "r")]),
        (helper.make_node("InstanceNormalization", ["x", "sc", "b"], ["y"], epsilon=1e-3),
         [numpy_helper.from_array(np.array([1.0, 2.0, 0.5], np.float32), "sc"),
          numpy_helper.from_array(np.array([0.0, -1.0, 1.0], np.float32), "b")]),
        (helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 3], pads=[1, 0, 0, 1], output_padding=[1, 0]),
         [numpy_helper.from_array(rng.standard_normal((3, 2, 3, 2)).astype(np.float32), "w")]),
    ]
    for node, inits in cases:
        model = _model([node], [vi("x", T.FLOAT, [2, 3, 4, 5])], [vi("y", T.FLOAT, None)], inits)
        want = ReferenceEvaluator(model).run(None, {"x": x})[0]
        got = prepare_for(model, [x]).run([x])[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=node.op_type)
