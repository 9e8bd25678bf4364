"""The shortcuts of the JSON schema compile path against the plain definitions they stand for.

Oracles: `nfa.check_nesting` for the nesting `_lexemes` measures in its own walk (shared subtrees met at
different depths included); `char` per character and both `json.dumps` spellings for the literal
builders; a walk of every node for `calls_in`, which skips subtrees known to hold no call.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.grammars.contextfree.cfg_grammar import Call, Grammar
from decc.grammars.errors import GrammarLimitError
from decc.grammars.json import json_schema as js
from decc.grammars.json.json_engine import calls_in
from decc.grammars.json.json_numbers import alt, lit
from decc.grammars.limits import DEFAULT_LIMITS
from decc.grammars.regexes.nfa import MAX_NESTING, check_nesting, nesting
from decc.grammars.regexes.regex_ast import Alt, CharSet, Concat, Repeat, char


def _chain(depth: int, leaf: object) -> object:
    """`leaf` wrapped in `depth - 1` alternating Concat/Repeat levels (nesting() == depth for a leaf)."""
    node = leaf
    for i in range(depth - 1):
        node = Concat((node, char(0x61))) if i % 2 else Repeat(node, 0, 1)
    return node


@settings(max_examples=60, deadline=None)
@given(
    shared_depth=st.integers(1, MAX_NESTING + 20),
    outer=st.integers(1, 60),
    shallow_first=st.booleans(),
)
def test_lexemes_refuses_exactly_what_check_nesting_refuses(
    shared_depth: int, outer: int, shallow_first: bool
) -> None:
    shared = _chain(shared_depth, char(0x62))
    deep = _chain(outer, shared)  # the shared subtree again, `outer - 1` levels further down
    body = Alt((shared, deep) if shallow_first else (deep, shared))
    grammar = Grammar((("start", body), ("other", Concat((Call("start"), char(0x63))))), "test")
    try:
        check_nesting(body)
    except GrammarLimitError as e:
        with pytest.raises(GrammarLimitError) as got:
            js._lexemes(grammar, DEFAULT_LIMITS)
        assert str(got.value) == str(e)
        assert nesting(body) > MAX_NESTING
    else:
        out = js._lexemes(grammar, DEFAULT_LIMITS)
        assert out.rules == grammar.rules  # nothing to rewrite: the bodies themselves


def test_lexemes_reports_the_first_rule_nested_too_deep() -> None:
    ok = _chain(10, char(0x61))
    deep1 = _chain(MAX_NESTING + 5, char(0x62))
    deep2 = _chain(MAX_NESTING + 40, char(0x63))
    grammar = Grammar((("start", ok), ("r1", deep2), ("r2", deep1)), "test")
    with pytest.raises(GrammarLimitError, match=f"{MAX_NESTING + 40} levels"):
        js._lexemes(grammar, DEFAULT_LIMITS)


@given(st.text(max_size=12))
def test_literals_are_both_json_spellings(s: str) -> None:
    assert lit(s) == (char(ord(s)) if len(s) == 1 else Concat(tuple(char(ord(c)) for c in s)))
    spellings = [json.dumps(s), json.dumps(s, ensure_ascii=False)]
    expected = list(dict.fromkeys(Concat(tuple(char(ord(c)) for c in t)) for t in spellings))
    got = js._string_literal(s)
    assert (list(got.items) if isinstance(got, Alt) else [got]) == expected
    bare = js._string_literal(s, quotes=False)
    assert bare == alt(*(lit(t[1:-1]) for t in spellings))


def _all_calls(node: object) -> set[str]:
    if isinstance(node, Call):
        return {node.rule}
    if isinstance(node, Concat | Alt):
        return set().union(*(_all_calls(i) for i in node.items))
    if isinstance(node, Repeat):
        return _all_calls(node.item)
    return set()


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string"}, "b": {"$ref": "#"}}},
        {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}}}},
        {"type": "object", "properties": {f"p{i}": {"type": "object"} for i in range(12)}},
        {"anyOf": [{"type": "string", "maxLength": 40}, {"type": "object", "additionalProperties": True}]},
    ],
)
def test_calls_in_finds_every_call(schema: dict) -> None:
    grammar = js._rules(js._canonical(schema), False, "compact-or-default", DEFAULT_LIMITS)[0]
    for _, body in grammar.rules:
        assert calls_in(body) == _all_calls(body)
    lexemes = js._lexemes(grammar, DEFAULT_LIMITS)
    for _, body in lexemes.rules:
        if not isinstance(body, CharSet):
            assert calls_in(body) == _all_calls(body)


def test_the_shared_counted_body_is_the_plain_product() -> None:
    """Long maxLength strings without pattern or format share one body, built as string_product builds it."""
    assert js._any_counted_body() == js.string_product.__wrapped__((), js.NOTHING)
    grammar = js._rules(
        js._canonical({"type": "string", "maxLength": 40}), False, "compact-or-default", DEFAULT_LIMITS
    )[0]
    counted = [x for x in grammar.rules[0][1].items if isinstance(x, js.CountedBody)]
    assert [(c.auto, c.boundary, c.lo, c.hi) for c in counted] == [(*js._any_counted_body(), 0, 40)]
