"""The editor packages: the VS Code extension's manifest and TextMate grammar (checked against a
JSON schema and tokenized over every example), and the Pygments lexer."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import jsonschema
import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Error
from compiled_examples import COMPILED, compiled, rel
from textmate import Grammar, tokenize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VSCODE = os.path.join(ROOT, "editors", "vscode")
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "**", "*.lpu"), recursive=True)
                  + glob.glob(os.path.join(ROOT, "tests", "lit", "**", "*.lpu"), recursive=True))


def load(*parts):
    with open(os.path.join(VSCODE, *parts), encoding="utf-8") as f:
        return json.load(f)


# A JSON schema for the part of the TextMate grammar format the grammar uses: every rule is a
# match, a begin/end pair, an include or a list of patterns, and nothing else.
_CAPTURES = {"type": "object", "patternProperties": {"^[0-9]+$": {
    "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
    "additionalProperties": False}}, "additionalProperties": False}
_RULE = {
    "type": "object",
    "oneOf": [
        {"required": ["match"], "not": {"anyOf": [{"required": ["begin"]}, {"required": ["include"]}]}},
        {"required": ["begin", "end"], "not": {"anyOf": [{"required": ["match"]}, {"required": ["include"]}]}},
        {"required": ["include"], "maxProperties": 1},
        {"required": ["patterns"], "not": {"anyOf": [{"required": ["match"]}, {"required": ["begin"]},
                                                     {"required": ["include"]}]}},
    ],
    "properties": {
        "match": {"type": "string"}, "begin": {"type": "string"}, "end": {"type": "string"},
        "name": {"type": "string", "pattern": r"^[a-z][a-z0-9.-]*\.lpu$"},
        "include": {"type": "string", "pattern": r"^(#[a-z_]+|\$self)$"},
        "captures": _CAPTURES, "beginCaptures": _CAPTURES, "endCaptures": _CAPTURES,
        "patterns": {"type": "array", "items": {"$ref": "#/$defs/rule"}},
        "comment": {"type": "string"},
    },
    "additionalProperties": False,
}
GRAMMAR_SCHEMA = {
    "$defs": {"rule": _RULE},
    "type": "object",
    "required": ["name", "scopeName", "patterns", "repository"],
    "properties": {
        "$schema": {"type": "string"}, "name": {"type": "string"}, "comment": {"type": "string"},
        "scopeName": {"const": "source.lpu"},
        "fileTypes": {"type": "array", "items": {"type": "string"}},
        "patterns": {"type": "array", "items": {"$ref": "#/$defs/rule"}},
        "repository": {"type": "object", "additionalProperties": {"$ref": "#/$defs/rule"}},
    },
    "additionalProperties": False,
}
MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["name", "publisher", "version", "engines", "main", "activationEvents", "contributes",
                 "dependencies"],
    "properties": {
        "engines": {"type": "object", "required": ["vscode"]},
        "main": {"type": "string"},
        "contributes": {
            "type": "object",
            "required": ["languages", "grammars", "configuration"],
            "properties": {
                "languages": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["id", "extensions", "configuration"]}},
                "grammars": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["language", "scopeName", "path"]}},
            },
        },
        "dependencies": {"type": "object", "required": ["vscode-languageclient"]},
    },
}


def test_grammar_matches_its_schema_and_every_regex_compiles():
    grammar = load("syntaxes", "lpu.tmLanguage.json")
    jsonschema.validate(grammar, GRAMMAR_SCHEMA)
    g = Grammar(grammar)

    def walk(rule):
        for key in ("match", "begin", "end"):
            if key in rule:
                re.compile(rule[key])
        if "include" in rule and rule["include"] != "$self":
            assert rule["include"][1:] in grammar["repository"], rule["include"]
        for p in rule.get("patterns", []):
            walk(p)

    for rule in [*grammar["patterns"], *grammar["repository"].values()]:
        walk(rule)
    assert g.rules(grammar["patterns"])


def test_manifest_and_language_configuration():
    manifest = load("package.json")
    jsonschema.validate(manifest, MANIFEST_SCHEMA)
    lang = manifest["contributes"]["languages"][0]
    assert (lang["id"], lang["extensions"]) == ("lpu", [".lpu"])
    grammar = manifest["contributes"]["grammars"][0]
    assert (grammar["language"], grammar["scopeName"]) == ("lpu", "source.lpu")
    assert os.path.exists(os.path.join(VSCODE, grammar["path"]))
    assert os.path.exists(os.path.join(VSCODE, manifest["main"]))
    config = load(lang["configuration"])
    assert config["comments"] == {"lineComment": "//"}
    assert ["{", "}"] in config["brackets"]
    props = manifest["contributes"]["configuration"]["properties"]
    assert props["lpu.server.path"]["default"] == "lpu-lsp"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_example_tokenizes_without_an_invalid_scope(path):
    g = Grammar(load("syntaxes", "lpu.tmLanguage.json"))
    text = open(path, encoding="utf-8").read()
    bad = [(t.line + 1, t.start + 1, t.text) for t in tokenize(g, text) if any("invalid" in s for s in t.scopes)]
    assert bad == []


# --- what the tools print ----------------------------------------------------------------------
# lpu-objdump -d of objects (with and without locations) and of linked images, lpu compile -S and
# lpu-opt's .lpu output: each is generated here by the tool itself and must tokenize as cleanly as
# the examples (`global kernel @k loc(...) {` and the `FILE: file format elf64-lpu` heading once
# made every instruction line invalid).
ASM = sorted(glob.glob(os.path.join(ROOT, "examples", "asm", "**", "*.lpu"), recursive=True))
LINKED = ["pingpong", "pipeline", "allgather"]


def _tool(main, argv: list[str], out: str) -> str:
    assert main([*argv, "-o", out]) == 0
    with open(out, encoding="utf-8") as f:
        return f.read()


def _bad_scopes(text: str) -> list[tuple[int, int, str]]:
    # a tensor's hex"..." is one token of the grammar: its first bytes tokenize as all of it would
    text = re.sub(r'hex"([0-9a-fA-F]{64})[0-9a-fA-F]*"', r'hex"\1"', text)
    g = Grammar(load("syntaxes", "lpu.tmLanguage.json"))
    return [(t.line + 1, t.start + 1, t.text) for t in tokenize(g, text) if any("invalid" in s for s in t.scopes)]


@pytest.mark.parametrize("path", ASM, ids=lambda p: os.path.relpath(p, ROOT))
def test_objdump_of_every_assembled_example_tokenizes_cleanly(path, tmp_path):
    from lpu.asm.cli import assemble_file
    from lpu.asm.objdump import main as objdump

    obj = tmp_path / "x.o"
    obj.write_bytes(assemble_file(path))
    for flags in (["-d"], ["-d", "--no-loc"], ["-d", str(obj)]):  # the last: two files, two headings
        text = _tool(objdump, [*flags, str(obj)], str(tmp_path / "x.dis"))
        assert "kernel @" in text and _bad_scopes(text) == []


@pytest.mark.parametrize("name", LINKED)
def test_objdump_of_a_linked_image_tokenizes_cleanly(name, tmp_path):
    from lpu.asm.cli import assemble_file
    from lpu.asm.objdump import main as objdump
    from lpu.linker.cli import main as ld

    folder = os.path.join(ROOT, "examples", "asm", name)
    objs = []
    for src in sorted(glob.glob(os.path.join(folder, "*.lpu"))):
        objs.append(str(tmp_path / (os.path.basename(src)[:-4] + ".o")))
        with open(objs[-1], "wb") as f:
            f.write(assemble_file(src))
    assert ld(["--system", os.path.join(folder, "system.toml"), *objs, "-o", str(tmp_path / "x.lpx")]) == 0
    text = _tool(objdump, ["-d", str(tmp_path / "x.lpx")], str(tmp_path / "x.dis"))
    assert "file format elf64-lpu (system image" in text and _bad_scopes(text) == []


@pytest.mark.parametrize("path", COMPILED, ids=rel)
def test_compiled_examples_assembly_and_image_disassembly_tokenize_cleanly(path, tmp_path):
    from lpu.asm.objdump import main as objdump
    from lpu.linker.imagefile import write_image

    c, _module, image = compiled(path)
    assembly = c.assembly(rel(path))  # lpu compile -S
    assert "kernel @" in assembly and _bad_scopes(assembly) == []
    (tmp_path / "x.lpx").write_bytes(write_image(image))
    text = _tool(objdump, ["-d", str(tmp_path / "x.lpx")], str(tmp_path / "x.dis"))
    assert "kernel @" in text and _bad_scopes(text) == []


@pytest.mark.parametrize("path", COMPILED, ids=rel)
def test_lpu_opt_output_of_every_example_tokenizes_cleanly(path, tmp_path):
    from lpu.dsl.cli import main as lpu_opt

    for passes in ([], ["-p", "df-decompose,canonicalize,cse"]):
        text = _tool(lpu_opt, [path, *passes], str(tmp_path / "x.lpu"))
        assert "func @" in text and _bad_scopes(text) == []


def test_lpu_opt_scheduled_kernels_tokenize_cleanly(tmp_path):
    from lpu.dsl.cli import main as lpu_opt

    text = _tool(lpu_opt, [os.path.join(ROOT, "examples", "softmax.lpu"), "-p", "schedule-general"],
                 str(tmp_path / "x.s"))
    assert "kernel @" in text and _bad_scopes(text) == []


def _scopes(text: str) -> list[tuple[str, str]]:
    g = Grammar(load("syntaxes", "lpu.tmLanguage.json"))
    return [(t.text, t.scopes[-1]) for t in tokenize(g, text) if t.text.strip()]


def test_tokenizer_scopes_of_an_instruction_and_of_a_dataflow_statement():
    text = "kernel @k {\n  @3 VXM.0 add.i8 s0e, 5, s2e // sum\n  @9 MEM_E1 write.i8 [@b + 1], s2e\n}\n"
    assert _scopes(text) == [
        ("kernel", "keyword.other.kernel.lpu"), ("@k", "entity.name.function.kernel.lpu"),
        ("{", "punctuation.section.block.begin.lpu"),
        ("@3", "constant.numeric.cycle.lpu"), ("VXM.0", "entity.name.namespace.unit.lpu"),
        ("add.i8", "keyword.other.mnemonic.lpu"), ("s0e", "variable.other.stream.lpu"),
        (",", "punctuation.separator.lpu"), ("5", "constant.numeric.lpu"), (",", "punctuation.separator.lpu"),
        ("s2e", "variable.other.stream.lpu"), ("// sum", "comment.line.double-slash.lpu"),
        ("@9", "constant.numeric.cycle.lpu"), ("MEM_E1", "entity.name.namespace.unit.lpu"),
        ("write.i8", "keyword.other.mnemonic.lpu"), ("[", "punctuation.separator.lpu"),
        ("@b", "entity.name.function.symbol.lpu"), ("+", "punctuation.separator.lpu"),
        ("1", "constant.numeric.lpu"), ("]", "punctuation.separator.lpu"), (",", "punctuation.separator.lpu"),
        ("s2e", "variable.other.stream.lpu"), ("}", "punctuation.section.block.end.lpu")]
    assert _scopes("  %y = matmul %x, @w : tensor<4xi32>\n") == [
        ("%y", "variable.other.value.lpu"), ("=", "keyword.operator.assignment.lpu"),
        ("matmul", "entity.name.function.op.lpu"), ("%x", "variable.other.value.lpu"),
        (",", "punctuation.separator.lpu"), ("@w", "entity.name.function.symbol.lpu"),
        (":", "punctuation.separator.lpu"), ("tensor<4xi32>", "storage.type.tensor.lpu")]
    # what the language does not have is marked invalid
    assert ("$", "invalid.illegal.lpu") in _scopes("data $x\n")
    assert ("#", "invalid.illegal.lpu") in _scopes("kernel @k {\n  @0 MEM_W0 read.i8 #1\n}\n")


# --- Pygments ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: os.path.relpath(p, ROOT))
def test_pygments_lexes_every_example_without_errors(path):
    lexer = get_lexer_by_name("lpu")
    text = open(path, encoding="utf-8").read()
    assert [v for t, v in lexer.get_tokens(text) if t is Error] == []
    assert "".join(v for _t, v in lexer.get_tokens(text)) == text if text.endswith("\n") else True


def test_pygments_entry_point_and_command():
    assert get_lexer_for_filename("x.lpu").name == "LPU"
    exe = shutil.which("pygmentize", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("pygmentize is not installed beside this Python")
    out = subprocess.run([exe, "-l", "lpu", "-f", "html", os.path.join(ROOT, "examples", "asm", "vadd.lpu")],
                         capture_output=True, text=True, check=True).stdout
    assert '<span class="nl">@3</span>' in out and '<span class="nb">add.i8</span>' in out


# --- docs/editors.md -------------------------------------------------------------------------------
def render_inlay_hints(path: str) -> str:
    """A kernel's lines as the editor shows them: each inlay hint written in at its position."""
    from lsprotocol import types

    from lpu.lsp.asm_analysis import AsmDocument
    from lpu.lsp.asm_view import AsmView

    text = open(path, encoding="utf-8").read()
    view = AsmView(AsmDocument(path).analyze(text), "file://" + path)
    lines = text.split("\n")
    hints = view.inlay_hints(types.Range(types.Position(0, 0), types.Position(len(lines), 0)))
    for h in sorted(hints, key=lambda h: (h.position.line, -h.position.character)):
        line, col = h.position.line, h.position.character
        lines[line] = lines[line][:col] + " " + h.label + lines[line][col:]
    first = min(h.position.line for h in hints)
    last = next(i for i in range(first, len(lines)) if lines[i].strip() == "}")
    return "\n".join(lines[first:last + 1])


def test_the_inlay_hint_example_in_the_docs_is_what_the_server_shows():
    doc = open(os.path.join(ROOT, "docs", "editors.md"), encoding="utf-8").read()
    block = doc.split("<!-- inlay-hints: examples/asm/vadd.lpu")[1].split("```\n", 1)[1].split("\n```")[0]
    assert block == render_inlay_hints(os.path.join(ROOT, "examples", "asm", "vadd.lpu"))


# The Neovim snippet of docs/editors.md, in a real Neovim where one is installed: the client
# starts lpu-lsp, attaches to the buffer, and the diagnostic it shows is lpu-as's.
_NVIM_CHECK = r"""
vim.cmd("edit " .. vim.fn.fnameescape(os.getenv("LPU_FILE")))
local ok = vim.wait(30000, function()
  local c = vim.lsp.get_active_clients()[1]
  return c ~= nil and c.initialized == true
end, 20)
local diags = {}
ok = ok and vim.wait(30000, function() diags = vim.diagnostic.get(0); return #diags > 0 end, 20)
local c = vim.lsp.get_active_clients()[1]
io.stdout:write(string.format("clients=%d name=%s attached=%s\n", #vim.lsp.get_active_clients(),
  c and c.name or "-", tostring(c ~= nil and vim.lsp.buf_is_attached(0, c.id))))
for _, d in ipairs(diags) do io.stdout:write(string.format("%d:%d: %s\n", d.lnum + 1, d.col + 1, d.message)) end
vim.cmd("qall!")
"""


def test_the_neovim_snippet_starts_the_server_and_shows_its_diagnostics(tmp_path):
    nvim = shutil.which("nvim")
    if not nvim:
        pytest.skip("nvim is not installed (apt-get install neovim gives Debian's 0.7.2)")
    doc = open(os.path.join(ROOT, "docs", "editors.md"), encoding="utf-8").read()
    block = doc.split("<!-- nvim: tests/test_editors.py")[1].split("```lua\n", 1)[1].split("\n```")[0]
    server = os.path.join(os.path.dirname(sys.executable), "lpu-lsp")
    assert block.count('"/path/to/toolchain/.venv/bin/lpu-lsp"') == 1
    (tmp_path / "init.lua").write_text(block.replace("/path/to/toolchain/.venv/bin/lpu-lsp", server))
    (tmp_path / "check.lua").write_text(_NVIM_CHECK)
    (tmp_path / "t.lpu").write_text('target "lpu-v1"\n\nkernel @k {\n  @0 MEM_W0 bogus.i8 [@a], s0e\n}\n')
    env = dict(os.environ, LPU_FILE=str(tmp_path / "t.lpu"), HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path),
               XDG_DATA_HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path))
    r = subprocess.run([nvim, "--headless", "--clean", "-u", str(tmp_path / "init.lua"), "-c", "luafile "
                        + str(tmp_path / "check.lua")], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    from lpu.asm.assembler import assemble
    from lpu.diagnostics import DiagnosticError
    with pytest.raises(DiagnosticError) as e:
        assemble((tmp_path / "t.lpu").read_text(), "t.lpu")
    d = e.value.diagnostics[0]
    assert r.stdout.splitlines() == ["clients=1 name=lpu attached=true", f"{d.loc.line}:{d.loc.col}: {d.message}"], \
        r.stdout + r.stderr
