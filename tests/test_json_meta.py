"""The fast meta-schema check (json_meta.surely_valid) never calls a schema valid that jsonschema rejects."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft4Validator, Draft6Validator, Draft7Validator

from decc.grammars.json.json_meta import surely_valid
from decc.grammars.json.json_schema import InvalidSchema, compile_json_schema, meta_format_checker

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DRAFTS = [Draft4Validator, Draft6Validator, Draft7Validator]
KEYWORDS = [
    "type", "properties", "required", "items", "additionalItems", "additionalProperties", "enum", "const",
    "minLength", "maxItems", "minimum", "exclusiveMaximum", "exclusiveMinimum", "maximum", "multipleOf",
    "pattern", "patternProperties", "dependencies", "allOf", "anyOf", "oneOf", "not", "if", "then", "contains",
    "$ref", "$id", "id", "$schema", "title", "format", "definitions", "examples", "readOnly", "uniqueItems",
    "propertyNames", "x-custom",
]  # fmt: skip
SCALARS = st.sampled_from(
    ["string", "object", "integer", "strin", "#/definitions/a", "a b:\\", "[", "a+", "", "x"]
) | st.sampled_from([0, 1, -1, 2, 1.0, 1.5, -0.5, True, False, None])


def _schemas() -> st.SearchStrategy[Any]:
    def extend(kids: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        value = (
            kids
            | SCALARS
            | st.lists(kids | SCALARS, max_size=3)
            | st.dictionaries(st.sampled_from(["a", "b", "[", "^x$"]), kids | st.lists(SCALARS, max_size=2))
        )
        return st.dictionaries(st.sampled_from(KEYWORDS), value, max_size=4)

    return st.recursive(st.booleans() | st.just({}), extend, max_leaves=10)


def _conforms(cls: Any) -> Any:
    return meta_format_checker(cls).conforms


@SETTINGS
@given(schema=_schemas(), which=st.sampled_from(DRAFTS))
def test_surely_valid_implies_valid(schema: Any, which: Any) -> None:
    """The oracle: jsonschema's validator of that draft's meta-schema, with the checker `_check_meta` uses."""
    if surely_valid(schema, _conforms(which), draft4=which is Draft4Validator):
        checker = which(which.META_SCHEMA, format_checker=meta_format_checker(which))
        assert checker.is_valid(schema), (which.__name__, schema)


REAL = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 0, "maximum": 10},
        "name": {"type": "string", "maxLength": 20, "pattern": "^[a-z]+$"},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1},
        "more": {"$ref": "#/definitions/more"},
    },
    "required": ["id"],
    "additionalProperties": False,
    "definitions": {"more": {"anyOf": [{"type": "null"}, {"type": "number", "multipleOf": 0.5}]}},
}


@pytest.mark.parametrize("which", DRAFTS)
def test_ordinary_schemas_take_the_fast_path(which: Any) -> None:
    assert surely_valid(REAL, _conforms(which), draft4=which is Draft4Validator)


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "object", "properties": {"a": {"minLength": -1}}},
        {"required": "a"},
        {"properties": {"a": {"type": "strin"}}},
        {"pattern": "(", "$schema": "http://json-schema.org/draft-07/schema#"},
        {"$schema": "http://json-schema.org/draft-04/schema#", "properties": {"a": True}},
        {"$schema": "http://json-schema.org/draft-04/schema#", "exclusiveMinimum": True},
        {"$schema": "http://json-schema.org/draft-04/schema#", "enum": ["a", "a"]},
    ],
)
def test_invalid_schemas_still_get_jsonschemas_positioned_error(bad: dict) -> None:
    with pytest.raises(InvalidSchema):
        compile_json_schema(bad)
