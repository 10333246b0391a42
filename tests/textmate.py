"""A minimal TextMate grammar tokenizer, enough to check the VS Code grammar in tests.

Supports what ``editors/vscode/syntaxes/lpu.tmLanguage.json`` uses: ``match`` and
``begin``/``end`` rules, ``name``, ``captures``/``beginCaptures``/``endCaptures``, ``patterns``
and ``include`` (``#name`` and ``$self``). At each position the rule whose match starts first
wins, ties going to the context's ``end`` and then to the earlier rule, as in TextMate. Regexes
are compiled with Python's ``re``, which accepts the subset of Oniguruma the grammar is kept to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass
class Token:
    line: int  # 0-based
    start: int
    end: int
    scopes: tuple[str, ...]
    text: str


class Grammar:
    def __init__(self, data: dict) -> None:
        self.data = data
        self.repository = data.get("repository", {})
        self._regex: dict[str, re.Pattern] = {}

    def regex(self, source: str) -> re.Pattern:
        r = self._regex.get(source)
        if r is None:
            r = self._regex[source] = re.compile(source)
        return r

    def rules(self, patterns: list, seen: tuple = ()) -> list[dict]:
        """The patterns with every include expanded, in order."""
        out: list[dict] = []
        for p in patterns:
            if "include" in p:
                ref = p["include"]
                target = self.data if ref == "$self" else self.repository[ref[1:]]
                if ref in seen:
                    continue
                if "match" in target or "begin" in target:
                    out.append(target)
                else:
                    out.extend(self.rules(target.get("patterns", []), seen + (ref,)))
            elif "match" in p or "begin" in p:
                out.append(p)
            else:
                out.extend(self.rules(p.get("patterns", []), seen))
        return out


def _captured(tokens, line_no, line, m, captures, scopes):
    """Tokens for a match: the whole in ``scopes``, named groups deeper."""
    spans = [(m.start(), m.end(), scopes)]
    for key, cap in (captures or {}).items():
        g = int(key)
        if g <= (m.re.groups if g else 0) and m.start(g) >= 0 and "name" in cap:
            spans.append((m.start(g), m.end(g), scopes + (cap["name"],)))
    # paint characters with the deepest span covering them
    paint = [scopes] * (m.end() - m.start())
    for s, e, sc in spans[1:]:
        for i in range(s, e):
            paint[i - m.start()] = sc
    i = 0
    while i < len(paint):
        j = i
        while j < len(paint) and paint[j] == paint[i]:
            j += 1
        a, b = m.start() + i, m.start() + j
        tokens.append(Token(line_no, a, b, paint[i], line[a:b]))
        i = j


def tokenize(grammar: Grammar, text: str) -> list[Token]:
    root = (grammar.rules(grammar.data["patterns"]), None, (grammar.data["scopeName"],), None)
    stack = [root]
    tokens: list[Token] = []
    for line_no, line in enumerate(text.split("\n")):
        pos = 0
        # the last search of each regex on this line: (from, match); a match found from an
        # earlier position that starts at or after ``pos`` is the one a search from ``pos`` finds
        last: dict[str, tuple[int, re.Match | None]] = {}

        def search(source: str) -> re.Match | None:
            hit = last.get(source)
            if hit is not None and hit[0] <= pos and (hit[1] is None or hit[1].start() >= pos):
                return hit[1]
            m = grammar.regex(source).search(line, pos)
            last[source] = (pos, m)
            return m

        while True:
            rules, end, scopes, ctx_rule = stack[-1]
            best = None  # (start, order, kind, rule, match)
            if end is not None:
                m = search(end)
                if m is not None:
                    best = (m.start(), -1, "end", ctx_rule, m)
            for order, rule in enumerate(rules):
                m = search(rule.get("match") or rule["begin"])
                if m is not None and (best is None or m.start() < best[0]):
                    best = (m.start(), order, "begin" if "begin" in rule else "match", rule, m)
            if best is None:
                if pos < len(line):
                    tokens.append(Token(line_no, pos, len(line), scopes, line[pos:]))
                break
            start, _order, kind, rule, m = best
            if start > pos:
                tokens.append(Token(line_no, pos, start, scopes, line[pos:start]))
            if kind == "end":
                _captured(tokens, line_no, line, m, rule.get("endCaptures") or rule.get("captures"), scopes)
                stack.pop()
            elif kind == "match":
                inner = scopes + ((rule["name"],) if "name" in rule else ())
                _captured(tokens, line_no, line, m, rule.get("captures"), inner)
            else:
                inner = scopes + ((rule["name"],) if "name" in rule else ())
                _captured(tokens, line_no, line, m, rule.get("beginCaptures") or rule.get("captures"), inner)
                stack.append((grammar.rules(rule.get("patterns", [])), rule["end"], inner, rule))
            if m.end() == pos and kind != "end":  # an empty match: step over one character
                if pos >= len(line):
                    break
                tokens.append(Token(line_no, pos, pos + 1, scopes, line[pos]))
                pos += 1
            else:
                pos = m.end()
            if pos >= len(line) and kind != "end":
                # only a zero-width end (such as '$') can still match at the end of the line
                rules, end, scopes, ctx_rule = stack[-1]
                if end is None or grammar.regex(end).search(line, pos) is None:
                    break
    return [t for t in tokens if t.end > t.start]
