"""An `enum`/`const` beside `not`/`if`: each listed value is checked by jsonschema, with no complement (which
would refuse an object of several keys, whose order a complement cannot fix, and reject `0.0`, which is
no canonical spelling), unless a format, a pattern or a `$ref` is inside the negated schema."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars.json.json_schema import compile_json_schema

VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from([0.0, 2.5, "a", "bar"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.sampled_from(["foo", "baz"]), inner, max_size=2)
    ),
    max_leaves=4,
)
NEGATED = st.one_of(
    st.builds(lambda vs: {"enum": vs}, st.lists(VALUES, min_size=1, max_size=3)),
    st.sampled_from(
        [
            {"type": "object", "required": ["foo", "baz"]},
            {"minimum": 1},
            {"properties": {"foo": {"type": "string"}}, "additionalProperties": False},
            {"not": {"type": "array", "maxItems": 1}},
            {"const": 0},
        ]
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    listed=st.lists(VALUES, min_size=1, max_size=4),
    negated=NEGATED,
    how=st.sampled_from(["not", "if", "allOf"]),
)
def test_listed_values_checked_against_not_and_if(listed: list[Any], negated: Any, how: str) -> None:
    if how == "not":
        schema: dict = {"enum": listed, "not": negated}
    elif how == "if":
        schema = {
            "enum": listed,
            "if": negated,
            "then": {"type": "object"},
            "else": {"not": {"type": "object"}},
        }
    else:
        schema = {"allOf": [{"enum": listed}, {"not": negated}]}
    check = jsonschema.Draft202012Validator(schema)
    dfa = compile_json_schema(schema)
    for v in [*listed, 0, {"foo": "bar"}]:
        for seps in ((",", ":"), (", ", ": ")):
            assert dfa.accepts(json.dumps(v, separators=seps).encode()) == check.is_valid(v), (schema, v)


def test_an_enum_of_objects_beside_a_negated_enum_of_objects() -> None:
    schema = {"allOf": [{"enum": [{"foo": "bar"}]}, {"not": {"enum": [{"baz": "bax", "foo": "bar"}]}}]}
    dfa = compile_json_schema(schema)
    assert dfa.accepts(b'{"foo":"bar"}')
    assert not dfa.accepts(b'{"baz":"bax","foo":"bar"}') and not dfa.accepts(b'{"foo":"bar","baz":"bax"}')
    zero = compile_json_schema({"allOf": [{"enum": [{"a": 0.0}]}, {"not": {"enum": [{"a": False}]}}]})
    assert zero.accepts(b'{"a":0.0}') and zero.accepts(b'{"a":0}') and not zero.accepts(b'{"a":false}')


def test_patterns_do_not_matter_to_listed_values_without_strings() -> None:
    closed = {"patternProperties": {"^v": {}}, "properties": {"bar": {}}, "additionalProperties": False}
    schema = {"allOf": [{"enum": [12, [1], None, {}]}, {"not": {"not": closed}}]}
    check = jsonschema.Draft202012Validator(schema)
    dfa = compile_json_schema(schema)
    for v in [12, [1], None, {}, 13]:
        assert dfa.accepts(json.dumps(v).encode()) == check.is_valid(v), v
