"""`rollback(n)` and `clone()` on every matcher: after a random walk, rolling back k tokens gives exactly the
position the walk had k tokens earlier (same allowed tokens, same acceptance), and clones are independent.

The oracle is the walk itself: each position's allowed tokens are recorded before the next token is taken.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.grammars import Vocabulary, compile_regex, regex
from decc.grammars.tokens.healing import HealingMatcher
from decc.grammars.tokens.lazy_product import Conjunction, bind

WORDS = ["a", "b", "ab", "ba", " ", "a ", "bb", "aab"]
VOCAB = Vocabulary.from_token_bytes([w.encode() for w in WORDS] + [None], eos_id=len(WORDS))
EOS = len(WORDS)
PATTERNS = [r"(a|b)+", r"a*b*( a)?", r"(ab| )+", r"[ab ]{0,6}"]


def make(kind: str, pattern: str):
    if kind == "automaton":
        return regex(pattern, VOCAB).matcher()
    if kind == "conjunction":
        return bind(Conjunction((compile_regex(pattern), compile_regex(r"[ab ]{0,5}"))), VOCAB).matcher()
    return HealingMatcher(b"a", regex(pattern, VOCAB).matcher(), VOCAB)


def position(m) -> tuple[tuple[int, ...], bool]:
    return tuple(m.allowed_token_ids().tolist()), m.is_accepting()


KINDS = ["automaton", "conjunction", "healing"]


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(KINDS), st.sampled_from(PATTERNS), st.data())
def test_rollback_returns_to_each_earlier_position(kind: str, pattern: str, data) -> None:
    m = make(kind, pattern)
    seen = [position(m)]
    for _ in range(data.draw(st.integers(0, 8))):
        allowed = m.allowed_token_ids().tolist()
        if not allowed:
            break
        token = data.draw(st.sampled_from(allowed))
        assert m.advance(token)
        seen.append(position(m))
        if m.is_terminated():
            break
    back = data.draw(st.integers(0, len(seen) - 1))
    twin = m.clone()
    m.rollback(back)
    assert position(m) == seen[len(seen) - 1 - back]
    assert position(twin) == seen[-1]  # the clone kept its own position
    twin.rollback(len(seen) - 1)
    assert position(twin) == seen[0]


@pytest.mark.parametrize("kind", KINDS)
def test_rolling_back_more_than_was_taken_is_an_error_and_changes_nothing(kind: str) -> None:
    m = make(kind, r"(a|b)+")
    token = int(m.allowed_token_ids()[0])
    assert m.advance(token)
    before = position(m)
    with pytest.raises(ValueError, match="only 1"):
        m.rollback(2)
    assert position(m) == before
    m.rollback(0)
    assert position(m) == before


def test_rollback_undoes_a_terminating_eos() -> None:
    m = regex(r"ab", VOCAB).matcher()
    assert m.advance(WORDS.index("ab")) and m.advance(EOS) and m.is_terminated()
    m.rollback(1)
    assert not m.is_terminated() and m.is_accepting()
    assert m.advance(EOS)
