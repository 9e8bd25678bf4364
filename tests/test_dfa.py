"""Byte DFAs against Python's `re`: random regexes and strings, hand examples, invariants and limits."""

from __future__ import annotations

import random
import re
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars import ByteDFA, GrammarLimitError, Limits, compile_regex
from decc.grammars.regexes.regex_ast import negate
from decc.grammars.regexes.utf8 import utf8_sequences

LEAVES = [
    "a",
    "b",
    "c",
    "é",
    "€",
    "[ab]",
    "[^a]",
    "[a-c]",
    "[é€]",
    "[^é]",
    "[^ab€]",
    "[b-é]",
    ".",
    r"\d",
    r"\w",
    r"\s",
    r"\D",
    r"\W",
    "1",
    " ",
]
QUANTIFIERS = ["*", "+", "?", "{2}", "{0,2}", "{1,3}", "{2,}", "{,2}", "*?", "{1,2}?", "??"]


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(children, children)
    return st.one_of(
        pair.map(lambda t: t[0] + t[1]),
        pair.map(lambda t: f"(?:{t[0]}|{t[1]})"),
        st.tuples(children, st.sampled_from(QUANTIFIERS)).map(lambda t: f"(?:{t[0]}){t[1]}"),
        children.map(lambda s: f"({s}|)"),
    )


REGEXES = st.recursive(st.sampled_from(LEAVES), _extend, max_leaves=7)
STRINGS = st.text(alphabet="abcé€1 \n_x", max_size=8)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fullmatch(pattern: str, s: str) -> bool:
    return re.fullmatch(pattern, s, re.ASCII) is not None


@SETTINGS
@given(REGEXES, st.lists(STRINGS, max_size=12), st.data())
def test_dfa_agrees_with_re(pattern: str, strings: list[str], data: st.DataObject) -> None:
    dfa = compile_regex(pattern)
    positives = [data.draw(st.from_regex(re.compile(pattern, re.ASCII), fullmatch=True)) for _ in range(3)]
    for s in strings + positives:
        assert dfa.accepts(s.encode()) == _fullmatch(pattern, s), (pattern, s)
    _check_invariants(dfa)
    # Strings the DFA generates are valid UTF-8 and full matches.
    rng = random.Random(len(pattern))
    for _ in range(10):
        out = _random_walk(dfa, rng)
        if out is not None:
            assert _fullmatch(pattern, out.decode("utf-8")), (pattern, out)


def _random_walk(dfa: ByteDFA, rng: random.Random, max_len: int = 24) -> bytes | None:
    state, out = dfa.start, bytearray()
    for _ in range(max_len):
        if dfa.accepting[state] and rng.random() < 0.3:
            return bytes(out)
        nxt = np.flatnonzero(dfa.transitions[state] >= 0)
        if not len(nxt):
            break
        b = int(rng.choice(nxt.tolist()))
        out.append(b)
        state = int(dfa.transitions[state, b])
    return bytes(out) if dfa.accepting[state] else None


def _check_invariants(dfa: ByteDFA) -> None:
    """Start is 0, every state is reachable and can reach acceptance, and no two states are equivalent."""
    t, acc = dfa.transitions, dfa.accepting
    assert t.dtype == np.int32 and t.shape == (dfa.n_states, 256) and acc.dtype == bool
    assert dfa.start == 0 and dfa.n_states > 0
    live = acc.copy()
    for _ in range(dfa.n_states):
        live = live | ((t >= 0) & live[np.maximum(t, 0)]).any(axis=1)
    assert live.all()
    # Moore refinement from scratch: the number of classes must equal the number of states.
    classes = acc.astype(np.int64)
    while True:
        sig = np.concatenate([classes[:, None], np.where(t >= 0, classes[np.maximum(t, 0)], -1)], axis=1)
        _, new = np.unique(sig, axis=0, return_inverse=True)
        new = new.reshape(-1)
        if len(set(new.tolist())) == len(set(classes.tolist())):
            break
        classes = new
    assert len(set(classes.tolist())) == dfa.n_states


HAND = [
    (r"\d{4}-\d{2}-\d{2}", ["2024-01-15", "0000-00-00"], ["2024-1-15", "2024-01-155", "２０２４-01-15", ""]),
    (
        r"(?:\+1[ -]?)?\(?\d{3}\)?[ -]?\d{3}-\d{4}",
        ["(555) 123-4567", "+1 555-123-4567", "5551234567"[:3] + " 123-4567"],
        ["555-1234", "(555) 123-45678"],
    ),
    (
        r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}",
        ["john.doe@example.com", "a+b@x.io"],
        ["john@", "@example.com", "john@example.c", "jöhn@example.com"],
    ),
    (r"(café|naïve|über)+ ?[à-ÿ]{0,3}", ["café", "naïveüber é", "übercaféàÿ"], ["cafe", "café  é", "ūber"]),
    (r"[^\n]*", ["", "anything €😀", "tab\there"], ["two\nlines"]),
    (r"(yes|no)", ["yes", "no"], ["yesno", "", "Yes"]),
    (r"[A-Z][a-z]+", ["Hello", "Ab"], ["hello", "A", "HeLlo"]),
    (r"\W+", ["é€ -", "😀"], ["a", "_", "é_"]),
    (r"[a-z]{1,64}", ["a", "z" * 64], ["", "a" * 65]),
]


@pytest.mark.parametrize(("pattern", "good", "bad"), HAND)
def test_hand_examples(pattern: str, good: list[str], bad: list[str]) -> None:
    dfa = compile_regex(pattern)
    for s in good:
        assert _fullmatch(pattern, s) and dfa.accepts(s.encode()), s
    for s in bad:
        assert not _fullmatch(pattern, s) and not dfa.accepts(s.encode()), s
    _check_invariants(dfa)


def test_step_and_dead_states() -> None:
    dfa = compile_regex("ab|ac")
    s = dfa.step(dfa.start, b"a")
    assert s >= 0 and not dfa.accepting[s]
    assert dfa.step(s, b"d") == -1
    assert dfa.step(dfa.start, b"xyz") == -1
    assert not dfa.accepts(b"\xff")
    assert compile_regex("é").accepts("é".encode()) and not compile_regex("é").accepts(b"\xc3")


def test_empty_language_has_no_states() -> None:
    for pattern in [r"[^\x00-\U0010ffff]", r"a[^\x00-\U0010ffff]*b[^\x00-\U0010ffff]"]:
        dfa = compile_regex(pattern)
        assert dfa.n_states == 0 and dfa.start == -1 and dfa.transitions.shape == (0, 256)
        assert dfa.is_empty() and not dfa.accepts(b"") and not dfa.accepts(b"ab")


def test_minimal_sizes() -> None:
    assert compile_regex("(a|b)*abb").n_states == 4
    assert compile_regex(r"\d{4}-\d{2}-\d{2}").n_states == 11
    assert compile_regex("[a-z]{1,64}").n_states == 65
    assert compile_regex("a*|(aa)*").n_states == 1


def test_bounded_repetition_stays_cheap() -> None:
    t = time.perf_counter()
    dfa = compile_regex("[a-z]{1,2000}")
    assert dfa.n_states == 2001
    assert time.perf_counter() - t < 2.0


@pytest.mark.parametrize("pattern", [r"(a{1000}){1000}", r"(?:x{1000}){300}", r".{1000000}"])
def test_size_limits_fail_fast(pattern: str) -> None:
    t = time.perf_counter()
    with pytest.raises(GrammarLimitError, match="NFA states"):
        compile_regex(pattern)
    assert time.perf_counter() - t < 0.5


def test_dfa_blowup_hits_limit() -> None:
    limits = Limits(max_dfa_states=2000)
    with pytest.raises(GrammarLimitError, match="DFA"):
        compile_regex("(a|b)*a(a|b){12}", limits)
    assert compile_regex("(a|b)*a(a|b){8}", limits).n_states == 512


def test_utf8_sequences_match_exactly_the_encodings() -> None:
    rng = random.Random(0)
    for ranges in [
        ((0, 0x10FFFF),),
        negate(((10, 10),)),
        ((0x7F, 0x801),),
        ((0xD000, 0xE100),),
        ((0xFFFF, 0x10001),),
    ]:
        seqs = utf8_sequences(ranges)
        members = [c for lo, hi in ranges for c in (lo, hi, (lo + hi) // 2)]
        members += [rng.randint(0, 0x10FFFF) for _ in range(3000)]
        for cp in members:
            if 0xD800 <= cp <= 0xDFFF:
                continue
            enc = chr(cp).encode()
            hit = any(
                len(s) == len(enc) and all(lo <= x <= hi for x, (lo, hi) in zip(enc, s, strict=True))
                for s in seqs
            )
            assert hit == any(lo <= cp <= hi for lo, hi in ranges), hex(cp)
        # No sequence can match a surrogate or an overlong encoding.
        for s in seqs:
            assert s[0][0] not in (0xC0, 0xC1) and s[0][1] <= 0xF4
            if len(s) == 3 and s[0] == (0xED, 0xED):
                assert s[1][1] <= 0x9F
