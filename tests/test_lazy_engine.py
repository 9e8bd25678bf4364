"""The lazy grammar engine: per-state token rows computed when a mask first needs them.

Masks are checked against two oracles: the eager classification of every state (`cfg_rows.classify`,
combined here independently of the matcher) and the byte-level recognizer (a token is allowed iff its
bytes extend the text so far to a viable prefix).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from decc.grammars import GrammarError, Vocabulary, cfg
from decc.grammars.contextfree.cfg_grammar import parse_grammar
from decc.grammars.contextfree.cfg_rows import classify
from decc.grammars.contextfree.rtn import build_rtn

ALPHABET = "abc,"


def _vocab() -> Vocabulary:
    singles = [c.encode() for c in ALPHABET]
    pairs = [(a + b).encode() for a, b in itertools.product(ALPHABET, repeat=2)]
    triples = [(a + b + c).encode() for a, b, c in itertools.product(ALPHABET, repeat=3)][::5]
    tokens: list[bytes | None] = [None, *singles, *pairs, *triples]  # id 0 is EOS
    return Vocabulary.from_token_bytes(tokens, eos_id=0, size=len(tokens) + 3)


VOCAB = _vocab()

_literal = st.text(alphabet=ALPHABET, min_size=1, max_size=3).map(lambda s: f'"{s}"')


@st.composite
def grammars(draw: st.DrawFn) -> str:
    """A random Lark grammar of 1-4 rules over ALPHABET: literals, calls (any recursion), ?, *, +."""
    n = draw(st.integers(1, 4))
    names = [f"r{i}" for i in range(n)]
    element = st.one_of(_literal, _literal, st.sampled_from(names))
    item = st.tuples(element, st.sampled_from(["", "", "?", "*", "+"])).map("".join)
    seq = st.lists(item, min_size=0, max_size=3).map(lambda xs: " ".join(xs))
    lines = ["start: r0"]
    for name in names:
        alts = draw(st.lists(seq, min_size=1, max_size=3))
        lines.append(f"{name}: " + " | ".join(alts))
    return "\n".join(lines) + "\n"


def _eager_mask(rows: tuple, constraint, chart) -> np.ndarray:  # noqa: ANN001
    """The mask from the eager classification: inside rows OR'd, uncertain tokens simulated, EOS if done."""
    inside, inside_of, uncertain = rows
    states = chart[-1].scan_states()
    mask = np.zeros(VOCAB.n_words, dtype=np.uint32)
    for g in states.tolist():
        mask |= inside[inside_of[g]].view(np.uint32)
        for t in uncertain[g].tolist():
            if constraint.recognizer.advance_bytes(chart, VOCAB.token_bytes[t]) is not None:
                mask[t >> 5] |= np.uint32(1 << (t & 31))
    if chart[-1].accept:
        mask[0] |= np.uint32(1)
    return mask


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammars(), st.data())
def test_lazy_masks_equal_eager_masks_and_the_recognizer(text: str, data: st.DataObject) -> None:
    try:
        rtn = build_rtn(parse_grammar(text))
    except GrammarError:
        assume(False)
    constraint = cfg(text, VOCAB)
    eager = classify(rtn, VOCAB)
    rec = constraint.recognizer
    m = constraint.matcher()
    row = torch.zeros(VOCAB.n_words, dtype=torch.int32)
    so_far = b""
    for _ in range(data.draw(st.integers(0, 8))):
        m.fill_bitmask(row)
        lazy = row.numpy().view(np.uint32).copy()
        assert (lazy == _eager_mask(eager, constraint, m.chart)).all(), (text, so_far)
        bits = np.unpackbits(lazy.view(np.uint8), bitorder="little")
        for t in VOCAB.text_ids.tolist():
            assert bool(bits[t]) == rec.is_prefix(so_far + VOCAB.token_bytes[t]), (text, so_far, t)
        allowed = np.flatnonzero(bits[1 : VOCAB.size]) + 1
        if not len(allowed):
            break
        t = int(data.draw(st.sampled_from(allowed.tolist())))
        assert m.advance(t)
        so_far += VOCAB.token_bytes[t]


def test_binding_classifies_no_state_until_a_mask_needs_it() -> None:
    """A grammar of many rules binds without walking the vocabulary; one mask classifies only its states."""
    rules = "\n".join(f'r{i}: "a{i % 10}" "," r{i + 1} | "b"' for i in range(200))
    text = f'start: r0\n{rules}\nr200: "c"\n'
    vocab = Vocabulary.from_token_bytes([None, *[bytes([b]) for b in range(32, 127)]], eos_id=0)
    constraint = cfg(text, vocab)
    assert constraint.rows.walked == 0
    m = constraint.matcher()
    m.fill_bitmask(torch.zeros(vocab.n_words, dtype=torch.int32))
    done = int((constraint.rows.row_of >= 0).sum())
    assert 0 < done <= 3 < constraint.n_states


def test_rollback_undoes_accepted_tokens() -> None:
    """rollback(n) returns the matcher to where it was n accepted tokens ago (EOS included), masks too."""
    text = 'start: item ("," item)*\nitem: "a" | "b" item\n'
    vocab = VOCAB
    constraint = cfg(text, vocab)
    ids = {vocab.token_bytes[i]: i for i in vocab.text_ids.tolist()}
    m = constraint.matcher()
    row = torch.zeros(vocab.n_words, dtype=torch.int32)
    seen = []
    for tok in (b"b", b"a,", b"b", b"a"):
        m.fill_bitmask(row)
        seen.append((row.clone(), m.is_accepting()))
        assert m.advance(ids[tok])
    assert m.advance(0) and m.is_terminated()
    m.rollback(1)
    assert not m.is_terminated() and m.is_accepting()
    for k in range(4, 0, -1):
        m.rollback(1)
        m.fill_bitmask(row)
        assert torch.equal(row, seen[k - 1][0]) and m.is_accepting() == seen[k - 1][1]
    assert m.advance(ids[b"a"]) and m.is_accepting()
    m.rollback(1)
    try:
        m.rollback(1)
    except ValueError:
        pass
    else:
        raise AssertionError("rolling back past the start must fail")


def test_an_unproductive_rule_beside_a_nullable_one_binds() -> None:
    """A rule that derives no finite string has no RTN states; computing nullability skips it (it used to
    index past the state table)."""
    constraint = cfg('start: r0\nr0:  | r1\nr1: "a" r1 "a"\n', VOCAB)
    m = constraint.matcher()
    assert m.is_accepting() and not m.can_continue()
