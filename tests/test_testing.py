"""decc.testing: strategies draw only strings in the language, spread over it, and shrink to simple ones."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from decc import grammars, testing

REGEXES = [
    r"\d{4}-\d{2}-\d{2}",
    r"(yes|no|maybe)",
    r"[a-z]+@[a-z]+\.(com|org)",
    r"café|naïve|日本",
    r"a*b?c{2,3}",
]


@pytest.mark.parametrize("pattern", REGEXES)
def test_regex_draws_match(pattern: str) -> None:
    @settings(max_examples=150, deadline=None, database=None)
    @given(testing.from_regex(pattern))
    def check(s: str) -> None:
        assert re.fullmatch(pattern, s, re.ASCII), s

    check()


SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1, "maximum": 9999},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3},
        "kind": {"enum": ["a", "b"]},
        "score": {"type": "number"},
    },
    "required": ["id", "kind"],
    "additionalProperties": False,
}


@settings(max_examples=200, deadline=None, database=None)
@given(testing.from_json_schema(SCHEMA))
def test_json_schema_draws_validate(text: str) -> None:
    jsonschema.validate(json.loads(text), SCHEMA)


def test_draws_spread_over_paths() -> None:
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None, database=None)
    @given(testing.from_json_schema(SCHEMA))
    def collect(text: str) -> None:
        seen.add(text)

    collect()
    assert any('"tags"' in s for s in seen) and any('"score"' in s for s in seen)
    assert any('"kind":"b"' in s or '"kind": "b"' in s for s in seen)
    assert len(seen) > 100


def test_shrinks_to_short_simple_strings() -> None:
    assert find(testing.from_regex(r"[a-z]{2,8}[0-9]"), lambda s: len(s) >= 5) == "aaaa0"
    shortest = find(testing.from_json_schema(SCHEMA), lambda s: True)
    assert shortest == '{"id":1,"kind":"a"}'


def test_empty_language_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        testing.from_constraint(grammars.compile_regex(r"[^\x00-\U0010FFFF]"))


TINY = grammars.Vocabulary.from_token_bytes(
    [b"a", b"b", b"ab", b"ba", b"abc", b"c", b"\xc3", b"\xa9", b"</s>"], eos_id=8
)


def test_tokenizations_concatenate_and_vary() -> None:
    seen: set[tuple[int, ...]] = set()

    @settings(max_examples=100, deadline=None, database=None)
    @given(testing.tokenizations("abcabé", TINY))
    def check(ids: list[int]) -> None:
        assert b"".join(TINY.token_bytes[i] for i in ids) == "abcabé".encode()
        assert 8 not in ids
        seen.add(tuple(ids))

    check()
    assert len(seen) > 3


def test_tokenizations_refuse_impossible_text() -> None:
    with pytest.raises(ValueError, match="cannot be split"):
        testing.tokenizations("xyz", TINY)


@settings(max_examples=60, deadline=None, database=None)
@given(st.data())
def test_regex_matcher_accepts_any_tokenization_of_drawn_strings(data: st.DataObject) -> None:
    constraint = grammars.regex(r"(ab|c)+(é)?", TINY)
    text = data.draw(testing.from_constraint(constraint))
    ids = data.draw(testing.tokenizations(text, TINY))
    m = constraint.matcher()
    for t in ids:
        assert m.advance(t), (text, ids)
    assert m.is_accepting()


COUNTED = {
    "type": "object",
    "properties": {
        "a": {"type": "array", "items": {"type": "integer"}, "maxItems": 4},
        "name": {"type": "string", "minLength": 20, "maxLength": 40},
    },
    "required": ["a", "name"],
    "additionalProperties": False,
}


def _valid_counted(s: str) -> bool:
    jsonschema.validate(json.loads(s), COUNTED)
    return True


@pytest.mark.parametrize(
    "compiled, valid",
    [
        (grammars.compile_json_schema(COUNTED), _valid_counted),
        (grammars.compile_regex(r"(ab|c){2,5}-[0-9]+"), re.compile(r"(ab|c){2,5}-[0-9]+").fullmatch),
    ],
    ids=["counted-json", "regex"],
)
def test_completer_finishes_any_prefix_by_the_shortest_way(compiled: grammars.ByteDFA, valid: Any) -> None:
    """What a walk home follows: from any prefix of a string in the language, the completion gives a string
    the independent oracle accepts, no longer than the rest of that string (length counters honoured: a
    completion that ignored `minLength` would close the string too early)."""
    complete = testing.completer(compiled)

    @settings(max_examples=80, deadline=None, database=None)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        whole = data.draw(testing.from_constraint(compiled)).encode()
        cut = data.draw(st.integers(0, len(whole)))
        rest = complete(whole[:cut], None)
        assert rest is not None and len(rest) <= len(whole) - cut, (whole[:cut], rest)
        assert valid((whole[:cut] + rest).decode()), whole[:cut] + rest

    check()
    assert complete(b"nonsense", None) is None


def test_completer_counts_characters_not_bytes() -> None:
    """`minLength` counts characters: two-byte characters still need 20 of them."""
    complete = testing.completer(grammars.compile_json_schema(COUNTED))
    rest = complete(b'{"a":[],"name":"' + "é".encode() * 5, None)
    assert rest is not None
    value = json.loads('{"a":[],"name":"' + "é" * 5 + rest.decode())
    assert len(value["name"]) == 20
