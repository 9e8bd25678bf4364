"""The mask step's small-input and large-input paths (cfg_matcher) give the recognizer's masks.

A mask miss merges the uncertain ranks of the set's states, simulates the ones not set by their rows
and sets the accepted tokens' bits; each has a Python path for a few values (numpy's per-call
cost dominates there) and a numpy one for many. Both are checked, with the thresholds forced either way,
against the Earley recognizer stepped over each token's bytes, and the helpers against Python sets.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars import Vocabulary, cfg
from decc.grammars.contextfree import cfg_matcher
from decc.grammars.contextfree.cfg_matcher import union_sorted
from decc.grammars.tokens.token_automaton import set_bits

# Lists of words, numbers and nested lists with optional spaces after commas: after "[" or ", " many tokens
# leave the rule they start in (uncertain tokens, simulated), from several states at once.
GRAMMAR = r"""
start: list
list: "[" (val ("," " "? val)*)? "]"
val: list | WORD | NUM | "nil"
WORD: /[a-c]+/
NUM: /-?[0-9]/
"""
ALPHABET = "[], abn0-il"


def _vocab() -> Vocabulary:
    tokens = [None] + ["".join(t).encode() for n in (1, 2, 3) for t in itertools.product(ALPHABET, repeat=n)][
        ::2
    ]
    return Vocabulary.from_token_bytes(tokens, eos_id=0, size=len(tokens) + 3)


VOCAB = _vocab()


@pytest.mark.parametrize("small", [True, False], ids=["python-paths", "numpy-paths"])
def test_masks_match_the_recognizer_on_both_paths(small: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("_FEW_BITS", "_FEW_RANKS"):
        monkeypatch.setattr(cfg_matcher, name, 10**9 if small else 0)
    constraint = cfg(GRAMMAR, VOCAB)
    rec = constraint.recognizer
    text_ids = VOCAB.text_ids.tolist()

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def check(data: st.DataObject) -> None:
        constraint._masks.clear()  # masks memoized by the other path's run would not be recomputed
        m = constraint.matcher()
        chart = rec.initial()
        row = torch.zeros(VOCAB.n_words, dtype=torch.int32)
        for _ in range(data.draw(st.integers(0, 8))):
            m.fill_bitmask(row)
            bits = np.unpackbits(row.numpy().view(np.uint8), bitorder="little")
            want = [t for t in text_ids if rec.advance_bytes(chart, VOCAB.token_bytes[t]) is not None]
            assert np.flatnonzero(bits[1 : len(VOCAB.token_bytes)]).tolist() == [t - 1 for t in want]
            assert bool(bits[0]) == chart[-1].accept
            if not want:
                break
            t = data.draw(st.sampled_from(want))
            assert m.advance(t)
            chart = rec.advance_bytes(chart, VOCAB.token_bytes[t])

    check()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sets(st.integers(0, 499), max_size=300), min_size=1, max_size=4), st.booleans())
def test_union_sorted_is_the_set_union(parts: list[set[int]], few: bool) -> None:
    arrays = [np.array(sorted(p), dtype=np.int64) for p in parts]
    saved = cfg_matcher._FEW_RANKS
    try:
        cfg_matcher._FEW_RANKS = 10**9 if few else 0
        got = union_sorted(arrays, 500)
    finally:
        cfg_matcher._FEW_RANKS = saved
    assert got.tolist() == sorted(set().union(*parts))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 32 * 6 - 1), max_size=40), st.sets(st.integers(0, 32 * 6 - 1)), st.booleans())
def test_set_bits_sets_exactly_those_bits(ids: list[int], before: set[int], as_list: bool) -> None:
    mask = np.zeros(6, dtype=np.int32)
    for i in before:
        mask.view(np.uint32)[i >> 5] |= np.uint32(1 << (i & 31))
    set_bits(mask, ids if as_list else np.array(ids, dtype=np.int64))
    bits = np.unpackbits(mask.view(np.uint8), bitorder="little")
    assert np.flatnonzero(bits).tolist() == sorted(before | set(ids))
