"""The `lpu` machine dialect: generated from the ISA table, to and from assembler records."""

from pathlib import Path

import pytest
from xdsl.utils.exceptions import VerifyException

from lpu.arch.isa import ISA
from lpu.asm.assembler import assemble
from lpu.asm.emit import emit
from lpu.dsl.lpu_dialect import OP_BY_MNEMONIC, KernelOp, LpuInstOp, kernel_text, to_kernel

EXAMPLES = Path(__file__).parent.parent / "examples" / "asm"


def test_one_op_per_isa_entry():
    assert [c.name for c in OP_BY_MNEMONIC.values()] == [f"lpu.{s.mnemonic}" for s in ISA]
    assert OP_BY_MNEMONIC["cmp.eq"].SPEC.mnemonic == "cmp.eq"


@pytest.mark.parametrize("name", ["gemv.lpu", "vadd.lpu", "copy.lpu"])
def test_records_round_trip_through_ops(name):
    path = EXAMPLES / name
    prog = assemble(path.read_text(), str(path))
    cfg = prog.config
    for k in prog.kernels:
        kop = KernelOp.build_from(k.name, [LpuInstOp.from_inst(i, cfg) for i in k.insts], k.is_global)
        kop.verify()
        back = to_kernel(kop, cfg)
        assert back.length == k.length
        assert sorted((i.queue, i.cycle, i.spec.opcode, i.dtype, i.dtype2, i.args) for i in back.insts) == \
            sorted((i.queue, i.cycle, i.spec.opcode, i.dtype, i.dtype2, i.args) for i in k.insts)


def test_printed_kernel_assembles_to_the_same_object():
    path = EXAMPLES / "gemv.lpu"
    prog = assemble(path.read_text(), str(path))
    cfg = prog.config
    k = prog.kernels[0]
    kop = KernelOp.build_from(k.name, [LpuInstOp.from_inst(i, cfg) for i in k.insts], k.is_global)
    direct = prog  # records straight from the ops, no text
    direct.kernels = [to_kernel(kop, cfg)]
    text = path.read_text().split("global kernel")[0] + kernel_text(kop, cfg)
    again = assemble(text, str(path))
    strip = lambda o: [(c.kernel, c.queue, list(c.words)) for c in o.code]  # noqa: E731
    assert strip(emit(direct)) == strip(emit(again))
    assert [x.length for x in emit(direct).kernels] == [52]


def test_verifier_rejects_misaligned_group_and_bad_type():
    from xdsl.dialects.builtin import IntegerAttr, StringAttr, i64
    op = OP_BY_MNEMONIC["acc"].create(attributes={"unit": StringAttr("MXM_W0"), "cycle": IntegerAttr(0, i64)})
    with pytest.raises(VerifyException, match=r"'acc' needs an element type \(one of i32, f32\)"):
        op.verify()
    from lpu.arch.config import load_config
    cfg = load_config("lpu-v1")
    prog = assemble('target "lpu-v1"\nkernel @k {\n @0 MXM_W0 acc.i32 acc0, s0e\n}\n', "k.lpu")
    bad = LpuInstOp.from_inst(prog.kernels[0].insts[0], cfg)
    bad.attributes["dst"] = StringAttr("s2e")
    with pytest.raises(VerifyException, match="misaligned stream group: 'dst' needs a group starting at a "
                                              "multiple of 4, not s2e"):
        bad.verify()
