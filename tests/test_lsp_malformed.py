"""Malformed messages through the real protocol: every request gets a response — the JSON-RPC
error that says what is wrong — and the server keeps serving.

Messages are written byte for byte (``lsp_client.send_raw``), since a well-behaved client
library cannot send most of them. Each expected response is compared whole.
"""

from __future__ import annotations

import copy
import json
import pathlib
import random

import pytest
import pytest_lsp
from lsp_client import CONFIG, open_document, published_after, raw_request, send_raw, start
from lsprotocol import types
from pytest_lsp import LanguageClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
VADD = ROOT / "examples" / "asm" / "vadd.lpu"
URI = VADD.as_uri()
INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR, PARSE_ERROR = -32600, -32601, -32602, -32603, -32700
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient):
    await start(lsp_client)
    await open_document(lsp_client, URI, VADD.read_text())
    yield
    await lsp_client.shutdown_session()


def pos(line, character):
    return {"line": line, "character": character}


def rng(l1, c1, l2, c2):
    return {"start": pos(l1, c1), "end": pos(l2, c2)}


TD = {"uri": URI}
KERNEL_HOVER = "**@vadd** — kernel, global, 4 instructions, 8 cycles"


async def still_serving(client) -> None:
    """The server answers a proper request properly."""
    r = await raw_request(client, "textDocument/hover", {"textDocument": TD, "position": pos(14, 16)})
    assert r["result"]["contents"]["value"] == KERNEL_HOVER


def error(request_id, code, message):
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


# (method, params, the error's code and message); params=... leaves "params" out
BAD_PARAMS = [
    ("textDocument/codeAction", {"textDocument": TD, "range": rng(17, 0, 17, 5), "context": {"diagnostics": [None]}},
     INVALID_PARAMS, "textDocument/codeAction: invalid value for type, expected Diagnostic @ params.context.diagnostics[0]"),
    ("textDocument/hover", {"textDocument": TD},
     INVALID_PARAMS, "textDocument/hover: required field missing @ params.position"),
    ("textDocument/hover", ..., INVALID_PARAMS, "textDocument/hover: required field missing @ params"),
    ("textDocument/hover", None,
     INVALID_PARAMS, "textDocument/hover: invalid value for type, expected HoverParams @ params"),
    ("textDocument/hover", [TD, pos(1, 1)],
     INVALID_PARAMS, "textDocument/hover: invalid value for type, expected TextDocumentIdentifier @ params.textDocument; "
                     "invalid value for type, expected Position @ params.position"),
    # wrong JSON types are refused, not coerced ("3" -> 3, 5 -> "5", 1.5 -> 1, true -> 1)
    ("textDocument/hover", {"textDocument": TD, "position": pos("3", 0)},
     INVALID_PARAMS, "textDocument/hover: invalid value for type, expected int @ params.position.line"),
    ("textDocument/hover", {"textDocument": {"uri": 5}, "position": pos(3, 0)},
     INVALID_PARAMS, "textDocument/hover: invalid value for type, expected str @ params.textDocument.uri"),
    ("textDocument/hover", {"textDocument": TD, "position": pos(1.5, True)},
     INVALID_PARAMS, "textDocument/hover: invalid value for type, expected int @ params.position.line; "
                     "invalid value for type, expected int @ params.position.character"),
    ("textDocument/hover", {"textDocument": TD, "position": pos(-1, 0)},
     INVALID_PARAMS, "textDocument/hover: invalid value: Position.line should be in range [0:2147483647], but was -1. "
                     "@ params.position"),
    ("textDocument/references", {"textDocument": TD, "position": pos(15, 24)},
     INVALID_PARAMS, "textDocument/references: required field missing @ params.context"),
    ("textDocument/completion", {"textDocument": TD, "position": pos(17, 5), "context": {"triggerKind": "invoked"}},
     INVALID_PARAMS, "textDocument/completion: invalid value for type, expected CompletionTriggerKind "
                     "@ params.context.triggerKind"),
    ("textDocument/inlayHint", {"textDocument": TD, "range": {"start": pos(0, 0)}},
     INVALID_PARAMS, "textDocument/inlayHint: required field missing @ params.range.end"),
    # a document the client never opened
    ("textDocument/hover", {"textDocument": {"uri": "file:///nowhere/x.lpu"}, "position": pos(0, 0)},
     INVALID_PARAMS, "file:///nowhere/x.lpu is not open"),
    ("textDocument/semanticTokens/full", {"textDocument": {"uri": "file:///nowhere/x.lpu"}},
     INVALID_PARAMS, "file:///nowhere/x.lpu is not open"),
    ("workspace/executeCommand", {"command": "lpu.stats", "arguments": [{"jsonrpc": "2.0", "id": 1, "method": "x"}]},
     INVALID_PARAMS, "lpu.stats takes one argument, the URI of an open document"),
    ("lpu/nothing", {}, METHOD_NOT_FOUND, "Method Not Found: lpu/nothing"),
    ("textDocument/didOpen", {"textDocument": {"uri": "file:///x.lpu", "languageId": "lpu", "version": 1, "text": ""}},
     INVALID_REQUEST, "textDocument/didOpen is a notification, not a request"),
]


@pytest.mark.parametrize("method, params, code, message", BAD_PARAMS)
async def test_a_request_with_bad_params_is_answered_with_the_error(client, method, params, code, message):
    r = await raw_request(client, method, params)
    assert r == error(r["id"], code, message) and isinstance(r["id"], int)
    await still_serving(client)


BAD_MESSAGES = [  # (the body, the response's id, code, message)
    (b"{not json", None, PARSE_ERROR,
     "the message is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    (b'{"jsonrpc": "2.0", "id": 7, "method": "textDocument/hover", "params": {"textDocument": ', None, PARSE_ERROR,
     "the message is not JSON: Expecting value: line 1 column 88 (char 87)"),
    (b'{"jsonrpc": "2.0", "id": 8, "method": "\xff"}', None, PARSE_ERROR,
     "the message is not JSON: 'utf-8' codec can't decode byte 0xff in position 39: invalid start byte"),
    (b"[1, 2]", None, INVALID_REQUEST, "a message must be a JSON object, not an array"),
    (b"42", None, INVALID_REQUEST, "a message must be a JSON object, not a number"),
    (b'{"jsonrpc": "2.0", "id": {"n": 1}, "method": "shutdown"}', None, INVALID_REQUEST,
     "the id must be an integer or a string"),
    (b'{"jsonrpc": "2.0", "id": true, "method": "shutdown"}', None, INVALID_REQUEST,
     "the id must be an integer or a string"),
    (b'{"jsonrpc": "1.0", "id": 9, "method": "textDocument/hover", "params": {}}', 9, INVALID_REQUEST,
     '"jsonrpc" must be "2.0"'),
    (b'{"id": 10, "method": "textDocument/hover", "params": {}}', 10, INVALID_REQUEST, '"jsonrpc" must be "2.0"'),
    (b'{"jsonrpc": "2.0", "id": "eleven", "method": 11}', "eleven", INVALID_REQUEST, "the method must be a string"),
    (b'{"jsonrpc": "2.0", "id": 12}', None, INVALID_REQUEST, "a message needs a method, a result or an error"),
]


@pytest.mark.parametrize("body, request_id, code, message", BAD_MESSAGES)
async def test_a_malformed_message_is_answered_with_the_error(client, body, request_id, code, message):
    r = await raw_request(client, None, message=body)
    assert r == error(request_id, code, message)
    await still_serving(client)


async def test_a_notification_with_bad_params_is_logged_and_dropped(client):
    n = len(client.log_messages)
    await send_raw(client, json.dumps({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
        "textDocument": {"uri": URI, "version": 2}, "contentChanges": None}}).encode())
    await still_serving(client)
    assert [m.message for m in client.log_messages[n:]] == [
        "lpu-lsp: ignored the notification textDocument/didChange: invalid value for type, expected Sequence "
        "@ params.contentChanges"]
    # the document is as it was: a real change still applies and is checked
    p_count = len(client.published)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=3, uri=URI),
        [types.TextDocumentContentChangePartial(types.Range(types.Position(18, 3), types.Position(18, 4)), "6")]))
    p = await published_after(client, p_count, URI)
    assert (p.version, [d.message for d in p.diagnostics]) == (3, ["no value on s2e at MEM_E1 (position 49) in cycle 6"])
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=4, uri=URI),
        [types.TextDocumentContentChangeWholeDocument(VADD.read_text())]))
    await still_serving(client)


# --- random damage to every kind of request ------------------------------------------------------
VALID = [
    ("textDocument/hover", {"textDocument": TD, "position": pos(17, 15)}),
    ("textDocument/completion", {"textDocument": TD, "position": pos(17, 5), "context": {"triggerKind": 1}}),
    ("textDocument/definition", {"textDocument": TD, "position": pos(16, 24)}),
    ("textDocument/references", {"textDocument": TD, "position": pos(15, 24), "context": {"includeDeclaration": True}}),
    ("textDocument/documentSymbol", {"textDocument": TD}),
    ("textDocument/semanticTokens/full", {"textDocument": TD}),
    ("textDocument/foldingRange", {"textDocument": TD}),
    ("textDocument/inlayHint", {"textDocument": TD, "range": rng(0, 0, 20, 0)}),
    ("textDocument/codeAction", {"textDocument": TD, "range": rng(17, 0, 17, 5), "context": {
        "diagnostics": [{"range": rng(17, 0, 17, 5), "message": "m", "severity": 1, "source": "lpu-as"}]}}),
    ("workspace/executeCommand", {"command": "lpu.stats", "arguments": [URI]}),
]
JUNK = [None, True, 0, -1, 2**31, 2**40, 1.5, "", "x", "file:///nowhere.lpu", [], [None], {}, {"line": 0}, [1, "a"],
        {"jsonrpc": "2.0", "id": 1, "method": "shutdown"}]


def damage(rnd: random.Random, value):
    """A copy of a JSON value with one member replaced, removed or added somewhere inside."""
    value = copy.deepcopy(value)
    path = []
    node = value
    while isinstance(node, (dict, list)) and node and rnd.random() < 0.7:
        key = rnd.choice(list(node)) if isinstance(node, dict) else rnd.randrange(len(node))
        path.append((node, key))
        node = node[key]
    if not path:
        return rnd.choice(JUNK)
    parent, key = path[-1]
    action = rnd.choice(["replace", "replace", "remove", "add"])
    if action == "remove":
        del parent[key]
    elif action == "add" and isinstance(parent, dict):
        parent[rnd.choice(["extra", "line", "uri", "textDocument"])] = rnd.choice(JUNK)
    else:
        parent[key] = rnd.choice(JUNK)
    return value


async def test_every_damaged_request_is_answered_and_none_crashes_a_handler(client):
    rnd = random.Random(13)  # seeded: a failure reproduces
    codes = {}
    for i in range(400):
        method, params = rnd.choice(VALID)
        r = await raw_request(client, method, damage(rnd, params))
        assert "result" in r or "error" in r, r
        code = r["error"]["code"] if "error" in r else "result"
        assert code in ("result", INVALID_PARAMS), (method, r)  # never InternalError: a handler survived it
        codes[code] = codes.get(code, 0) + 1
    assert codes["result"] > 50 and codes[INVALID_PARAMS] > 50  # both kinds were drawn
    await still_serving(client)


@pytest_lsp.fixture(config=CONFIG, scope="module")  # its own server, shut down by the test
async def fresh_client(lsp_client: LanguageClient):
    await start(lsp_client)
    yield lsp_client


async def test_a_request_after_shutdown_is_refused(fresh_client):
    lsp_client = fresh_client
    assert (await raw_request(lsp_client, "shutdown"))["result"] is None
    r = await raw_request(lsp_client, "textDocument/hover", {"textDocument": TD, "position": pos(0, 0)})
    assert r == error(r["id"], INVALID_REQUEST, "textDocument/hover: the server is shut down")
    await send_raw(lsp_client, b'{"jsonrpc": "2.0", "method": "exit"}')
    assert await lsp_client._server.wait() == 0  # exit after shutdown: status 0


async def test_a_failing_handler_answers_internal_error_and_logs_its_traceback():
    # no handler is known to fail on any input, so the wrapper is checked on one that does
    from pygls.exceptions import JsonRpcInternalError, JsonRpcInvalidParams

    from lpu.lsp.server import guarded

    class Server:
        reported = []

        def report(self, what):
            self.reported.append(what)

    @guarded
    def semantic_tokens(ls, params):
        raise KeyError(params)

    @guarded
    def hover(ls, params):
        raise JsonRpcInvalidParams("file:///x.lpu is not open")

    ls = Server()
    with pytest.raises(JsonRpcInternalError) as failed:
        semantic_tokens(ls, "p")
    assert (failed.value.code, failed.value.message) == (
        INTERNAL_ERROR, "lpu-lsp: internal error in semantic tokens: KeyError: 'p'")
    with pytest.raises(JsonRpcInvalidParams) as refused:  # an error the handler means goes as it is
        hover(ls, "p")
    assert refused.value.message == "file:///x.lpu is not open"
    assert ls.reported == ["semantic tokens"]
