"""``lpu-lsp`` driven like an editor drives it: the real server, over stdio, through pytest-lsp.

Every answer is checked exactly: diagnostics are lpu-as's messages at lpu-as's ranges; hovers,
completions, locations, symbols, tokens, hints and the quick fix are compared whole.
"""

from __future__ import annotations

import asyncio
import pathlib

import pytest
import pytest_lsp
from lsp_client import CONFIG, change, doc, open_document, published_after, replace_all, start
from lsprotocol import types
from pytest_lsp import LanguageClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
VADD = ROOT / "examples" / "asm" / "vadd.lpu"
TIMING_ERROR = ROOT / "tests" / "lit" / "asm" / "timing-error.lpu"
P = types.Position
R = types.Range


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=CONFIG, scope="module")  # one server for the module, as one editor session
async def client(lsp_client: LanguageClient):
    await start(lsp_client)
    yield
    await lsp_client.shutdown_session()


def r(l1, c1, l2, c2):
    return R(P(l1, c1), P(l2, c2))


async def hover_text(client, uri, line, col):
    h = await client.text_document_hover_async(types.HoverParams(doc(uri), P(line, col)))
    return None if h is None else (h.contents.value, h.range)


# --- diagnostics ---------------------------------------------------------------------------------
async def test_open_publishes_the_timing_error_lpu_as_reports(client):
    uri = TIMING_ERROR.as_uri()
    p = await open_document(client, uri, TIMING_ERROR.read_text())
    assert p.version == 1
    assert p.diagnostics == (types.Diagnostic(
        r(7, 27, 7, 30), "no value on s0e at MEM_E1 (position 49) in cycle 4",
        severity=types.DiagnosticSeverity.Error, source="lpu-as",
        related_information=(types.DiagnosticRelatedInformation(
            types.Location(uri, r(6, 2, 6, 4)),
            "the nearest value on s0e, written here in cycle 0, passes MEM_E1 (position 49) in cycle 5"),)),)


async def test_syntax_and_semantic_errors_as_you_type(client):
    uri = "file:///tmp/lsp-test/typing.lpu"
    text = ('target "lpu-v1"\nreserve @a : tensor<320xi8> in MEM_W0\n'
            "kernel @k {\n  @0 MEM_W0 read.i8 [@a], s0e\n}\n")
    p = await open_document(client, uri, text)
    assert p.diagnostics == ()
    n = len(client.published)
    change(client, uri, 2, 3, 29, 3, 29, ",")  # "... s0e," : an operand is missing
    p = await published_after(client, n, uri)
    assert (p.version, [(d.range, d.message) for d in p.diagnostics]) == (
        2, [(r(3, 30, 3, 30), "unexpected end of line, expected an operand")])  # past the comma
    n = len(client.published)
    change(client, uri, 3, 3, 29, 3, 30, "")
    change(client, uri, 4, 3, 12, 3, 16, "reed")
    p = await published_after(client, n, uri)
    assert (p.version, [(d.range, d.message) for d in p.diagnostics]) == (
        4, [(r(3, 12, 3, 19), "unknown mnemonic 'reed.i8'; did you mean 'read'?")])


async def test_quick_edits_are_debounced_and_published_once(client):
    uri = "file:///tmp/lsp-test/burst.lpu"
    text = ('target "lpu-v1"\nreserve @a : tensor<320xi8> in MEM_W0\nreserve @b : tensor<320xi8> in MEM_E1\n'
            "kernel @k {\n  @0 MEM_W0 read.i8 [@a], s0e\n  @5 MEM_E1 write.i8 [@b], s0e\n}\n")
    await open_document(client, uri, text)
    n = len(client.published)
    # type "4", then "9", then back to "5": cycles 4 and 9 are timing errors, 5 is right
    for version, digit in [(2, "4"), (3, "9"), (4, "4"), (5, "5")]:
        change(client, uri, version, 5, 3, 5, 4, digit)
    await published_after(client, n, uri)
    await asyncio.sleep(0.3)  # anything more that might come
    mine = [q for q in client.published[n:] if q.uri == uri]
    assert [(q.version, q.diagnostics) for q in mine] == [(5, ())]
    # a burst ending on an error publishes that error, once
    n = len(client.published)
    for version, digit in [(6, "9"), (7, "4")]:
        change(client, uri, version, 5, 3, 5, 4, digit)
    await published_after(client, n, uri)
    await asyncio.sleep(0.3)
    mine = [q for q in client.published[n:] if q.uri == uri]
    assert [(q.version, [d.message for d in q.diagnostics]) for q in mine] == [
        (7, ["no value on s0e at MEM_E1 (position 49) in cycle 4"])]


async def test_close_clears_diagnostics(client):
    uri = TIMING_ERROR.as_uri()
    await open_document(client, uri, TIMING_ERROR.read_text())
    n = len(client.published)
    client.text_document_did_close(types.DidCloseTextDocumentParams(doc(uri)))
    p = await published_after(client, n, uri)
    assert p.diagnostics == ()


# --- hover ---------------------------------------------------------------------------------------
ADD_HOVER = """```lpu
add.i8
```

lanewise a + b.

- syntax: `add a, b, dst`
- units: `vxm` (16 queues on `lpu-v1`)
- types: `i8` (default), `i16`, `i32`, `f16`, `bf16`, `f32`
- latency: `vxm.latency` = 2
- occupancy: —
- here (`i8`): the result is on its stream 2 cycles after issue
- `a`: source stream (`s<n>e | s<n>w`) — a stream group: first stream index (5 bits) and direction (bit 5: 1 = west)
- `b`: source src_or_imm (`s<n>e | s<n>w | number`) — a stream group, or (bit 32 set) a 32-bit scalar broadcast to every lane
- `dst`: destination stream (`s<n>e | s<n>w`) — a stream group: first stream index (5 bits) and direction (bit 5: 1 = west)"""


async def test_hover(client):
    uri = VADD.as_uri()
    await open_document(client, uri, VADD.read_text())
    # line 18 (0-based 17): "  @3 VXM.0   add.i8   s0e, s1w, s2e   // ..."
    assert await hover_text(client, uri, 17, 15) == (ADD_HOVER, r(17, 13, 17, 19))
    assert await hover_text(client, uri, 17, 6) == (
        "**VXM.0** — a VXM ALU at position 47 (slice VXM), queue 48 of 112\n\nruns: `add`, `sub`, `mul`, `max`, "
        "`min`, `and`, `or`, `xor`, `shl`, `shr`, `cmp.eq`, `cmp.lt`, `cmp.le`, `select`, `neg`, `abs`, `relu`, "
        "`exp`, `tanh`, `sigmoid`, `rsqrt`, `recip`, `mov`, `cvt`, and the ICU instructions of every queue",
        r(17, 5, 17, 10))
    # a stream read: where its value comes from and when it passes
    assert await hover_text(client, uri, 17, 23) == (
        "**s0e** — source `a` of `add.i8` at VXM.0 (position 47)\n\n"
        "read in cycle 3 at position 47\n\n"
        "the value: `read.i8` at MEM_W0 (position 46), line 16, issued in cycle 0, on s0e in cycle 2, "
        "passes position 47 in cycle 3", r(17, 22, 17, 25))
    # a stream write: when it lands and who reads it
    assert await hover_text(client, uri, 17, 33) == (
        "**s2e** — destination `dst` of `add.i8` at VXM.0 (position 47)\n\n"
        "issued in cycle 3, the value is on s2e at position 47 in cycle 5 (latency 2)\n\n"
        "read by `write.i8` at MEM_E1 (position 49) in cycle 7, line 19", r(17, 32, 17, 35))
    # a symbol: type, shape, SRAM placement
    assert await hover_text(client, uri, 15, 24) == (
        "**@a** : `tensor<320xi8>` — data, global\n\nshape 320 of i8: 1 word of 320 bytes\n\n"
        "in MEM_W0 (position 46), at an address the linker chooses", r(15, 23, 15, 25))
    assert await hover_text(client, uri, 14, 16) == (
        "**@vadd** — kernel, global, 4 instructions, 8 cycles", r(14, 14, 14, 19))
    assert await hover_text(client, uri, 17, 20) is None  # blank between tokens
    assert await hover_text(client, uri, 3, 10) is None  # inside a comment


# --- completion ----------------------------------------------------------------------------------
async def labels(client, uri, line, col):
    res = await client.text_document_completion_async(types.CompletionParams(doc(uri), P(line, col)))
    return [i.label for i in res.items]


async def test_completion(client):
    uri = "file:///tmp/lsp-test/complete.lpu"
    text = ('target "lpu-v1"\nreserve @a : tensor<320xi8> in MEM_W0\nreserve @b : tensor<320xi8> in MEM_E1\n'
            "kernel @k {\n  @0 MEM_W0 read.i8 [@a], s0e\n  @3 \n}\n\n")
    await open_document(client, uri, text)
    units = await labels(client, uri, 5, 5)
    assert len(units) == 112 and units[:4] == ["C2C_W", "MXM_W0", "MXM_W1", "SXM_W"] and "VXM.15" in units
    change(client, uri, 2, 5, 5, 5, 5, "VXM.0 ")
    assert await labels(client, uri, 5, 11) == [
        "nop", "repeat", "notify", "sync", "add", "sub", "mul", "max", "min", "and", "or", "xor", "shl", "shr",
        "cmp.eq", "cmp.lt", "cmp.le", "select", "neg", "abs", "relu", "exp", "tanh", "sigmoid", "rsqrt", "recip",
        "mov", "cvt"]
    change(client, uri, 3, 5, 11, 5, 11, "exp.")
    assert await labels(client, uri, 5, 15) == ["exp.f16", "exp.bf16", "exp.f32"]
    change(client, uri, 4, 5, 11, 5, 15, "add.i8 s0e, ")
    streams = await labels(client, uri, 5, 23)
    assert streams[:3] == ["s0e", "s1e", "s2e"] and streams[-1] == "s31w" and len(streams) == 64
    change(client, uri, 5, 4, 20, 4, 23, "@")  # "[@a]" -> "[@]" : symbols placed in this MEM slice
    assert await labels(client, uri, 4, 21) == ["@a"]
    assert await labels(client, uri, 7, 0) == ["target", "data", "reserve", "extern", "kernel", "global"]
    change(client, uri, 6, 7, 0, 7, 0, "reserve @c : tensor<320xi8> in MEM_E4")
    slices = await labels(client, uri, 7, 37)
    assert slices[:2] == ["MEM_W43", "MEM_W42"] and slices[-2:] == ["MEM_W", "MEM_E"] and len(slices) == 90


# --- definition, references, outline, folding -----------------------------------------------------
async def test_definition_and_references(client):
    uri = "file:///tmp/lsp-test/refs.lpu"
    text = ('target "lpu-v1"\nreserve @a : tensor<640xi8> in MEM_W0\nextern @ext\n'
            "kernel @k {\n  @0 MEM_W0 read.i8 [@a], s0e\n  @1 MEM_W0 read.i8 [@a + 1], s1e\n"
            "  @2 MEM_W0 read.i8 [ @ext ], s2e\n}\n")
    await open_document(client, uri, text)
    defn = await client.text_document_definition_async(types.DefinitionParams(doc(uri), P(5, 22)))
    assert list(defn) == [types.Location(uri, r(1, 8, 1, 10))]
    refs = await client.text_document_references_async(types.ReferenceParams(
        context=types.ReferenceContext(True), text_document=doc(uri), position=P(1, 9)))
    assert list(refs) == [types.Location(uri, r(1, 8, 1, 10)), types.Location(uri, r(4, 21, 4, 23)),
                    types.Location(uri, r(5, 21, 5, 23))]
    refs = await client.text_document_references_async(types.ReferenceParams(
        context=types.ReferenceContext(False), text_document=doc(uri), position=P(6, 23)))
    assert list(refs) == [types.Location(uri, r(6, 22, 6, 26))]
    defn = await client.text_document_definition_async(types.DefinitionParams(doc(uri), P(6, 24)))
    assert list(defn) == [types.Location(uri, r(2, 7, 2, 11))]


async def test_document_symbols_and_folding(client):
    uri = VADD.as_uri()
    await open_document(client, uri, VADD.read_text())
    syms = await client.text_document_document_symbol_async(types.DocumentSymbolParams(doc(uri)))
    assert [(s.name, s.kind, s.range, s.selection_range, s.detail) for s in syms] == [
        ("@a", types.SymbolKind.Constant, r(10, 0, 10, 62), r(10, 12, 10, 14), "tensor<320xi8> in MEM_W0"),
        ("@b", types.SymbolKind.Constant, r(11, 0, 11, 62), r(11, 12, 11, 14), "tensor<320xi8> in MEM_E0"),
        ("@sum", types.SymbolKind.Variable, r(12, 0, 12, 46), r(12, 15, 12, 19), "tensor<320xi8> in MEM_E1"),
        ("@vadd", types.SymbolKind.Function, r(14, 0, 19, 1), r(14, 14, 14, 19), "4 instructions, 8 cycles")]
    folds = await client.text_document_folding_range_async(types.FoldingRangeParams(doc(uri)))
    assert [(f.start_line, f.end_line, f.kind) for f in folds] == [(0, 7, "comment"), (14, 19, "region")]


# --- semantic tokens and inlay hints --------------------------------------------------------------
async def test_semantic_tokens(client):
    uri = "file:///tmp/lsp-test/tokens.lpu"
    text = 'target "lpu-v1" // chip\nreserve @a : tensor<320xi8> in MEM_W0\nkernel @k {\n' \
           "  @0 MEM_W0 read.i8 [@a + 1], s0e\n}\n"
    await open_document(client, uri, text)
    legend = ["keyword", "function", "variable", "type", "number", "string", "comment", "namespace",
              "method", "parameter", "enumMember", "property", "decorator"]
    data = (await client.text_document_semantic_tokens_full_async(types.SemanticTokensParams(doc(uri)))).data
    tokens, line, col = [], 0, 0
    for i in range(0, len(data), 5):
        dl, dc, n, t, m = data[i:i + 5]
        line, col = line + dl, (col + dc if dl == 0 else dc)
        tokens.append((line, col, text.split("\n")[line][col:col + n], legend[t], m))
    assert tokens == [
        (0, 0, "target", "keyword", 0), (0, 7, '"lpu-v1"', "string", 0), (0, 16, "// chip", "comment", 0),
        (1, 0, "reserve", "keyword", 0), (1, 8, "@a", "variable", 1), (1, 13, "tensor<320xi8>", "type", 0),
        (1, 28, "in", "keyword", 0), (1, 31, "MEM_W0", "namespace", 0),
        (2, 0, "kernel", "keyword", 0), (2, 7, "@k", "function", 1),
        (3, 2, "@0", "decorator", 0), (3, 5, "MEM_W0", "namespace", 0), (3, 12, "read", "method", 0),
        (3, 17, "i8", "type", 0), (3, 21, "@a", "variable", 0), (3, 26, "1", "number", 0),
        (3, 30, "s0e", "parameter", 0)]


async def test_inlay_hints(client):
    uri = VADD.as_uri()
    await open_document(client, uri, VADD.read_text())
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(doc(uri), r(0, 0, 30, 0)))
    assert [(h.position, h.label) for h in hints] == [
        (P(14, 21), "8 cycles"), (P(15, 31), "→ s0e @2"), (P(16, 31), "→ s1w @2"), (P(17, 35), "→ s2e @5")]


# --- the quick fix -------------------------------------------------------------------------------
async def test_code_action_moves_the_consumer_to_the_arrival_cycle(client):
    uri = TIMING_ERROR.as_uri()
    text = TIMING_ERROR.read_text()
    await open_document(client, uri, text)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        doc(uri), r(7, 0, 7, 5), types.CodeActionContext([])))
    assert [(a.title, a.kind, a.edit.changes) for a in actions] == [
        ("Move to cycle 5, when the value on s0e arrives", types.CodeActionKind.QuickFix,
         {uri: (types.TextEdit(r(7, 2, 7, 4), "@5"),)})]
    n = len(client.published)
    change(client, uri, 2, 7, 2, 7, 4, "@5")  # apply it, as the editor would
    p = await published_after(client, n, uri)
    assert (p.version, p.diagnostics) == (2, ())


async def test_code_action_moves_a_repeat_with_its_instruction(client):
    uri = "file:///tmp/lsp-test/repeat.lpu"
    text = ('target "lpu-v1"\nreserve @a : tensor<3x320xi8> in MEM_W0\nreserve @b : tensor<3x320xi8> in MEM_E1\n'
            "kernel @k {\n  @0 MEM_W0 read.i8 [@a], s0e\n  @1 MEM_W0 repeat 2, 1\n"
            "  @4 MEM_E1 write.i8 [@b], s0e\n  @5 MEM_E1 repeat 2, 1\n}\n")
    p = await open_document(client, uri, text)
    assert [d.message for d in p.diagnostics] == ["no value on s0e at MEM_E1 (position 49) in cycle 4"]
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        doc(uri), r(6, 0, 6, 0), types.CodeActionContext([])))
    assert [a.edit.changes[uri] for a in actions] == [
        (types.TextEdit(r(6, 2, 6, 4), "@5"), types.TextEdit(r(7, 2, 7, 4), "@6"))]
    n = len(client.published)
    replace_all(client, uri, 2, text.replace("@4 MEM_E1", "@5 MEM_E1").replace("@5 MEM_E1 repeat", "@6 MEM_E1 repeat"))
    assert (await published_after(client, n, uri)).diagnostics == ()


# --- robustness ----------------------------------------------------------------------------------
async def test_the_server_survives_any_content(client):
    uri = "file:///tmp/lsp-test/garbage.lpu"
    text = "\x00\x01\ufffd kernel @k {\n  @0 MEM_W0 read.i8 [@, s0e \U0001F600\n}}}\n\"\n" + "\xff" * 10
    p = await open_document(client, uri, text)
    assert p.diagnostics  # syntax errors, reported
    for line in range(4):
        for col in (0, 3, 12, 40):
            await client.text_document_hover_async(types.HoverParams(doc(uri), P(line, col)))
            await client.text_document_completion_async(types.CompletionParams(doc(uri), P(line, col)))
            await client.text_document_definition_async(types.DefinitionParams(doc(uri), P(line, col)))
    await client.text_document_document_symbol_async(types.DocumentSymbolParams(doc(uri)))
    await client.text_document_semantic_tokens_full_async(types.SemanticTokensParams(doc(uri)))
    await client.text_document_inlay_hint_async(types.InlayHintParams(doc(uri), r(0, 0, 99, 0)))
    await client.text_document_folding_range_async(types.FoldingRangeParams(doc(uri)))
    # and it still answers properly afterwards
    uri2 = VADD.as_uri()
    assert (await open_document(client, uri2, VADD.read_text())).diagnostics == ()
    assert (await hover_text(client, uri2, 14, 16))[0] == "**@vadd** — kernel, global, 4 instructions, 8 cycles"


async def test_an_edit_in_one_kernel_rechecks_that_kernel_only(client):
    uri = "file:///tmp/lsp-test/stats.lpu"
    kernels = "".join(f"kernel @k{i} {{\n  @0 MEM_W0 read.i8 [@a], s0e\n  @5 MEM_E1 write.i8 [@b], s0e\n}}\n"
                      for i in range(4))
    text = 'target "lpu-v1"\nreserve @a : tensor<320xi8> in MEM_W0\nreserve @b : tensor<320xi8> in MEM_E1\n' + kernels
    await open_document(client, uri, text)
    n = len(client.published)
    change(client, uri, 2, 13, 3, 13, 4, "4")  # k2's write: @5 -> @4, a timing error
    p = await published_after(client, n, uri)
    assert [(d.range.start.line, d.message) for d in p.diagnostics] == [
        (13, "no value on s0e at MEM_E1 (position 49) in cycle 4")]
    stats = await client.workspace_execute_command_async(types.ExecuteCommandParams("lpu.stats", [uri]))
    assert (stats["incremental"], stats["reparsed"], stats["rechecked"]) == (True, 1, 1)
