"""``lpu-lsp``: the language server (pygls) for both levels of ``.lpu``.

Edits are debounced: each change restarts a short timer per document, and when it fires the
latest text is analysed and its diagnostics published once, tagged with the version they
describe. A request (hover, completion, ...) on a document with a pending change analyses it
first, so answers always describe the text the editor shows. No handler lets an exception out:
a failure is logged to the client and answered with an empty result.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import traceback

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from lpu import __version__
from lpu.lsp import asm_features
from lpu.lsp.asm_analysis import AsmDocument
from lpu.lsp.asm_view import AsmView
from lpu.lsp.positions import path_of

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
        super().__init__("lpu-lsp", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
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
        if doc is None:
            return None
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


def guarded(default):
    """Answer ``default`` (and log the traceback to the client) if a handler fails."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(ls, params):
            try:
                return fn(ls, params)
            except Exception:  # noqa: BLE001 - no request may kill the server
                ls.report(fn.__name__.replace("_", " "))
                return default() if callable(default) else default

        return inner

    return wrap


def build_server() -> LpuLanguageServer:
    server = LpuLanguageServer()

    @server.feature(types.INITIALIZE)
    @guarded(None)
    def initialize(ls: LpuLanguageServer, params: types.InitializeParams):
        opts = params.initialization_options
        if isinstance(opts, dict) and isinstance(opts.get("debounceMs"), (int, float)) and opts["debounceMs"] >= 0:
            ls.debounce_ms = opts["debounceMs"]

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    @guarded(None)
    def did_open(ls: LpuLanguageServer, params: types.DidOpenTextDocumentParams):
        doc = ls.document(params.text_document.uri)
        doc.published_version = ()  # a document opened again gets its diagnostics again
        ls.analyse(doc)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    @guarded(None)
    def did_change(ls: LpuLanguageServer, params: types.DidChangeTextDocumentParams):
        ls.schedule(ls.document(params.text_document.uri))

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    @guarded(None)
    def did_save(ls: LpuLanguageServer, params: types.DidSaveTextDocumentParams):
        doc = ls.open_documents.get(params.text_document.uri)
        if doc is not None:  # data files (load("x.npy")) may have changed: check again now
            doc.published_version = ()
            ls.analyse(doc)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @guarded(None)
    def did_close(ls: LpuLanguageServer, params: types.DidCloseTextDocumentParams):
        doc = ls.open_documents.pop(params.text_document.uri, None)
        if doc is not None and doc.timer is not None:
            doc.timer.cancel()
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(params.text_document.uri, []))

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    @guarded(None)
    def hover(ls: LpuLanguageServer, params: types.HoverParams):
        view = ls.fresh_view(params.text_document.uri)
        return view.hover(params.position) if view else None

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=["@", "[", ".", " "]))
    @guarded(lambda: types.CompletionList(False, []))
    def completion(ls: LpuLanguageServer, params: types.CompletionParams):
        view = ls.fresh_view(params.text_document.uri)
        return types.CompletionList(False, view.completion(params.position) if view else [])

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    @guarded(list)
    def definition(ls: LpuLanguageServer, params: types.DefinitionParams):
        view = ls.fresh_view(params.text_document.uri)
        return view.definition(params.position) if view else []

    @server.feature(types.TEXT_DOCUMENT_REFERENCES)
    @guarded(list)
    def references(ls: LpuLanguageServer, params: types.ReferenceParams):
        view = ls.fresh_view(params.text_document.uri)
        return view.references(params.position, params.context.include_declaration) if view else []

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    @guarded(list)
    def document_symbol(ls: LpuLanguageServer, params: types.DocumentSymbolParams):
        view = ls.fresh_view(params.text_document.uri)
        return view.symbols() if view else []

    @server.feature(types.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL,
                    types.SemanticTokensLegend(asm_features.TOKEN_TYPES, asm_features.TOKEN_MODIFIERS))
    @guarded(lambda: types.SemanticTokens([]))
    def semantic_tokens(ls: LpuLanguageServer, params: types.SemanticTokensParams):
        view = ls.fresh_view(params.text_document.uri)
        return types.SemanticTokens(view.semantic_tokens() if view else [])

    @server.feature(types.TEXT_DOCUMENT_FOLDING_RANGE)
    @guarded(list)
    def folding_range(ls: LpuLanguageServer, params: types.FoldingRangeParams):
        view = ls.fresh_view(params.text_document.uri)
        return view.folding() if view else []

    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT, types.InlayHintOptions(resolve_provider=False))
    @guarded(list)
    def inlay_hint(ls: LpuLanguageServer, params: types.InlayHintParams):
        view = ls.fresh_view(params.text_document.uri)
        return view.inlay_hints(params.range) if view else []

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    @guarded(list)
    def code_action(ls: LpuLanguageServer, params: types.CodeActionParams):
        view = ls.fresh_view(params.text_document.uri)
        return view.code_actions(params.range) if view else []

    @server.command("lpu.stats")
    def stats(ls: LpuLanguageServer, *args):
        """How much the last analysis of a document re-did (tests check the incremental path
        through it). The argument is the document's URI."""
        uri = args[0] if args and isinstance(args[0], str) else \
            args[0][0] if args and isinstance(args[0], list) and args[0] else None
        doc = ls.open_documents.get(uri)
        snap = getattr(doc.view, "snap", None) if doc else None
        return {"analyses": ls.analyses,
                "incremental": getattr(snap, "incremental", None),
                "reparsed": getattr(snap, "reparsed", None),
                "rechecked": getattr(snap, "rechecked", None)}

    return server
