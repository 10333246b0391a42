"""Random edit sequences through the real protocol: the server answers every request, and the
diagnostics it publishes for the final text are lpu-as's.

Edits arrive in bursts without waiting (as fast typing sends them), mixed with requests at
random positions, with truncations, binary-looking text and whole-document replacements. The
sequences are seeded, so a failure reproduces.
"""

from __future__ import annotations

import pathlib
import random

import pytest
import pytest_lsp
from lsp_client import CONFIG, doc, open_document, published_after, start
from lsprotocol import types
from pytest_lsp import LanguageClient

from lpu.asm.assembler import assemble
from lpu.diagnostics import DiagnosticError
from lpu.lsp.positions import to_units

ROOT = pathlib.Path(__file__).resolve().parent.parent
BASE = (ROOT / "examples" / "asm" / "vadd.lpu").read_text() + (ROOT / "examples" / "asm" / "copy.lpu").read_text() \
    .replace('target "lpu-v1"', "").replace("@src", "@csrc").replace("@dst", "@cdst")
PIECES = ["\n", "}", "{", "@", "[", "]", ",", " ", "s1e", "9", ".i8", "//", '"', "kernel @f {\n", "\r\n",
          "  @3 VXM.0 add.i8 s0e, s1w, s2e\n", "global ", "MEM_E1", "repeat 2, 1", "\x00\x01\x7f", "é€",
          "\U0001F600", "\t", "data @q : tensor<320xi8> in MEM_W0 = hex\"00\"\n", "func @f() {\n", "%x = "]
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient):
    await start(lsp_client, debounce_ms=5)
    yield
    await lsp_client.shutdown_session()


def position(text: str, offset: int) -> types.Position:
    before = text[:offset]
    line = before.count("\n")
    start = before.rfind("\n") + 1
    line_text = text[start:text.find("\n", start) if text.find("\n", start) >= 0 else len(text)]
    return types.Position(line, to_units(line_text, offset - start))


def random_edit(rnd: random.Random, text: str) -> tuple[int, int, str]:
    """(start offset, end offset, new text), kept off the inside of \\r\\n pairs and surrogates."""
    kind = rnd.choices(["insert", "delete", "truncate", "replace"], [8, 4, 1, 4])[0]
    a = rnd.randint(0, len(text))
    while 0 < a < len(text) and text[a - 1] == "\r" and text[a] == "\n":
        a -= 1
    if kind == "insert":
        return a, a, rnd.choice(PIECES)
    if kind == "truncate":
        return a, len(text), ""
    b = min(len(text), a + rnd.randint(1, 30))
    while 0 < b < len(text) and text[b - 1] == "\r" and text[b] == "\n":
        b += 1
    if kind == "delete":
        return a, b, ""
    return a, b, "".join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 3)))


def lpu_as(text: str, file: str) -> list[tuple[str, int]]:
    try:
        assemble(text, file)
    except DiagnosticError as e:
        return sorted((d.message, d.loc.line - 1 if d.loc and d.loc.line else 0) for d in e.diagnostics)
    return []


async def poke(client, rnd: random.Random, uri: str, text: str) -> None:
    """One random request; each must be answered (the handlers never fail)."""
    lines = text.split("\n")
    line = rnd.randint(0, len(lines))
    pos = types.Position(line, rnd.randint(0, 50))
    which = rnd.randrange(7)
    if which == 0:
        await client.text_document_hover_async(types.HoverParams(doc(uri), pos))
    elif which == 1:
        await client.text_document_completion_async(types.CompletionParams(doc(uri), pos))
    elif which == 2:
        await client.text_document_definition_async(types.DefinitionParams(doc(uri), pos))
    elif which == 3:
        await client.text_document_semantic_tokens_full_async(types.SemanticTokensParams(doc(uri)))
    elif which == 4:
        await client.text_document_inlay_hint_async(types.InlayHintParams(
            doc(uri), types.Range(types.Position(0, 0), types.Position(len(lines), 0))))
    elif which == 5:
        await client.text_document_document_symbol_async(types.DocumentSymbolParams(doc(uri)))
    else:
        await client.text_document_code_action_async(types.CodeActionParams(
            doc(uri), types.Range(pos, pos), types.CodeActionContext([])))


@pytest.mark.parametrize("seed", range(6))
async def test_random_edits_through_the_protocol(client, seed):
    rnd = random.Random(seed)
    path = ROOT / "examples" / "asm" / f"fuzz{seed}.lpu"  # beside the example's .npy files
    uri = path.as_uri()
    text = BASE
    await open_document(client, uri, text)
    version = 1
    for burst in range(12):
        for _ in range(rnd.randint(1, 6)):
            a, b, new = random_edit(rnd, text)
            version += 1
            rng = types.Range(position(text, a), position(text, b))
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(version=version, uri=uri),
                [types.TextDocumentContentChangePartial(rng, new)]))
            text = text[:a] + new + text[b:]
        if burst == 3 and seed % 2:  # now and then the editor sends the whole text
            version += 1
            text = BASE[:rnd.randint(0, len(BASE))] + "".join(chr(rnd.choice([0, 9, 10, 32, 64, 123, 125, 233, 0x20AC, *range(33, 127)]))
                           for _ in range(rnd.randint(0, 200)))
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(version=version, uri=uri),
                [types.TextDocumentContentChangeWholeDocument(text)]))
        for _ in range(rnd.randint(0, 3)):
            await poke(client, rnd, uri, text)
    n = len(client.published)
    version += 1
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=version, uri=uri),
        [types.TextDocumentContentChangePartial(types.Range(types.Position(0, 0), types.Position(0, 0)), "")]))
    final = None
    while final is None or final.version != version:
        final = await published_after(client, n, uri)
        n = client.published.index(final) + 1
    got = sorted((d.message, d.range.start.line) for d in final.diagnostics)
    assert got == lpu_as(text, str(path)), repr(text)
    client.text_document_did_close(types.DidCloseTextDocumentParams(doc(uri)))
