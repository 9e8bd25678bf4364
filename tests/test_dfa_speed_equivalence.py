"""The fast DFA paths (hashed Moore minimization, run-based subset construction) against plain ones."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.grammars.automata import dfa as dfa_mod
from decc.grammars.automata.dfa import compile_regex, minimize_table, moore_exact, moore_hashed
from decc.grammars.limits import DEFAULT_LIMITS
from decc.grammars.regexes.nfa import NFA


def _random_dfa(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    trans = rng.integers(-1, n, size=(n, k))
    trans[rng.random((n, k)) < 0.4] = -1
    accepting = rng.random(n) < 0.3
    labels = np.where(rng.random(n) < 0.2, rng.integers(1, 3, size=n), 0)
    return trans, accepting, labels


def _table(trans: np.ndarray) -> np.ndarray:
    n, k = trans.shape
    return np.vstack([np.where(trans < 0, n, trans), np.full((1, k), n)])


@pytest.mark.parametrize("seed", range(40))
def test_hashed_moore_matches_exact_refinement(seed: int) -> None:
    rng = np.random.default_rng(seed)
    trans, accepting, labels = _random_dfa(rng, int(rng.integers(1, 60)), int(rng.integers(1, 6)))
    key = np.append(accepting, False).astype(np.int64) + np.append(labels, 0) * 2
    block, first = moore_hashed(trans, key)
    exact, exact_first = moore_exact(_table(trans), key)
    # Same partition: the pairs (hashed block, exact block) are one-to-one, and the same lowest members.
    assert len(set(zip(block.tolist(), exact.tolist(), strict=True))) == len(first) == len(exact_first)
    assert sorted(first.tolist()) == sorted(exact_first.tolist())


@pytest.mark.parametrize("k", [257, 258, 300])
def test_hashed_moore_takes_more_columns_than_bytes(k: int) -> None:
    """A grammar rule's table has a column per byte class and one per callee: more than 258 at times
    (MaskBench o9981 crashed with an IndexError here)."""
    rng = np.random.default_rng(k)
    trans, accepting, labels = _random_dfa(rng, 40, k)
    key = np.append(accepting, False).astype(np.int64) + np.append(labels, 0) * 2
    block, first = moore_hashed(trans, key)
    exact, exact_first = moore_exact(_table(trans), key)
    assert len(set(zip(block.tolist(), exact.tolist(), strict=True))) == len(first) == len(exact_first)


def test_minimize_falls_back_when_the_hash_merges_too_much(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        trans, accepting, labels = _random_dfa(rng, 30, 3)
        reps: list[int] = []
        expected = minimize_table(trans, accepting, labels, reps)
        with monkeypatch.context() as m:  # a "collision" that lumps every state together
            m.setattr(dfa_mod, "moore_hashed", lambda t, key: (np.zeros(len(key), np.int64), np.array([0])))
            reps2: list[int] = []
            got = minimize_table(trans, accepting, labels, reps2)
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
        assert reps2 == reps


@pytest.mark.parametrize(
    "pattern",
    [r"[a-m]x|[h-z]y", r"(a|[a-c]b|[b-d]c)*d", r"[\x00-\x7f]*z[a-y]|[^z]+", r"(ab|a[b-f]|[a-c]f)+", r""],
)
def test_overlapping_runs_determinize_like_re(pattern: str) -> None:
    d = compile_regex(pattern)
    rng = np.random.default_rng(0)
    alphabet = list(b"abcdefhxyz\x00\x7f")
    for _ in range(300):
        text = bytes(rng.choice(alphabet, size=int(rng.integers(0, 7))).tolist())
        expected = re.fullmatch(pattern.encode(), text) is not None
        assert d.accepts(text) == expected, (pattern, text)


# Random NFAs whose runs coincide, nest or partly overlap (every row path of subset_construction: one state,
# disjoint runs of several, coinciding ranges, general overlaps) against a plain class-by-class construction.
_CLASSES = 7  # bytes 0..5 one class each, every other byte the seventh
_BYTE_CLASS = np.minimum(np.arange(256), _CLASSES - 1)


@st.composite
def _nfas(draw: st.DrawFn) -> NFA:
    n = draw(st.integers(1, 7))
    state = st.integers(0, n - 1)
    ranges = st.sampled_from([(0, 0), (1, 1), (0, 1), (2, 4), (3, 3), (1, 5), (0, 5), (4, 5)])
    edges = [
        draw(st.lists(st.tuples(ranges, state).map(lambda e: (*e[0], e[1])), max_size=3)) for _ in range(n)
    ]
    eps = [draw(st.lists(state, max_size=2)) for _ in range(n)]
    return NFA(eps, edges, draw(state), draw(state))


def _plain_subsets(nfa: NFA) -> tuple[list[list[int]], list[bool], list[frozenset[int]]]:
    important = [bool(e) or q == nfa.accept for q, e in enumerate(nfa.edges)]

    def closure(q: int) -> frozenset[int]:
        seen, stack = {q}, [q]
        while stack:
            for u in nfa.eps[stack.pop()]:
                if u not in seen:
                    seen.add(u)
                    stack.append(u)
        return frozenset(u for u in seen if important[u])

    sets = [closure(nfa.start)]
    ids = {sets[0]: 0}
    rows = []
    for subset in sets:  # grows while walked
        row = []
        for c in range(_CLASSES):
            hit = [closure(t) for q in sorted(subset) for lo, hi, t in nfa.edges[q] if lo <= c <= hi]
            target = frozenset().union(*hit)
            if target and target not in ids:
                ids[target] = len(sets)
                sets.append(target)
            row.append(ids[target] if target else -1)
        rows.append(row)
    return rows, [nfa.accept in s for s in sets], sets


def _canonical(
    rows: list[list[int]], sets: list[frozenset[int]]
) -> tuple[list[list[int]], list[frozenset[int]]]:
    """States renumbered breadth-first from the start, classes in order (numbering-independent form)."""
    order, number = [0], {0: 0}
    for s in order:
        for t in rows[s]:
            if t >= 0 and t not in number:
                number[t] = len(order)
                order.append(t)
    return [[number.get(t, -1) for t in rows[s]] for s in order], [sets[s] for s in order]


@settings(max_examples=400, deadline=None)
@given(_nfas())
def test_subset_construction_matches_a_plain_class_by_class_one(nfa: NFA) -> None:
    trans, accepting, sets = dfa_mod.subset_construction(nfa, _BYTE_CLASS, _CLASSES, DEFAULT_LIMITS)
    rows, acc, plain_sets = _plain_subsets(nfa)
    assert len(sets) == len(plain_sets) and set(sets) == set(plain_sets)
    assert _canonical(trans.tolist(), sets) == _canonical(rows, plain_sets)
    assert accepting.tolist() == [nfa.accept in s for s in sets] and sorted(acc) == sorted(accepting.tolist())
