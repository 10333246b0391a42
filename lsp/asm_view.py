"""The assembly level as the server sees it: one analysis of a document, answering protocol
requests in protocol terms (0-based lines, UTF-16 columns, URIs)."""

from __future__ import annotations

from lsprotocol import types

from lpu.lsp import asm_features as F
from lpu.lsp.asm_analysis import AsmSnapshot
from lpu.lsp.asm_index import AsmIndex
from lpu.lsp.positions import Lines, to_lsp

SOURCE = "lpu-as"


class AsmView:
    def __init__(self, snap: AsmSnapshot, uri: str, encoding: str = "utf-16") -> None:
        self.snap = snap
        self.uri = uri
        self.lines = Lines(snap.lines, encoding)
        self._index: AsmIndex | None = None

    @property
    def index(self) -> AsmIndex:
        if self._index is None:
            self._index = AsmIndex(self.snap)
        return self._index

    def diagnostics(self) -> list[types.Diagnostic]:
        return [to_lsp(d, self.lines, self.snap.file, self.uri, SOURCE) for d in self.snap.diagnostics]

    def _at(self, pos: types.Position) -> tuple[int, int]:
        return self.lines.char(pos)

    def hover(self, pos: types.Position) -> types.Hover | None:
        line, col = self._at(pos)
        found = F.hover(self.snap, self.index, line, col)
        if found is None:
            return None
        text, (l, c, n) = found
        return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, text), self.lines.range(l, c, n))

    def completion(self, pos: types.Position) -> list[types.CompletionItem]:
        line, col = self._at(pos)
        return F.completion(self.snap, self.index, line, col)

    def _location(self, occ) -> types.Location:
        return types.Location(self.uri, self.lines.range(occ.line, occ.col, occ.length))

    def definition(self, pos: types.Position) -> list[types.Location]:
        line, col = self._at(pos)
        occ = F.definition(self.index, line, col)
        return [self._location(occ)] if occ is not None else []

    def references(self, pos: types.Position, include_declaration: bool) -> list[types.Location]:
        line, col = self._at(pos)
        return [self._location(o) for o in F.references(self.index, line, col, include_declaration)]

    def symbols(self) -> list[types.DocumentSymbol]:
        return F.document_symbols(self.snap, self.lines)

    def semantic_tokens(self) -> list[int]:
        return F.encode_tokens(F.semantic_tokens(self.snap, self.index), self.lines)

    def folding(self) -> list[types.FoldingRange]:
        return F.folding_ranges(self.snap)

    def inlay_hints(self, rng: types.Range) -> list[types.InlayHint]:
        return F.inlay_hints(self.snap, self.lines, rng.start.line + 1, rng.end.line + 1)

    def code_actions(self, rng: types.Range) -> list[types.CodeAction]:
        """Quick fixes for the diagnostics of the last analysis that touch ``rng``."""
        out = []
        for d in self.diagnostics():
            if d.range.end.line < rng.start.line or d.range.start.line > rng.end.line:
                continue
            note = d.related_information[0].message if d.related_information else None
            fix = F.move_to_arrival(self.snap, self.index, d.range.start.line + 1, d.message, note)
            if fix is None:
                continue
            title, edits = fix
            text_edits = [types.TextEdit(self.lines.range(l, c, n), new) for l, c, n, new in edits]
            out.append(types.CodeAction(title, kind=types.CodeActionKind.QuickFix, diagnostics=[d],
                                        is_preferred=True,
                                        edit=types.WorkspaceEdit(changes={self.uri: text_edits})))
        return out
