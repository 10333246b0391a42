"""Per op: the verifier's exact messages, and the interpreter against independent numpy."""

import numpy as np
import pytest

from lpu.dsl.interpreter import run_function
from dsl_helpers import errors, f64, func, parse

rng = np.random.default_rng(2)


def run1(body, sig, **inputs):
    return run_function(parse(func(body, sig)), "f", inputs)


@pytest.mark.parametrize("body,sig,message", [
    ("%y = matmul %x, %x\nreturn %y", "(%x: tensor<4xi8>) -> tensor<4xi32>",
     "2:8: 'df.matmul' op right operand must be a matrix (rank 2) or a batch of them (rank 3 or more), not rank 1"),
    ("%y = matmul %x, %w\nreturn %y", "(%x: tensor<4xi8>, %w: tensor<5x3xi8>) -> tensor<3xi32>",
     "2:8: 'df.matmul' op contraction dimensions differ: 4 (left) and 5 (right)"),
    ("%y = matmul %x, %w\nreturn %y", "(%x: tensor<4xf32>, %w: tensor<4x3xf32>) -> tensor<3xf32>",
     "2:8: 'df.matmul' op multiplies i8, f16 or bf16 (the MXM's weight types), not f32"),
    ("%y = matmul %x, %w : tensor<3xf16>\nreturn %y", "(%x: tensor<4xf16>, %w: tensor<4x3xf16>) -> tensor<3xf16>",
     "2:8: 'df.matmul' op result type tensor<3xf16> does not match the inferred type tensor<3xf32>"),
    ("%y = add %x, %w\nreturn %y", "(%x: tensor<4xf16>, %w: tensor<3xf16>) -> tensor<4xf16>",
     "2:8: 'df.add' op operand shapes (4,) and (3,) do not broadcast"),
    ("%y = mul %x, %w\nreturn %y", "(%x: tensor<4xf16>, %w: tensor<4xi8>) -> tensor<4xf16>",
     "2:8: 'df.mul' op operands have different element types: f16 and i8"),
    ("%y = exp %x\nreturn %y", "(%x: tensor<4xi8>) -> tensor<4xi8>",
     "2:8: 'df.exp' op 'exp' needs a float element type (f16, bf16 or f32), not i8"),
    ("%y = reduce_sum %x {axis = 2}\nreturn %y", "(%x: tensor<4x8xf16>) -> tensor<4x1xf32>",
     "2:8: 'df.reduce_sum' op 'axis' 2 is out of range for rank 2"),
    ("%y = transpose %x {perm = [0, 0]}\nreturn %y", "(%x: tensor<4x8xf16>) -> tensor<8x4xf16>",
     "2:8: 'df.transpose' op 'perm' [0, 0] is not a permutation of the 2 axes"),
    ("%y = reshape %x : tensor<5xf16>\nreturn %y", "(%x: tensor<4xf16>) -> tensor<5xf16>",
     "2:8: 'df.reshape' op tensor<4xf16> and tensor<5xf16> have different numbers of elements"),
    ("%y = slice %x {offsets = [2], sizes = [3]}\nreturn %y", "(%x: tensor<4xf16>) -> tensor<3xf16>",
     "2:8: 'df.slice' op window [2, 5) of axis 0 is outside its 4 elements"),
    ("%y = concat %x, %w {axis = 0}\nreturn %y", "(%x: tensor<4x2xf16>, %w: tensor<4x3xf16>) -> tensor<8x2xf16>",
     "2:8: 'df.concat' op operand tensor<4x3xf16> does not match tensor<4x2xf16> except along axis 0"),
    ("%y = layernorm %x, %g, %g\nreturn %y", "(%x: tensor<4x8xf16>, %g: tensor<4xf16>) -> tensor<4x8xf16>",
     "2:8: 'df.layernorm' op gamma must be tensor<8xf16> (the last axis of the input), not tensor<4xf16>"),
    ("%y = quantize %x {scale = 0.0} : tensor<4xi8>\nreturn %y", "(%x: tensor<4xf16>) -> tensor<4xi8>",
     "2:8: 'df.quantize' op 'scale' must be positive"),
    ("%y = quantize %x {scale = 0.5, zero_point = 300} : tensor<4xi8>\nreturn %y", "(%x: tensor<4xf16>) -> tensor<4xi8>",
     "2:8: 'df.quantize' op 'zero_point' 300 is out of range for i8"),
    ("send %x {to = 0}\nreturn %x", "(%x: tensor<4xf16>) -> tensor<4xf16>",
     "2:3: 'df.send' op cannot send from chip 0 to chip 0"),
    ("return %x", "(%x: tensor<4xf16>) -> tensor<4xf32>",
     "2:3: 'df.return' op returns (tensor<4xf16>) but '@f' returns (tensor<4xf32>)"),
    ("%y = foo %x\nreturn %y", "(%x: tensor<4xf16>) -> tensor<4xf16>",
     "2:8: unknown operation 'foo'"),
    ("%y = add %x, %z\nreturn %y", "(%x: tensor<4xf16>) -> tensor<4xf16>",
     "2:16: use of undefined value '%z'"),
    ("%y = add %x, %x {axis = 1}\nreturn %y", "(%x: tensor<4xf16>) -> tensor<4xf16>",
     "2:20: 'df.add' has no attribute 'axis' (it has 'chip')"),
    ("%y = reshape %x\nreturn %y", "(%x: tensor<4xf16>) -> tensor<4xf16>",
     "2:8: 'df.reshape' needs its result type after ':'"),
])
def test_verifier_rejects_with_exact_message(body, sig, message):
    assert errors(func(body, sig)) == [message]


def test_every_error_of_a_file_is_reported():
    text = func("%a = exp %x\n%b = add %a, %q\n%c = neg %x : tensor<5xi8>\n%d = relu %x\nreturn %d",
                "(%x: tensor<4xi8>) -> tensor<4xi8>")
    assert errors(text) == [
        "2:8: 'df.exp' op 'exp' needs a float element type (f16, bf16 or f32), not i8",
        "3:16: use of undefined value '%q'",
    ]


def test_redefinition_has_a_note():
    from lpu.diagnostics import DiagnosticError
    with pytest.raises(DiagnosticError) as e:
        parse(func("%y = neg %x\n%y = neg %x\nreturn %y", "(%x: tensor<4xf16>) -> tensor<4xf16>"))
    d = e.value.diagnostics[0]
    assert (d.message, d.loc.line, d.notes[0].message, d.notes[0].loc.line) == \
        ("redefinition of value '%y'", 3, "previous definition is here", 2)


def test_binary_ops_broadcast_and_wrap():
    a = rng.integers(-128, 128, (3, 320)).astype(np.int8)
    b = rng.integers(-128, 128, (320,)).astype(np.int8)
    for op, fn in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("max", np.maximum),
                   ("min", np.minimum)]:
        (y,) = run1(f"%y = {op} %a, %b\nreturn %y", "(%a: tensor<3x320xi8>, %b: tensor<320xi8>) -> tensor<3x320xi8>",
                    a=a, b=b)
        assert np.array_equal(y, fn(a.astype(np.int64), b.astype(np.int64)).astype(np.int8)), op


@pytest.mark.parametrize("op,fn", [
    ("exp", np.exp), ("tanh", np.tanh), ("sigmoid", lambda x: 1 / (1 + np.exp(-x))), ("relu", lambda x: np.maximum(x, 0)),
    ("rsqrt", lambda x: 1 / np.sqrt(x)), ("recip", lambda x: 1 / x), ("neg", np.negative), ("abs", np.abs),
    ("silu", lambda x: x / (1 + np.exp(-x))),
    ("gelu", lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
])
@pytest.mark.parametrize("elem,dt,tol", [("f32", np.float32, 1e-6), ("f16", np.float16, 4e-3),
                                         ("bf16", "bfloat16", 3e-2)])
def test_unary_ops(op, fn, elem, dt, tol):
    import ml_dtypes
    dt = np.dtype(ml_dtypes.bfloat16) if dt == "bfloat16" else np.dtype(dt)
    x = (rng.uniform(0.1, 3, 320) * rng.choice([-1, 1], 320)).astype(dt)
    if op == "rsqrt":
        x = np.abs(x)
    (y,) = run1(f"%y = {op} %x\nreturn %y", f"(%x: tensor<320x{elem}>) -> tensor<320x{elem}>".replace("320x", "320x"), x=x)
    assert y.dtype == dt
    want = fn(f64(x))
    assert np.max(np.abs(f64(y) - want) / np.maximum(np.abs(want), 1)) <= tol


def test_elementwise_float_rounds_once_to_nearest_even():
    x = np.array([1.0, 2049.0], np.float16)  # 2049 is not an f16: the constant rounds to 2048
    y = np.array([2 ** -11, 1.0], np.float16)
    (z,) = run1("%z = add %x, %y\nreturn %z", "(%x: tensor<2xf16>, %y: tensor<2xf16>) -> tensor<2xf16>", x=x, y=y)
    assert z.tolist() == [1.0, 2048.0]  # 1 + 2^-11 is a tie: to even (1.0); 2048 + 1 ties to 2048


def test_cast_saturates_and_rounds():
    x = np.array([1.5, 2.5, -3.5, 300.0, -300.0, np.nan], np.float32)
    (y,) = run1("%y = cast %x : tensor<6xi8>\nreturn %y", "(%x: tensor<6xf32>) -> tensor<6xi8>", x=x)
    assert y.tolist() == [2, 2, -4, 127, -128, 0]
    i = np.array([70000, -70000, 5], np.int32)
    (j,) = run1("%y = cast %x : tensor<3xi16>\nreturn %y", "(%x: tensor<3xi32>) -> tensor<3xi16>", x=i)
    assert j.tolist() == [32767, -32768, 5]


def test_quantize_dequantize():
    x = np.array([0.0, 0.26, -0.74, 100.0], np.float32)
    (q, d) = run1("%q = quantize %x {scale = 0.5, zero_point = 3} : tensor<4xi8>\n"
                  "%d = dequantize %q {scale = 0.5, zero_point = 3} : tensor<4xf32>\nreturn %q, %d",
                  "(%x: tensor<4xf32>) -> tensor<4xi8>, tensor<4xf32>", x=x)
    assert q.tolist() == [3, 4, 2, 127]
    assert d.tolist() == [0.0, 0.5, -0.5, 62.0]


def test_matmul_i8_wraps_in_i32():
    a = np.full((1, 4), -128, np.int8)
    w = np.full((4, 2), -128, np.int8)
    (y,) = run1("%y = matmul %a, %w\nreturn %y", "(%a: tensor<1x4xi8>, %w: tensor<4x2xi8>) -> tensor<1x2xi32>", a=a, w=w)
    assert y.tolist() == [[65536, 65536]]


def test_reductions_transpose_reshape_slice_concat():
    x = rng.standard_normal((3, 8)).astype(np.float16)
    (s, m, t, r, sl, c) = run1(
        "%s = reduce_sum %x {axis = 0}\n%m = reduce_max %x\n%t = transpose %x {perm = [1, 0]}\n"
        "%r = reshape %x : tensor<24xf16>\n%sl = slice %x {offsets = [1, 2], sizes = [2, 3]}\n"
        "%c = concat %x, %x {axis = 1}\nreturn %s, %m, %t, %r, %sl, %c",
        "(%x: tensor<3x8xf16>) -> tensor<1x8xf32>, tensor<3x1xf16>, tensor<8x3xf16>, tensor<24xf16>, "
        "tensor<2x3xf16>, tensor<3x16xf16>", x=x)
    assert np.array_equal(s, f64(x).sum(0, keepdims=True).astype(np.float32))
    assert np.array_equal(m, x.max(1, keepdims=True))
    assert np.array_equal(t, x.T) and np.array_equal(r, x.reshape(-1))
    assert np.array_equal(sl, x[1:3, 2:5]) and np.array_equal(c, np.concatenate([x, x], 1))


def test_send_recv_between_chips_and_missing_send():
    x = rng.standard_normal(4).astype(np.float32)
    (y,) = run1("send %x {to = 1}\n%y = recv {from = 0, chip = 1} : tensor<4xf32>\nreturn %y",
                "(%x: tensor<4xf32>) -> tensor<4xf32>", x=x)
    assert np.array_equal(y, x)
    from lpu.diagnostics import DiagnosticError
    with pytest.raises(DiagnosticError) as e:
        run1("%y = recv {from = 1} : tensor<4xf32>\nreturn %y", "(%x: tensor<4xf32>) -> tensor<4xf32>", x=x)
    d = e.value.diagnostics[0]
    assert (d.loc.line, d.message) == (2, "chip 0 receives from chip 1, which has sent nothing it has not received")


def test_loop_with_index_slice():
    x = np.arange(8, dtype=np.int32)
    (y,) = run1("%z = constant {value = 0} : tensor<2xi32>\n"
                "%r = for %i = 0 to 4 iter(%a = %z) : tensor<2xi32> {\n"
                "  %s = slice %x, %i {offsets = [0], sizes = [2], step = [2]}\n  %n = add %a, %s\n  yield %n\n}\n"
                "return %r", "(%x: tensor<8xi32>) -> tensor<2xi32>", x=x)
    assert y.tolist() == [0 + 2 + 4 + 6, 1 + 3 + 5 + 7]


def test_kernel_call_through_a_python_reference():
    text = ('data @a : tensor<320xi8> in MEM_W0 = [0]\nreserve @b : tensor<320xi8> in MEM_E1\n'
            'global kernel @neg {\n  @0 MEM_W0 read.i8 [@a], s0e\n}\n' +
            func("%y = call @neg(%x) {inputs = [@a], outputs = [@b]}\nreturn %y",
                 "(%x: tensor<320xi8>) -> tensor<320xi8>"))
    m = parse(text)
    x = rng.integers(-100, 100, 320).astype(np.int8)

    def neg(sram):
        sram["b"][:] = -sram["a"]
    (y,) = run_function(m, "f", {"x": x}, kernels={"neg": neg})
    assert np.array_equal(y, -x)
