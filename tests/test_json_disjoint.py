"""oneOf branches proven disjoint (grammars/json/json_disjoint.py): each proof is checked against jsonschema
on drawn values (no value valid under both), and a oneOf decc compiles accepts exactly jsonschema's valid
values. The branch shapes are those of real schemas: discriminator properties (const, enum, pattern, ranges,
`not enum`), a property one branch requires and the other forbids, typed scalars, property counts."""

from __future__ import annotations

import itertools
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars import GrammarLimitError
from decc.grammars.json.json_schema import UnsupportedSchema, branches_disjoint, compile_json_schema

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TAGS = [
    {"const": "x"},
    {"const": "y"},
    {"enum": ["x", "z"]},
    {"enum": ["y", 1]},
    {"type": "string", "pattern": "^x$"},
    {"type": "string", "pattern": "^y"},
    {"type": "string", "pattern": "z"},
    {"type": "integer", "minimum": 0, "maximum": 2},
    {"type": "number", "exclusiveMinimum": 2},
    {"type": "string", "not": {"enum": ["x", "y"]}},
    {"type": "string", "maxLength": 1},
    {"type": "string", "minLength": 2},
    {"type": "boolean"},
]
SCALARS = [
    {"type": "string", "pattern": "^x"},
    {"type": "number", "minimum": 1, "maximum": 3},
    {"type": "integer", "maximum": 0},
    {"enum": ["x", 2, None]},
    {"type": "array", "maxItems": 1},
    {"type": "array", "minItems": 2},
]


@st.composite
def branch(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(SCALARS))
    out: dict[str, Any] = {"properties": {"kind": draw(st.sampled_from(TAGS))}}
    if draw(st.booleans()):
        out["properties"]["a"] = {"type": "integer"}
    out["required"] = draw(st.sampled_from([["kind"], [], ["a"], ["kind", "a"]]))
    if "a" not in out["properties"] and "a" in out["required"]:
        out["required"] = ["kind"]
    extra = draw(st.sampled_from(["", "type", "closed", "max1", "not-a"]))
    if extra == "type":
        out["type"] = "object"
    elif extra == "closed":
        out["additionalProperties"] = False
    elif extra == "max1":
        out["maxProperties"] = 1
    elif extra == "not-a":
        out["not"] = {"required": ["a"]}
    return out


@st.composite
def nested(draw: st.DrawFn) -> Any:
    """A branch, or an anyOf of two (a value meets one of them: each is compared in turn)."""
    if draw(st.integers(0, 4)) == 0:
        return {"anyOf": [draw(branch()), draw(branch())]}
    return draw(branch())


@st.composite
def one_of(draw: st.DrawFn) -> Any:
    schema: dict[str, Any] = {"oneOf": draw(st.lists(nested(), min_size=2, max_size=3))}
    if draw(st.booleans()):
        schema["type"] = "object"
    return schema


TAG_VALUES = ["x", "y", "z", "xz", "yy", "", 0, 1, 2, 2.5, 3, -1, True, None]
VALUES = st.one_of(
    st.sampled_from(TAG_VALUES + [[], [1], [1, 2]]),
    st.fixed_dictionaries(
        {},
        optional={"kind": st.sampled_from(TAG_VALUES), "a": st.sampled_from([0, "s"]), "b": st.just(1)},
    ),
)


def _both_valid(a: Any, b: Any, v: Any) -> bool:
    return jsonschema.Draft202012Validator(a).is_valid(v) and jsonschema.Draft202012Validator(b).is_valid(v)


@SETTINGS
@given(a=nested(), b=nested(), values=st.lists(VALUES, min_size=20, max_size=40))
def test_proven_disjoint_branches_share_no_value(a: Any, b: Any, values: list[Any]) -> None:
    if branches_disjoint(a, b):
        for v in [*TAG_VALUES, *values, *({"kind": t} for t in TAG_VALUES)]:
            assert not _both_valid(a, b, v), (a, b, v)


def _accepted(dfa: Any, v: Any) -> bool:
    """Accepted in some key order (decc writes one per schema), with both separators alike."""
    orders = (
        [dict(zip(p, (v[k] for k in p), strict=True)) for p in itertools.permutations(v)]
        if (isinstance(v, dict))
        else [v]
    )
    verdicts = set()
    for w in orders:
        got = {dfa.accepts(json.dumps(w, separators=s).encode()) for s in ((",", ":"), (", ", ": "))}
        assert len(got) == 1, w
        verdicts |= got
    return True in verdicts


def _agrees(schema: Any, values: list[Any]) -> None:
    dfa = compile_json_schema(schema)
    check = jsonschema.Draft202012Validator(schema)
    for v in values:
        assert _accepted(dfa, v) == check.is_valid(v), (schema, v)


@SETTINGS
@given(schema=one_of(), values=st.lists(VALUES, min_size=20, max_size=40))
def test_one_of_agrees_with_jsonschema(schema: Any, values: list[Any]) -> None:
    try:
        compile_json_schema(schema)
    except (UnsupportedSchema, GrammarLimitError):
        return  # overlapping branches decc cannot subtract exactly: refused, which is allowed
    _agrees(schema, [*TAG_VALUES, *values, *({"kind": t} for t in TAG_VALUES)])


def test_untyped_branches_with_a_required_tag_overlap_on_non_objects() -> None:
    """`required` holds of every non-object, so both branches accept "x": the oneOf rejects it."""
    schema = {
        "oneOf": [
            {"required": ["a"], "properties": {"a": {"const": 1}}},
            {"required": ["a"], "properties": {"a": {"const": 2}}},
        ]
    }
    _agrees(schema, ["x", 1, None, {"a": 1}, {"a": 2}, {"a": 3}, {}])
    assert branches_disjoint({"type": "object", **schema["oneOf"][0]}, schema["oneOf"][1])


# shaped like real schemas: a status tag matched by anchored patterns, around nested arrays of objects
# whose keys a complement could not order; a type tag and a property the other branch forbids
TAGGED = {
    "type": "object",
    "oneOf": [{"$ref": "#/$defs/ok"}, {"$ref": "#/$defs/fail"}],
    "$defs": {
        "ok": {"required": ["status"], "properties": {"status": {"type": "string", "pattern": "^ok$"}}},
        "fail": {
            "required": ["status", "data"],
            "properties": {
                "status": {"type": "string", "pattern": "^fail$"},
                "data": {"type": "array", "items": {"$ref": "#/$defs/item"}},
            },
        },
        "item": {"type": "object", "required": ["m"], "properties": {"m": {"type": "string"}, "c": {}}},
    },
}
CLOSED = {
    "oneOf": [
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["app"],
            "properties": {"app": {"type": "string"}, "opts": {"type": "object", "properties": {"k": {}}}},
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["addr"],
            "properties": {"addr": {"type": "string"}, "mode": {"enum": ["a", "b"]}},
        },
    ]
}
NOT_ENUM = {
    "type": "object",
    "oneOf": [
        {
            "required": ["type"],
            "properties": {"type": {"enum": ["int", "str"]}, "f": {"properties": {"p": {}}}},
        },
        {"required": ["type"], "properties": {"type": {"type": "string", "not": {"enum": ["int", "str"]}}}},
    ],
}


@pytest.mark.parametrize(
    ("schema", "values"),
    [
        (
            TAGGED,
            [
                {"status": "ok"},
                {"status": "fail", "data": [{"m": "x", "c": 1}]},
                {"status": "fail"},
                {"status": "okay"},
                {"status": "ok", "data": []},
                "ok",
            ],
        ),
        (
            CLOSED,
            [{"app": "a"}, {"addr": "b", "mode": "a"}, {"app": "a", "addr": "b"}, {}, {"app": "a", "x": 1}],
        ),
        (NOT_ENUM, [{"type": "int"}, {"type": "other"}, {"type": "int", "f": {"p": 1}}, {"type": 1}, {}]),
    ],
)
def test_discriminated_one_ofs_compile_exactly(schema: Any, values: list[Any]) -> None:
    _agrees(schema, values)


# overlapping branches (no tag: a value may have both `url` and `source`) that share a property whose
# schema (an array of objects, annotations aside) a complement could not order: the shared schema is implied
SHARED = {
    "$defs": {
        "steps": {"type": "array", "items": {"type": "object", "properties": {"op": {}, "arg": {}}}},
    },
    "oneOf": [
        {
            "type": "object",
            "required": ["url"],
            "properties": {
                "url": {"type": "string"},
                "steps": {"$ref": "#/$defs/steps", "description": "one"},
            },
        },
        {
            "type": "object",
            "required": ["source"],
            "properties": {
                "source": {"type": "string"},
                "steps": {"$ref": "#/$defs/steps", "description": "two"},
            },
        },
    ],
}


def test_a_property_schema_both_branches_share_needs_no_complement() -> None:
    steps = [{"op": 1, "arg": 2}]
    _agrees(
        SHARED,
        [
            {"url": "u", "steps": steps},
            {"source": "s", "steps": steps},
            {"url": "u", "source": "s"},
            {"url": "u", "source": "s", "steps": steps},
            {"url": "u", "steps": [1]},
            {"url": 1, "source": "s", "steps": steps},
            {},
        ],
    )


# untyped branches told apart on objects by a property one requires and the other forbids, but both
# accepting every non-object; the second has `dependentSchemas` (a key order a complement cannot take)
UNTYPED = {
    "oneOf": [
        {"required": ["ref"], "properties": {"ref": {"type": "string"}}, "additionalProperties": False},
        {
            "required": ["type"],
            "properties": {"type": {"enum": ["integer", "string"]}, "format": {"type": "string"}},
            "additionalProperties": False,
            "dependentSchemas": {"format": {"properties": {"type": {"const": "integer"}}}},
        },
    ]
}


def test_branches_disjoint_on_objects_only_overlap_on_the_rest() -> None:
    values = [
        "x",
        1,
        None,
        [],
        {"ref": "a"},
        {"type": "integer", "format": "i"},
        {"type": "string", "format": "i"},
    ]
    _agrees(UNTYPED, [*values, {"type": "string"}, {"ref": "a", "type": "integer"}, {}])


# overlapping on `{}`: closed options, or closed per-architecture options; each branch names nested objects
# the other forbids, so no complement has to order their keys
ARCHES = {
    "$defs": {
        "options": {
            "additionalProperties": False,
            "properties": {
                "args": {"type": "array"},
                "box": {"type": "object", "properties": {"i": {}, "j": {}}, "additionalProperties": False},
            },
        }
    },
    "oneOf": [
        {"$ref": "#/$defs/options"},
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {"x86": {"$ref": "#/$defs/options"}, "x64": {"$ref": "#/$defs/options"}},
        },
    ],
}


def test_properties_the_kept_branch_forbids_need_no_complement() -> None:
    box = {"i": 1, "j": 2}
    values = [
        {},
        {"args": []},
        {"box": box},
        {"x86": {"box": box}},
        {"x86": {}, "x64": {"args": [1]}},
        "s",
        1,
    ]
    _agrees(ARCHES, [*values, {"args": [], "x86": {}}, {"x86": {"box": {"k": 1}}}])


# overlapping branches: exactly one of two keys, or no `error` beside `x` (dependentSchemas on declared keys)
EXCLUSIVE = {
    "oneOf": [
        {
            "anyOf": [
                {"required": ["x"], "not": {"required": ["error"]}},
                {"required": ["error"], "not": {"required": ["x"]}},
            ]
        },
        {"dependentSchemas": {"x": {"not": {"required": ["error"]}}}},
    ]
}


def test_a_dependent_schema_on_declared_keys_is_subtracted() -> None:
    values = [{}, {"x": 1}, {"error": 1}, {"x": 1, "error": 2}, {"y": 1}, {"x": 1, "y": 2}, "s", [1]]
    _agrees(EXCLUSIVE, values)


# flat object branches (type, properties, required, additionalProperties) are subtracted piece by piece:
# the kept branch with a missing required name, an undeclared key, or a property value the other rejects
FLAT = [
    {"patternProperties": {"^x": {}}, "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
    {
        "oneOf": [
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {"q": {"const": "t"}, "d": {"type": "string", "maxLength": 300}, "r": {}},
            },
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {"q": {"const": "g"}, "d": {"type": "string", "maxLength": 300}},
            },
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {"q": {"enum": ["t", "g", "u"]}, "m": {"type": "integer"}},
            },
        ]
    },
]


@pytest.mark.parametrize("schema", FLAT)
def test_flat_object_branches_are_subtracted_piece_by_piece(schema: Any) -> None:
    values = [{}, {"a": 1}, {"b": 1}, {"a": 1, "b": 2}, {"a": 1, "x1": 2}, {"q": "t"}, {"q": "g"}, {"q": "u"}]
    more = [
        {"q": "t", "r": 1},
        {"q": "g", "d": "s"},
        {"d": "s"},
        {"m": 1},
        {"q": "t", "m": 1},
        {"r": 1},
        "s",
        1,
    ]
    _agrees(schema, [*values, *more])
