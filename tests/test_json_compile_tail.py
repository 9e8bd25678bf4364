"""The compile tail: schemas whose exact compilation would take minutes are refused up front, positioned."""

from __future__ import annotations

import json
import warnings

import pytest

from decc.grammars import ByteDFA
from decc.grammars.json.json_negation import MAX_SUBTRACTIONS
from decc.grammars.json.json_schema import UnsupportedSchema, compile_json_schema


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
