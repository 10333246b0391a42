"""lpu-opt and lpu run as tools: outputs, diagnostics, MLIR interop with upstream mlir-opt."""

import os
import subprocess

import numpy as np
import pytest

from lpu.driver import main as lpu_main
from lpu.dsl.cli import main as opt_main
from dsl_helpers import EXAMPLES, MLIR_OPT

SOFTMAX = os.path.join(EXAMPLES, "softmax.lpu")


def test_opt_prints_lpu_and_verify_diagnostics(tmp_path, capsys):
    out = tmp_path / "o.lpu"
    assert opt_main([SOFTMAX, "-p", "df-decompose,canonicalize,cse", "-o", str(out)]) == 0
    text = out.read_text()
    assert "reduce_max %x {axis = -1} : tensor<4x1xf16>" in text and "softmax" not in text.split("{", 1)[1]
    bad = tmp_path / "bad.lpu"
    bad.write_text("func @f(%x: tensor<4xi8>) -> tensor<4xi8> {\n"
                   "  %y = exp %x  // expected-error {{'exp' needs a float element type}}\n  return %y\n}\n")
    assert opt_main([str(bad), "--verify-diagnostics"]) == 0
    bad.write_text("func @f(%x: tensor<4xi8>) -> tensor<4xi8> {\n  %y = exp %x\n  return %y\n}\n")
    assert opt_main([str(bad), "--verify-diagnostics"]) == 1
    assert "unexpected error: 'df.exp' op" in capsys.readouterr().err


def test_opt_error_is_llvm_style(tmp_path, capsys):
    bad = tmp_path / "bad.lpu"
    bad.write_text("func @f(%x: tensor<4xf16>) -> tensor<4xf16> {\n  %y = add %x, %q\n  return %y\n}\n")
    assert opt_main([str(bad)]) == 1
    assert capsys.readouterr().err == (f"{bad}:2:16: error: use of undefined value '%q'\n"
                                       "  %y = add %x, %q\n               ^~\n")


def test_print_ir_after_all(capsys):
    assert opt_main([SOFTMAX, "-p", "df-decompose,cse", "--print-ir-after-all", "-o", os.devnull]) == 0
    err = capsys.readouterr().err
    assert "// -----// IR Dump After df-decompose //----- //" in err and "IR Dump After cse" in err


def test_mlir_round_trip_keeps_locations(tmp_path):
    mlir = tmp_path / "s.mlir"
    assert opt_main([SOFTMAX, "--emit", "mlir", "-o", str(mlir)]) == 0
    text = mlir.read_text()
    assert '"df.softmax"(%x)' in text and f'loc("{SOFTMAX}":6:8)' in text
    back = tmp_path / "back.lpu"
    assert opt_main([str(mlir), "-o", str(back)]) == 0
    assert "%y = softmax %x : tensor<4x320xf16>" in back.read_text()


@pytest.mark.skipif(MLIR_OPT is None, reason="upstream mlir-opt is not installed")
@pytest.mark.parametrize("name", ["decoder", "attention", "gemm_i8", "mlp"])
def test_upstream_mlir_opt_parses_our_mlir(tmp_path, name):
    mlir = tmp_path / f"{name}.mlir"
    assert opt_main([os.path.join(EXAMPLES, name + ".lpu"), "-p", "df-decompose", "--emit", "mlir",
                     "-o", str(mlir)]) == 0
    r = subprocess.run([MLIR_OPT, "--allow-unregistered-dialect", str(mlir)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert '"df.' in r.stdout


def test_lpu_run_reference(tmp_path, capsys):
    x = np.arange(320, dtype=np.int8) - 100
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    assert lpu_main(["run", "--reference", os.path.join(EXAMPLES, "gemv_i8.lpu"), "--input", f"x={tmp_path / 'x.npy'}",
                     "--output", f"y={out}"]) == 0
    w = np.load(os.path.join(EXAMPLES, "gemv_i8_w.npy"))
    assert np.array_equal(np.load(out), (x.astype(np.int64) @ w.astype(np.int64)).astype(np.int32))
    assert capsys.readouterr().out.startswith("y: int32[640] = [")


def test_lpu_run_bad_input_is_a_diagnostic(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros(3, np.int8))
    assert lpu_main(["run", "--reference", os.path.join(EXAMPLES, "gemv_i8.lpu"), "-i", f"x={tmp_path / 'x.npy'}"]) == 1
    assert "error: input 'x' is int8[3] but '%x' is tensor<320xi8>" in capsys.readouterr().err
