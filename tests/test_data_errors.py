"""A data tensor whose file is not what it declares is a diagnostic on every path that reads
it — the reference interpreter, the compiler and `lpu run` — never a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from lpu.driver import main as lpu_main

SRC = """target "lpu-v1"
data @w : tensor<4x4xi8> = load("w.npy")
func @main(%x: tensor<4xi8>) -> tensor<4xi32> {
  %w = get @w : tensor<4x4xi8>
  %y = matmul %x, %w : tensor<4xi32>
  return %y
}
"""
WANT = """t.lpu:2:28: error: 'w.npy' holds int8[3, 3] but '@w' is tensor<4x4xi8>
data @w : tensor<4x4xi8> = load("w.npy")
                           ^~~~~~~~~~~~~
"""


@pytest.mark.parametrize("argv", [["run", "t.lpu", "--check"], ["run", "--reference", "t.lpu"],
                                  ["compile", "t.lpu", "-o", "t.lpx"]])
def test_data_file_mismatch_is_a_diagnostic(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    np.save("w.npy", np.zeros((3, 3), np.int8))
    (tmp_path / "t.lpu").write_text(SRC)
    assert lpu_main(argv) == 1
    assert capsys.readouterr().err == WANT
    assert not (tmp_path / "t.lpx").exists()


OK = """target "lpu-v1"
func @main(%x: tensor<4xi8>) -> tensor<4xi8> {
  %y = add %x, %x
  return %y
}
"""
HEAD = """func @main(%x: tensor<4xi8>) -> tensor<4xi8> {
     ^~~~
"""


@pytest.mark.parametrize("check", [[], ["--check"], ["--reference"]])
@pytest.mark.parametrize("given, message", [
    (("x", np.zeros(5, np.int8)), "input 'x' is int8[5] but '%x' is tensor<4xi8>"),
    (("x", np.zeros(4, np.float32)), "input 'x' is float32[4] but '%x' is tensor<4xi8>"),
    (("y", np.zeros(4, np.int8)), "'@main' has no argument '%y' (its arguments: %x)"),
])
def test_inputs_are_checked_against_the_arguments_on_every_path(check, given, message, tmp_path, monkeypatch,
                                                                 capsys):
    """lpu run (compiled, --check, --reference) refuses an input the function cannot take; the
    compiled path accepted a wrong shape and ignored an unknown name."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.lpu").write_text(OK)
    np.save("in.npy", given[1])
    assert lpu_main(["run", "ok.lpu", "--input", f"{given[0]}=in.npy"] + check) == 1
    assert capsys.readouterr().err == f"ok.lpu:2:6: error: {message}\n" + HEAD


def test_a_bad_system_file_is_an_error_for_a_one_chip_function_too(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.lpu").write_text(OK)
    assert lpu_main(["compile", "ok.lpu", "-o", "o.lpx", "--system", "nosuch"]) == 1
    assert capsys.readouterr().err == "nosuch: error: cannot read 'nosuch': No such file or directory\n"
    assert lpu_main(["compile", "ok.lpu", "-o", "o.lpx", "--system", "node"]) == 0


def test_a_zero_dimension_is_a_diagnostic(tmp_path, monkeypatch, capsys):
    """The compiled path raised a numpy error on tensor<0xi8>; both levels now say what the
    assembler says of its tensors."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "z.lpu").write_text(OK.replace("tensor<4xi8>) ->", "tensor<0xi8>) ->"))
    assert lpu_main(["run", "z.lpu"]) == 1
    assert capsys.readouterr().err == (
        "z.lpu:2:16: error: a tensor dimension must be at least 1\n"
        "func @main(%x: tensor<0xi8>) -> tensor<4xi8> {\n"
        "               ^~~~~~~~~~~~\n")
