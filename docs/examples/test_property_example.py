"""Property tests of your own constraints with decc.testing (the example of docs/testing.md; CI runs it).

pytest docs/examples/test_property_example.py
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decc import grammars, testing

DATE = r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
ORDER = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "items": {"type": "array", "items": {"enum": ["tea", "cake"]}, "minItems": 1, "maxItems": 3},
    },
    "required": ["id", "items"],
    "additionalProperties": False,
}


# Every string in a regex's language, as decc's automaton sees it, is what your code must handle.
@settings(max_examples=50)
@given(testing.from_regex(DATE))
def test_dates_parse(text: str) -> None:
    year, month, day = map(int, text.split("-"))
    assert 1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= 31
    assert re.fullmatch(DATE, text)


# JSON Schema: what decc lets a model write is JSON your consumer accepts.
@settings(max_examples=50)
@given(testing.from_json_schema(ORDER))
def test_orders_load(text: str) -> None:
    order = json.loads(text)
    assert order["id"] >= 1 and 1 <= len(order["items"]) <= 3


# A context-free grammar (here a built-in one): every draw is a complete arithmetic expression.
@settings(max_examples=50)
@given(testing.from_grammar(grammars.builtin_grammar("arith")))
def test_expressions_balance(text: str) -> None:
    assert text.count("(") == text.count(")")


# Token level, with the pytest plugin's `decc_vocab` fixture (the embedded model's tokenizer): any way the
# model could spell a valid date, canonical or not, is accepted token by token.
@pytest.mark.model
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_any_tokenization_is_accepted(decc_vocab, data: st.DataObject) -> None:
    constraint = grammars.regex(DATE, decc_vocab)
    text = data.draw(testing.from_constraint(constraint))
    ids = data.draw(testing.tokenizations(text, decc_vocab))
    matcher = constraint.matcher()
    assert all(matcher.advance(t) for t in ids) and matcher.is_accepting()
