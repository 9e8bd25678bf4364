"""`cfg_loops.Loops` against an independent oracle: the loops of a rule's byte table are the classes of
wide states that reach each other through wide states (transitive closure), a state being on one when it
reaches itself."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.grammars import Vocabulary
from decc.grammars.contextfree import cfg_walk
from decc.grammars.contextfree.cfg_loops import (
    Loops,
    joined_ranks,
    loop_classes,
    region_key,
    region_walk,
    region_walk_py,
)
from decc.grammars.contextfree.cfg_rows import vocab_order


@st.composite
def tables(draw: st.DrawFn) -> tuple[np.ndarray, int, int, int, int]:
    """A byte table of a rule at states lo..hi-1 (inside a larger table, `dead` past its end), with wide
    states (many live bytes) and narrow ones."""
    lo = draw(st.integers(0, 3))
    n = draw(st.integers(1, 12))
    hi = lo + n
    dead = hi + draw(st.integers(0, 3))
    table = np.full((dead + 1, 256), dead, dtype=np.int32)
    for g in range(lo, hi):
        live = draw(st.integers(0, 40))
        targets = draw(st.lists(st.integers(lo, hi - 1), min_size=1, max_size=3))
        for b in range(live):
            table[g, b] = targets[b % len(targets)]
    return table, dead, lo, hi, draw(st.sampled_from([1, 8, 16]))


def _oracle(table: np.ndarray, dead: int, lo: int, hi: int, wide: int) -> list[frozenset[int]]:
    n = hi - lo
    is_wide = (table[lo:hi] != dead).sum(axis=1) >= wide
    step = np.zeros((n, n), dtype=bool)
    for g in range(n):
        for t in table[lo + g][table[lo + g] != dead].tolist():
            if is_wide[g] and is_wide[t - lo]:
                step[g, t - lo] = True
    reach = step.copy()  # reach[a, b]: b after >= 1 wide-to-wide step from a
    for _ in range(n):
        reach |= (reach.astype(np.int64) @ step.astype(np.int64)) > 0
    return [
        frozenset(lo + b for b in range(n) if reach[a, b] and reach[b, a]) if reach[a, a] else frozenset()
        for a in range(n)
    ]


@settings(max_examples=200, deadline=None)
@given(tables())
def test_loops_are_the_wide_states_that_reach_each_other(case: tuple[np.ndarray, int, int, int, int]) -> None:
    table, dead, lo, hi, wide = case
    loops = Loops(table, dead, lo, hi, wide)
    want = _oracle(table, dead, lo, hi, wide)
    for g in range(lo, hi):
        c = int(loops.comp[g - lo])
        got = frozenset((np.flatnonzero(loops.comp == c) + lo).tolist()) if c >= 0 else frozenset()
        assert got == want[g - lo], g
        if c >= 0:
            assert set(loops.members(g).tolist()) == want[g - lo]


ALPHA = b'abc"'


@st.composite
def loop_tables(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """A loop's member states 0..n-1 over a few bytes, made from 1-3 prototype rows so that some members
    are copies of others (equivalent), with exit states n..n+2 and the dead state n+3; flags per member."""
    n_proto = draw(st.integers(1, 3))
    n = draw(st.integers(n_proto, 7))
    proto_of = [
        *range(n_proto),
        *draw(st.lists(st.integers(0, n_proto - 1), min_size=n - n_proto, max_size=n - n_proto)),
    ]
    exits, dead = [n, n + 1, n + 2], n + 3
    target = st.one_of(st.tuples(st.just("p"), st.integers(0, n_proto - 1)), st.sampled_from([*exits, dead]))
    protos = [
        (draw(st.lists(target, min_size=len(ALPHA), max_size=len(ALPHA))), draw(st.booleans()),
         draw(st.lists(st.booleans(), min_size=len(ALPHA), max_size=len(ALPHA))))
        for _ in range(n_proto)
    ]  # fmt: skip
    table = np.full((dead + 1, 256), dead, dtype=np.int32)
    table[exits] = ord("a")  # exit states: somewhere outside the loop, never read by its walk
    exit_point = np.zeros(dead + 1, dtype=bool)
    enters = np.zeros((dead + 1, 256), dtype=bool)
    for g in range(n):
        row, flag, enter = protos[proto_of[g]]
        exit_point[g] = flag
        for b, t, e in zip(ALPHA, row, enter, strict=True):
            if isinstance(t, tuple):  # any member copying that prototype
                t = draw(st.sampled_from([x for x in range(n) if proto_of[x] == t[1]]))
            table[g, b] = t
            enters[g, b] = e
    return np.arange(n, dtype=np.int64), table, exit_point, enters, dead


def _distinguishable(
    members: list[int], table: np.ndarray, exit_point: np.ndarray, enters: np.ndarray
) -> set:
    """The pairs of members that some walk tells apart (table filling, to a fixed point): the oracle."""
    inside = set(members)
    apart = {
        (p, q)
        for p in members
        for q in members
        if exit_point[p] != exit_point[q] or (enters[p] != enters[q]).any()
    }
    changed = True
    while changed:
        changed = False
        for p in members:
            for q in members:
                if (p, q) in apart:
                    continue
                for b in range(256):
                    x, y = int(table[p, b]), int(table[q, b])
                    if (
                        (x in inside) != (y in inside)
                        or (x not in inside and x != y)
                        or (x in inside and (x, y) in apart)
                    ):
                        apart.add((p, q))
                        changed = True
                        break
    return apart


@settings(max_examples=150, deadline=None)
@given(
    loop_tables(),
    st.lists(
        st.binary(min_size=1, max_size=5).map(lambda w: bytes(ALPHA[b % 4] for b in w)),
        min_size=1,
        max_size=40,
    ),
)
def test_equivalent_loop_states_share_one_key_and_walk_alike(case, words: list[bytes]) -> None:  # noqa: ANN001
    """Members that no walk tells apart (the oracle) get one region key, members told apart get different
    ones; and members with one key walk every token alike (`region_walk` from each, exits by number)."""
    members, table, exit_point, enters, dead = case
    classes = loop_classes(members, table, dead, exit_point, enters)
    apart = _distinguishable(members.tolist(), table, exit_point, enters)
    keys = {g: region_key(g, members, table, dead, exit_point, enters) for g in members.tolist()}
    for p in members.tolist():
        for q in members.tolist():
            assert (classes[p] == classes[q]) == ((p, q) not in apart), (p, q)
            # a digest is up to renaming of the exits (numbered as met): members apart only by which
            # state they exit to share it, and their exit lists tell them apart
            assert (keys[p] == keys[q]) == ((p, q) not in apart), (p, q)
    vocab = Vocabulary.from_token_bytes([None, *(bytes([b]) for b in ALPHA), *words], eos_id=0)
    order = vocab_order(vocab)
    for depth in (1, 2):
        walks = {}
        for g, (key, exits) in keys.items():
            r = region_walk(
                g, depth, members, exits, table, dead, exit_point, enters, vocab, order.rank_of,
                order.rank_bytes, order.first_bounds, 1000,
            )  # fmt: skip
            seen = (r.inside.tolist(), r.uncertain.tolist(), r.leaving)
            assert walks.setdefault(key, seen) == seen, g


def test_copies_of_a_loop_state_share_one_key() -> None:
    """A state and its copy (the same bytes to the same places: a string body rebuilt after an escape) are
    one region, whichever the walk enters by."""
    members = np.arange(2, dtype=np.int64)
    dead = 3
    table = np.full((dead + 1, 256), dead, dtype=np.int32)
    table[0, ord("a")] = table[1, ord("a")] = 0  # both go on to state 0 on `a`, to state 1 on `b`
    table[0, ord("b")] = table[1, ord("b")] = 1
    table[0, ord('"')] = table[1, ord('"')] = 2  # and leave to state 2 on a quote
    flags = np.zeros(dead + 1, dtype=bool)
    enters = np.zeros((dead + 1, 256), dtype=bool)
    a, b = (region_key(g, members, table, dead, flags, enters) for g in (0, 1))
    assert a == b


@settings(max_examples=300, deadline=None)
@given(
    loop_tables(),
    st.lists(
        st.binary(min_size=1, max_size=6).map(lambda w: bytes((*ALPHA, ord("z"))[b % 5] for b in w)),
        min_size=1,
        max_size=60,
    ),
    st.integers(0, 3),
    st.sampled_from([0, 2, 1000]),
)
def test_compiled_region_walk_is_the_pair_walks(
    case: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int],
    words: list[bytes],
    depth: int,
    max_leaving: int,
) -> None:
    """The compiled region walk (tokens in rank order, resumed from the shared prefix's states) gives the
    regions `region_walk_py` (the pair walk) gives, from every member, at every depth, with or without
    `leaving` (prefixes, repeated tokens and bytes that die at once included)."""
    if cfg_walk.compiled is None:
        return
    members, table, exit_point, enters, dead = case
    vocab = Vocabulary.from_token_bytes([None, *(bytes([b]) for b in ALPHA), *words, *words[:3]], eos_id=0)
    order = vocab_order(vocab)
    for g in members.tolist():
        _, exits = region_key(g, members, table, dead, exit_point, enters)
        args = (g, depth, members, exits, table, dead, exit_point, enters, vocab, order.rank_of,
                order.rank_bytes, order.first_bounds, max_leaving)  # fmt: skip
        got, want = region_walk(*args), region_walk_py(*args)
        assert got.inside.dtype == want.inside.dtype and got.uncertain.dtype == want.uncertain.dtype
        assert got.inside.tolist() == want.inside.tolist(), g
        assert got.uncertain.tolist() == want.uncertain.tolist(), g
        assert got.leaving == want.leaving, g
        assert got.leaving_lo.tolist() == want.leaving_lo.tolist(), g
        assert got.n_exits == want.n_exits


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=5).map(lambda w: bytes(ALPHA[b % 4] for b in w)), max_size=40))
def test_compiled_rank_lcps_are_the_common_prefix_with_the_previous_rank(words: list[bytes]) -> None:
    """The compiled region walk's prefix lengths are each rank's common prefix with the one before (0 for
    the first): one taken too long would reuse a walk of bytes the token does not have. Offsets that do not
    fit the bytes are refused rather than read past."""
    if cfg_walk.compiled is None:
        return
    vocab = Vocabulary.from_token_bytes([None, *(bytes([b]) for b in ALPHA), *words], eos_id=0)
    ranked = vocab_order(vocab).rank_bytes
    blob, offsets, lcps = joined_ranks(ranked)
    want = [0, *(len(os.path.commonprefix([a, b])) for a, b in itertools.pairwise(ranked))]
    assert np.frombuffer(lcps, dtype=np.int64).tolist() == want
    with pytest.raises(ValueError):
        cfg_walk.compiled.rank_lcps(blob[:-1], offsets)
