"""Every tokenizer family (issue 20): byte-level BPE (Llama-3, Qwen2, GPT-2, DeepSeek) and SentencePiece with
byte fallback (Llama-2, Phi-3), from the vocabulary-only GGUFs of decc/vocabs.py (the `tokenizer_family`
fixture fetches them once; a family that cannot be fetched skips).

Text is tokenized *in context*, after a prompt prefix, as a model produces it: SentencePiece's prefix space,
which encoding a text alone adds, is not part of it. The oracles are the tokenizer itself (encode, decode,
its added and special tokens), `re.fullmatch` and `jsonschema`, never decc's own byte tables.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from functools import cache
from typing import Any

import jsonschema
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from decc.grammars import Vocabulary, json_schema, regex
from decc.grammars.tokens.vocab import encode_in_context
from decc.vocabs import CORE_FAMILIES
from decc.vocabs import FAMILIES as ALL_FAMILIES

# DECC_TEST_FAMILIES=all (or a comma list) adds the other families; DECC_TEST_EXAMPLES=N runs deeper.
_CHOSEN = os.environ.get("DECC_TEST_FAMILIES", "")
FAMILIES = ALL_FAMILIES if _CHOSEN == "all" else tuple(_CHOSEN.split(",")) if _CHOSEN else CORE_FAMILIES
SETTINGS = settings(
    max_examples=int(os.environ.get("DECC_TEST_EXAMPLES", 25)),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
# Prompt endings to tokenize a text after; the first whose tokens end exactly where the text starts is used.
PREFIXES = ("Answer:", "Q: x\n", "x", "«", "1 ")
# U+2581 is SentencePiece's space: a literal one in the text is spelled as a space, by design of the format.
TEXT = st.text(
    st.one_of(st.sampled_from(list(" \n\t  é😀中\r{}\"'<>")), st.characters(exclude_categories=["Cs"])),
    max_size=24,
).map(lambda s: unicodedata.normalize("NFC", s).replace("\u2581", "_"))

REGEXES = (
    r"[a-z ]{1,10}(, [0-9]{1,3})?\n(yes|no|é😀)",
    r" ?[A-Z][a-z]{0,6}( [a-z]{1,6}){0,3}[.!?]",
    r"«[^«»\n<>]{0,8}»",
    r"<?[a-z|]{0,6}>?",  # the bytes of chat markers (`<|EOT|>`): only their text spelling may pass
)
SCHEMAS: tuple[dict[str, Any], ...] = (
    {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 8},
            "n": {"type": "integer", "minimum": -5, "maximum": 300},
            "tags": {"type": "array", "items": {"enum": ["a", "b c", "ü"]}, "maxItems": 3},
        },
        "required": ["name", "n"],
        "additionalProperties": False,
    },
    {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3},
)
CASES = [("regex", i) for i in range(len(REGEXES))] + [("json", i) for i in range(len(SCHEMAS))]


def control_ids(tok: Any) -> set[int]:
    """What the tokenizer says is not text: special ids and added tokens (bar whitespace runs)."""
    added = {i for i, t in tok.added_tokens_decoder.items() if not (t.content.isspace() and not t.special)}
    return added | set(tok.all_special_ids)


def non_text(tok: Any, vocab: Vocabulary) -> np.ndarray:
    """A boolean row over token ids: the control tokens other than EOS (no mask may hold one)."""
    row = np.zeros(vocab.size, dtype=bool)
    row[sorted(control_ids(tok) - vocab.eos_ids)] = True
    return row


def in_context(tok: Any, text: str) -> list[int]:
    """The text's tokens after a prompt prefix, as a model would produce them: encode prefix + text and
    keep what follows the prefix's own tokens (a prefix whose last token merges with the text is skipped)."""
    for prefix in PREFIXES:
        head = tok.encode(prefix, add_special_tokens=False)
        ids = tok.encode(prefix + text, add_special_tokens=False)
        if ids[: len(head)] == head:
            return ids[len(head) :]
    assume(False)
    return []


def encodable(tok: Any, text: str) -> bool:
    """Whether the tokenizer encodes the text faithfully: no added token's spelling in it (those encode as
    controls) and every byte representable (Falcon's and StarCoder's vocabularies lack some lead bytes of
    rare characters, and their tokenizers drop them)."""
    if any(t.content in text for t in tok.added_tokens_decoder.values() if t.content):
        return False
    ids = tok.encode(PREFIXES[0] + text, add_special_tokens=False)
    return tok.decode(ids, clean_up_tokenization_spaces=False) == PREFIXES[0] + text


def allowed(matcher: Any, vocab: Vocabulary) -> np.ndarray:
    row = torch.zeros(vocab.n_words, dtype=torch.int32)
    matcher.fill_bitmask(row)
    return np.unpackbits(row.numpy().view(np.uint8), bitorder="little")[: vocab.size].nonzero()[0]


@cache
def _constraint(family: str, kind: str, index: int, vocab: Vocabulary) -> Any:
    return regex(REGEXES[index], vocab) if kind == "regex" else json_schema(SCHEMAS[index], vocab)


def is_valid(kind: str, index: int, data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if kind == "regex":
        return re.fullmatch(REGEXES[index], text) is not None
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return jsonschema.Draft202012Validator(SCHEMAS[index]).is_valid(value)


def _ordered(value: Any, schema: dict[str, Any]) -> Any:
    """Object keys in the schema's property order (decc writes declared properties in order)."""
    if isinstance(value, dict) and "properties" in schema:
        return {k: _ordered(value[k], schema["properties"][k]) for k in schema["properties"] if k in value}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_ordered(v, schema["items"]) for v in value]
    return value


def valid_strings(kind: str, index: int) -> st.SearchStrategy[str]:
    if kind == "regex":
        return st.from_regex(REGEXES[index], fullmatch=True)
    from hypothesis_jsonschema import from_schema

    schema = SCHEMAS[index]
    return st.tuples(from_schema(schema), st.booleans()).map(
        lambda vc: json.dumps(
            _ordered(vc[0], schema), ensure_ascii=vc[1], separators=(",", ":") if vc[1] else None
        )
    )


# --- the vocabulary of each family ----------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@SETTINGS
@given(text=TEXT)
def test_tokens_spell_the_text_in_context(tokenizer_family, family: str, text: str) -> None:
    tok, vocab = tokenizer_family(family)
    assume(encodable(tok, text))
    ids = in_context(tok, text)
    assert b"".join(vocab.token_bytes[i] or b"<None>" for i in ids) == text.encode("utf-8"), ids


@pytest.mark.parametrize("family", FAMILIES)
@SETTINGS
@given(text=TEXT)
def test_encode_in_context_spells_the_text(tokenizer_family, family: str, text: str) -> None:
    """The canonical tokenization decc checks examples with: no SentencePiece prefix space."""
    tok, vocab = tokenizer_family(family)
    assume(encodable(tok, text))
    ids = encode_in_context(tok, text)
    assert b"".join(vocab.token_bytes[i] or b"<None>" for i in ids) == text.encode("utf-8"), ids


@pytest.mark.parametrize("family", FAMILIES)
def test_token_bytes_are_what_the_tokenizer_decodes(tokenizer_family, family: str) -> None:
    tok, vocab = tokenizer_family(family)
    anchor = tok.encode("x", add_special_tokens=False)
    head = tok.decode(anchor, clean_up_tokenization_spaces=False)
    wrong = []
    for i, data in enumerate(vocab.token_bytes):
        try:
            text = None if data is None else data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # part of a character: the in-context test checks these in sequence
        if text is not None and tok.decode(anchor + [i], clean_up_tokenization_spaces=False) != head + text:
            wrong.append((i, tok.convert_ids_to_tokens(i), data))
    assert not wrong, wrong[:10]


@pytest.mark.parametrize("family", FAMILIES)
def test_control_tokens_are_never_text(tokenizer_family, family: str) -> None:
    tok, vocab = tokenizer_family(family)
    controls = control_ids(tok)
    assert controls, "every family has control tokens"
    assert [i for i in sorted(controls) if vocab.token_bytes[i] is not None] == []
    assert not controls & set(vocab.text_ids.tolist())
    assert vocab.eos_ids and vocab.eos_ids <= controls


# --- constraints on each family -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,index", CASES)
@pytest.mark.parametrize("family", FAMILIES)
@SETTINGS
@given(data=st.data())
def test_valid_strings_pass_every_mask(tokenizer_family, family: str, kind: str, index: int, data) -> None:
    tok, vocab = tokenizer_family(family)
    text = data.draw(valid_strings(kind, index))
    assume(encodable(tok, text))
    ids = in_context(tok, text)
    controls = non_text(tok, vocab)
    m = _constraint(family, kind, index, vocab).matcher()
    for k, i in enumerate(ids):
        mask = allowed(m, vocab)
        assert not controls[mask].any()
        assert i in mask, f"token {k} {tok.convert_ids_to_tokens(i)!r} of {ids} refused"
        assert m.advance(i)
    assert vocab.eos_ids & set(allowed(m, vocab).tolist()) and m.is_accepting()


@pytest.mark.parametrize("kind,index", CASES)
@pytest.mark.parametrize("family", FAMILIES)
@SETTINGS
@given(data=st.data())
def test_random_walks_stay_inside(tokenizer_family, family: str, kind: str, index: int, data) -> None:
    tok, vocab = tokenizer_family(family)
    controls = non_text(tok, vocab)
    eos_ids = np.array(sorted(vocab.eos_ids))
    m = _constraint(family, kind, index, vocab).matcher()
    out = b""
    for _ in range(300):
        mask = allowed(m, vocab)
        assert not controls[mask].any()
        is_eos = np.isin(mask, eos_ids)
        eos, text = mask[is_eos].tolist(), mask[~is_eos]
        assert len(text) or eos, f"dead end after {out!r}"
        if eos and (not len(text) or data.draw(st.booleans())):
            assert m.advance(eos[0])
            break
        t = int(text[data.draw(st.integers(0, len(text) - 1))])
        assert m.advance(t)
        out += vocab.token_bytes[t] or b""
    else:
        pytest.fail(f"no end after 300 tokens: {out!r}")
    assert is_valid(kind, index, out), out


class _Added:
    def __init__(self, content: str, special: bool) -> None:
        self.content, self.special = content, special


class _CodeTokenizer:
    """A byte-level vocabulary whose added tokens are a chat marker and a whitespace run (as code
    tokenizers add): only the whitespace run is text."""

    def __init__(self) -> None:
        self.pieces = {"a": 0, "Ġb": 1, "<|EOT|>": 2, "    ": 3, "<eos>": 4}
        self.added_tokens_decoder = {
            2: _Added("<|EOT|>", False),
            3: _Added("    ", False),
            4: _Added("<eos>", True),
        }
        self.all_special_ids, self.eos_token_id = [4], 4

    def get_vocab(self) -> dict[str, int]:
        return dict(self.pieces)

    def __len__(self) -> int:
        return len(self.pieces)


def test_added_tokens_are_text_only_as_whitespace_runs() -> None:
    vocab = Vocabulary.from_tokenizer(_CodeTokenizer())
    assert vocab.token_bytes == (b"a", b" b", None, b"    ", None)
    assert vocab.special_ids == {2, 4} and vocab.text_ids.tolist() == [0, 1, 3]


@pytest.mark.parametrize("family", ["llama-spm", "phi-3"])
def test_decc_test_spells_a_value_as_the_model_would_mid_context(tokenizer_family, family: str) -> None:
    """`decc test`'s canonical tokenization of a value carries no SentencePiece prefix space: `{"a":1}`
    starts with the bytes `{`, not ` {`, so a valid value passes its own constraint's masks."""
    from decc.proptest import Tokens, accepts

    tok, vocab = tokenizer_family(family)
    text = '{"a": 1}'
    ids = Tokens(vocab, tok).canonical(text)
    assert b"".join(vocab.token_bytes[i] or b"" for i in ids) == text.encode()
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert accepts(json_schema(schema, vocab), ids) is None
