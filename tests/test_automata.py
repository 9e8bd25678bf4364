"""The automaton passes' rewrites (grammars/automata/automata.py) keep the language, and every way of running a
conjunction allows the same tokens: the product pruned and minimized, the product with its dead states
(cut at run time), and the parts kept apart (grammars/tokens/lazy_product.py). Oracles: `re.fullmatch` on every
string up to a length, and the product's own token automaton on random walks over a tiny vocabulary."""

from __future__ import annotations

import itertools
import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.grammars import Vocabulary, choice_dfa, compile_regex, conjunction, from_dfa
from decc.grammars.automata.automata import cut_dead, minimize, product, trim
from decc.grammars.tokens.lazy_product import Conjunction, bind

ALPHABET = "abc"
STRINGS = ["".join(p) for n in range(6) for p in itertools.product(ALPHABET, repeat=n)]
TOKENS = [b"a", b"b", b"c", b"ab", b"ba", b"ca", b"abc", b"cc", b"bca"]
EOS = len(TOKENS)
VOCAB = Vocabulary.from_token_bytes([*TOKENS, None], eos_id=EOS)


@st.composite
def regexes(draw: st.DrawFn, depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from(["a", "b", "c", "[ab]", "[bc]", "."]))
    kind = draw(st.sampled_from(["cat", "alt", "star", "opt", "rep"]))
    a = draw(regexes(depth - 1))
    if kind == "cat":
        return a + draw(regexes(depth - 1))
    if kind == "alt":
        return f"(?:{a}|{draw(regexes(depth - 1))})"
    if kind == "star":
        return f"(?:{a})*"
    if kind == "opt":
        return f"(?:{a})?"
    return f"(?:{a}){{1,3}}"


def _language(accepts, strings=STRINGS) -> set[str]:  # type: ignore[no-untyped-def]
    return {s for s in strings if accepts(s)}


def _check_invariant(dfa) -> None:  # type: ignore[no-untyped-def]
    """Every state is reachable and can still accept (what the token automaton relies on)."""
    assert trim(type(dfa)(dfa.transitions, dfa.accepting, dfa.start, trimmed=False)).n_states == dfa.n_states


@settings(max_examples=60, deadline=None)
@given(st.lists(regexes(), min_size=1, max_size=3))
def test_product_prune_minimize_keep_the_language(patterns: list[str]) -> None:
    parts = [compile_regex(p, minimal=False) for p in patterns]
    expected = _language(lambda s: all(re.fullmatch(p, s) for p in patterns))
    raw = product(parts)
    assert _language(lambda s: raw.accepts(s.encode())) == expected
    pruned = trim(raw)
    assert _language(lambda s: pruned.accepts(s.encode())) == expected
    small = minimize(raw)
    assert _language(lambda s: small.accepts(s.encode())) == expected
    assert small.n_states <= pruned.n_states <= raw.n_states
    if small.n_states:
        _check_invariant(pruned)
        _check_invariant(small)
    reference = conjunction([compile_regex(p) for p in patterns])  # the grammar compiler's own product
    assert small.n_states == reference.n_states  # minimal DFAs of one language have as many states
    assert minimize(parts[0]).n_states == compile_regex(patterns[0]).n_states


def _walks(a, b, rng: np.random.Generator, steps: int = 12) -> None:  # type: ignore[no-untyped-def]
    """Random walks: `a` and `b` (matchers) allow the same tokens at every step."""
    for _ in range(20):
        ma, mb = a.matcher(), b.matcher()
        for _ in range(steps):
            allowed = ma.allowed_token_ids()
            assert np.array_equal(allowed, mb.allowed_token_ids())
            assert ma.is_accepting() == mb.is_accepting() and ma.n_text_allowed() == mb.n_text_allowed()
            import torch

            ra, rb = torch.zeros(1, dtype=torch.int32), torch.zeros(1, dtype=torch.int32)
            ma.fill_bitmask(ra)
            mb.fill_bitmask(rb)
            assert torch.equal(ra, rb)
            if not len(allowed):
                break
            t = int(rng.choice(allowed))
            assert ma.advance(t) and mb.advance(t)
            if t == EOS:
                assert ma.is_terminated() and mb.is_terminated()
                break


@settings(max_examples=40, deadline=None)
@given(st.lists(regexes(), min_size=2, max_size=3), st.integers(0, 2**32 - 1))
def test_every_conjunction_path_allows_the_same_tokens(patterns: list[str], seed: int) -> None:
    parts = [compile_regex(p, minimal=False) for p in patterns]
    small = minimize(product(parts))
    if small.n_states == 0:
        assert not Conjunction(tuple(parts)).is_live(Conjunction(tuple(parts)).start)
        return
    rng = np.random.default_rng(seed)
    best = from_dfa(small, VOCAB)
    _walks(best, from_dfa(product(parts), VOCAB), rng)  # dead states kept, cut when lifted to tokens
    _walks(best, bind(Conjunction(tuple(parts)), VOCAB), rng)  # the parts kept apart


def test_the_lazy_product_refuses_a_dead_end() -> None:
    """ "ab" & "ac": each part allows "a", the conjunction allows nothing at all after it."""
    parts = (choice_dfa(["ab", "xy"]), choice_dfa(["ac", "xy"]))
    conj = Conjunction(parts)
    m = bind(conj, Vocabulary.from_token_bytes([b"a", b"x", b"y", b"xy", None], eos_id=4)).matcher()
    assert list(m.allowed_token_ids()) == [1, 3]
    assert not m.advance(0) and m.advance(3) and m.is_accepting()


def test_cut_dead_keeps_the_states_and_drops_their_edges() -> None:
    raw = product([choice_dfa(["ab", "xy"]), choice_dfa(["ac", "xy"])])
    cut = cut_dead(raw)
    assert cut.n_states == raw.n_states > trim(raw).n_states
    assert cut.step(cut.start, b"a") < 0 and cut.accepts(b"xy")
