"""The engine choice's shortcut: whether a compiled schema recurses, and whether it calls the any rule, read
from its rule names (json_schema._recurses) against the walk over every body it spares (json_engine); and
the grammar form that keeps an object's first masks cheap (its extra keys in a rule of their own)."""

from __future__ import annotations

import importlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars.json.json_engine import call_graph, choose, recursive
from decc.grammars.limits import DEFAULT_LIMITS

js = importlib.import_module("decc.grammars.json.json_schema")

_LEAVES = [
    {"type": "integer"},
    {"type": "string", "maxLength": 40},
    {"enum": ["x", 1, None]},
    True,
    {},
    {"$ref": "#/$defs/a"},
    {"$ref": "#/$defs/b"},
    {"$ref": "#"},
]


def _schemas() -> st.SearchStrategy:
    """Objects, arrays and unions over leaves that refer to two definitions and to the root, so that some
    schemas recurse (through one definition, both, or the root) and some only share definitions."""
    tree = st.recursive(
        st.sampled_from(_LEAVES),
        lambda kids: st.one_of(
            st.builds(
                lambda props, extra: {"type": "object", "properties": props, "additionalProperties": extra},
                st.dictionaries(st.sampled_from(["p", "q", "r"]), kids, max_size=3),
                st.one_of(st.just(False), kids),
            ),
            st.builds(lambda item: {"type": "array", "items": item}, kids),
            st.builds(lambda alts: {"anyOf": alts}, st.lists(kids, min_size=1, max_size=3)),
        ),
        max_leaves=6,
    )
    return st.builds(
        lambda root, a, b: {**root, "$defs": {"a": a, "b": b}} if isinstance(root, dict) else root,
        tree,
        tree,
        tree,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_schemas())
def test_shortcut_matches_the_call_graph(schema: object) -> None:
    try:
        text = js._canonical(schema)
        grammar = js._rules(text, False, "compact-or-default", DEFAULT_LIMITS)[0]
    except js.DeccError:
        return
    walked = recursive(grammar, js.ANY_RULE)
    assert js._recurses(grammar) == walked
    calls_any = any(js.ANY_RULE in calls for calls in call_graph(grammar).values())
    assert any(name == js.ANY_RULE for name, _ in grammar.rules) == calls_any
    # and the choice it feeds is the one made from the walk alone
    full = choose(grammar, js.ANY_RULE, js._counted_size)
    assert js._choice.__wrapped__(text, False, "compact-or-default", DEFAULT_LIMITS).engine == full.engine


def _leaves(node: object) -> list[object]:
    kids = getattr(node, "items", None)
    if kids is not None:
        return [leaf for k in kids for leaf in _leaves(k)]
    item = getattr(node, "item", None)
    return _leaves(item) if item is not None else [node]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["id", "name", "é", 'a"b', "x"]), min_size=1, max_size=4, unique=True))
def test_extras_are_a_rule_of_their_own(names: list[str]) -> None:
    """An object's undeclared keys (every string but its names) are not in the object's own rule, whose
    automaton the first masks build: they sit in a rule the object calls after a comma."""
    from decc.grammars.contextfree.cfg_grammar import Call
    from decc.grammars.regexes.regex_ast import Automaton

    schema = {"type": "object", "properties": {n: {"type": "integer"} for n in names}}
    grammar = js._rules(js._canonical(schema), False, "compact-or-default", DEFAULT_LIMITS)[0]
    rules = dict(grammar.rules)
    (top,) = [leaf.rule for leaf in _leaves(rules["start"]) if isinstance(leaf, Call)]
    assert not any(isinstance(leaf, Automaton) for leaf in _leaves(rules[top]))
    keyed = [name for name, body in rules.items() if any(isinstance(x, Automaton) for x in _leaves(body))]
    assert len(keyed) == 1 and any(isinstance(x, Call) and x.rule == keyed[0] for x in _leaves(rules[top]))
    # and the keys it takes are the other strings: a declared name again is no extra key
    dfa = js.compile_json_schema(schema)
    member = json.dumps(names[0]) + ":1"
    assert dfa.accepts(("{" + member + ',"zz":[1]}').encode())
    assert not dfa.accepts(("{" + member + "," + member + "}").encode())
