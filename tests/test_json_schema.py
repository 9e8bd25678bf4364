"""JSON Schema -> byte DFA, model-free: keyword by keyword, errors, random walks, hypothesis-jsonschema."""

from __future__ import annotations

import json
import random
import warnings
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from decc.grammars import ByteDFA, Vocabulary, json_schema
from decc.grammars.json.json_schema import InvalidSchema, UnsupportedSchema, compile_json_schema


def _texts(v: Any) -> list[bytes]:
    return [
        json.dumps(v).encode(),
        json.dumps(v, separators=(",", ":")).encode(),
        json.dumps(v, ensure_ascii=False).encode(),
    ]


RAW = "raw:"  # a bad case given as exact text rather than as a value to serialize


def _check(schema: Any, good: list, bad: list, **kw: Any) -> ByteDFA:
    dfa = compile_json_schema(schema, **kw)
    for v in good:
        for t in _texts(v):
            assert dfa.accepts(t), (schema, t)
    for v in bad:
        for t in [v[len(RAW) :].encode()] if isinstance(v, str) and v.startswith(RAW) else _texts(v):
            assert not dfa.accepts(t), (schema, t)
    return dfa


CASES = [
    ({"type": "null"}, [None], [0, False, "null"]),
    ({"type": "boolean"}, [True, False], [None, 1]),
    ({"type": ["string", "null"]}, ["a", None], [1, []]),
    ({"type": "integer"}, [0, -7, 123456789], [1.5, "1", "raw:01", "raw:-0", "raw:+1"]),
    ({"type": "integer", "minimum": -15, "maximum": 123}, [-15, -1, 0, 9, 99, 123], [-16, 124, 1000]),
    ({"type": "integer", "exclusiveMinimum": 10}, [11, 100, 99999], [10, 9, -11]),
    ({"type": "integer", "exclusiveMaximum": -3, "minimum": -120}, [-4, -99, -120], [-3, 0, -121]),
    ({"type": "integer", "multipleOf": 7}, [0, 7, -14, 700, 7777], [1, -8, 701]),
    ({"type": "integer", "multipleOf": 3, "minimum": 0}, [0, 3, 99], [-3, 4]),
    ({"type": "integer", "multipleOf": 5, "minimum": 12, "maximum": 100}, [15, 100, 55], [10, 105, 13, -15]),
    ({"type": "number", "multipleOf": 0.01, "minimum": 0}, [0, 0.01, 12.5, 3.14], [0.001, -1, 1.005]),
    ({"type": "number"}, [0, 1.5, -2e-5, 1e300, 3], ["raw:1.", "raw:.5", "raw:01", "raw:1e"]),
    ({"type": "number", "minimum": 0}, [0, 0.0, 1.5, 7, 2e10], [-1, -0.5]),
    ({"type": "number", "exclusiveMinimum": 0}, [0.001, 3], [0, 0.0, -1]),
    (
        {"type": "number", "minimum": 1, "exclusiveMaximum": 3},
        [1, 1.0, 1.5, 2, 2.999],
        [0.99, 3, 3.0, -1, "raw:3e0", "raw:0.3E+1", "raw:30e-1"],
    ),
    ({"type": "number", "minimum": -2.0, "maximum": 0}, [-2, -1.5, 0, -0.0], [-2.01, 0.5]),
    ({"type": "string"}, ["", "a", 'é\n"\\/\t', "😀", "\u0000"], ['raw:"\x01"', "raw:'a'", 'raw:"\\x"']),
    ({"type": "string", "minLength": 2, "maxLength": 3}, ["ab", "abc", "\né", "😀😀"], ["a", "abcd", "😀"]),
    ({"type": "string", "pattern": "a+b"}, ["ab", "xaab", "abz"], ["ba", "a"]),
    ({"type": "string", "pattern": "^a+b$"}, ["ab", "aaab"], ["xab", "abz"]),
    ({"type": "string", "pattern": "^[a-z]*é"}, ["abé", "é\n"], ["Aé"]),
    ({"type": "string", "pattern": "^[a-z]+$", "maxLength": 3}, ["a", "abc"], ["", "abcd", "aB"]),
    (
        {"type": "string", "format": "ipv4", "pattern": "^10\\.", "minLength": 9},
        ["10.0.0.10"],
        ["10.0.0.1", "11.0.0.100"],
    ),
    ({"type": "string", "format": "date"}, ["2024-02-29"], ["2024-13-01", "24-01-01"]),
    (
        {"type": "string", "format": "date-time"},
        ["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.5+01:00"],
        ["2024-01-02"],
    ),
    ({"type": "string", "format": "uuid"}, ["123e4567-e89b-12d3-a456-426614174000"], ["123e4567"]),
    ({"type": "string", "format": "ipv4"}, ["192.168.0.1"], ["256.1.1.1", "1.2.3"]),
    ({"type": "string", "format": "ipv6"}, ["::1", "fe80::1:2", "1:2:3:4:5:6:7:8"], ["1:2:3"]),
    ({"type": "string", "format": "email"}, ["a.b@example.com"], ["a@", "@b.com"]),
    ({"type": "string", "format": "hostname"}, ["example.com", "a-b.c"], ["-a.com", "a..b"]),
    ({"type": "string", "format": "uri"}, ["https://x.org/a?b=c#d"], ["no scheme"]),
    ({"type": "string", "format": "time"}, ["12:30:00Z"], ["25:00:00Z"]),
    (
        {"const": {"a": [1, "x"], "b": None}},
        [{"a": [1, "x"], "b": None}],
        [{"a": [1, "x"]}, {"a": [1], "b": None}],
    ),
    ({"enum": [1, "a", None, [True]]}, [1, 1.0, "a", None, [True]], [2, "b", [False], True]),
    ({"enum": ["a", 1], "type": "string"}, ["a"], [1]),
    (True, [1, "x", {"a": [1, {"b": None}]}, [[[]]]], []),
    (False, [], [1, None, "x"]),
    (
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
            "required": ["a"],
            "additionalProperties": False,
        },
        [{"a": 1}, {"a": 1, "b": "x"}],
        [
            {},
            {"b": "x"},
            {"a": 1, "c": 2},
            {"b": "x", "a": 1},
            'raw:{"a":1,}',
            'raw:{,"a":1}',
            'raw:{"a":1 ,"b":"x"}',
        ],
    ),
    (
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}},
            "additionalProperties": False,
        },
        [{}, {"a": 1}, {"b": 1}, {"c": 1}, {"a": 1, "c": 2}, {"b": 1, "c": 2}, {"a": 1, "b": 2, "c": 3}],
        [{"c": 1, "a": 2}, 'raw:{"a":1,,"c":2}', "raw:{,}"],
    ),
    (
        {"type": "object", "properties": {"a": {"type": "integer"}}},
        [{}, {"a": 1}, {"a": 1, "z": [1]}, {"b": {"c": 2}}],
        [{"a": "x"}],
    ),
    ({"type": "object", "additionalProperties": {"type": "integer"}}, [{}, {"x": 1, "y": 2}], [{"x": "a"}]),
    (
        {"type": "object", "patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": False},
        [{"x-a": 1}],
        [{"y": 1}, {"x-a": "s"}],
    ),
    (
        {"type": "object", "patternProperties": {"^x-": {"type": "integer"}}},
        [{}, {"x-a": 1, "y": "s"}, {"yx-": []}],
        [{"x-a": "s"}, {"q": 1, "x-b": None}],
    ),
    (
        {
            "type": "object",
            "properties": {"id": {"type": "string"}},
            "patternProperties": {"n$": {"type": "number"}},
            "additionalProperties": {"type": "boolean"},
        },
        [{"id": "a", "len": 2, "ok": True}],
        [{"ok": 1}, {"len": True}, {"id": 1}],
    ),
    (
        {"type": "object", "minProperties": 1, "maxProperties": 2},
        [{"a": 1}, {"a": 1, "b": 2}],
        [{}, {"a": 1, "b": 2, "c": 3}],
    ),
    (
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "additionalProperties": False,
            "minProperties": 1,
        },
        [{"a": 1}, {"b": 1}, {"a": 1, "b": 2}],
        [{}],
    ),
    (
        {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 3},
        [[True], [True, False, True]],
        [[], [True] * 4, [1]],
    ),
    (
        {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
        [[], ["a"], ["a", 1]],
        [[1], ["a", "b"], ["a", 1, 2]],
    ),
    (
        {"type": "array", "items": [{"type": "string"}], "additionalItems": {"type": "integer"}},
        [["a"], ["a", 1, 2]],
        [["a", "b"]],
    ),
    (
        {"type": "array", "prefixItems": [{"type": "string"}], "minItems": 2},
        [["a", 1], ["a", None, 2]],
        [["a"], [1, 2]],
    ),
    ({"anyOf": [{"type": "string", "maxLength": 1}, {"type": "integer", "minimum": 5}]}, ["a", 5], ["ab", 4]),
    ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, ["a", 1], [1.5, None]),
    (
        {
            "oneOf": [
                {"properties": {"k": {"const": "a"}, "v": {"type": "integer"}}, "required": ["k"]},
                {"properties": {"k": {"const": "b"}, "v": {"type": "string"}}, "required": ["k"]},
            ],
            "type": "object",
        },
        [{"k": "a", "v": 1}, {"k": "b", "v": "s"}],
        [{"k": "a", "v": "s"}],
    ),
    (
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "integer"}}},
                {"required": ["a"]},
                {"properties": {"a": {"minimum": 3}}},
            ]
        },
        [{"a": 3}],
        [{}, {"a": 2}],
    ),
    ({"allOf": [{"type": ["integer", "string"]}, {"type": ["integer", "null"]}]}, [1], ["a", None]),
    (
        {"$defs": {"p": {"type": "integer", "minimum": 0}}, "type": "array", "items": {"$ref": "#/$defs/p"}},
        [[1, 2]],
        [[-1]],
    ),
    (
        {
            "definitions": {"a/b": {"type": "string"}, "c~d": {"type": "integer"}, "e f": {"type": "null"}},
            "prefixItems": [
                {"$ref": "#/definitions/a~1b"},
                {"$ref": "#/definitions/c~0d"},
                {"$ref": "#/definitions/e%20f"},
            ],
        },
        [["x", 1, None]],
        [[1]],
    ),
]


@pytest.mark.parametrize(("schema", "good", "bad"), CASES, ids=[json.dumps(c[0])[:50] for c in CASES])
def test_keyword(schema: Any, good: list, bad: list) -> None:
    _check(schema, good, bad)


def test_whitespace_modes() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "array"}}}
    strict = compile_json_schema(schema)
    loose = compile_json_schema(schema, whitespace="any")
    spaced = b'{ "a" :\n [ 1 ,\t2 ] }'
    assert loose.accepts(spaced) and not strict.accepts(spaced)
    assert not strict.accepts(b' {"a": []}') and not strict.accepts(b'{"a":  []}')
    assert strict.accepts(b'{"a":[1, 2]}') and loose.accepts(b'{"a":[1, 2]}')
    pretty = json.dumps({"a": [1, {"b": None}], "z": "x"}, indent=2).encode()
    assert loose.accepts(pretty) and not strict.accepts(pretty)
    with pytest.raises(ValueError):
        compile_json_schema(schema, whitespace="pretty")


def test_cached_and_string_input() -> None:
    s = {"type": "integer", "maximum": 5}
    assert compile_json_schema(s) is compile_json_schema(json.dumps(s))


def test_unsupported_pointer_and_lenient() -> None:
    s = {"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}}
    with pytest.raises(UnsupportedSchema) as e:
        compile_json_schema(s)
    assert e.value.keyword == "uniqueItems" and e.value.pointer == "/properties/a/uniqueItems"
    with pytest.warns(UserWarning, match="uniqueItems"):
        dfa = compile_json_schema(s, lenient=True)
    assert dfa.accepts(b'{"a": [1, 1]}')
    with pytest.raises(UnsupportedSchema) as e:
        # no exact complement: the patterns, not declared names, pick the schema of "a"
        compile_json_schema(
            {"anyOf": [{"patternProperties": {"^x": {}}, "not": {"required": ["a"], "minProperties": 2}}]}
        )
    assert e.value.pointer == "/anyOf/0/not/required"


def test_annotations_ignored() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dfa = compile_json_schema(
            {
                "title": "t",
                "description": "d",
                "default": 1,
                "$comment": "c",
                "type": "integer",
                "examples": [1],
            }
        )
    assert dfa.accepts(b"3")


def test_recursive_ref_compiles_to_a_grammar() -> None:
    from decc.grammars.contextfree.cfg_grammar import Grammar
    from decc.grammars.contextfree.earley import Recognizer
    from decc.grammars.contextfree.rtn import build_rtn

    s = {"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"}
    g = compile_json_schema(s)
    assert isinstance(g, Grammar)
    rec = Recognizer(build_rtn(g))
    deep = b"[" * 40 + b"]" * 40  # deeper than any unrolling would go
    for text in (b"[]", b"[[],[[[]]]]", b"[[], [[]]]", deep):
        assert rec.accepts(text), text
    for text in (b"[1]", b"[[]", b"[],[]", b"{}", deep + b"]"):
        assert not rec.accepts(text), text


def test_recursive_ref_token_level() -> None:
    s = {
        "type": "object",
        "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#"}}},
        "required": ["v"],
        "additionalProperties": False,
    }
    toks = [b'{"v":', b"1", b"2", b',"kids":[', b"]", b"}", b",", b"{", b'"v":', b"]}", b"x"]
    vocab = Vocabulary.from_token_bytes([*toks, None], eos_id=len(toks))
    c = json_schema(s, vocab)
    m = c.matcher()
    # {"v":1,"kids":[{"v":2,"kids":[{"v":1},{"v":2}]}]}
    for t in [0, 1, 3, 0, 2, 3, 0, 1, 5, 6, 7, 8, 2, 5, 9, 9]:
        assert t in m.allowed_token_ids().tolist(), t
        assert m.advance(t)
    assert m.is_accepting() and m.advance(len(toks))
    bad = c.matcher()
    assert bad.advance(0) and not bad.advance(10) and 10 not in bad.allowed_token_ids().tolist()


def test_recursive_ref_inside_allof_is_unsupported() -> None:
    s = {"$defs": {"n": {"allOf": [{"$ref": "#/$defs/n"}], "type": "array"}}, "$ref": "#/$defs/n"}
    with pytest.raises(UnsupportedSchema, match="recursive") as e:
        compile_json_schema(s)
    assert e.value.keyword == "$ref"


def test_overlapping_oneof() -> None:
    exact = compile_json_schema({"oneOf": [{"type": "integer"}, {"maximum": 0}]})  # json_keywords
    assert exact.accepts(b"1") and exact.accepts(b"-0.5") and not exact.accepts(b"-1")
    # flat branches are subtracted piece by piece (json_negation._structural): exact
    flat = {"patternProperties": {"^x": {}}, "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}
    pieces = compile_json_schema(flat)
    assert (
        pieces.accepts(b'{"a": 1}') and not pieces.accepts(b'{"a": 1, "b": 2}') and not pieces.accepts(b"1")
    )
    # patterns pick the schema of "a" and "b": no single key order to subtract minProperties in
    s = {
        "patternProperties": {"^x": {}},
        "oneOf": [{"required": ["a"]}, {"required": ["b"], "minProperties": 2}],
    }
    with pytest.raises(UnsupportedSchema) as e:
        compile_json_schema(s)
    assert e.value.keyword == "oneOf"
    with pytest.warns(UserWarning):
        assert compile_json_schema(s, lenient=True).accepts(b'{"a": 1, "b": 2}')


def test_invalid_schema() -> None:
    with pytest.raises(InvalidSchema) as e:
        compile_json_schema({"properties": {"a": {"type": "nope"}}})
    assert e.value.pointer.startswith("/properties/a/type")
    with pytest.raises(InvalidSchema):
        compile_json_schema({"minLength": -1})


# -- random walks through the DFA -------------------------------------------------------------------


def _walk(dfa: ByteDFA, rng: random.Random, limit: int = 400) -> bytes | None:
    state, out = dfa.start, bytearray()
    table = dfa.transitions
    while len(out) < limit:
        if dfa.accepting[state] and rng.random() < 0.3:
            return bytes(out)
        live = [b for b in range(256) if table[state, b] >= 0]
        if not live:
            return bytes(out)
        b = rng.choice(live)
        out.append(b)
        state = int(table[state, b])
    return None


WALK_SCHEMAS = [
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 1, "maximum": 999},
            "name": {"type": "string", "maxLength": 8},
            "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": 3},
        },
        "required": ["id"],
        "additionalProperties": False,
    },
    {
        "type": "array",
        "prefixItems": [{"type": "number", "minimum": 0}, {"type": "string", "format": "date"}],
        "items": {"type": "boolean"},
    },
    {
        "anyOf": [
            {"type": "integer", "multipleOf": 6},
            {"type": "string", "pattern": "^ab*$"},
            {"type": "null"},
        ]
    },
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "additionalProperties": {"type": "string"},
        "maxProperties": 3,
    },
    True,
]


@pytest.mark.parametrize("schema", WALK_SCHEMAS, ids=range(len(WALK_SCHEMAS)))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32 - 1))
def test_random_walks_validate(schema: Any, seed: int) -> None:
    text = _walk(compile_json_schema(schema), random.Random(seed))
    assume(text is not None)
    jsonschema.validate(json.loads(text.decode("utf-8")), schema if schema is not True else {})


# -- hypothesis-jsonschema instances are accepted ----------------------------------------------------

hjs = pytest.importorskip("hypothesis_jsonschema")

DRAW_SCHEMAS = [
    # (objects are left out: hypothesis-jsonschema 0.23 breaks on them with this hypothesis version)
    # draft-07 spelling of prefixItems: hypothesis-jsonschema does not know prefixItems
    {
        "type": "array",
        "items": [{"type": "integer", "minimum": -50, "maximum": 50}, {"type": "string", "maxLength": 5}],
        "additionalItems": {"type": "array", "items": {"type": "boolean"}, "maxItems": 4},
        "maxItems": 4,
    },
    {"type": "array", "items": {"type": "integer", "multipleOf": 4}, "maxItems": 5},
    {"type": "string", "minLength": 1, "maxLength": 6},
    {"anyOf": [{"type": "number", "minimum": 0}, {"enum": ["x", None]}]},
]


def _schema_order(schema: dict, v: Any) -> Any:
    if isinstance(v, dict):
        names = list(schema.get("properties", {}))
        return {k: v[k] for k in sorted(v, key=lambda k: names.index(k) if k in names else len(names))}
    return v


@pytest.mark.parametrize("schema", DRAW_SCHEMAS, ids=range(len(DRAW_SCHEMAS)))
def test_hypothesis_jsonschema_instances(schema: dict) -> None:
    dfa = compile_json_schema(schema)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(hjs.from_schema(schema))
    def check(inst: Any) -> None:
        inst = _schema_order(schema, inst)
        try:
            texts = _texts(inst)
            json.dumps(inst, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            assume(False)  # lone surrogates: not text a model can write
        for t in texts:
            assert dfa.accepts(t), t

    check()


# -- token level, on the real tokenizer --------------------------------------------------------------


@pytest.mark.model
def test_real_tokenizer_json_schema() -> None:
    from decc.grammars import Vocabulary, json_schema
    from decc.runtime.model import load_tokenizer, model_facts

    tok = load_tokenizer("default")
    size, eos_ids = model_facts("default")
    vocab = Vocabulary.from_tokenizer(tok, size=size, eos_ids=eos_ids)
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "email": {"type": "string", "format": "email"},
            "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    constraint = json_schema(schema, vocab)
    eos = next(iter(vocab.eos_ids))
    good = [{"name": "Ada", "age": 36}, {"name": "Bob é", "age": 150, "email": "b@x.org", "tags": ["a", "c"]}]
    for inst in good:
        for text in (json.dumps(inst), json.dumps(inst, separators=(",", ":"))):
            m = constraint.matcher()
            for t in tok.encode(text, add_special_tokens=False):
                assert m.advance(t), (text, t)
            assert m.is_accepting() and eos in m.allowed_token_ids()
    for bad in ({"name": "Ada"}, {"name": "Ada", "age": 151}, {"age": 3, "name": "x"}):
        m = constraint.matcher()
        ok = all(m.advance(t) for t in tok.encode(json.dumps(bad), add_special_tokens=False))
        assert not (ok and m.is_accepting()), bad


_BOUNDS = [0.01, 0.5, 1.5, 99.99, -0.25, -3.75, 0, 2, -1, 10.05, 0.001, 123.456]
_INTS = ["0", "1", "2", "10", "99", "123"]
_FRACS = ["", ".0", ".01", ".001", ".5", ".25", ".75", ".05", ".456", ".0001", ".99", ".999", ".050"]


@settings(max_examples=60, deadline=None)
@given(
    lo=st.sampled_from([None, *_BOUNDS]),
    hi=st.sampled_from([None, *_BOUNDS]),
    lo_x=st.booleans(),
    hi_x=st.booleans(),
    texts=st.lists(
        st.tuples(st.sampled_from(["", "-"]), st.sampled_from(_INTS), st.sampled_from(_FRACS)),
        min_size=10,
        max_size=10,
    ),
)
def test_decimal_bounds_are_exact(lo, hi, lo_x, hi_x, texts) -> None:  # type: ignore[no-untyped-def]
    """Non-integer minimum/maximum (exclusive too) against jsonschema, on short decimals that floats hold."""
    s: dict[str, Any] = {"type": "number"}
    if lo is not None:
        s["exclusiveMinimum" if lo_x else "minimum"] = lo
    if hi is not None:
        s["exclusiveMaximum" if hi_x else "maximum"] = hi
    dfa = compile_json_schema(s)
    validator = jsonschema.Draft202012Validator(s)
    for sign, i, f in texts:
        text = f"{sign}{i}{f}"
        assert dfa.accepts(text.encode()) == validator.is_valid(json.loads(text)), (s, text)


@settings(max_examples=60, deadline=None)
@given(
    step=st.sampled_from([0.01, 0.5, 0.25, 0.05, 1.5, 0.3, 2.5, 0.001, 7, 0.125]),
    lo=st.sampled_from([None, *_BOUNDS]),
    hi=st.sampled_from([None, *_BOUNDS]),
    texts=st.lists(
        st.tuples(st.sampled_from(["", "-"]), st.sampled_from(_INTS), st.sampled_from(_FRACS)),
        min_size=10,
        max_size=10,
    ),
)
def test_multiple_of_is_exact(step, lo, hi, texts) -> None:  # type: ignore[no-untyped-def]
    """Decimal multipleOf (with bounds too) against exact decimal arithmetic: jsonschema divides floats,
    which is inexact for steps like 0.01, so divisibility is checked with Decimal here."""
    s: dict[str, Any] = {"type": "number", "multipleOf": step}
    if lo is not None:
        s["minimum"] = lo
    if hi is not None:
        s["maximum"] = hi
    dfa = compile_json_schema(s)
    bounds = jsonschema.Draft202012Validator({k: v for k, v in s.items() if k != "multipleOf"})
    for sign, i, f in texts:
        text = f"{sign}{i}{f}"
        multiple = Decimal(text) % Decimal(repr(step)) == 0
        assert dfa.accepts(text.encode()) == (multiple and bounds.is_valid(json.loads(text))), (s, text)


def test_unicode_property_patterns() -> None:
    """ECMAScript `\\p{..}` in `pattern` passes the meta-schema check (Python's `re` lacks it) and is
    enforced; a pattern neither parser reads is still an invalid schema."""
    dfa = compile_json_schema({"type": "string", "pattern": r"^\p{Lu}\p{Ll}+$"})
    assert dfa.accepts('"Zoë"'.encode()) and dfa.accepts('"Łódź"'.encode())
    assert not dfa.accepts(b'"zoe"') and not dfa.accepts(b'"Z1"')
    with pytest.raises(InvalidSchema, match="'/pattern'"):
        compile_json_schema({"type": "string", "pattern": "[a"})


def test_unicode_property_pattern_properties_classify_declared_names() -> None:
    """A declared property also takes the schemas of the patternProperties its name matches, even when only
    decc's parser reads the pattern (`\\p{Lu}`: Python's `re` cannot)."""
    s = {
        "type": "object",
        "properties": {"Émile": {}, "zoe": {}},
        "patternProperties": {r"^\p{Lu}": {"type": "integer"}},
        "additionalProperties": False,
    }
    dfa = compile_json_schema(s)
    assert dfa.accepts('{"Émile": 3}'.encode()) and not dfa.accepts('{"Émile": "x"}'.encode())
    assert dfa.accepts(b'{"zoe": "x"}')


def test_a_recursive_ref_merged_into_allof_is_refused_not_an_endless_recursion() -> None:
    """MaskBench's resjson: `minProperties` beside an anyOf whose branch `$ref`s back into the definition.
    Each anyOf branch becomes allOf(rest, branch); the `$ref` chain must survive that merge so the second
    visit is seen as recursion (it was a RecursionError traceback)."""
    from decc.grammars import UnsupportedSchema, compile_json_schema

    member = {"minProperties": 1, "anyOf": [{"type": "string"}, {"$ref": "#/definitions/r"}]}
    schema = {
        "type": "object",
        "additionalProperties": member,
        "definitions": {"r": {"type": "object", "additionalProperties": member}},
    }
    with pytest.raises(UnsupportedSchema) as e:
        compile_json_schema(schema)
    assert e.value.keyword == "$ref" and e.value.pointer.endswith("/allOf/1/$ref")
