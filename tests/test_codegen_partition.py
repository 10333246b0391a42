"""Many chips, automatically (dsl/codegen/partition.py): a function is cut into a pipeline by
its tensors' SRAM, or over the chips asked for; results equal the one-chip program's."""

from __future__ import annotations

import numpy as np
import pytest

from lpu.compile import run_source
from lpu.diagnostics import DiagnosticError
from lpu.driver import main as lpu_main

from test_codegen_vector import small_chip


def layers_source(n: int, d: int) -> str:
    decls = "\n".join(f'data @w{i} : tensor<{d}x{d}xf16> = load("w{i}.npy")\n'
                      f'data @g{i} : tensor<{d}xf16> = load("g{i}.npy")' for i in range(n))
    calls, x = [], "%x"
    for i in range(n):
        calls.append(f"  %a{i} = get @w{i} : tensor<{d}x{d}xf16>\n  %b{i} = get @g{i} : tensor<{d}xf16>\n"
                     f"  %x{i + 1} = call @block({x}, %a{i}, %b{i})")
        x = f"%x{i + 1}"
    body = "\n".join(f"  %r{i + 1} = {('add', 'max', 'sub', 'min')[i % 4]} %r{i}, %x" for i in range(14))
    return f'''target "lpu-v1"

{decls}

func @main(%x: tensor<1x{d}xf16>) -> tensor<1x{d}xf16> {{
{chr(10).join(calls)}
  return {x}
}}

func @block(%x: tensor<1x{d}xf16>, %w: tensor<{d}x{d}xf16>, %g: tensor<{d}xf16>) -> tensor<1x{d}xf16> {{
  %h = rmsnorm %x, %g {{eps = 1e-05}}
  %y32 = matmul %h, %w : tensor<1x{d}xf32>
  %r0 = cast %y32 : tensor<1x{d}xf16>
{body}
  return %r14
}}
'''


def write_weights(tmp_path, n: int, d: int) -> None:
    rng = np.random.default_rng(1)
    for i in range(n):
        np.save(tmp_path / f"w{i}.npy", (rng.standard_normal((d, d)) * 0.03).astype(np.float16))
        np.save(tmp_path / f"g{i}.npy", (1 + 0.1 * rng.standard_normal(d)).astype(np.float16))


@pytest.mark.parametrize("chips, cycles", [(1, 902), (2, 1213), (3, 1512)])
def test_the_same_result_on_one_two_and_three_chips(tmp_path, chips, cycles):
    write_weights(tmp_path, 3, 320)
    x = np.linspace(-1, 1, 320).astype(np.float16).reshape(1, 320)
    path = str(tmp_path / "layers.lpu")
    out = run_source(layers_source(3, 320), path, {"x": x}, check=True, chips=chips)
    assert out.hazards == [] and out.matches
    assert out.cycles == cycles
    one = run_source(layers_source(3, 320), path, {"x": x}, chips=1)
    assert np.array_equal(out.result, one.result)  # the same instructions, only cut between chips


WIDE = """target "lpu-v1"

{decls}

func @main(%x: tensor<1x320xf16>) -> tensor<1x320xf16> {{
{calls}
  return {last}
}}

func @block(%x: tensor<1x320xf16>, %w: tensor<320x2560xf16>) -> tensor<1x320xf16> {{
  %u32 = matmul %x, %w : tensor<1x2560xf32>
  %u = reshape %u32 : tensor<8x320xf32>
  %s = reduce_sum %u {{axis = 0}} : tensor<1x320xf32>
  %t = cast %s : tensor<1x320xf16>
{body}
  return %r12
}}
"""


def test_a_function_too_big_for_one_chip_is_split_over_as_many_as_it_needs(tmp_path):
    """Four 320 x 2560 f16 matrices (5,120 words each, 8 column blocks over 16-slice windows)
    on chips of 256-word slices (22,528 words, 90% of it usable): three a chip, so two chips."""
    rng = np.random.default_rng(2)
    decls, calls, x = [], [], "%x"
    for i in range(4):
        np.save(tmp_path / f"w{i}.npy", (rng.standard_normal((320, 2560)) * 0.01).astype(np.float16))
        decls.append(f'data @w{i} : tensor<320x2560xf16> = load("w{i}.npy")')
        calls.append(f"  %a{i} = get @w{i} : tensor<320x2560xf16>\n  %x{i + 1} = call @block({x}, %a{i})")
        x = f"%x{i + 1}"
    body = "\n".join(f"  %r{i + 1} = {('add', 'max', 'sub', 'min')[i % 4]} {'%t' if i == 0 else f'%r{i}'}, %x"
                     for i in range(12))
    src = WIDE.format(decls="\n".join(decls), calls="\n".join(calls), last=x, body=body)
    xin = np.linspace(-1, 1, 320).astype(np.float16).reshape(1, 320)
    path = str(tmp_path / "wide.lpu")
    out = run_source(src, path, {"x": xin}, check=True, config=small_chip(tmp_path, 256))
    assert out.hazards == [] and out.matches
    assert sorted(out.compiled.chips) == [0, 1]
    with pytest.raises(DiagnosticError) as e:  # on one chip it does not fit
        run_source(src, path, {"x": xin}, config=small_chip(tmp_path, 256), chips=1)
    assert e.value.diagnostics[0].message.startswith("the values of this function need 2")


def test_chips_on_a_function_that_places_its_ops_is_an_error(tmp_path):
    src = '''target "lpu-v1"
func @main(%x: tensor<320xf16>) -> tensor<320xf16> {
  %y = add %x, %x {chip = 1}
  return %y
}
'''
    with pytest.raises(DiagnosticError) as e:
        run_source(src, "placed.lpu", chips=2)
    assert e.value.diagnostics[0].message == ("the function already places ops on chips ('chip = N', send/recv); "
                                              "compile it without --chips")


def test_lpu_compile_chips_must_be_a_positive_count(tmp_path, capsys):
    src = tmp_path / "t.lpu"
    src.write_text('target "lpu-v1"\nfunc @main(%x: tensor<320xf16>) -> tensor<320xf16> {\n  return %x\n}\n')
    with pytest.raises(SystemExit) as e:
        lpu_main(["compile", str(src), "--chips", "0"])
    assert e.value.code == 1 or e.value.code == 2
    assert "invalid chip count '0' (an integer >= 1)" in capsys.readouterr().err
