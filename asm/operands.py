"""Operands by kind: from parsed text to encoded field values, and back to text.

One function pair per operand kind of the ISA table; the assembler and the disassembler share
them, so what one prints the other reads.
"""

from __future__ import annotations

import math
import re
import struct

from lpu.arch.isa import DTYPE_BYTES, FLOATS, InstrSpec, Operand
from lpu.asm.records import HexInt, PeerRef, SymRef

_STREAM_RE = re.compile(r"^s([0-9]+)([ew])$")
_ACC_RE = re.compile(r"^acc([0-9]+)$")
_LINK_RE = re.compile(r"^L([0-9]+)$")
_INT_RANGE = {"i8": (-(1 << 7), (1 << 7) - 1), "i16": (-(1 << 15), (1 << 15) - 1),
              "i32": (-(1 << 31), (1 << 31) - 1)}


class OperandError(ValueError):
    """A malformed operand; the message is the diagnostic's text."""


def stream_field(index: int, west: bool) -> int:
    return index | (32 if west else 0)


def stream_text(field: int) -> str:
    return f"s{field & 31}{'w' if field & 32 else 'e'}"


def parse_stream(raw, cfg) -> int:
    if raw.kind != "name":
        raise OperandError(f"expected a stream (s<n>e or s<n>w), not '{_shown(raw)}'")
    m = _STREAM_RE.match(raw.value)
    if not m:
        raise OperandError(f"expected a stream (s<n>e or s<n>w), not '{raw.value}'")
    index = int(m.group(1))
    if index >= cfg.streams:
        raise OperandError(f"stream index {index} out of range (the chip has s0..s{cfg.streams - 1} "
                           "in each direction)")
    return stream_field(index, m.group(2) == "w")


def _shown(raw) -> str:
    if raw.kind == "symbol":
        return "@" + raw.value
    if raw.kind == "symref":
        s, o = raw.value
        return f"[@{s}{' + ' + str(o) if o > 0 else ' - ' + str(-o) if o < 0 else ''}]"
    if raw.kind == "address":
        return f"[{raw.value}]"
    if raw.kind == "keyword":
        return f"{raw.value[0]}={raw.value[1]}"
    return str(raw.value)


def parse_imm(value, dtype: str) -> int:
    """A scalar immediate of an element type, as its 32-bit field."""
    if dtype in FLOATS:
        if type(value) is HexInt:  # written as bits (the disassembler's form for inf and nan)
            if value > 0xFFFFFFFF:
                raise OperandError(f"immediate 0x{value:x} out of range for {dtype} (32 bits)")
            return int(value)
        # a decimal integer is a value, rounded to f32 like a float literal (5000000000 is 5e9)
        try:  # overflows only when it does not round to a finite f32 (FLT_MAX prints as 3.4028235e+38)
            return struct.unpack("<I", struct.pack("<f", float(value)))[0]
        except OverflowError:
            raise OperandError(f"immediate {value} out of range for {dtype} (beyond f32)") from None
    if isinstance(value, float):
        raise OperandError(f"expected an integer immediate for {dtype}, not {value}")
    lo, hi = _INT_RANGE[dtype]
    if not lo <= value <= hi:
        raise OperandError(f"immediate {value} out of range for {dtype} ({lo} to {hi})")
    return value & 0xFFFFFFFF


def imm_text(field: int, dtype: str) -> str:
    if dtype in FLOATS:
        f = struct.unpack("<f", struct.pack("<I", field & 0xFFFFFFFF))[0]
        if not math.isfinite(f):
            return f"0x{field & 0xFFFFFFFF:08x}"
        import numpy as np

        text = str(np.float32(f))
        if "e" not in text and "." not in text:
            text += ".0"
        return text
    v = field & 0xFFFFFFFF
    return str(v - (1 << 32) if v >> 31 else v)


def _int(raw, what: str) -> int:
    if raw.kind != "number" or not isinstance(raw.value, int):
        raise OperandError(f"expected {what}, not '{_shown(raw)}'")
    return raw.value


def parse_operand(op: Operand, raw, spec: InstrSpec, dtype, cfg, queue) -> object:
    """The field value (or SymRef/PeerRef) of one operand; raises ``OperandError``."""
    kind = op.kind.name
    if kind == "stream":
        return parse_stream(raw, cfg)
    if kind == "src_or_imm":
        if raw.kind == "number":
            return (1 << 32) | parse_imm(raw.value, dtype)
        return parse_stream(raw, cfg)
    if kind == "addr":
        if raw.kind == "symref":
            return SymRef(*raw.value)
        if raw.kind == "address":
            if not 0 <= raw.value < cfg.words:
                raise OperandError(f"address {raw.value} out of range (a slice has {cfg.words} words)")
            return raw.value
        raise OperandError(f"expected an SRAM address ([@symbol + offset] or [address]), not '{_shown(raw)}'")
    if kind == "imm":
        if raw.kind != "number":
            raise OperandError(f"expected an immediate, not '{_shown(raw)}'")
        return parse_imm(raw.value, dtype)
    if kind == "lanes":
        n = _int(raw, "a lane count")
        if not -cfg.lanes < n < cfg.lanes:
            raise OperandError(f"lane count {n} out of range ({-cfg.lanes + 1} to {cfg.lanes - 1})")
        return n
    if kind == "rows":
        n = _int(raw, "a row count")
        most = cfg["mxm.max_rows_per_lw"] // DTYPE_BYTES[dtype]
        if not 1 <= n <= most:
            raise OperandError(f"row count {n} out of range for {dtype} (1 to {most} rows a cycle)")
        return n
    if kind == "acc":
        m = _ACC_RE.match(str(raw.value)) if raw.kind == "name" else None
        if not m:
            raise OperandError(f"expected an accumulator slot (acc<n>), not '{_shown(raw)}'")
        n = int(m.group(1))
        if n >= cfg["mxm.acc_slots"]:
            raise OperandError(f"accumulator slot {n} out of range (acc0 to acc{cfg['mxm.acc_slots'] - 1})")
        return n
    if kind == "mode":
        if raw.kind != "name" or raw.value not in ("set", "add"):
            raise OperandError(f"expected 'set' or 'add', not '{_shown(raw)}'")
        return 1 if raw.value == "add" else 0
    if kind == "link":
        if raw.kind == "symbol":
            return PeerRef(raw.value)
        m = _LINK_RE.match(str(raw.value)) if raw.kind == "name" else None
        if not m:
            raise OperandError(f"expected a link (L<n>) or a peer chip (@name), not '{_shown(raw)}'")
        n = int(m.group(1))
        if n not in queue.links:
            raise OperandError(f"link L{n} is not at {queue.name} (it has L{queue.links[0]}-L{queue.links[-1]})"
                               if queue.links else f"link L{n} does not exist")
        return n
    if kind == "table":
        if raw.kind != "symbol":
            raise OperandError(f"expected a lane-map tensor (@name), not '{_shown(raw)}'")
        return SymRef(raw.value, 0)
    if kind == "stride":
        n = _int(raw, "a stride")
        if not -(1 << 15) <= n < (1 << 15):
            raise OperandError(f"stride {n} out of range (-32768 to 32767)")
        return (1 << 16) | (n & 0xFFFF)
    if kind == "shift":
        n = _int(raw, "a shift")
        if not 0 <= n < 32:
            raise OperandError(f"shift {n} out of range (0 to 31)")
        return n
    if kind == "flag":
        return 1
    bits = op.kind.bits
    n = _int(raw, f"a {op.kind.doc}")
    low = 1 if kind in ("cycles", "count") else 0
    if not low <= n < (1 << bits):
        raise OperandError(f"{op.name} {n} out of range ({low} to {(1 << bits) - 1})")
    return n


def operand_text(op: Operand, value, dtype) -> str | None:
    """The text of one operand; None for an optional operand left at its default."""
    kind = op.kind.name
    if isinstance(value, SymRef):
        if kind == "table":
            return f"@{value.symbol}"
        o = value.offset
        return f"[@{value.symbol}{' + ' + str(o) if o > 0 else ' - ' + str(-o) if o < 0 else ''}]"
    if isinstance(value, PeerRef):
        return f"@{value.chip}"
    if kind == "stream":
        return stream_text(value)
    if kind == "src_or_imm":
        return imm_text(value, dtype) if value >> 32 else stream_text(value)
    if kind == "addr":
        return f"[{value}]"
    if kind == "imm":
        return imm_text(value, dtype)
    if kind == "acc":
        return f"acc{value}"
    if kind == "mode":
        return "add" if value else "set"
    if kind == "link":
        return f"L{value}"
    if kind == "stride":
        if not value >> 16:
            return None
        n = value & 0xFFFF
        return f"stride={n - 0x10000 if n >> 15 else n}"
    if kind == "shift":
        return f"shift={value}" if value else None
    if kind == "flag":
        return op.name if value else None
    return str(value)


def stride_of(value: int, width_words: int) -> int:
    """The address step per repetition that a stride field gives (default: the vector's width)."""
    if not value >> 16:
        return width_words
    n = value & 0xFFFF
    return n - 0x10000 if n >> 15 else n
