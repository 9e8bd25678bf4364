"""The engine choice's shortcut: whether a compiled schema recurses, and whether it calls the any rule, read
from its rule names (json_schema._recurses) against the walk over every body it spares (json_engine)."""

from __future__ import annotations

import importlib

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
