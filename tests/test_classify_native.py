"""A first visit's classification in one compiled call (`trie_walk_c.TrieWalk.classify`, `StateRows._classify`)
against the walk it replaces: `StateRows._walk_trie` (`one_call = False`: Python between the compiled root
groups, shared-walk look-ups, first bytes and walk), and the pure-Python walk (`cfg_walk.NATIVE` off). Every
state's inside row, uncertain ranks and walked-token count must be the same, on random grammars and on JSON
schemas, while the tables grow (a new TrieWalk, a new memo of shared walks) and whichever grammar filled
the per-vocabulary shared walks first.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cfg_walk import grammars, rtn_of, vocabularies

from decc.grammars import Vocabulary, compile_json_schema
from decc.grammars.contextfree import cfg_loops, cfg_walk
from decc.grammars.contextfree.cfg_grammar import parse_grammar
from decc.grammars.contextfree.cfg_rows import StateRows, vocab_order
from decc.grammars.contextfree.rtn import RTN

pytestmark = pytest.mark.skipif(
    cfg_walk.compiled is None, reason="the C extension trie_walk_c is not built in this install"
)


@pytest.fixture(autouse=True)
def _compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled walks on, `DECC_PURE_PYTHON` or not (the oracles turn them off where they need to)."""
    monkeypatch.setattr(cfg_walk, "NATIVE", True)


def _rows(
    rtn: RTN, vocab: Vocabulary, one_call: bool, budget: int | None, wide_from: int | None
) -> StateRows:
    rows = StateRows(rtn, vocab, vocab_order(vocab))
    rows.one_call = one_call
    if budget is not None:
        rows.trie_budget = budget
    if wide_from is not None:
        rows.pair_walk_from = wide_from
    return rows


def _classify_all(rows: StateRows, rtn: RTN) -> StateRows:
    rows.rows(np.arange(rtn.n_states, dtype=np.int64))
    return rows


def _assert_same(new: StateRows, ref: StateRows, n: int) -> None:
    assert new.walked == ref.walked
    for g in range(n):
        assert (new.buf[new.row_of[g]] == ref.buf[ref.row_of[g]]).all(), g
        assert new.uncertain[g] is not None and ref.uncertain[g] is not None
        assert new.uncertain[g].dtype == np.int64, g
        assert np.array_equal(new.uncertain[g], ref.uncertain[g]), g


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    grammars(),
    grammars(),
    vocabularies(),
    st.sampled_from([None, 1, 7, 40]),
    st.sampled_from([None, 0, 5]),
    st.sampled_from([0, 2, None]),
    st.booleans(),
)
def test_one_call_classifies_like_the_python_glue_and_the_pure_python_walk(
    a: str, b: str, vocab: Vocabulary, budget: int | None, wide_from: int | None, few: int | None, fresh: bool
) -> None:
    """Two grammars over one vocabulary (the second meets the regions and their first-byte memos the first
    left); small budgets send states to the pair walk, a small `pair_walk_from` sends the wide ones back to
    `_walk_trie`, a small `FEW` makes deeper trie nodes take their tokens from the shared walks."""
    default, default_native = cfg_walk.FEW, cfg_walk.NATIVE
    cfg_walk.FEW = default if few is None else few
    try:
        if fresh:
            cfg_loops.regions(vocab).clear()
        for text in (a, b):
            rtn = rtn_of(text)
            got = _classify_all(_rows(rtn, vocab, True, budget, wide_from), rtn)
            assert got._trie is not None and got._trie.native is not None
            _assert_same(got, _classify_all(_rows(rtn, vocab, False, budget, wide_from), rtn), rtn.n_states)
            cfg_walk.NATIVE = False
            try:
                pure = _classify_all(_rows(rtn, vocab, True, budget, wide_from), rtn)
                assert pure._trie is not None and pure._trie.native is None
            finally:
                cfg_walk.NATIVE = default_native
            _assert_same(got, pure, rtn.n_states)
    finally:
        cfg_walk.FEW, cfg_walk.NATIVE = default, default_native


_LETTERS = [bytes([c]) for c in range(ord("a"), ord("z") + 1)]
_JSON = [b'"', b",", b":", b"{", b"}", b"[", b"]", b" ", b"0", b"1", b"9", b"-", b".", b"e", b"\\", b"\\n"]
_TOKENS: list[bytes | None] = [None, *_JSON, *_LETTERS, b"\xc3", b"\xa9", b"\xc3\xa9"]
_TOKENS += [x + y for x in _LETTERS for y in _LETTERS[:8]] + [x + b'"' for x in _LETTERS]
_TOKENS += [
    b'":',
    b'",',
    b'"}',
    b'":"',
    b'{"',
    b'["',
    b'"]',
    b"true",
    b"false",
    b"null",
    b"12",
    b"0.",
    b'\\"',
]
_TOKENS += [b'"' + x for x in _LETTERS[:10]] + [b"ab" + x for x in _LETTERS]

_SCHEMAS = [
    {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a"]},
    {"type": "array", "items": {"type": "string", "enum": ["abc", "abd", "x\u00e9"]}},
    {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 6},
            "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-f]+$"}},
            "n": {"type": "number"},
            "o": {"type": "object", "additionalProperties": {"type": "boolean"}},
        },
        "required": ["name", "tags"],
        "additionalProperties": False,
    },
    {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}, {"type": "array"}]},
    {"type": "object", "additionalProperties": {"type": "string"}},
]


@pytest.mark.parametrize("index", range(len(_SCHEMAS)))
@pytest.mark.parametrize("budget", [None, 30])
def test_one_call_classifies_json_schemas_like_the_python_glue(
    index: int, budget: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real grammars (JSON schemas: string bodies with escapes and UTF-8, keys, numbers) over a JSON-like
    vocabulary, classified while their rules are built one at a time (so the tables grow, their dead state
    moves and the TrieWalk with its memo of shared walks is made again), with small tables at first."""
    grammar = compile_json_schema(_SCHEMAS[index], engine="grammar")
    vocab = Vocabulary.from_token_bytes(_TOKENS, eos_id=0)
    monkeypatch.setattr(StateRows, "first_capacity", 16)
    out = []
    for one_call in (True, False):
        rtn = RTN(grammar)
        rows = _rows(rtn, vocab, one_call, budget, None)
        grew = set()
        for r in range(rtn.n_rules):
            rtn.enter(r)
            rows.rows(np.arange(rtn.n_states, dtype=np.int64))
            grew.add(rows.dead)
        assert len(grew) > 1
        out.append((rtn, rows))
    (rtn, got), (ref_rtn, ref) = out
    assert rtn.n_states == ref_rtn.n_states
    _assert_same(got, ref, rtn.n_states)


def test_a_memoized_shared_walk_is_asked_once_per_state_and_depth() -> None:
    """The compiled classification asks `_shared` for a state's shared walk at a depth once per TrieWalk
    (the Python glue, once per visit that meets it)."""
    body = '/"[a-z]*"/'
    text = f'start: "{{" {body} ":" {body} ("," {body} ":" {body})* "}}"\n'
    vocab = Vocabulary.from_token_bytes(_TOKENS, eos_id=0)
    counts = []
    for one_call in (True, False):
        rtn = RTN(parse_grammar(text)).build_all()
        rows = _rows(rtn, vocab, one_call, None, None)
        asked: list[tuple[int, int]] = []
        shared = rows._shared

        def counting(s: int, d: int, shared=shared, asked=asked) -> object:  # noqa: ANN001
            asked.append((s, d))
            return shared(s, d)

        rows._shared = counting  # type: ignore[method-assign]
        for g in range(rtn.n_states):  # one state at a time: a visit each
            rows.rows(np.array([g], dtype=np.int64))
        counts.append(asked)
    assert len(counts[0]) == len(set(counts[0]))
    assert set(counts[0]) <= set(counts[1])


def test_states_flagged_off_loop_have_no_shared_walk() -> None:
    """A rule with no wide state flags all its states `off_loop` when taken in, a rule with loops those off
    them when its loops are first looked at (the compiled walks then ask nothing for them): each flagged
    state is indeed on no loop (`_loop_key` None), and string bodies' rules have some flagged and some not."""
    vocab = Vocabulary.from_token_bytes(_TOKENS, eos_id=0)
    n_flagged = n_mixed = 0
    for schema in _SCHEMAS:
        rtn = RTN(compile_json_schema(schema, engine="grammar")).build_all()
        rows = _classify_all(_rows(rtn, vocab, True, None, None), rtn)
        flagged = np.flatnonzero(rows.off_loop[: rtn.n_states]).tolist()
        assert all(rows._loop_key(s) is None for s in flagged)
        n_flagged += len(flagged)
        for r in {rtn.rule_at[s] for s in range(rtn.n_states) if not rows.off_loop[s]}:
            lo, hi = rtn.span(r)
            n_mixed += bool(rows.off_loop[lo:hi].any())
    assert n_flagged and n_mixed
