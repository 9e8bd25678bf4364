"""allOf merges (grammars/json/json_allof.py): several patterns, multipleOfs, anyOfs/oneOfs and
additionalProperties/patternProperties across branches compile exactly, or are refused with a pointer.

The oracle is jsonschema on drawn values (an object in every key order: decc writes one order per schema,
jsonschema has none); the schemas are small and shaped like the MaskBench schemas decc used to refuse.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars.json.json_allof import MAX_PRODUCT
from decc.grammars.json.json_schema import IgnoredKeyword, UnsupportedSchema, compile_json_schema

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _orders(v: Any) -> list[Any]:
    if not isinstance(v, dict):
        return [v]
    return [dict(p) for p in itertools.permutations(v.items())]


def _agrees(schema: Any, values: list[Any]) -> None:
    """decc accepts a value (in some key order, both separators alike) iff jsonschema calls it valid."""
    dfa = compile_json_schema(schema)
    check = jsonschema.Draft202012Validator(schema)
    for v in values:
        got = []
        for w in _orders(v):
            spellings = {
                dfa.accepts(json.dumps(w, separators=s).encode()) for s in ((",", ":"), (", ", ": "))
            }
            assert len(spellings) == 1, (schema, w)
            got.append(spellings.pop())
        assert any(got) == check.is_valid(v), (schema, v)


# -- several patterns: their intersection ---------------------------------------------------------------------

PATTERNS = st.sampled_from(["^a", "b$", "^([ab][0-9])+$", "a.?b", "^[^9]*$", "(ab|9)", "^.{2,4}$", "^(a|b9)"])


@SETTINGS
@given(
    patterns=st.lists(PATTERNS, min_size=2, max_size=3),
    extra=st.sampled_from(
        [{}, {"minLength": 2}, {"maxLength": 3}, {"enum": ["ab", "a9b", "b", "a1b2", "9"]}]
    ),
    strings=st.lists(st.text(alphabet="ab9 ", max_size=5), max_size=12),
)
def test_several_patterns_intersect(patterns: list, extra: dict, strings: list) -> None:
    schema = {"type": "string", **extra, "allOf": [{"pattern": p} for p in patterns]}
    _agrees(schema, [*strings, "ab", "a9b", "a1b2", 3])


def test_pattern_in_several_branches_nested() -> None:
    """MaskBench string2-like: anchored patterns in three branches, next to a length bound."""
    schema = {
        "type": "string",
        "allOf": [{"pattern": "^([a-z][0-9])+$"}, {"pattern": "^(c1)"}, {"pattern": "(t8)$"}],
        "minLength": 6,
    }
    _agrees(schema, ["c1t8", "c1a1t8", "c1a1b2t8", "c1a1t9", "a1c1t8", "c1a1t8x"])


# -- several multipleOfs: their exact least common multiple -----------------------------------------------------

MULTIPLES = st.sampled_from([2, 3, 4, 6, 0.5, 0.25, 0.75, 1.5, 2.5])


@SETTINGS
@given(
    mults=st.lists(MULTIPLES, min_size=2, max_size=3),
    kind=st.sampled_from(["number", "integer"]),
    values=st.lists(st.integers(-80, 80).map(lambda n: n / 4), max_size=20),
)
def test_several_multiple_ofs_take_the_lcm(mults: list, kind: str, values: list) -> None:
    """Quarters are exact binary floats, so jsonschema's float division is exact on them too."""
    schema = {"type": kind, "allOf": [{"multipleOf": m} for m in mults]}
    _agrees(schema, [int(v) if v.is_integer() else v for v in values] + [0, 6, 12, 7.5, 30])


def test_fractional_multiple_ofs() -> None:
    """MaskBench num4-like: decimals that are no binary fractions; lcm(0.75, 1.25) = 3.75."""
    dfa = compile_json_schema({"allOf": [{"multipleOf": 0.75}, {"multipleOf": 1.25}]})
    assert dfa.accepts(b"3.75") and dfa.accepts(b"7.5") and dfa.accepts(b"-11.25") and dfa.accepts(b"0")
    assert not dfa.accepts(b"1.5") and not dfa.accepts(b"2.5") and not dfa.accepts(b"3.7")
    dfa = compile_json_schema({"allOf": [{"multipleOf": 0.1}, {"multipleOf": 0.15}]})
    assert (
        dfa.accepts(b"0.3") and dfa.accepts(b"0.9") and not dfa.accepts(b"0.15") and not dfa.accepts(b"0.2")
    )


# -- several anyOf / oneOf: a product of branches ----------------------------------------------------------------

BRANCHES = st.sampled_from(
    [{"type": "string"}, {"type": "integer"}, {"minimum": 3}, {"maximum": 5}, {"multipleOf": 2},
     {"multipleOf": 3}, {"const": 4}, {"enum": ["a", 6, None]}, {"type": "null"}, {"maxLength": 1}]
)  # fmt: skip
SCALARS = st.lists(st.one_of(st.integers(-2, 12), st.sampled_from(["a", "bb", "", None, True])), max_size=12)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keys=st.lists(st.sampled_from(["anyOf", "oneOf"]), min_size=2, max_size=3),
    # at most 2 x 2 x 2 product branches: past 48 pairs that may overlap an exact oneOf is refused
    branches=st.lists(st.lists(BRANCHES, min_size=1, max_size=2), min_size=3, max_size=3),
    rest=st.sampled_from([{}, {"type": ["integer", "string", "null"]}, {"minimum": 1}]),
    values=SCALARS,
)
def test_several_any_and_one_ofs_distribute(keys: list, branches: list, rest: dict, values: list) -> None:
    """allOf of several anyOf/oneOf, and anyOf next to oneOf in one schema: exactly jsonschema's verdicts
    (oneOf counts exactly one branch of each side)."""
    schema = {**rest, "allOf": [{k: b} for k, b in zip(keys, branches, strict=False)]}
    _agrees(schema, [*values, 0, 4, 6, "a"])
    both = {**rest, "anyOf": branches[0], "oneOf": branches[1]}
    _agrees(both, [*values, 0, 4, 6, "a"])


def test_product_is_capped() -> None:
    big = [{"const": i} for i in range(9)]
    other = [{"minimum": i} for i in range(9)]
    with pytest.raises(UnsupportedSchema, match=f"product of 81 branches \\(limit {MAX_PRODUCT}\\)") as e:
        compile_json_schema({"allOf": [{"anyOf": big}, {"anyOf": other}]})
    assert e.value.keyword == "anyOf" and e.value.pointer == "/allOf/1"


def test_required_alternatives_in_two_branches() -> None:
    """MaskBench o27148-like: one of two files and one of three atlases, objects closed."""
    schema = {
        "type": "object",
        "properties": {k: {"type": "integer"} for k in ("f", "g", "x", "y", "z")},
        "additionalProperties": False,
        "allOf": [
            {"anyOf": [{"required": ["f"]}, {"required": ["g"]}]},
            {"anyOf": [{"required": ["x"]}, {"required": ["y"]}, {"required": ["z"]}]},
        ],
    }
    _agrees(schema, [{"f": 1, "x": 1}, {"g": 1, "y": 2, "z": 3}, {"f": 1}, {"x": 1}, {}, {"f": 1, "q": 1}])


# -- properties, patternProperties and additionalProperties in several branches --------------------------------

OBJECT_BRANCHES = st.sampled_from(
    [
        {"properties": {"a": {"type": "integer"}}, "additionalProperties": False},
        {"properties": {"b": {"type": "string"}}, "additionalProperties": {"type": "integer"}},
        {"additionalProperties": {"type": "string"}},
        {"additionalProperties": {"maxLength": 1}},
        {"properties": {"ab": {"minimum": 2}}, "patternProperties": {"^a": {"type": "integer"}},
         "additionalProperties": {"type": "string"}},
        {"patternProperties": {"^a": {"maximum": 5}, "b$": {"type": "string"}}},
        {"patternProperties": {"^a": {"minimum": 0}}, "additionalProperties": False},
        {"patternProperties": {"^.{1,2}$": False}, "additionalProperties": True},
        {"properties": {"c": True}, "required": ["c"]},
    ]
)  # fmt: skip
OBJECTS = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "c", "ab", "bb", "abc"]), st.sampled_from([1, 3, 7, "s", "tt"]),
                    max_size=3),
    max_size=12,
)  # fmt: skip


@SETTINGS
@given(branches=st.lists(OBJECT_BRANCHES, min_size=2, max_size=3), objects=OBJECTS)
def test_object_keywords_in_several_branches(branches: list, objects: list) -> None:
    """Each branch's additionalProperties holds for the keys that branch neither declares nor matches by a
    pattern: merged exactly, or refused with the keyword and the branch's pointer (never wrong)."""
    schema = {"type": "object", "allOf": branches}
    try:
        _agrees(schema, [*objects, {}, {"a": 1}, {"c": "s"}, {"ab": 3, "c": 1}])
    except UnsupportedSchema as e:
        assert e.keyword == "additionalProperties" and e.pointer.startswith("/allOf/"), e
        assert any("patternProperties" in b for b in branches)


def test_closed_branches_with_patterns_merge() -> None:
    """MaskBench allOfPProp2-like: short keys forbidden by one branch, the other closed to keys with 'a'."""
    schema = {
        "type": "object",
        "allOf": [
            {"patternProperties": {"^.{1,3}$": False}, "additionalProperties": True},
            {"patternProperties": {"a": True}, "additionalProperties": False},
        ],
        "minProperties": 2,
    }
    _agrees(schema, [{"aaaa": 1, "baaa": 2}, {"aaaa": 1}, {"aa": 1, "aaaa": 2}, {"bbbb": 1, "aaaa": 2}])


def test_additional_properties_next_to_another_branchs_pattern() -> None:
    """Keys matching only the other branch's pattern take this branch's additionalProperties too; refused
    when a key may match patterns of both branches (only the first's pattern schema would hold there)."""
    other = {"patternProperties": {"^x": {"type": "integer"}}}
    closed = {"additionalProperties": {"maximum": 5}}
    _agrees({"allOf": [closed, other]}, [{"xa": 3}, {"xa": 7}, {"xa": "s"}, {"b": 9}, {"b": "s"}, {"b": 1}])
    _agrees(
        {"allOf": [{"patternProperties": {"^b": True}, **closed}, other]}, [{"xa": 7}, {"xa": 3}, {"ba": 7}]
    )
    closed = {"patternProperties": {"a$": {"type": "string"}}, "additionalProperties": False}
    with pytest.raises(UnsupportedSchema, match="patternProperties '\\^x'") as e:
        compile_json_schema({"allOf": [closed, other]})
    assert e.value.keyword == "additionalProperties" and e.value.pointer == "/allOf/1"


def test_enum_filter_sees_every_pattern() -> None:
    """An enum filtered by the validator against a merged schema whose patterns are a tuple."""
    schema = {"allOf": [{"enum": ["ab", "ba", "aa", "b"]}, {"pattern": "^a"}, {"pattern": "b$"}]}
    _agrees(schema, ["ab", "ba", "aa", "b"])


def test_one_target_twice_is_no_recursion() -> None:
    """A `$ref` to one target in two branches (or in both anyOfs of a product) is that target once."""
    defs = {"$defs": {"t": {"type": "object", "properties": {"k": {"type": "integer"}}}}}
    ref = {"$ref": "#/$defs/t"}
    _agrees({**defs, "allOf": [ref, ref]}, [{"k": 1}, {"k": "s"}, {}, 3])
    two = {**defs, "allOf": [{"anyOf": [ref, {"required": ["k"]}]}, {"anyOf": [ref, {"maxProperties": 0}]}]}
    _agrees(two, [{"k": 1}, {"k": "s"}, {}, {"j": 1}, 3])


def test_a_sibling_target_is_no_ancestor() -> None:
    """A branch's `$ref` to a target an earlier branch followed (here inside the second branch's own allOf)
    is no recursion: only the targets on the way to the allOf are."""
    defs = {
        "a": {"type": "object", "properties": {"k": {"type": "integer"}}},
        "b": {"allOf": [{"$ref": "#/$defs/a"}, {"required": ["k"]}]},
    }
    schema = {"$defs": defs, "allOf": [{"$ref": "#/$defs/a"}, {"$ref": "#/$defs/b"}]}
    _agrees(schema, [{"k": 1}, {"k": "s"}, {}, {"j": 1, "k": 2}])


def test_other_keywords_in_several_branches() -> None:
    """uniqueItems (either), propertyNames (both), a known format next to an unknown one (an annotation)."""
    items = {"type": "array", "items": {"enum": [1, 2, 3]}}
    _agrees({"allOf": [{**items, "uniqueItems": True}, {"uniqueItems": False}]}, [[1, 2], [1, 1], []])
    names = {
        "type": "object",
        "allOf": [{"propertyNames": {"maxLength": 2}}, {"propertyNames": {"pattern": "^a"}}],
    }
    _agrees(names, [{"a": 1}, {"ab": 1}, {"abc": 1}, {"b": 1}, {}])
    with pytest.warns(IgnoredKeyword, match="format 'path'"):
        dfa = compile_json_schema({"type": "string", "allOf": [{"format": "path"}, {"format": "date"}]})
    assert dfa.accepts(b'"2024-02-29"') and not dfa.accepts(b'"2023-02-29"') and not dfa.accepts(b'"x"')


# -- valid instances drawn by hypothesis-jsonschema (its own allOf merge) are all accepted --------------------
# (no oneOf here: hypothesis-jsonschema draws those by filtering, seconds per value)

DRAWN = [
    {"type": "string", "allOf": [{"pattern": "^[ab]+$"}, {"pattern": "ab"}], "maxLength": 6},
    {"type": "number", "allOf": [{"multipleOf": 0.75}, {"multipleOf": 0.5}], "minimum": -20, "maximum": 20},
    {"allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"anyOf": [{"minimum": 3}, {"maxLength": 2}]}]},
    {
        "type": "object",
        "allOf": [
            {"properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "string"}},
            {"properties": {"b": {"type": "string"}}, "patternProperties": {"^x": {"maxLength": 2}}},
        ],
        "maxProperties": 3,
    },
]  # fmt: skip


def _integral(v: Any) -> Any:
    """`v` with integral floats as integers: decc writes an integer one way (`5`, not `5.0`: docs)."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, list):
        return [_integral(x) for x in v]
    if isinstance(v, dict):
        return {k: _integral(x) for k, x in v.items()}
    return v


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.parametrize("schema", DRAWN, ids=range(len(DRAWN)))
@given(data=st.data())
def test_drawn_valid_instances_are_accepted(schema: dict, data: st.DataObject) -> None:
    import hypothesis_jsonschema

    value = _integral(data.draw(hypothesis_jsonschema.from_schema(schema)))
    assert jsonschema.Draft202012Validator(schema).is_valid(value)
    dfa = compile_json_schema(schema)
    assert any(dfa.accepts(json.dumps(w).encode()) for w in _orders(value)), (schema, value)


# -- item lists in several branches: position by position --------------------------------------------------------

ARRAY_BRANCHES = st.sampled_from(
    [{"prefixItems": [{"type": "integer"}, {"type": "string"}]}, {"prefixItems": [{"minimum": 2}]},
     {"items": {"type": "integer"}}, {"prefixItems": [True, True, {"const": 1}], "items": False},
     {"prefixItems": [{"maximum": 3}], "items": {"type": ["integer", "string"]}}, {"maxItems": 2}]
)  # fmt: skip


@SETTINGS
@given(
    branches=st.lists(ARRAY_BRANCHES, min_size=2, max_size=3),
    arrays=st.lists(st.lists(st.sampled_from([1, 2, 4, "s", None]), max_size=4), max_size=12),
)
def test_item_lists_in_several_branches(branches: list, arrays: list) -> None:
    _agrees({"type": "array", "allOf": branches}, [*arrays, [], [1], [4, "s", 1], [1, "s", 1, 1]])


def test_draft7_item_lists_in_several_branches() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "array",
        "allOf": [{"items": [{"type": "integer"}], "additionalItems": {"type": "string"}}, {"items": [True, {"maxLength": 1}]}],
    }  # fmt: skip
    dfa = compile_json_schema(schema)
    check = jsonschema.Draft7Validator(schema)
    for v in [[1], [1, "s"], [1, "st"], [1, "s", "tt"], [1, "s", 2], ["s"], []]:
        assert dfa.accepts(json.dumps(v).encode()) == check.is_valid(v), v


def test_contains_counts_in_several_branches() -> None:
    """minContains without `contains` asserts nothing (it must not count another branch's `contains`); one
    `contains` counted in two branches takes the tighter bounds."""
    arrays = [[], [1], [1, 1], [1, 1, 1], [1, 2, 1, 1], [2, 2]]
    loose = {"type": "array", "allOf": [{"contains": {"const": 1}}, {"minContains": 3, "maxContains": 3}]}
    _agrees(loose, arrays)
    both = {
        "type": "array",
        "allOf": [{"contains": {"const": 1}, "minContains": 2}, {"contains": {"const": 1}, "maxContains": 2}],
    }
    _agrees(both, arrays)
