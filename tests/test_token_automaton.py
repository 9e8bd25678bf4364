"""Token automata and matchers: a tiny vocabulary against a brute-force oracle, and the real tokenizer."""

from __future__ import annotations

import itertools
import random
import re
import time
from functools import cache
from types import SimpleNamespace

import numpy as np
import pytest
import regex as pyregex
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars import GrammarLimitError, Limits, RegexError, Vocabulary, compile_regex, regex
from decc.grammars.tokens.token_automaton import TokenAutomaton

EOS, SPECIAL = 10, 11
TINY = [
    b"a",
    b"b",
    b"ab",
    b"ba",
    b"abc",
    b"c",
    b"\xc3",
    b"\xa9",
    "é".encode(),
    b"",
    b"</s>",
    b"<s>",
    b"\xe2\x82",
    b"\xac",
    "€".encode(),
]
TINY_VOCAB = Vocabulary.from_token_bytes(TINY, eos_id=EOS, special_ids=[SPECIAL])

# Each leaf with the form the `regex`-module oracle uses: negated classes spelled as positive ranges, because
# `regex` 2026.11 gets alternations of two negated classes wrong (`regex.fullmatch("[^a]|[^b]", "a")` is None).
LEAVES = {
    "a": "a",
    "b": "b",
    "c": "c",
    "é": "é",
    "€": "€",
    "ab": "ab",
    "[ab]": "[ab]",
    "[a-c]": "[a-c]",
    "[é€]": "[é€]",
    "[b-é]": "[b-é]",
    r"\w": r"\w",
    "[^a]": r"[\x00-\x60\x62-\U0010ffff]",
    "[^é]": r"[\x00-\xe8\xea-\U0010ffff]",
    ".": r"[\x00-\x09\x0b-\U0010ffff]",
    r"\W": r"[\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\U0010ffff]",
}
QUANTIFIERS = ["*", "+", "?", "{2}", "{0,2}", "{1,3}", "{2,}", "*?"]
# The oracle spells the lazy `*?` greedily (the same full-match language): with partial=True, `regex`
# 2026.11 wrongly calls "abc" a partial match of `(?:[^a])*?ab` (spelled as positive ranges).
ORACLE_QUANTIFIER = {"*?": "*"}
Pair = tuple[str, str]  # (pattern, the same pattern for the oracle)


def _extend(children: st.SearchStrategy[Pair]) -> st.SearchStrategy[Pair]:
    two = st.tuples(children, children)
    return st.one_of(
        two.map(lambda t: (t[0][0] + t[1][0], t[0][1] + t[1][1])),
        two.map(lambda t: (f"(?:{t[0][0]}|{t[1][0]})", f"(?:{t[0][1]}|{t[1][1]})")),
        st.tuples(children, st.sampled_from(QUANTIFIERS)).map(
            lambda t: (f"(?:{t[0][0]}){t[1]}", f"(?:{t[0][1]}){ORACLE_QUANTIFIER.get(t[1], t[1])}")
        ),
    )


REGEXES = st.recursive(st.sampled_from(sorted(LEAVES.items())), _extend, max_leaves=6)


# -- the oracle: viability by partial matching with the `regex` module, independent of our DFA ------------


@cache
def _viable(pattern: str, data: bytes) -> bool:
    """Can `data` be extended to a full match? A trailing incomplete UTF-8 sequence tries all completions."""
    try:
        return _partial(pattern, data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    for cut in (1, 2, 3):
        head, tail = data[:-cut], data[-cut:]
        lead = tail[0]
        need = 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF4 else 0
        if need <= cut or any(not 0x80 <= b <= 0xBF for b in tail[1:]):
            continue
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            return False
        for rest in itertools.product(range(0x80, 0xC0), repeat=need - cut):
            try:
                ch = (tail + bytes(rest)).decode("utf-8")
            except UnicodeDecodeError:
                continue
            if _partial(pattern, text + ch):
                return True
        return False
    return False


def _partial(pattern: str, text: str) -> bool:
    return pyregex.fullmatch(pattern, text, flags=pyregex.ASCII, partial=True) is not None


def _full(pattern: str, data: bytes) -> bool:
    try:
        return re.fullmatch(pattern, data.decode("utf-8"), re.ASCII) is not None
    except UnicodeDecodeError:
        return False


def _expected_allowed(pattern: str, oracle: str, data: bytes) -> set[int]:
    allowed = {t for t, b in enumerate(TINY) if t not in (EOS, SPECIAL) and b and _viable(oracle, data + b)}
    if _full(pattern, data):
        allowed.add(EOS)
    return allowed


def _mask_ids(matcher, size: int) -> set[int]:  # noqa: ANN001
    row = torch.zeros((size + 31) // 32, dtype=torch.int32)
    matcher.fill_bitmask(row)
    bits = np.unpackbits(row.numpy().view(np.uint8), bitorder="little")
    return set(np.flatnonzero(bits).tolist())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REGEXES)
def test_tiny_vocab_matches_oracle(patterns: Pair) -> None:
    pattern, oracle = patterns
    constraint = regex(pattern, TINY_VOCAB)
    # Breadth-first over token sequences of length <= 3, deduplicated by the text they produce.
    frontier = [(constraint.matcher(), b"")]
    seen = {b""}
    for depth in range(4):
        nxt = []
        for matcher, data in frontier:
            expected = _expected_allowed(pattern, oracle, data)
            assert _mask_ids(matcher, TINY_VOCAB.size) == expected, (pattern, data)
            assert set(matcher.allowed_token_ids().tolist()) == expected
            assert matcher.is_accepting() == (EOS in expected)
            assert matcher.can_continue() == bool(expected - {EOS})
            for t in range(len(TINY)):
                child = matcher.clone()
                assert child.advance(t) == (t in expected), (pattern, data, t)
                if t in expected and t != EOS and depth < 3 and data + TINY[t] not in seen:
                    seen.add(data + TINY[t])
                    nxt.append((child, data + TINY[t]))
                if t not in expected:
                    assert child.state == matcher.state
        frontier = nxt


def test_eos_terminates_and_nothing_follows() -> None:
    m = regex("ab?", TINY_VOCAB).matcher()
    assert not m.advance(EOS)
    assert m.advance(0) and m.is_accepting() and m.can_continue()
    twin = m.clone()
    assert m.advance(EOS) and m.is_terminated() and not m.is_accepting() and not m.can_continue()
    assert not m.advance(1) and len(m.allowed_token_ids()) == 0 and _mask_ids(m, TINY_VOCAB.size) == set()
    assert not twin.is_terminated() and twin.advance(1)  # clones are independent
    assert not twin.advance(SPECIAL) and not twin.advance(9) and not twin.advance(999)


def test_partial_utf8_tokens_compose() -> None:
    m = regex("é€", TINY_VOCAB).matcher()
    assert m.advance(6) and m.advance(7)  # "\xc3" + "\xa9" = "é"
    assert m.advance(12) and not m.is_accepting() and m.advance(13) and m.is_accepting()
    m = regex("é", TINY_VOCAB).matcher()
    assert not m.advance(7) and m.advance(8) and m.is_accepting()


def test_bitmask_layout_bit31_and_padding_ids() -> None:
    tokens = [bytes([0x41 + i % 26]) for i in range(70)]
    vocab = Vocabulary.from_token_bytes(tokens, eos_id=69, size=100)  # logits wider than the tokenizer
    assert vocab.n_words == 4
    letters = "".join(chr(0x41 + i) for i in (31 % 26, 63 % 26))  # ids 31 and 63 spell "F" and "L"
    auto = regex(f"[{letters}]*", vocab).automaton
    row = auto.bitmask[auto.start]
    assert row.dtype == np.int32 and row.shape == (4,)
    ids = set(np.flatnonzero(np.unpackbits(row.view(np.uint8), bitorder="little")).tolist())
    assert ids == {5, 11, 31, 37, 57, 63, 69}
    assert row[0] < 0 and row[1] < 0  # bit 31 set: the int32 word is negative
    assert all(i < 70 for i in ids)  # ids 70..99 exist in the logits but are never allowed
    t = torch.full((4,), -1, dtype=torch.int32)
    regex(f"[{letters}]*", vocab).matcher().fill_bitmask(t)
    assert t.tolist() == row.tolist()


def test_csr_is_sorted_and_consistent() -> None:
    auto = regex("[ab]+c?|é+", TINY_VOCAB).automaton
    for s in range(auto.n_states):
        ids = auto.token_ids[auto.indptr[s] : auto.indptr[s + 1]]
        assert (np.diff(ids) > 0).all()
        assert auto.n_allowed[s] == len(ids)
        for t, nxt in zip(
            ids.tolist(), auto.next_state[auto.indptr[s] : auto.indptr[s + 1]].tolist(), strict=True
        ):
            assert auto.dfa.step(s, TINY[t]) == nxt == auto.next(s, t)


def test_empty_language_is_refused() -> None:
    with pytest.raises(RegexError, match="matches no string"):
        regex(r"a[^\x00-\U0010ffff]", TINY_VOCAB)


def test_token_transition_limit() -> None:
    dfa = compile_regex("[ab]{0,50}")
    with pytest.raises(GrammarLimitError, match="transitions"):
        TokenAutomaton.build(dfa, TINY_VOCAB, Limits(max_token_transitions=10))


class _FakeAdded(SimpleNamespace):
    pass


class _FakeSentencePiece:
    """Just enough of a Hugging Face SentencePiece tokenizer (Llama-style vocabulary) for `from_tokenizer`."""

    def __init__(self) -> None:
        pieces = ["<unk>", "<s>", "</s>", "<0x0A>", "<0xC3>", "<0xA9>", "▁the", "▁", "é", "ab", "<tool>"]
        self._vocab = {p: i for i, p in enumerate(pieces)}
        self.added_tokens_decoder = {
            0: _FakeAdded(content="<unk>", special=True),
            1: _FakeAdded(content="<s>", special=True),
            2: _FakeAdded(content="</s>", special=True),
            10: _FakeAdded(content="<tool>", special=False),
        }
        self.all_special_ids = [0, 1, 2]
        self.eos_token_id = 2

    def get_vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    def __len__(self) -> int:
        return len(self._vocab)


def test_sentencepiece_vocabulary() -> None:
    tok = _FakeSentencePiece()
    vocab = Vocabulary.from_tokenizer(tok, size=16)
    assert vocab.token_bytes[:3] == (None, None, None)
    # an added token is a control token even when not marked special (issue 20): never text
    assert vocab.token_bytes[3:] == (b"\n", b"\xc3", b"\xa9", b" the", b" ", "é".encode(), b"ab", None)
    assert vocab.eos_ids == {2} and vocab.special_ids == {0, 1, 2, 10} and vocab.size == 16
    assert Vocabulary.from_tokenizer(tok, size=16) is vocab
    m = regex(" the é\n", vocab).matcher()
    assert all(m.advance(t) for t in (6, 7, 4, 5, 3)) and m.advance(2) and m.is_terminated()


# -- the real tokenizer ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> tuple[object, Vocabulary]:
    from decc.runtime.model import load_tokenizer

    tok = load_tokenizer("default")
    return tok, Vocabulary.from_tokenizer(tok)


REAL_CASES = [
    (r"\d{4}-\d{2}-\d{2}", ["2024-01-15", "1999-12-31"], ["2024-1-15", "2024/01/15"]),
    (r"\(\d{3}\) \d{3}-\d{4}", ["(555) 123-4567"], ["555-123-4567"]),
    (r"[A-Z][a-z]+", ["Hello", "Paris"], ["hello", "HELLO"]),
    (r"(café|naïve|über) [à-ÿ]{1,4}ß?", ["café éé", "über àß"], ["cafe é", "naïve "]),
    (r"(yes|no)", ["yes", "no"], ["maybe", "yes no"]),
]


@pytest.mark.model
@pytest.mark.parametrize(("pattern", "good", "bad"), REAL_CASES)
def test_real_tokenizer(real: tuple, pattern: str, good: list[str], bad: list[str]) -> None:
    tok, vocab = real
    constraint = regex(pattern, vocab)
    eos = next(iter(vocab.eos_ids))
    for text in good:
        m = constraint.matcher()
        for t in tok.encode(text, add_special_tokens=False):
            assert m.advance(t), (text, t)
        assert m.is_accepting() and eos in m.allowed_token_ids()
    for text in bad:
        m = constraint.matcher()
        ok = all(m.advance(t) for t in tok.encode(text, add_special_tokens=False))
        assert not (ok and m.is_accepting()), text
    rng = random.Random(pattern)
    for _ in range(25):
        text = _random_walk(constraint.matcher(), vocab, eos, rng)
        assert re.fullmatch(pattern, text.decode("utf-8"), re.ASCII), (pattern, text)


def _random_walk(m, vocab: Vocabulary, eos: int, rng: random.Random) -> bytes:  # noqa: ANN001
    out = b""
    row = torch.zeros(vocab.n_words, dtype=torch.int32)
    for _ in range(200):
        m.fill_bitmask(row)
        bits = np.unpackbits(row.numpy().view(np.uint8), bitorder="little")
        allowed = np.flatnonzero(bits).tolist()
        assert allowed, "a live state always allows something"
        if eos in allowed and (rng.random() < 0.4 or len(allowed) == 1):
            assert m.advance(eos) and m.is_terminated()
            return out
        t = rng.choice([a for a in allowed if a != eos])
        assert m.advance(t)
        out += vocab.token_bytes[t]
    raise AssertionError("random walk did not finish")


@pytest.mark.model
def test_real_vocabulary_bytes(real: tuple) -> None:
    tok, vocab = real
    assert len(vocab.token_bytes) == vocab.size == 49152 and vocab.eos_ids == {tok.eos_token_id}
    assert all(vocab.token_bytes[i] is None for i in range(17))
    for i in range(17, len(vocab.token_bytes), 97):
        b = vocab.token_bytes[i]
        try:
            assert b.decode("utf-8") == tok.decode([i])
        except UnicodeDecodeError:
            pass  # a partial UTF-8 token keeps its raw bytes


@pytest.mark.model
def test_real_build_time(real: tuple) -> None:
    _, vocab = real
    vocab.packed  # noqa: B018 - the per-vocabulary layout is built once and cached
    for pattern in [r"\d{4}-\d{2}-\d{2}", r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}"]:
        dfa = compile_regex(pattern)
        t = time.perf_counter()
        TokenAutomaton.build(dfa, vocab)
        assert time.perf_counter() - t < 0.5, pattern


def test_counted_strings_match_brute_force_with_ids_on_bit_31() -> None:
    """Long maxLength strings are counted, not unrolled: masks and steps agree with walking each token's bytes
    through the counter-aware DFA, on a vocabulary whose letters sit at ids 31 and 63 (the sign bit of a word)."""
    from decc.grammars import compile_json_schema
    from decc.grammars.tokens.matcher import Matcher

    pieces = [b'"', b"a", b"b", b"\\", b"u", b"0", b"{", b"}", b":", b",", b" ", b"n", b'"a', b'a"', b"aa"]
    pieces += [b"aaa", b'ab"', b'"}', b'","', b"\\n", b"\\u00", b"e9", b'"b":"', b'aaaa"', b'"a":"']
    toks: list[bytes | None] = [None] * 70
    free = [i for i in range(70) if i not in (31, 63, 69)]
    toks[31], toks[63] = b"a", b"ab"
    for i, p in zip(free, pieces, strict=False):
        toks[i] = p
    vocab = Vocabulary.from_token_bytes(toks, eos_id=69)
    schemas = [
        {"type": "string", "minLength": 3, "maxLength": 18},
        {
            "type": "object",
            "properties": {
                "a": {"type": "string", "maxLength": 16},
                "b": {"type": "string", "minLength": 2, "maxLength": 17},
            },
            "required": ["a", "b"],
            "additionalProperties": False,
        },
        {"type": "array", "items": {"type": "string", "maxLength": 16, "pattern": "^a*b?a*$"}, "maxItems": 3},
    ]
    rng = random.Random(0)
    for schema in schemas:
        dfa = compile_json_schema(schema)
        assert dfa.has_counters
        auto = TokenAutomaton.build(dfa, vocab)
        for _ in range(60):
            m, q, c = Matcher(auto), dfa.start, 0
            for _ in range(40):
                expected = {t for t, b in enumerate(toks) if b and dfa.advance(q, c, b)[0] >= 0}
                if dfa.is_accepting(q, c):
                    expected.add(69)
                row = torch.zeros(vocab.n_words, dtype=torch.int32)
                m.fill_bitmask(row)
                bits = {t for t in range(70) if (int(row[t >> 5]) >> (t & 31)) & 1}
                assert bits == expected == set(m.allowed_token_ids().tolist()), (schema, q, c)
                text = sorted(expected - {69})
                if not text:
                    break
                t = rng.choice(text)
                assert m.advance(t)
                q, c = dfa.advance(q, c, toks[t])


def test_counted_rows_survive_the_cache_state() -> None:
    """All counter rows are built at compile time (no decoding step pays for one); a copy through the
    cache's state (`__getstate__`: live flags as views made on first use) masks and steps as walking each
    token's bytes does."""
    from decc.grammars import compile_json_schema
    from decc.grammars.tokens.matcher import Matcher
    from decc.grammars.tokens.token_counts import Counts

    toks: list[bytes | None] = [b'"', b"a", b"ab", b"\\", b"n", b'a"', b"aaa", b"\\n", b'"a', None]
    vocab = Vocabulary.from_token_bytes(toks, eos_id=9)
    dfa = compile_json_schema({"type": "string", "minLength": 2, "maxLength": 20})
    auto = TokenAutomaton.build(dfa, vocab)
    assert auto.counts is not None
    assert auto.counts.built == {q for q in range(dfa.n_states) if dfa.seg[q] >= 0}
    copy = Counts.__new__(Counts)
    copy.__setstate__(auto.counts.__getstate__())
    twin = TokenAutomaton(**{**auto.__dict__, "counts": copy})
    rng = random.Random(0)
    for _ in range(30):
        m, m2, q, c = Matcher(auto), Matcher(twin), dfa.start, 0
        for _ in range(30):
            expected = {t for t, b in enumerate(toks) if b and dfa.advance(q, c, b)[0] >= 0}
            expected |= {9} if dfa.is_accepting(q, c) else set()
            for matcher in (m, m2):
                row = torch.zeros(vocab.n_words, dtype=torch.int32)
                matcher.fill_bitmask(row)
                assert {t for t in range(10) if (int(row[0]) >> t) & 1} == expected, (q, c)
            text = sorted(expected - {9})
            if not text:
                break
            t = rng.choice(text)
            assert m.advance(t) and m2.advance(t)
            q, c = dfa.advance(q, c, toks[t])


@given(
    ids=st.lists(st.integers(0, 2), max_size=40).map(np.array),
    runs=st.lists(st.integers(1, 12), min_size=1, max_size=5),
    width=st.integers(1, 8),
)
@settings(max_examples=200, deadline=None)
def test_window_ids_name_equal_windows_alike(ids: np.ndarray, runs: list[int], width: int) -> None:
    """Counter signatures (counters.window_ids) against comparing the windows as tuples, on random ids and
    on long runs (what live tables look like)."""
    from decc.grammars.automata.counters import window_ids

    for seq in (ids, np.repeat(np.arange(len(runs)) % 3, runs)):
        got = window_ids(seq, width)
        windows = [tuple(seq[c : c + width].tolist()) for c in range(len(seq) - width + 1)]
        assert len(got) == len(windows)
        for a in range(len(windows)):
            for b in range(len(windows)):
                assert (got[a] == got[b]) == (windows[a] == windows[b])


def test_loop_tokens_are_implicit_and_exact() -> None:
    """States with many self-loop bytes keep their loop tokens out of the CSR (token_loops.py); edges,
    masks, counts and steps still agree with walking each token's bytes through the DFA."""
    toks: list[bytes | None] = [b'"', b"a", b"ab", b" x", b'a"', b'"a', b"\\", b"\\n", b"\xc3", b"\xa9"]
    toks += [b"\xc3\xa9", b"zz", b"!", b"a!", b"!a", b"\x7f", b"~~", None]
    eos = len(toks) - 1
    vocab = Vocabulary.from_token_bytes(toks, eos_id=eos)
    for pattern in [r'"[^"\\]*"', r"[ -~]*!", r"(x[ -~]*y)+", r"é*[ -~]{3,}"]:
        dfa = compile_regex(pattern)
        auto = TokenAutomaton.build(dfa, vocab)
        assert auto.loops, pattern  # the shortcut is in use
        for s in range(auto.n_states):
            walks = [(t, dfa.step(s, b)) for t, b in enumerate(toks) if b]
            expected = [(t, q) for t, q in walks if q >= 0]
            ids, nxt = auto.edges(s)
            assert list(zip(ids.tolist(), nxt.tolist(), strict=True)) == expected, (pattern, s)
            assert int(auto.n_allowed[s]) == len(expected)
            want = {t for t, _ in expected} | ({eos} if dfa.accepting[s] else set())
            assert set(auto.allowed(s).tolist()) == want
            row = auto.row(s).numpy()
            assert {t for t in range(len(toks)) if (int(row[t >> 5]) >> (t & 31)) & 1} == want
            for t, q in walks:
                assert auto.next(s, t) == q


@given(
    tokens=st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=30),
    loop=st.sets(st.integers(0, 255), max_size=256),
)
@settings(max_examples=60, deadline=None)
def test_loop_tails_against_a_byte_by_byte_oracle(tokens: list[bytes], loop: set[int]) -> None:
    """`Loop.tail`: the position after a token's last byte outside the loop (0: all loop bytes)."""
    from decc.grammars.tokens.token_loops import loop_tails

    vocab = Vocabulary.from_token_bytes([*tokens, None], eos_id=len(tokens))
    ids, lengths, _, _ = vocab.packed
    flat, starts = vocab.flat_bytes
    in_loop = np.zeros(256, dtype=bool)
    in_loop[list(loop)] = True
    got = loop_tails(in_loop, flat, starts, lengths)
    for i, t in enumerate(ids.tolist()):
        data = tokens[t]
        want = max((k + 1 for k, b in enumerate(data) if b not in loop), default=0)
        assert got[i] == want, (data, sorted(loop))


def test_tokens_ending_in_a_loop_shortcut_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk ends a token early when the rest of it loops in the state it reached: tables identical to
    walking every byte, on a schema with free keys, plain and counted strings."""
    from decc.grammars import compile_json_schema
    from decc.grammars.tokens import token_automaton

    pieces = [b'"', b"a", b"ab", b"abc", b'a"', b'":"', b'","', b"{", b"}", b'{"', b'"}', b"\\", b"\\n"]
    pieces += [b'"a":"', b"xyz", b'xy"', b'x":', b"1", b"12", b",", b":", b'"b', b"bb", b"n", b"null"]
    vocab = Vocabulary.from_token_bytes([*pieces, None], eos_id=len(pieces))
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string", "maxLength": 20}, "b": {"type": "string"}},
        "additionalProperties": {"type": "string"},
    }
    dfa = compile_json_schema(schema)
    assert dfa.has_counters
    ended: list[int] = []
    real = token_automaton._ends_in_loop

    def counting(*args: object) -> np.ndarray:
        out = real(*args)  # type: ignore[arg-type]
        ended.append(int(out.sum()))
        return out

    monkeypatch.setattr(token_automaton, "_ends_in_loop", counting)
    fast = TokenAutomaton.build(dfa, vocab)
    assert fast.loops and sum(ended) > 0  # the shortcut was taken
    monkeypatch.setattr(token_automaton, "_ends_in_loop", lambda _l, _t, cur, *_: np.zeros(len(cur), bool))
    slow = TokenAutomaton.build(dfa, vocab)
    for name in ("bitmask", "indptr", "token_ids", "next_state"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
