"""lpu compile / lpu run over the code generator, and -S assembly equal to the direct object."""

import numpy as np
import pytest

from lpu.asm.assembler import assemble
from lpu.asm.emit import emit
from lpu.compile import compile_source
from lpu.driver import main
from lpu.linker.imagefile import read_image

SRC = '''target "lpu-v1"
data @w : tensor<640x330xi8> = load("w.npy")
func @gemv(%x: tensor<640xi8>) -> tensor<330xi32> {
  %w = get @w : tensor<640x330xi8>
  %y = matmul %x, %w : tensor<330xi32>
  return %y
}
'''


def setup(tmp_path):
    rng = np.random.default_rng(7)
    w = rng.integers(-128, 128, (640, 330)).astype(np.int8)
    x = rng.integers(-128, 128, 640).astype(np.int8)
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "g.lpu").write_text(SRC)
    return w, x


def test_assembly_reassembles_to_the_compiled_code(tmp_path):
    setup(tmp_path)
    path = str(tmp_path / "g.lpu")
    c, _ = compile_source(SRC, path)
    text = c.assembly(path)
    assert f"// gemv: compiled from {path}; {c.cycles} cycles" in text
    again = emit(assemble(text, str(tmp_path / "g.s")))
    key = lambda o: sorted((q.kernel, q.queue, list(q.words)) for q in o.code)  # noqa: E731
    assert key(again) == key(c.obj)
    assert [(s.symbol, s.image) for s in again.sram] == [(s.symbol, s.image) for s in c.obj.sram]
    assert again.kernels[0].length == c.cycles


def test_lpu_run_check_and_output(tmp_path, capsys):
    w, x = setup(tmp_path)
    g = str(tmp_path / "g.lpu")
    assert main(["run", g, "--check"]) == 0
    out = capsys.readouterr()
    assert "y: equal to the reference interpreter (int32[330], 73 cycles)" in out.out
    assert "lpu run: @gemv: 73 cycles, 0 hazards" in out.err
    y = tmp_path / "y.npy"
    assert main(["run", g, "--input", f"x={tmp_path / 'x.npy'}", "--output", f"y={y}", "-q"]) == 0
    assert np.array_equal(np.load(y), x.astype(np.int32) @ w.astype(np.int32))


def test_lpu_compile_writes_a_linked_image_and_assembly(tmp_path, capsys):
    setup(tmp_path)
    g, lpx, s = str(tmp_path / "g.lpu"), str(tmp_path / "g.lpx"), str(tmp_path / "g.s")
    assert main(["compile", g, "-o", lpx]) == 0
    image = read_image(open(lpx, "rb").read(), lpx)
    assert {sym.name for sym in image.chips[0].symbols} >= {"x_w0", "y_w0"}
    assert main(["compile", "-S", g, "-o", s]) == 0
    assert open(s).read().startswith("// gemv: compiled from")


def test_lpu_compile_reports_unsupported_input(tmp_path, capsys):
    (tmp_path / "f.lpu").write_text('target "lpu-v1"\nfunc @f(%a: tensor<4x8xi8>, %i: tensor<i32>) -> tensor<1x4xi8> {\n'
                                    '  %b = slice %a, %i {offsets = [0, 0], sizes = [1, 4], step = [0, 4]}\n'
                                    '  return %b\n}\n')
    assert main(["compile", str(tmp_path / "f.lpu"), "-o", str(tmp_path / "f.lpx")]) == 1
    err = capsys.readouterr().err
    assert (f"{tmp_path / 'f.lpu'}:3:8: error: the code generator does not compile a slice with a run-time index "
            "that moves along the last axis or cuts its vectors yet\n"
            "  %b = slice %a, %i {offsets = [0, 0], sizes = [1, 4], step = [0, 4]}\n       ^") in err
    assert not (tmp_path / "f.lpx").exists()


def test_doc_example_runs_as_shown(tmp_path, capsys):
    """docs/codegen.md: its df example compiles, and `lpu run --check` prints what it says."""
    import re
    from pathlib import Path
    doc = (Path(__file__).parent.parent / "docs" / "codegen.md").read_text()
    src = re.search(r"```lpu\n(.*?)```", doc, re.S).group(1)
    setup(tmp_path)
    (tmp_path / "gemv.lpu").write_text(src)
    assert main(["run", str(tmp_path / "gemv.lpu"), "--check"]) == 0
    shown = re.search(r"#   (y: equal to .*)", doc).group(1)
    assert shown in capsys.readouterr().out


EXAMPLES = __import__("pathlib").Path(__file__).parent.parent / "examples"


@pytest.mark.parametrize("name,cycles", [("gemv_i8.lpu", 51), ("gemv_f16.lpu", 116)])
def test_examples_compile_run_and_match(name, cycles):
    """The df examples the code generator handles so far; the others are listed in docs/codegen.md."""
    from lpu.compile import run_source
    path = EXAMPLES / name
    o = run_source(path.read_text(), str(path), check=True)
    assert o.hazards == [] and o.matches and o.cycles == cycles


def test_weights_as_an_argument_are_striped_by_the_input_binding(tmp_path):
    from lpu.compile import run_source
    src = '''target "lpu-v1"
func @f(%x: tensor<500xi8>, %w: tensor<500x900xi8>) -> tensor<900xi32> {
  %y = matmul %x, %w : tensor<900xi32>
  return %y
}
'''
    rng = np.random.default_rng(11)
    w = rng.integers(-128, 128, (500, 900)).astype(np.int8)
    x = rng.integers(-128, 128, 500).astype(np.int8)
    o = run_source(src, str(tmp_path / "f.lpu"), {"x": x, "w": w}, check=True)
    assert o.hazards == [] and o.matches
    assert np.array_equal(o.result, x.astype(np.int32) @ w.astype(np.int32))
    reserves = [t for t in o.compiled.program.tensors if t.name.startswith("w_")]
    assert reserves and all(t.image is None and t.is_global for t in reserves)
