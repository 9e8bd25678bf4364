"""A grammar rule's DFA (rtn.rule_dfa: byte edges plus call edges, trimmed, not minimized).

Oracle: Python's `re` on the same body written as a regex, each call of rule r a private-use character,
over random symbol strings; and, independently of the builder, every state of the result must reach an
accepting state (what the Earley recognizer relies on: every item viable).
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from decc.grammars.contextfree.cfg_grammar import EMPTY_LANGUAGE, Call
from decc.grammars.contextfree.rtn import rule_dfa
from decc.grammars.limits import DEFAULT_LIMITS
from decc.grammars.regexes.regex_ast import Alt, Automaton, CharSet, Concat, Repeat

CHARS = "ab,é"  # ASCII (chained straight off the previous part) and one two-byte UTF-8 character
RULES = ("x", "y")
INDEX = {name: i for i, name in enumerate(RULES)}
CALL_CHAR = {name: chr(0xE000 + i) for i, name in enumerate(RULES)}
SURROGATES = CharSet(((0xD800, 0xDFFF),))  # no UTF-8 encoding: an empty language, like CharSet(())


def _set(chars: str) -> CharSet:
    return CharSet(tuple((ord(c), ord(c)) for c in sorted(set(chars))))


leaves = st.one_of(
    st.text(CHARS, min_size=1, max_size=2).map(_set),
    st.sampled_from([Call(r) for r in RULES]),
    st.just(CharSet(())),
    st.just(SURROGATES),
    st.just(EMPTY_LANGUAGE),
    st.just(Concat(())),
)


def extend_bodies(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.lists(children, min_size=1, max_size=4).map(lambda xs: Concat(tuple(xs))),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: Alt(tuple(xs))),
        st.tuples(children, st.integers(0, 2), st.sampled_from([None, 0, 1, 2])).map(
            lambda t: Repeat(t[0], t[1], None if t[2] is None else t[1] + t[2])
        ),
    )


bodies = st.recursive(leaves, extend_bodies, max_leaves=10)


def _regex(node: object) -> str:
    if isinstance(node, Call):
        return re.escape(CALL_CHAR[node.rule])
    if node == SURROGATES:
        return "(?!)"
    if isinstance(node, CharSet):
        return "[" + "".join(re.escape(chr(lo)) for lo, _ in node.ranges) + "]" if node.ranges else "(?!)"
    if isinstance(node, Concat):
        return "(?:" + "".join(_regex(i) for i in node.items) + ")"
    if isinstance(node, Alt):
        return "(?:" + "|".join(_regex(i) for i in node.items) + ")" if node.items else "(?!)"
    assert isinstance(node, Repeat)
    hi = "" if node.max is None else str(node.max)
    return f"(?:{_regex(node.item)}){{{node.min},{hi}}}"


def _run(table, accepting, calls, symbols: str) -> bool:
    state = 0 if len(accepting) else -1
    for sym in symbols:
        if state < 0:
            return False
        if sym in CALL_CHAR.values():
            rule = ord(sym) - 0xE000
            state = next((t for c, t in calls[state] if c == rule), -1)
            continue
        for byte in sym.encode():
            state = int(table[state, byte]) if state >= 0 else -1
    return state >= 0 and bool(accepting[state])


@settings(max_examples=300, deadline=None)
@given(bodies, st.lists(st.text(CHARS + "".join(CALL_CHAR.values()), max_size=6), max_size=30))
def test_rule_dfa_accepts_what_re_accepts_and_every_state_is_viable(body, samples: list[str]) -> None:
    table, accepting, calls = rule_dfa(body, INDEX, DEFAULT_LIMITS)
    pattern = re.compile(_regex(body), re.DOTALL)
    for s in samples:
        assert _run(table, accepting, calls, s) == bool(pattern.fullmatch(s)), (body, s)
    assert _viable(table, accepting, calls)


# Precompiled automata as leaves (JSON keys and numbers are such nodes): random ones over 'a' and 'b', some
# with states that cannot reach acceptance (the rule DFA must then be trimmed) and some without.
automata = st.integers(1, 3).flatmap(
    lambda n: st.builds(
        lambda edges, acc: Automaton(n, 0, frozenset(acc), tuple(edges)),
        st.lists(
            st.tuples(
                st.integers(0, n - 1), st.sampled_from([(97, 97), (98, 98), (97, 98)]), st.integers(0, n - 1)
            ).map(lambda e: (e[0], e[1][0], e[1][1], e[2])),
            max_size=6,
        ),
        st.frozensets(st.integers(0, n - 1), max_size=n),
    )
)
bodies_with_automata = st.recursive(st.one_of(leaves, automata), extend_bodies, max_leaves=8)


def _units(text: str) -> list[object]:
    """A sample as the rule DFA reads it: a call character is one symbol, any other character its bytes."""
    out: list[object] = []
    for ch in text:
        out += [("call", ord(ch) - 0xE000)] if ch in CALL_CHAR.values() else list(ch.encode())
    return out


def _ends(node: object, units: list[object], i: int) -> set[int]:
    """Where a match of `node` starting at `i` can end (a direct backtracking reading of the body)."""
    if isinstance(node, Call):
        return {i + 1} if i < len(units) and units[i] == ("call", INDEX[node.rule]) else set()
    if isinstance(node, CharSet):
        out = set()
        for k in range(1, 5):
            piece = units[i : i + k]
            if len(piece) == k and all(isinstance(u, int) for u in piece):
                try:
                    ch = bytes(piece).decode()  # type: ignore[arg-type]
                except UnicodeDecodeError:
                    continue
                if len(ch) == 1 and any(lo <= ord(ch) <= hi for lo, hi in node.ranges):
                    out.add(i + k)
        return out
    if isinstance(node, Automaton):
        out, states = set(), {node.start}
        for j in range(i, len(units) + 1):
            if states & node.accepting:
                out.add(j)
            if j == len(units):
                break
            states = {d for s, lo, hi, d in node.edges if s in states and units[j] in range(lo, hi + 1)}
        return out
    if isinstance(node, Concat):
        at = {i}
        for item in node.items:
            at = {e for p in at for e in _ends(item, units, p)}
        return at
    if isinstance(node, Alt):
        return {e for item in node.items for e in _ends(item, units, i)}
    assert isinstance(node, Repeat)
    out, at, count = set(), {i}, 0
    while at and (node.max is None or count <= node.max):
        if count >= node.min:
            out |= at
        if node.max is not None and count == node.max:
            break
        nxt = {e for p in at for e in _ends(node.item, units, p)}
        at, count = nxt - (at if count >= node.min else set()), count + 1  # (a nullable item cannot loop)
    return out


@settings(max_examples=300, deadline=None)
@given(bodies_with_automata, st.lists(st.text("ab" + "".join(CALL_CHAR.values()), max_size=6), max_size=30))
def test_rule_dfa_with_automata_matches_a_direct_reading_and_every_state_is_viable(body, samples) -> None:
    table, accepting, calls = rule_dfa(body, INDEX, DEFAULT_LIMITS)
    for s in samples:
        units = _units(s)
        assert _run(table, accepting, calls, s) == (len(units) in _ends(body, units, 0)), (body, s)
    assert _viable(table, accepting, calls)


def _viable(table, accepting, calls) -> bool:
    """Every state reaches an accepting one (a backward search over bytes and calls)."""
    n = len(accepting)
    alive = {s for s in range(n) if accepting[s]}
    grew = True
    while grew:
        grew = False
        for s in range(n):
            if s not in alive and (
                any(int(t) in alive for t in table[s] if t >= 0) or any(t in alive for _, t in calls[s])
            ):
                alive.add(s)
                grew = True
    return len(alive) == n


def _equivalent(x: tuple, y: tuple) -> bool:
    """Two trimmed rule DFAs read the same language of bytes and calls (a walk over pairs of states)."""
    (ta, aa, ca), (tb, ab, cb) = x, y
    if not len(aa) or not len(ab):
        return len(aa) == len(ab)
    seen = {(0, 0)}
    todo = [(0, 0)]
    while todo:
        p, q = todo.pop()
        if bool(aa[p]) != bool(ab[q]) or dict(ca[p]).keys() != dict(cb[q]).keys():
            return False
        pairs = [(int(s), int(t)) for s, t in zip(ta[p], tb[q], strict=True)]
        if any((s < 0) != (t < 0) for s, t in pairs):
            return False
        pairs += [(t, dict(cb[q])[c]) for c, t in ca[p]]
        for pair in pairs:
            if pair[0] >= 0 and pair not in seen:
                seen.add(pair)
                todo.append(pair)
    return True


@st.composite
def shared_tails(draw: st.DrawFn) -> object:
    """Bodies whose subtrees recur (the same objects) before the same rest, as an object's members do."""
    a, b, g = (draw(bodies_with_automata) for _ in range(3))
    templates = [
        Alt((Concat((a, g)), Concat((b, g)))),
        Concat((Alt((Concat((a, g)), Concat((Repeat(Concat((b, a)), 0, 1), g)))), b)),
        Concat((Repeat(Concat((a, g)), 0, None), Alt((g, Concat((b, g)))))),
        Alt((Concat((a, Repeat(g, 1, 3))), Concat((b, Repeat(g, 0, 2))), g)),
    ]
    return draw(st.sampled_from(templates))


@settings(max_examples=300, deadline=None)
@given(st.one_of(bodies_with_automata, shared_tails()))
def test_shared_tails_give_the_language_of_thompsons_construction(body) -> None:
    """The tail-sharing NFA (`_TailBuilder`) against Thompson's (`thompson=True`, the former builder):
    the same language of bytes and calls, and every state still viable."""
    fast = rule_dfa(body, INDEX, DEFAULT_LIMITS)
    slow = rule_dfa(body, INDEX, DEFAULT_LIMITS, thompson=True)
    assert _equivalent(fast, slow)
    assert _viable(*fast)


def test_a_rule_that_only_calls_another_is_built_as_its_dfa_would_be() -> None:
    """RTN._build takes a body that is one call (a schema's start rule) without an NFA: same states."""
    import numpy as np

    from decc.grammars.contextfree.cfg_grammar import Grammar
    from decc.grammars.contextfree.rtn import RTN

    rtn = RTN(Grammar((("start", Call("x")), ("x", Concat((CharSet(((97, 98),)),)))), ""))
    table, accepting, calls = rule_dfa(Call("x"), rtn.index, DEFAULT_LIMITS)
    lo, hi = rtn.span(0)
    assert np.array_equal(rtn.table[lo:hi], np.where(table >= 0, table + lo, -1))
    assert rtn.accepting[lo:hi].tolist() == accepting.tolist()
    assert rtn.calls[lo:hi] == [tuple((c, lo + n) for c, n in edges) for edges in calls]


def test_a_call_rule_built_after_others_is_offset_as_its_dfa_would_be() -> None:
    """The same past the first states: a rule that only calls another, built after two others (its call
    edge and dead rows offset by its first state)."""
    import numpy as np

    from decc.grammars.contextfree.cfg_grammar import Grammar
    from decc.grammars.contextfree.rtn import RTN

    rules = (("start", Concat((CharSet(((97, 97),)), Call("y")))), ("x", Concat((CharSet(((98, 99),)),))))
    rtn = RTN(Grammar((*rules, ("y", Call("x"))), ""))
    rtn.enter(1)
    rtn.enter(2)
    table, accepting, calls = rule_dfa(Call("x"), rtn.index, DEFAULT_LIMITS)
    lo, hi = rtn.span(2)
    assert lo > 0 and hi == lo + 2
    assert np.array_equal(rtn.table[lo:hi], np.where(table >= 0, table + lo, -1))
    assert rtn.accepting[lo:hi].tolist() == accepting.tolist()
    assert rtn.calls[lo:hi] == [tuple((c, lo + n) for c, n in edges) for edges in calls]
    assert rtn.has_bytes[lo:hi] == [False, False] and rtn.rule_at[lo:hi] == [2, 2]
