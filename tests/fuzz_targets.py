"""Fuzz targets: every loader of the toolchain, fed mutated inputs through its command line.

A target turns one input (the bytes of a file) into one run of a tool's ``main([...])`` and
checks the contract of every tool (docs/tools.md, "Tests"): exit status 0 or 1, never an
exception (a traceback); on 1, a diagnostic on standard error and no output file left behind
(not even a temporary one); no run longer than ``HANG_SECONDS``. Some targets check more of
what succeeds: an assembled object disassembles and reassembles to the same bytes, a printed
dataflow module reads back to the same text.

    objects   an object (.o) for lpu-objdump -d -h -t -r and lpu-ld, and lpu-sim of what links
    images    a linked image (.lpx) for lpu-sim and lpu-objdump -d, its checksum fixed up
              so that the damage reaches the checks behind it
    systems   a system description (.toml) for lpu-ld --system
    configs   a chip configuration (.toml) named by an assembly file's target
    npy       an input array (.npy) for lpu-sim --input and the assembler's load("...")
    asm       assembly text (kernels) for lpu-as, then objdump -d and lpu-as again
    dataflow  dataflow text (functions) for lpu-opt, then lpu-opt again

Inputs come from seeds (the examples) and mutations: bit flips, bytes and integer fields set to
values that break counts and offsets, truncation, insertion, deletion, and splicing of one
range over another; for text also characters, lines and tokens. The default suite
(tests/test_fuzz_loaders.py) draws a few hundred derandomized mutations with hypothesis;
``make fuzz`` runs each target for a while, with atheris (coverage-guided) where it installs:

    python tests/fuzz_targets.py [--seconds N] [--engine atheris|hypothesis] [TARGET ...]
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import importlib.util
import io
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANG_SECONDS = 20  # far beyond any of these inputs' real time: only a hang trips it


class ContractBroken(AssertionError):
    """A tool broke the contract on an input (the message says how)."""


class _Hang(BaseException):  # not an Exception: no `except Exception` of a tool may swallow it
    pass


def _alarm(_sig, _frame):
    raise _Hang()


@contextlib.contextmanager
def _time_limit(seconds: float):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


RECORD: list[tuple[str, int, str]] | None = None  # when a list: (what, status, stderr) of every run


def run_tool(main: Callable, argv: list[str], outputs: list[str], workdir: str, what: str) -> int:
    """Run one tool in this process; its exit status, or ``ContractBroken``."""
    err = io.StringIO()
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    start = time.monotonic()
    try:
        with _time_limit(HANG_SECONDS), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = main(argv)
    except _Hang:
        raise ContractBroken(f"{what}: no answer within {HANG_SECONDS} s") from None
    except SystemExit as e:  # argparse: the arguments are the harness's, always valid
        raise ContractBroken(f"{what}: exited with {e.code!r}:\n{err.getvalue()}") from None
    except BaseException as e:  # noqa: BLE001 - an exception out of main is a traceback for the user
        raise ContractBroken(f"{what}: {type(e).__name__}: {e}") from e
    text = err.getvalue()
    if rc not in (0, 1):
        raise ContractBroken(f"{what}: exit status {rc!r}")
    if "Traceback" in text:
        raise ContractBroken(f"{what}: a traceback on standard error:\n{text}")
    if rc == 1:
        if not re.search(r"(^|: )error: ", text.split("\n", 1)[0]):
            raise ContractBroken(f"{what}: exit status 1 without a diagnostic first: {text[:300]!r}")
        left = [p for p in outputs if os.path.exists(p)]
        if left:
            raise ContractBroken(f"{what}: failed but wrote {left}:\n{text}")
    stray = [f for f in os.listdir(workdir) if f.startswith(".tmp-")]
    if stray:
        raise ContractBroken(f"{what}: left temporary files {stray}")
    if time.monotonic() - start > HANG_SECONDS:
        raise ContractBroken(f"{what}: took {time.monotonic() - start:.1f} s")
    if RECORD is not None:
        RECORD.append((what, rc, text))
    return rc


# --- the tools, imported once (atheris instruments what is loaded before it starts) ------------------
@lru_cache(maxsize=None)
def tools() -> dict[str, Callable]:
    from lpu.asm.cli import main as lpu_as
    from lpu.asm.objdump import main as lpu_objdump
    from lpu.dsl.cli import main as lpu_opt
    from lpu.linker.cli import main as lpu_ld
    from lpu.sim.cli import main as lpu_sim

    return {"lpu-as": lpu_as, "lpu-objdump": lpu_objdump, "lpu-ld": lpu_ld, "lpu-sim": lpu_sim, "lpu-opt": lpu_opt}


# --- seeds ------------------------------------------------------------------------------------------
def _example(*parts: str) -> str:
    return os.path.join(ROOT, "examples", *parts)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _absolute_loads(text: str, path: str) -> str:
    """``load("x.npy")`` relative to the file's directory, made absolute: the mutant lives elsewhere."""
    base = os.path.dirname(path)
    return re.sub(r'load\("([^"/]+)"\)', lambda m: f'load("{os.path.join(base, m.group(1))}")', text)


@lru_cache(maxsize=None)
def _assembled(path: str) -> bytes:
    from lpu.asm.cli import assemble_file

    return assemble_file(path)


ASM_SEEDS = ["vadd.lpu", "copy.lpu", "gemv.lpu", "pingpong/ping.lpu", "pingpong/pong.lpu",
             "pipeline/producer.lpu", "pipeline/consumer.lpu", "allgather/chip0.lpu"]
SYSTEMS = {  # a system description and the objects it links
    "pingpong": ["ping", "pong"], "pipeline": ["producer", "consumer"],
    "allgather": [f"chip{i}" for i in range(8)],
}


@lru_cache(maxsize=None)
def seeds(target: str) -> tuple[bytes, ...]:
    if target == "objects":
        return tuple(_assembled(_example("asm", p)) for p in ASM_SEEDS)
    if target == "images":
        return _images()
    if target == "systems":
        return tuple(_read(_example("asm", s, "system.toml")).encode() for s in SYSTEMS)
    if target == "configs":
        return (_read(os.path.join(ROOT, "arch", "configs", "lpu-v1.toml")).encode(),)
    if target == "npy":
        return tuple(_read_bytes(_example("asm", n)) for n in ("vadd_a.npy", "vadd_b.npy", "copy_src.npy"))
    if target == "asm":
        return tuple(_absolute_loads(_read(_example("asm", p)), _example("asm", p)).encode() for p in ASM_SEEDS)
    if target == "dataflow":
        paths = sorted(glob.glob(_example("*.lpu"))) + sorted(glob.glob(_example("multichip", "*.lpu")))
        return tuple(_absolute_loads(_read(p), p).encode() for p in paths)
    raise KeyError(target)


@lru_cache(maxsize=None)
def _images() -> tuple[bytes, ...]:
    """Linked images of the examples: one chip (vadd), two chips (pingpong, pipeline)."""
    from lpu.asm.objfile import read_object
    from lpu.linker.imagefile import write_image
    from lpu.linker.link import link_objects
    from lpu.linker.system import load_system

    out = []
    vadd = link_objects([("vadd", read_object(_assembled(_example("asm", "vadd.lpu"))))])
    out.append(write_image(vadd))
    for name, objs in (("pingpong", ["ping", "pong"]), ("pipeline", ["producer", "consumer"])):
        system = load_system(_example("asm", name, "system.toml"))
        img = link_objects([(o, read_object(_assembled(_example("asm", name, o + ".lpu")))) for o in objs], system)
        out.append(write_image(img))
    return tuple(out)


def fix_checksum(data: bytes) -> bytes:
    """The image with its .lpu.system checksum recomputed over what the other sections now hold
    (unchanged when its section headers no longer say where they are)."""
    from lpu.asm import elf as E

    try:
        elf = E.read_elf(data)
        shoff, shnum = struct.unpack_from("<Q", data, 40)[0], struct.unpack_from("<H", data, 60)[0]
        heads = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + 64 * i) for i in range(1, shnum)]
        system = next(h for h in heads if h[1] == E.SHT_LOUSER + 0x10)
    except (ValueError, StopIteration, struct.error):
        return data
    crc = 0
    for s in elf.sections[1:]:
        crc = zlib.crc32(s.data, crc)
    if system[5] < 8:
        return data
    b = bytearray(data)
    struct.pack_into("<I", b, system[4] + 4, crc)
    return bytes(b)


# --- mutations ----------------------------------------------------------------------------------------
# An op is four integers (kind, a, b, c); positions wrap around the input, so any op applies to
# any input, and hypothesis and a seeded generator can both produce them.
INTERESTING = [0, 1, 2, 3, 4, 7, 8, 12, 16, 63, 64, 127, 128, 255, 256, 320, 1023, 4096, 8191, 8192, 0x7FFF,
               0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, (1 << 63) - 1, (1 << 64) - 1]
BYTE_KINDS = 10
TEXT_KINDS = 12


def mutate_bytes(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for kind, x, y, z in ops:
        kind %= BYTE_KINDS
        n = len(b)
        if n == 0:
            b += bytes([z & 0xFF])
            continue
        i = x % n
        if kind == 0:  # flip a bit
            b[i] ^= 1 << (y % 8)
        elif kind == 1:  # set a byte
            b[i] = z & 0xFF
        elif kind in (2, 3):  # an aligned u32 / u64 field (counts, offsets, sizes, indices)
            width = 4 if kind == 2 else 8
            at = i - i % width
            v = (INTERESTING + [n, n - 1, n + 1, at])[y % (len(INTERESTING) + 4)]
            if at + width <= n:
                struct.pack_into("<I" if width == 4 else "<Q", b, at, v % (1 << (8 * width)))
        elif kind == 4:  # truncate
            del b[x % (n + 1):]
        elif kind == 5:  # insert bytes
            b[i:i] = bytes([z & 0xFF]) * (1 + y % 16)
        elif kind == 6:  # delete a range
            del b[i: i + 1 + y % 64]
        elif kind == 7:  # splice: one range over another
            src = b[i: i + 1 + y % 256]
            dst = z % n
            b[dst: dst + len(src)] = src
        elif kind == 8:  # duplicate a range
            src = b[i: i + 1 + y % 256]
            b[z % n: z % n] = src
        else:  # a small integer added to a byte (off-by-one of a count)
            b[i] = (b[i] + (y % 7) - 3) & 0xFF
    return bytes(b)


# characters that lexers treat specially, or that break lines and file names
TEXT_CHARS = list("\n\t \x0c\x0b\r\x00\"\\[]{}()<>@%,=:;.-+#'xe0123456789") + ["\x85", "\u2028", "é", "\ufeff"]
_TOKEN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*|%[A-Za-z0-9_]+|@[A-Za-z0-9_.$]+|[0-9]+|\S")
_NUMBER_RE = re.compile(r"(?<![A-Za-z_%@])[0-9]+")


def vocabulary(target: str) -> list[str]:
    """The tokens of a target's seeds: what text mutations insert."""
    words: dict[str, None] = {}
    for s in seeds(target):
        for t in _TOKEN_RE.findall(s.decode("utf-8", "replace")):
            words.setdefault(t)
    return sorted(words)


def mutate_text(data: bytes, ops, vocab: list[str]) -> bytes:
    text = data.decode("utf-8", "surrogateescape")
    for kind, x, y, z in ops:
        kind %= TEXT_KINDS
        if kind >= 9:  # the bytes under the text
            raw = mutate_bytes(text.encode("utf-8", "surrogateescape"), [(kind - 9, x, y, z)])
            text = raw.decode("utf-8", "surrogateescape")
            continue
        if kind in (4, 5, 6):  # lines
            lines = text.split("\n")
            i, j = x % len(lines), y % len(lines)
            if kind == 4:
                del lines[i]
            elif kind == 5:
                lines.insert(i, lines[j])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
            continue
        n = len(text)
        if n == 0:
            text = vocab[z % len(vocab)] if vocab else "x"
            continue
        i = x % n
        if kind == 0:
            text = text[:i] + text[i + 1 + z % 8:]
        elif kind == 1:
            text = text[:i] + text[i: i + 1 + z % 16] + text[i:]
        elif kind == 2:
            a, b = sorted((i, y % n))
            if a != b:
                text = text[:a] + text[b] + text[a + 1: b] + text[a] + text[b + 1:]
        elif kind == 3:
            text = text[:i] + TEXT_CHARS[z % len(TEXT_CHARS)] + text[i:]
        elif kind == 7 and vocab:
            text = text[:i] + " " + vocab[z % len(vocab)] + " " + text[i:]
        elif kind == 8:  # a number replaced by one that breaks sizes and counts
            nums = list(_NUMBER_RE.finditer(text))
            if nums:
                m = nums[y % len(nums)]
                text = text[: m.start()] + str(INTERESTING[z % len(INTERESTING)]) + text[m.end():]
    return text.encode("utf-8", "surrogateescape")


# --- the targets --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    name: str
    text: bool  # mutated as text (characters, lines, tokens) rather than as bytes
    run: Callable[[bytes, str], None]  # one input, a fresh directory


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def _objects(data: bytes, d: str) -> None:
    t = tools()
    obj = _write(os.path.join(d, "x.o"), data)
    out = os.path.join(d, "x.txt")
    run_tool(t["lpu-objdump"], ["-d", "-h", "-t", "-r", obj, "-o", out], [out], d, "lpu-objdump")
    lpx, lmap = os.path.join(d, "a.lpx"), os.path.join(d, "a.map")
    if run_tool(t["lpu-ld"], [obj, "-o", lpx, "-Map", lmap], [lpx, lmap], d, "lpu-ld") == 0:
        run_tool(t["lpu-sim"], [lpx, "--stats", "json"], [], d, "lpu-sim (what lpu-ld linked)")


def _images_target(data: bytes, d: str) -> None:
    t = tools()
    for variant in dict.fromkeys([data, fix_checksum(data)]):
        img = _write(os.path.join(d, "x.lpx"), variant)
        out = os.path.join(d, "x.txt")
        run_tool(t["lpu-objdump"], ["-d", "-h", "-t", img, "-o", out], [out], d, "lpu-objdump")
        npy = os.path.join(d, "o.npy")
        run_tool(t["lpu-sim"], [img, "--stats", "json", "--dump", "--output", f"{_a_symbol(variant)}={npy}"], [npy],
                 d, "lpu-sim")
        for p in (out, npy):
            if os.path.exists(p):
                os.unlink(p)


def _a_symbol(image: bytes) -> str:
    """A symbol of the image for --output to name, when it reads (else one it cannot have)."""
    from lpu.diagnostics import DiagnosticError
    from lpu.linker.imagefile import read_image

    try:
        img = read_image(image, "x.lpx")
    except DiagnosticError:
        return "nothing"
    names = [f"{c.name}:{s.name}" for c in img.chips for s in c.symbols]
    return names[0] if names else "nothing"


@lru_cache(maxsize=None)
def _system_objects(name: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((o, _assembled(_example("asm", name, o + ".lpu"))) for o in SYSTEMS[name])


def _systems(data: bytes, d: str) -> None:
    toml = _write(os.path.join(d, "system.toml"), data)
    text = data.decode("utf-8", "replace")
    # the objects of the example the text still names (a mutant that names none links pingpong's)
    name = "pipeline" if "producer" in text else "pingpong" if "ping" in text else \
        "allgather" if "chip" in text else "pingpong"
    objs = [_write(os.path.join(d, o + ".o"), b) for o, b in _system_objects(name)]
    lpx = os.path.join(d, "a.lpx")
    run_tool(tools()["lpu-ld"], ["--system", toml, *objs, "-o", lpx], [lpx], d, "lpu-ld --system")


def _configs(data: bytes, d: str) -> None:
    cfg = _write(os.path.join(d, "chip.toml"), data)
    src = os.path.join(d, "k.lpu")
    text = _read(_example("asm", "vadd.lpu")).replace('target "lpu-v1"', f'target "{cfg}"')
    _write(src, _absolute_loads(text, _example("asm", "vadd.lpu")).encode())
    obj = os.path.join(d, "k.o")
    run_tool(tools()["lpu-as"], [src, "-o", obj], [obj], d, "lpu-as (target a configuration file)")


def _npy(data: bytes, d: str) -> None:
    t = tools()
    x = _write(os.path.join(d, "x.npy"), data)
    img = _write(os.path.join(d, "vadd.lpx"), _images()[0])
    out = os.path.join(d, "sum.npy")
    run_tool(t["lpu-sim"], [img, "--input", f"a={x}", "--output", f"sum={out}", "--stats", "none"], [out], d,
             "lpu-sim --input")
    src = _write(os.path.join(d, "t.lpu"), b'target "lpu-v1"\ndata @a : tensor<320xi8> in MEM_W0 = load("x.npy")\n')
    obj = os.path.join(d, "t.o")
    run_tool(t["lpu-as"], [src, "-o", obj], [obj], d, "lpu-as load(...)")


def _asm(data: bytes, d: str) -> None:
    t = tools()
    src = _write(os.path.join(d, "k.lpu"), data)
    obj = os.path.join(d, "k.o")
    if run_tool(t["lpu-as"], [src, "-o", obj], [obj], d, "lpu-as") != 0:
        return
    dis, again = os.path.join(d, "dis.lpu"), os.path.join(d, "again.o")
    if run_tool(t["lpu-objdump"], ["-d", obj, "-o", dis], [dis], d, "lpu-objdump -d") != 0:
        raise ContractBroken("lpu-objdump -d refused what lpu-as wrote")
    if run_tool(t["lpu-as"], [dis, "-o", again], [again], d, "lpu-as (the disassembly)") != 0:
        raise ContractBroken("the disassembly does not reassemble")
    with open(obj, "rb") as f, open(again, "rb") as g:
        if f.read() != g.read():
            raise ContractBroken("the disassembly reassembles to other bytes")


def _dataflow(data: bytes, d: str) -> None:
    t = tools()
    src = _write(os.path.join(d, "f.lpu"), data)
    out, again = os.path.join(d, "out.lpu"), os.path.join(d, "again.lpu")
    if run_tool(t["lpu-opt"], [src, "-o", out], [out], d, "lpu-opt") != 0:
        return
    if run_tool(t["lpu-opt"], [out, "-o", again], [again], d, "lpu-opt (its own output)") != 0:
        raise ContractBroken("lpu-opt does not read back what it printed")
    if _read(out) != _read(again):
        raise ContractBroken("lpu-opt's output is not a fixed point")


TARGETS = {t.name: t for t in [
    Target("objects", False, _objects), Target("images", False, _images_target),
    Target("systems", True, _systems), Target("configs", True, _configs), Target("npy", False, _npy),
    Target("asm", True, _asm), Target("dataflow", True, _dataflow)]}


def mutant(target: str, seed: int, ops) -> bytes:
    t = TARGETS[target]
    base = seeds(target)[seed % len(seeds(target))]
    return mutate_text(base, ops, vocabulary(target)) if t.text else mutate_bytes(base, ops)


def check(target: str, data: bytes) -> None:
    """Run ``target`` on one input in a fresh directory: ``ContractBroken`` if a tool breaks
    the contract."""
    d = tempfile.mkdtemp(prefix=f"fuzz-{target}-")
    try:
        TARGETS[target].run(data, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --- make fuzz ----------------------------------------------------------------------------------------
def _atheris_child(target: str, seconds: int, workdir: str) -> None:
    """Run inside the subprocess: atheris with the seeds as corpus and the vocabulary as dict."""
    import atheris

    with atheris.instrument_imports(include=["lpu"]):  # coverage of the toolchain's own code
        tools(), seeds(target), _images(), _a_symbol(b"")  # everything a target imports
    corpus = os.path.join(workdir, "corpus")
    os.makedirs(corpus, exist_ok=True)
    for i, s in enumerate(seeds(target)):
        _write(os.path.join(corpus, f"seed{i}"), s)
    argv = [sys.argv[0], corpus, f"-max_total_time={seconds}", f"-timeout={HANG_SECONDS}", "-print_final_stats=1",
            f"-artifact_prefix={workdir}/", f"-max_len={2 * max(len(s) for s in seeds(target))}",
            "-rss_limit_mb=2048", "-close_fd_mask=0"]
    if TARGETS[target].text:
        words = [w for w in vocabulary(target) if len(w) > 1 and w.isprintable() and '"' not in w and "\\" not in w]
        dict_path = _write(os.path.join(workdir, "words.dict"), "".join(f'"{w}"\n' for w in words).encode())
        argv.append(f"-dict={dict_path}")

    def one(data: bytes) -> None:
        check(target, data)  # ContractBroken escapes: libFuzzer saves the input and stops

    atheris.Setup(argv, one)
    atheris.Fuzz()


def _hypothesis_run(target: str, seconds: float, workdir: str) -> tuple[int, str | None]:
    """Random mutations for ``seconds`` (derandomize off, no database): executions, failure."""
    from hypothesis import HealthCheck, Phase, given, settings, strategies as st

    count = [0]
    deadline = time.monotonic() + seconds

    class _TimeUp(Exception):
        pass

    @settings(max_examples=10 ** 9, deadline=None, database=None, derandomize=False, phases=(Phase.generate,),
              suppress_health_check=list(HealthCheck))
    @given(st.integers(0, 1000), op_lists())
    def explore(seed, ops):
        if time.monotonic() > deadline:
            raise _TimeUp()
        count[0] += 1
        data = mutant(target, seed, ops)
        try:
            check(target, data)
        except ContractBroken:
            _write(os.path.join(workdir, f"crash-{count[0]}"), data)
            raise

    try:
        explore()
    except _TimeUp:
        return count[0], None
    except ContractBroken as e:
        return count[0], str(e)
    return count[0], None


def op_lists():
    """The hypothesis strategy of mutation ops (this module imports without hypothesis)."""
    from hypothesis import strategies as st

    op = st.tuples(st.integers(0, 255), st.integers(0, 1 << 20), st.integers(0, 1 << 20), st.integers(0, 1 << 20))
    return st.lists(op, min_size=1, max_size=8)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Fuzz every loader of the toolchain (make fuzz).")
    p.add_argument("targets", nargs="*", help=f"targets (default: all): {', '.join(TARGETS)}")
    p.add_argument("--seconds", type=int, default=60, help="time per target")
    p.add_argument("--engine", choices=("atheris", "hypothesis"), help="default: atheris when it imports")
    p.add_argument("--list", action="store_true", help="list the targets")
    p.add_argument("--out", default=os.path.join(ROOT, "build", "fuzz"), help="corpora and crashes")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(TARGETS))
        return 0
    if args.child:
        _atheris_child(args.child, args.seconds, os.path.join(args.out, args.child))
        return 0
    engine = args.engine
    if engine is None:
        engine = "atheris" if importlib.util.find_spec("atheris") else "hypothesis"
    names = args.targets or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        p.error(f"unknown target(s) {', '.join(unknown)} (targets: {', '.join(TARGETS)})")
    failed = 0
    print(f"fuzzing with {engine}, {args.seconds} s per target")
    for name in names:
        workdir = os.path.join(args.out, name)
        os.makedirs(workdir, exist_ok=True)
        start = time.monotonic()
        if engine == "atheris":
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", name, "--seconds",
                                   str(args.seconds), "--out", args.out], capture_output=True, text=True,
                                  errors="replace", cwd=workdir)
            log = proc.stdout + proc.stderr
            with open(os.path.join(workdir, "log.txt"), "w", encoding="utf-8") as f:
                f.write(log)
            m = re.search(r"stat::number_of_executed_units: (\d+)", log)
            runs = int(m.group(1)) if m else 0
            problem = None if proc.returncode == 0 else \
                (re.findall(r"ContractBroken: .*", log) or [f"exit status {proc.returncode}"])[-1]
        else:
            runs, problem = _hypothesis_run(name, args.seconds, workdir)
        print(f"{name}: {runs} executions in {time.monotonic() - start:.0f} s, "
              f"{'0 failures' if problem is None else '1 failure: ' + problem}", flush=True)
        failed += problem is not None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
