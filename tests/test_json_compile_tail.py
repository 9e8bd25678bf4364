"""The compile tail: schemas whose exact compilation would take minutes are refused up front, positioned."""

from __future__ import annotations

import json
import re
import warnings

import pytest

from decc.grammars import ByteDFA
from decc.grammars.json.json_negation import MAX_SUBTRACTIONS
from decc.grammars.json.json_schema import (
    ANY_BODY,
    STR_CHAR,
    UnsupportedSchema,
    compile_json_schema,
    json_schema_engine,
)
from decc.grammars.json.regex_ops import counted_loop, dfa_of, difference
from decc.grammars.regexes.regex_ast import Repeat


def _overlapping_one_of(n: int) -> dict:
    """`n` object branches that all take `{}` (no property is required): every pair overlaps."""
    return {
        "oneOf": [
            {"type": "object", "properties": {"k": {"const": i}, "m": {"type": "string"}}} for i in range(n)
        ]
    }


def test_many_overlapping_one_of_branches_are_refused_before_any_product() -> None:
    n = 2
    while n * (n - 1) <= MAX_SUBTRACTIONS:
        n += 1
    schema = {"type": "object", "properties": {"asserts": {"type": "array", "items": _overlapping_one_of(n)}}}
    with pytest.raises(UnsupportedSchema) as e:
        compile_json_schema(schema)
    assert (e.value.keyword, e.value.pointer) == ("oneOf", "/properties/asserts/items/oneOf")
    assert f"{n * (n - 1) // 2:,} pairs" in str(e.value)
    with warnings.catch_warnings(record=True) as caught:  # lenient: the anyOf approximation, with a warning
        warnings.simplefilter("always")
        dfa = compile_json_schema(schema, lenient=True)
    assert any("oneOf" in str(w.message) for w in caught)
    assert isinstance(dfa, ByteDFA)
    assert dfa.accepts(json.dumps({"asserts": [{"k": 1, "m": "x"}]}).encode())


def test_few_overlapping_one_of_branches_stay_exact() -> None:
    dfa = compile_json_schema(_overlapping_one_of(3))
    assert isinstance(dfa, ByteDFA)
    assert dfa.accepts(b'{"k": 2}')
    assert not dfa.accepts(b"{}")  # every branch takes it: not exactly one
    assert not dfa.accepts(b'{"m": "x"}')


@pytest.mark.parametrize("lo,hi", [(0, 0), (0, 3), (2, 2), (1, 4), (3, 5)])
def test_counted_loop_is_the_unrolled_repeat(lo: int, hi: int) -> None:
    """`counted_loop` (unrolled counted strings, for complements) against the regex it stands for."""
    body = dfa_of(ANY_BODY)
    fast = dfa_of(counted_loop(body, lo, hi))
    slow = dfa_of(Repeat(STR_CHAR, lo, hi))
    assert difference(fast, [slow], "test").n_states == 0
    assert difference(slow, [fast], "test").n_states == 0
    three = b"a\\u00e9\\ud83d\\ude00"  # three characters: a surrogate pair is one
    assert fast.accepts(three) == (lo <= 3 <= hi)


def test_counted_loop_needs_a_loop_through_its_start() -> None:
    with pytest.raises(ValueError):
        counted_loop(dfa_of(STR_CHAR), 0, 2)  # accepts after one character, not at its start


def _nfa_states(schema: dict) -> int:
    reason = json_schema_engine(schema).reason
    return int(re.search(r"([\d,]+) NFA states", reason).group(1).replace(",", ""))  # type: ignore[union-attr]


def test_a_format_is_embedded_as_its_dfa() -> None:
    """`format: uri` spelled with every JSON escape is ~18,000 NFA states as a regex, wherever it occurs
    (an exact oneOf over such members took 20-40 s); as its minimal DFA, about 1,200."""
    assert _nfa_states({"type": "string", "format": "uri"}) < 2_000
