"""The static checker's questions (grammars.dfa_queries, grammars.token_paths) against brute force: finite
languages over {a, b} enumerated whole, and the fewest tokens found by trying every token sequence."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from decc.grammars import Vocabulary, compile_regex, regex
from decc.grammars.tokens.dfa_queries import all_contain, can_contain, is_viable_prefix
from decc.grammars.tokens.token_paths import shortest_tokens

# Regexes with finite languages (no unbounded repeats), paired with their longest string's length.
_leaf = st.sampled_from([("a", 1), ("b", 1), ("ab", 2), ("[ab]", 1), ("ba", 2)])


def _extend(inner: st.SearchStrategy[tuple[str, int]]) -> st.SearchStrategy[tuple[str, int]]:
    pair = st.tuples(inner, inner)
    return st.one_of(
        pair.map(lambda p: (p[0][0] + p[1][0], p[0][1] + p[1][1])),
        pair.map(lambda p: (f"(?:{p[0][0]}|{p[1][0]})", max(p[0][1], p[1][1]))),
        inner.map(lambda p: (f"(?:{p[0]})?", p[1])),
        inner.map(lambda p: (f"(?:{p[0]}){{0,2}}", 2 * p[1])),
    )


FINITE = st.recursive(_leaf, _extend, max_leaves=5)
NEEDLES = st.text(alphabet="ab", min_size=1, max_size=3)


def _language(pattern: str, longest: int) -> list[str]:
    return [
        s
        for n in range(longest + 1)
        for s in map("".join, itertools.product("ab", repeat=n))
        if re.fullmatch(pattern, s)
    ]


@settings(max_examples=150, deadline=None)
@given(FINITE, NEEDLES)
def test_queries_match_the_enumerated_language(pair: tuple[str, int], needle: str) -> None:
    pattern, longest = pair
    language = _language(pattern, longest)
    dfa = compile_regex(pattern)
    prefixes = {s[:i] for s in language for i in range(len(s) + 1)}
    assert all_contain(dfa, needle) == all(needle in s for s in language)
    assert can_contain(dfa, needle) == any(needle in p for p in prefixes)
    for text in {"", "a", "b", "ab", "ba", "aab", "bb", needle}:
        assert is_viable_prefix(dfa, text) == (text in prefixes)


# Tokens over {a, b}: the fewest tokens whose concatenation is in the language, by trying every sequence.
TOKENS = [b"a", b"b", b"ab", b"aab", b"bbb"]
EOS = len(TOKENS)
VOCAB = Vocabulary.from_token_bytes([*TOKENS, b"</s>"], eos_id=EOS)


def _fewest(pattern: str, limit: int = 7) -> int | None:
    for n in range(limit + 1):
        for seq in itertools.product(TOKENS, repeat=n):
            if re.fullmatch(pattern, b"".join(seq).decode()):
                return n
    return None


@settings(max_examples=100, deadline=None)
@given(FINITE)
def test_shortest_tokens_matches_brute_force(pair: tuple[str, int]) -> None:
    pattern, _ = pair
    automaton = regex(pattern, VOCAB).automaton
    assert shortest_tokens(automaton) == _fewest(pattern)


def test_shortest_tokens_unbounded_and_real_cases() -> None:
    assert shortest_tokens(regex("(aab)+b{3}", VOCAB).automaton) == 2
    assert shortest_tokens(regex("a{7}", VOCAB).automaton) == 7  # only the token "a" fits
    assert shortest_tokens(regex("a(ab)*b{3}", VOCAB).automaton) == 2  # a + bbb, not the longer ones
