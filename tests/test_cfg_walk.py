"""The first-visit walks of the grammar engine (cfg_walk.py) against the pair walk they replace.

`StateRows.reference = True` classifies every state with the vectorized (state, token) pair walk, one byte
at a time over every token: an independent oracle for the trie walk, the loop walks shared per vocabulary
(`cfg_loops.regions`), and the fallback past the trie walk's budget. Every state's inside row and uncertain
tokens must be the same, whichever grammar filled the shared walks first.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from decc.grammars import GrammarError, Vocabulary, disk_cache
from decc.grammars.contextfree import cfg_loops, cfg_walk
from decc.grammars.contextfree.cfg_grammar import parse_grammar
from decc.grammars.contextfree.cfg_rows import StateRows, vocab_order
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


def _rtn(text: str) -> RTN:
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
@given(grammars(), grammars(), vocabularies(), st.sampled_from([None, 1, 7]), st.sampled_from([0, 2, None]))
def test_trie_and_shared_loop_walks_classify_like_the_pair_walk(
    a: str, b: str, vocab: Vocabulary, budget: int | None, few: int | None
) -> None:
    """Two grammars over one vocabulary, so that the second reuses loop walks the first left in the
    per-vocabulary cache; a small budget sends states to the pair-walk fallback part of the way, and a
    small `FEW` makes deep trie nodes take their tokens from the shared walks too."""
    default = cfg_walk.FEW
    cfg_walk.FEW = default if few is None else few
    try:
        for text in (a, b):
            rtn = _rtn(text)
            _assert_same(_classified(rtn, vocab, False, budget), _classified(rtn, vocab, True), rtn)
    finally:
        cfg_walk.FEW = default


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammars(), vocabularies(), st.sampled_from([0, 1, 10_000]))
def test_inside_rows_come_out_alike_from_few_or_many_rank_ranges(
    text: str, vocab: Vocabulary, few: int
) -> None:
    """The inside bitmask is set range by range (few ranges) or from the ranges expanded at once (many):
    both give the pair walk's rows."""
    rtn = _rtn(text)
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
    assert cfg_walk.ranges_to_ranks(flat).tolist() == expected


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
