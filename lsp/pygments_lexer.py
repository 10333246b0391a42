"""A Pygments lexer for ``.lpu`` (both levels), so ``pygmentize -l lpu`` and documentation tools
highlight it. Registered as the ``lpu`` entry point of ``pygments.lexers`` in pyproject.toml.

Mnemonics and element types come from the ISA table; unit names follow the chip
configuration's naming (MEM_W3, VXM.0, MXM_E1, SXM_W, C2C_E).
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (Comment, Error, Keyword, Name, Number, Operator, Punctuation, String,
                            Whitespace)

from lpu.arch.isa import BY_MNEMONIC, DTYPES

_TYPES = "|".join(sorted(DTYPES, key=len, reverse=True))
_MNEMONICS = sorted(BY_MNEMONIC, key=len, reverse=True)
DIRECTIVES = ("target", "data", "reserve", "extern", "kernel", "global", "func", "in", "at", "load", "loc",
              "for", "to", "step", "iter")


class LpuLexer(RegexLexer):
    name = "LPU"
    aliases = ["lpu"]
    filenames = ["*.lpu"]
    mimetypes = ["text/x-lpu"]
    url = "https://example.invalid/lpu"  # the project has no public home yet

    tokens = {
        "root": [
            (r"[ \t\f\r]+", Whitespace),
            (r"\n", Whitespace),
            (r"//.*?$", Comment.Single),
            (r'hex"[0-9a-fA-F]*"', String),
            (r'"(?:\\.|[^"\\\n])*"', String),
            (r"tensor<(?:[0-9]+x)*(?:" + _TYPES + r")>", Keyword.Type),
            (r"@[0-9]+\b", Name.Label),  # an instruction's issue cycle
            (r"@[A-Za-z_][A-Za-z0-9_.$]*", Name.Variable.Global),  # a symbol
            (r"%[A-Za-z0-9_$.-]+", Name.Variable),  # an SSA value
            (words(DIRECTIVES, suffix=r"\b"), Keyword),
            (r"df\.[A-Za-z_][A-Za-z0-9_.]*", Name.Function),  # a dataflow op
            (r"(?:MEM|MXM|SXM|C2C)_[WE][0-9]*\b|VXM(?:\.[0-9]+)?\b", Name.Namespace),  # a unit
            (r"s[0-9]+[ew]\b", Name.Variable.Instance),  # a stream
            (r"acc[0-9]+\b|L[0-9]+\b", Name.Constant),  # an accumulator slot, a link
            (words(_MNEMONICS, suffix=r"(?:\.(?:" + _TYPES + r"))*\b"), Name.Builtin),
            (words(DTYPES, suffix=r"\b"), Keyword.Type),
            (r"0x[0-9a-fA-F]+", Number.Hex),
            (r"[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+", Number.Float),
            (r"[0-9]+", Number.Integer),
            (r"(->)", bygroups(Operator)),
            (r"[=+\-]", Operator),
            (r"[{}()\[\],:]", Punctuation),
            (r"[A-Za-z_][A-Za-z0-9_.]*", Name),
            (r".", Error),
        ],
    }
