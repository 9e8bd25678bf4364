"""Size estimates and nesting depths kept on the nodes: always what a fresh walk and the builder give."""

from __future__ import annotations

import copy

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from decc.grammars.contextfree.cfg_grammar import Call
from decc.grammars.contextfree.rtn import rule_states
from decc.grammars.limits import DEFAULT_LIMITS
from decc.grammars.regexes.nfa import build_nfa, estimate_states, nesting
from decc.grammars.regexes.regex_ast import Alt, CharSet, Concat, Node, Repeat

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LEAVES = st.sampled_from([CharSet(((0x61, 0x61),)), CharSet(((0x30, 0x39), (0xE9, 0xE9))), Concat(())])


def _tree(leaf: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.recursive(
        leaf,
        lambda kids: (
            st.lists(kids, min_size=1, max_size=3).map(lambda xs: Concat(tuple(xs)))
            | st.lists(kids, min_size=1, max_size=3).map(lambda xs: Alt(tuple(xs)))
            | st.tuples(kids, st.integers(0, 2), st.sampled_from([None, 0, 1, 3])).map(
                lambda t: Repeat(t[0], t[1], None if t[2] is None else max(t[1], t[2]))
            )
        ),
        max_leaves=12,
    )


def _depth(node: Node) -> int:
    kids = (node.item,) if isinstance(node, Repeat) else node.items if isinstance(node, Concat | Alt) else ()
    return 1 + max((_depth(k) for k in kids), default=0)


@SETTINGS
@given(a=_tree(LEAVES), b=_tree(LEAVES))
def test_kept_estimates_match_the_builder(a: Node, b: Node) -> None:
    """Subtrees sized (and depth-checked) once, then met again inside larger trees, keep their values:
    the estimate still equals the states the builder makes, the depth a plain recursive walk."""
    for node in (a, b, Concat((a, b, a)), Alt((Repeat(a, 1, 2), b)), a, copy.deepcopy(Concat((b, a)))):
        assert estimate_states(node) == len(build_nfa(node, DEFAULT_LIMITS).eps)
        assert nesting(node) == _depth(node)


def test_a_subtree_with_other_nodes_is_sized_per_call() -> None:
    """A size given by `other` (a grammar call counts differently per caller) is never kept on the node."""
    marker = object()
    node = Concat((CharSet(((0x61, 0x61),)), marker))  # type: ignore[arg-type]
    assert estimate_states(node, lambda n: 5) == 2 + 5
    assert estimate_states(node, lambda n: 7) == 2 + 7


_CALLS = st.sampled_from([Call("a"), Call("b")])


@SETTINGS
@given(a=_tree(LEAVES | _CALLS), b=_tree(LEAVES | _CALLS))
def test_kept_rule_sizes_match_a_fresh_walk(a: Node, b: Node) -> None:
    """`rule_states` keeps sizes on the nodes, calls and all: always the size a fresh `estimate_states`
    walk gives with a call counting as two states, whatever was sized (either way) before."""

    def fresh(node: Node) -> int:
        return estimate_states(copy.deepcopy(node), lambda n: 2 if isinstance(n, Call) else 1 // 0)

    estimate_states(Concat((b, b)), lambda n: 2)  # plain parts of b kept by the other walk first
    for node in (a, b, Concat((a, b, a)), Alt((Repeat(a, 1, 2), b)), a, Repeat(Concat((b, a)), 0, 3)):
        assert rule_states(node) == fresh(node)


def test_a_rule_size_with_counted_leaves_is_kept_for_counted_callers_only() -> None:
    """A size that `counted` gave a leaf (a JSON schema's counted string) is kept, but a caller without
    `counted` (the RTN, where no such leaf may be) still gets the TypeError a fresh walk gives."""
    marker = Counted()
    node = Concat((CharSet(((0x61, 0x61),)), Call("r"), marker))  # type: ignore[arg-type]
    assert rule_states(node, lambda n: 5) == 2 + 2 + 5
    assert rule_states(node, lambda n: 5) == 2 + 2 + 5
    with pytest.raises(TypeError):
        rule_states(node)


class Counted:
    """A leaf only a `counted` sizer knows."""
