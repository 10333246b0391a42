"""The GGUF's own tokenizer against transformers' ids (the golden fixtures), its split rules
("smollm": digits alone, as SmolLM2's tokenizer.json and llama.cpp split), special tokens, the
chat template, and decoding, whole and token by token."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from lpu.diagnostics import DiagnosticError
from lpu.models import smollm2
from lpu.models.gguf_file import GGUFFile
from lpu.models.tokenizer import Tokenizer, byte_alphabet
from models_helpers import TINY_GGUF, needs_smollm2, smollm2_golden, tiny_golden


@pytest.fixture(scope="module")
def tiny():
    return Tokenizer.from_gguf(TINY_GGUF)


@pytest.fixture(scope="module")
def smol_file():
    return GGUFFile(smollm2.gguf_path())                 # opening it costs 2 s: once


@pytest.fixture(scope="module")
def smol(smol_file):
    return Tokenizer.from_gguf(smol_file)


def test_byte_alphabet_is_gpt2s():
    a = byte_alphabet()
    assert len(set(a)) == 256 and a[ord("A")] == "A" and a[ord(" ")] == "\u0120" and a[ord("\n")] == "\u010a"
    assert a[0] == "\u0100" and a[0xAD] == "\u0143" and a[0xFF] == "\u00ff"


def _check_corpus(tok_smollm: Tokenizer, tok_gpt2: Tokenizer, golden) -> int:
    differ = 0
    for entry in golden.corpus:
        assert tok_smollm.encode(entry["text"]) == entry["smollm"], entry["text"]
        assert tok_gpt2.encode(entry["text"]) == entry["transformers"], entry["text"]
        assert tok_smollm.decode(entry["transformers"]) == entry["decoded"], entry["text"]
        differ += entry["smollm"] != entry["transformers"]
    return differ


def test_tiny_corpus_as_transformers(tiny):
    _check_corpus(tiny, Tokenizer.from_gguf(TINY_GGUF, pre="gpt2"), tiny_golden())


@needs_smollm2
def test_smollm2_corpus_as_transformers(smol, smol_file):
    # transformers 5 does not know "smollm" and splits with GPT-2's rule: the two differ only
    # where a whitespace run or another numeral touches a digit (the fixture holds such texts)
    differ = _check_corpus(smol, Tokenizer.from_gguf(smol_file, pre="gpt2"), smollm2_golden())
    assert differ == 5


@needs_smollm2
def test_smollm2_prompts_and_chat_template(smol):
    for p in smollm2_golden().prompts:
        assert smol.encode(p.text) == p.ids, p.name
        if p.messages:
            assert smol.apply_chat_template(p.messages) == p.text
    assert smol.bos_id == 1 and smol.eos_id == 2 and not smol.add_bos and smol.pre == "smollm"
    assert smol.encode("<|im_start|>") == [1] and smol.encode("<|im_start|>", special=False) != [1]


def test_tiny_prompts_and_chat_template(tiny):
    for p in tiny_golden().prompts:
        assert tiny.encode(p.text) == p.ids, p.name
        if p.messages:
            assert tiny.apply_chat_template(p.messages) == p.text


def test_special_tokens_leftmost_longest():
    tokens = ["<a>", "<ab>", "x", "<", "a", ">", "b"] + [c for c in byte_alphabet() if c not in "xa<>b"]
    t = Tokenizer(tokens=tokens, merges=[], token_types=[3, 3] + [1] * (len(tokens) - 2))
    assert t.encode("x<ab>x<a>") == [2, 1, 2, 0]
    assert t.decode([2, 1, 2, 0]) == "x<ab>x<a>" and t.decode([2, 1, 2, 0], skip_special=True) == "xx"


def test_stream_holds_a_character_until_its_last_byte(tiny):
    text = "caf\u00e9 \U0001f600!"                       # 2-byte and 4-byte characters
    ids = tiny.encode(text)
    assert any(len(tiny.token_bytes(i)) == 1 and tiny.token_bytes(i)[0] >= 0x80 for i in ids)
    s = tiny.stream()
    pieces = [s.push(i) for i in ids] + [s.flush()]
    assert "".join(pieces) == text and "\ufffd" not in "".join(pieces)
    assert pieces[ids.index(next(i for i in ids if tiny.token_bytes(i)[0] == 0xF0))] == ""  # the emoji waits


def test_stream_of_a_cut_character_ends_in_a_replacement(tiny):
    ids = tiny.encode("\U0001f600")[:2]                  # two of the emoji's four bytes
    s = tiny.stream()
    assert [s.push(i) for i in ids] == ["", ""] and s.flush() == "\ufffd"
    assert tiny.decode(ids) == "\ufffd"


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_decode_of_encode_is_the_text(tiny, text):
    ids = tiny.encode(text, special=False)
    assert tiny.decode(ids) == text
    s = tiny.stream()
    assert "".join(s.push(i) for i in ids) + s.flush() == text


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab 1\n\t\u00a0x2'sZ")), max_size=40))
def test_split_pieces_cover_the_text(tiny, text):
    pieces = tiny.split(text)
    assert "".join(pieces) == text and all(pieces)
    assert all(len(p) == 1 for p in pieces if any(c.isdigit() for c in p))  # "smollm": digits alone


def test_saved_tokenizer_reads_back(tiny, tmp_path):
    p = tmp_path / "tokenizer.json"
    p.write_text(tiny.to_json(), encoding="utf-8")
    back = Tokenizer.load(str(p))
    for e in tiny_golden().corpus:
        assert back.encode(e["text"]) == tiny.encode(e["text"])
    assert back.chat_template == tiny.chat_template and back.eos_id == 2


def test_unsupported_split_rules():
    with pytest.raises(DiagnosticError) as e:
        Tokenizer.from_gguf(TINY_GGUF, pre="qwen2")
    assert str(e.value) == "pre-tokenizer 'qwen2' is not supported (supported: gpt2, smollm)"
