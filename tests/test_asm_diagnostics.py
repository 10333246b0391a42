"""Every diagnostic the assembler can produce, each from a minimal input, checked in full:
file:line:col, message, source line, caret and notes, exactly as ``lpu-as`` prints them.

Each case is the smallest file that triggers exactly one diagnostic (with its notes). The
inputs that name ``.npy`` files find them in a scratch directory made by the ``npy_dir``
fixture. Beyond the table: several errors in one file, the error limit, configurations given
on the command line, and the command line itself (exit status 1, no traceback, no output).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from lpu.asm.assembler import assemble
from lpu.asm.cli import main as as_main
from lpu.diagnostics import DiagnosticError, SourceManager, render

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V1 = os.path.join(ROOT, "arch", "configs", "lpu-v1.toml")


def rendered(text: str, file: str = "t.lpu", **kw) -> str:
    """What lpu-as prints for ``text``: every diagnostic with its source line and caret."""
    sm = SourceManager()
    sm.add(file, text)
    with pytest.raises(DiagnosticError) as e:
        assemble(text, file, **kw)
    return "\n".join(render(d, sm) for d in e.value.diagnostics)


@pytest.fixture
def npy_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # "t.lpu" is relative: load("...") resolves here
    np.save("f64.npy", np.zeros(320))
    np.save("2x160.npy", np.zeros((2, 160), np.int8))
    np.savez("arrays.npz", x=np.zeros(320, np.int8))
    return tmp_path


# (id, source) — H is prepended where the source starts with "+"
H = ('target "lpu-v1"\n'
     'reserve @a : tensor<320xi8> in MEM_W0\n'
     'reserve @b : tensor<320xi8> in MEM_E1\n')
def K(*lines):
    return "+kernel @k {\n" + "".join(f"  {l}\n" for l in lines) + "}\n"
CASES = [
 # --- syntax
 ("syntax_unexpected_token", 'target lpu-v1\n'),
 ("syntax_unexpected_character", 'target "lpu-v1"\nreserve @a : tensor<320xi8> in MEM_W0 ?\n'),
 ("syntax_bad_operand", K("@0 MEM_W0 read.i8 [@a, s0e")),
 ("syntax_instruction_without_mnemonic", K("@0 MEM_W0")),
 ("two_targets", 'target "lpu-v1"\ntarget "lpu-v1"\n'),
 ("syntax_end_of_line", 'target\n'),
 ("syntax_kernel_without_body", 'target "lpu-v1"\nkernel @k'),
 ("syntax_text_after_operands", K("@0 MEM_W0 read.i8 [@a], s0e garbage")),
 # --- data
 ("zero_dimension", 'target "lpu-v1"\nreserve @z : tensor<0x320xi8> in MEM_W0\n'),
 ("unplaced_tensor_in_kernel", 'target "lpu-v1"\ndata @d : tensor<320xi8> = [1]\nkernel @k {\n  @0 MEM_W0 read.i8 [@d], s0e\n}\n'),
 ("at_on_hemisphere", 'target "lpu-v1"\nreserve @z : tensor<320xi8> in MEM_W at 3\n'),
 ("at_past_end", 'target "lpu-v1"\nreserve @z : tensor<320xi16> in MEM_W0 at 8191\n'),
 ("unknown_slice", 'target "lpu-v1"\nreserve @z : tensor<320xi8> in MEM_W44\n'),
 ("slice_not_mem", 'target "lpu-v1"\nreserve @z : tensor<320xi8> in VXM\n'),
 ("tensor_too_big", 'target "lpu-v1"\nreserve @z : tensor<8193x320xi8> in MEM_E\n'),
 ("load_missing", 'target "lpu-v1"\ndata @z : tensor<320xi8> in MEM_W0 = load("missing.npy")\n'),
 ("load_dtype", 'target "lpu-v1"\ndata @z : tensor<320xi8> in MEM_W0 = load("f64.npy")\n'),
 ("load_shape", 'target "lpu-v1"\ndata @z : tensor<320xi8> in MEM_W0 = load("2x160.npy")\n'),
 ("load_npz", 'target "lpu-v1"\ndata @z : tensor<320xi8> in MEM_W0 = load("arrays.npz")\n'),
 ("hex_length", 'target "lpu-v1"\ndata @z : tensor<2xi16> in MEM_W0 = hex"0102"\n'),
 ("list_count", 'target "lpu-v1"\ndata @z : tensor<2x2xi8> in MEM_W0 = [[1, 2], [3]]\n'),
 ("list_value_range", 'target "lpu-v1"\ndata @z : tensor<3xi8> in MEM_W0 = [1, -129, 3]\n'),
 ("list_float_for_int", 'target "lpu-v1"\ndata @z : tensor<2xi32> in MEM_W0 = [1, 2.5]\n'),
 ("redefinition", H + 'reserve @a : tensor<320xi8> in MEM_W1\n'),
 ("kernel_redefines_tensor", H + 'kernel @a {\n}\n'),
 ("extern_twice", 'target "lpu-v1"\nextern @x\nextern @x\n'),
 ("extern_and_defined", H + 'extern @a\n'),
 # --- instructions
 ("unknown_unit", K("@0 MEM_W9x read.i8 [@a], s0e")),
 ("unknown_mnemonic", K("@0 MEM_W0 raed.i8 [@a], s0e")),
 ("wrong_unit_kind", K("@0 MEM_W0 add.i8 s0e, s1e, s2e")),
 ("wrong_unit_kind_mxm", K("@0 VXM.3 mm.i8 s0e, acc0, set")),
 ("unknown_type", K("@0 MEM_W0 read.q8 [@a], s0e")),
 ("untyped_given_type", K("@0 MEM_W0 nop.i8 3")),
 ("cvt_one_type", K("@0 VXM.0 cvt.i32 s0e, s4e")),
 ("too_many_types", K("@0 MEM_W0 read.i8.i8 [@a], s0e")),
 ("type_not_taken", K("@0 VXM.0 exp.i8 s0e, s1e")),
 ("no_such_option", K("@0 MEM_W0 read.i8 [@a], s0e, step=2")),
 ("flag_as_option", K("@0 MXM_W0 acc.i32 acc0, s0e, clear=1")),
 ("too_few_operands", K("@0 MEM_W0 read.i8 [@a]")),
 ("too_many_operands", K("@0 MEM_W0 read.i8 [@a], s0e, s1e")),
 ("iw_takes_none", K("@0 MXM_W0 iw s0e")),
 ("expected_stream", K("@0 VXM.0 mov.i8 @a, s1e")),
 ("bad_stream_name", K("@0 VXM.0 mov.i8 s1x, s1e")),
 ("stream_index_range", K("@0 VXM.0 mov.i8 s32e, s1e")),
 ("immediate_range", K("@0 VXM.0 add.i8 s0e, 300, s2e")),
 ("immediate_float_for_int", K("@0 VXM.0 add.i16 s0e, 1.5, s2e")),
 ("immediate_beyond_f32", K("@0 VXM.0 add.f32 s0e, 1e39, s4e")),
 ("immediate_int_too_big_for_float", K("@0 VXM.0 add.f32 s0e, 1000000000000000000000000000000000000000, s4e")),
 ("address_range", K("@0 MEM_W0 read.i8 [8192], s0e")),
 ("expected_address", K("@0 MEM_W0 read.i8 @a, s0e")),
 ("lanes_range", K("@0 SXM_W shift.i8 s0e, 320, s1e")),
 ("lanes_not_integer", K("@0 SXM_W rotate.i8 s0e, 1.5, s1e")),
 ("rows_range", K("@0 MXM_W0 lw.f16 s0w, 9")),
 ("acc_expected", K("@0 MXM_W0 mm.i8 s0e, 5, set")),
 ("acc_range", K("@0 MXM_W0 mm.i8 s0e, acc64, set")),
 ("mode_expected", K("@0 MXM_W0 mm.i8 s0e, acc0, sum")),
 ("link_expected", K("@0 C2C_E send.i8 s0e, 3")),
 ("link_not_here", K("@0 C2C_E send.i8 s0e, L3")),
 ("table_expected", K("@0 SXM_W permute.i8 s0e, [@a], s1e")),
 ("stride_range", K("@0 MEM_W0 read.i8 [@a], s0e, stride=40000")),
 ("shift_range", K("@0 VXM.0 cvt.i32.i8 s0e, s4e, shift=32")),
 ("nop_zero", K("@0 MEM_W0 nop 0")),
 ("repeat_count_range", K("@0 MEM_W0 read.i8 [@a], s0e", "@1 MEM_W0 repeat 65536, 1")),
 ("barrier_range", K("@0 MEM_W0 notify 256")),
 ("misaligned_group", K("@0 MEM_W0 read.i16 [@a], s1e")),
 ("misaligned_group_cvt_dst", K("@0 VXM.0 cvt.i8.f32 s0e, s2e")),
 ("group_past_last_stream", K("@0 MXM_W0 lw.f16 s18w, 8")),
 ("undefined_symbol", K("@0 MEM_W0 read.i8 [@aa], s0e")),
 ("undefined_symbol_no_hint", K("@0 MEM_W0 read.i8 [@zzz], s0e")),
 ("kernel_as_tensor", H + "kernel @j {\n}\n" + K("@0 MEM_W0 read.i8 [@j], s0e")[1:]),
 ("lane_map_too_small", H + 'reserve @m : tensor<4xi8> in MEM_E\n' + K("@0 SXM_W permute.i8 s0e, @m, s1e")[1:]),
 ("placement_mismatch", K("@0 MEM_E1 read.i8 [@a], s0e")),
 ("offset_outside", K("@0 MEM_W0 read.i8 [@a + 1], s0e")),
 ("offset_negative", K("@0 MEM_W0 read.i8 [@a - 1], s0e")),
 # --- queues
 ("cycles_backwards", K("@5 MEM_W0 read.i8 [@a], s0e", "@3 MEM_W0 read.i8 [@a], s1e")),
 ("two_in_one_cycle", K("@0 MEM_W0 read.i8 [@a], s0e", "@0 MEM_W0 read.i8 [@a], s1e")),
 ("repeat_first", K("@2 MEM_W0 repeat 2, 3")),
 ("repeat_after_nop", K("@0 MEM_W0 read.i8 [@a], s0e", "@1 MEM_W0 nop 2", "@3 MEM_W0 repeat 2, 3")),
 ("repeat_wrong_cycle", K("@0 MEM_W0 read.i8 [@a], s0e", "@1 MEM_W0 repeat 2, 3")),
 ("busy_after_repeat", K("@0 MEM_W0 read.i8 [@a], s0e", "@3 MEM_W0 repeat 2, 3", "@5 MEM_W0 read.i8 [@a], s1e")),
 ("busy_after_nop", K("@0 MEM_W0 nop 10", "@4 MEM_W0 read.i8 [@a], s0e")),
 ("kernel_too_long", K("@4294967294 MEM_W0 read.i8 [@a], s0e")),
 # --- timing
 ("empty_read_early", K("@0 MEM_W0 read.i8 [@a], s0e", "@4 MEM_E1 write.i8 [@b], s0e")),
 ("empty_read_late", K("@0 MEM_W0 read.i8 [@a], s0e", "@6 MEM_E1 write.i8 [@b], s0e")),
 ("empty_read_wrong_direction", K("@0 MEM_W0 read.i8 [@a], s0w", "@5 MEM_E1 write.i8 [@b], s0w")),
 ("empty_read_no_producer", K("@3 VXM.0 mov.i8 s7e, s8e")),
 ("write_conflict", K("@0 MEM_W0 read.i8 [@a], s0e", "@3 VXM.0 mov.i8 s0e, s5e", "@3 VXM.1 neg.i8 s0e, s5e")),
 ("misaligned_group_read", H + 'reserve @w : tensor<320xi16> in MEM_W0\n' + K(
     "@0 MEM_W0 read.i16 [@w], s0e", "@3 VXM.0 mov.i8 s1e, s9e")[1:]),
 ("mixed_group_read", H + 'reserve @x : tensor<320xi8> in MEM_W1\nreserve @w : tensor<320xi16> in MEM_E1\n' + K(
     "@0 MEM_W1 read.i8 [@x], s1e", "@1 MEM_W0 read.i8 [@a], s0e", "@6 MEM_E1 write.i16 [@w], s0e")[1:]),
]

EXPECTED = {
    "syntax_unexpected_token": """\
t.lpu:1:8: error: unexpected 'lpu', expected a string
target lpu-v1
       ^~~""",
    "syntax_unexpected_character": """\
t.lpu:2:39: error: unexpected character '?'
reserve @a : tensor<320xi8> in MEM_W0 ?
                                      ^""",
    "syntax_bad_operand": """\
t.lpu:5:21: error: unexpected '[@a', expected an operand
  @0 MEM_W0 read.i8 [@a, s0e
                    ^~~""",
    "syntax_instruction_without_mnemonic": """\
t.lpu:5:12: error: unexpected end of line, expected a mnemonic
  @0 MEM_W0
           ^""",
    "syntax_end_of_line": """\
t.lpu:1:7: error: unexpected end of line, expected a string
target
      ^""",
    "syntax_kernel_without_body": """\
t.lpu:2:10: error: unexpected end of line, expected a kernel body '{ ... }'
kernel @k
         ^""",
    "syntax_text_after_operands": """\
t.lpu:5:31: error: unexpected 'garbage', expected ',' or end of line
  @0 MEM_W0 read.i8 [@a], s0e garbage
                              ^~~~~~~""",
    "two_targets": """\
t.lpu:2:8: error: a file has one 'target' directive
target "lpu-v1"
       ^~~~~~
t.lpu:1:8: note: the first is here
target "lpu-v1"
       ^~~~~~""",
    "zero_dimension": """\
t.lpu:2:14: error: a tensor dimension must be at least 1
reserve @z : tensor<0x320xi8> in MEM_W0
             ^~~~~~~~~~~~~~~~""",
    "at_on_hemisphere": """\
t.lpu:2:32: error: 'at' needs a slice, not the hemisphere MEM_W
reserve @z : tensor<320xi8> in MEM_W at 3
                               ^~~~~""",
    "at_past_end": """\
t.lpu:2:33: error: @z at address 8191 needs 2 words, past the end of MEM_W0 (8192 words)
reserve @z : tensor<320xi16> in MEM_W0 at 8191
                                ^~~~~~""",
    "unknown_slice": """\
t.lpu:2:32: error: unknown MEM slice 'MEM_W44' (a slice such as MEM_W3, or MEM_W/MEM_E for any slice of a hemisphere); did you mean 'MEM_W4'?
reserve @z : tensor<320xi8> in MEM_W44
                               ^~~~~~~""",
    "slice_not_mem": """\
t.lpu:2:32: error: unknown MEM slice 'VXM' (a slice such as MEM_W3, or MEM_W/MEM_E for any slice of a hemisphere)
reserve @z : tensor<320xi8> in VXM
                               ^~~""",
    "tensor_too_big": """\
t.lpu:2:9: error: @z needs 8193 words, more than a slice holds (8192)
reserve @z : tensor<8193x320xi8> in MEM_E
        ^~""",
    "load_missing": """\
t.lpu:2:43: error: cannot load 'missing.npy': No such file or directory
data @z : tensor<320xi8> in MEM_W0 = load("missing.npy")
                                          ^~~~~~~~~~~~~""",
    "load_dtype": """\
t.lpu:2:43: error: 'f64.npy' holds float64 elements, but @z is i8
data @z : tensor<320xi8> in MEM_W0 = load("f64.npy")
                                          ^~~~~~~~~""",
    "load_shape": """\
t.lpu:2:43: error: '2x160.npy' has shape 2x160, but @z is 320
data @z : tensor<320xi8> in MEM_W0 = load("2x160.npy")
                                          ^~~~~~~~~~~""",
    "load_npz": """\
t.lpu:2:43: error: cannot load 'arrays.npz': not a .npy file (an .npz archive holds several arrays)
data @z : tensor<320xi8> in MEM_W0 = load("arrays.npz")
                                          ^~~~~~~~~~~~""",
    "hex_length": """\
t.lpu:2:37: error: hex contents of @z must be 4 bytes (2 i16 elements), not 2
data @z : tensor<2xi16> in MEM_W0 = hex"0102"
                                    ^""",
    "list_count": """\
t.lpu:2:38: error: @z has 4 elements, but 3 values are given
data @z : tensor<2x2xi8> in MEM_W0 = [[1, 2], [3]]
                                     ^~~~~~~~~~~~~""",
    "list_value_range": """\
t.lpu:2:40: error: value -129 does not fit i8 (-128 to 127)
data @z : tensor<3xi8> in MEM_W0 = [1, -129, 3]
                                       ^~~~""",
    "list_float_for_int": """\
t.lpu:2:41: error: value 2.5 is not an integer, but @z is i32
data @z : tensor<2xi32> in MEM_W0 = [1, 2.5]
                                        ^~~""",
    "redefinition": """\
t.lpu:4:9: error: redefinition of '@a'
reserve @a : tensor<320xi8> in MEM_W1
        ^~
t.lpu:2:9: note: previous definition is here
reserve @a : tensor<320xi8> in MEM_W0
        ^~""",
    "kernel_redefines_tensor": """\
t.lpu:4:8: error: redefinition of '@a'
kernel @a {
       ^~
t.lpu:2:9: note: previous definition is here
reserve @a : tensor<320xi8> in MEM_W0
        ^~""",
    "extern_twice": """\
t.lpu:3:8: error: '@x' is declared extern twice
extern @x
       ^~""",
    "extern_and_defined": """\
t.lpu:4:8: error: '@a' is declared extern but defined in this file
extern @a
       ^~
t.lpu:2:9: note: the definition is here
reserve @a : tensor<320xi8> in MEM_W0
        ^~""",
    "unknown_unit": """\
t.lpu:5:6: error: unknown unit 'MEM_W9x'; did you mean 'MEM_W9'?
  @0 MEM_W9x read.i8 [@a], s0e
     ^~~~~~~""",
    "unknown_mnemonic": """\
t.lpu:5:13: error: unknown mnemonic 'raed.i8'; did you mean 'read'?
  @0 MEM_W0 raed.i8 [@a], s0e
            ^~~~~~~""",
    "wrong_unit_kind": """\
t.lpu:5:13: error: 'add' cannot execute on MEM_W0 (a MEM slice); it runs on VXM ALUs
  @0 MEM_W0 add.i8 s0e, s1e, s2e
            ^~~~~~""",
    "wrong_unit_kind_mxm": """\
t.lpu:5:12: error: 'mm' cannot execute on VXM.3 (a VXM ALU); it runs on MXM planes
  @0 VXM.3 mm.i8 s0e, acc0, set
           ^~~~~""",
    "unknown_type": """\
t.lpu:5:13: error: unknown element type 'q8' in 'read.q8' (types: i8, i16, i32, f16, bf16, f32)
  @0 MEM_W0 read.q8 [@a], s0e
            ^~~~~~~""",
    "untyped_given_type": """\
t.lpu:5:13: error: 'nop' takes no element type
  @0 MEM_W0 nop.i8 3
            ^~~~~~""",
    "cvt_one_type": """\
t.lpu:5:12: error: 'cvt' needs two element types, from and to: cvt.i32.i8
  @0 VXM.0 cvt.i32 s0e, s4e
           ^~~~~~~""",
    "too_many_types": """\
t.lpu:5:13: error: 'read.i8.i8': too many element types
  @0 MEM_W0 read.i8.i8 [@a], s0e
            ^~~~~~~~~~""",
    "type_not_taken": """\
t.lpu:5:12: error: 'exp' does not take i8 (it takes f16, bf16, f32)
  @0 VXM.0 exp.i8 s0e, s1e
           ^~~~~~""",
    "no_such_option": """\
t.lpu:5:32: error: 'read' has no option 'step' (options: stride)
  @0 MEM_W0 read.i8 [@a], s0e, step=2
                               ^~~~~~""",
    "flag_as_option": """\
t.lpu:5:32: error: 'clear' is a flag of 'acc': write it bare, without a value
  @0 MXM_W0 acc.i32 acc0, s0e, clear=1
                               ^~~~~~~""",
    "too_few_operands": """\
t.lpu:5:13: error: 'read' takes 2 operands (addr, dst), 1 given
  @0 MEM_W0 read.i8 [@a]
            ^~~~~~~""",
    "too_many_operands": """\
t.lpu:5:32: error: 'read' takes 2 operands (addr, dst), 3 given
  @0 MEM_W0 read.i8 [@a], s0e, s1e
                               ^~~""",
    "iw_takes_none": """\
t.lpu:5:16: error: 'iw' takes 0 operands (none), 1 given
  @0 MXM_W0 iw s0e
               ^~~""",
    "expected_stream": """\
t.lpu:5:19: error: expected a stream (s<n>e or s<n>w), not '@a'
  @0 VXM.0 mov.i8 @a, s1e
                  ^~""",
    "bad_stream_name": """\
t.lpu:5:19: error: expected a stream (s<n>e or s<n>w), not 's1x'
  @0 VXM.0 mov.i8 s1x, s1e
                  ^~~""",
    "stream_index_range": """\
t.lpu:5:19: error: stream index 32 out of range (the chip has s0..s31 in each direction)
  @0 VXM.0 mov.i8 s32e, s1e
                  ^~~~""",
    "immediate_range": """\
t.lpu:5:24: error: immediate 300 out of range for i8 (-128 to 127)
  @0 VXM.0 add.i8 s0e, 300, s2e
                       ^~~""",
    "immediate_float_for_int": """\
t.lpu:5:25: error: expected an integer immediate for i16, not 1.5
  @0 VXM.0 add.i16 s0e, 1.5, s2e
                        ^~~""",
    "immediate_beyond_f32": """\
t.lpu:5:25: error: immediate 1e+39 out of range for f32 (beyond f32)
  @0 VXM.0 add.f32 s0e, 1e39, s4e
                        ^~~~""",
    "immediate_int_too_big_for_float": """\
t.lpu:5:25: error: immediate 1000000000000000000000000000000000000000 out of range for f32 (beyond f32)
  @0 VXM.0 add.f32 s0e, 1000000000000000000000000000000000000000, s4e
                        ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~""",
    "address_range": """\
t.lpu:5:21: error: address 8192 out of range (a slice has 8192 words)
  @0 MEM_W0 read.i8 [8192], s0e
                    ^~~~~~""",
    "expected_address": """\
t.lpu:5:21: error: expected an SRAM address ([@symbol + offset] or [address]), not '@a'
  @0 MEM_W0 read.i8 @a, s0e
                    ^~""",
    "lanes_range": """\
t.lpu:5:26: error: lane count 320 out of range (-319 to 319)
  @0 SXM_W shift.i8 s0e, 320, s1e
                         ^~~""",
    "lanes_not_integer": """\
t.lpu:5:27: error: expected a lane count, not '1.5'
  @0 SXM_W rotate.i8 s0e, 1.5, s1e
                          ^~~""",
    "rows_range": """\
t.lpu:5:25: error: row count 9 out of range for f16 (1 to 8 rows a cycle)
  @0 MXM_W0 lw.f16 s0w, 9
                        ^""",
    "acc_expected": """\
t.lpu:5:24: error: expected an accumulator slot (acc<n>), not '5'
  @0 MXM_W0 mm.i8 s0e, 5, set
                       ^""",
    "acc_range": """\
t.lpu:5:24: error: accumulator slot 64 out of range (acc0 to acc63)
  @0 MXM_W0 mm.i8 s0e, acc64, set
                       ^~~~~""",
    "mode_expected": """\
t.lpu:5:30: error: expected 'set' or 'add', not 'sum'
  @0 MXM_W0 mm.i8 s0e, acc0, sum
                             ^~~""",
    "link_expected": """\
t.lpu:5:25: error: expected a link (L<n>) or a peer chip (@name), not '3'
  @0 C2C_E send.i8 s0e, 3
                        ^""",
    "link_not_here": """\
t.lpu:5:25: error: link L3 is not at C2C_E (it has L8-L15)
  @0 C2C_E send.i8 s0e, L3
                        ^~""",
    "table_expected": """\
t.lpu:5:28: error: expected a lane-map tensor (@name), not '[@a]'
  @0 SXM_W permute.i8 s0e, [@a], s1e
                           ^~~~""",
    "stride_range": """\
t.lpu:5:32: error: stride 40000 out of range (-32768 to 32767)
  @0 MEM_W0 read.i8 [@a], s0e, stride=40000
                               ^~~~~~~~~~~~""",
    "shift_range": """\
t.lpu:5:33: error: shift 32 out of range (0 to 31)
  @0 VXM.0 cvt.i32.i8 s0e, s4e, shift=32
                                ^~~~~~~~""",
    "nop_zero": """\
t.lpu:5:17: error: n 0 out of range (1 to 4294967295)
  @0 MEM_W0 nop 0
                ^""",
    "repeat_count_range": """\
t.lpu:6:20: error: n 65536 out of range (1 to 65535)
  @1 MEM_W0 repeat 65536, 1
                   ^~~~~""",
    "barrier_range": """\
t.lpu:5:20: error: barrier 256 out of range (0 to 255)
  @0 MEM_W0 notify 256
                   ^~~""",
    "misaligned_group": """\
t.lpu:5:28: error: misaligned stream group: an i16 vector needs a group of 2 streams starting at a multiple of 2, not s1e
  @0 MEM_W0 read.i16 [@a], s1e
                           ^~~""",
    "misaligned_group_cvt_dst": """\
t.lpu:5:28: error: misaligned stream group: an f32 vector needs a group of 4 streams starting at a multiple of 4, not s2e
  @0 VXM.0 cvt.i8.f32 s0e, s2e
                           ^~~""",
    "group_past_last_stream": """\
t.lpu:5:20: error: stream group s18w..s33w runs past s31w
  @0 MXM_W0 lw.f16 s18w, 8
                   ^~~~""",
    "undefined_symbol": """\
t.lpu:5:21: error: use of undefined symbol '@aa' (define it with 'data' or 'reserve', or declare it 'extern'); did you mean '@a'?
  @0 MEM_W0 read.i8 [@aa], s0e
                    ^~~~~""",
    "undefined_symbol_no_hint": """\
t.lpu:5:21: error: use of undefined symbol '@zzz' (define it with 'data' or 'reserve', or declare it 'extern')
  @0 MEM_W0 read.i8 [@zzz], s0e
                    ^~~~~~""",
    "kernel_as_tensor": """\
t.lpu:7:21: error: '@j' is a kernel, not an SRAM tensor
  @0 MEM_W0 read.i8 [@j], s0e
                    ^~~~""",
    "lane_map_too_small": """\
t.lpu:6:28: error: lane map '@m' must be an integer tensor of at least 320 elements, not 4xi8
  @0 SXM_W permute.i8 s0e, @m, s1e
                           ^~""",
    "placement_mismatch": """\
t.lpu:5:21: error: '@a' is placed in MEM_W0, but this instruction runs on MEM_E1; a MEM instruction addresses its own slice
  @0 MEM_E1 read.i8 [@a], s0e
                    ^~~~
t.lpu:2:9: note: '@a' is defined here
reserve @a : tensor<320xi8> in MEM_W0
        ^~""",
    "offset_outside": """\
t.lpu:5:21: error: offset 1 is outside '@a' (1 word; an i8 vector takes 1)
  @0 MEM_W0 read.i8 [@a + 1], s0e
                    ^~~~~~~~""",
    "offset_negative": """\
t.lpu:5:21: error: offset -1 is outside '@a' (1 word; an i8 vector takes 1)
  @0 MEM_W0 read.i8 [@a - 1], s0e
                    ^~~~~~~~""",
    "cycles_backwards": """\
t.lpu:6:3: error: cycles go backwards in queue MEM_W0: cycle 3 after cycle 5
  @3 MEM_W0 read.i8 [@a], s1e
  ^~
t.lpu:5:3: note: the previous instruction of MEM_W0 is here
  @5 MEM_W0 read.i8 [@a], s0e
  ^~""",
    "two_in_one_cycle": """\
t.lpu:6:3: error: two instructions in queue MEM_W0 in cycle 0
  @0 MEM_W0 read.i8 [@a], s1e
  ^~
t.lpu:5:3: note: the other instruction is here
  @0 MEM_W0 read.i8 [@a], s0e
  ^~""",
    "repeat_first": """\
t.lpu:5:3: error: 'repeat' must follow the instruction it re-issues
  @2 MEM_W0 repeat 2, 3
  ^~""",
    "repeat_after_nop": """\
t.lpu:7:3: error: 'repeat' must follow the instruction it re-issues
  @3 MEM_W0 repeat 2, 3
  ^~""",
    "repeat_wrong_cycle": """\
t.lpu:6:3: error: 'repeat 2, 3' re-issues the instruction of cycle 0 first at cycle 3: write it there, not at cycle 1
  @1 MEM_W0 repeat 2, 3
  ^~
t.lpu:5:3: note: the instruction it repeats is here
  @0 MEM_W0 read.i8 [@a], s0e
  ^~""",
    "busy_after_repeat": """\
t.lpu:7:3: error: queue MEM_W0 is busy until cycle 7; cycle 5 is too early
  @5 MEM_W0 read.i8 [@a], s1e
  ^~
t.lpu:6:3: note: it is busy because of this instruction
  @3 MEM_W0 repeat 2, 3
  ^~""",
    "busy_after_nop": """\
t.lpu:6:3: error: queue MEM_W0 is busy until cycle 10; cycle 4 is too early
  @4 MEM_W0 read.i8 [@a], s0e
  ^~
t.lpu:5:3: note: it is busy because of this instruction
  @0 MEM_W0 nop 10
  ^~""",
    "kernel_too_long": """\
t.lpu:4:8: error: kernel @k is 4294967297 cycles long; at most 4294967295 cycles fit an object
kernel @k {
       ^~""",
    "empty_read_early": """\
t.lpu:6:28: error: no value on s0e at MEM_E1 (position 49) in cycle 4
  @4 MEM_E1 write.i8 [@b], s0e
                           ^~~
t.lpu:5:3: note: the nearest value on s0e, written here in cycle 0, passes MEM_E1 (position 49) in cycle 5
  @0 MEM_W0 read.i8 [@a], s0e
  ^~""",
    "empty_read_late": """\
t.lpu:6:28: error: no value on s0e at MEM_E1 (position 49) in cycle 6
  @6 MEM_E1 write.i8 [@b], s0e
                           ^~~
t.lpu:5:3: note: the nearest value on s0e, written here in cycle 0, passes MEM_E1 (position 49) in cycle 5
  @0 MEM_W0 read.i8 [@a], s0e
  ^~""",
    "empty_read_wrong_direction": """\
t.lpu:6:28: error: no value on s0w at MEM_E1 (position 49) in cycle 5
  @5 MEM_E1 write.i8 [@b], s0w
                           ^~~""",
    "empty_read_no_producer": """\
t.lpu:5:19: error: no value on s7e at VXM (position 47) in cycle 3
  @3 VXM.0 mov.i8 s7e, s8e
                  ^~~""",
    "write_conflict": """\
t.lpu:7:3: error: write conflict: two values land on s5e at VXM (position 47) in cycle 5
  @3 VXM.1 neg.i8 s0e, s5e
  ^~
t.lpu:6:3: note: the other value is written here (issued in cycle 3)
  @3 VXM.0 mov.i8 s0e, s5e
  ^~""",
    "misaligned_group_read": """\
t.lpu:7:19: error: misaligned group read: s1e read at VXM in cycle 3, but the value there was written as s0e..s1e
  @3 VXM.0 mov.i8 s1e, s9e
                  ^~~
t.lpu:6:3: note: the value is written here
  @0 MEM_W0 read.i16 [@w], s0e
  ^~""",
    "unplaced_tensor_in_kernel": """\
t.lpu:4:21: error: '@d' has no placement, so a kernel cannot address it; place it in a slice ('in MEM_W3') or leave it to the dataflow level
  @0 MEM_W0 read.i8 [@d], s0e
                    ^~~~
t.lpu:2:6: note: '@d' is defined here
data @d : tensor<320xi8> = [1]
     ^~""",
    "mixed_group_read": """\
t.lpu:9:29: error: misaligned group read: the streams of s0e..s1e at MEM_E1 in cycle 6 hold parts of different values
  @6 MEM_E1 write.i16 [@w], s0e
                            ^~~
t.lpu:7:3: note: one of them is written here
  @0 MEM_W1 read.i8 [@x], s1e
  ^~""",
}


def _text(src: str) -> str:
    return H + src[1:] if src.startswith("+") else src


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_diagnostic(case, npy_dir):
    src = dict(CASES)[case]
    assert rendered(_text(src)) == EXPECTED[case]


def test_every_case_has_its_expected_text():
    assert sorted(c[0] for c in CASES) == sorted(EXPECTED) and len(CASES) == len(dict(CASES))


# --- more than one error ---------------------------------------------------------------------------
def test_all_errors_of_a_file_are_reported_in_order():
    text = (H + "reserve @z : tensor<320xi8> in MEM_W44\n"
            "kernel @k {\n"
            "  @0 MEM_W0 read.i8 [@a], s33e\n"
            "  @0 VXM.0 frob.i8 s0e, s1e\n"
            "  @1 MEM_E1 write.i8 [@nowhere], s0e\n"
            "}\n")
    assert rendered(text) == """\
t.lpu:4:32: error: unknown MEM slice 'MEM_W44' (a slice such as MEM_W3, or MEM_W/MEM_E for any slice of a hemisphere); did you mean 'MEM_W4'?
reserve @z : tensor<320xi8> in MEM_W44
                               ^~~~~~~
t.lpu:6:27: error: stream index 33 out of range (the chip has s0..s31 in each direction)
  @0 MEM_W0 read.i8 [@a], s33e
                          ^~~~
t.lpu:7:12: error: unknown mnemonic 'frob.i8'
  @0 VXM.0 frob.i8 s0e, s1e
           ^~~~~~~
t.lpu:8:22: error: use of undefined symbol '@nowhere' (define it with 'data' or 'reserve', or declare it 'extern')
  @1 MEM_E1 write.i8 [@nowhere], s0e
                     ^~~~~~~~~~"""


def test_timing_errors_of_every_kernel_are_reported():
    body = "  @0 MEM_W0 read.i8 [@a], s0e\n  @4 MEM_E1 write.i8 [@b], s0e\n}\n"
    out = rendered(H + "kernel @k1 {\n" + body + "kernel @k2 {\n" + body)
    assert out.count("error: no value on s0e at MEM_E1 (position 49) in cycle 4") == 2
    assert "t.lpu:6:28: error:" in out and "t.lpu:10:28: error:" in out


def test_timing_is_checked_only_once_the_file_is_otherwise_clean():
    """A static error makes the stream-timing check moot (the schedule it would check is not the
    one the programmer meant), so only the static error is reported."""
    text = H + "kernel @k {\n  @0 MEM_W0 read.i8 [@a], s0e\n  @4 MEM_E1 write.i8 [@b], s0e\n  @9 VXM.0 frob\n}\n"
    out = rendered(text)
    assert "unknown mnemonic 'frob'" in out and "no value" not in out


def test_error_limit():
    text = 'target "lpu-v1"\n' + "?\n" * 25
    lines = rendered(text).splitlines()
    errors = [l for l in lines if ": error: " in l or l.startswith("error: ")]
    assert len(errors) == 21
    assert errors[0] == "t.lpu:2:1: error: unexpected character '?'"
    assert errors[19] == "t.lpu:21:1: error: unexpected character '?'"
    assert lines[-1] == "error: too many errors emitted, stopping now"


def test_missing_closing_brace_says_so():
    out = rendered('target "lpu-v1"\nkernel @k {\n  @0 MEM_W0 nop 1\n')
    assert out.splitlines()[:3] == ["t.lpu:2:11: error: no '}' closes this kernel body", "kernel @k {",
                                    "          ^"]


# --- configurations --------------------------------------------------------------------------------
def test_unknown_target():
    assert rendered('target "lpu-v9"\n') == """\
t.lpu:1:8: error: unknown target 'lpu-v9' (built in: lpu-v1; or pass a configuration file)
target "lpu-v9"
       ^~~~~~~~"""


def _variant(tmp_path, name: str) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(open(V1, encoding="utf-8").read().replace('name = "lpu-v1"', f'name = "{name}"'),
                    encoding="utf-8")
    return str(path)


def test_config_given_must_match_target(tmp_path):
    cfg = _variant(tmp_path, "lpu-small")
    assert rendered('target "lpu-v1"\n', config=cfg) == """\
t.lpu:1:8: error: this file targets 'lpu-v1', but the configuration given is 'lpu-small'
target "lpu-v1"
       ^~~~~~~~"""


def test_config_given_that_matches_is_used(tmp_path):
    cfg = _variant(tmp_path, "lpu-small")
    prog = assemble('target "lpu-small"\nreserve @a : tensor<320xi8> in MEM_W0\n', "t.lpu", cfg)
    assert prog.config.name == "lpu-small" and prog.tensors[0].words == 1


def test_config_words_limit_comes_from_the_configuration(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(open(V1, encoding="utf-8").read().replace('name = "lpu-v1"', 'name = "tiny"')
                    .replace("words = 8192 ", "words = 16 "), encoding="utf-8")
    text = 'target "tiny"\nreserve @a : tensor<320xi8> in MEM_W0\nkernel @k {\n  @0 MEM_W0 read.i8 [16], s0e\n}\n'
    assert rendered(text, config=str(path)) == """\
t.lpu:4:21: error: address 16 out of range (a slice has 16 words)
  @0 MEM_W0 read.i8 [16], s0e
                    ^~~~"""


# --- the command line --------------------------------------------------------------------------------
BAD = H + "kernel @k {\n  @0 MEM_W0 read.i8 [@a], s0e\n  @4 MEM_E1 write.i8 [@b], s0e\n}\n"


def test_cli_prints_diagnostics_and_exits_1(tmp_path, capsys):
    src = tmp_path / "bad.lpu"
    src.write_text(BAD, encoding="utf-8")
    out = tmp_path / "bad.o"
    assert as_main([str(src), "-o", str(out)]) == 1
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err == f"""\
{src}:6:28: error: no value on s0e at MEM_E1 (position 49) in cycle 4
  @4 MEM_E1 write.i8 [@b], s0e
                           ^~~
{src}:5:3: note: the nearest value on s0e, written here in cycle 0, passes MEM_E1 (position 49) in cycle 5
  @0 MEM_W0 read.i8 [@a], s0e
  ^~
"""
    assert not out.exists()


def test_cli_error_leaves_an_existing_output_alone(tmp_path):
    src = tmp_path / "bad.lpu"
    src.write_text(BAD, encoding="utf-8")
    out = tmp_path / "keep.o"
    out.write_bytes(b"old")
    assert as_main([str(src), "-o", str(out)]) == 1
    assert out.read_bytes() == b"old"


def test_cli_missing_input(tmp_path, capsys):
    assert as_main([str(tmp_path / "nope.lpu")]) == 1
    assert capsys.readouterr().err == f"{tmp_path / 'nope.lpu'}: error: cannot read '{tmp_path / 'nope.lpu'}': " \
                                      "No such file or directory\n"


def test_cli_not_utf8(tmp_path, capsys):
    src = tmp_path / "bin.lpu"
    src.write_bytes(b"target \xff\n")
    assert as_main([str(src)]) == 1
    assert capsys.readouterr().err == f"{src}: error: '{src}' is not UTF-8 text (invalid start byte at byte 7)\n"


def test_cli_usage_error_exits_1(capsys):
    with pytest.raises(SystemExit) as e:
        as_main([])
    assert e.value.code == 1
    assert "lpu-as: error: the following arguments are required: input" in capsys.readouterr().err


def test_cli_subprocess_stdin_diagnostics(tmp_path):
    """From standard input the file is called <stdin>, and its lines are still shown."""
    p = subprocess.run([sys.executable, "-m", "lpu.asm.cli", "-", "-o", str(tmp_path / "x.o")], input=BAD,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    assert p.stderr.splitlines()[:3] == [
        "<stdin>:6:28: error: no value on s0e at MEM_E1 (position 49) in cycle 4",
        "  @4 MEM_E1 write.i8 [@b], s0e",
        "                           ^~~"]


# --- regressions found by the fuzzer --------------------------------------------------------------
def test_leading_zeros_are_decimal():
    """int(text, 0) rejects "08": every integer literal crashed the assembler with a ValueError."""
    text = ('target "lpu-v1"\nreserve @a : tensor<2x320xi8> in MEM_W0 at 010\n'
            'data @l : tensor<2xi8> in MEM_W1 = [007, -08]\n'
            'kernel @k {\n  @0 MEM_W0 read.i8 [@a + 01], s0e\n  @1 MEM_W0 nop 09\n  @10 MEM_W1 read.i8 [08], s1e\n}\n')
    prog = assemble(text, "t.lpu")
    assert prog.tensors[0].placement.address == 10
    assert prog.kernels[0].insts[0].args[0] == (("a", 1))
    assert [i.args[0] for i in prog.kernels[0].insts[1:]] == [9, 8]
    assert prog.tensors[1].image[:2] == bytes([7, 256 - 8])


def test_syntax_error_shows_the_character_after_blanked_lines():
    """After a bad line is blanked, positions in the parsed text shift: the character shown must
    come from the text as parsed (it showed '\\n' for the 20th '?')."""
    out = rendered('target "lpu-v1"\n' + "?\n" * 3)
    assert out.splitlines()[::3] == ["t.lpu:2:1: error: unexpected character '?'",
                                     "t.lpu:3:1: error: unexpected character '?'",
                                     "t.lpu:4:1: error: unexpected character '?'"]


def test_dataflow_tensors_are_left_to_the_compiler():
    """A file with both levels assembles: unplaced tensors and functions are the compiler's."""
    path = os.path.join(ROOT, "examples", "decoder.lpu")
    prog = assemble(open(path, encoding="utf-8").read(), path)
    assert (prog.tensors, prog.kernels) == ([], [])


def test_a_decimal_integer_immediate_of_a_float_type_is_its_value():
    """5000000000 is 5e9 rounded to f32, as the literal 5e9 is; only hex gives raw bits."""
    from lpu.asm.operands import parse_imm
    from lpu.asm.records import HexInt

    assert parse_imm(5000000000, "f32") == parse_imm(5e9, "f32") == 0x4F9502F9
    assert parse_imm(HexInt(0x7F800000), "f32") == 0x7F800000
