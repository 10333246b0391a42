"""System descriptions: which chips there are, what runs on each, and how their links are wired.

A system file is TOML (docs/linker.md, "System description")::

    topology = "two-chips"          # optional: start from a ready-made topology (or a file)
    config = "lpu-v1"               # optional: every chip's default configuration
    links = ["ping.L8..L15 <-> pong.L0..L7", { wire = "ping.L0 <-> pong.L8", latency = 300 }]

    [chips.ping]
    objects = ["ping"]              # object file stems that run on this chip (phase 0)
    [chips.pong]
    phases = [["pong_a"], ["pong_b"]]   # or: consecutive phases

The ready-made topologies in ``linker/topologies/`` are system files without objects.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field

from lpu.arch.config import ChipConfig, load_config
from lpu.diagnostics import Diagnostic, DiagnosticError, SourceLoc, error, source_lines
from lpu.files import read_text

TOPOLOGY_DIR = os.path.join(os.path.dirname(__file__), "topologies")
IMPLICIT_CHIP = "chip0"
MAX_LINKS = 16  # a link field has 4 bits (the configuration may give a chip fewer)

_CHIP_NAME = r"[A-Za-z_][A-Za-z0-9_$]*"
_CHIP_RE = re.compile(rf"^{_CHIP_NAME}$")
# one end of a wire: chip.L3, or a range chip.L8..L15
_END_RE = re.compile(rf"^\s*({_CHIP_NAME})\.L([0-9]+)(?:\.\.L?([0-9]+))?\s*$")
_TOP_KEYS = {"topology", "config", "links", "chips"}
_CHIP_KEYS = {"config", "objects", "phases"}


@dataclass(slots=True)
class WireDesc:
    """One link as written: ``chip_a.link_a <-> chip_b.link_b``; latency None = the config's."""

    chip_a: str
    link_a: int
    chip_b: str
    link_b: int
    latency: int | None
    loc: SourceLoc | None = None


@dataclass(slots=True)
class ChipDesc:
    name: str
    config: ChipConfig | None = None  # None: the configuration its objects were assembled for
    phases: list[list[str]] = field(default_factory=list)  # object stems, per phase
    phases_given: bool = False  # the file said ``phases`` (so the command line's --phase does not apply)
    loc: SourceLoc | None = None

    @property
    def objects(self) -> list[str]:
        return [o for p in self.phases for o in p]


@dataclass(slots=True)
class SystemDesc:
    chips: dict[str, ChipDesc] = field(default_factory=dict)  # in file order
    wires: list[WireDesc] = field(default_factory=list)
    source: str = "<system>"

    def chip_of(self) -> dict[str, tuple[str, int | None]]:
        """object stem -> (chip, phase index or None when the file gave only ``objects``)."""
        out: dict[str, tuple[str, int | None]] = {}
        for c in self.chips.values():
            for i, p in enumerate(c.phases):
                for o in p:
                    out.setdefault(o, (c.name, i if c.phases_given else None))
        return out


def implicit_system(config: ChipConfig | None = None) -> SystemDesc:
    """The system a link without a system file gets: one chip, every object on it."""
    return SystemDesc({IMPLICIT_CHIP: ChipDesc(IMPLICIT_CHIP, config)}, [], "<implicit one-chip system>")


def builtin_topologies() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(TOPOLOGY_DIR) if f.endswith(".toml"))


def load_system(path: str) -> SystemDesc:
    """A system file (or a built-in topology by name, e.g. ``node``)."""
    if os.sep not in path and not path.endswith(".toml") and path in builtin_topologies():
        path = os.path.join(TOPOLOGY_DIR, path + ".toml")
    return system_from_text(read_text(path), path)


def system_from_text(text: str, source: str, _seen: tuple[str, ...] = ()) -> SystemDesc:
    """Parse and check a system description; every problem is a diagnostic at its line."""
    return _Parser(text, source, _seen).run()


class _Parser:
    def __init__(self, text: str, source: str, seen: tuple[str, ...]) -> None:
        self.text, self.source, self.seen = text, source, seen
        self.lines = source_lines(text)
        self.diags: list[Diagnostic] = []
        self.base_dir = os.path.dirname(os.path.abspath(source)) if not source.startswith("<") else os.getcwd()

    def find(self, needle: str, after: str | None = None) -> SourceLoc:
        """Where ``needle`` first occurs (after the line holding ``after``): a best-effort location
        for a value, since tomllib keeps none."""
        start = 0
        if after is not None:
            for i, line in enumerate(self.lines):
                if after in line:
                    start = i
                    break
        for i in range(start, len(self.lines)):
            col = self.lines[i].find(needle)
            if col >= 0 and not self.lines[i].lstrip().startswith("#"):
                return SourceLoc(self.source, i + 1, col + 1, len(needle))
        return SourceLoc(self.source)

    def key_loc(self, key: str, table: str | None = None) -> SourceLoc:
        pat = re.compile(rf"^\s*{re.escape(key)}\s*=")
        start = 0
        if table is not None:
            hdr = re.compile(rf"^\s*\[\s*{re.escape(table)}\s*\]")
            for i, line in enumerate(self.lines):
                if hdr.match(line):
                    start = i
                    break
        for i in range(start, len(self.lines)):
            m = pat.match(self.lines[i])
            if m:
                return SourceLoc(self.source, i + 1, len(self.lines[i]) - len(self.lines[i].lstrip()) + 1, len(key))
        return self.find(key, None)

    def err(self, message: str, loc: SourceLoc | None) -> Diagnostic:
        d = error(message, loc)
        self.diags.append(d)
        return d

    def config(self, value, loc: SourceLoc) -> ChipConfig | None:
        if not isinstance(value, str):
            self.err(f"'config' must be a string naming a configuration or a file, not {value!r}", loc)
            return None
        path = value
        if (os.sep in value or value.endswith(".toml")) and not os.path.isabs(value):
            path = os.path.join(self.base_dir, value)
        try:
            return load_config(path, loc)
        except DiagnosticError as e:
            self.diags.extend(e.diagnostics)
            return None

    def run(self) -> SystemDesc:
        try:
            values = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as e:
            m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
            loc = SourceLoc(self.source, int(m.group(1)), int(m.group(2))) if m else SourceLoc(self.source)
            msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
            raise DiagnosticError(error(f"invalid TOML: {msg}", loc)) from None
        sys_ = SystemDesc(source=self.source)
        for key in values:
            if key not in _TOP_KEYS:
                self.err(f"unknown key '{key}' (a system file has {', '.join(sorted(_TOP_KEYS))})",
                         self.key_loc(key))
        if "topology" in values:
            self.topology(values["topology"], sys_)
        default_config = None
        if "config" in values:
            default_config = self.config(values["config"], self.key_loc("config"))
            for c in sys_.chips.values():  # the file's default applies to the topology's chips too
                c.config = default_config or c.config
        chips = values.get("chips", {})
        if not isinstance(chips, dict):
            self.err("'chips' must be a table of chips: [chips.NAME]", self.key_loc("chips"))
            chips = {}
        for name, body in chips.items():
            self.chip(name, body, sys_, default_config)
        links = values.get("links", [])
        if not isinstance(links, list):
            self.err("'links' must be a list of wires such as \"chip0.L3 <-> chip1.L9\"", self.key_loc("links"))
            links = []
        for item in links:
            self.link(item, sys_)
        self.check_wires(sys_)
        if self.diags:
            raise DiagnosticError(self.diags)
        return sys_

    def topology(self, value, sys_: SystemDesc) -> None:
        loc = self.key_loc("topology")
        if not isinstance(value, str):
            self.err(f"'topology' must be a string naming a topology or a file, not {value!r}", loc)
            return
        path = value
        if os.sep in value or value.endswith(".toml"):
            path = value if os.path.isabs(value) else os.path.join(self.base_dir, value)
        elif value in builtin_topologies():
            path = os.path.join(TOPOLOGY_DIR, value + ".toml")
        else:
            self.err(f"unknown topology '{value}' (built in: {', '.join(builtin_topologies())}; or a file)", loc)
            return
        if os.path.abspath(path) in self.seen:
            self.err(f"topology '{value}' includes itself", loc)
            return
        try:
            base = system_from_text(read_text(path), path, self.seen + (os.path.abspath(self.source),))
        except DiagnosticError as e:
            self.diags.extend(e.diagnostics)
            return
        sys_.chips.update(base.chips)
        sys_.wires.extend(base.wires)

    def chip(self, name: str, body, sys_: SystemDesc, default_config) -> None:
        loc = self.find(f"chips.{name}")
        if loc.line == 0:
            loc = self.find(name, "chips")
        if not _CHIP_RE.match(name) or name.endswith("."):
            self.err(f"invalid chip name '{name}' (letters, digits, '_' and '$', not starting with a digit)",
                     loc)
            return
        if not isinstance(body, dict):
            self.err(f"chip '{name}' must be a table ([chips.{name}] or {name} = {{ ... }})", loc)
            return
        chip = sys_.chips.get(name) or ChipDesc(name, default_config, [], False, loc)
        chip.loc = loc
        sys_.chips[name] = chip
        for key in body:
            if key not in _CHIP_KEYS:
                self.err(f"unknown key '{key}' in chip '{name}' (a chip has {', '.join(sorted(_CHIP_KEYS))})",
                         self.key_loc(key, f"chips.{name}"))
        if "config" in body:
            chip.config = self.config(body["config"], self.key_loc("config", f"chips.{name}"))
        if "objects" in body and "phases" in body:
            self.err(f"chip '{name}' gives both 'objects' and 'phases'; 'objects' is phase 0 alone",
                     self.key_loc("phases", f"chips.{name}"))
            return
        if "objects" in body:
            objs = body["objects"]
            if not isinstance(objs, list) or not all(isinstance(o, str) for o in objs):
                self.err(f"'objects' of chip '{name}' must be a list of object names (file stems)",
                         self.key_loc("objects", f"chips.{name}"))
                return
            chip.phases, chip.phases_given = [list(objs)], False
        if "phases" in body:
            ph = body["phases"]
            if not isinstance(ph, list) or not all(isinstance(p, list) and all(isinstance(o, str) for o in p)
                                                   for p in ph):
                self.err(f"'phases' of chip '{name}' must be a list of lists of object names",
                         self.key_loc("phases", f"chips.{name}"))
                return
            chip.phases, chip.phases_given = [list(p) for p in ph], True

    def link(self, item, sys_: SystemDesc) -> None:
        latency = None
        if isinstance(item, dict):
            wire = item.get("wire")
            extra = set(item) - {"wire", "latency"}
            loc = self.find(wire) if isinstance(wire, str) else self.key_loc("links")
            if extra:
                self.err(f"unknown key '{sorted(extra)[0]}' in a link (a link has 'wire' and 'latency')", loc)
                return
            if not isinstance(wire, str):
                self.err("a link table needs 'wire', e.g. { wire = \"chip0.L3 <-> chip1.L9\", latency = 250 }",
                         loc)
                return
            latency = item.get("latency")
            if latency is not None and (not isinstance(latency, int) or isinstance(latency, bool)
                                        or latency < 0):
                self.err(f"a link's latency must be a number of cycles (0 or more), not {latency!r}", loc)
                return
            item = wire
        elif not isinstance(item, str):
            self.err(f"a link is a string \"chip0.L3 <-> chip1.L9\" or a table with 'wire', not {item!r}",
                     self.key_loc("links"))
            return
        loc = self.find(item)
        if loc.line == 0:
            loc = self.key_loc("links")
        parts = item.split("<->")
        ends = [_END_RE.match(p) for p in parts] if len(parts) == 2 else []
        if len(ends) != 2 or not all(ends):
            self.err(f"malformed link '{item}' (expected 'chip.L<n> <-> chip.L<n>' or a range "
                     "'chip.L8..L15 <-> chip.L0..L7')", loc)
            return
        spans = []
        for m in ends:
            lo = int(m.group(2))
            hi = int(m.group(3)) if m.group(3) is not None else lo
            if hi < lo:
                self.err(f"link range L{lo}..L{hi} runs backwards in '{item}'", loc)
                return
            if hi >= MAX_LINKS:  # before the range is made: L0..L99999999999 is a typo, not a list to build
                self.err(f"chip '{m.group(1)}' has links L0..L{MAX_LINKS - 1}; there is no L{hi}", loc)
                return
            spans.append((m.group(1), list(range(lo, hi + 1))))
        (ca, la), (cb, lb) = spans
        if len(la) != len(lb):
            self.err(f"link ranges of different lengths in '{item}': {len(la)} and {len(lb)} links", loc)
            return
        for x, y in zip(la, lb):
            sys_.wires.append(WireDesc(ca, x, cb, y, latency, loc))

    def check_wires(self, sys_: SystemDesc) -> None:
        used: dict[tuple[str, int], WireDesc] = {}
        for w in sys_.wires:
            for chip, link in ((w.chip_a, w.link_a), (w.chip_b, w.link_b)):
                if chip not in sys_.chips:
                    self.err(f"link names chip '{chip}', which the system does not have (chips: "
                             f"{', '.join(sys_.chips) or 'none'})", w.loc)
                    break
                cfg = sys_.chips[chip].config
                if link >= MAX_LINKS or (cfg is not None and link >= cfg.links):
                    most = cfg.links if cfg is not None else MAX_LINKS
                    self.err(f"chip '{chip}' has links L0..L{most - 1}; there is no L{link}", w.loc)
                    break
                other = used.get((chip, link))
                if other is not None:
                    d = self.err(f"{chip}.L{link} is wired twice", w.loc)
                    if other.loc is not None and other.loc != w.loc:
                        d.note(f"{chip}.L{link} is first wired here", other.loc)
                    break
                used[(chip, link)] = w
