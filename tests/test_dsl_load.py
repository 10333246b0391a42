"""``data @w : tensor<...xf16> = load("w.npy")`` from a file of another float type: converted with
one rounding to nearest even, as ``cast`` rounds (bf16 through ml_dtypes), on the reference and
compiled paths; a bf16 file written by ml_dtypes (``|V2``) reads as bf16; an int file for a float
tensor (or the reverse), or another shape, is an error at the ``load``."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from lpu.diagnostics import DiagnosticError
from lpu.dsl.frontend import parse_module
from lpu.dsl.interpreter import run_function

SRC = """data @w : tensor<3x5x{elem}> = load("w.npy")
func @main(%x: tensor<3x5x{elem}>) -> tensor<3x5x{elem}> {{
  %w = get @w
  %y = add %x, %w
  return %y
}}
"""
BF16 = np.dtype(ml_dtypes.bfloat16)
FILE_TYPES = [np.float16, np.float32, np.float64, BF16]
TENSOR_TYPES = {"f16": np.float16, "f32": np.float32, "bf16": BF16}


def _values():
    rng = np.random.default_rng(3)
    v = rng.standard_normal((3, 5)) * np.array([1e-3, 1, 30, 7e4, 1e-6])  # f16 overflow, subnormals
    v[2, 3] = 1e5
    v[0, 0], v[1, 1] = 1 + 2 ** -11, 1 + 3 * 2 ** -11  # ties of f16: to even
    return v


def _run(tmp_path, elem, arr):
    np.save(tmp_path / "w.npy", arr)
    (tmp_path / "t.lpu").write_text(SRC.format(elem=elem))
    m = parse_module((tmp_path / "t.lpu").read_text(), str(tmp_path / "t.lpu"))
    x = np.zeros((3, 5), TENSOR_TYPES[elem])
    return run_function(m, "main", {"x": x})[0]


@pytest.mark.parametrize("elem", sorted(TENSOR_TYPES))
@pytest.mark.parametrize("ftype", FILE_TYPES, ids=lambda t: np.dtype(t).name)
def test_a_float_file_converts_to_the_declared_float_type(tmp_path, elem, ftype):
    arr = _values().astype(ftype)
    got = _run(tmp_path, elem, arr)
    want_type = TENSOR_TYPES[elem]
    # one rounding to nearest even from the file's value (bf16 through f32, as ml_dtypes and cast do)
    exact = arr.astype(np.float64)
    with np.errstate(over="ignore"):  # (beyond f16: infinity)
        want = exact.astype(np.float32).astype(want_type) if want_type == BF16 else exact.astype(want_type)
    assert got.dtype == want_type and np.array_equal(got, want, equal_nan=True)
    if elem == "f16" and ftype is np.float64:
        assert got[0, 0] == np.float16(1.0) and got[1, 1] == np.float16(1 + 2 ** -9)  # ties to even
        assert np.isinf(got[:, 3]).any()  # beyond f16: infinity, as cast does


def test_an_ml_dtypes_bf16_file_is_read_as_bf16(tmp_path):
    arr = _values().astype(BF16)
    np.save(tmp_path / "raw.npy", arr)
    assert np.load(tmp_path / "raw.npy").dtype == np.dtype("V2")  # how numpy stores it
    got = _run(tmp_path, "bf16", arr)
    assert got.dtype == BF16 and np.array_equal(got, arr)
    got = _run(tmp_path, "f32", arr)
    assert np.array_equal(got, arr.astype(np.float32))


@pytest.mark.parametrize("elem,arr,message", [
    ("f16", np.zeros((3, 5), np.int8), "'w.npy' holds int8[3, 5], integers, but '@w' is tensor<3x5xf16> (a float "
                                       "file converts to any float type; integers and floats do not convert into "
                                       "each other)"),
    ("i8", np.zeros((3, 5), np.float32), "'w.npy' holds float32[3, 5], floats, but '@w' is tensor<3x5xi8> (a float "
                                         "file converts to any float type; integers and floats do not convert into "
                                         "each other)"),
    ("i8", np.zeros((3, 5), np.int32), "'w.npy' holds int32[3, 5], integers, but '@w' is tensor<3x5xi8>"),
    ("f16", np.zeros((5, 3), np.float32), "'w.npy' holds float32[5, 3] but '@w' is tensor<3x5xf16>"),
    ("f16", np.zeros((3, 5), np.complex64), "'w.npy' holds complex64[3, 5], neither floats nor integers, but '@w' "
                                            "is tensor<3x5xf16> (a float file converts to any float type; integers "
                                            "and floats do not convert into each other)"),
])
def test_other_mismatches_are_errors_at_the_load(tmp_path, elem, arr, message):
    np.save(tmp_path / "w.npy", arr)
    path = tmp_path / "t.lpu"
    path.write_text(SRC.format(elem=elem))
    m = parse_module(path.read_text(), str(path))
    with pytest.raises(DiagnosticError) as e:
        run_function(m, "main", {"x": np.zeros((3, 5), TENSOR_TYPES.get(elem, np.int8))})
    (d,) = e.value.diagnostics
    assert (d.loc.line, d.loc.col, d.loc.length, d.message) == (1, 28 if elem == "i8" else 29, 13, message)


def test_the_compiled_path_converts_the_same(tmp_path, monkeypatch, capsys):
    from lpu.driver import main as lpu_main
    monkeypatch.chdir(tmp_path)
    np.save("w.npy", _values().astype(np.float32) / 1e3)
    (tmp_path / "t.lpu").write_text('target "lpu-v1"\n' + SRC.format(elem="f16"))
    np.save("x.npy", np.ones((3, 5), np.float16))
    assert lpu_main(["run", "t.lpu", "--input", "x=x.npy", "--output", "y=y.npy"]) == 0
    assert "0 hazards" in capsys.readouterr().err
    want = (np.load("w.npy").astype(np.float16).astype(np.float64) + 1).astype(np.float16)
    assert np.array_equal(np.load("y.npy"), want)  # the compiled program read the converted weights
