"""A pytest-lsp client for the language server tests: starts ``lpu-lsp`` over stdio and records
every ``publishDiagnostics`` notification (version included), so tests can tell a lost or
duplicated publish from a right one, and every response as the JSON the server sent, so tests
can send malformed messages byte for byte (``send_raw``) and see exactly what came back."""

from __future__ import annotations

import asyncio
import copy
import inspect
import itertools
import json
import sys

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import make_test_lsp_client

SERVER = [sys.executable, "-m", "lpu.lsp.cli"]


def recording_client() -> LanguageClient:
    client = make_test_lsp_client()
    client.published = []  # every PublishDiagnosticsParams, in arrival order
    method = types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS
    original = client.protocol.fm.features[method]

    def record(params):
        client.published.append(params)
        return original(params)

    client.protocol.fm.features[method] = record
    client.responses = []  # every response (result or error) from the server, as raw JSON objects
    structure = client.protocol.structure_message

    def keep_responses(data):
        if isinstance(data, dict) and "jsonrpc" in data and "method" not in data:
            client.responses.append(copy.deepcopy(data))  # structuring below rewrites it in place
        return structure(data)

    client.protocol.structure_message = keep_responses  # json.loads's object hook, looked up per message
    return client


CONFIG = ClientServerConfig(server_command=SERVER, client_factory=recording_client)


async def start(client: LanguageClient, debounce_ms: int = 20) -> None:
    await client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(), initialization_options={"debounceMs": debounce_ms}))


async def open_document(client: LanguageClient, uri: str, text: str, version: int = 1):
    """Open a document and return the diagnostics published for it."""
    n = len(client.published)
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "lpu", version, text)))
    return await published_after(client, n, uri)


async def published_after(client: LanguageClient, n: int, uri: str, timeout: float = 10.0):
    """Wait for a publish for ``uri`` after the first ``n`` ones; return its params."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        for p in client.published[n:]:
            if p.uri == uri:
                return p
        await asyncio.sleep(0.005)
    raise AssertionError(f"no diagnostics published for {uri} within {timeout}s")


def change(client: LanguageClient, uri: str, version: int, line: int, col: int, end_line: int, end_col: int,
           text: str) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=version, uri=uri),
        [types.TextDocumentContentChangePartial(
            types.Range(types.Position(line, col), types.Position(end_line, end_col)), text)]))


def replace_all(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=version, uri=uri), [types.TextDocumentContentChangeWholeDocument(text)]))


def doc(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri)


_raw_ids = itertools.count(1_000_000)  # clear of the ids pygls gives its own requests (uuids)


async def send_raw(client: LanguageClient, body: bytes) -> None:
    """Write one message body as it is, framed by its Content-Length (malformed ones too)."""
    done = client.protocol.writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    if inspect.isawaitable(done):
        await done


async def raw_request(client: LanguageClient, method, params=None, *, message: dict | bytes | None = None,
                      timeout: float = 10.0) -> dict:
    """Send a request built from ``method`` and ``params`` as they are (``params=...`` leaves the
    member out), or a whole ``message`` (a dict, or bytes sent unchanged); return the server's
    response to it as raw JSON: the response with its id, or (bytes, or an id the server
    cannot read) the next response."""
    n = len(client.responses)
    if message is None:
        message = {"jsonrpc": "2.0", "id": next(_raw_ids), "method": method}
        if params is not ...:
            message["params"] = params
    want = message.get("id") if isinstance(message, dict) else ...
    await send_raw(client, message if isinstance(message, bytes) else json.dumps(message).encode())
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        for r in client.responses[n:]:
            if want is ... or r.get("id") in (want, None):
                return r
        await asyncio.sleep(0.005)
    raise AssertionError(f"no response to {message!r} within {timeout}s")
