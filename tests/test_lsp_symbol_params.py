"""A function's symbol parameters through the real server: hover, go-to-definition and references
treat ``@name: TYPE`` like a symbol scoped to its function; completion offers it there."""

from __future__ import annotations

import pytest
import pytest_lsp
from lsp_client import CONFIG, doc, open_document, start
from lsprotocol import types
from pytest_lsp import LanguageClient

P = types.Position
URI = "file:///tmp/lsp-test/symparams.lpu"
TEXT = """reserve @cache : tensor<4x8xf16>

func @put(%v: tensor<1x8xf16>, %i: tensor<i32>, @kv: tensor<4x8xf16>) -> tensor<4x8xf16> {
  store %v, @kv, %i {offsets = [0, 0], step = [1, 0]}
  %all = get @kv
  return %all
}

func @main(%v: tensor<1x8xf16>, %i: tensor<i32>) -> tensor<4x8xf16> {
  %r = call @put(%v, %i, @cache)
  return %r
}
"""
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient):
    await start(lsp_client)
    yield
    await lsp_client.shutdown_session()


def loc(l1, c1, l2, c2):
    return types.Location(URI, types.Range(P(l1, c1), P(l2, c2)))


async def test_hover_definition_references(client):
    assert (await open_document(client, URI, TEXT)).diagnostics == ()
    h = await client.text_document_hover_async(types.HoverParams(doc(URI), P(4, 14)))
    assert h.contents.value == ("**@kv** — symbol parameter of @put\n\n`tensor<4x8xf16>`\n\na reference to an SRAM "
                                "tensor: each call passes a data or reserve tensor (or its caller's own symbol "
                                "parameter) of this type, defined on line 3")
    assert h.range == types.Range(P(4, 13), P(4, 16))
    h = await client.text_document_hover_async(types.HoverParams(doc(URI), P(9, 13)))
    assert h.contents.value == ("**@put** — func\n\n`(tensor<1x8xf16>, tensor<i32>, @kv: tensor<4x8xf16>) -> "
                                "(tensor<4x8xf16>)`")
    defn = await client.text_document_definition_async(types.DefinitionParams(doc(URI), P(3, 12)))
    assert list(defn) == [loc(2, 48, 2, 51)]
    refs = await client.text_document_references_async(types.ReferenceParams(
        context=types.ReferenceContext(True), text_document=doc(URI), position=P(2, 49)))
    assert list(refs) == [loc(2, 48, 2, 51), loc(3, 12, 3, 15), loc(4, 13, 4, 16)]
    # the tensor passed is an ordinary symbol
    defn = await client.text_document_definition_async(types.DefinitionParams(doc(URI), P(9, 26)))
    assert list(defn) == [loc(0, 8, 0, 14)]


async def test_completion_offers_the_functions_own_parameters(client):
    await open_document(client, URI, TEXT.replace("%all = get @kv", "%all = get @"))
    res = await client.text_document_completion_async(types.CompletionParams(doc(URI), P(4, 14)))
    assert sorted(i.label for i in res.items) == ["@cache", "@kv", "@main", "@put"]
    res = await client.text_document_completion_async(types.CompletionParams(doc(URI), P(9, 26)))
    assert sorted(i.label for i in res.items) == ["@cache", "@main", "@put"]


async def test_the_new_ops_are_completed_and_hovered(client):
    uri = "file:///tmp/lsp-test/newops.lpu"
    text = ("func @f(%x: tensor<4x8xf16>) -> tensor<4x1xi32> {\n  %a = argmax %x\n  %l = lt %x, 0.5\n"
            "  return %a\n}\n")
    await open_document(client, uri, text)
    res = await client.text_document_completion_async(types.CompletionParams(doc(uri), P(2, 7)))
    items = {i.label: i.detail for i in res.items}
    for op in ("argmax", "argmin", "erf", "sign", "select", "rope", "reduce_min", "store", "eq", "ne", "lt", "le",
               "gt", "ge"):
        assert op in items
    assert items["lt"] == "1 where a < b, else 0, in the operands' element type (numpy broadcasting)."
    assert items["argmax"].startswith("The index (i32) of the first maximum") and items["add"] is None
    h = await client.text_document_hover_async(types.HoverParams(doc(uri), P(1, 8)))
    assert h.contents.value.startswith("```lpu\nargmax\n```\n\nThe index (i32) of the first maximum along ``axis``")
    assert h.contents.value.endswith("result: `tensor<4x1xi32>`")
