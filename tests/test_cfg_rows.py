"""`cfg_rows.StateRows` beyond the walks themselves: what it keeps between first visits (the loops found in a
growing RTN) and what it shares between grammars (lexeme token automata by DFA contents)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars import Vocabulary, compile_json_schema, disk_cache
from decc.grammars.automata.dfa import ByteDFA
from decc.grammars.contextfree import cfg_walk
from decc.grammars.contextfree.cfg_grammar import Lexeme, parse_grammar
from decc.grammars.contextfree.cfg_rows import (
    StateRows,
    exit_tokens,
    exit_tokens_py,
    lexeme_automaton,
    vocab_order,
)
from decc.grammars.contextfree.rtn import RTN
from decc.grammars.limits import DEFAULT_LIMITS

LETTERS = [bytes([c]) for c in range(ord("a"), ord("q") + 1)]
TOKENS: list[bytes | None] = [None, b'"', b'",', b'":', b",", b":", b"{", b"}", *LETTERS]
TOKENS += [x + y for x in LETTERS for y in LETTERS[:6]] + [x + b'"' for x in LETTERS]


def test_loops_found_before_the_rtn_grows_still_classify_like_the_pair_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """States are classified while rules are still being built, so that the tables grow (and move their dead
    state) after the string body's loop was found: every row stays the pair walk's."""
    body = '/"[a-q]*"/'
    # self-recursive rules (not inlined), each with string bodies: 13 rules, about 120 states
    rules = "\n".join(f'r{i}: "{LETTERS[i].decode()}{{" {body} ":" ({body} | r{i}) "}}"' for i in range(12))
    text = "start: " + " | ".join(f"r{i}" for i in range(12)) + "\n" + rules + "\n"
    vocab = Vocabulary.from_token_bytes(TOKENS, eos_id=0)
    lazy, ref = RTN(parse_grammar(text)), RTN(parse_grammar(text)).build_all()  # two, not build_rtn's one
    monkeypatch.setattr(StateRows, "first_capacity", 64)  # (room for about half of the states at first)
    rows = StateRows(lazy, vocab, vocab_order(vocab))
    grew = []
    for r in range(lazy.n_rules):  # one rule at a time: classify what is built so far
        lazy.enter(r)
        rows.rows(np.arange(lazy.n_states, dtype=np.int64))
        grew.append(rows.dead)
    assert len(set(grew)) > 1  # the tables did grow after the first loops were found
    n = lazy.n_states  # the grown tables hold the RTN's rows, dead entries renamed, as taking them in once
    assert np.array_equal(rows.table[:n], np.where(lazy.table[:n] >= 0, lazy.table[:n], rows.dead))
    assert np.array_equal(rows.n_live[:n], (lazy.table[:n] >= 0).sum(axis=1))
    reference = StateRows(ref, vocab, vocab_order(vocab))
    reference.reference = True
    reference.rows(np.arange(ref.n_states, dtype=np.int64))
    assert lazy.n_states == ref.n_states
    for g in range(ref.n_states):  # the lazy RTN numbers rules in build order: compare by rule and offset
        r = int(ref.rule_of[g])
        h = lazy.span(r)[0] + g - ref.span(r)[0]
        assert (rows.buf[rows.row_of[h]] == reference.buf[reference.row_of[g]]).all(), g
        assert np.array_equal(rows.uncertain[h], reference.uncertain[g]), g


def test_equal_lexemes_of_different_schemas_share_one_token_automaton() -> None:
    """A lexeme compiled for two schemas is two DFA objects with one language: one token automaton and one
    set of exit tokens serve both (no second build, disk cache or not)."""
    disk_cache.set_disk_cache(False)
    try:
        schema = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 7}}}
        grammar = compile_json_schema(schema, engine="grammar")
        dfas = [body.dfa for _, body in grammar.rules if isinstance(body, Lexeme)]
        assert dfas
        a = dfas[0]
        b = dataclasses.replace(a)  # a new object with the same contents, as another schema's compile makes
        assert a is not b
        vocab = Vocabulary.from_token_bytes(TOKENS, eos_id=0)
        assert lexeme_automaton(a, vocab, DEFAULT_LIMITS) is lexeme_automaton(b, vocab, DEFAULT_LIMITS)
        assert exit_tokens(a, vocab) is exit_tokens(b, vocab)
    finally:
        disk_cache.set_disk_cache(None)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 10), st.integers(0, 2**32 - 1), st.sampled_from([0.3, 0.7, 0.95]), st.booleans())
def test_exit_tokens_of_the_pair_walk_are_the_byte_walks(
    n: int, seed: int, dead: float, native: bool
) -> None:
    """Random DFAs over the test vocabulary's bytes: the pair walk (compiled or numpy) finds, per state, the
    tokens that pass an accepting state and then die, as the byte-at-a-time walk does."""
    rng = np.random.default_rng(seed)
    trans = rng.integers(0, n, size=(n, 256)).astype(np.int32)
    trans[rng.random((n, 256)) < dead] = -1
    dfa = ByteDFA(trans, rng.random(n) < 0.4)
    vocab = Vocabulary.from_token_bytes(TOKENS, eos_id=0)
    default = cfg_walk.NATIVE
    cfg_walk.NATIVE = native and cfg_walk.compiled is not None
    try:
        got = exit_tokens(dfa, vocab)
    finally:
        cfg_walk.NATIVE = default
    want = exit_tokens_py(dfa, vocab)
    assert len(got) == len(want) == n
    for q in range(n):
        assert np.array_equal(got[q], want[q]), q
