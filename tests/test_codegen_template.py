"""Functions compiled once and called many times (dsl/codegen/template.py): identical layers
share one schedule; each call binds its own weights."""

from __future__ import annotations

import numpy as np
import pytest

from lpu.compile import compile_source, run_source

BLOCK_OPS = "\n".join(f"  %r{i + 1} = {'add' if i % 2 else 'mul'} %r{i}, %x" for i in range(12))

LAYERS = f'''target "lpu-v1"

data @w0 : tensor<320x320xf16> = load("w0.npy")
data @w1 : tensor<320x320xf16> = load("w1.npy")
data @w2 : tensor<320x320xf16> = load("w2.npy")
data @g0 : tensor<320xf16> = load("g0.npy")
data @g1 : tensor<320xf16> = load("g1.npy")
data @g2 : tensor<320xf16> = load("g2.npy")

func @main(%x: tensor<1x320xf16>) -> tensor<1x320xf16> {{
  %a = get @w0 : tensor<320x320xf16>
  %b = get @w1 : tensor<320x320xf16>
  %c = get @w2 : tensor<320x320xf16>
  %ga = get @g0 : tensor<320xf16>
  %gb = get @g1 : tensor<320xf16>
  %gc = get @g2 : tensor<320xf16>
  %x1 = call @block(%x, %a, %ga)
  %x2 = call @block(%x1, %b, %gb)
  %x3 = call @block(%x2, %c, %gc)
  return %x3
}}

func @block(%x: tensor<1x320xf16>, %w: tensor<320x320xf16>, %g: tensor<320xf16>) -> tensor<1x320xf16> {{
  %h = rmsnorm %x, %g {{eps = 1e-05}}
  %y32 = matmul %h, %w : tensor<1x320xf32>
  %r0 = cast %y32 : tensor<1x320xf16>
{BLOCK_OPS}
  return %r12
}}
'''


@pytest.fixture
def layers(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(tmp_path / f"w{i}.npy", (rng.standard_normal((320, 320)) * 0.05).astype(np.float16))
        np.save(tmp_path / f"g{i}.npy", (1 + 0.1 * rng.standard_normal(320)).astype(np.float16))
    path = tmp_path / "layers.lpu"
    path.write_text(LAYERS)
    return str(path)


def test_three_calls_of_one_block_share_one_compile_and_match_the_interpreter(layers, monkeypatch):
    import lpu.dsl.codegen.general as G

    compiled = []
    real = G.compile_general
    monkeypatch.setattr(G, "compile_general", lambda m, name, *a, **k: compiled.append(name) or real(m, name, *a, **k))
    x = np.linspace(-1, 1, 320).astype(np.float16).reshape(1, 320)
    out = run_source(LAYERS, layers, {"x": x}, check=True)
    assert out.hazards == [] and out.matches
    assert compiled.count("block") == 1  # the template; @main itself is compiled by compile_function
    assert out.cycles == 902
    # each call's weights laid out as the template lays out its parameter, one tensor a slice
    names = {t.name for t in out.compiled.program.tensors}
    for w in ("w0", "w1", "w2"):
        assert sum(n.startswith(f"{w}_mem_") for n in names) == 16
    assert not any(n.startswith("block_in_w_") for n in names)  # the template's own copy is unused


def test_the_calls_run_the_template_s_instructions_one_after_the_other(layers):
    """Each call is the template's kernel shifted to where the call runs, its reads of the
    bound weights renamed to the call's own tensors."""
    from lpu.dsl.codegen.template import template_cache, template_for
    from lpu.dsl.frontend import parse_module
    from lpu.dsl.interpreter import function
    from lpu.arch.config import load_config
    import os

    with template_cache():
        c, module = compile_source(LAYERS, layers)
        calls = [op for op in function(module, "main").body.walk() if op.name == "df.call"]
        tpl = template_for(module, "block", calls, load_config(None), os.path.dirname(layers), layers)
    mm = lambda insts: sorted(x.cycle for x in insts if x.spec.mnemonic == "mm")  # noqa: E731
    t = mm(tpl.kernel.insts)
    got = mm(c.program.kernels[0].insts)
    n = len(t)
    assert n == 2 and len(got) == 3 * n  # the rms norm's lane sum and the matmul, three times
    shifts = [{g - u for g, u in zip(got[k * n:(k + 1) * n], t)} for k in range(3)]
    assert all(len(sh) == 1 for sh in shifts)  # each call the template shifted as a whole
    s0, s1, s2 = (sh.pop() for sh in shifts)
    assert s0 > 0 and s1 - s0 == s2 - s1 >= tpl.compiled.cycles
    text = c.assembly()
    weights = {ln.split("[@")[1].split("_mem_")[0] for ln in text.splitlines() if " read.f16 [@w" in ln}
    assert weights == {"w0", "w1", "w2"}


def test_a_function_called_once_is_inlined(tmp_path):
    src = LAYERS.replace("  %x2 = call @block(%x1, %b, %gb)\n  %x3 = call @block(%x2, %c, %gc)\n  return %x3",
                         "  return %x1")
    for i in range(3):
        np.save(tmp_path / f"w{i}.npy", np.zeros((320, 320), np.float16))
        np.save(tmp_path / f"g{i}.npy", np.ones(320, np.float16))
    c, _ = compile_source(src, str(tmp_path / "one.lpu"))
    assert not any(t.name.startswith("block_") for t in c.program.tensors)
