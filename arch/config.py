"""Chip configurations: the TOML description of a machine, loaded, validated and derived.

Every fact about the machine the tools use — the floor plan, vector width, stream count, SRAM
geometry, latencies, MXM and C2C parameters, clock — comes from a configuration. ``lpu-v1`` is
the default; a user may pass any file with the same keys.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property

from lpu.diagnostics import DiagnosticError, SourceLoc, error

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs")
DEFAULT_TARGET = "lpu-v1"
MAX_QUEUES = 255  # the most queues a chip has (_check_derived)

# Every key a configuration must have: table -> key -> (type, minimum).
SCHEMA: dict[str, dict[str, tuple[type, int]]] = {
    "clock": {"mhz": (int, 1)},
    "vector": {"lanes": (int, 1), "superlanes": (int, 1)},
    "streams": {"per_direction": (int, 1)},
    "floorplan": {"slices": (list, 1)},
    "mem": {
        "words": (int, 1),
        "read_latency": (int, 1),
        "read_port_cycles_per_word": (int, 1),
        "write_port_cycles_per_word": (int, 1),
    },
    "vxm": {"alus": (int, 1), "latency": (int, 1), "transcendental_latency": (int, 1)},
    "mxm": {
        "planes_per_slice": (int, 1),
        "rows": (int, 1),
        "cols": (int, 1),
        "acc_slots": (int, 1),
        "max_rows_per_lw": (int, 1),
        "int_occupancy": (int, 1),
        "float_occupancy": (int, 1),
        "acc_latency": (int, 1),
    },
    "sxm": {"latency": (int, 1), "transpose_latency": (int, 1)},
    "c2c": {
        "links_per_slice": (int, 1),
        "link_bytes_per_cycle": (int, 1),
        "link_latency": (int, 0),
        "recv_buffer_depth": (int, 1),
        "recv_latency": (int, 1),
        "deskew_cycles": (int, 0),
    },
    "seed": {
        "sram_mb": (float, 0),
        "int8_tops": (float, 0),
        "f16_tflops": (float, 0),
        "vector_alus": (float, 0),
        "c2c_gbps": (float, 0),
        "sram_tbps": (float, 0),
    },
}
OPTIONAL_TABLES = {"seed"}

# Slice kinds by name: MEM_W3, VXM, MXM_E, ...
_SLICE_RE = re.compile(r"^(MEM)_([WE])(\d+)$|^(VXM)$|^(MXM|SXM|C2C)_([WE])$")
_RANGE_RE = re.compile(r"^MEM_([WE])(\d+)\.\.MEM_([WE])(\d+)$")


@dataclass(frozen=True, slots=True)
class Slice:
    """One functional slice of the floor plan."""

    name: str
    kind: str  # mem, vxm, mxm, sxm, c2c
    position: int
    hemisphere: str  # "W", "E" or "" for the VXM


@dataclass(frozen=True, slots=True)
class Queue:
    """One independently programmed unit: it has one instruction queue."""

    index: int
    name: str
    kind: str
    position: int
    slice: Slice
    links: tuple[int, ...] = ()  # C2C queues: the link numbers at this slice


@dataclass
class ChipConfig:
    name: str
    source: str  # the file it came from
    text: str  # the TOML text, embedded in objects so that images are self-contained
    values: dict = field(repr=False)

    def __getitem__(self, dotted: str):
        table, key = dotted.split(".")
        return self.values[table][key]

    # --- the floor plan -------------------------------------------------------------------
    @cached_property
    def slices(self) -> list[Slice]:
        return _expand_floorplan(self.values["floorplan"]["slices"], self.source, self.text)

    @cached_property
    def queues(self) -> list[Queue]:
        queues: list[Queue] = []
        link = 0
        for s in self.slices:
            if s.kind == "mem":
                names = [s.name]
            elif s.kind == "vxm":
                names = [f"VXM.{i}" for i in range(self.values["vxm"]["alus"])]
            elif s.kind == "mxm":
                names = [f"{s.name}{i}" for i in range(self.values["mxm"]["planes_per_slice"])]
            else:
                names = [s.name]
            for n in names:
                links: tuple[int, ...] = ()
                if s.kind == "c2c":
                    per = self.values["c2c"]["links_per_slice"]
                    links = tuple(range(link, link + per))
                    link += per
                queues.append(Queue(len(queues), n, s.kind, s.position, s, links))
        return queues

    @cached_property
    def queue_by_name(self) -> dict[str, Queue]:
        return {q.name: q for q in self.queues}

    @cached_property
    def slice_by_name(self) -> dict[str, Slice]:
        return {s.name: s for s in self.slices}

    @cached_property
    def mem_slices(self) -> list[Slice]:
        return [s for s in self.slices if s.kind == "mem"]

    @cached_property
    def link_queue(self) -> dict[int, Queue]:
        return {l: q for q in self.queues for l in q.links}

    @property
    def positions(self) -> int:
        return len(self.slices)

    @property
    def lanes(self) -> int:
        return self.values["vector"]["lanes"]

    @property
    def streams(self) -> int:
        return self.values["streams"]["per_direction"]

    @property
    def words(self) -> int:
        return self.values["mem"]["words"]

    @property
    def links(self) -> int:
        return len(self.link_queue)

    # --- derived peaks (architecture page, section 4) ---------------------------------------
    @cached_property
    def peaks(self) -> dict[str, float]:
        v = self.values
        hz = v["clock"]["mhz"] * 1e6
        planes = sum(1 for q in self.queues if q.kind == "mxm")
        macs = v["mxm"]["rows"] * v["mxm"]["cols"]
        int8_ops = planes * macs * 2 * hz
        link_bps = v["c2c"]["link_bytes_per_cycle"] * hz
        return {
            "sram_mb": len(self.mem_slices) * self.words * self.lanes / 1e6,
            "int8_tops": int8_ops / 1e12,
            "f16_tflops": int8_ops / v["mxm"]["float_occupancy"] * v["mxm"]["int_occupancy"] / 1e12,
            "vector_alus": v["vxm"]["alus"] * self.lanes,
            "c2c_gbps": self.links * link_bps / 1e9,
            # one read and one write of a vector per slice per cycle
            "sram_tbps": len(self.mem_slices) * self.lanes * 2 * hz / 1e12,
        }


def _key_loc(source: str, text: str, table: str, key: str | None = None) -> SourceLoc:
    """Where ``[table]`` or ``key`` inside it stands in the TOML text (best effort)."""
    lines = text.splitlines()
    start = None
    for i, line in enumerate(lines):
        if re.match(rf"^\s*\[\s*{re.escape(table)}\s*\]", line):
            start = i
            if key is None:
                return SourceLoc(source, i + 1, line.index("[") + 1, len(line.strip()))
            break
    if start is None and key is None:
        # a top-level key (``name = ...``, or a table written as a value) before the first header
        for i, line in enumerate(lines):
            if re.match(r"^\s*\[", line):
                break
            m = re.match(rf"^(\s*){re.escape(table)}\s*=", line)
            if m:
                return SourceLoc(source, i + 1, len(m.group(1)) + 1, len(table))
    if start is not None and key is not None:
        for i in range(start + 1, len(lines)):
            if re.match(r"^\s*\[", lines[i]):
                break
            m = re.match(rf"^(\s*){re.escape(key)}\s*=", lines[i])
            if m:
                return SourceLoc(source, i + 1, len(m.group(1)) + 1, len(key))
        return SourceLoc(source, start + 1, 1, len(lines[start].strip()))
    return SourceLoc(source)


def _expand_floorplan(entries: list, source: str, text: str) -> list[Slice]:
    loc = _key_loc(source, text, "floorplan", "slices")
    names: list[str] = []
    for e in entries:
        if not isinstance(e, str):
            raise DiagnosticError(error(f"floorplan.slices: entries must be strings, not {e!r}", loc))
        m = _RANGE_RE.match(e)
        if m:
            if m.group(1) != m.group(3):
                raise DiagnosticError(error(f"floorplan.slices: range '{e}' crosses hemispheres", loc))
            a, b = int(m.group(2)), int(m.group(4))
            if abs(b - a) >= MAX_QUEUES:  # checked before the names are made (MEM_W0..MEM_W99999999)
                raise DiagnosticError(error(f"floorplan.slices: range '{e}' holds more slices than a chip has "
                                            f"queues ({MAX_QUEUES})", loc))
            step = 1 if b >= a else -1
            names.extend(f"MEM_{m.group(1)}{i}" for i in range(a, b + step, step))
        else:
            names.append(e)
    slices: list[Slice] = []
    seen: set[str] = set()
    for pos, n in enumerate(names):
        m = _SLICE_RE.match(n)
        if not m:
            raise DiagnosticError(error(
                f"floorplan.slices: unknown slice '{n}' (expected MEM_W<n>, MEM_E<n>, VXM, "
                "MXM_W/E, SXM_W/E or C2C_W/E)", loc))
        if n in seen:
            raise DiagnosticError(error(f"floorplan.slices: slice '{n}' appears twice", loc))
        seen.add(n)
        if m.group(1):
            slices.append(Slice(n, "mem", pos, m.group(2)))
        elif m.group(4):
            slices.append(Slice(n, "vxm", pos, ""))
        else:
            slices.append(Slice(n, m.group(5).lower(), pos, m.group(6)))
    if sum(1 for s in slices if s.kind == "vxm") != 1:
        raise DiagnosticError(error("floorplan.slices: a chip has exactly one VXM", loc))
    return slices


def parse_config(text: str, source: str) -> ChipConfig:
    """Validate a configuration's TOML text; every problem is a diagnostic naming the key."""
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        loc = SourceLoc(source, int(m.group(1)), int(m.group(2))) if m else SourceLoc(source)
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        raise DiagnosticError(error(f"invalid TOML: {msg}", loc)) from None
    diags = []
    if "name" not in values:
        diags.append(error("missing key 'name' (a string naming the configuration)", SourceLoc(source)))
    elif not isinstance(values["name"], str):
        diags.append(error(f"key 'name' must be a string, not {values['name']!r}", _key_loc(source, text, "name")))
    for key in values:
        if key != "name" and key not in SCHEMA:
            diags.append(error(f"unknown key '{key}'", _key_loc(source, text, key)))
    for table, keys in SCHEMA.items():
        got = values.get(table)
        if got is None:
            if table not in OPTIONAL_TABLES:
                diags.append(error(f"missing table '[{table}]'", SourceLoc(source)))
            continue
        if not isinstance(got, dict):
            diags.append(error(f"'{table}' must be a table", _key_loc(source, text, table)))
            continue
        for key in got:
            if key not in keys:
                diags.append(error(f"unknown key '{table}.{key}'", _key_loc(source, text, table, key)))
        for key, (typ, minimum) in keys.items():
            if key not in got:
                diags.append(error(f"missing key '{table}.{key}'", _key_loc(source, text, table)))
                continue
            v = got[key]
            ok = isinstance(v, typ) and not isinstance(v, bool)
            if typ is float:
                ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not ok:
                diags.append(error(
                    f"key '{table}.{key}' must be {'an integer' if typ is int else 'a number' if typ is float else 'a list'}, "
                    f"not {v!r}", _key_loc(source, text, table, key)))
            elif typ is not list and v < minimum:
                diags.append(error(f"key '{table}.{key}' must be at least {minimum}, not {v}",
                                   _key_loc(source, text, table, key)))
    if diags:
        raise DiagnosticError(diags)
    cfg = ChipConfig(values["name"], source, text, values)
    _check_derived(cfg)
    return cfg


def _check_derived(cfg: ChipConfig) -> None:
    v = cfg.values
    loc = lambda t, k: _key_loc(cfg.source, cfg.text, t, k)  # noqa: E731
    # bounds that the derived lists (queues, links) depend on, checked before they are made:
    # vxm.alus = 2**64 would otherwise build 2**64 queue names
    for table, key, most, why in (("vxm", "alus", MAX_QUEUES, "a chip has at most 255 queues"),
                                  ("mxm", "planes_per_slice", MAX_QUEUES, "a chip has at most 255 queues"),
                                  ("c2c", "links_per_slice", 16, "4 bits in an instruction word"),
                                  ("vector", "lanes", 1 << 15, "a lane count is 16 signed bits in an instruction "
                                                                "word")):
        if v[table][key] > most:
            raise DiagnosticError(error(f"{table}.{key} must be at most {most} ({why})", loc(table, key)))
    cfg.slices  # validates the floor plan
    if v["vector"]["lanes"] % v["vector"]["superlanes"]:
        raise DiagnosticError(error("vector.lanes must be a multiple of vector.superlanes", loc("vector", "lanes")))
    if v["streams"]["per_direction"] > 32:
        raise DiagnosticError(error("streams.per_direction must be at most 32 (5 bits in an instruction word)",
                                    loc("streams", "per_direction")))
    if v["mem"]["words"] > 1 << 16:
        raise DiagnosticError(error("mem.words must be at most 65536 (16 bits in an instruction word)",
                                    loc("mem", "words")))
    if v["mxm"]["rows"] != v["vector"]["lanes"] or v["mxm"]["cols"] != v["vector"]["lanes"]:
        raise DiagnosticError(error("mxm.rows and mxm.cols must equal vector.lanes", loc("mxm", "rows")))
    if v["mxm"]["max_rows_per_lw"] > 31:
        raise DiagnosticError(error("mxm.max_rows_per_lw must be at most 31 (5 bits in an instruction word)",
                                    loc("mxm", "max_rows_per_lw")))
    if v["mxm"]["acc_slots"] > 64:
        raise DiagnosticError(error("mxm.acc_slots must be at most 64 (6 bits in an instruction word)",
                                    loc("mxm", "acc_slots")))
    if cfg.links > 16:
        raise DiagnosticError(error("a chip has at most 16 links (4 bits in an instruction word)",
                                    loc("c2c", "links_per_slice")))
    if len(cfg.queues) > MAX_QUEUES:
        raise DiagnosticError(error(f"a chip has at most {MAX_QUEUES} queues", loc("floorplan", "slices")))


_cache: dict[str, ChipConfig] = {}


def builtin_targets() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(CONFIG_DIR) if f.endswith(".toml"))


def load_config(name_or_path: str | None = None, loc: SourceLoc | None = None) -> ChipConfig:
    """A built-in configuration by name (``lpu-v1``) or a configuration file by path."""
    name_or_path = name_or_path or DEFAULT_TARGET
    if name_or_path in _cache:
        return _cache[name_or_path]
    path = name_or_path
    if not os.sep in path and not path.endswith(".toml"):
        path = os.path.join(CONFIG_DIR, name_or_path + ".toml")
        if not os.path.exists(path):
            raise DiagnosticError(error(
                f"unknown target '{name_or_path}' (built in: {', '.join(builtin_targets())}; "
                "or pass a configuration file)", loc))
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise DiagnosticError(error(f"cannot read configuration '{path}': {e.strerror}", loc)) from None
    except UnicodeDecodeError as e:
        raise DiagnosticError(error(f"configuration '{path}' is not UTF-8 text ({e.reason} at byte {e.start})",
                                    loc)) from None
    except ValueError:  # a NUL in the path: no file has that name
        raise DiagnosticError(error(f"cannot read configuration {path!r}: a file name holds no NUL", loc)) from None
    cfg = parse_config(text, path)
    _cache[name_or_path] = cfg
    return cfg


def config_from_text(text: str, source: str) -> ChipConfig:
    """A configuration embedded in an object or image (cached by its text)."""
    key = "text:" + text
    if key not in _cache:
        _cache[key] = parse_config(text, source)
    return _cache[key]
