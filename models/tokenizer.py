"""The byte-level BPE tokenizer a GGUF file describes (``tokenizer.ggml.model = "gpt2"``).

Everything comes from the file's metadata: the tokens, the merges (best first), the token
types (CONTROL and USER_DEFINED tokens such as ``<|im_start|>`` are matched whole in the text),
the split rules named by ``tokenizer.ggml.pre``, the BOS/EOS ids and the chat template.

Encoding: the text is cut at special tokens, each remaining run is split by the rules (regular
expressions applied one after another, every match and every gap between matches a piece of its
own, as llama.cpp and Hugging Face ``tokenizers`` apply them), each piece is spelled in GPT-2's
byte alphabet (every UTF-8 byte one printable character) and merged by the BPE ranks.
Decoding maps the characters back to bytes; ``TextStream`` does it token by token and holds a
character whose UTF-8 bytes are spread over several tokens until it is whole.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass, field
from functools import lru_cache

import regex

from lpu.models.gguf_file import GGUFFile, fail

# GPT-2's pre-tokenizer (Hugging Face's ByteLevel form: the final \s+ takes a whitespace run that
# the lookahead alternative leaves, which llama.cpp keeps as an unmatched piece: the same pieces)
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

# tokenizer.ggml.pre -> the rules, applied in order. "smollm" is llama.cpp's
# LLAMA_VOCAB_PRE_TYPE_SMOLLM: every digit alone first (SmolLM2's tokenizer.json: Digits with
# individual_digits, then ByteLevel), then GPT-2's rule.
SPLIT_RULES: dict[str, tuple[str, ...]] = {
    "gpt2": (GPT2_SPLIT,),
    "smollm": (r"\p{N}", GPT2_SPLIT),
}

# llama.cpp's token types (gguf.TokenType)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


@lru_cache(maxsize=1)
def byte_alphabet() -> tuple[str, ...]:
    """GPT-2's ``bytes_to_unicode``: byte ``b`` is spelled ``byte_alphabet()[b]`` — printable
    bytes as themselves, the others as the code points from 256 upward, in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    spelled = {}
    n = 0
    for b in range(256):
        if b in keep:
            spelled[b] = chr(b)
        else:
            spelled[b] = chr(256 + n)
            n += 1
    return tuple(spelled[b] for b in range(256))


@dataclass
class Tokenizer:
    tokens: list[str]
    merges: list[str]
    token_types: list[int]
    pre: str = "gpt2"
    bos_id: int | None = None
    eos_id: int | None = None
    add_bos: bool = False
    add_eos: bool = False
    chat_template: str | None = None
    source: str = "<tokenizer>"
    _ids: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.pre not in SPLIT_RULES:
            raise fail(self.source, f"pre-tokenizer '{self.pre}' is not supported "
                                    f"(supported: {', '.join(sorted(SPLIT_RULES))})")
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        self._ranks = {}
        for r, m in enumerate(self.merges):
            a, _, b = m.partition(" ")
            self._ranks.setdefault((a, b), r)
        self._rules = [regex.compile(p) for p in SPLIT_RULES[self.pre]]
        self.special_ids = [i for i, t in enumerate(self.token_types) if t in (CONTROL, USER_DEFINED)]
        specials = sorted((self.tokens[i] for i in self.special_ids), key=lambda s: (-len(s), s))
        # leftmost, then longest: an alternation tried longest first at each position
        self._special = regex.compile("|".join(regex.escape(s) for s in specials)) if specials else None
        alphabet = byte_alphabet()
        self._spell = str.maketrans({i: c for i, c in enumerate(alphabet)})
        self._unspell = {c: b for b, c in enumerate(alphabet)}
        self._cache: dict[str, tuple[int, ...]] = {}

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_gguf(cls, path: str | GGUFFile, pre: str | None = None) -> "Tokenizer":
        """The tokenizer of a GGUF file; ``pre`` overrides the file's split rules (``"gpt2"``
        reproduces transformers 5, which does not know ``"smollm"`` and uses GPT-2's rule)."""
        f = path if isinstance(path, GGUFFile) else GGUFFile(path)
        model = f.require("tokenizer.ggml.model", "the tokenizer's kind")
        if model != "gpt2":
            raise fail(f.path, f"tokenizer model '{model}' is not supported (supported: gpt2, byte-level BPE)")
        tokens = f.require("tokenizer.ggml.tokens", "the vocabulary")
        merges = f.require("tokenizer.ggml.merges", "the BPE merges")
        types = f.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens)
        return cls(tokens=list(tokens), merges=list(merges), token_types=[int(t) for t in types],
                   pre=pre or f.get("tokenizer.ggml.pre", "gpt2"),
                   bos_id=_opt_int(f.get("tokenizer.ggml.bos_token_id")),
                   eos_id=_opt_int(f.get("tokenizer.ggml.eos_token_id")),
                   add_bos=bool(f.get("tokenizer.ggml.add_bos_token", False)),
                   add_eos=bool(f.get("tokenizer.ggml.add_eos_token", False)),
                   chat_template=f.get("tokenizer.chat_template"), source=f.path)

    def to_json(self) -> str:
        """The tokenizer as JSON (what ``lpu import`` writes beside the weights)."""
        keys = ("tokens", "merges", "token_types", "pre", "bos_id", "eos_id", "add_bos", "add_eos", "chat_template")
        return json.dumps({k: getattr(self, k) for k in keys}, ensure_ascii=False, indent=0) + "\n"

    @classmethod
    def load(cls, path: str, pre: str | None = None) -> "Tokenizer":
        """A tokenizer saved by ``to_json`` (an imported model's ``tokenizer.json``)."""
        from lpu.files import read_text

        try:
            d = json.loads(read_text(path))
        except json.JSONDecodeError as e:
            raise fail(path, f"not a tokenizer file: {e}") from None
        if pre is not None:
            d["pre"] = pre
        return cls(source=path, **d)

    # --- encoding --------------------------------------------------------------------------
    def split(self, text: str) -> list[str]:
        """The pieces the split rules cut ``text`` (no special tokens in it) into."""
        pieces = [text]
        for rule in self._rules:
            nxt: list[str] = []
            for piece in pieces:
                at = 0
                for m in rule.finditer(piece):
                    if m.start() > at:
                        nxt.append(piece[at:m.start()])
                    if m.end() > m.start():
                        nxt.append(m.group())
                    at = m.end()
                if at < len(piece):
                    nxt.append(piece[at:])
            pieces = nxt
        return pieces

    def _bpe(self, piece: str) -> tuple[int, ...]:
        hit = self._cache.get(piece)
        if hit is not None:
            return hit
        word = list(piece.encode("utf-8").decode("latin-1").translate(self._spell))
        ranks = self._ranks
        while len(word) > 1:
            best, at = None, -1
            for i in range(len(word) - 1):
                r = ranks.get((word[i], word[i + 1]))
                if r is not None and (best is None or r < best):
                    best, at = r, i
            if best is None:
                break
            pair = (word[at], word[at + 1])
            merged, i = [], 0
            while i < len(word):  # every occurrence of the best pair, left to right
                if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        ids = tuple(self._ids[s] for s in word)
        if len(self._cache) < 100_000:
            self._cache[piece] = ids
        return ids

    def encode(self, text: str, add_bos: bool | None = None, special: bool = True) -> list[int]:
        """Token ids of ``text``. ``special``: control and user-defined tokens written in the
        text (``<|im_start|>``) are those tokens; ``add_bos``: prepend BOS (default: the file's
        ``add_bos_token``)."""
        ids: list[int] = []
        if (self.add_bos if add_bos is None else add_bos) and self.bos_id is not None:
            ids.append(self.bos_id)
        at = 0
        if special and self._special is not None:
            for m in self._special.finditer(text):
                ids += self._encode_plain(text[at:m.start()])
                ids.append(self._ids[m.group()])
                at = m.end()
        ids += self._encode_plain(text[at:])
        if self.add_eos and self.eos_id is not None:
            ids.append(self.eos_id)
        return ids

    def _encode_plain(self, text: str) -> list[int]:
        out: list[int] = []
        for piece in self.split(text) if text else ():
            out += self._bpe(piece)
        return out

    # --- decoding --------------------------------------------------------------------------
    def token_bytes(self, token_id: int) -> bytes:
        """The bytes token ``token_id`` stands for (a special token: its text in UTF-8)."""
        t = self.tokens[token_id]
        if self.token_types[token_id] in (CONTROL, USER_DEFINED) or any(c not in self._unspell for c in t):
            return t.encode("utf-8")
        return bytes(self._unspell[c] for c in t)

    def decode(self, ids, skip_special: bool = False) -> str:
        """The text of ``ids`` (invalid UTF-8 becomes U+FFFD, as transformers decodes)."""
        return b"".join(self.token_bytes(i) for i in ids
                        if not (skip_special and self.token_types[i] == CONTROL)).decode("utf-8", "replace")

    def stream(self, skip_special: bool = False) -> "TextStream":
        return TextStream(self, skip_special)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The prompt text the file's chat template makes of ``messages`` (``[{"role": "user",
        "content": ...}]``), rendered as transformers renders it (Jinja2, sandboxed, blocks
        trimmed)."""
        if not self.chat_template:
            raise fail(self.source, "the tokenizer has no chat template ('tokenizer.chat_template')")
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message):
            raise fail(self.source, f"chat template: {message}")

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        env.globals["raise_exception"] = raise_exception
        name = lambda i: self.tokens[i] if i is not None else None  # noqa: E731
        return env.from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=add_generation_prompt,
            bos_token=name(self.bos_id), eos_token=name(self.eos_id))

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)


class TextStream:
    """Decodes a token at a time: ``push(id)`` returns the text that is now complete (a
    character split over tokens waits for its last byte), ``flush()`` the rest."""

    def __init__(self, tokenizer: Tokenizer, skip_special: bool = False):
        self.tokenizer = tokenizer
        self.skip_special = skip_special
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def push(self, token_id: int) -> str:
        if self.skip_special and self.tokenizer.token_types[token_id] == CONTROL:
            return ""
        return self._utf8.decode(self.tokenizer.token_bytes(token_id))

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True)


def _opt_int(v) -> int | None:
    return None if v is None else int(v)
