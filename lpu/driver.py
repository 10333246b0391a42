"""``lpu``: the driver, one subcommand per job (``lpu arch``; ``compile`` and ``run`` to come).

Each subcommand is a ``Command``: a name, a one-line help, a function that adds its arguments
to its parser, and a function that does the work given the parsed arguments. Adding one is
adding an entry to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

from lpu import __version__
from lpu.arch.config import ChipConfig, DEFAULT_TARGET, load_config
from lpu.arch.isa import UNIT_KINDS
from lpu.diagnostics import SourceManager
from lpu.tool import ArgumentParser as _Parser, run_tool

PROG = "lpu"


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, SourceManager], int | None]


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE|NAME", default=DEFAULT_TARGET,
                   help=f"chip configuration: a built-in name or a TOML file (default: {DEFAULT_TARGET})")


# --- lpu arch --------------------------------------------------------------------------------
def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def floorplan_lines(cfg: ChipConfig) -> list[tuple[str, str, str]]:
    """(positions, slices, what) rows, west to east; runs of MEM slices collapse to one row."""
    rows: list[tuple[str, str, str]] = []
    slices = cfg.slices
    i = 0
    while i < len(slices):
        s = slices[i]
        j = i
        if s.kind == "mem":
            step = None
            while j + 1 < len(slices):
                n = slices[j + 1]
                if n.kind != "mem" or n.hemisphere != s.hemisphere:
                    break
                d = int(n.name[5:]) - int(slices[j].name[5:])
                if abs(d) != 1 or (step is not None and d != step):
                    break
                step, j = d, j + 1
        queues = [q for q in cfg.queues if q.slice is s]
        if j > i:
            names = f"{s.name}..{slices[j].name}"
            what = f"{j - i + 1} SRAM slices, {cfg.words} words each"
        elif s.kind == "mem":
            names, what = s.name, f"SRAM slice, {cfg.words} words"
        elif s.kind == "vxm":
            names, what = s.name, f"{len(queues)} ALUs {queues[0].name}..{queues[-1].name}"
        elif s.kind == "mxm":
            names, what = s.name, f"{len(queues)} planes " + ", ".join(q.name for q in queues)
        elif s.kind == "c2c":
            links = [l for q in queues for l in q.links]
            names, what = s.name, (f"links L{links[0]}-L{links[-1]}" if links else "no links")
        else:
            names, what = s.name, "switch unit"
        rows.append((_span(s.position, slices[j].position), names, what))
        i = j + 1
    return rows


# label, peaks key, unit, digits
_PEAKS = [
    ("SRAM", "sram_mb", "MB", 1),
    ("int8", "int8_tops", "TOP/s", 1),
    ("f16", "f16_tflops", "TFLOP/s", 1),
    ("vector ALUs", "vector_alus", "", 0),
    ("C2C", "c2c_gbps", "GB/s", 1),
    ("SRAM bandwidth", "sram_tbps", "TB/s", 1),
]


def arch_report(cfg: ChipConfig) -> str:
    """What ``lpu arch`` prints: the configuration, its floor plan, queues and peaks."""
    out = [f"configuration: {cfg.name} ({cfg.source})",
           f"clock: {cfg['clock.mhz']} MHz",
           "",
           f"floor plan, west to east ({cfg.positions} positions):"]
    rows = floorplan_lines(cfg)
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    out += [f"  {p:<{w0}}  {n:<{w1}}  {what}".rstrip() for p, n, what in rows]
    counts = {k: sum(1 for q in cfg.queues if q.kind == k) for k in UNIT_KINDS}
    out += ["", f"queues: {len(cfg.queues)} (" + ", ".join(f"{n} {k}" for k, n in counts.items() if n) + ")", ""]

    seed = cfg.values.get("seed", {})
    table = [("derived peak", "model", "seed", "model/seed")]
    for label, key, unit, digits in _PEAKS:
        model = cfg.peaks[key]
        name = f"{label} ({unit})" if unit else label
        if key in seed:
            ratio = f"{model / seed[key]:.3f}" if seed[key] else "-"
            mark = " *" if key == "sram_tbps" else ""
            table.append((name, f"{model:,.{digits}f}", f"{seed[key]:,.{digits}f}", ratio + mark))
        else:
            table.append((name, f"{model:,.{digits}f}", "-", "-"))
    widths = [max(len(r[c]) for r in table) for c in range(4)]
    for r in table:
        out.append(f"  {r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip())
    if "sram_tbps" in seed:
        # architecture page, section 4: say so wherever both figures appear
        out += ["",
                f"* SRAM bandwidth: the seed's {seed['sram_tbps']:g} TB/s is a vendor figure that this model does",
                "  not claim; the model counts one read and one write of a vector per MEM slice per cycle",
                f"  ({len(cfg.mem_slices)} slices x {cfg.lanes} B x 2 x {cfg['clock.mhz']} MHz)."]
    return "\n".join(out) + "\n"


def _run_arch(args: argparse.Namespace, sources: SourceManager) -> int:
    cfg = load_config(args.config)
    sys.stdout.write(arch_report(cfg))
    return 0


COMMANDS: list[Command] = [
    Command("arch", "show a chip configuration: floor plan, queues and derived peaks",
            _add_config, _run_arch),
    Command("run", "run a .lpu program's function on .npy inputs (--reference: the reference interpreter)",
            lambda p: __import__("lpu.compile", fromlist=["x"]).add_run_arguments(p),
            lambda args, sources: __import__("lpu.compile", fromlist=["x"]).run_command(args, sources)),
    Command("compile", "compile a df function to a linked system image (-S: the scheduled assembly)",
            lambda p: __import__("lpu.compile", fromlist=["x"]).add_compile_arguments(p),
            lambda args, sources: __import__("lpu.compile", fromlist=["x"]).run_compile(args, sources)),
    Command("import", "import a Llama GGUF checkpoint or an ONNX model as a .lpu module and .npy weights "
            "(docs/models.md, docs/onnx.md)",
            lambda p: __import__("lpu.models.importer", fromlist=["x"]).add_arguments(p),
            lambda args, sources: __import__("lpu.models.importer", fromlist=["x"]).run(args, sources)),
    Command("generate", "generate text with a checkpoint on simulated chips, token by token (docs/llm.md)",
            lambda p: __import__("lpu.models.generate", fromlist=["x"]).add_arguments(p),
            lambda args, sources: __import__("lpu.models.generate", fromlist=["x"]).run(args, sources)),
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="The LPU toolchain driver.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    for c in COMMANDS:
        p = sub.add_parser(c.name, help=c.help, description=c.help)
        c.add_arguments(p)
        p.set_defaults(run=c.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: no command given (one of: {', '.join(c.name for c in COMMANDS)})",
              file=sys.stderr)
        return 1
    return run_tool(lambda sources: args.run(args, sources), PROG)


if __name__ == "__main__":
    sys.exit(main())
