"""`productive_rules` (memoized by node, across rounds) and `rule_summaries` (one round when that is
already the fixpoint) against the plain fixpoints they replaced."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from decc.grammars.contextfree.cfg_grammar import Call, productive_rules
from decc.grammars.contextfree.rtn import rule_summaries
from decc.grammars.regexes.regex_ast import Alt, CharSet, Concat, Node, Repeat

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["r0", "r1", "r2", "r3", "r4"]
LEAVES = st.sampled_from([CharSet(((0x61, 0x61),)), CharSet(()), Concat(()), Alt(())]) | st.sampled_from(
    [Call(n) for n in NAMES]
)


def _body(shared: list[Node]) -> st.SearchStrategy[Node]:
    return st.recursive(
        LEAVES | st.sampled_from(shared),
        lambda kids: (
            st.lists(kids, min_size=1, max_size=3).map(lambda xs: Concat(tuple(xs)))
            | st.lists(kids, min_size=1, max_size=3).map(lambda xs: Alt(tuple(xs)))
            | st.tuples(kids, st.integers(0, 2)).map(lambda t: Repeat(t[0], t[1], None))
        ),
        max_leaves=8,
    )


def _plain(rules: dict[str, Node]) -> set[str]:
    """The fixpoint walked afresh each round (the oracle)."""

    def derives(node: Node, good: set[str]) -> bool:
        if isinstance(node, Call):
            return node.rule in good
        if isinstance(node, CharSet):
            return bool(node.ranges)
        if isinstance(node, Repeat):
            return node.min == 0 or derives(node.item, good)
        if isinstance(node, Concat):
            return all(derives(i, good) for i in node.items)
        return any(derives(i, good) for i in node.items)

    good: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, body in rules.items():
            if name not in good and derives(body, good):
                good.add(name)
                changed = True
    return good


@SETTINGS
@given(data=st.data())
def test_productive_rules_match_the_plain_fixpoint(data: st.DataObject) -> None:
    """Subtrees shared between rules (as hash-consed schema members are) get one answer per round, and
    the positive ones are kept across rounds: the same rules come out productive."""
    shared = [Concat((Call("r1"), Call("r3"))), Alt((Call("r4"), CharSet(())))]
    n = data.draw(st.integers(1, len(NAMES)))
    rules = {NAMES[i]: data.draw(_body(shared)) for i in range(n)}
    rules.update({name: Alt(()) for name in NAMES[n:]})  # every call has a rule
    assert productive_rules(rules) == _plain(rules)


@SETTINGS
@given(data=st.data())
def test_one_round_of_first_bytes_when_no_rule_is_read_early(data: st.DataObject) -> None:
    """`rule_summaries` stops after a round that read no rule before computing it; the same nullability
    and first bytes as rounds until nothing changes (`confirm=True`), recursive rules included."""
    shared = [
        Concat((Call("r1"), Call("r3"))),
        Alt((Call("r4"), CharSet(()))),
        Concat((CharSet(((0x62, 0x63),)),)),
    ]
    bodies = tuple(data.draw(_body(shared)) for _ in NAMES)
    index = {name: i for i, name in enumerate(NAMES)}
    assert rule_summaries(bodies, index) == rule_summaries(bodies, index, confirm=True)
