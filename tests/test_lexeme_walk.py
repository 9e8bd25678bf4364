"""Counted lexemes: the automaton made from a shared bounds-free walk (`TokenAutomaton.from_walk`) is the one
`TokenAutomaton.build` makes (the oracle), array for array and row for row, and the eager counter rows are
the rows `Counts.valid` gives pair by pair."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars import Vocabulary, compile_json_schema
from decc.grammars.automata.dfa import ByteDFA
from decc.grammars.tokens.token_automaton import CountedWalk, TokenAutomaton, pack_bits, set_bits

# A tiny vocabulary whose tokens cross the string's quotes, escapes and several characters at once: the
# bounds decide the pairs that enter and leave the body within one token (`"ab"`), or end in it (`"ab`).
PIECES = [b'"', b"a", b"b", b"\\", b"u", b"0", b"n", b'"a', b'a"', b"aa", b"aaa", b'ab"', b'""', b'"ab"']
PIECES += [
    b"\\n",
    b"\\u00",
    b"e9",
    b'aaaa"',
    b'"aaaa',
    b"a" * 9,
    b'"' + b"a" * 12 + b'"',
    b"\xc3\xa9",
    b"\xc3",
]
TINY = Vocabulary.from_token_bytes([*PIECES, None], eos_id=len(PIECES))

BODIES = [
    {"type": "string"},
    {"type": "string", "pattern": "^[ab]*$"},
    {"type": "string", "pattern": "^[^ ].*$"},
    {"type": "string", "format": "email"},
]


@pytest.fixture(scope="module")
def real() -> Vocabulary:
    from decc.runtime.model import load_tokenizer

    return Vocabulary.from_tokenizer(load_tokenizer("default"))


def _counted(body: dict, lo: int, hi: int) -> ByteDFA | None:
    try:
        dfa = compile_json_schema({**body, "minLength": lo, "maxLength": hi})
    except Exception:  # (an email of at most a few characters, say)
        return None
    return dfa if len(dfa.bounds) == 1 else None  # (short bounds are unrolled: no counter)


def _same(a: TokenAutomaton, b: TokenAutomaton) -> None:
    for name in ("bitmask", "indptr", "token_ids", "next_state", "n_allowed", "eos_ids", "loop_of"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.loops == b.loops
    ca, cb = a.counts, b.counts
    assert ca is not None and cb is not None
    for name in ("seg", "delta", "exited", "off", "length", "flat"):
        assert np.array_equal(getattr(ca, name), getattr(cb, name)), name
    assert ca.reach == cb.reach and ca.built == cb.built
    assert ca.cache.keys() == cb.cache.keys()
    for k, (row, n) in ca.cache.items():
        assert np.array_equal(row.numpy(), cb.cache[k][0].numpy()) and n == cb.cache[k][1], k


def _check_bounds(vocab: Vocabulary, body: dict, bounds: list[tuple[int, int]]) -> int:
    """`from_walk` against `build` for each bounds of `body` whose DFA is counted; how many were."""
    walks: dict[bytes, CountedWalk] = {}
    done = 0
    for lo, hi in bounds:
        dfa = _counted(body, lo, hi)
        if dfa is None:
            continue
        key = dfa.transitions.tobytes() + dfa.seg.tobytes() + dfa.tick.tobytes()
        walk = walks.setdefault(key, CountedWalk.build(dfa, vocab))
        _same(TokenAutomaton.build(dfa, vocab), TokenAutomaton.from_walk(dfa, vocab, walk))
        done += 1
    return done


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.sampled_from(BODIES[:3]),
    bounds=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 60)), min_size=2, max_size=4),
)
def test_walk_shared_across_bounds_tiny(body: dict, bounds: list[tuple[int, int]]) -> None:
    _check_bounds(TINY, body, [(lo, max(lo, hi)) for lo, hi in bounds])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.sampled_from(BODIES),
    bounds=st.lists(st.tuples(st.integers(0, 30), st.integers(16, 300)), min_size=2, max_size=3),
)
def test_walk_shared_across_bounds_real(real: Vocabulary, body: dict, bounds: list[tuple[int, int]]) -> None:
    _check_bounds(real, body, [(lo, max(lo, hi)) for lo, hi in bounds])


def test_the_real_bodies_are_counted(real: Vocabulary) -> None:
    """(The cases above are not all unrolled away.)"""
    for body in BODIES:
        assert _check_bounds(real, body, [(0, 100), (3, 30), (1, 255)]) == 3, body


def test_eager_rows_match_the_pairs(real: Vocabulary) -> None:
    """Every eager row (one per counter signature) is the row `Counts.valid` gives pair by pair."""
    for vocab in (TINY, real):
        for body in BODIES[:3]:
            for lo, hi in [(0, 50), (3, 30), (20, 20), (1, 255)]:
                dfa = _counted(body, lo, hi)
                if dfa is None:
                    continue
                auto = TokenAutomaton.build(dfa, vocab)
                cnt = auto.counts
                assert cnt is not None
                for q in np.flatnonzero(dfa.seg >= 0).tolist():
                    live = dfa.live.get(q)
                    ids, nxt, delta, ex = cnt.pairs(auto, q)
                    for c in np.flatnonzero(live).tolist() if live is not None else []:
                        toks = ids[cnt.valid(q, c, nxt, delta, ex)]
                        want = pack_bits(np.zeros(len(toks), dtype=np.int64), toks, 1, vocab.n_words)[0]
                        if dfa.is_accepting(q, c):
                            set_bits(want, auto.eos_ids)
                        row, n = cnt.cache[(q, cnt.py_sig[int(dfa.seg[q])][c])]
                        assert np.array_equal(row.numpy().view(np.uint32), want) and n == len(toks), (q, c)


def test_lexeme_automata_share_the_walk(real: Vocabulary) -> None:
    """Two bounds of one string body: one walk in the process, and the rows `build` gives."""
    from decc.grammars.contextfree.cfg_rows import lexeme_automaton
    from decc.grammars.disk_cache import set_disk_cache
    from decc.grammars.limits import DEFAULT_LIMITS

    set_disk_cache(False)
    try:
        lexeme_automaton.cache_clear()
        dfas = [_counted({"type": "string"}, 0, hi) for hi in (77, 78)]
        for dfa in dfas:
            assert dfa is not None
            _same(TokenAutomaton.build(dfa, real), lexeme_automaton(dfa, real, DEFAULT_LIMITS))
        info = lexeme_automaton._walk.cache_info()
        assert (info.misses, info.hits) == (1, 1)
        walk = lexeme_automaton.walk(dfas[0], real)
        assert walk is lexeme_automaton.walk(dfas[1], real)
        groups = [v for k, v in walk.memo.items() if k[0] == "groups"]
        assert groups and all(g is not None for g in groups)  # (the string body's rows are shared)
    finally:
        set_disk_cache(None)


@pytest.mark.parametrize("vocab_name", ["tiny", "real"])
def test_rows_for_is_row_pair_by_pair(real: Vocabulary, vocab_name: str) -> None:
    """`rows_for` (one `row` per state and signature) gives each (state, counter) the very tensor `row` does,
    counters past the live ones and states outside the segment included."""
    vocab = TINY if vocab_name == "tiny" else real
    rng = np.random.default_rng(0)
    for body, lo, hi in [(BODIES[0], 0, 40), (BODIES[1], 3, 30), (BODIES[2], 20, 20)]:
        dfa = _counted(body, lo, hi)
        assert dfa is not None
        auto = TokenAutomaton.build(dfa, vocab)
        qs = rng.integers(0, dfa.n_states, 3000)
        cs = rng.integers(0, hi + 90, 3000)
        distinct, index = auto.rows_for(qs, cs)
        assert len({id(t) for t in distinct}) == len(distinct)
        for q, c, k in zip(qs.tolist(), cs.tolist(), index.tolist(), strict=True):
            assert distinct[k] is auto.row(q, c), (q, c)
    plain = TokenAutomaton.build(compile_json_schema({"type": "string"}), vocab)
    distinct, index = plain.rows_for(np.arange(plain.n_states), np.zeros(plain.n_states, dtype=np.int64))
    assert all(distinct[k] is plain.row(q) for q, k in enumerate(index.tolist()))


def test_lexeme_rows_are_the_automaton_rows() -> None:
    """`StateRows._lexeme` in bulk: each unrolled (state, counter) state's row is its automaton row less EOS
    (row 0 where it has no byte), its uncertain ranks the exit tokens' ranks (the former per-state loop)."""
    from decc.grammars.contextfree.cfg_grammar import Lexeme
    from decc.grammars.contextfree.cfg_rows import StateRows, exit_tokens, lexeme_automaton, vocab_order
    from decc.grammars.contextfree.rtn import RTN
    from decc.grammars.limits import DEFAULT_LIMITS

    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "minLength": 2, "maxLength": 40},
            "b": {"type": "string", "pattern": "^[ab]*$", "maxLength": 25},
            "c": {"type": "string"},
        },
    }
    grammar = compile_json_schema(schema, engine="grammar")
    assert any(isinstance(b, Lexeme) and b.dfa.bounds for _, b in grammar.rules)
    rtn = RTN(grammar).build_all()
    rows = StateRows(rtn, TINY, vocab_order(TINY))
    rows.rows(np.arange(rtn.n_states, dtype=np.int64))
    eos = np.zeros(TINY.n_words, dtype=np.uint32)
    set_bits(eos, np.array(sorted(TINY.eos_ids)))
    seen = 0
    for g in np.flatnonzero(rtn.lex_q[: rtn.n_states] >= 0).tolist():
        r = int(rtn.rule_at[g])
        dfa = rtn.lexemes[r]
        auto = lexeme_automaton(dfa, TINY, DEFAULT_LIMITS)
        q, c = int(rtn.lex_q[g]), int(rtn.lex_c[g])
        ranks = np.sort(rows.order.rank_of[exit_tokens(dfa, TINY)[q]])
        assert np.array_equal(rows.uncertain[g], ranks), g
        got = rows.buf[rows.row_of[g]].view(np.uint32)
        if not (rtn.table[g] >= 0).any():
            assert rows.row_of[g] == 0
            continue
        assert np.array_equal(got, auto.row(q, c).numpy().view(np.uint32) & ~eos), g
        seen += bool(dfa.bounds)
    assert seen > 50


def test_shared_walk_automata_round_trip_the_disk_cache(real: Vocabulary) -> None:
    """A counted lexeme's automaton made from the shared walk goes to the disk cache and comes back as
    `build`'s (its rows, tensors shared with other bounds' automata in the process, are stored by content)."""
    from decc.grammars.contextfree.cfg_rows import lexeme_automaton
    from decc.grammars.disk_cache import set_disk_cache
    from decc.grammars.limits import DEFAULT_LIMITS

    set_disk_cache(True)  # (conftest points it at a temporary folder)
    try:
        lexeme_automaton.cache_clear()
        dfas = [_counted({"type": "string"}, lo, hi) for lo, hi in ((2, 91), (0, 92))]
        made = [lexeme_automaton(dfa, real, DEFAULT_LIMITS) for dfa in dfas]
        lexeme_automaton.cache_clear()  # (the process forgets them: the next calls load them)
        for dfa, first in zip(dfas, made, strict=True):
            loaded = lexeme_automaton(dfa, real, DEFAULT_LIMITS)
            assert loaded is not first
            _same(TokenAutomaton.build(dfa, real), loaded)
        assert lexeme_automaton._walk.cache_info().misses == 0  # (loaded: no walk)
    finally:
        set_disk_cache(None)
        lexeme_automaton.cache_clear()
