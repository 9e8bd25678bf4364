"""Keywords beside a `$ref`: ignored up to draft-07 (the schema declares draft-04, -06 or -07), applied with
it from 2019-09 on and when no draft is declared, as jsonschema reads each draft."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema.validators import validator_for

from decc.grammars.json.json_schema import UnsupportedSchema, compile_json_schema

FILE = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {}}}


def _schema(draft: str | None) -> dict:
    inner = {
        "$ref": "#/definitions/file",
        "properties": {"cache": {"type": "boolean"}},
        "additionalProperties": False,
    }
    out: dict[str, Any] = {"type": "object", "definitions": {"file": FILE}, "additionalProperties": inner}
    return out if draft is None else {"$schema": draft, **out}


DRAFTS = ["http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-04/schema#", None]
VALUES = [
    {"x": {"a": 1}},
    {"x": {"a": 1, "cache": True}},
    {"x": {"cache": True}},
    {"x": {"a": "s"}},
    {"x": {}},
]


@pytest.mark.parametrize("draft", DRAFTS)
def test_ref_siblings_follow_the_declared_draft(draft: str | None) -> None:
    schema = _schema(draft)
    check = validator_for(schema)(schema)
    try:
        compiled = compile_json_schema(schema)
    except UnsupportedSchema:  # 2020-12: additionalProperties beside a $ref, refused as before
        assert draft is None
        return
    for v in VALUES:
        assert compiled.accepts(json.dumps(v).encode()) == check.is_valid(v), (draft, v)


def test_ignored_ref_siblings_prove_no_one_of_disjoint() -> None:
    """In draft-07 the first branch is `{}`: "x" is valid under both branches, so the oneOf rejects it."""
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"any": {}},
        "oneOf": [{"$ref": "#/definitions/any", "type": "integer"}, {"type": "string"}],
    }
    check = validator_for(schema)(schema)
    compiled = compile_json_schema(schema)
    for v in ["x", 1, None, 2.5]:
        assert compiled.accepts(json.dumps(v).encode()) == check.is_valid(v), v
