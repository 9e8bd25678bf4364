"""Budget-aware masks (grammars/budget.py): with `budget` tokens left a matcher allows exactly the tokens after
which some completion fits the budget, checked against a brute-force oracle over token sequences."""

from __future__ import annotations

import random
from functools import cache

import numpy as np
import regex as pyregex
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars import Vocabulary, choice_dfa, from_dfa, regex
from decc.grammars.token_paths import shortest_tokens

EOS = 9
TOKENS = [b"a", b"b", b"c", b"ab", b"ba", b"abc", b"bc", b"cab", b"bb", b"</s>"]
VOCAB = Vocabulary.from_token_bytes(TOKENS, eos_id=EOS)
TEXT = [t.decode() for t in TOKENS[:EOS]]

WORDS = st.text("abc", min_size=1, max_size=6)
LEAVES = st.sampled_from(["a", "b", "c", "ab", "[ab]", "[bc]", "abc"])
REGEXES = st.recursive(
    LEAVES,
    lambda kids: st.one_of(
        st.tuples(kids, kids).map(lambda t: t[0] + t[1]),
        st.tuples(kids, kids).map(lambda t: f"(?:{t[0]}|{t[1]})"),
        st.tuples(kids, st.sampled_from(["*", "+", "?", "{2}", "{1,3}"])).map(lambda t: f"(?:{t[0]}){t[1]}"),
    ),
    max_leaves=5,
)


def _constraint(kind: str, spec):  # type: ignore[no-untyped-def]
    if kind == "choice":
        return from_dfa(choice_dfa(tuple(spec)), VOCAB), "|".join(pyregex.escape(w) for w in spec)
    return regex(spec, VOCAB), spec


def _oracle(pattern: str):  # type: ignore[no-untyped-def]
    """finishes(text, k): some sequence of at most k text tokens after `text` makes a full match; straight
    from the pattern (`regex` partial matches prune dead prefixes), not from any automaton."""
    compiled = pyregex.compile(pattern)

    @cache
    def finishes(text: str, k: int) -> bool:
        if compiled.fullmatch(text):
            return True
        if k == 0 or not compiled.fullmatch(text, partial=True):
            return False
        return any(finishes(text + t, k - 1) for t in TEXT)

    return compiled, finishes


def _allowed(m, budget: int) -> set[int]:  # type: ignore[no-untyped-def]
    row = torch.zeros(VOCAB.n_words, dtype=torch.int32)
    m.fill_bitmask(row, budget)
    bits = np.unpackbits(row.numpy().view(np.uint8), bitorder="little")
    return {int(t) for t in np.flatnonzero(bits[: len(TOKENS)])}


def _check_walks(kind: str, spec, extra: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    constraint, pattern = _constraint(kind, spec)
    fewest = shortest_tokens(constraint.automaton)
    assert fewest is not None
    compiled, finishes = _oracle(pattern)
    rng = random.Random(seed)
    max_tokens = max(fewest, 1) + extra
    for _ in range(4):
        m, text = constraint.matcher(), ""
        for step in range(max_tokens):
            budget = max_tokens - step
            got = _allowed(m, budget)
            want = {i for i, t in enumerate(TEXT) if finishes(text + t, budget - 1)}
            if compiled.fullmatch(text):
                want.add(EOS)
            assert got == want, (pattern, text, budget, sorted(got), sorted(want))
            token = rng.choice(sorted(got))
            if token == EOS:
                break
            assert m.advance(token)
            text += TEXT[token]
        assert compiled.fullmatch(text), (pattern, max_tokens, text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(WORDS, min_size=1, max_size=5, unique=True), st.integers(0, 3), st.integers(0, 2**16))
def test_choice_walks_finish_within_the_budget_and_masks_match_the_oracle(words, extra, seed) -> None:
    _check_walks("choice", words, extra, seed)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REGEXES, st.integers(0, 3), st.integers(0, 2**16))
def test_regex_walks_finish_within_the_budget_and_masks_match_the_oracle(pattern, extra, seed) -> None:
    _check_walks("regex", pattern, extra, seed)


def test_the_issues_spelling_is_refused_when_it_cannot_finish() -> None:
    """choice("billing", "shipping"): "billing" is 1 token, ship|ping 2, shi|pp|ing 3, s|hi|pp|ing 4."""
    toks = [b"s", b"hi", b"pp", b"ing", b"ship", b"ping", b"billing", b"shi", b"</s>"]
    vocab = Vocabulary.from_token_bytes(toks, eos_id=8)
    m = from_dfa(choice_dfa(("billing", "shipping")), vocab).matcher()
    row = torch.zeros(vocab.n_words, dtype=torch.int32)
    for budget, allowed in [
        (None, {"s", "ship", "billing", "shi"}),
        (9, {"s", "ship", "billing", "shi"}),
        (4, {"s", "ship", "billing", "shi"}),
        (3, {"ship", "billing", "shi"}),
        (2, {"ship", "billing"}),
        (1, {"billing"}),
    ]:
        m.fill_bitmask(row, budget)
        bits = int(row[0])
        assert {toks[t].decode() for t in range(8) if bits >> t & 1} == allowed, budget


def test_a_dead_end_of_the_vocabulary_is_refused_whatever_the_budget() -> None:
    """With no "ping" or "p" token, "ship" can never finish "shipping": the plain mask allows it (its bytes
    stay completable), a budgeted one never does, and a budget that cannot be met keeps the rest."""
    toks = [b"s", b"hi", b"pp", b"ing", b"ship", b"billing", b"</s>"]
    vocab = Vocabulary.from_token_bytes(toks, eos_id=6)
    m = from_dfa(choice_dfa(("billing", "shipping")), vocab).matcher()
    row = torch.zeros(vocab.n_words, dtype=torch.int32)
    for budget, allowed in [(None, {"s", "ship", "billing"}), (99, {"s", "billing"}), (1, {"billing"})]:
        m.fill_bitmask(row, budget)
        assert {toks[t].decode() for t in range(6) if int(row[0]) >> t & 1} == allowed, budget
    assert m.advance(0)  # "s": 3 more tokens needed, so a budget of 2 cannot be met
    m.fill_bitmask(row, 2)
    assert int(row[0]) == 1 << 1  # "hi", as without a budget
