"""The GGUF reader and its dequantizers: every supported type against blocks computed by hand
from ggml's block layouts, quantization round trips, and the errors of unreadable files."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lpu.diagnostics import DiagnosticError
from lpu.models.gguf_file import SUPPORTED_TYPES, GGUFFile, dequantize
from models_helpers import TINY_GGUF

ROWS, COLS = 3, 64  # two blocks of 32 per row


def _f16_bytes(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float16).reshape(-1, 1).view(np.uint8)


def _hand_blocks(kind: str, rng) -> tuple[np.ndarray, np.ndarray]:
    """Raw bytes of a [ROWS, COLS] tensor of ``kind`` and its values, computed from the format
    (ggml's block_q8_0 / block_q4_0 / block_q4_1 structs) rather than by gguf."""
    n = ROWS * COLS // 32
    if kind == "Q8_0":
        d = rng.uniform(0.001, 0.1, n).astype(np.float16)
        q = rng.integers(-128, 128, (n, 32)).astype(np.int8)
        raw = np.concatenate([_f16_bytes(d), q.view(np.uint8)], axis=1)
        want = d.astype(np.float32)[:, None] * q.astype(np.float32)
    elif kind in ("Q4_0", "Q4_1"):
        d = rng.uniform(0.001, 0.1, n).astype(np.float16)
        m = rng.uniform(-0.5, 0.5, n).astype(np.float16)
        q = rng.integers(0, 16, (n, 32)).astype(np.uint8)
        packed = q[:, :16] | (q[:, 16:] << 4)             # element j low nibble, j + 16 high
        parts = [_f16_bytes(d)] + ([_f16_bytes(m)] if kind == "Q4_1" else []) + [packed]
        raw = np.concatenate(parts, axis=1)
        if kind == "Q4_0":
            want = d.astype(np.float32)[:, None] * (q.astype(np.float32) - 8)
        else:
            want = d.astype(np.float32)[:, None] * q.astype(np.float32) + m.astype(np.float32)[:, None]
    elif kind == "BF16":
        bits = rng.integers(0, 1 << 16, ROWS * COLS).astype(np.uint16)
        bits[(bits & 0x7F80) == 0x7F80] &= 0xBFFF          # no inf/NaN: keep comparisons exact
        raw = bits.view(np.uint8).reshape(ROWS, COLS * 2)
        want = (bits.astype(np.uint32) << 16).view(np.float32)
    elif kind == "F16":
        v = rng.standard_normal((ROWS, COLS)).astype(np.float16)
        return v, v.astype(np.float32)
    else:
        v = rng.standard_normal((ROWS, COLS)).astype(np.float32)
        return v, v
    return raw.reshape(ROWS, -1), want.reshape(ROWS, COLS).astype(np.float32)


def _write(path, tensors: dict[str, tuple[str, np.ndarray]]) -> None:
    w = gguf.GGUFWriter(str(path), "llama")
    for name, (kind, data) in tensors.items():
        if kind in ("F32", "F16"):
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, data, raw_dtype=gguf.GGMLQuantizationType[kind])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("kind", SUPPORTED_TYPES)
def test_dequantize_each_type_as_the_format_defines_it(tmp_path, kind):
    raw, want = _hand_blocks(kind, np.random.default_rng(7))
    _write(tmp_path / "t.gguf", {"t": (kind, raw)})
    f = GGUFFile(str(tmp_path / "t.gguf"))
    assert f.type_name("t") == kind
    assert f.shape("t") == (COLS, ROWS)                     # GGUF order: ne0 first
    got = f.dequantize("t")
    assert got.dtype == np.float32 and got.shape == (ROWS, COLS)
    np.testing.assert_array_equal(got, want)


def test_q4_nibble_order_low_half_first():
    # one Q4_0 block: d = 1, byte j = (j) | (15 - j) << 4 -> elements j = j - 8, j + 16 = 7 - j
    block = np.concatenate([_f16_bytes(np.array([1.0]))[0], np.array([j | ((15 - j) << 4) for j in range(16)], np.uint8)])
    got = dequantize(block.reshape(1, 18), "Q4_0", (1, 32))
    np.testing.assert_array_equal(got[0, :16], np.arange(16) - 8)
    np.testing.assert_array_equal(got[0, 16:], 7 - np.arange(16))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["Q8_0", "Q4_0", "Q4_1"]), st.integers(1, 4), st.integers(1, 3), st.integers(0, 2**31))
def test_quantize_then_dequantize_is_within_half_a_step(kind, rows, blocks, seed):
    x = np.random.default_rng(seed).standard_normal((rows, 32 * blocks)).astype(np.float32)
    q = gguf.quants.quantize(x, gguf.GGMLQuantizationType[kind])
    y = dequantize(q, kind, x.shape)
    b = x.reshape(-1, 32)
    amax = np.abs(b).max(1)
    # half a step (Q4_0: a whole one, its far end clips at +7), plus the f16 rounding of the
    # step times the largest code (and of Q4_1's minimum)
    bound = {"Q8_0": amax / 127 * (0.5 + 128 * 2 ** -11),
             "Q4_0": amax / 8 * (1 + 16 * 2 ** -11),
             "Q4_1": (b.max(1) - b.min(1)) / 15 * (0.5 + 16 * 2 ** -11) + np.abs(b.min(1)) * 2 ** -11}[kind] + 1e-6
    assert (np.abs((y - x).reshape(-1, 32)) <= bound[:, None]).all()


def test_dequantize_agrees_with_gguf_on_the_tiny_checkpoint():
    f = GGUFFile(TINY_GGUF)
    kinds = {f.type_name(n) for n in f.tensor_names}
    assert kinds == set(SUPPORTED_TYPES)                    # the tiny model holds every type
    for n in f.tensor_names:
        t = f.tensors[n]
        want = gguf.quants.dequantize(t.data, t.tensor_type)
        np.testing.assert_array_equal(f.dequantize(n), np.asarray(want, np.float32).reshape(f.dequantize(n).shape))


def _message(excinfo) -> str:
    (d,) = excinfo.value.diagnostics
    return f"{d.loc}: {d.severity}: {d.message}"


def test_missing_file(tmp_path):
    p = str(tmp_path / "nope.gguf")
    with pytest.raises(DiagnosticError) as e:
        GGUFFile(p)
    assert _message(e) == f"{p}: error: cannot read '{p}': No such file or directory"


def test_not_a_gguf_file(tmp_path):
    p = tmp_path / "x.gguf"
    p.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(DiagnosticError) as e:
        GGUFFile(str(p))
    assert _message(e) == f"{p}: error: not a GGUF file (it starts with b'PK\\x03\\x04', not b'GGUF')"


def test_truncated_file(tmp_path):
    p = tmp_path / "cut.gguf"
    p.write_bytes(open(TINY_GGUF, "rb").read()[:5000])
    with pytest.raises(DiagnosticError) as e:
        GGUFFile(str(p))
    assert _message(e).startswith(f"{p}: error: damaged GGUF file: ")


def test_missing_metadata_and_tensor(tmp_path):
    f = GGUFFile(TINY_GGUF)
    with pytest.raises(DiagnosticError) as e:
        f.require("llama.nothing", "a key no file has")
    assert _message(e) == f"{TINY_GGUF}: error: metadata key 'llama.nothing' (a key no file has) is missing"
    with pytest.raises(DiagnosticError) as e:
        f.dequantize("blk.9.attn_q.weight")
    assert _message(e) == f"{TINY_GGUF}: error: tensor 'blk.9.attn_q.weight' is missing"
    assert f.get("llama.block_count") == 2 and f.get("llama.nothing", 5) == 5
