"""The vectorized timing check agrees with the event-by-event one on random kernels."""

from hypothesis import given, settings
from hypothesis import strategies as st

from lpu.arch.config import load_config
from lpu.asm.records import Kernel
from lpu.asm.timing import _all_reads_meet, check_timing

CFG = load_config("lpu-v1")
UNITS = ["MEM_W1", "MEM_W0", "MEM_E0", "MEM_E1"]


@st.composite
def kernels(draw):
    lines = ['target "lpu-v1"', "reserve @a : tensor<4x320xi32> in MEM_W0", "kernel @k {"]
    n = draw(st.integers(1, 12))
    used: set[tuple[str, int]] = set()
    for _ in range(n):
        cycle = draw(st.integers(0, 12))
        kind = draw(st.sampled_from(["read", "mov", "add"]))
        d = draw(st.sampled_from("ew"))
        s = draw(st.integers(0, 3))
        t = draw(st.sampled_from(["i8", "i32"]))
        if t == "i32":
            s = 0 if s < 2 else 4
        if kind == "read":
            unit = "MEM_W0"
            text = f"read.{t} [@a], s{s}{d}"
        else:
            unit = f"VXM.{draw(st.integers(0, 3))}"
            a = draw(st.integers(0, 3)) if t == "i8" else s
            text = (f"mov.{t} s{a}{d}, s{s}{'ew'[d == 'e']}" if kind == "mov"
                    else f"add.{t} s{a}{d}, 1, s{s}{d}")
        if (unit, cycle) in used:
            continue
        used.add((unit, cycle))
        lines.append((cycle, f"  @{cycle} {unit} {text}"))
    body = sorted((x for x in lines if isinstance(x, tuple)), key=lambda x: x[0])
    return "\n".join([x for x in lines if isinstance(x, str)] + [b for _, b in body] + ["}"]) + "\n"


def unchecked_kernel(text: str) -> Kernel:
    """The kernel as the assembler builds it, sequenced but without the timing check."""
    from lpu.asm import assembler as A
    from lpu.asm.parser import parse

    raw, diags = parse(text, "t.lpu")
    assert not diags
    a = A._Assembler(raw, CFG, ".")
    a.externs = {}
    for rt in raw.tensors:
        a.tensor(rt)
    k = a.kernel(raw.kernels[0])
    a.sequence(k)
    assert not a.diags
    return k


@settings(max_examples=300, deadline=None)
@given(kernels())
def test_vectorized_check_agrees(text):
    k = unchecked_kernel(text)
    assert _all_reads_meet(k, CFG) == (not check_timing(k, CFG, vectorized=False))


def test_both_outcomes_are_generated():
    """The generator reaches kernels that pass and kernels that fail the check."""
    ok = bad = 0
    for text in [
        'target "lpu-v1"\nreserve @a : tensor<320xi8> in MEM_W0\nkernel @k {\n  @0 MEM_W0 read.i8 [@a], s0e\n'
        '  @3 VXM.0 add.i8 s0e, 1, s1e\n}\n',
        'target "lpu-v1"\nreserve @a : tensor<320xi8> in MEM_W0\nkernel @k {\n  @0 MEM_W0 read.i8 [@a], s0e\n'
        '  @2 VXM.0 add.i8 s0e, 1, s1e\n}\n',
    ]:
        k = unchecked_kernel(text)
        fast = _all_reads_meet(k, CFG)
        assert fast == (not check_timing(k, CFG, vectorized=False))
        ok, bad = ok + fast, bad + (not fast)
    assert ok == 1 and bad == 1
