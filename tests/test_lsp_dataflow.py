"""The dataflow level through the real server: lpu-opt's diagnostics (``check_module``), types on
hover, definitions and references of SSA values and functions, df-op completion, outline,
folding and inferred-type hints — each checked exactly."""

from __future__ import annotations

import pytest
import pytest_lsp
from lsp_client import CONFIG, change, doc, open_document, published_after, start
from lsprotocol import types
from pytest_lsp import LanguageClient

from lpu.dsl.frontend import check_module

P = types.Position
URI = "file:///tmp/lsp-test/mv.lpu"
TEXT = """target "lpu-v1"

data @w : tensor<4x4xi8> = load("w.npy")

func @main(%x: tensor<4xi8>) -> tensor<4xi32> {
  %w = get @w : tensor<4x4xi8>
  %y = call @mv(%x, %w)
  return %y
}

func @mv(%a: tensor<4xi8>, %m: tensor<4x4xi8>) -> tensor<4xi32> {
  %p = matmul %a, %m : tensor<4xi32>
  %q = add %p, %p
  return %q
}
"""
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient):
    await start(lsp_client)
    yield
    await lsp_client.shutdown_session()


def r(l1, c1, l2, c2):
    return types.Range(P(l1, c1), P(l2, c2))


def loc(l1, c1, l2, c2):
    return types.Location(URI, r(l1, c1, l2, c2))


async def test_diagnostics_are_lpu_opts(client):
    assert (await open_document(client, URI, TEXT)).diagnostics == ()
    n = len(client.published)
    change(client, URI, 2, 12, 15, 12, 17, "%x")  # %x is main's, not mv's
    p = await published_after(client, n, URI)
    want = check_module(TEXT.replace("%q = add %p, %p", "%q = add %p, %x"), "/tmp/lsp-test/mv.lpu")[1]
    assert [d.message for d in want] == ["use of undefined value '%x'"]
    assert [(d.message, d.range, d.source) for d in p.diagnostics] == [
        ("use of undefined value '%x'", r(12, 15, 12, 17), "lpu-opt")]
    n = len(client.published)
    change(client, URI, 3, 12, 15, 12, 17, "%p")
    assert (await published_after(client, n, URI)).diagnostics == ()


async def test_hover_types_and_ops(client):
    await open_document(client, URI, TEXT)

    async def hover(line, col):
        h = await client.text_document_hover_async(types.HoverParams(doc(URI), P(line, col)))
        return h.contents.value, h.range

    assert await hover(12, 12) == ("**%p** : `tensor<4xi32>`\n\nthe result of `matmul`, defined on line 12",
                                   r(12, 11, 12, 13))
    assert await hover(4, 12) == ("**%x** : `tensor<4xi8>`\n\nan argument of the function (or a loop's induction/"
                                  "iteration value), defined on line 5", r(4, 11, 4, 13))
    assert await hover(6, 12) == ("**@mv** — func\n\n`(tensor<4xi8>, tensor<4x4xi8>) -> (tensor<4xi32>)`",
                                  r(6, 12, 6, 15))
    text, rng = await hover(11, 8)
    assert text.startswith("```lpu\nmatmul\n```\n\n") and text.endswith("\n\nresult: `tensor<4xi32>`")
    assert rng == r(11, 7, 11, 13)


async def test_definition_and_references(client):
    await open_document(client, URI, TEXT)
    defn = await client.text_document_definition_async(types.DefinitionParams(doc(URI), P(12, 16)))
    assert list(defn) == [loc(11, 2, 11, 4)]
    defn = await client.text_document_definition_async(types.DefinitionParams(doc(URI), P(6, 13)))
    assert list(defn) == [loc(10, 5, 10, 8)]
    refs = await client.text_document_references_async(types.ReferenceParams(
        context=types.ReferenceContext(True), text_document=doc(URI), position=P(11, 3)))
    assert list(refs) == [loc(11, 2, 11, 4), loc(12, 11, 12, 13), loc(12, 15, 12, 17)]
    refs = await client.text_document_references_async(types.ReferenceParams(
        context=types.ReferenceContext(False), text_document=doc(URI), position=P(10, 6)))
    assert list(refs) == [loc(6, 12, 6, 15)]


async def test_completion_outline_folding_hints(client):
    await open_document(client, URI, TEXT)
    res = await client.text_document_completion_async(types.CompletionParams(doc(URI), P(12, 7)))
    ops = [i.label for i in res.items]
    assert {"matmul", "add", "softmax", "layernorm", "call", "send", "recv", "transpose"} <= set(ops)
    assert ops == sorted(ops) and "func" not in ops
    res = await client.text_document_completion_async(types.CompletionParams(doc(URI), P(12, 16)))
    assert [i.label for i in res.items] == ["%a", "%m", "%p", "%q", "%w", "%x", "%y"]
    syms = await client.text_document_document_symbol_async(types.DocumentSymbolParams(doc(URI)))
    assert [(s.name, s.kind, s.range, s.detail) for s in syms] == [
        ("@w", types.SymbolKind.Constant, r(2, 0, 2, 40), "data"),
        ("@main", types.SymbolKind.Function, r(4, 0, 8, 1), "func"),
        ("@mv", types.SymbolKind.Function, r(10, 0, 14, 1), "func")]
    folds = await client.text_document_folding_range_async(types.FoldingRangeParams(doc(URI)))
    assert [(f.start_line, f.end_line) for f in folds] == [(4, 8), (10, 14)]
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(doc(URI), r(0, 0, 20, 0)))
    assert [(h.position, h.label) for h in hints] == [(P(6, 23), ": tensor<4xi32>"), (P(12, 17), ": tensor<4xi32>")]


async def test_an_edit_in_one_function_rechecks_that_function_only(client):
    uri = "file:///tmp/lsp-test/df-stats.lpu"
    funcs = "".join(f"func @f{i}(%x: tensor<4xf16>, %y: tensor<4xf16>) -> tensor<4xf16> {{\n"
                    f"  %a = add %x, %y\n  %b = mul %a, %x\n  return %b\n}}\n\n" for i in range(4))
    assert (await open_document(client, uri, 'target "lpu-v1"\n\n' + funcs)).diagnostics == ()
    n = len(client.published)
    change(client, uri, 2, 15, 11, 15, 13, "%q")  # f2: add %q, %y
    p = await published_after(client, n, uri)
    assert [(d.range.start.line, d.message) for d in p.diagnostics] == [(15, "use of undefined value '%q'")]
    stats = await client.workspace_execute_command_async(types.ExecuteCommandParams("lpu.stats", [uri]))
    assert (stats["incremental"], stats["reparsed"], stats["rechecked"]) == (True, 1, 0)
    n = len(client.published)
    change(client, uri, 3, 15, 11, 15, 13, "%x")  # fixed: f2 parsed and verified again, alone
    assert (await published_after(client, n, uri)).diagnostics == ()
    stats = await client.workspace_execute_command_async(types.ExecuteCommandParams("lpu.stats", [uri]))
    assert (stats["incremental"], stats["reparsed"], stats["rechecked"]) == (True, 1, 1)
