"""JSON Schema keyword coverage (grammars/json/json_keywords.py, json_negation.py, json_canonical.py): annotations are ignored in allOf branches;
`not`, `if`/`then`/`else` and overlapping `oneOf` are exact through complement and difference.

The oracle is jsonschema on drawn values, spelled the canonical ways decc writes them (json.dumps, both
separators, ASCII escapes or not, integral floats as integers); for annotations, the annotation-free schema.
"""

from __future__ import annotations

import datetime
import itertools
import json
import re
import warnings
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars.json.json_canonical import CANONICAL_DEPTH
from decc.grammars.json.json_keywords import ASSERTIONS
from decc.grammars.json.json_schema import ANY_DEPTH, UnsupportedSchema, compile_json_schema
from decc.grammars.json.regex_ops import difference
from decc.testing import to_schema_order

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _spellings(v: Any) -> list[bytes]:
    return [json.dumps(v, separators=(",", ":"), ensure_ascii=a).encode() for a in (True, False)] + [
        json.dumps(v, ensure_ascii=a).encode() for a in (True, False)
    ]


def _orders(v: Any) -> list[Any]:
    """`v` with the keys of its objects in every order: decc writes one order per schema, jsonschema has
    none."""
    if isinstance(v, list):
        return [list(p) for p in itertools.product(*(_orders(x) for x in v))]
    if not isinstance(v, dict):
        return [v]
    out = []
    for keys in itertools.permutations(v):
        for values in itertools.product(*(_orders(v[k]) for k in keys)):
            out.append(dict(zip(keys, values, strict=True)))
    return out


def _agrees(schema: Any, values: list[Any]) -> None:
    """Every spelling decc accepts is valid; every valid value is accepted in some key order (each order
    in all four spellings alike)."""
    dfa = compile_json_schema(schema)
    check = jsonschema.Draft202012Validator(schema)
    for v in values:
        valid = check.is_valid(v)
        verdicts = []
        for w in _orders(v):
            got = {dfa.accepts(text) for text in _spellings(w)}
            assert len(got) == 1, (schema, w)
            verdicts.append(got.pop())
        assert any(verdicts) == valid, (schema, v, valid)


# -- drawn values: canonical numbers (integers, quarters), short strings, shallow containers ---------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.integers(-40, 40).map(lambda n: n / 4).filter(lambda x: not x.is_integer()),
    st.text(alphabet='ab"\\é\n', max_size=3),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "b", "kind"]), inner, max_size=2)
    ),
    max_leaves=6,
)
FIXED = [None, True, 0, 1, 2, 3, 5, 7, 2.5, -1, "", "a", "ab", "abc", "b", [], [1], [1, 2], {}, {"a": 1}]

# small regular subschemas that do not depend on key order
LEAVES = [
    {"type": "integer"},
    {"type": "string"},
    {"type": "null"},
    {"type": ["integer", "string"]},
    {"minimum": 2},
    {"maximum": 5},
    {"exclusiveMinimum": 0, "type": "number"},
    {"type": "string", "maxLength": 2},
    {"pattern": "^a"},
    {"minLength": 1},
    {"enum": [1, "a", None, 2.5]},
    {"const": 2},
    {"type": "array", "maxItems": 1},
    {"type": "array", "items": {"type": "integer"}},
    {"type": "integer", "multipleOf": 2},
    {"type": "object", "additionalProperties": {"type": "integer"}},
    {"type": "object", "maxProperties": 1},
    {"not": {"type": "boolean"}},
    {"properties": {"a": {"type": "integer"}}},
    {"required": ["a"]},
    {"type": "object", "properties": {"b": {"const": 1}}, "required": ["b"]},
    {"properties": {"a": {"type": "string"}}, "additionalProperties": False},
    {},
    True,
    False,
]
LEAF = st.sampled_from(LEAVES)


@st.composite
def negating(draw: st.DrawFn) -> Any:
    a, b, c = draw(LEAF), draw(LEAF), draw(LEAF)
    kind = draw(st.sampled_from(["not", "not-with", "oneOf2", "oneOf3", "if", "if-then", "if-else"]))
    if kind == "not":
        return {"not": a}
    if kind == "not-with":
        return {**(b if isinstance(b, dict) else {}), "not": a}
    if kind == "oneOf2":
        return {"oneOf": [a, b]}
    if kind == "oneOf3":
        return {"oneOf": [a, b, c]}
    if kind == "if":
        return {"if": a, "then": b, "else": c}
    if kind == "if-then":
        return {"if": a, "then": b}
    return {"if": a, "else": c}


def test_canonical_depth_is_any_depth() -> None:
    assert CANONICAL_DEPTH == ANY_DEPTH  # a deeper universe would take values `true` does not spell


@SETTINGS
@given(schema=negating(), values=st.lists(VALUES, max_size=25))
def test_not_if_oneof_agree_with_jsonschema(schema: Any, values: list[Any]) -> None:
    _agrees(schema, FIXED + values)


@pytest.mark.parametrize(
    "schema",
    [
        {"oneOf": [{"type": "integer"}, {"minimum": 2}]},
        {"oneOf": [{"type": "string", "maxLength": 2}, {"pattern": "^a"}, {"minLength": 2}]},
        {"type": "integer", "oneOf": [{"multipleOf": 2}, {"multipleOf": 3}]},
        {"not": {"enum": [1, "a"]}},
        {"type": "integer", "not": {"minimum": 3, "maximum": 5}},
        {"if": {"type": "integer"}, "then": {"minimum": 2}, "else": {"type": "string"}},
        {"not": {"required": ["a"]}},
        {"type": "object", "not": {"required": ["a", "b"]}},
        {"not": {"type": "object", "required": ["kind"]}},
    ],
)
def test_keyword_cases_agree_with_jsonschema(schema: Any) -> None:
    _agrees(schema, FIXED + [{"b": 1}, {"a": 1, "b": 2}, {"b": 1, "a": 2}, {"kind": "x"}, [2, 3], [6]])


OBJECTS = [{}, {"a": 1}, {"b": 2}, {"c": 3}, {"a": 1, "b": 2}, {"a": "s", "c": 3}, {"b": 2, "c": 3}, {"a": 1, "z": 0},
           {"a": 1, "b": 2, "c": 3}, {"a": 1, "b": "s", "c": 3, "z": 0}, {"z": 1}, 5, None]  # fmt: skip


@pytest.mark.parametrize(
    "schema",
    [
        {"not": {"properties": {"a": {"type": "integer"}}}},
        {"oneOf": [{"required": ["a"], "minProperties": 2}, {"type": "object"}]},
        {"type": "object", "oneOf": [{"required": ["a", "b"]}, {"required": ["c"]}]},
        {"oneOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]}, {"required": ["b"]}]},
        {"oneOf": [{"properties": {"a": {}, "b": {}}, "additionalProperties": False}, {"required": ["c"]}]},
        {"oneOf": [{"properties": {"a": {}}, "additionalProperties": False}, {"properties": {"b": {}}}]},
        {"if": {"required": ["a"]}, "then": {"required": ["b"]}, "else": {"properties": {"c": {"const": 3}}}},
    ],
)
def test_key_names_of_subtracted_schemas_are_declared(schema: Any) -> None:
    """The names the subtracted schemas mention are declared in the kept one, whose order both then
    write: exact, in that order."""
    _agrees(schema, OBJECTS)


def test_nested_objects_of_subtracted_schemas_are_declared_too() -> None:
    schema = {
        "type": "object",
        "properties": {"cfg": {"type": "object"}},
        "oneOf": [
            {"properties": {"cfg": {"required": ["x"]}}},
            {"properties": {"cfg": {"properties": {"y": {"const": 1}}}}},
        ],
    }
    cfgs = [{}, {"x": 1}, {"y": 1}, {"x": 1, "y": 1}, {"x": 1, "y": 2}, {"y": 2}, {"z": 0, "y": 1}]
    _agrees(schema, [{"cfg": c} for c in cfgs] + [{}, {"cfg": 1}])


def test_if_on_a_declared_property_is_compiled_in_the_schema_order() -> None:
    schema = {
        "type": "object",
        "properties": {"kind": {"enum": ["a", "b"]}, "x": {"type": "integer"}},
        "if": {"properties": {"kind": {"const": "a"}}, "required": ["kind"]},
        "then": {"required": ["x"]},
        "else": {"properties": {"x": {"maximum": 3}}},
    }
    values = [{"kind": k, **x, **e} for k in "ab" for x in ({}, {"x": 2}, {"x": 7}) for e in ({}, {"z": 1})]
    _agrees(schema, [*values, {"x": 9}, {}])


@pytest.mark.parametrize(
    ("schema", "keyword", "pointer"),
    [
        (
            {"patternProperties": {"^x": {}}, "not": {"required": ["a"], "minProperties": 2}},
            "not",
            "/not/required",
        ),
        (
            {
                "patternProperties": {"^x": {}},
                "oneOf": [{"required": ["a"]}, {"required": ["b"], "minProperties": 2}],
            },
            "oneOf",
            "/oneOf/1/required",
        ),
        ({"if": {"enum": [{"a": 1, "b": 2}]}, "then": False}, "if", "/if"),
        ({"not": {"format": "email"}}, "not", "/not/format"),
    ],
)
def test_order_dependent_complements_are_refused(schema: Any, keyword: str, pointer: str) -> None:
    with pytest.raises(UnsupportedSchema) as e:
        compile_json_schema(schema)
    assert (e.value.keyword, e.value.pointer) == (keyword, pointer)


def test_a_recursive_subtracted_schema_is_refused_not_declared_forever() -> None:
    """Declaring a recursive branch's nested keys in the kept branch went on until RecursionError."""
    schema = {
        "$defs": {"r": {"oneOf": [{"type": "string"}, {"properties": {"ios": {"$ref": "#/$defs/r"}}, "required": ["ios"]}]}},
        "oneOf": [{"type": "object", "properties": {"size": {"type": "integer"}}}, {"$ref": "#/$defs/r"}],
    }  # fmt: skip
    with pytest.raises(UnsupportedSchema) as e:
        compile_json_schema(schema)
    assert (e.value.keyword, e.value.pointer) == ("oneOf", "/oneOf/1")


def test_recursive_oneof_branches_are_refused_and_lenient_warns() -> None:
    schema = {
        "$defs": {"t": {"type": "array", "items": {"$ref": "#/$defs/t"}}},
        "oneOf": [{"$ref": "#/$defs/t"}, {"type": "array", "maxItems": 1}],
    }
    with pytest.raises(UnsupportedSchema) as e:
        compile_json_schema(schema)
    assert e.value.keyword == "oneOf"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compile_json_schema(schema, lenient=True)
    assert any("oneOf" in str(w.message) for w in caught)


# -- annotations in allOf ----------------------------------------------------------------------------------

TEXT = st.text(max_size=5)
KNOWN = {
    "title": TEXT,
    "description": TEXT,
    "$comment": TEXT,
    "examples": st.lists(VALUES, max_size=2),
    "default": VALUES,
    "deprecated": st.booleans(),
    "readOnly": st.booleans(),
    "writeOnly": st.booleans(),
}
OTHER_KEYS = st.one_of(
    st.sampled_from(["nullable", "tsType", "markdownDescription", "errorMessage"]),
    st.from_regex(r"x-[a-zA-Z]{1,6}", fullmatch=True),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8).filter(
        lambda k: k not in ASSERTIONS
    ),
)


@st.composite
def annotations(draw: st.DrawFn) -> dict:
    known = draw(st.lists(st.sampled_from(sorted(KNOWN)), unique=True, max_size=2))
    out = {k: draw(KNOWN[k]) for k in known} | draw(st.dictionaries(OTHER_KEYS, VALUES, max_size=2))
    return out or {"x-note": None}


TYPED = st.sampled_from(
    [
        {"type": "string"},
        {"type": "string", "maxLength": 3},
        {"type": "integer", "minimum": 0},
        {"type": "array"},
    ]
)


@SETTINGS
@given(base=TYPED, extra=TYPED, notes=st.lists(annotations(), min_size=3, max_size=3))
def test_annotations_in_several_allof_branches_are_ignored(base: Any, extra: Any, notes: list[dict]) -> None:
    plain = {"allOf": [base, extra, {}]}
    annotated = {"allOf": [{**notes[0], **base}, {**notes[1], **extra}, notes[2]]}
    want, got = compile_json_schema(plain), compile_json_schema(annotated)
    assert difference(want, [got], "test").is_empty() and difference(got, [want], "test").is_empty()


def test_const_and_enum_merged_from_allof_branches_keep_both() -> None:
    """allOf [{const}, {enum}] merges into one schema with both: the const counts only when listed."""
    assert not compile_json_schema({"allOf": [{"const": 2}, {"enum": [1, "a"]}]}).accepts(b"2")
    assert compile_json_schema({"allOf": [{"enum": [2, "a"]}, {"const": 2}]}).accepts(b"2")


# -- dependencies -------------------------------------------------------------------------------------------

NAMES = ["a", "b", "c"]
DEPENDENT = st.dictionaries(st.sampled_from(NAMES), st.lists(st.sampled_from(NAMES), unique=True, max_size=2))
OBJECT_VALUES = st.dictionaries(st.sampled_from([*NAMES, "z"]), st.sampled_from([0, 1, "s"]), max_size=4)


@st.composite
def dependent(draw: st.DrawFn) -> dict:
    deps = draw(DEPENDENT)
    base = draw(st.sampled_from([{}, {"type": "object"}, {"properties": {"a": {"type": "integer"}}}]))
    form = draw(st.sampled_from(["dependentRequired", "dependencies", "dependentSchemas"]))
    if form == "dependentSchemas":
        return {
            **base,
            form: {k: {"required": v, "properties": {"z": {"const": 1}}} for k, v in deps.items()},
        }
    return {**base, form: deps}


@SETTINGS
@given(schema=dependent(), values=st.lists(OBJECT_VALUES, max_size=12))
def test_dependencies_agree_with_jsonschema(schema: dict, values: list[Any]) -> None:
    if "dependencies" in schema:
        check = jsonschema.Draft7Validator(schema)
        dfa = compile_json_schema({"$schema": "http://json-schema.org/draft-07/schema#", **schema})
        for v in [*values, 1, "s"]:
            assert any(dfa.accepts(json.dumps(w).encode()) for w in _orders(v)) == check.is_valid(v), v
        return
    _agrees(schema, [*values, {"a": 1, "b": 1, "c": 1}, 1, "s"])


# -- min/maxProperties with optional properties --------------------------------------------------------------


@st.composite
def counted_objects(draw: st.DrawFn) -> tuple[dict, list[dict]]:
    n = draw(st.integers(3, 8))  # over 4 optional ones: counted (json_keywords); over 6 were refused
    names = [f"p{i}" for i in range(n)]
    required = draw(st.lists(st.sampled_from(names), unique=True, max_size=2))
    lo = draw(st.integers(0, n + 1))
    hi = draw(st.one_of(st.none(), st.integers(0, n + 2)))
    schema: dict = {
        "properties": {k: {"type": "integer"} for k in names},
        "required": required,
        "minProperties": lo,
    }
    if hi is not None:
        schema["maxProperties"] = hi
    if draw(st.booleans()):
        schema["additionalProperties"] = False
    values = []
    for _ in range(12):  # declared keys in schema order, then extras
        present = [k for k in names if draw(st.booleans())]
        value = {k: draw(st.sampled_from([1, "s"])) for k in present}
        value.update({f"x{i}": 0 for i in range(draw(st.integers(0, 2)))})
        values.append(value)
    return schema, values


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=counted_objects())
def test_min_max_properties_count_optional_properties(case: tuple[dict, list[dict]]) -> None:
    schema, values = case
    dfa = compile_json_schema(schema, engine="auto")  # open objects with 8 counted optional keys: a grammar
    check = jsonschema.Draft202012Validator(schema)
    for v in values:
        for text in _spellings(v):
            assert dfa.accepts(text) == check.is_valid(v), (schema, text)


# -- anchors inside a top-level alternation -----------------------------------------------------------------

PATTERN_TEXTS = st.text(alphabet="abc$^", max_size=5)


@SETTINGS
@given(
    pattern=st.sampled_from(["^a|b$", "^ab|c", "a|^b$", "^(a|b)c|^c$", "^a|", "b$|^$", "^a|b|c$"]),
    texts=st.lists(PATTERN_TEXTS, max_size=20),
)
def test_anchors_inside_an_alternation_search_like_ecmascript(pattern: str, texts: list[str]) -> None:
    """Each alternative keeps its own anchors; Python's re.search agrees with ECMAScript on these."""
    schema = {"type": "string", "pattern": pattern}
    dfa = compile_json_schema(schema)
    for text in [*texts, "", "a", "b", "ab", "ba", "c", "xc", "cx"]:
        assert dfa.accepts(json.dumps(text).encode()) == bool(re.search(pattern, text)), (pattern, text)


# -- uniqueItems over finite domains -------------------------------------------------------------------------

DOMAIN = st.lists(st.sampled_from(["a", "b", 1, 1.0, 2, True, False, None, 2.5, [1], {"k": 1}]), min_size=1)


@SETTINGS
@given(
    domain=DOMAIN,
    bounds=st.tuples(st.integers(0, 3), st.one_of(st.none(), st.integers(0, 5))),
    arrays=st.lists(
        st.lists(st.sampled_from(["a", "b", 1, 2, True, None, 2.5, [1], {"k": 1}, "z"]), max_size=4)
    ),
)
def test_unique_items_over_an_enum_agrees_with_jsonschema(domain: list, bounds: tuple, arrays: list) -> None:
    schema: dict = {"type": "array", "uniqueItems": True, "items": {"enum": domain}, "minItems": bounds[0]}
    if bounds[1] is not None:
        schema["maxItems"] = bounds[1]
    _agrees(schema, arrays)


def test_unique_items_over_booleans_and_integer_ranges() -> None:
    _agrees(
        {"type": "array", "uniqueItems": True, "items": {"type": "boolean"}}, [[True, False], [True, True]]
    )
    schema = {"uniqueItems": True, "items": {"type": "integer", "minimum": 1, "maximum": 4}}
    _agrees(schema, [[1, 2, 3, 4], [1, 2, 1], [4, 1], [5], "s"])
    _agrees({"uniqueItems": False, "items": {"type": "integer"}}, [[1, 1], [2]])


def test_unique_items_over_an_open_domain_is_refused() -> None:
    with pytest.raises(UnsupportedSchema) as e:
        compile_json_schema({"type": "array", "items": {"type": "string"}, "uniqueItems": True})
    assert (e.value.keyword, e.value.pointer) == ("uniqueItems", "/uniqueItems")
    assert compile_json_schema({"items": {"type": "string"}, "uniqueItems": True, "maxItems": 1}).accepts(
        b'["a"]'
    )


# -- overlapping patternProperties ---------------------------------------------------------------------------

PATTERN_SCHEMAS = st.sampled_from(
    [{"type": "integer"}, {"minimum": 2}, {"maximum": 5}, {"type": "string"}, {}]
)


@SETTINGS
@given(
    patterns=st.dictionaries(
        st.sampled_from(["^a", "b$", "a", "^ab", "c", "^b|c$"]), PATTERN_SCHEMAS, max_size=3
    ),
    extra=st.sampled_from([{}, {"additionalProperties": False}, {"properties": {"ab": {"const": 3}}}]),
    objects=st.lists(
        st.dictionaries(st.text(alphabet="abc", max_size=3), st.sampled_from([1, 3, 7, "s"]), max_size=3),
        max_size=10,
    ),
)
def test_overlapping_pattern_properties_take_every_matching_schema(
    patterns: dict, extra: dict, objects: list
) -> None:
    _agrees({"patternProperties": patterns, **extra}, [*objects, {"ab": 3, "a": 1}])


# -- propertyNames -------------------------------------------------------------------------------------------

NAME_SCHEMAS = st.sampled_from(
    [
        {"pattern": "^a"},
        {"maxLength": 1},
        {"not": {"enum": ["ab", "b"]}},
        {"enum": ["a", "b", "ca"]},
        {"not": {"pattern": "c"}},
        {"type": "integer"},
        {"minLength": 2, "pattern": "b"},
        False,
    ]
)


@SETTINGS
@given(
    names=NAME_SCHEMAS,
    base=st.sampled_from([{}, {"properties": {"a": {}, "b": {"type": "integer"}}}, {"required": ["a"]},
                          {"additionalProperties": {"type": "integer"}}, {"patternProperties": {"b": {"minimum": 2}}}]),
    objects=st.lists(
        st.dictionaries(st.text(alphabet="abc", max_size=3), st.sampled_from([1, 3, "s"]), max_size=3), max_size=10
    ),
)  # fmt: skip
def test_property_names_agree_with_jsonschema(names: Any, base: dict, objects: list) -> None:
    _agrees({"type": "object", **base, "propertyNames": names}, [*objects, {"a": 1, "b": 3}, {"ca": 1}])


# -- contains ------------------------------------------------------------------------------------------------


@SETTINGS
@given(
    inner=st.sampled_from([{"type": "integer"}, {"minimum": 3}, {"const": "a"}, {"type": "array"}, {"not": {}}]),
    bounds=st.sampled_from([{}, {"minContains": 2}, {"maxContains": 1}, {"minContains": 0, "maxContains": 1},
                            {"minContains": 1, "maxContains": 2.0}, {"minContains": 0}]),
    base=st.sampled_from([{}, {"items": {"type": ["integer", "string"]}}, {"maxItems": 3}, {"prefixItems": [{}]}]),
    arrays=st.lists(st.lists(st.sampled_from([1, 3, 5, "a", "b", [], None, 2.5]), max_size=5), max_size=12),
)  # fmt: skip
def test_contains_counts_matching_items(inner: Any, bounds: dict, base: dict, arrays: list) -> None:
    _agrees({"type": "array", **base, "contains": inner, **bounds}, [*arrays, [3, 3, 3], []])


# -- format: date / date-time (json_formats) -------------------------------------------------------------------


@SETTINGS
@given(year=st.integers(1, 9999), month=st.integers(1, 12), day=st.integers(1, 31))
def test_dates_are_exactly_the_calendar_days(year: int, month: int, day: int) -> None:
    """Oracle: Python's calendar (Feb 29 only in leap years: divisible by 4, centuries by 400)."""
    try:
        datetime.date(year, month, day)
        real = True
    except ValueError:
        real = False
    text = f"{year:04d}-{month:02d}-{day:02d}"
    assert (
        compile_json_schema({"type": "string", "format": "date"}).accepts(json.dumps(text).encode()) == real
    )
    stamp = json.dumps(f"{text}T12:30:00Z").encode()
    assert compile_json_schema({"type": "string", "format": "date-time"}).accepts(stamp) == real


@SETTINGS
@given(
    addl=st.sampled_from([False, {"type": "string"}, {"type": "integer"}]),
    other=st.sampled_from([{"properties": {"b": {}}}, {"properties": {"b": {"type": "string"}, "a": {"minimum": 2}}},
                           {"properties": {"c": {"type": "integer"}}, "required": ["c"]}, {"required": ["b"]}]),
    objects=st.lists(st.dictionaries(st.sampled_from("abc"), st.sampled_from([1, 3, "s"]), max_size=3), max_size=10),
)  # fmt: skip
def test_allof_with_additional_properties_in_one_branch(addl: Any, other: dict, objects: list) -> None:
    """The closed branch's additionalProperties also holds for the names only the other branch declares."""
    closed = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": addl}
    _agrees({"allOf": [closed, other]}, [*objects, {"a": 1, "b": "s"}, {"b": 1}])


def test_declared_keys_keep_the_schema_order() -> None:
    """The names a subtracted schema mentions come after the kept schema's own properties: objects in
    schema order stay accepted (`if` on the second property wrote it first: MaskBench schema-app)."""
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "type": {"enum": ["a", "b"]}},
        "if": {"properties": {"type": {"const": "a"}}},
        "then": {"properties": {"x": {"type": "integer"}}},
        "else": {"properties": {"x": {"type": "string"}}},
    }
    dfa = compile_json_schema(schema)
    for v in [
        {"name": "n", "type": "b"},
        {"name": "n", "type": "a", "x": 1},
        {"name": "n", "type": "b", "x": "s"},
    ]:
        assert dfa.accepts(json.dumps(to_schema_order(v, schema)).encode()), v
    assert not dfa.accepts(b'{"name": "n", "type": "a", "x": "s"}')


@pytest.mark.parametrize(
    "schema",
    [
        {"dependentSchemas": {"x": {"not": {"required": ["error"]}}}},
        {"dependentSchemas": {"x": {"type": "object", "maxProperties": 1}}},
        {"dependentSchemas": {"x": False}},
    ],
)
def test_dependent_schemas_do_not_apply_to_non_objects(schema: Any) -> None:
    _agrees(schema, ["s", 1, None, [1], {}, {"x": 1}, {"x": 1, "error": 2}, {"error": 1}])
