"""The chip configuration, the ISA table's encoding, docs/isa.md and ``lpu arch``."""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from lpu.arch import config as config_mod
from lpu.arch import isa
from lpu.arch.config import SCHEMA, load_config, parse_config
from lpu.arch.isadoc import render
from lpu.diagnostics import DiagnosticError
from lpu.driver import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V1_TEXT = open(os.path.join(ROOT, "arch", "configs", "lpu-v1.toml"), encoding="utf-8").read()


@pytest.fixture(scope="module")
def v1():
    return load_config("lpu-v1")


# --- lpu-v1 ----------------------------------------------------------------------------------
def test_v1_loads(v1):
    assert v1.name == "lpu-v1"
    assert load_config() is v1  # the default target


def test_v1_floorplan(v1):
    assert v1.positions == 95
    assert len(v1.queues) == 112
    pos = {s.name: s.position for s in v1.slices}
    assert pos["C2C_W"] == 0 and pos["MEM_W43"] == 3
    assert pos["MEM_W0"] == 46 and pos["VXM"] == 47 and pos["MEM_E0"] == 48
    assert pos["MEM_E43"] == 91 and pos["C2C_E"] == 94
    kinds = [q.kind for q in v1.queues]
    assert [kinds.count(k) for k in isa.UNIT_KINDS] == [88, 16, 4, 2, 2]
    assert v1.link_queue[0].name == "C2C_W" and v1.link_queue[15].name == "C2C_E"


@pytest.mark.parametrize("key", ["sram_mb", "int8_tops", "f16_tflops", "vector_alus", "c2c_gbps"])
def test_v1_peaks_within_5_percent_of_seed(v1, key):
    assert v1.peaks[key] == pytest.approx(v1["seed." + key], rel=0.05)


def test_v1_peaks_exact(v1):
    assert v1.peaks["vector_alus"] == 5120
    assert v1.peaks["sram_mb"] == pytest.approx(230.69, abs=0.01)
    assert v1.peaks["int8_tops"] == pytest.approx(737.28)
    assert v1.peaks["f16_tflops"] == pytest.approx(184.32)
    # the model's figure, not the seed's vendor 80 TB/s
    assert v1.peaks["sram_tbps"] == pytest.approx(50.688)


# --- configuration validation ----------------------------------------------------------------
def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _load_bad(tmp_path, text: str) -> DiagnosticError:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DiagnosticError) as e:
        load_config(str(path))
    return e.value


def _diag(err: DiagnosticError, fragment: str):
    for d in err.diagnostics:
        if fragment in d.message:
            return d
    raise AssertionError(f"no diagnostic mentions {fragment!r}: {err}")


def test_missing_key(tmp_path):
    text = V1_TEXT.replace("acc_latency = 4\n", "")
    d = _diag(_load_bad(tmp_path, text), "mxm.acc_latency")
    assert "missing" in d.message
    assert d.loc.line == _line_of(text, "[mxm]")


def test_missing_table(tmp_path):
    text = re.sub(r"\[sxm\]\nlatency = 2\ntranspose_latency = 18\n", "", V1_TEXT)
    d = _diag(_load_bad(tmp_path, text), "[sxm]")
    assert "missing table" in d.message


def test_unknown_key(tmp_path):
    text = V1_TEXT.replace("alus = 16\n", "alus = 16\nturbo = 1\n")
    d = _diag(_load_bad(tmp_path, text), "vxm.turbo")
    assert "unknown key" in d.message
    assert d.loc.line == _line_of(text, "turbo = 1")


def test_unknown_top_level_key(tmp_path):
    text = V1_TEXT.replace('name = "lpu-v1"\n', 'name = "lpu-v1"\nvendor = "x"\n')
    d = _diag(_load_bad(tmp_path, text), "'vendor'")
    assert d.loc.line == _line_of(text, "vendor =")


def test_wrong_type(tmp_path):
    text = V1_TEXT.replace("mhz = 900", 'mhz = "fast"')
    d = _diag(_load_bad(tmp_path, text), "clock.mhz")
    assert "integer" in d.message
    assert d.loc.line == _line_of(text, 'mhz = "fast"')


def test_name_wrong_type(tmp_path):
    text = V1_TEXT.replace('name = "lpu-v1"', "name = 1")
    d = _diag(_load_bad(tmp_path, text), "'name'")
    assert d.loc.line == _line_of(text, "name = 1")


def test_below_minimum(tmp_path):
    text = V1_TEXT.replace("words = 8192", "words = 0")
    d = _diag(_load_bad(tmp_path, text), "mem.words")
    assert "at least 1" in d.message and d.loc.line == _line_of(text, "words = 0")


def test_bad_floorplan_slice(tmp_path):
    text = V1_TEXT.replace('"SXM_E"', '"SXM_X"')
    d = _diag(_load_bad(tmp_path, text), "SXM_X")
    assert "floorplan.slices" in d.message
    assert d.loc.line == _line_of(text, "slices = [")


def test_floorplan_without_vxm(tmp_path):
    text = V1_TEXT.replace('  "VXM",\n', "")
    d = _diag(_load_bad(tmp_path, text), "VXM")
    assert "floorplan.slices" in d.message


def test_encoding_limit(tmp_path):
    text = V1_TEXT.replace("max_rows_per_lw = 16", "max_rows_per_lw = 32")
    d = _diag(_load_bad(tmp_path, text), "mxm.max_rows_per_lw")
    assert d.loc.line == _line_of(text, "max_rows_per_lw")


def test_invalid_toml(tmp_path):
    text = V1_TEXT.replace("read_latency = 2", "read_latency = = 2")
    d = _diag(_load_bad(tmp_path, text), "invalid TOML")
    assert d.loc.line == _line_of(text, "read_latency = = 2")


def test_unknown_target():
    with pytest.raises(DiagnosticError, match="unknown target 'lpu-v9'.*lpu-v1"):
        load_config("lpu-v9")


def test_unreadable_file(tmp_path):
    with pytest.raises(DiagnosticError, match="cannot read configuration"):
        load_config(str(tmp_path / "missing.toml"))


def test_custom_config_changes_peaks():
    cfg = parse_config(V1_TEXT.replace("mhz = 900", "mhz = 1000"), "fast.toml")
    assert cfg.peaks["int8_tops"] == pytest.approx(819.2)


def test_schema_keys_documented():
    doc = open(os.path.join(ROOT, "docs", "config.md"), encoding="utf-8").read()
    for table, keys in SCHEMA.items():
        assert f"[{table}]" in doc, table
        for key in keys:
            assert f"`{table}.{key}`" in doc, f"{table}.{key} is not in docs/config.md"


def test_config_doc_values_match_v1(v1):
    doc = open(os.path.join(ROOT, "docs", "config.md"), encoding="utf-8").read()
    rows = re.findall(r"^\| `(\w+)\.(\w+)` \| [^|]+ \| ([^|]+) \|", doc, re.M)
    checked = 0
    for table, key, value in rows:
        if table in SCHEMA and key in SCHEMA[table] and SCHEMA[table][key][0] is not list:
            assert value.strip() == str(v1[f"{table}.{key}"]), f"{table}.{key} in docs/config.md"
            checked += 1
    assert checked == sum(1 for keys in SCHEMA.values() for t, _ in keys.values() if t is not list)


# --- encoding --------------------------------------------------------------------------------
def _field(kind: isa.OperandKind):
    if kind.signed:
        return st.integers(-(1 << (kind.bits - 1)), (1 << (kind.bits - 1)) - 1)
    return st.integers(0, (1 << kind.bits) - 1)


def _cases():
    for spec in isa.ISA:
        for t in spec.types or (None,):
            for t2 in spec.types2 or (None,):
                yield pytest.param(spec, t, t2, id=f"{spec.mnemonic}-{t}-{t2}")


@pytest.mark.parametrize("spec,dtype,dtype2", list(_cases()))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_encode_decode_roundtrip(spec, dtype, dtype2, data):
    fields = tuple(data.draw(_field(op.kind), label=op.name) for op in spec.operands)
    word = isa.encode(spec, dtype, dtype2, fields)
    assert 0 <= word < 1 << isa.WORD_BITS
    assert isa.decode(word) == (spec, dtype, dtype2, fields)
    # the word is exactly what the fields say, bit for bit
    assert word & 0xFF == spec.opcode
    for op, v in zip(spec.operands, fields):
        assert (word >> op.lo) & ((1 << op.bits) - 1) == v & ((1 << op.bits) - 1)


def test_fields_do_not_overlap():
    for spec in isa.ISA:
        used = 0
        for name, lo, width in spec.fields():
            mask = ((1 << width) - 1) << lo
            assert not used & mask, f"{spec.mnemonic}.{name} overlaps"
            assert lo + width <= isa.WORD_BITS
            used |= mask


def test_decode_unknown_opcode():
    for opcode in range(256):
        if opcode not in isa.BY_OPCODE:
            with pytest.raises(isa.DecodeError, match="unknown opcode"):
                isa.decode(opcode)


@pytest.mark.parametrize("spec", isa.ISA, ids=lambda s: s.mnemonic)
def test_decode_reserved_bits(spec):
    base = isa.encode(spec, spec.default_type, spec.types2[0] if spec.types2 else None,
                      (0,) * len(spec.operands))
    end = max(lo + w for _, lo, w in spec.fields())
    bad_bits = [14, 15] + list(range(max(end, isa.OPERANDS_LO), isa.WORD_BITS))
    if not spec.types:
        bad_bits += range(isa.DTYPE_LO, isa.DTYPE_LO + isa.TYPE_BITS)
    if not spec.types2:
        bad_bits += range(isa.DTYPE2_LO, isa.DTYPE2_LO + isa.TYPE_BITS)
    for bit in bad_bits:
        with pytest.raises(isa.DecodeError):
            isa.decode(base | (1 << bit))


@pytest.mark.parametrize("spec", [s for s in isa.ISA if s.types], ids=lambda s: s.mnemonic)
def test_decode_rejects_types_not_accepted(spec):
    t2 = spec.types2[0] if spec.types2 else None
    base = isa.encode(spec, spec.default_type, t2, (0,) * len(spec.operands))
    base &= ~(7 << isa.DTYPE_LO)
    for i in range(8):
        word = base | (i << isa.DTYPE_LO)
        if i < len(isa.DTYPES) and isa.DTYPES[i] in spec.types:
            assert isa.decode(word)[1] == isa.DTYPES[i]
        else:
            with pytest.raises(isa.DecodeError, match="type"):
                isa.decode(word)
    if spec.types2:
        for i in (6, 7):
            with pytest.raises(isa.DecodeError, match="second type"):
                isa.decode((base | (isa.DTYPE_INDEX[spec.default_type] << isa.DTYPE_LO))
                           & ~(7 << isa.DTYPE2_LO) | (i << isa.DTYPE2_LO))


def test_latencies_resolve(v1):
    for spec in isa.ISA:
        for t in spec.types or (None,):
            assert spec.latency_for(v1, t) >= 0
            assert spec.occupancy_for(v1, t) >= 0
    assert isa.BY_MNEMONIC["read"].latency_for(v1, "i8") == 2
    assert isa.BY_MNEMONIC["read"].occupancy_for(v1, "f32") == 4
    assert isa.BY_MNEMONIC["mm"].occupancy_for(v1, "f16") == 4
    assert isa.BY_MNEMONIC["send"].occupancy_for(v1, "i8") == 10  # 320 B at 33 B/cycle


# --- docs/isa.md -----------------------------------------------------------------------------
def test_isa_doc_is_current():
    path = os.path.join(ROOT, "docs", "isa.md")
    with open(path, encoding="utf-8") as f:
        checked_in = f.read()
    current = render()
    if checked_in != current:
        diff = difflib.unified_diff(checked_in.splitlines(), current.splitlines(),
                                    "docs/isa.md", "render()", lineterm="", n=1)
        pytest.fail("docs/isa.md is stale: run `make docs`\n" + "\n".join(list(diff)[:30]))


def test_isa_doc_covers_every_instruction():
    text = render()
    assert render() == text  # deterministic
    for spec in isa.ISA:
        assert f"### `{spec.mnemonic}`" in text
        assert spec.doc in text
    assert "`mem.read_latency` = 2" in text
    for kind in isa.OPERAND_KINDS:
        assert f"| `{kind}` |" in text


# --- lpu arch --------------------------------------------------------------------------------
def test_lpu_arch(capsys):
    assert main(["arch"]) == 0
    out = capsys.readouterr().out
    assert "lpu-v1" in out and "95 positions" in out
    for fragment in ["0      C2C_W", "links L0-L7", "3-46   MEM_W43..MEM_W0", "47     VXM",
                     "16 ALUs", "48-91  MEM_E0..MEM_E43", "links L8-L15",
                     "queues: 112 (88 mem, 16 vxm, 4 mxm, 2 sxm, 2 c2c)",
                     "230.7", "737.3", "184.3", "5,120", "475.2", "50.7", "80 TB/s",
                     "vendor figure"]:
        assert fragment in out, fragment


def test_lpu_arch_custom_config(tmp_path, capsys):
    path = tmp_path / "small.toml"
    path.write_text(V1_TEXT.replace('name = "lpu-v1"', 'name = "small"').replace("alus = 16", "alus = 4"))
    assert main(["arch", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "small" in out and "4 ALUs" in out and "1,280" in out


def test_lpu_arch_bad_config(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(V1_TEXT.replace("mhz = 900", 'mhz = "fast"'))
    assert main(["arch", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:{_line_of(path.read_text(), 'mhz')}:1: error: key 'clock.mhz'" in err


def test_lpu_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("lpu 0.")


def test_lpu_without_command(capsys):
    assert main([]) == 1
    assert "error:" in capsys.readouterr().err


def _lpu() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "lpu")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "lpu.driver"]


@pytest.mark.parametrize("make_arg", [
    lambda tmp: str(tmp / "bad.toml"),  # invalid TOML
    lambda tmp: str(tmp / "absent.toml"),  # no such file
    lambda tmp: "lpu-v9",  # no such built-in target
])
def test_lpu_arch_errors_subprocess(tmp_path, make_arg):
    (tmp_path / "bad.toml").write_text("name = \n")
    r = subprocess.run(_lpu() + ["arch", "--config", make_arg(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "error:" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_lpu_arch_subprocess():
    r = subprocess.run(_lpu() + ["arch"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == ""
    assert "737.3" in r.stdout


def test_config_cache_is_per_path(tmp_path):
    # two different files are two configurations, even when loaded in one process
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(V1_TEXT.replace('name = "lpu-v1"', 'name = "a"'))
    b.write_text(V1_TEXT.replace('name = "lpu-v1"', 'name = "b"'))
    assert load_config(str(a)).name == "a" and load_config(str(b)).name == "b"
    assert "lpu-v1" in config_mod.builtin_targets()


# --- numpy dtypes of the element types -------------------------------------------------------------
def test_tools_start_without_ml_dtypes_and_bf16_still_is_its_bfloat16():
    """ml_dtypes takes most of a second to import; the tools load it only when bf16 is used."""
    code = ("import sys, numpy as np\n"
            "import lpu.asm.cli, lpu.asm.objdump, lpu.linker.cli, lpu.sim.cli, lpu.driver\n"
            "from lpu.arch.layout import NUMPY_DTYPES, element_type_of\n"
            "assert element_type_of(np.float32) == 'f32' and element_type_of(np.int8) == 'i8'\n"
            "assert 'ml_dtypes' not in sys.modules\n"
            "import ml_dtypes\n"
            "assert NUMPY_DTYPES['bf16'] == np.dtype(ml_dtypes.bfloat16)\n"
            "assert element_type_of(ml_dtypes.bfloat16) == 'bf16' and element_type_of(np.float64) is None\n"
            "assert list(NUMPY_DTYPES) == ['i8', 'i16', 'i32', 'f16', 'bf16', 'f32']\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
