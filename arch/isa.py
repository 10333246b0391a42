"""The ISA table: the one place an instruction of the machine is described.

Each entry names the mnemonic, the unit kinds that execute it, the element types it accepts,
its operands (each a kind with a field width and a role), its latency and occupancy (as keys
into the chip configuration, never as numbers), and a one-line doc. From these, this module
derives each instruction's 64-bit encoding; the assembler, disassembler, simulator, compiler,
language server and ``docs/isa.md`` all read this table.

Operand mini-language, one item per operand, in assembly order:

    name:kind[/width][?]

``kind`` is an entry of ``OPERAND_KINDS``; ``/width`` gives a stream operand's group width
(``t`` the instruction's type, ``t2`` its second type, ``rows`` the row count times the type,
or a number); ``?`` marks an optional operand, written ``name=value`` or as a bare flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

# --- element types ---------------------------------------------------------------------------
DTYPES = ("i8", "i16", "i32", "f16", "bf16", "f32")
DTYPE_INDEX = {t: i for i, t in enumerate(DTYPES)}
DTYPE_BYTES = {"i8": 1, "i16": 2, "i32": 4, "f16": 2, "bf16": 2, "f32": 4}
INTS = ("i8", "i16", "i32")
FLOATS = ("f16", "bf16", "f32")
ANY = DTYPES
WEIGHTS = ("i8", "f16", "bf16")
ACCUMULATORS = ("i32", "f32")

# --- encoding layout -------------------------------------------------------------------------
OPCODE_BITS = 8
DTYPE_LO, DTYPE2_LO, TYPE_BITS = 8, 11, 3
OPERANDS_LO = 16
WORD_BITS = 64


@dataclass(frozen=True, slots=True)
class OperandKind:
    name: str
    bits: int
    signed: bool
    syntax: str
    doc: str


OPERAND_KINDS: dict[str, OperandKind] = {
    k.name: k
    for k in [
        OperandKind("stream", 6, False, "s<n>e | s<n>w",
                    "a stream group: first stream index (5 bits) and direction (bit 5: 1 = west)"),
        OperandKind("addr", 16, False, "[@sym + off] | [addr]", "an SRAM word address in the queue's slice"),
        OperandKind("src_or_imm", 33, False, "s<n>e | s<n>w | number",
                    "a stream group, or (bit 32 set) a 32-bit scalar broadcast to every lane"),
        OperandKind("imm", 32, False, "number", "a 32-bit scalar of the element type"),
        OperandKind("lanes", 16, True, "number", "a signed lane count"),
        OperandKind("rows", 5, False, "number", "a row count, 1 to mxm.max_rows_per_lw"),
        OperandKind("acc", 6, False, "acc<n>", "an accumulator slot of the plane"),
        OperandKind("mode", 1, False, "set | add", "set (0) or add (1) into the accumulator slot"),
        OperandKind("flag", 1, False, "name", "a flag, written as its bare name when set"),
        OperandKind("link", 4, False, "L<n> | @chip", "a C2C link, or a peer chip the linker resolves"),
        OperandKind("table", 24, False, "@sym", "a lane-map tensor: slice (bits 16-23) and word address"),
        OperandKind("stride", 17, False, "stride=n",
                    "signed 16-bit address step per repetition; bit 16 set when given"),
        OperandKind("shift", 5, False, "shift=n", "a right shift with rounding applied before narrowing"),
        OperandKind("cycles", 32, False, "number", "a cycle count"),
        OperandKind("count", 16, False, "number", "a repetition count"),
        OperandKind("barrier", 8, False, "number", "a barrier number"),
    ]
}


@dataclass(frozen=True, slots=True)
class Operand:
    name: str
    kind: OperandKind
    width: str | None  # stream group width: "t", "t2", "rows" or a number
    optional: bool
    lo: int  # first bit in the instruction word
    role: str  # "src", "dst" or "" for non-stream operands

    @property
    def bits(self) -> int:
        return self.kind.bits


@dataclass(frozen=True)
class InstrSpec:
    opcode: int
    mnemonic: str
    units: tuple[str, ...]  # unit kinds: mem vxm mxm sxm c2c, or "any"
    types: tuple[str, ...]  # accepted element types ("" = untyped)
    types2: tuple[str, ...]  # second element type (cvt), else ()
    operands: tuple[Operand, ...]
    latency: str | int | dict | tuple | None  # config key (or a dict by type) to the result on a stream
    occupancy: str | int | dict | tuple | None  # cycles the unit (plane, port, link) is busy
    doc: str
    group: str  # the section of docs/isa.md
    default_type: str | None = None

    @cached_property
    def required(self) -> tuple[Operand, ...]:
        return tuple(o for o in self.operands if not o.optional)

    @cached_property
    def optional(self) -> dict[str, Operand]:
        return {o.name: o for o in self.operands if o.optional}

    @cached_property
    def srcs(self) -> tuple[Operand, ...]:
        return tuple(o for o in self.operands if o.role == "src")

    @cached_property
    def dsts(self) -> tuple[Operand, ...]:
        return tuple(o for o in self.operands if o.role == "dst")

    @property
    def typed(self) -> bool:
        return bool(self.types)

    def fields(self) -> list[tuple[str, int, int]]:
        """(name, first bit, width) of every field of the word, opcode first."""
        out = [("opcode", 0, OPCODE_BITS)]
        if self.types:
            out.append(("type", DTYPE_LO, TYPE_BITS))
        if self.types2:
            out.append(("type2", DTYPE2_LO, TYPE_BITS))
        out.extend((o.name, o.lo, o.bits) for o in self.operands)
        return out

    def latency_for(self, cfg, dtype: str | None = None) -> int:
        return _resolve(self.latency, cfg, dtype)

    def occupancy_for(self, cfg, dtype: str | None = None) -> int:
        return _resolve(self.occupancy, cfg, dtype)


def _resolve(spec, cfg, dtype) -> int:
    """A latency or occupancy: a number, a configuration key, a dict of those by type, or
    ``("per_word", key)`` (the key times the type's width in words) or ``("per_byte", key)``
    (a vector's bytes over a rate in bytes per cycle, rounded up)."""
    if spec is None:
        return 0
    if isinstance(spec, dict):
        spec = spec[dtype]
    if isinstance(spec, int):
        return spec
    if isinstance(spec, tuple):
        how, key = spec
        width = DTYPE_BYTES[dtype] if dtype else 1
        if how == "per_word":
            return cfg[key] * width
        return -(-cfg.lanes * width // cfg[key])
    return cfg[spec]


def _operands(text: str) -> tuple[Operand, ...]:
    out: list[Operand] = []
    lo = OPERANDS_LO
    for item in text.split():
        optional = item.endswith("?")
        item = item.rstrip("?")
        name, _, kind = item.partition(":")
        kind, _, width = kind.partition("/")
        k = OPERAND_KINDS[kind]
        role = ""
        if kind in ("stream", "src_or_imm"):
            role = "dst" if name == "dst" else "src"
        out.append(Operand(name, k, width or ("t" if role else None), optional, lo, role))
        lo += k.bits
    if lo > WORD_BITS:
        raise AssertionError(f"operands {text!r} need {lo} bits")
    return tuple(out)


_TABLE: list[InstrSpec] = []


def _def(opcode: int, mnemonic: str, units: str, types, operands: str, doc: str, *, group: str,
         types2=(), latency=None, occupancy=None, default_type=None) -> None:
    _TABLE.append(InstrSpec(opcode, mnemonic, tuple(units.split()), tuple(types), tuple(types2),
                            _operands(operands), latency, occupancy, doc, group,
                            default_type or (types[0] if types else None)))


# --- ICU: on every queue ---------------------------------------------------------------------
_def(0x01, "nop", "any", (), "n:cycles",
     "idle: the next instruction of this queue issues n cycles after this one", group="ICU")
_def(0x02, "repeat", "any", (), "n:count d:count",
     "re-issue the previous instruction n more times, d cycles apart; MEM addresses advance by their stride",
     group="ICU")
_def(0x03, "notify", "any", (), "barrier:barrier",
     "this queue has reached the barrier; releases the queues that sync on it", group="ICU")
_def(0x04, "sync", "any", (), "barrier:barrier",
     "wait until every queue with a notify of this barrier has reached it (phase boundaries only)",
     group="ICU")

# --- MEM -------------------------------------------------------------------------------------
_READ_PORT = ("per_word", "mem.read_port_cycles_per_word")
_def(0x10, "read", "mem", ANY, "addr:addr dst:stream stride:stride?",
     "read a vector (w words for a w-byte type) from the slice onto a stream group", group="MEM",
     latency="mem.read_latency", occupancy=_READ_PORT)
_def(0x11, "write", "mem", ANY, "addr:addr src:stream stride:stride?",
     "write the vector passing on a stream group into the slice (w words)", group="MEM",
     occupancy=("per_word", "mem.write_port_cycles_per_word"))
_def(0x12, "gather", "mem", ANY, "addr:addr index:stream/4 dst:stream stride:stride?",
     "read the vector at base + lane 0 of an i32 index (4-stream group) onto a stream group",
     group="MEM", latency="mem.read_latency", occupancy=_READ_PORT)
_def(0x13, "scatter", "mem", ANY, "addr:addr index:stream/4 src:stream stride:stride?",
     "write the vector passing on a stream group at base + lane 0 of an i32 index (4-stream group): "
     "the mirror of gather, for KV-cache updates", group="MEM",
     occupancy=("per_word", "mem.write_port_cycles_per_word"))

# --- VXM -------------------------------------------------------------------------------------
for _op, _mn, _types, _doc in [
    (0x20, "add", ANY, "a + b"),
    (0x21, "sub", ANY, "a - b"),
    (0x22, "mul", ANY, "a * b"),
    (0x23, "max", ANY, "maximum of a and b"),
    (0x24, "min", ANY, "minimum of a and b"),
    (0x25, "and", INTS, "bitwise a and b"),
    (0x26, "or", INTS, "bitwise a or b"),
    (0x27, "xor", INTS, "bitwise a xor b"),
    (0x28, "shl", INTS, "a shifted left by b bits"),
    (0x29, "shr", INTS, "a shifted right (arithmetic) by b bits"),
    (0x2A, "cmp.eq", ANY, "1 where a == b, else 0"),
    (0x2B, "cmp.lt", ANY, "1 where a < b, else 0"),
    (0x2C, "cmp.le", ANY, "1 where a <= b, else 0"),
]:
    _def(_op, _mn, "vxm", _types, "a:stream b:src_or_imm dst:stream", f"lanewise {_doc}",
         group="VXM binary", latency="vxm.latency")
_def(0x2D, "select", "vxm", ANY, "cond:stream a:stream b:stream dst:stream",
     "lanewise a where cond is nonzero, else b", group="VXM binary", latency="vxm.latency")
for _op, _mn, _types, _lat, _doc in [
    (0x30, "neg", ANY, "vxm.latency", "-a"),
    (0x31, "abs", ANY, "vxm.latency", "|a|"),
    (0x32, "relu", ANY, "vxm.latency", "max(a, 0)"),
    (0x33, "exp", FLOATS, "vxm.transcendental_latency", "e to the a"),
    (0x34, "tanh", FLOATS, "vxm.transcendental_latency", "tanh(a)"),
    (0x35, "sigmoid", FLOATS, "vxm.transcendental_latency", "1 / (1 + e^-a)"),
    (0x36, "rsqrt", FLOATS, "vxm.transcendental_latency", "1 / sqrt(a)"),
    (0x37, "recip", FLOATS, "vxm.transcendental_latency", "1 / a"),
    (0x38, "mov", ANY, "vxm.latency", "a, onto any stream and direction (turns data around)"),
]:
    _def(_op, _mn, "vxm", _types, "a:stream dst:stream", f"lanewise {_doc}", group="VXM unary",
         latency=_lat)
_def(0x39, "cvt", "vxm", ANY, "a:stream dst:stream/t2 shift:shift?",
     "convert from the first type to the second; integers saturate; i32 to i8/i16 may first shift "
     "right with rounding (requantization)", group="VXM unary", types2=ANY, latency="vxm.latency")

# --- MXM -------------------------------------------------------------------------------------
_def(0x40, "lw", "mxm", WEIGHTS, "src:stream/rows rows:rows",
     "load the next rows of the shadow weight buffer from consecutive stream groups", group="MXM",
     occupancy=1)
#: weight matrices a plane holds at once: the active ones ``mm`` uses and the shadow buffer ``lw``
#: fills, which ``iw`` makes active (a buffer is free again once the ``mm``s of its weights issued)
WEIGHT_BUFFERS = 2
_def(0x41, "iw", "mxm", (), "",
     "install the shadow weights: they are active for mm issued from the next cycle on",
     group="MXM", occupancy=1)
_def(0x42, "mm", "mxm", WEIGHTS, "src:stream slot:acc mode:mode",
     "out[j] = sum_i act[i] * W[i][j] into an accumulator slot (set or add); i8 accumulates in i32, "
     "f16/bf16 in f32", group="MXM",
     latency={"i8": "mxm.int_occupancy", "f16": "mxm.float_occupancy", "bf16": "mxm.float_occupancy"},
     occupancy={"i8": "mxm.int_occupancy", "f16": "mxm.float_occupancy", "bf16": "mxm.float_occupancy"})
_def(0x43, "acc", "mxm", ACCUMULATORS, "slot:acc dst:stream/4 clear:flag?",
     "emit an accumulator slot onto a 4-stream group, optionally clearing it", group="MXM",
     latency="mxm.acc_latency", occupancy=1)

# --- SXM -------------------------------------------------------------------------------------
_def(0x50, "shift", "sxm", ANY, "a:stream n:lanes dst:stream",
     "out[i] = a[i - n], zero outside the vector", group="SXM", latency="sxm.latency")
_def(0x51, "rotate", "sxm", ANY, "a:stream n:lanes dst:stream",
     "out[i] = a[(i - n) mod lanes]", group="SXM", latency="sxm.latency")
_def(0x52, "permute", "sxm", ANY, "a:stream map:table dst:stream",
     "out[i] = a[map[i]], with map a lane-map tensor of the program", group="SXM",
     latency="sxm.latency")
_def(0x53, "transpose", "sxm", ("i8",), "a:stream/16 dst:stream/16",
     "transpose the 16 x 16 byte matrix of each superlane across a 16-stream group", group="SXM",
     latency="sxm.transpose_latency")

# --- C2C -------------------------------------------------------------------------------------
_def(0x60, "send", "c2c", ANY, "src:stream link:link",
     "serialize the vector passing on a stream group over a link to the peer chip", group="C2C",
     occupancy=("per_byte", "c2c.link_bytes_per_cycle"))
_def(0x61, "recv", "c2c", ANY, "link:link dst:stream",
     "take the oldest vector from a link's receive buffer onto a stream group", group="C2C",
     latency="c2c.recv_latency")
_def(0x62, "deskew", "c2c", (), "link:link",
     "align a link after start-up", group="C2C", occupancy="c2c.deskew_cycles")

ISA: tuple[InstrSpec, ...] = tuple(_TABLE)
BY_MNEMONIC: dict[str, InstrSpec] = {s.mnemonic: s for s in ISA}
BY_OPCODE: dict[int, InstrSpec] = {s.opcode: s for s in ISA}
GROUPS = ("ICU", "MEM", "VXM binary", "VXM unary", "MXM", "SXM", "C2C")
UNIT_KINDS = ("mem", "vxm", "mxm", "sxm", "c2c")

assert len(BY_OPCODE) == len(ISA) and len(BY_MNEMONIC) == len(ISA)


def runs_on(spec: InstrSpec, unit_kind: str) -> bool:
    return "any" in spec.units or unit_kind in spec.units


def mnemonics_for(unit_kind: str) -> list[str]:
    return [s.mnemonic for s in ISA if runs_on(s, unit_kind)]


def group_width(spec: InstrSpec, op: Operand, dtype: str | None, dtype2: str | None,
                values: dict[str, int] | None = None) -> int:
    """How many consecutive streams a stream operand spans."""
    w = op.width
    if w == "t":
        return DTYPE_BYTES[dtype] if dtype else 1
    if w == "t2":
        return DTYPE_BYTES[dtype2] if dtype2 else 1
    if w == "rows":
        rows = (values or {}).get("rows", 1)
        return rows * (DTYPE_BYTES[dtype] if dtype else 1)
    return int(w)


# --- encoding --------------------------------------------------------------------------------
class DecodeError(ValueError):
    pass


def encode(spec: InstrSpec, dtype: str | None, dtype2: str | None, fields: tuple[int, ...]) -> int:
    """The 64-bit word of an instruction whose operand fields are already integers."""
    word = spec.opcode
    if spec.types:
        word |= DTYPE_INDEX[dtype] << DTYPE_LO
    if spec.types2:
        word |= DTYPE_INDEX[dtype2] << DTYPE2_LO
    for op, v in zip(spec.operands, fields):
        word |= (v & ((1 << op.kind.bits) - 1)) << op.lo
    return word


def decode(word: int) -> tuple[InstrSpec, str | None, str | None, tuple[int, ...]]:
    """Inverse of ``encode``: the spec, types and operand field values of a word."""
    spec = BY_OPCODE.get(word & 0xFF)
    if spec is None:
        raise DecodeError(f"unknown opcode 0x{word & 0xFF:02x}")
    dtype = dtype2 = None
    if spec.types:
        i = (word >> DTYPE_LO) & 7
        if i >= len(DTYPES) or DTYPES[i] not in spec.types:
            raise DecodeError(f"{spec.mnemonic}: invalid type field {i}")
        dtype = DTYPES[i]
    elif (word >> DTYPE_LO) & 7:
        raise DecodeError(f"{spec.mnemonic}: type field set on an untyped instruction")
    if spec.types2:
        i = (word >> DTYPE2_LO) & 7
        if i >= len(DTYPES) or DTYPES[i] not in spec.types2:
            raise DecodeError(f"{spec.mnemonic}: invalid second type field {i}")
        dtype2 = DTYPES[i]
    elif (word >> DTYPE2_LO) & 7:
        raise DecodeError(f"{spec.mnemonic}: second type field set on an instruction without one")
    fields = []
    end = OPERANDS_LO
    for op in spec.operands:
        v = (word >> op.lo) & ((1 << op.kind.bits) - 1)
        if op.kind.signed and v >> (op.kind.bits - 1):
            v -= 1 << op.kind.bits
        fields.append(v)
        end = op.lo + op.kind.bits
    if (word >> 14) & 3 or (end < 64 and word >> end):
        raise DecodeError(f"{spec.mnemonic}: reserved bits set in 0x{word:016x}")
    return spec, dtype, dtype2, tuple(fields)
