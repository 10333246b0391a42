"""``lpu-lsp``: the language server (pygls) for both levels of ``.lpu``.

Edits are debounced: each change restarts a short timer per document, and when it fires the
latest text is analysed and its diagnostics published once, tagged with the version they
describe. A request (hover, completion, ...) on a document with a pending change analyses it
first, so answers always describe the text the editor shows.

Every request is answered (lpu.lsp.protocol): malformed params and a document that is not
open with ``InvalidParams``; a failure inside a handler with ``InternalError``, its traceback
logged to the client; the server keeps serving either way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import traceback

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from lpu import __version__
from lpu.lsp import asm_features
from lpu.lsp.asm_analysis import AsmDocument
from lpu.lsp.asm_view import AsmView
from lpu.lsp.positions import path_of
from lpu.lsp.protocol import LpuProtocol, strict_converter

DEFAULT_DEBOUNCE_MS = 50
log = logging.getLogger("lpu-lsp")


class Document:
    """One open document: its analysers (one per level, each keeping its own caches) and the
    view of its latest analysis."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.file = path_of(uri)
        self.asm = AsmDocument(self.file)
        self.dataflow = None  # created on first use (lpu.lsp.dataflow)
        self.view = None
        self.analysed_version: int | None = None
        self.published_version: object = ()  # a version no document has
        self.timer: asyncio.TimerHandle | None = None
        self.dirty = True


class LpuLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("lpu-lsp", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
                         protocol_cls=LpuProtocol, converter_factory=strict_converter)
        self.open_documents: dict[str, Document] = {}
        self.debounce_ms = DEFAULT_DEBOUNCE_MS
        self.analyses = 0  # analyses run (the benchmark and tests read it through a command)

    # --- analysis -----------------------------------------------------------------------------
    def document(self, uri: str) -> Document:
        doc = self.open_documents.get(uri)
        if doc is None:
            doc = self.open_documents[uri] = Document(uri)
        return doc

    def analyse(self, doc: Document) -> None:
        """Analyse the current text of a document and publish its diagnostics (once per version)."""
        if doc.timer is not None:
            doc.timer.cancel()
            doc.timer = None
        text_doc = self.workspace.get_text_document(doc.uri)
        text, version = text_doc.source, text_doc.version
        doc.view = make_view(doc, text, self.encoding())
        doc.dirty = False
        doc.analysed_version = version
        self.analyses += 1
        if doc.published_version != version:
            doc.published_version = version
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(doc.uri, doc.view.diagnostics(), version=version))

    def encoding(self) -> str:
        enc = self.workspace.position_encoding or "utf-16"
        return getattr(enc, "value", enc)

    def schedule(self, doc: Document) -> None:
        doc.dirty = True
        if doc.timer is not None:
            doc.timer.cancel()
        loop = asyncio.get_running_loop()
        doc.timer = loop.call_later(self.debounce_ms / 1000, self._fire, doc.uri)

    def _fire(self, uri: str) -> None:
        doc = self.open_documents.get(uri)
        if doc is None or not doc.dirty:
            return
        doc.timer = None
        try:
            self.analyse(doc)
        except Exception:  # noqa: BLE001 - the server must outlive any document
            self.report(f"analysing {uri}")

    def fresh_view(self, uri: str):
        """The view of a document's current text (analysing a pending change now)."""
        doc = self.open_documents.get(uri)
        if doc is None:  # the server knows only what the client opened (textDocument/didOpen)
            raise JsonRpcInvalidParams(f"{uri} is not open")
        if doc.dirty or doc.view is None:
            self.analyse(doc)
        return doc.view

    def report(self, what: str) -> None:
        text = traceback.format_exc()
        log.error("lpu-lsp: internal error while %s\n%s", what, text)
        try:
            self.window_log_message(types.LogMessageParams(types.MessageType.Error,
                                                           f"lpu-lsp: internal error while {what}:\n{text}"))
        except Exception:  # noqa: BLE001
            pass

    def report_server_error(self, error: Exception, source) -> None:
        # pygls's read loop hands over what json.loads could not read, with JsonRpcException as
        # the source; everything else was answered where it happened
        if source is JsonRpcException and not isinstance(error, JsonRpcException):
            self.protocol.refuse_unreadable(error)
        else:
            log.error("lpu-lsp: %s", error)


_DATAFLOW_RE = re.compile(r"^[ \t]*func\b", re.M)


def is_dataflow(text: str) -> bool:
    """A file with a dataflow ``func`` is read by the dataflow front end, as lpu-opt reads it
    (its kernels too); otherwise it is assembly, read as lpu-as reads it."""
    return _DATAFLOW_RE.search(text) is not None


def make_view(doc: Document, text: str, encoding: str = "utf-16"):
    if is_dataflow(text):
        from lpu.lsp import dataflow

        if dataflow.available():
            if doc.dataflow is None:
                doc.dataflow = dataflow.DataflowDocument(doc.file)
            return dataflow.DataflowView(doc.dataflow.analyze(text), doc.uri, encoding)
    return AsmView(doc.asm.analyze(text), doc.uri, encoding)


# --- the protocol -------------------------------------------------------------------------------
SERVER = None


def guarded(fn):
    """A failing handler logs its traceback to the client and answers ``InternalError`` (a
    request; pygls sends the error) — an error the handler means (``InvalidParams``) goes as is."""

    @functools.wraps(fn)
    def inner(ls, params):
        try:
            return fn(ls, params)
        except JsonRpcException:
            raise
        except Exception as exc:  # noqa: BLE001 - no request may kill the server
            what = fn.__name__.replace("_", " ")
            ls.report(what)
            raise JsonRpcInternalError(f"lpu-lsp: internal error in {what}: {type(exc).__name__}: {exc}") from None

    return inner


def build_server() -> LpuLanguageServer:
    server = LpuLanguageServer()

    @server.feature(types.INITIALIZE)
    @guarded
    def initialize(ls: LpuLanguageServer, params: types.InitializeParams):
        opts = params.initialization_options
        if isinstance(opts, dict) and isinstance(opts.get("debounceMs"), (int, float)) and opts["debounceMs"] >= 0:
            ls.debounce_ms = opts["debounceMs"]

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    @guarded
    def did_open(ls: LpuLanguageServer, params: types.DidOpenTextDocumentParams):
        doc = ls.document(params.text_document.uri)
        doc.published_version = ()  # a document opened again gets its diagnostics again
        ls.analyse(doc)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    @guarded
    def did_change(ls: LpuLanguageServer, params: types.DidChangeTextDocumentParams):
        ls.schedule(ls.document(params.text_document.uri))

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    @guarded
    def did_save(ls: LpuLanguageServer, params: types.DidSaveTextDocumentParams):
        doc = ls.open_documents.get(params.text_document.uri)
        if doc is not None:  # data files (load("x.npy")) may have changed: check again now
            doc.published_version = ()
            ls.analyse(doc)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @guarded
    def did_close(ls: LpuLanguageServer, params: types.DidCloseTextDocumentParams):
        doc = ls.open_documents.pop(params.text_document.uri, None)
        if doc is not None and doc.timer is not None:
            doc.timer.cancel()
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(params.text_document.uri, []))

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    @guarded
    def hover(ls: LpuLanguageServer, params: types.HoverParams):
        return ls.fresh_view(params.text_document.uri).hover(params.position)

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=["@", "[", ".", " "]))
    @guarded
    def completion(ls: LpuLanguageServer, params: types.CompletionParams):
        return types.CompletionList(False, ls.fresh_view(params.text_document.uri).completion(params.position))

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    @guarded
    def definition(ls: LpuLanguageServer, params: types.DefinitionParams):
        return ls.fresh_view(params.text_document.uri).definition(params.position)

    @server.feature(types.TEXT_DOCUMENT_REFERENCES)
    @guarded
    def references(ls: LpuLanguageServer, params: types.ReferenceParams):
        view = ls.fresh_view(params.text_document.uri)
        return view.references(params.position, params.context.include_declaration)

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    @guarded
    def document_symbol(ls: LpuLanguageServer, params: types.DocumentSymbolParams):
        return ls.fresh_view(params.text_document.uri).symbols()

    @server.feature(types.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL,
                    types.SemanticTokensLegend(asm_features.TOKEN_TYPES, asm_features.TOKEN_MODIFIERS))
    @guarded
    def semantic_tokens(ls: LpuLanguageServer, params: types.SemanticTokensParams):
        return types.SemanticTokens(ls.fresh_view(params.text_document.uri).semantic_tokens())

    @server.feature(types.TEXT_DOCUMENT_FOLDING_RANGE)
    @guarded
    def folding_range(ls: LpuLanguageServer, params: types.FoldingRangeParams):
        return ls.fresh_view(params.text_document.uri).folding()

    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT, types.InlayHintOptions(resolve_provider=False))
    @guarded
    def inlay_hint(ls: LpuLanguageServer, params: types.InlayHintParams):
        return ls.fresh_view(params.text_document.uri).inlay_hints(params.range)

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    @guarded
    def code_action(ls: LpuLanguageServer, params: types.CodeActionParams):
        return ls.fresh_view(params.text_document.uri).code_actions(params.range)

    @server.command("lpu.stats")
    def stats(ls: LpuLanguageServer, *args):
        """How much the last analysis of a document re-did (tests check the incremental path
        through it). The argument is the URI of an open document."""
        uri = args[0] if len(args) == 1 else None
        if isinstance(uri, list) and len(uri) == 1:  # the arguments as one list
            uri = uri[0]
        if not isinstance(uri, str) or uri not in ls.open_documents:
            raise JsonRpcInvalidParams("lpu.stats takes one argument, the URI of an open document")
        snap = getattr(ls.open_documents[uri].view, "snap", None)
        return {"analyses": ls.analyses,
                "incremental": getattr(snap, "incremental", None),
                "reparsed": getattr(snap, "reparsed", None),
                "rechecked": getattr(snap, "rechecked", None)}

    return server
