"""A recursive `$ref` merged with other keywords (an allOf branch, or siblings of the `$ref`): its target is
unfolded once more (the same schema, so exact), its own recursive `$ref`s stay grammar rule calls."""

from __future__ import annotations

import itertools
import json
from typing import Any

import jsonschema
import pytest

from decc.grammars.contextfree.cfg_grammar import Grammar
from decc.grammars.contextfree.earley import Recognizer
from decc.grammars.contextfree.rtn import build_rtn
from decc.grammars.json.json_schema import UnsupportedSchema, compile_json_schema

# shaped like real schemas: an event is a statement (whose evidence lists events) with a type tag
STATEMENTS = {
    "$ref": "#/definitions/Statement",
    "definitions": {
        "Statement": {
            "type": "object",
            "properties": {
                "belief": {"type": "number"},
                "evidence": {"type": "array", "items": {"$ref": "#/definitions/Event"}},
            },
        },
        "Event": {
            "allOf": [
                {"$ref": "#/definitions/Statement"},
                {"properties": {"type": {"type": "string", "pattern": "^Event$"}}, "required": ["type"]},
            ]
        },
    },
}
# sibling keywords on a recursive $ref: lists of lists, each inner one of at most one item (one rule
# for the target with its siblings, called where they recur)
NESTED = {
    "$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n", "maxItems": 1}}},
    "$ref": "#/$defs/n",
}
VALUES = [
    {"belief": 1},
    {"belief": 1, "evidence": [{"type": "Event"}]},
    {"evidence": [{"belief": 2, "evidence": [{"belief": 0.5, "type": "Event"}], "type": "Event"}]},
    {"evidence": [{"belief": 2}]},
    {"evidence": [{"evidence": [{"belief": 1}], "type": "Event"}]},
    {"evidence": [{"type": "Other"}]},
    {"belief": "x"},
    [],
    [[]],
    [[], [[]]],
    [[[], []]],
    [[[[1]]]],
    [[[[]]], []],
    [[[[], []]]],
]


def _accepts(compiled: Any, data: bytes) -> bool:
    if isinstance(compiled, Grammar):
        return Recognizer(build_rtn(compiled)).accepts(data)
    return compiled.accepts(data)


@pytest.mark.parametrize("schema", [STATEMENTS, NESTED], ids=["allOf", "siblings"])
def test_a_recursive_ref_merged_with_other_keywords_is_exact(schema: Any) -> None:
    compiled = compile_json_schema(schema)
    check = jsonschema.Draft202012Validator(schema)  # siblings of $ref apply
    for v in VALUES:
        text = json.dumps(v).encode()  # keys as decc writes them: Statement's, then the event's own
        assert _accepts(compiled, text) == check.is_valid(v), v


def test_the_unfolding_of_a_recursive_allof_branch_is_bounded() -> None:
    """An allOf whose recursive branch recurs inside itself with new siblings each time: refused."""
    schema = {"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}, {"minItems": 1}]}}, "$ref": "#/$defs/a"}
    with pytest.raises(UnsupportedSchema) as e:
        compile_json_schema(schema)
    assert e.value.keyword == "$ref"


# a definition met twice along one chain of merged schemas is a rule call, but not a recursive one: a
# complement (`not`, propertyNames) takes its language
N = {"n": {"type": "object", "required": ["a"]}}
TWICE = [
    {
        "$defs": N,
        "allOf": [
            {"$ref": "#/$defs/n"},
            {"patternProperties": {"^x": {"$ref": "#/$defs/n"}}},
            {"propertyNames": {"maxLength": 2}},
        ],
    },
    {
        "$defs": N,
        "allOf": [
            {"$ref": "#/$defs/n"},
            {"properties": {"x": {"$ref": "#/$defs/n"}}},
            {"not": {"required": ["b"], "minProperties": 2}},
        ],
    },
]


@pytest.mark.parametrize("schema", TWICE)
def test_a_definition_met_twice_is_no_recursion_for_a_complement(schema: Any) -> None:
    compiled = compile_json_schema(schema)
    check = jsonschema.Draft202012Validator(schema)
    values = [
        {"a": 1},
        {"a": 1, "x": {"a": 1}},
        {"a": 1, "x": 1},
        {"a": 1, "b": 2},
        {"a": 1, "xyz": {"a": 1}},
        {},
    ]
    for v in [*values, {"a": 1, "x": {"a": 2}, "b": 3}, "s"]:
        orders = [dict(p) for p in itertools.permutations(v.items())] if isinstance(v, dict) else [v]
        accepted = any(_accepts(compiled, json.dumps(w).encode()) for w in orders)  # decc writes one order
        assert accepted == check.is_valid(v), v


def test_refs_that_unfold_into_one_another_inside_allof_are_refused_not_a_recursion_error() -> None:
    """MaskBench mod30-like: recursive definitions of different periods merged by an allOf unfold into one
    another without end; decc refuses with a positioned error instead of leaking Python's RecursionError."""
    from decc.grammars.json.json_schema import UnsupportedSchema, compile_json_schema

    def ref(name: str) -> dict:
        return {"$ref": f"#/definitions/{name}"}

    defs = {
        "word": {"type": "object", "properties": {"a": ref("word")}, "additionalProperties": False},
        "x0": {"additionalProperties": ref("x1"), "minProperties": 1},
        "x1": {"additionalProperties": ref("x0")},
        "y0": {"additionalProperties": ref("y1"), "minProperties": 1},
        "y1": {"additionalProperties": ref("y2"), "minProperties": 1},
        "y2": {"additionalProperties": ref("y0")},
    }
    schema = {"allOf": [ref("word"), ref("x0"), ref("y0")], "definitions": defs}
    with pytest.raises(UnsupportedSchema, match=r"recursive \$ref inside allOf") as e:
        compile_json_schema(schema)
    assert e.value.pointer.endswith("/$ref")
    deep: dict = {"type": "string"}  # nesting past Python's stack: refused too, never a RecursionError
    for _ in range(600):
        deep = {"type": "object", "properties": {"a": deep}}
    with pytest.raises(UnsupportedSchema, match="nests too deeply"):
        compile_json_schema(deep)
