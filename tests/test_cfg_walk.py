"""The first-visit walks of the grammar engine (cfg_walk.py) against the pair walk they replace.

`StateRows.reference = True` classifies every state with the vectorized (state, token) pair walk, one byte
at a time over every token: an independent oracle for the trie walk, the loop walks shared per vocabulary
(`cfg_loops.regions`), and the fallback past the trie walk's budget. Every state's inside row and uncertain
tokens must be the same, whichever grammar filled the shared walks first.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from decc.grammars import GrammarError, Vocabulary, disk_cache
from decc.grammars.contextfree import cfg_loops, cfg_walk
from decc.grammars.contextfree.cfg_grammar import parse_grammar
from decc.grammars.contextfree.cfg_rows import (
    StateRows,
    accepting_through_nullable,
    call_first,
    call_first_py,
    vocab_order,
)
from decc.grammars.contextfree.rtn import RTN, build_rtn

WIDE = "abcdefghijklmnopq"  # more letters than a loop state needs to count as wide (cfg_rows._WIDE)
ALPHABET = WIDE + '",:{}['


@st.composite
def vocabularies(draw: st.DrawFn) -> Vocabulary:
    """A few hundred random tokens over ALPHABET (all single bytes included, duplicates allowed)."""
    words = draw(st.lists(st.text(alphabet=ALPHABET, min_size=2, max_size=6), min_size=150, max_size=400))
    tokens: list[bytes | None] = [None, *(c.encode() for c in ALPHABET), *(w.encode() for w in words)]
    return Vocabulary.from_token_bytes(tokens, eos_id=0)


_LOOPS = ["/[a-q]+/", "/x[a-q]*/", '/"[a-q]*"/', "/[a-q]([a-q]|,[a-q])*/", '"{" /[a-h]+/ "}"']


@st.composite
def grammars(draw: st.DrawFn) -> str:
    """A random Lark grammar of 1-4 rules mixing literals, calls and loops over the wide letters."""
    n = draw(st.integers(1, 4))
    names = [f"r{i}" for i in range(n)]
    literal = st.text(alphabet=ALPHABET.replace('"', ""), min_size=1, max_size=3).map(lambda s: f'"{s}"')
    element = st.one_of(literal, st.sampled_from(_LOOPS), st.sampled_from(_LOOPS), st.sampled_from(names))
    item = st.tuples(element, st.sampled_from(["", "", "?", "*"])).map("".join)
    seq = st.lists(item, min_size=1, max_size=4).map(" ".join)
    lines = ["start: r0"]
    for name in names:
        lines.append(f"{name}: " + " | ".join(draw(st.lists(seq, min_size=1, max_size=3))))
    return "\n".join(lines) + "\n"


def rtn_of(text: str) -> RTN:
    """The RTN of a drawn grammar (one that does not build: not a case)."""
    try:
        return build_rtn(parse_grammar(text))
    except GrammarError:
        assume(False)
        raise


def _classified(rtn: RTN, vocab: Vocabulary, reference: bool, budget: int | None = None) -> StateRows:
    rows = StateRows(rtn, vocab, vocab_order(vocab))
    rows.reference = reference
    if budget is not None:
        rows.trie_budget = budget
        rows.pair_walk_from = budget  # and the first bytes into wide states go to the pair walk
    rows.rows(np.arange(rtn.n_states, dtype=np.int64))
    return rows


def _assert_same(new: StateRows, ref: StateRows, rtn: RTN) -> None:
    for g in range(rtn.n_states):
        assert (new.buf[new.row_of[g]] == ref.buf[ref.row_of[g]]).all(), g
        assert np.array_equal(new.uncertain[g], ref.uncertain[g]), g


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    grammars(),
    grammars(),
    vocabularies(),
    st.sampled_from([None, 1, 7]),
    st.sampled_from([0, 2, None]),
    st.booleans(),
)
def test_trie_and_shared_loop_walks_classify_like_the_pair_walk(
    a: str, b: str, vocab: Vocabulary, budget: int | None, few: int | None, native: bool
) -> None:
    """Two grammars over one vocabulary, so that the second reuses loop walks the first left in the
    per-vocabulary cache; a small budget sends states to the pair-walk fallback part of the way, and a
    small `FEW` makes deep trie nodes take their tokens from the shared walks too. The trie walk is the
    compiled one or the Python one (where the extension is built)."""
    default, default_native = cfg_walk.FEW, cfg_walk.NATIVE
    cfg_walk.FEW = default if few is None else few
    cfg_walk.NATIVE = native and cfg_walk.compiled is not None
    try:
        for text in (a, b):
            rtn = rtn_of(text)
            _assert_same(_classified(rtn, vocab, False, budget), _classified(rtn, vocab, True), rtn)
    finally:
        cfg_walk.FEW, cfg_walk.NATIVE = default, default_native


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammars(), vocabularies(), st.sampled_from([0, 1, 10_000]))
def test_inside_rows_come_out_alike_from_few_or_many_rank_ranges(
    text: str, vocab: Vocabulary, few: int
) -> None:
    """The inside bitmask is set range by range (few ranges) or from the ranges expanded at once (many):
    both give the pair walk's rows."""
    rtn = rtn_of(text)
    rows = StateRows(rtn, vocab, vocab_order(vocab))
    rows.few_ranges = few
    rows.rows(np.arange(rtn.n_states, dtype=np.int64))
    _assert_same(rows, _classified(rtn, vocab, True), rtn)


def test_a_loop_is_walked_once_per_vocabulary_wherever_it_occurs() -> None:
    """A string body in other rules and other grammars reuses one shared walk, and gives the same rows as
    the pair walk there (what follows the closing quote differs: it is resumed per state)."""
    letters = [bytes([c]) for c in range(ord("a"), ord("z") + 1)]
    tokens: list[bytes | None] = [None, b'"', b'",', b'":', b'a"}', *letters]
    tokens += [x + y for x in letters for y in letters] + [x + b'"' for x in letters]
    vocab = Vocabulary.from_token_bytes(tokens, eos_id=0)
    body = '/"[a-z]*"/'
    texts = [
        f'start: "{{" {body} ":" {body} "}}"\n',
        f'start: "[" item ("," item)* "]"\nitem: {body} | "n"\n',
        f'start: {body} ":" {body}\n',
    ]
    cache = cfg_loops.regions(vocab)
    sizes = []
    for text in texts:
        rtn = build_rtn(parse_grammar(text))
        _assert_same(_classified(rtn, vocab, False), _classified(rtn, vocab, True), rtn)
        sizes.append(len(cache))
    assert sizes[0] > 0 and sizes[-1] == sizes[0], sizes


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=5), min_size=1, max_size=60, unique=True), st.data())
def test_ranges_to_ranks_lists_the_ranks_of_disjoint_ranges(words: list[bytes], data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(0, 80), max_size=12)))
    pairs = [(a, b) for a, b in zip(cuts[::2], cuts[1::2], strict=False)]
    flat = [x for p in reversed(pairs) for x in p]
    expected = sorted(r for a, b in pairs for r in range(a, b))
    assert cfg_walk.ranges_to_ranks(flat).tolist() == expected  # compiled where built
    assert cfg_walk.ranges_to_ranks_py(flat).tolist() == expected
    assert cfg_walk.ranges_to_ranks(flat).dtype == np.int64


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 5), st.data())
def test_bits_of_sets_the_bits_of_the_ids(n_words: int, data: st.DataObject) -> None:
    """Bit t % 32 of word t // 32 for each id t (duplicates allowed), compiled and in numpy."""
    ids = data.draw(st.lists(st.integers(0, max(n_words * 32 - 1, 0)), max_size=40)) if n_words else []
    expected = [0] * n_words
    for t in ids:
        expected[t >> 5] |= 1 << (t & 31)
    for f in (cfg_walk.bits_of, cfg_walk.bits_of_py):
        row = f(np.array(ids, dtype=data.draw(st.sampled_from([np.int64, np.int32]))), n_words)
        assert row.dtype == np.uint32 and row.tolist() == expected


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 4), st.data())
def test_bits_of_ranks_sets_the_bits_of_the_ranks_tokens(n_words: int, data: st.DataObject) -> None:
    """A first visit's inside row: the bits of rank_to_id[r] for each rank r in the [lo, hi) ranges and the
    rank arrays (overlaps allowed), compiled and in numpy (few ranges sliced, many expanded); bad input
    raises instead of writing out of the row."""
    size = n_words * 32
    rank_to_id = np.array(data.draw(st.permutations(range(size))), dtype=np.int64)
    bounds = st.tuples(st.integers(0, size), st.integers(0, size)).map(sorted)
    ranges = [x for lo_hi in data.draw(st.lists(bounds, max_size=2 * cfg_walk.FEW_RANGES + 4)) for x in lo_hi]
    arrays = [
        np.array(a, dtype=np.int64)
        for a in data.draw(st.lists(st.lists(st.integers(0, size - 1)), max_size=3))
    ]
    expected = [0] * n_words
    for r in [
        *(r for i in range(0, len(ranges), 2) for r in range(ranges[i], ranges[i + 1])),
        *(x for a in arrays for x in a),
    ]:
        t = int(rank_to_id[r])
        expected[t >> 5] |= 1 << (t & 31)
    for f in (cfg_walk.bits_of_ranks, cfg_walk.bits_of_ranks_py):
        row = f(ranges, arrays, rank_to_id, n_words)
        assert row.dtype == np.uint32 and row.tolist() == expected
    if cfg_walk.compiled is not None:
        with pytest.raises(IndexError):
            cfg_walk.compiled.bits_of_ranks([0, size + 1], [], rank_to_id, n_words)
        with pytest.raises(IndexError):
            cfg_walk.compiled.bits_of_ranks([], [np.array([-1], dtype=np.int64)], rank_to_id, n_words)
        with pytest.raises(ValueError):
            cfg_walk.compiled.bits_of_ranks([], [np.array([0], dtype=np.int16)], rank_to_id, n_words)


def test_loop_walks_come_back_from_the_disk_cache_unchanged(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """A new process (empty in-memory caches, an equal vocabulary) reads the loop walks from disk, and
    classifies like the pair walk; a damaged file is a miss, walked again."""
    monkeypatch.setenv("DECC_CONSTRAINT_CACHE", str(tmp_path))
    disk_cache.set_disk_cache(None)
    letters = [bytes([c]) for c in range(ord("a"), ord("z") + 1)]
    pairs = [x + y for x in letters for y in letters]
    tokens: list[bytes | None] = [None, b'"', b'",', b"}", *letters, *pairs]
    text = 'start: "{" /"[a-z]*"/ ":" /"[a-z]*"/ "}"\n'
    rtn = build_rtn(parse_grammar(text))
    first = Vocabulary.from_token_bytes(tokens, eos_id=0)
    _classified(rtn, first, False)
    files = sorted(tmp_path.glob("*.npz"))
    assert files
    for damaged in (False, True):
        if damaged:
            for f in files:
                f.write_bytes(f.read_bytes()[:100])
        cfg_loops.regions.cache_clear()  # as a new process would start
        vocab = Vocabulary.from_token_bytes(tokens, eos_id=0)
        hits = disk_cache.stats["hits"]
        _assert_same(_classified(rtn, vocab, False), _classified(rtn, vocab, True), rtn)
        assert (disk_cache.stats["hits"] > hits) != damaged


# -- the compiled walk (trie_walk_c.c) against the Python one ------------------------------------------

needs_native = pytest.mark.skipif(
    cfg_walk.compiled is None, reason="the C extension trie_walk_c is not built in this install"
)
_BYTES = [0, 1, 97, 98, 99, 254, 255]  # a few bytes, the ends of the byte range included


def test_the_compiled_walk_is_built_and_used() -> None:
    """`make test` sets DECC_REQUIRE_NATIVE=1 (CI runs it): a broken build fails there instead of
    silently testing the fallback twice."""
    if cfg_walk.compiled is None:
        if os.environ.get("DECC_REQUIRE_NATIVE") == "1":
            pytest.fail("trie_walk_c is not built (pip install -e . compiles it; is there a C compiler?)")
        pytest.skip("the C extension trie_walk_c is not built in this install")
    pure = os.environ.get("DECC_PURE_PYTHON", "") not in ("", "0")
    assert cfg_walk.NATIVE != pure
    assert (cfg_walk.walks_within is cfg_walk.compiled.walks_within) == cfg_walk.NATIVE


@needs_native
def test_decc_pure_python_turns_the_compiled_walk_off() -> None:
    code = "from decc.grammars.contextfree import cfg_walk as w; print(w.NATIVE, w.walks_within.__name__)"
    env = {**os.environ, "DECC_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "walks_within_py"]


class _Region:
    """A stand-in shared walk: takes a node's first token as inside, its last as uncertain, and hands back
    the node's children (the trie nodes one byte deeper) to go on from its exit states."""

    def __init__(self, words: list[bytes], calls: list[tuple[int, ...]]) -> None:
        self.words, self.calls = words, calls

    def take(self, lo: int, hi: int, exits: list[int], exit_point: np.ndarray, out: cfg_walk.Walk) -> list:
        self.calls.append(("take", lo, hi, *exits))
        out.inside_ranks.append(np.array([lo], dtype=np.int32))
        out.unsure_ranks.append(np.array([hi - 1], dtype=np.int32))
        d = len(os.path.commonprefix([self.words[lo], self.words[hi - 1]]))
        nodes, c = [], lo
        while c < hi:
            e = c + 1
            while e < hi and self.words[e][: d + 1] == self.words[c][: d + 1]:
                e += 1
            if len(self.words[c]) > d:
                s = exits[c % len(exits)]
                nodes.append((d + 1, c, e, s, bool(exit_point[s]) or c % 3 == 0))
            c = e
        return nodes


def _trie_node(words: list[bytes], r: int, d: int) -> tuple[int, int]:
    """The rank range of the tokens sharing words[r]'s first d bytes."""
    p = words[r][:d]
    lo = next(i for i, w in enumerate(words) if w[:d] == p)
    hi = lo
    while hi < len(words) and words[hi][:d] == p:
        hi += 1
    return lo, hi


def _random_tables(rng: np.random.Generator, n: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(dead, byte table, exit points, callee bytes) of n random states over `_BYTES`, the dead one last."""
    dead = n
    table = np.full((n + 1, 256), dead, dtype=np.int32)
    table[:n, _BYTES] = rng.integers(0, n + 1, size=(n, len(_BYTES)))
    exit_point = rng.random(n + 1) < 0.3
    exit_point[dead] = False
    enters = np.zeros((n + 1, 256), dtype=bool)
    enters[:n, _BYTES] = rng.random((n, len(_BYTES))) < 0.2
    return dead, table, exit_point, enters


@needs_native
@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(_BYTES), min_size=1, max_size=5).map(bytes), min_size=1, max_size=70),
    st.integers(1, 12),
    st.data(),
)
def test_the_compiled_walk_equals_the_python_walk(words: list[bytes], n: int, data: st.DataObject) -> None:
    """Random sorted vocabularies (duplicates allowed), byte tables, exit points, callee bytes, frontiers
    (the roots of a state or deeper trie nodes), budgets and shared walks: the same `Walk` (the uncertain
    ranges up to order), the same None past the budget, the same shared-walk calls in the same order."""
    words.sort()
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    dead, table, exit_point, enters = _random_tables(rng, n)
    firsts = np.array([w[0] for w in words])
    bounds = np.searchsorted(firsts, np.arange(257), side="left")
    walks = [
        cfg_walk.TrieWalk(tuple(words), bounds, table, dead, exit_point, enters, native=native)
        for native in (False, True)
    ]
    g = data.draw(st.integers(0, n - 1))
    assert walks[1].roots(g) == walks[0].roots(g)
    if data.draw(st.booleans()):
        frontier = walks[0].roots(g)
    else:
        frontier = []
        for _ in range(data.draw(st.integers(1, 4))):
            r = data.draw(st.integers(0, len(words) - 1))
            d = data.draw(st.integers(0, len(words[r])))
            lo, hi = _trie_node(words, r, d)
            s = data.draw(st.integers(0, n - 1))
            frontier.append((d, lo, hi, s, data.draw(st.booleans())))
    budget = data.draw(st.sampled_from([None, None, 0, 2, 10, 40]))
    few = data.draw(st.sampled_from([None, 0, 1, 3]))
    loops = set(rng.choice(n, size=rng.integers(0, n + 1), replace=False).tolist())
    exits = rng.integers(0, n, size=3).tolist()
    found, calls = [], []
    for walk in walks:
        log: list[tuple[int, ...]] = []
        region = _Region(words, log)

        def shared(s: int, d: int, log: list = log, region: _Region = region) -> tuple | None:
            log.append(("shared", s, d))
            return (region, exits) if s in loops else None

        args = (list(frontier), shared if few is not None else None)
        default = cfg_walk.FEW
        cfg_walk.FEW = default if few is None else few
        try:
            found.append(walk.walk(*args) if budget is None else walk.walk(*args, budget))
        finally:
            cfg_walk.FEW = default
        calls.append(log)
    py, c = found
    event("past the budget" if py is None else "walked")
    event(f"shared walks taken: {min(sum(x[0] == 'take' for x in calls[0]), 2)}")
    if py is not None:
        event(f"uncertain: {bool(py.unsure)}, inside: {bool(py.inside)}")
    assert calls[1] == calls[0]
    assert (c is None) == (py is None)
    if py is None or c is None:
        return
    assert c.inside == py.inside
    pairs = [sorted(zip(w.unsure[::2], w.unsure[1::2], strict=True)) for w in (c, py)]
    assert pairs[0] == pairs[1]
    for a, b in ((c.inside_ranks, py.inside_ranks), (c.unsure_ranks, py.unsure_ranks)):
        assert [x.tolist() for x in a] == [x.tolist() for x in b]
    for x, y in zip(c.ranks(), py.ranks(), strict=True):
        assert sorted(x.tolist()) == sorted(y.tolist())


@needs_native
@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(_BYTES), min_size=1, max_size=5).map(bytes), min_size=1, max_size=70),
    st.integers(1, 12),
    st.data(),
)
def test_root_groups_and_walk_from_are_the_roots_walk(
    words: list[bytes], n: int, data: st.DataObject
) -> None:
    """`root_groups` is the roots of a state grouped by the state they reach (in first-byte order, the
    groups of more than `few` tokens), and `walk_from` is `walk` from the nodes leaving shared walks (on
    from their exit states) and the roots into the states not skipped, its inside tokens set in a row
    where given one; states flagged `off_loop` are not asked for a shared walk (the rest are, in the
    same order), and the walk is the one where `shared` answers None for them: compiled and in Python."""
    words.sort()
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    dead, table, exit_point, enters = _random_tables(rng, n)
    off_loop = rng.random(n + 1) < 0.5
    bounds = np.searchsorted(np.array([w[0] for w in words]), np.arange(257), side="left")
    args = (tuple(words), bounds, table, dead, exit_point, enters)
    walks = [cfg_walk.TrieWalk(*args, native=native, off_loop=off_loop) for native in (False, True)]
    plain = cfg_walk.TrieWalk(*args, native=False)  # no flags: the oracle
    g = data.draw(st.integers(0, n - 1))
    few = data.draw(st.sampled_from([0, 1, 3, 100]))
    roots = plain.roots(g)
    groups: dict[int, list] = {}
    for node in roots:
        groups.setdefault(node[3], []).append(node)
    want = [
        (s, sum(x[2] - x[1] for x in nodes), bytes(words[x[1]][0] for x in nodes))
        for s, nodes in groups.items()
        if sum(x[2] - x[1] for x in nodes) > few
    ]
    for walk in walks:
        assert walk.root_groups(g, few) == (sum(x[2] - x[1] for x in roots), want)
    skip = sorted(set(data.draw(st.lists(st.integers(0, n), max_size=3))))
    leaving = []  # nodes leaving shared walks (by exit number), which of them to take, their exit states
    for _ in range(data.draw(st.integers(0, 2))):
        to = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3))
        nodes = []
        for _ in range(data.draw(st.integers(0, 3))):
            r = data.draw(st.integers(0, len(words) - 1))
            lo, hi = _trie_node(words, r, d := data.draw(st.integers(0, len(words[r]))))
            nodes.append((d, lo, hi, data.draw(st.integers(0, len(to) - 1)), data.draw(st.booleans())))
        which = sorted(data.draw(st.sets(st.integers(0, len(nodes) - 1)))) if nodes else []
        leaving.append((tuple(nodes), np.array(which, dtype=np.int64), to))
    frontier = [
        (d, lo, hi, to[x], p or bool(exit_point[to[x]]))
        for nodes, which, to in leaving
        for d, lo, hi, x, p in (nodes[i] for i in which.tolist())
    ]
    size = len(words) + data.draw(st.integers(0, 40))  # the row: the inside tokens' bits, by rank_to_id
    rank_to_id = rng.permutation(size)[: len(words)].astype(np.int64)
    rows = data.draw(st.booleans())
    budget = data.draw(st.sampled_from([1 << 62, 0, 2, 10, 40]))
    loops = set(rng.choice(n, size=rng.integers(0, n + 1), replace=False).tolist())
    exits = rng.integers(0, n, size=3).tolist()
    few_walk = data.draw(st.sampled_from([0, 1, 3, cfg_walk.FEW]))  # the walk's node size for shared walks
    found, calls = [], []
    for walk, flags in ((plain, off_loop), *((w, None) for w in walks)):
        log: list[tuple[int, ...]] = []

        region = _Region(words, log)

        def shared(s: int, d: int, log: list = log, region: _Region = region, flags=flags) -> tuple | None:  # noqa: ANN001
            log.append(("shared", s, d))
            return (region, exits) if s in loops and not (flags is not None and flags[s]) else None

        default, cfg_walk.FEW = cfg_walk.FEW, few_walk
        try:
            if walk is plain:
                nodes = [*frontier, *(x for x in roots if x[3] not in skip)]
                found.append(walk.walk(nodes, shared, budget))
                log[:] = [x for x in log if x[0] != "shared" or not off_loop[x[1]]]
            else:
                row = np.zeros((size + 31) // 32, dtype=np.uint32) if rows else None
                got = walk.walk_from(g, list(skip), list(leaving), shared, budget, row, rank_to_id)
                if got is not None and row is not None:  # the inside tokens as ranges and ranks again
                    assert got.inside == [] and got.inside_ranks == []
                    ranks = np.flatnonzero(
                        np.isin(
                            rank_to_id, np.flatnonzero(np.unpackbits(row.view(np.uint8), bitorder="little"))
                        )
                    )
                    got.inside[:] = [x for r in ranks.tolist() for x in (r, r + 1)]
                found.append(got)
        finally:
            cfg_walk.FEW = default
        calls.append(log)
    assert calls[1] == calls[0] and calls[2] == calls[0]
    want_walk = found[0]
    for got in found[1:]:
        assert (got is None) == (want_walk is None)
        if got is None or want_walk is None:
            continue
        if rows:
            want = sorted(
                {r for i in range(0, len(want_walk.inside), 2) for r in range(*want_walk.inside[i : i + 2])}
            )
            want = sorted({*want, *(r for a in want_walk.inside_ranks for r in a.tolist())})
            assert got.inside == [x for r in want for x in (r, r + 1)]
            got.inside_ranks[:] = want_walk.inside_ranks
        else:
            assert got.inside == want_walk.inside
        pairs = [sorted(zip(w.unsure[::2], w.unsure[1::2], strict=True)) for w in (got, want_walk)]
        assert pairs[0] == pairs[1]
        for a, b in ((got.inside_ranks, want_walk.inside_ranks), (got.unsure_ranks, want_walk.unsure_ranks)):
            assert [x.tolist() for x in a] == [x.tolist() for x in b]


@needs_native
@settings(max_examples=150, deadline=None)
@given(st.integers(1, 6), st.binary(max_size=6), st.integers(0, 7), st.data())
def test_the_compiled_walks_within_equals_the_python_one(
    n: int, w: bytes, d: int, data: st.DataObject
) -> None:
    """The recognizer's byte walk (cfg_matcher's simulation) on random byte tables (negative: dead)."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    table = np.where(rng.random((n, 256)) < 0.7, rng.integers(0, n, size=(n, 256)), -1).astype(np.int32)
    flat = memoryview(table.reshape(-1))
    states = data.draw(st.lists(st.integers(0, n - 1), max_size=4))
    assert cfg_walk.compiled.walks_within(flat, states, w, d) == cfg_walk.walks_within_py(flat, states, w, d)


def _pairs(w: cfg_walk.Walked) -> dict[str, list[tuple]]:
    """A pair walk's classes as sorted (source, token, ...) tuples: the compiled walk may list them in
    another order."""
    out = (w.out_src, w.out_tok, w.out_at, w.out_state)
    return {
        "in": sorted(zip(w.in_src.tolist(), w.in_tok.tolist(), strict=True)),
        "unc": sorted(zip(w.unc_src.tolist(), w.unc_tok.tolist(), strict=True)),
        "out": sorted(zip(*(a.tolist() for a in out), [bool(p) for p in w.out_passed.tolist()], strict=True)),
    }


@pytest.mark.skipif(cfg_walk.compiled is None, reason="the compiled walk is not built")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vocabularies(), st.integers(2, 12), st.integers(0, 2**32 - 1), st.booleans(), st.integers(1, 3))
def test_the_compiled_pair_walk_finds_the_same_pairs_as_numpy(
    vocab: Vocabulary, n_states: int, seed: int, with_stop: bool, depth: int
) -> None:
    """Random byte tables (the last state dead), flags and stop states: the compiled pair walk puts every
    (source, token) pair in the class the numpy walk does, leaving at the same byte, state and flag."""
    rng = np.random.default_rng(seed)
    dead = n_states - 1
    table = rng.integers(0, n_states, size=(n_states, 256)).astype(np.int32)
    table[rng.random((n_states, 256)) < 0.5] = dead
    table[dead] = dead
    exit_point = rng.random(n_states) < 0.3
    enters = rng.random((n_states, 256)) < 0.1
    stop = rng.random(n_states) < 0.3 if with_stop else None
    if stop is not None:
        stop[dead] = False
    _, lengths, _, _ = vocab.packed
    t_idx = np.flatnonzero(lengths >= depth)
    t_idx = np.concatenate([t_idx, rng.choice(t_idx, size=len(t_idx))])  # a token from several sources
    src = rng.integers(0, n_states, size=len(t_idx)).astype(np.int64)
    cur = rng.integers(0, n_states, size=len(t_idx)).astype(np.int32)
    args = (src, t_idx, cur, table, dead, exit_point, enters, vocab, stop, depth)
    default = cfg_walk.NATIVE
    try:
        cfg_walk.NATIVE = True
        fast = cfg_walk.pair_walk(*args)
    finally:
        cfg_walk.NATIVE = default
    assert _pairs(fast) == _pairs(cfg_walk.pair_walk_py(*args))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammars())
def test_call_first_of_the_calling_states_is_the_whole_rule_fixpoint(text: str) -> None:
    """The bytes that may go on in a callee, found from the calling states alone, are those the fixpoint
    over every state of the rule finds."""
    rtn = rtn_of(text)
    rtn.build_all()
    for r in rtn.built:
        assert np.array_equal(call_first(rtn, r), call_first_py(rtn, r)), r


@pytest.mark.skipif(cfg_walk.compiled is None, reason="trie_walk_c is not built")
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammars())
def test_the_compiled_rule_intake_is_the_python_one(text: str) -> None:
    """`take_rows` and `rule_exits` (StateRows taking in a built rule) against numpy and `call_first`,
    `accepting_through_nullable`."""
    rtn = rtn_of(text)
    rtn.build_all()
    vocab = Vocabulary.from_token_bytes([None, b"a", b"b"], eos_id=0)
    rows = StateRows(rtn, vocab, vocab_order(vocab))
    nullable, first = rows._rule_summaries()
    n, dead = rtn.n_states, 10**6
    dst, n_live = np.zeros((n, 256), dtype=np.int32), np.zeros(n, dtype=np.int64)
    cfg_walk.compiled.take_rows(rtn.table, dst, dead, n_live)
    assert np.array_equal(dst, np.where(rtn.table >= 0, rtn.table, dead))
    assert np.array_equal(n_live, (rtn.table >= 0).sum(axis=1))
    for r in rtn.built:
        lo, hi = rtn.span(r)
        enters, exits = np.ones((hi - lo, 256), dtype=bool), np.zeros(hi - lo, dtype=bool)
        cfg_walk.compiled.rule_exits(
            rtn.calls, lo, hi, rtn.table, rtn.accepting, nullable, first, enters, exits
        )
        assert np.array_equal(enters, call_first(rtn, r)), r
        assert np.array_equal(exits, accepting_through_nullable(rtn, r)), r
