"""Context-free constraints, model-free: the Earley recognizer against Lark, token masks against an oracle.

Oracles. Complete strings: Lark's own Earley parser with `lexer="dynamic_complete"`. Prefixes: the
recognizer's chart is live exactly when the text is a viable prefix (every RTN state can reach acceptance
and every rule derives some string); this is cross-checked against Lark both ways: a live prefix is
completed by a search guided by the recognizer and Lark must accept the completion, and a dead prefix must
have no completion of up to 3 characters that Lark accepts. The token mask is then checked bit by bit:
token t is allowed iff text + t is a viable prefix, and EOS iff Lark accepts the text.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch
from _lark import lark_accepts, lark_parser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars import GrammarError, GrammarLimitError, Limits, Vocabulary, cfg
from decc.grammars.contextfree.cfg_grammar import parse_grammar
from decc.grammars.contextfree.cfg_rows import classify
from decc.grammars.contextfree.earley import Recognizer
from decc.grammars.contextfree.rtn import build_rtn

GRAMMARS = {
    "left_recursion": (
        r"""
        start: sum
        sum: sum "+" prod | prod
        prod: prod "*" atom | atom
        atom: /[0-9]+/ | "(" sum ")"
        """,
        "0123+*()",
    ),
    "nullable_ignore": (
        r"""
        start: a b
        a: "x"* | "y" a
        b: | "z" b "z"
        %ignore " "
        """,
        "xyz ",
    ),
    "ebnf": (
        r"""
        start: (item ("," item)*)? ";"
        item: "a"~2..3 | "b" ["c"] | list | "k"i
        list: "[" start "]"
        """,
        "abcK[];,",
    ),
    "mutual": (
        r"""
        ?start: x
        x: "a" y | "b"
        y: x "c" | e
        e:
        %import common.WS_INLINE
        %ignore WS_INLINE
        """,
        "abc ",
    ),
}


def _complete(rec: Recognizer, data: bytes, alphabet: bytes, limit: int = 12) -> bytes | None:
    """A shortest completion of a live prefix, by breadth-first search over the alphabet."""
    start = rec.advance_bytes(rec.initial(), data)
    if start is None:
        return None
    frontier = [(b"", start)]
    for _ in range(limit):
        nxt = []
        for suffix, chart in frontier:
            if chart[-1].accept:
                return suffix
            for b in alphabet:
                s = rec.step(chart, b)
                if s is not None:
                    nxt.append((suffix + bytes([b]), [*chart, s]))
        frontier = nxt[:200]
    return None


@pytest.mark.parametrize("name", sorted(GRAMMARS))
def test_recognizer_matcheslark_parser(name: str) -> None:
    text, alphabet = GRAMMARS[name]
    parser = lark_parser(text)
    rec = Recognizer(build_rtn(parse_grammar(text)))
    rng = random.Random(name)
    accepted = 0
    for _ in range(400):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        expected = lark_accepts(parser, s)
        accepted += expected
        assert rec.accepts(s.encode()) == expected, s
    assert accepted > 5
    # Prefix viability, cross-checked with Lark in both directions.
    for _ in range(60):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))
        if rec.is_prefix(s.encode()):
            tail = _complete(rec, s.encode(), alphabet.encode())
            assert tail is not None, s
            assert lark_accepts(parser, s + tail.decode()), (s, tail)
        else:
            for k in range(4):
                for tail in itertools.product(alphabet, repeat=k):
                    assert not lark_accepts(parser, s + "".join(tail)), (s, tail)


def _tiny_vocab(alphabet: str) -> Vocabulary:
    singles = [c.encode() for c in alphabet]
    pairs = [(a + b).encode() for a, b in itertools.product(alphabet, repeat=2)][::3]
    triples = [(a + b + c).encode() for a, b, c in itertools.product(alphabet, repeat=3)][::11]
    tokens: list[bytes | None] = [None, *singles, *pairs, *triples]  # id 0 is EOS
    return Vocabulary.from_token_bytes(tokens, eos_id=0, size=len(tokens) + 5)


@pytest.mark.parametrize("name", sorted(GRAMMARS))
def test_token_masks_match_oracle(name: str) -> None:
    text, alphabet = GRAMMARS[name]
    vocab = _tiny_vocab(alphabet)
    constraint = cfg(text, vocab)
    parser = lark_parser(text)
    rec = constraint.recognizer
    text_ids = vocab.text_ids.tolist()

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def check(data: st.DataObject) -> None:
        m = constraint.matcher()
        so_far = b""
        row = torch.zeros(vocab.n_words, dtype=torch.int32)
        for _ in range(data.draw(st.integers(0, 10))):
            m.fill_bitmask(row)
            bits = np.unpackbits(row.numpy().view(np.uint8), bitorder="little")
            for t in text_ids:
                want = rec.is_prefix(so_far + vocab.token_bytes[t])
                assert bool(bits[t]) == want, (so_far, vocab.token_bytes[t])
            assert bool(bits[0]) == lark_accepts(parser, so_far.decode()), so_far
            assert not bits[len(vocab.token_bytes) :].any()
            assert m.is_accepting() == bool(bits[0])
            allowed = [t for t in text_ids if bits[t]]
            assert m.can_continue() == bool(allowed)
            # Advance by an allowed token mostly, sometimes by any token (refused ones change nothing).
            t = data.draw(st.sampled_from(allowed if allowed and data.draw(st.booleans()) else text_ids))
            ok = m.advance(t)
            assert ok == bool(bits[t])
            if ok:
                so_far += vocab.token_bytes[t]

    check()


def test_matcher_protocol() -> None:
    text, alphabet = GRAMMARS["left_recursion"]
    vocab = _tiny_vocab(alphabet)
    c = cfg(text, vocab)
    tok = {b: i for i, b in enumerate(vocab.token_bytes) if b}
    m = c.matcher()
    assert not m.advance(tok[b"+"]) and not m.advance(0)
    assert m.advance(tok[b"1"]) and m.is_accepting()
    twin = m.clone()
    assert twin.advance(tok[b"+"]) and not twin.is_accepting()
    assert m.is_accepting()  # the clone did not touch the original
    assert m.advance(0) and m.is_terminated() and not m.can_continue()
    row = torch.ones(vocab.n_words, dtype=torch.int32)
    m.fill_bitmask(row)
    assert not row.any() and not m.advance(tok[b"1"])
    assert not twin.advance(0) and twin.advance(tok[b"2"]) and twin.advance(0)


@pytest.mark.parametrize(
    ("text", "line", "col", "fragment"),
    [
        ("start: foo\n", 1, 8, "foo"),
        ('start: "a"\n  | (\n', 2, 6, "expected a value"),
        ("start: /a(?=b)/\n", 1, 9, "lookahead"),
        ('start: "a"\n%ignore X\n', 2, 9, "X"),
    ],
)
def test_grammar_errors_are_positioned(text: str, line: int, col: int, fragment: str) -> None:
    with pytest.raises(GrammarError) as info:
        parse_grammar(text)
    err = info.value
    assert err.span is not None and (err.span.line, err.span.col) == (line, col), err.render()
    assert fragment in err.message


def test_grammar_errors_without_position() -> None:
    with pytest.raises(GrammarError, match="no rule 'start'"):
        parse_grammar('x: "a"\n')
    with pytest.raises(GrammarError, match="matches no string"):
        build_rtn(parse_grammar('start: "a" start\n'))
    with pytest.raises(GrammarError, match="flags"):
        parse_grammar("start: /a/s\n")


def test_limits() -> None:
    text, alphabet = GRAMMARS["ebnf"]
    with pytest.raises(GrammarLimitError):
        cfg(text, _tiny_vocab(alphabet), limits=Limits(max_dfa_states=3))
    # binding classifies lazily (no (state, token) limit); the eager classification keeps its limit
    vocab = _tiny_vocab(alphabet)
    cfg(text, vocab, limits=Limits(max_token_transitions=5))
    with pytest.raises(GrammarLimitError):
        classify(build_rtn(parse_grammar(text)), vocab, Limits(max_token_transitions=5))
