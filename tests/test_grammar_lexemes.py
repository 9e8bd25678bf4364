"""Length-bounded strings inside recursive schemas: counted `Lexeme` rules of the grammar engine.

The oracle is the same schema with those strings unrolled into plain regexes (the grammar engine's old path),
run by the byte-level Earley recognizer: a token is allowed exactly when the text stays a viable prefix.
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from decc.grammars import Vocabulary, compile_json_schema, json_schema
from decc.grammars.contextfree.cfg_grammar import Grammar, Lexeme
from decc.grammars.contextfree.earley import Recognizer
from decc.grammars.contextfree.rtn import build_rtn
from decc.grammars.errors import GrammarLimitError
from decc.grammars.json.json_schema import uncount


def _tree(max_len: int, min_len: int = 0) -> dict:
    return {
        "type": "object",
        "properties": {
            "n": {"type": "string", "minLength": min_len, "maxLength": max_len},
            "k": {"type": "array", "items": {"$ref": "#"}, "maxItems": 2},
        },
        "required": ["n"],
        "additionalProperties": False,
    }


def _unrolled_oracle(schema: dict) -> Recognizer:
    """The recognizer of `schema` with its counted strings unrolled (no lexemes)."""
    from decc.grammars.json.json_schema import _Compiler

    grammar = _Compiler(schema, False, False).compile()
    assert isinstance(grammar, Grammar)
    plain = Grammar(tuple((name, uncount(body)) for name, body in grammar.rules), "oracle")
    return Recognizer(build_rtn(plain))


PIECES = [b'{"n":"', b'"', b"a", b"ab", b"aaaa", b"\\", b"n", b"u", b"00e9", b"\\u00", b'",', b'"}', b'"},']
PIECES += [b'"k":[', b"]", b"]}", b"{", b"}", b",", b'","', b'aaaa"', b'a"}', b'"n":"', b'"a', b'""']
PIECES += [b'","k":[', b"\xc3\xa9", b"\xc3", b"\xa9", b"aaaaaaaa"]


@pytest.mark.parametrize(("lo", "hi"), [(0, 16), (3, 17), (0, 40)])
def test_counted_strings_in_a_recursive_schema_match_the_unrolled_oracle(lo: int, hi: int) -> None:
    schema = _tree(hi, lo)
    grammar = compile_json_schema(schema)
    assert isinstance(grammar, Grammar)
    assert any(isinstance(body, Lexeme) for _, body in grammar.rules)  # counted, not unrolled
    oracle = _unrolled_oracle(schema)
    eos = len(PIECES)
    vocab = Vocabulary.from_token_bytes([*PIECES, None], eos_id=eos)
    c = json_schema(schema, vocab)
    rng = random.Random(hi)
    row = torch.zeros(vocab.n_words, dtype=torch.int32)
    for _ in range(25):
        m, text = c.matcher(), b""
        for _ in range(60):
            want = {t for t, p in enumerate(PIECES) if oracle.is_prefix(text + p)}
            if oracle.accepts(text):
                want.add(eos)
            m.fill_bitmask(row)
            bits = {t for t in range(eos + 1) if (int(row[t >> 5]) >> (t & 31)) & 1}
            assert bits == want == set(m.allowed_token_ids().tolist()), (text, sorted(bits ^ want))
            text_ids = sorted(want - {eos})
            if not text_ids:
                break
            # lean towards closing the string so that the bounds get exercised from both sides
            t = (
                rng.choice([i for i in text_ids if b'"' in PIECES[i]] or text_ids)
                if rng.random() < 0.2
                else rng.choice(text_ids)
            )
            assert m.advance(t)
            text += PIECES[t]
        assert m.is_accepting() == oracle.accepts(text)


def test_long_bounds_in_recursive_schemas_compile_and_count_exactly() -> None:
    """maxLength 500 inside recursion (once refused: too long to unroll): bounds hold to the character."""
    schema = _tree(500)
    vocab = Vocabulary.from_token_bytes([b'{"n":"', b"a", b"aaaaaaaaaa", b'"}', None], eos_id=4)
    c = json_schema(schema, vocab)
    for length, ok in [(0, True), (499, True), (500, True), (501, False)]:
        m = c.matcher()
        assert m.advance(0)
        tens, ones = divmod(length, 10)
        steps = [2] * tens + [1] * ones
        good = all(m.advance(t) for t in steps)
        if ok:
            assert good and m.advance(3) and m.is_accepting(), length
        else:
            assert not good or not m.advance(3), length
    # masks far from the bounds are shared (the counter's future is the same), not recomputed per character
    m = c.matcher()
    m.advance(0)
    for _ in range(300):
        m.mask()
        m.advance(1)
    assert len(c._masks) < 40


def test_lexeme_states_are_limited() -> None:
    with pytest.raises(GrammarLimitError, match="maxLength"):
        compile_json_schema(_tree(100_000))


def test_recursive_counted_schema_instances_round_trip() -> None:
    """Drawn from the model-free strategy (which walks the unrolled lexeme states), every string validates."""
    import jsonschema
    from hypothesis import given, settings

    from decc.testing import from_constraint

    schema = _tree(20, 2)

    @settings(max_examples=40, deadline=None)
    @given(from_constraint(compile_json_schema(schema), max_bytes=200))
    def check(text: str) -> None:
        jsonschema.validate(json.loads(text), schema)

    check()
