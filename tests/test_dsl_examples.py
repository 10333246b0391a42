"""Every dataflow example in examples/ runs on the reference interpreter and matches an
independent float64/int64 numpy expression; results are the same after the default pipeline."""

import os

import numpy as np
import pytest

from lpu.dsl.interpreter import run_function
from lpu.dsl.passes import DEFAULT_PIPELINE, run_pipeline
from lpu.dsl.run import run_program
from dsl_helpers import EXAMPLES, f64, parse

rng = np.random.default_rng(1)


def load(name):
    return np.load(os.path.join(EXAMPLES, name))


def example(name):
    path = os.path.join(EXAMPLES, name)
    with open(path) as f:
        return parse(f.read(), path)


def normal(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float16)


def ref_layernorm(x, g, b, eps=1e-5):
    x = f64(x)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * f64(g) + f64(b)


def ref_softmax(x):
    x = f64(x)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def ref_gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def close(got, want, rel):
    """Within ``rel`` of the largest magnitude of the reference (f16 keeps ~3 digits)."""
    got, want = f64(got), f64(want)
    assert got.shape == want.shape
    err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30)
    assert err <= rel, f"relative error {err:.3g} > {rel}"


def run(name, **inputs):
    m = example(name)
    out = run_function(m, "main", inputs)
    run_pipeline(m, DEFAULT_PIPELINE)
    again = run_function(m, "main", inputs)
    for a, b in zip(out, again):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), "pipeline changed the results"
    return out


def test_gemv_i8_exact():
    x = rng.integers(-128, 128, 320).astype(np.int8)
    (y,) = run("gemv_i8.lpu", x=x)
    assert y.dtype == np.int32
    assert np.array_equal(y, (x.astype(np.int64) @ load("gemv_i8_w.npy").astype(np.int64)).astype(np.int32))


def test_gemv_f16():
    x, w = normal(640), normal(640, 320)
    (y,) = run("gemv_f16.lpu", x=x, w=w)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, f64(x) @ f64(w), rtol=1e-6, atol=1e-4)


def test_gemm_i8_exact_and_saturating():
    a = rng.integers(-128, 128, (64, 320)).astype(np.int8)
    b = rng.integers(-128, 128, (320, 320)).astype(np.int8)
    c, q = run("gemm_i8.lpu", a=a, b=b)
    want = a.astype(np.int64) @ b.astype(np.int64)
    assert np.array_equal(c, want.astype(np.int32))
    assert np.array_equal(q, np.clip(want, -128, 127).astype(np.int8))


def test_gemm_f16():
    a, b = normal(64, 640), normal(640, 320)
    (c,) = run("gemm_f16.lpu", a=a, b=b)
    assert c.dtype == np.float16
    np.testing.assert_allclose(f64(c), f64(a) @ f64(b), rtol=1e-3, atol=0.05)


def test_softmax():
    x = normal(4, 320, scale=3)
    (y,) = run("softmax.lpu", x=x)
    close(y, ref_softmax(x), 2e-3)


def test_layernorm():
    x, g, b = normal(4, 640, scale=2), normal(640), normal(640)
    (y,) = run("layernorm.lpu", x=x, gamma=g, beta=b)
    close(y, ref_layernorm(x, g, b), 5e-3)


def test_mlp():
    x, g, beta = normal(8, 640), normal(640), normal(640)
    w1, b1, w2 = normal(640, 1280, scale=0.04), normal(1280), normal(1280, 640, scale=0.03)
    (y,) = run("mlp.lpu", x=x, g=g, beta=beta, w1=w1, b1=b1, w2=w2)
    u = ref_layernorm(x, g, beta) @ f64(w1) + f64(b1)
    close(y, f64(x) + ref_gelu(u) @ f64(w2), 1e-2)


def test_attention_head_against_kv_cache():
    q = normal(1, 160)
    (o,) = run("attention.lpu", q=q)
    k, v = f64(load("attention_k.npy")), f64(load("attention_v.npy"))
    close(o, ref_softmax(f64(q) @ k.T / np.sqrt(160)) @ v, 1e-2)


def test_decoder_layer():
    d = 640
    x = normal(1, d)
    w = {n: normal(d, d, scale=d ** -0.5) for n in ("wq", "wk", "wv", "wo")}
    w1, w2 = normal(d, 2 * d, scale=d ** -0.5), normal(2 * d, d, scale=(2 * d) ** -0.5)
    g1, b1, g2, b2 = normal(d), normal(d, scale=0.1), normal(d), normal(d, scale=0.1)
    (y,) = run("decoder.lpu", x=x, w1=w1, w2=w2, g1=g1, b1=b1, g2=g2, b2=b2, **w)
    h = ref_layernorm(x, g1, b1)
    q, k, v = (h @ f64(w[n]) for n in ("wq", "wk", "wv"))
    keys = np.concatenate([f64(load("decoder_k.npy")), k])
    values = np.concatenate([f64(load("decoder_v.npy")), v])
    attn = np.zeros((1, d))
    for i in range(4):
        s = slice(160 * i, 160 * (i + 1))
        p = ref_softmax(q[:, s] @ keys[:, s].T / np.sqrt(160))
        attn += (p @ values[:, s]) @ f64(w["wo"])[s, :]
    x1 = f64(x) + attn
    want = x1 + ref_gelu(ref_layernorm(x1, g2, b2) @ f64(w1)) @ f64(w2)
    close(y, want, 2e-2)


@pytest.mark.parametrize("name", ["gemv_i8", "gemv_f16", "gemm_i8", "gemm_f16", "mlp", "softmax",
                                  "layernorm", "attention", "decoder"])
def test_every_example_runs_without_inputs(name):
    notes = []
    names, results = run_program(os.path.join(EXAMPLES, name + ".lpu"), seed=3, notes=notes)
    assert notes and all("(--seed 3)" in n for n in notes)
    names2, results2 = run_program(os.path.join(EXAMPLES, name + ".lpu"), seed=3)
    assert names == names2 and all(np.array_equal(a, b) for a, b in zip(results, results2))
