"""The compile tail: schemas whose exact compilation would take minutes are refused up front, positioned."""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from decc.grammars import ByteDFA
from decc.grammars.json.json_negation import MAX_SUBTRACTIONS
from decc.grammars.json.json_numbers import alt, lit
from decc.grammars.json.json_schema import (
    ANY_BODY,
    NOTHING,
    STR_CHAR,
    UnsupportedSchema,
    compile_json_schema,
    json_schema_engine,
    string_product,
)
from decc.grammars.json.regex_ops import counted_loop, dfa_of, difference, intersection
from decc.grammars.regexes.regex_ast import Automaton, Repeat


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


@pytest.mark.parametrize("lo,hi", [(0, 0), (0, 3), (2, 2), (1, 4), (3, 5), (0, None), (2, None), (4, None)])
def test_counted_loop_is_the_unrolled_repeat(lo: int, hi: int | None) -> None:
    """`counted_loop` (unrolled counted strings, for complements; `hi` None: a long minLength alone)
    against the regex it stands for."""
    body = dfa_of(ANY_BODY)
    fast = dfa_of(counted_loop(body, lo, hi))
    slow = dfa_of(Repeat(STR_CHAR, lo, hi))
    assert difference(fast, [slow], "test").n_states == 0
    assert difference(slow, [fast], "test").n_states == 0
    three = b"a\\u00e9\\ud83d\\ude00"  # three characters: a surrogate pair is one
    assert fast.accepts(three) == (lo <= 3 and (hi is None or 3 <= hi))


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


PIECES = [
    Repeat(STR_CHAR, 1, 3),
    lit("ab"),
    alt(lit("a"), lit("é")),
    Repeat(alt(lit("a"), lit("b")), 0, None),
]


@given(
    includes=st.lists(st.sampled_from(PIECES), max_size=2),
    exclude=st.sampled_from([*PIECES, NOTHING]),
    probes=st.lists(st.text(st.sampled_from("abé\\u0"), max_size=4), max_size=12),
)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_string_product_is_the_intersection(includes: list, exclude: Any, probes: list[str]) -> None:
    """The frontier-wise product against DFA intersection and difference, and its character boundaries
    against the body DFA on every prefix."""
    auto, boundary = string_product(tuple(includes), exclude)
    got = dfa_of(auto)
    body = dfa_of(ANY_BODY)
    want = intersection([body, *(dfa_of(i) for i in includes)], "test")
    if exclude != NOTHING:
        want = difference(want, [dfa_of(exclude)], "test")
    assert difference(got, [want], "test").n_states == 0 and difference(want, [got], "test").n_states == 0
    if isinstance(auto, Automaton):
        step = {(s, b): t for s, lo, hi, t in auto.edges for b in range(lo, hi + 1)}
        for p in probes:
            state, data = auto.start, p.encode()
            for i in range(len(data) + 1):
                assert (state in boundary) == body.accepts(data[:i])
                if i == len(data) or (state, data[i]) not in step:
                    break
                state = step[state, data[i]]


# MaskBench o83138: oneOf branches that all take objects with each other's keys; subtracting a branch that
# requires a nested object complements that object's schema inside each piece of the other branches.
LOCK_ONE_OF = {
    "type": "object",
    "oneOf": [
        {"properties": {"error": {"type": "string"}}, "required": ["error"]},
        {"properties": {"done": {"type": "string"}}, "required": ["done"]},
        {
            "properties": {
                "lock": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}, "at": {"type": "integer"}},
                    "required": ["id"],
                }
            },
            "required": ["lock"],
        },
    ],
}


def test_a_repeated_subtraction_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each distinct (kept node, subtracted DFAs) of an exact oneOf is one automaton difference, however
    often the pieces meet it (o83138 built the same one 33 times: seconds of products); the language is
    still exactly the oneOf's (jsonschema the oracle)."""
    from jsonschema import Draft7Validator

    from decc.grammars.json import json_negation

    built: list[int] = []
    asked: set[tuple[Any, ...]] = set()
    real_difference, real_minus = json_negation.difference, json_negation._minus

    def counting_difference(*args: Any) -> Any:
        built.append(1)
        return real_difference(*args)

    def seen_minus(comp: Any, keep: Any, remove: list, ptr: str, what: str) -> Any:
        asked.add((id(comp), keep, tuple(id(r) for r in remove)))
        return real_minus(comp, keep, remove, ptr, what)

    monkeypatch.setattr(json_negation, "difference", counting_difference)
    monkeypatch.setattr(json_negation, "_minus", seen_minus)
    dfa = compile_json_schema({**LOCK_ONE_OF, "title": "built once"}, engine="automaton")
    assert asked and len(built) == len(asked)
    check = Draft7Validator(LOCK_ONE_OF)
    values = [  # keys in schema order, which decc writes
        {"error": "x"},
        {"error": "x", "done": "y"},
        {"lock": {"id": "a"}},
        {"error": "x", "lock": {"id": "a", "at": 1}},
        {"error": "x", "lock": {"at": 1}},
        {"lock": {"at": 1}},
        {"done": "y", "lock": 3},
        {"done": 1},
        {},
    ]
    for v in values:
        assert dfa.accepts(json.dumps(v).encode()) == check.is_valid(v), v


def test_a_long_min_length_alone_is_exact() -> None:
    """`minLength` without `maxLength` (string2: 1,000) is a layered automaton whose last layer loops,
    intersected with the patterns: exactly the strings of at least that many characters."""
    lo = 40
    schema = {"type": "string", "minLength": lo, "pattern": "^(ab)+$"}
    dfa = compile_json_schema(schema)
    assert isinstance(dfa, ByteDFA)
    for n in range(lo - 4, lo + 8):
        text = ("ab" * n)[:n]
        want = n >= lo and n % 2 == 0
        assert dfa.accepts(json.dumps(text).encode()) == want, n
    assert dfa.accepts(json.dumps("ab" * 30).encode())
    assert not dfa.accepts(json.dumps("ab" * 19 + "\u00e9").encode())


@given(
    cls=st.sampled_from(["[a-c]", "[0-9a-zA-Z_-]", "\\w", ".", "[^b]", '[é\\n"]']),
    lo=st.integers(0, 20),
    span=st.integers(0, 8),
    min_length=st.sampled_from([None, 0, 3, 19]),
    max_length=st.sampled_from([None, 17, 40]),
    probes=st.lists(st.text(st.sampled_from('abcé_-\n"\\'), max_size=24), max_size=10),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_an_anchored_class_repeat_is_a_counted_string(
    cls: str, lo: int, span: int, min_length: int | None, max_length: int | None, probes: list[str]
) -> None:
    """`^C{m,n}$` with n >= 16 compiles to a counted string (few states, a length counter), not n
    unrolled copies of C; it takes exactly the strings Python's `re` and the length keywords take."""
    hi = 16 + lo + span
    pattern = f"^{cls}{{{lo},{hi}}}$"
    schema: dict[str, Any] = {"type": "string", "pattern": pattern}
    bounds = {"minLength": min_length, "maxLength": max_length}
    schema.update({k: v for k, v in bounds.items() if v is not None})
    dfa = compile_json_schema(schema)
    assert isinstance(dfa, ByteDFA)
    if dfa.n_states:
        assert dfa.has_counters and dfa.n_states < 30, dfa.n_states
    samples = [*probes, "a" * (lo - 1), "a" * lo, "b" * hi, "c" * (hi + 1), "_" * ((lo + hi) // 2)]
    for text in samples:
        want = re.fullmatch(pattern[1:-1], text, re.ASCII | re.DOTALL if cls != "." else re.ASCII) is not None
        want = want and (min_length or 0) <= len(text) <= (
            max_length if max_length is not None else len(text)
        )
        for spelled in (json.dumps(text), json.dumps(text, ensure_ascii=False)):
            assert dfa.accepts(spelled.encode()) == want, (pattern, bounds, spelled)


def test_a_pattern_property_that_asserts_nothing_is_no_key_language() -> None:
    """`patternProperties: {"^.{1,255}$": {}}` with any other key allowed constrains nothing (MaskBench
    o9908 spent most of its compile on that key language and its complement): the same rules as none."""
    for vacuous in ({}, True, {"description": "any"}):
        for addl in ({}, {"additionalProperties": True}):
            schema = {"type": "object", "patternProperties": {"^.{1,255}$": vacuous}, **addl}
            got = compile_json_schema(schema, engine="grammar")
            assert got.rules == compile_json_schema({"type": "object", **addl}, engine="grammar").rules


@given(
    pattern=st.sampled_from(["^a", "b$", "^.{1,3}$", "[0-9]"]),
    vacuous=st.sampled_from([{}, True, {"title": "t"}]),
    addl=st.sampled_from([None, True, False, {"type": "string"}]),
    members=st.lists(
        st.tuples(st.text("ab19", max_size=4), st.one_of(st.integers(0, 9), st.text("x", max_size=2))),
        max_size=3,
    ),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_vacuous_pattern_properties_keep_the_language(
    pattern: str, vacuous: Any, addl: Any, members: list[tuple[str, Any]]
) -> None:
    """Against jsonschema: with additionalProperties closed or typed the pattern still admits its keys."""
    from jsonschema import Draft7Validator

    schema: dict[str, Any] = {"type": "object", "patternProperties": {pattern: vacuous}}
    schema["properties"] = {"a": {"type": "integer"}}
    if addl is not None:
        schema["additionalProperties"] = addl
    dfa = compile_json_schema(schema)
    instance = dict(sorted(dict(members).items(), key=lambda kv: kv[0] != "a"))  # declared members first
    assert dfa.accepts(json.dumps(instance).encode()) == Draft7Validator(schema).is_valid(instance), instance


def test_anchored_literal_patterns_need_no_overlap_regions(monkeypatch: pytest.MonkeyPatch) -> None:
    """`^billing_id$`-style patterns with different schemas match one key each: no key matches two, so
    no region per set of patterns is built (MaskBench strmprivacy: 2^6 key-language products)."""
    import importlib

    js = importlib.import_module("decc.grammars.json.json_schema")

    def regions(*args: Any) -> Any:
        raise AssertionError("pattern regions built for patterns no key can share")

    monkeypatch.setattr(js, "pattern_regions", regions)
    schema = {
        "type": "object",
        "patternProperties": {"^a_id$": {"type": "string"}, "^b_id$": {"type": "integer"}, "^c$": {}},
        "additionalProperties": {"type": "null"},
    }
    dfa = compile_json_schema(schema)
    assert dfa.accepts(b'{"b_id":1,"a_id":"x","z":null}')
    assert not dfa.accepts(b'{"a_id":1}') and not dfa.accepts(b'{"z":1}')


@given(
    patterns=st.lists(st.sampled_from(["^ab$", "^a$", "^b1$", "a", "^a.$", "1$"]), min_size=2, max_size=3),
    members=st.lists(st.tuples(st.sampled_from(["a", "ab", "b1", "a1", "x"]), st.integers(0, 2)), max_size=3),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_pattern_properties_with_literals_against_jsonschema(
    patterns: list[str], members: list[tuple[str, int]]
) -> None:
    """Each pattern takes a different const: a key matching several patterns must satisfy all of them."""
    from jsonschema import Draft7Validator

    schema = {
        "type": "object",
        "patternProperties": {p: {"const": i} for i, p in enumerate(dict.fromkeys(patterns))},
        "additionalProperties": False,
    }
    dfa = compile_json_schema(schema)
    instance = dict(members)
    assert dfa.accepts(json.dumps(instance).encode()) == Draft7Validator(schema).is_valid(instance), instance


def test_a_negated_negation_is_a_conjunction(monkeypatch: pytest.MonkeyPatch) -> None:
    """`not` of a union of `not`s (allOf of `not`s merges into one) needs no complement: keep and each
    negated schema (MaskBench allany21: complements over every JSON value, ~250 ms)."""
    import importlib

    neg = importlib.import_module("decc.grammars.json.json_negation")

    def minus(*args: Any) -> Any:
        raise AssertionError("a complement built for a double negation")

    monkeypatch.setattr(neg, "_minus", minus)
    schema = {
        "type": "string",
        "not": {
            "anyOf": [
                {"not": {"pattern": "a"}},
                {"allOf": [{"not": {"pattern": "b"}}, {"not": {"pattern": "c"}}]},
            ]
        },
    }
    dfa = compile_json_schema(schema)
    for text in ["", "a", "ab", "ca", "bc", "xbxax"]:
        assert dfa.accepts(json.dumps(text).encode()) == ("a" in text and ("b" in text or "c" in text)), text


_PATTERN_SCHEMAS = st.sampled_from(
    [{"pattern": "a"}, {"pattern": "^b"}, {"minLength": 2}, {"type": "string"}]
)
_NESTED_NOTS = st.recursive(
    _PATTERN_SCHEMAS,
    lambda inner: st.one_of(
        inner.map(lambda s: {"not": s}),
        st.lists(inner, min_size=1, max_size=2).map(lambda xs: {"anyOf": xs}),
        st.lists(inner, min_size=1, max_size=2).map(lambda xs: {"allOf": xs}),
    ),
    max_leaves=4,
)


@given(sub=_NESTED_NOTS, probes=st.lists(st.text("abc", max_size=4), max_size=8))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_nested_negations_against_jsonschema(sub: dict, probes: list[str]) -> None:
    from jsonschema import Draft7Validator

    schema = {"type": "string", "maxLength": 20, "not": sub}
    try:
        dfa = compile_json_schema(schema)
    except UnsupportedSchema:
        return
    check = Draft7Validator(schema)
    for text in [*probes, "", "ab", "ba", "bab"]:
        assert dfa.accepts(json.dumps(text).encode()) == check.is_valid(text), (schema, text)


def test_a_scalar_minus_an_untyped_schema_builds_no_universe(monkeypatch: pytest.MonkeyPatch) -> None:
    """`{"type": "string", "not": {"pattern": "a"}}` subtracts only the strings with an `a`: a few states,
    not an automaton of every JSON value with such a string somewhere (~1,600 states; MaskBench object7,
    allany15 built dozens)."""
    import importlib

    neg = importlib.import_module("decc.grammars.json.json_negation")
    sizes: list[int] = []
    built = neg.regular_dfa

    def recorded(*args: Any) -> Any:
        dfa = built(*args)
        sizes.append(dfa.n_states)
        return dfa

    monkeypatch.setattr(neg, "regular_dfa", recorded)
    dfa = compile_json_schema({"type": "string", "not": {"pattern": "a"}})
    assert sizes and max(sizes) < 100, sizes
    assert dfa.accepts(b'"bcd"') and not dfa.accepts(b'"bad"') and not dfa.accepts(b"1")


@given(
    kind=st.sampled_from(["string", "integer", "number", "boolean", "null"]),
    sub=st.sampled_from(
        [
            {"pattern": "a"},
            {"minLength": 2},
            {"maximum": 3},
            {"enum": [1, "ab", True, None]},
            {"const": 2.5},
            {"anyOf": [{"pattern": "^b"}, {"minimum": 5}]},
            {"type": "integer"},
            {"multipleOf": 2},
        ]
    ),
    probes=st.lists(
        st.one_of(
            st.text("ab", max_size=3),
            st.integers(-2, 8),
            st.booleans(),
            st.none(),
            st.sampled_from([2.5, 4.0, 1.5]),
        ),
        max_size=8,
    ),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_not_on_a_scalar_type_against_jsonschema(kind: str, sub: dict, probes: list[Any]) -> None:
    from jsonschema import Draft7Validator

    schema = {"type": kind, "not": sub}
    try:
        dfa = compile_json_schema(schema)
    except UnsupportedSchema:
        return
    check = Draft7Validator(schema)
    for value in probes:
        if isinstance(value, float) and value.is_integer():
            continue  # 4.0 is an integer to jsonschema; under `not` decc writes integral values as integers
            # (docs/language.md: a complement holds over canonical spellings), so it rejects "4.0"
        assert dfa.accepts(json.dumps(value).encode()) == check.is_valid(value), (schema, value)


def test_a_subtracted_union_is_subtracted_branch_by_branch(monkeypatch: pytest.MonkeyPatch) -> None:
    """keep minus (A or B) is keep minus A minus B: each branch's automaton alone, never the automaton of
    their union (MaskBench object7: 12,966 states for four propertyNames branches, each alone ~1,600)."""
    import importlib

    neg = importlib.import_module("decc.grammars.json.json_negation")
    subtracted: list[int] = []
    minus = neg._minus

    def recorded(comp: Any, keep: Any, remove: list, *rest: Any) -> Any:
        subtracted.append(len(remove))
        return minus(comp, keep, remove, *rest)

    monkeypatch.setattr(neg, "_minus", recorded)
    branches = [{"propertyNames": {"pattern": "^a"}}, {"propertyNames": {"pattern": "^b"}}]
    schema = {"type": "object", "maxProperties": 2, "not": {"anyOf": branches}}
    dfa = compile_json_schema(schema)
    assert subtracted == [2]
    assert dfa.accepts(b'{"c":1}') and dfa.accepts(b'{"ab":1,"b":2}')
    assert not dfa.accepts(b"{}") and not dfa.accepts(b'{"a":1}') and not dfa.accepts(b'{"b":1,"bc":2}')
