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
WANT = """t.lpu:2:6: error: 'w.npy' holds int8[3, 3] but '@w' is tensor<4x4xi8>
data @w : tensor<4x4xi8> = load("w.npy")
     ^~~~
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
