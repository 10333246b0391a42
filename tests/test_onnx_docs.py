"""docs/onnx.md's examples and figures: the Python example runs as written, the `--dtype`
error table's measured figures are what ``onnx_suite.dtype_errors`` measures (each within its
bound), and the report and error listings are the ones tests/test_onnx_import.py checks."""

from __future__ import annotations

import os
import re

import pytest

from lpu.models.onnx_suite import dtype_bound, dtype_errors

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "onnx.md")


@pytest.fixture(scope="module")
def doc() -> str:
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def test_python_example_runs(doc):
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], "docs/onnx.md", "exec"), {})


def test_dtype_table_is_measured_and_within_bounds(doc):
    measured = dtype_errors()
    for dtype, (err, bound) in measured.items():
        assert err <= bound, dtype
        assert bound == dtype_bound(dtype, 256)
        row = next(line for line in doc.splitlines() if line.startswith(f"| {dtype} |"))
        assert row.endswith(f"| {err:.3g} | {bound:.3g} |"), row


def test_dtype_bounds_hold_on_the_simulator():
    for dtype, (err, bound) in dtype_errors(m=2, k=64, n=8, device="simulator").items():
        assert err <= bound, dtype


def _block_after(doc: str, marker: str) -> str:
    """The first fenced block after ``marker``."""
    return re.search(re.escape(marker) + r".*?```\n(.*?)```", doc, re.S).group(1)


def test_report_and_errors_are_what_the_tools_print(doc, tmp_path, capsys):
    import onnx
    from test_onnx_import import _unsupported

    from lpu.driver import main as lpu_main

    path = str(tmp_path / "m.onnx")
    onnx.save(_unsupported(), path)
    assert lpu_main(["import", "--report", path]) == 1
    report = capsys.readouterr().out.replace(path, "m.onnx")
    assert report == _block_after(doc, "then every unsupported node:")
    assert lpu_main(["import", path, "-o", str(tmp_path / "u.lpu")]) == 1
    err = capsys.readouterr().err.replace(path, "m.onnx")
    assert err == _block_after(doc, "is one error a node and nothing written:")


def test_error_table_is_the_tested_messages(doc):
    from test_onnx_import import ERRORS

    table = doc[doc.index("| case | message |"):]
    table = table[:table.index("\n\n")]
    for _, message in ERRORS:
        if "(supported:" in message:  # the table shortens the list of types
            message = message[:message.index("(supported:") + len("(supported: FLOAT, FLOAT16,")]
        assert message.replace("|", "\\|") in table, message
