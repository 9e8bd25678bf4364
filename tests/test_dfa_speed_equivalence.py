"""The fast DFA paths (hashed Moore minimization, run-based subset construction) against plain ones."""

from __future__ import annotations

import re

import numpy as np
import pytest

from decc.grammars.automata import dfa as dfa_mod
from decc.grammars.automata.dfa import _moore_exact, _moore_hashed, compile_regex, minimize_table


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
    block, first = _moore_hashed(trans, key)
    exact, exact_first = _moore_exact(_table(trans), key)
    # Same partition: the pairs (hashed block, exact block) are one-to-one, and the same lowest members.
    assert len(set(zip(block.tolist(), exact.tolist(), strict=True))) == len(first) == len(exact_first)
    assert sorted(first.tolist()) == sorted(exact_first.tolist())


@pytest.mark.parametrize("k", [257, 300])
def test_hashed_moore_takes_more_classes_than_bytes(k: int) -> None:
    """A grammar rule's table has a class per byte class and one per rule it calls: 257 and more."""
    rng = np.random.default_rng(k)
    trans, accepting, labels = _random_dfa(rng, 40, k)
    key = np.append(accepting, False).astype(np.int64) + np.append(labels, 0) * 2
    block, first = _moore_hashed(trans, key)
    exact, exact_first = _moore_exact(_table(trans), key)
    assert len(set(zip(block.tolist(), exact.tolist(), strict=True))) == len(first) == len(exact_first)


def test_minimize_falls_back_when_the_hash_merges_too_much(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        trans, accepting, labels = _random_dfa(rng, 30, 3)
        reps: list[int] = []
        expected = minimize_table(trans, accepting, labels, reps)
        with monkeypatch.context() as m:  # a "collision" that lumps every state together
            m.setattr(dfa_mod, "_moore_hashed", lambda t, key: (np.zeros(len(key), np.int64), np.array([0])))
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
