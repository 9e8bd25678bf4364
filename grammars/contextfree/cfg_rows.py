"""The per-state token classification of a grammar (see cfg_matcher), computed lazily and memoized.

Every vocabulary token is walked, for an RTN state with byte edges, through that rule's byte transitions
alone (calls and completions ignored), and classified once:

- *inside*: all its bytes stay inside the rule and end in a live state: allowed whenever an item at that
  state is in the current Earley set (every item is viable, so no context is needed);
- *rejected*: it dies before passing an exit point (a state, after >= 1 byte, that accepts or calls):
  this item can never take it;
- *uncertain*: it dies after passing an exit point: it may continue in a callee or in a caller, which
  only the Earley set at run time can tell.

`StateRows` does this the first time a mask needs a state (walking the token trie from that state, with the
loops every grammar shares, such as a string body, walked once per vocabulary: cfg_walk.py, cfg_loops.py),
so that binding a grammar to a vocabulary costs O(grammar), not O(states x vocabulary). `classify` runs the
same walk over every state at once (the eager form, kept for tests and for callers that want every row up
front).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .. import disk_cache
from ..automata.dfa import ByteDFA
from ..errors import GrammarLimitError
from ..limits import DEFAULT_LIMITS, Limits
from ..tokens.constraint import TokenConstraint
from ..tokens.token_automaton import CountedWalk, TokenAutomaton, pack_bits, set_bits, start_pairs
from ..tokens.vocab import Vocabulary
from . import cfg_walk, earley
from .cfg_loops import Loops, Region, joined_words, loop_key, region_walk, regions
from .cfg_walk import FEW, Leaving, Node, TrieWalk, bits_of, pair_walk, ranges_to_ranks
from .rtn import RTN

_CHUNK = 4_000_000  # (state, token) pairs walked at once
_WIDE = 16  # live bytes from which a state counts as wide (cfg_loops.Loops)
_MAX_REGION = 32  # states of a region shared between states (a JSON string body has about 10)
_MAX_REGIONS = 2000  # loop walks kept per vocabulary (a string body's: ~200 KB at depth 1)
_MAX_LEAVING = 4000  # tokens leaving a loop, past which its shared walk is not worth keeping
_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY.setflags(write=False)


@dataclass(frozen=True, eq=False)
class VocabOrder:
    """A vocabulary's text tokens sorted by their bytes (so that a mask's simulation shares prefixes)."""

    rank_to_id: np.ndarray  # int64: text token ids sorted by their bytes
    rank_of: np.ndarray  # int64 [size]: each id's rank (0 for ids that are not text tokens)
    rank_bytes: tuple[bytes, ...]  # the bytes of those tokens, in the same order
    first_bounds: np.ndarray  # int64 [257]: the ranks of the tokens starting with byte b are [b], [b + 1]
    packed_of_rank: np.ndarray  # int64: each rank's row in `Vocabulary.packed`


@lru_cache(maxsize=8)
def vocab_order(vocab: Vocabulary) -> VocabOrder:
    ids = vocab.text_ids
    order = sorted(ids.tolist(), key=lambda i: vocab.token_bytes[i])
    rank_to_id = np.array(order, dtype=np.int64)
    rank_of = np.zeros(vocab.size, dtype=np.int64)
    rank_of[rank_to_id] = np.arange(len(rank_to_id))
    rank_bytes = tuple(vocab.token_bytes[i] or b"" for i in order)
    first = np.frombuffer(b"".join(w[:1] for w in rank_bytes), dtype=np.uint8)
    bounds = np.searchsorted(first, np.arange(257)).astype(np.int64)
    packed_ids = vocab.packed[0]
    packed_of_rank = np.zeros(len(packed_ids), dtype=np.int64)
    packed_of_rank[rank_of[packed_ids]] = np.arange(len(packed_ids))
    for a in (rank_to_id, rank_of, bounds, packed_of_rank):
        a.setflags(write=False)
    return VocabOrder(rank_to_id, rank_of, rank_bytes, bounds, packed_of_rank)


_BATCH_CHUNK = 64  # states classified between two looks at the batch's clock
_WALK_FROM = 64  # uncertain tokens from which the batch walks a state's ahead (`StateRows.walks`)


class StateRows:
    """Inside rows and uncertain ranks per RTN state, each computed on first use and then kept.

    `rows(states)` gives the rows' indices into `buf` (row 0: no token); `uncertain[g]` the sorted
    byte-order ranks of state g's uncertain tokens. Unrolled lexeme states take theirs from the lexeme's
    token automaton, a whole lexeme rule at a time.
    """

    first_capacity = 1024  # states the tables have room for at first (unwritten rows cost no memory)

    def __init__(
        self, rtn: RTN, vocab: Vocabulary, order: VocabOrder, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self.rtn, self.vocab, self.order, self.limits = rtn, vocab, order, limits
        # Per state, as the RTN grows (`_sync`): the byte table with a dead row at `dead` (the capacity),
        # whether a token passing here may go on in a caller, the bytes that may go on in a callee called
        # here, and whether the state is an unrolled lexeme pair. Rows past the RTN's states are dead.
        self.n = 0
        self.dead = 0
        self.table = np.zeros((1, 256), dtype=np.int32)
        self.exit_point = np.zeros(1, dtype=bool)
        self.enters = np.zeros((1, 256), dtype=bool)
        self.lexical = np.zeros(0, dtype=bool)
        self.n_live = np.zeros(0, dtype=np.int64)  # live bytes per state (`_walk_trie`: is it wide?)
        self.off_loop = np.zeros(1, dtype=bool)  # per state: found on no loop (`_shared`), not asked again
        self.row_of = np.full(0, -1, dtype=np.int64)  # -1: not computed yet
        self.buf = np.zeros((32, vocab.n_words), dtype=np.int32)  # grows by doubling (untouched rows: free)
        self.n_rows = 1
        self.uncertain: list[np.ndarray | None] = []
        self.walked = 0  # (state, token) pairs walked so far
        self._n_built = 0  # the rules of `rtn.built` taken in so far
        # Per state, the walk of its uncertain tokens to the byte that closes, which the compiled simulation
        # keeps for a set whose only scanning state it is (`earley_c.simulate`'s memo); None: no memo (the
        # Python recognizer's simulation walks them each time).
        self.walks: dict[int, Any] | None = {}
        self.lock = threading.Lock()
        self._sync()

    def _sync(self) -> None:
        """Take in the states of the rules the RTN built since the last call."""
        with self.rtn.lock:  # no rule half published meanwhile
            self._take_new_rules()

    def _take_new_rules(self) -> None:
        rtn = self.rtn
        n, old = rtn.n_states, self.n
        if n == old:
            return
        if n > self.dead:  # grow fourfold (fewer growths: the rows past the states stay untouched
            # memory; 169 -> 160 growths, 30 -> 22 ms on 150 MaskBench schemas); the dead row moves to the end
            cap = max(n, 4 * self.dead, self.first_capacity)
            # Only the dead row is written here, the old rows taken again with the new dead state, the
            # new ones below (a growth is part of some first visit's cost, as was filling the whole table):
            # the rows past the RTN's states stay unwritten (untouched memory) until their rule is taken
            # in, and nothing reads them before (every transition leads to a state of a built rule).
            table = np.empty((cap + 1, 256), dtype=np.int32)
            table[cap] = cap
            exit_point = np.zeros(cap + 1, dtype=bool)
            enters = np.zeros((cap + 1, 256), dtype=bool)
            lexical = np.zeros(cap, dtype=bool)
            n_live = np.zeros(cap, dtype=np.int64)
            row_of = np.full(cap, -1, dtype=np.int64)
            off_loop = np.zeros(cap + 1, dtype=bool)
            if old:  # (the first call has nothing to carry over)
                if cfg_walk.NATIVE and cfg_walk.compiled is not None:
                    # the built rows taken again from the RTN's (final once built) with the new dead state,
                    # in one compiled pass: renaming the copied ones' dead entries with numpy cost ~3 ms for
                    # 5000 states, most of a growth
                    cfg_walk.compiled.take_rows(rtn.table[:old], table[:old], cap, n_live[:old])
                else:
                    kept = table[:old]
                    np.copyto(kept, self.table[:old])
                    kept[kept == self.dead] = cap
                    n_live[:old] = self.n_live[:old]
                exit_point[:old] = self.exit_point[:old]
                enters[:old] = self.enters[:old]
                lexical[:old] = self.lexical[:old]
                row_of[:old] = self.row_of[:old]
                off_loop[:old] = self.off_loop[:old]
            self.n_live, self.off_loop = n_live, off_loop
            self.table, self.exit_point, self.enters, self.lexical = table, exit_point, enters, lexical
            self.dead = cap
            self.row_of = row_of  # last: readers without the lock index it
            # The trie walk memoizes rows holding the old dead state: made again on use. The loops found so
            # far stay valid (each keeps the rows and dead state it was made from; states keep their numbers).
            self._trie = None
        new = rtn.table[old:n]
        native = cfg_walk.NATIVE and cfg_walk.compiled is not None  # (the numpy and Python ones: the oracle)
        if native:
            cfg_walk.compiled.take_rows(new, self.table[old:n], self.dead, self.n_live[old:n])
        else:
            live = new >= 0
            self.table[old:n] = np.where(live, new, self.dead)
            self.n_live[old:n] = live.sum(axis=1)
        built = rtn.built
        for r in built[self._n_built :]:  # rules are numbered in build order: the new ones are at the end
            lo, hi = rtn.span(r)
            if old <= lo < hi <= n:
                if self.n_live[lo:hi].max() < _WIDE:
                    # no wide state, no loop (`Loops`' components are among wide states alone): flagged so
                    # that the compiled walks never ask its states for a shared walk (most rules: a rule's
                    # `Loops` and the callbacks cost ~20 us a rule on first visits)
                    self.off_loop[lo:hi] = True
                if not any(rtn.calls[lo:hi]):  # (a lexeme's unrolled states, thousands of them, call nothing)
                    self.exit_point[lo:hi] = rtn.accepting[lo:hi]
                elif native:
                    nullable, first = self._rule_summaries()
                    cfg_walk.compiled.rule_exits(
                        rtn.calls, lo, hi, rtn.table, rtn.accepting, nullable, first, self.enters[lo:hi],
                        self.exit_point[lo:hi],
                    )  # fmt: skip
                else:
                    self.exit_point[lo:hi] = accepting_through_nullable(rtn, r)
                    self.enters[lo:hi] = call_first(rtn, r)
        self._n_built = len(built)
        self.lexical[old:n] = rtn.lex_q[old:n] >= 0
        self.uncertain.extend([None] * (n - old))
        self.n = n

    _summaries: tuple[np.ndarray, np.ndarray] | None = None

    def _rule_summaries(self) -> tuple[np.ndarray, np.ndarray]:
        """The RTN's per-rule nullability (uint8) and first bytes (uint8 [rules, 32]) as arrays, for the
        compiled `call_first` (made once: a grammar's rules are all known before any is built)."""
        if self._summaries is None:
            self._summaries = (np.array(self.rtn.nullable, dtype=np.uint8), self.rtn.first_table())
        return self._summaries

    def rows(self, states: np.ndarray) -> np.ndarray:
        """The row indices of `states` (int64, sorted unique RTN states), classifying the new ones."""
        if len(states) and states[-1] < self.n:
            have = self.row_of[states]
            if -1 not in have.tolist():  # (a list's test: numpy's all() costs more than the rest of a hit)
                return have
        self.classify(states.tolist())
        return self.row_of[states]

    def classify(self, states: Sequence[int]) -> None:
        """Classify those of `states` (distinct RTN states) not classified yet: `rows` without its answer,
        for a caller that reads `row_of` itself (the compiled mask assembly, `earley_c.compose`). Once
        armed (`arm`), a call that classifies takes every state of the grammar too (a batch), and later
        ones the states of the rules built since."""
        with self.lock:  # masks may be filled on a worker thread while another asks too
            if self.batch == 1 and len(states):
                self.batch = 2
                self.rtn.build_rest()
            if self.rtn.n_states != self.n:
                self._sync()
            self._fill(list(states))
            if self.batch == 2 and len(states) and (self.n > self._covered or self._behind):
                self._behind = not self._fill_rest()

    def _fill_rest(self) -> bool:
        """Classify the states not classified yet, a chunk at a time, then walk the uncertain tokens of
        those with many (`walks`), until `batch_seconds` have passed; whether all was done."""
        until = time.perf_counter() + self.batch_seconds
        self._covered = self.n
        rest = np.flatnonzero(self.row_of[: self.n] < 0).tolist()
        for k in range(0, len(rest), _BATCH_CHUNK):
            if time.perf_counter() >= until:
                return False
            self._fill(rest[k : k + _BATCH_CHUNK])
        if self.walks is None or earley.compiled is None:
            return True
        rtn = self.rtn
        blob, offsets = joined_words(self.order.rank_bytes)
        tables = earley.tables_of(rtn)
        for g in range(self._walked, self.n):
            u = self.uncertain[g]
            if u is not None and len(u) >= _WALK_FROM and g not in self.walks:
                if time.perf_counter() >= until:
                    self._walked = g
                    return False
                earley.compiled.walk(u.tolist(), blob, offsets, rtn, tables, g, self.walks)
        self._walked = self.n
        return True

    # 0: lazy; 1: armed (`arm`); 2: batches. A batch stops after `batch_seconds`: one that ran out of time
    # (`_behind`) or states new since the last (past `_covered`) bring another with the next classification.
    batch = 0
    batch_seconds = 0.1
    _covered = 0
    _behind = False
    _walked = 0  # states before this: their walks made, or not wanted

    def arm(self) -> None:
        """From now on, a classification takes every state of the grammar with it (its unbuilt rules built
        first, `RTN.build_rest`), and later ones the states of the rules built since, in batches of at
        most `batch_seconds`, rather than only the few a mask needs.

        Called after a constraint's first mask, which classifies only what it needs (the time to first
        mask stays small). Classified as masks reached them, the states cost each a first visit, and those
        visits (a sixth of the steps on MaskBench) were the masks' p99; in a batch they cost one slow step
        (the grammar's eager cost, `CFGConstraint.precompute`, paid at the first later mask that needs a
        state rather than at compile), and more work in all where a generation visits few of them (two to
        three times the masks' total time on MaskBench's few instances per schema). Armed once: later calls do
        nothing."""
        if self.batch == 0:
            self.batch = 1

    def _fill(self, states: list[int]) -> None:
        # (lists, not numpy, for the few states of a set: each numpy call costs about a microsecond)
        row_of, lexical = self.row_of, self.lexical
        plain = [g for g in states if row_of[g] < 0 and not lexical[g]]
        if len(plain) < len(states):  # (some lexeme states, or some classified already)
            rule_at = self.rtn.rule_at
            for r in sorted({rule_at[g] for g in states if row_of[g] < 0 and lexical[g]}):
                self._lexeme(r)
        if plain:
            self._walk(plain)

    def _room_for(self, k: int) -> None:
        """Grow `buf` (by doubling) until k more rows fit past `n_rows`."""
        while self.n_rows + k > len(self.buf):
            grown = np.zeros((2 * len(self.buf), self.buf.shape[1]), dtype=np.int32)
            grown[: self.n_rows] = self.buf[: self.n_rows]
            self.buf = grown

    def _add_rows(self, rows: np.ndarray) -> int:
        """Append rows to `buf`; the index of the first."""
        k = len(rows)
        self._room_for(k)
        first = self.n_rows
        self.buf[first : first + k] = rows
        self.n_rows += k
        return first

    # A first visit walks the vocabulary's byte trie (cfg_walk.py), taking the nodes that enter a loop (a
    # string body) from that loop's walk, shared per vocabulary; past `trie_budget` nodes it gives up for
    # the pair walk. `reference`: the pair walk for every state (the tests' oracle for the trie walk).
    trie_budget = 20_000
    pair_walk_from = 20_000  # tokens into wide states off loops from which those go to the pair walk
    reference = False
    _trie: TrieWalk | None = None
    _loops: dict[int, Loops] | None = None  # per rule, made on first use
    _loop_of: dict[int, tuple[str, np.ndarray, list[int]] | None] | None = None  # per state, on first use

    def _walk(self, plain: list[int]) -> None:
        """Classify the plain (not lexeme) states by walking their live tokens."""
        if not self.reference:
            trie = self._trie_walk()
            if trie.native is not None and self.one_call:
                plain = self._classify(trie.native, plain)
            else:
                plain = [g for g in plain if not self._walk_trie(g)]
            if not plain:
                return
        states = np.array(plain, dtype=np.int64)
        live = self.table[states] != self.dead
        per_state = live.astype(np.int64) @ np.diff(self.vocab.packed[3])  # tokens per first byte
        self.walked += int(per_state.sum())
        bounds = np.searchsorted(np.cumsum(per_state), np.arange(_CHUNK, int(per_state.sum()), _CHUNK))
        for part in np.split(np.arange(len(states)), np.unique(bounds)):
            if len(part):
                self._walk_chunk(states[part], live[part])

    def _walk_chunk(self, states: np.ndarray, live: np.ndarray) -> None:
        table, dead, exit_point, enters = self.table, self.dead, self.exit_point, self.enters
        ids = self.vocab.packed[0]
        start = start_pairs(states, table, live, self.vocab.packed[3])
        w = pair_walk(*start, table, dead, exit_point, enters, self.vocab)
        row_of = np.zeros(len(states), dtype=np.int64)  # set last: readers without the lock test it
        if len(w.in_src):
            which_states, which = np.unique(w.in_src, return_inverse=True)
            packed = pack_bits(which.reshape(-1), ids[w.in_tok], len(which_states), self.vocab.n_words)
            first = self._add_rows(packed.view(np.int32))
            row_of[np.searchsorted(states, which_states)] = first + np.arange(len(which_states))
        rank_of = self.order.rank_of
        empty = np.zeros(0, dtype=np.int64)
        if len(w.unc_src):
            order = np.argsort(w.unc_src, kind="stable")
            s_all, t_all = w.unc_src[order], ids[w.unc_tok[order]]
            cut = np.searchsorted(s_all, states, side="left").tolist()
            end = np.searchsorted(s_all, states, side="right").tolist()
            for g, a, b in zip(states.tolist(), cut, end, strict=True):
                self.uncertain[g] = np.sort(rank_of[t_all[a:b]]) if b > a else empty
        else:
            for g in states.tolist():
                self.uncertain[g] = empty
        self.row_of[states] = row_of

    def _trie_walk(self) -> TrieWalk:
        if self._trie is None:
            order = self.order
            self._trie = TrieWalk(
                order.rank_bytes, order.first_bounds, self.table, self.dead, self.exit_point, self.enters,
                off_loop=self.off_loop,
            )  # fmt: skip
        return self._trie

    # Whether a first visit with the compiled trie walk is one call (`_classify`); else `_walk_trie`, the
    # same walk with Python between its compiled parts (the tests' oracle, and the fallback for many tokens
    # into wide states off loops).
    one_call = True

    def _classify(self, trie: Any, states: list[int]) -> list[int]:
        """`_walk_trie` of each state in one compiled call (`trie`: the compiled TrieWalk's `classify`): the
        shared walks of the states it meets asked of `_shared` once per TrieWalk (a new table, a new
        TrieWalk: a new memo), their first bytes memoized per region; the inside row written into the next
        free row of `buf`. The states it leaves to the pair walk (past the budget)."""
        args = (self.order.rank_to_id, self._shared, self.trie_budget, FEW, cfg_walk.FEW, _WIDE)
        wide_from = self.pair_walk_from
        rest = []
        for g in states:
            self._room_for(1)
            k = self.n_rows
            found = trie.classify(g, self.buf[k], *args, wide_from)
            if found is None:  # past the budget: the pair walk
                rest.append(g)
                continue
            if found is False:  # many tokens into wide states off loops: the Python walk's pair walk
                if not self._walk_trie(g):
                    rest.append(g)
                continue
            walked, unsure, any_inside = found
            self.walked += walked
            if any_inside:
                self.n_rows += 1
            self.uncertain[g] = np.frombuffer(unsure, dtype=np.int64) if unsure else _EMPTY
            self.row_of[g] = k if any_inside else 0  # set last: readers without the lock test it
        return rest

    def _walk_trie(self, g: int) -> bool:
        """Classify state g with the trie walk; False (nothing done) when it runs past its budget. The first
        bytes that lead into one loop state are taken together from its shared walk (one memoized bitmask
        for the tokens that stay in the loop: a string body's)."""
        trie = self._trie_walk()
        n_words, rank_to_id = self.vocab.n_words, self.order.rank_to_id
        row: np.ndarray | None = None  # the inside bitmask
        unsure: list[np.ndarray] = []
        leaving: list[Leaving] = []  # the nodes leaving shared walks (which of a region's), their exits
        skip: list[int] = []  # the states whose first bytes are not walked from g's roots
        walked, groups = trie.root_groups(g, FEW)  # the states reached by more than FEW tokens
        wide: list[tuple[int, bytes]] = []  # many tokens into a wide state off loops
        n_wide = 0
        for s, many, firsts in groups:
            shared = self._shared(s, 1)
            if shared is None:
                if self.n_live[s] >= _WIDE:
                    wide.append((s, firsts))
                    n_wide += many
                continue
            skip.append(s)
            region, exits = shared
            words, u, out = region.first_bytes(firsts, rank_to_id, n_words)  # out: indices into its leaving
            row = words.copy() if row is None else np.bitwise_or(row, words, out=row)
            if len(u):
                unsure.append(u)
            if len(out):
                leaving.append((region.leaving, out, exits))
        if row is None:
            row = np.zeros(n_words, dtype=np.uint32)
        if n_wide > self.pair_walk_from:
            first = trie.first
            nodes = [(1, first[b], first[b + 1], s, False) for s, firsts in wide for b in firsts]
            skip += [s for s, _ in wide]
            unsure.append(self._pair_walk_roots(nodes, row))
        found = trie.walk_from(g, skip, leaving, self._shared, self.trie_budget, row, rank_to_id)
        if found is None:
            return False
        self.walked += walked
        if found.unsure:
            unsure.append(ranges_to_ranks(found.unsure))
        unsure += found.unsure_ranks
        if not unsure:
            uncertain = _EMPTY
        elif len(unsure) == 1:
            uncertain = unsure[0].astype(np.int64, copy=False)
        else:
            uncertain = np.sort(np.concatenate(unsure)).astype(np.int64, copy=False)
        k = self._add_rows(row.view(np.int32)[None, :]) if row.any() else 0
        self.uncertain[g] = uncertain
        self.row_of[g] = k  # set last: readers without the lock test it
        return True

    def _pair_walk_roots(self, nodes: list[Node], row: np.ndarray) -> np.ndarray:
        """Walk the tokens of first-byte trie `nodes` with the pair walk (vectorized: for many tokens into
        wide states off loops, an unrolled short string's, where the trie walk would visit most of the
        trie); set the inside ones in `row`; the uncertain ranks."""
        lo = np.array([n[1] for n in nodes], dtype=np.int64)
        sizes = np.array([n[2] - n[1] for n in nodes], dtype=np.int64)
        ranks = np.repeat(lo - (np.cumsum(sizes) - sizes), sizes) + np.arange(int(sizes.sum()))
        cur = np.repeat(np.array([n[3] for n in nodes], dtype=self.table.dtype), sizes)
        t_idx = self.order.packed_of_rank[ranks]
        args = (self.table, self.dead, self.exit_point, self.enters, self.vocab)
        w = pair_walk(np.zeros(len(ranks), dtype=np.int64), t_idx, cur, *args)
        ids = self.vocab.packed[0]
        row |= bits_of(ids[w.in_tok], self.vocab.n_words)
        return np.sort(self.order.rank_of[ids[w.unc_tok]])

    def _shared(self, s: int, depth: int) -> tuple[Region, list[int]] | None:
        """The shared walk of the loop state s at `depth`, with the states it exits to here; None when s is
        on no loop, on one too large to recur elsewhere (a key's name trie), or one that lets too many
        tokens out."""
        if self._loop_of is None:
            self._loop_of = {}
        if s not in self._loop_of:
            self._loop_of[s] = self._loop_key(s)
        found = self._loop_of[s]
        if found is None:
            self.off_loop[s] = True  # the compiled trie walk asks no more
            return None
        key, members, exits = found
        cache = regions(self.vocab)
        region = cache.get((key, depth))
        if region is None:
            args = (self.table, self.dead, self.exit_point, self.enters, self.vocab)
            order = self.order

            def build() -> Region:
                return region_walk(
                    s, depth, members, exits, *args, order.rank_of, order.rank_bytes, order.first_bounds,
                    _MAX_LEAVING,
                )  # fmt: skip

            region = disk_cache.cached("region", (key, depth, _MAX_LEAVING), self.vocab, build)
            if region.n_exits != len(exits):  # a file that does not fit this loop: walk it here
                region = build()
            if len(cache) >= _MAX_REGIONS:  # bounded memory in a long-lived process
                cache.clear()
            cache[(key, depth)] = region
        return None if region.leaving is None else (region, exits)

    def _loop_key(self, s: int) -> tuple[str, np.ndarray, list[int]] | None:
        r = self.rtn.rule_at[s]
        if self._loops is None:
            self._loops = {}
        loops = self._loops.get(r)
        if loops is None:
            lo, hi = self.rtn.span(r)
            loops = self._loops[r] = Loops(self.table, self.dead, lo, hi, _WIDE, self.n_live[lo:hi])
            # the states with no loop (all of them in most rules) are asked no more: the compiled walks
            # read this (3721 of 4494 states asked on 150 MaskBench schemas were such; flagged at once where
            # the loop lookup is compiled, else as asked)
            if not loops.any_loop:
                self.off_loop[lo:hi] = True
            elif loops.native:
                self.off_loop[lo:hi] |= loops.off_loops()
        members = loops.members(s)
        if members is None or len(members) > _MAX_REGION:
            return None
        key, exits = loop_key(s, members, self.table, self.dead, self.exit_point, self.enters)
        return key, members, exits

    def _lexeme(self, r: int) -> None:
        """Rows and uncertain ranks of every unrolled state of lexeme rule r (from its token automaton)."""
        rtn, vocab = self.rtn, self.vocab
        dfa = rtn.lexemes[r]
        assert dfa is not None
        auto = lexeme_automaton(dfa, vocab, self.limits)
        ranked = _exit_ranks(_Uncounted(dfa), vocab, self.order)
        clear = _no_eos(vocab)
        lo, hi = rtn.span(r)
        qs, cs = rtn.lex_q[lo:hi], rtn.lex_c[lo:hi]
        self.uncertain[lo:hi] = list(map(ranked.__getitem__, qs.tolist()))
        has_bytes = np.flatnonzero(self.n_live[lo:hi])  # (live bytes per state)
        # in bulk (one `row` per state and counter signature, one `_add_rows`): a lexeme's unrolled
        # states are thousands, and a loop over them cost ~1 us each
        distinct, index = auto.rows_for(qs[has_bytes], cs[has_bytes])
        row_of = np.zeros(hi - lo, dtype=np.int64)  # (states without bytes: row 0, no token)
        if distinct:  # (written in place: a stacked copy and its masked copy were fresh memory each visit)
            k = len(distinct)
            self._room_for(k)
            first, out = self.n_rows, self.buf[self.n_rows : self.n_rows + k]
            for i, t in enumerate(distinct):
                np.bitwise_and(t.numpy(), clear, out=out[i])
            self.n_rows += k
            row_of[has_bytes] = first + index
        self.row_of[lo:hi] = row_of  # each written once, with its final row (readers without the lock)


class _Keyed:
    """A DFA hashed and compared by its contents (`dfa_digest`): the lexemes of different schemas are
    different objects with the same language (a bounded string), whose token rows one build serves."""

    __slots__ = ("dfa", "digest")

    def __init__(self, dfa: ByteDFA) -> None:
        self.dfa, self.digest = dfa, _digest_of(dfa)

    def __hash__(self) -> int:
        return hash(self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Keyed) and other.digest == self.digest


@lru_cache(maxsize=256)
def _digest_of(dfa: ByteDFA) -> str:
    return dfa_digest(dfa)  # by identity: a DFA object is hashed once


class _LexemeAutomata:
    """`lexeme_automaton`: the token automaton of a lexeme's counted DFA, built once per (DFA contents,
    vocabulary) in a process and kept in the disk cache under those contents, so that lexemes every schema
    shares (a JSON string) cost nothing after the first run. Lexemes that differ in their bounds alone
    (maxLength 50 and 100 on one string body) share the bounds-free part of the build, the token walk
    (`CountedWalk`), in the process."""

    def __call__(self, dfa: ByteDFA, vocab: Vocabulary, limits: Limits) -> TokenAutomaton:
        return self._by_contents(_Keyed(dfa), vocab, limits)

    @staticmethod
    @lru_cache(maxsize=64)
    def _by_contents(key: _Keyed, vocab: Vocabulary, limits: Limits) -> TokenAutomaton:
        dfa = key.dfa

        def build() -> TokenConstraint:
            if len(dfa.bounds) == 1:
                walk = _LexemeAutomata._walk(_Structure(dfa), vocab)
                auto = TokenAutomaton.from_walk(dfa, vocab, walk, limits)
            else:
                auto = TokenAutomaton.build(dfa, vocab, limits)
            return TokenConstraint(dfa, vocab, auto, "lexeme")

        return disk_cache.cached("lexeme", (key.digest, limits), vocab, build).automaton

    def walk(self, dfa: ByteDFA, vocab: Vocabulary) -> CountedWalk:
        """The bounds-free token walk of counted `dfa` (one segment label), shared by its bounds."""
        return self._walk(_Structure(dfa), vocab)

    @staticmethod
    @lru_cache(maxsize=16)
    def _walk(key: _Structure, vocab: Vocabulary) -> CountedWalk:
        return CountedWalk.build(key.dfa, vocab)

    def cache_clear(self) -> None:
        """Forget this process's automata (the disk cache keeps them)."""
        self._by_contents.cache_clear()
        self._walk.cache_clear()


class _Structure(_Keyed):
    """A counted DFA keyed by what its token walk depends on (`CountedWalk`): transitions, segments and
    ticks, not the bounds and live tables."""

    __slots__ = ()

    def __init__(self, dfa: ByteDFA) -> None:
        h = hashlib.sha256()
        for a in (dfa.transitions, dfa.seg, dfa.tick):
            h.update(np.ascontiguousarray(a).tobytes() + repr((a.dtype.str, a.shape)).encode())
        self.dfa, self.digest = dfa, h.hexdigest()


lexeme_automaton = _LexemeAutomata()


def dfa_digest(dfa: ByteDFA) -> str:
    """A hash of everything that defines a (counted) DFA's language, for cache keys."""
    h = hashlib.sha256()
    for a in (dfa.transitions, dfa.accepting, dfa.seg, dfa.tick):
        h.update(b"-" if a is None else np.ascontiguousarray(a).tobytes() + repr(a.shape).encode())
    h.update(repr((dfa.start, dfa.bounds)).encode())
    for q in sorted(dfa.live):
        h.update(repr(q).encode() + np.ascontiguousarray(dfa.live[q]).tobytes())
    return h.hexdigest()


def classify(
    rtn: RTN, vocab: Vocabulary, limits: Limits = DEFAULT_LIMITS
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Eagerly, for every RTN state (every rule built first): (inside rows [R, n_words], each state's row
    [G], uncertain token ids per state), refusing grammars whose (state, token) pairs exceed
    `limits.max_token_transitions`."""
    rtn.build_all()
    rows = StateRows(rtn, vocab, vocab_order(vocab), limits)
    n = rows.n
    plain = np.flatnonzero(~rows.lexical[:n])
    live = rows.table[plain] != rows.dead
    pairs = int((live.astype(np.int64) @ np.diff(vocab.packed[3])).sum())
    if pairs > limits.max_token_transitions:
        raise GrammarLimitError(
            f"grammar too large for this vocabulary: about {pairs:,} (state, token) pairs to classify "
            f"(limit {limits.max_token_transitions:,})"
        )
    of = rows.rows(np.arange(n, dtype=np.int64))
    rank_to_id = rows.order.rank_to_id
    uncertain = [np.sort(rank_to_id[u]) for u in rows.uncertain if u is not None]
    inside = np.ascontiguousarray(rows.buf[: rows.n_rows])
    return inside, of, uncertain


def call_first(rtn: RTN, r: int) -> np.ndarray:
    """bool [states of built rule r, 256]: the bytes that can start what a call made from the state
    derives (the callee, and what follows it when the callee is nullable).

    A token that dies in its own rule only after passing such a byte may have gone into the callee there
    instead, so it is uncertain; one that never did is rejected for good. The callees' first bytes come
    from `rtn.first` (from their bodies: they need not be built); what follows a call is in rule r.
    Only the calling states are iterated, and the byte sets of the states after nullable calls made as
    needed: a struct rule has thousands of states and a few dozen calls (`call_first_py`: the oracle).
    """
    lo, hi = rtn.span(r)
    calls = rtn.calls
    out = np.zeros((hi - lo, 256), dtype=bool)
    callers = [g for g in range(lo, hi) if calls[g]]
    if not callers:
        return out
    table, first, nullable = rtn.table, rtn.first, rtn.nullable
    own: dict[int, int] = {}  # a state's own live bytes, as a 256-bit int
    via: dict[int, int] = {}  # what a call made at a state may start with

    def bits(g: int) -> int:
        b = own.get(g)
        if b is None:
            b = own[g] = int.from_bytes(np.packbits(table[g] >= 0, bitorder="little").tobytes(), "little")
        return b | via.get(g, 0)

    changed = True
    while changed:  # F(g) = bytes(g) | first(callee) | F(next), if the callee is nullable, for g's calls
        changed = False
        for g in callers:
            v = 0
            for callee, nxt in calls[g]:
                v |= first[callee] | (bits(nxt) if nullable[callee] else 0)
            if v != via.get(g, 0):
                via[g] = v
                changed = True
    if via:
        rows = sorted(via)
        packed = np.frombuffer(b"".join(via[g].to_bytes(32, "little") for g in rows), dtype=np.uint8)
        out[np.array(rows, dtype=np.int64) - lo] = np.unpackbits(packed, bitorder="little").reshape(-1, 256)
    return out


def call_first_py(rtn: RTN, r: int) -> np.ndarray:
    """`call_first` over every state of the rule at once (the tests' oracle)."""
    lo, hi = rtn.span(r)
    calls = rtn.calls
    if not any(calls[g] for g in range(lo, hi)):
        return np.zeros((hi - lo, 256), dtype=bool)
    packed = np.packbits(rtn.table[lo:hi] >= 0, axis=1, bitorder="little")
    bits = [int.from_bytes(row.tobytes(), "little") for row in packed]  # F(g) as a 256-bit int
    first, nullable = rtn.first, rtn.nullable
    via = [0] * (hi - lo)  # what a call made here may start with
    changed = True
    while changed:  # F(g) = bytes(g) | first(callee) | F(next), if the callee is nullable, for g's calls
        changed = False
        for i in range(hi - lo):
            v = 0
            for callee, nxt in calls[lo + i]:
                v |= first[callee] | (bits[nxt - lo] if nullable[callee] else 0)
            if v != via[i]:
                via[i] = v
                bits[i] |= v
                changed = True
    out = np.frombuffer(b"".join(v.to_bytes(32, "little") for v in via), dtype=np.uint8)
    return np.unpackbits(out, bitorder="little").reshape(hi - lo, 256).astype(bool)


def accepting_through_nullable(rtn: RTN, r: int) -> np.ndarray:
    """bool [states of built rule r]: the state accepts, or reaches an accepting state through calls of
    nullable rules (the Earley set then also holds that state, whose completion continues in a caller)."""
    lo, hi = rtn.span(r)
    acc = rtn.accepting[lo:hi].copy()
    edges = [
        (g - lo, nxt - lo) for g in range(lo, hi) for callee, nxt in rtn.calls[g] if rtn.nullable[callee]
    ]
    changed = True
    while changed:
        changed = False
        for g, nxt in edges:
            if acc[nxt] and not acc[g]:
                acc[g] = changed = True
    return acc


def exit_tokens(dfa: ByteDFA, vocab: Vocabulary) -> list[np.ndarray]:
    """Per DFA state: the text tokens whose walk (counters ignored) passes an accepting state after at
    least one byte and then dies. Only tokens with a byte that enters an accepting state before their last
    byte can; there are few (a JSON string's closing quote inside a token like `",`)."""
    return _exit_tokens(_Uncounted(dfa), vocab)


@lru_cache(maxsize=64)
def _exit_ranks(key: _Uncounted, vocab: Vocabulary, order: VocabOrder) -> list[np.ndarray]:
    """Per DFA state: its `exit_tokens` as sorted ranks (read-only: the lexemes of every schema share them;
    made per visit they were a third of a plain string's first visit)."""
    ranked = [np.sort(order.rank_of[e]) for e in _exit_tokens(key, vocab)]
    for a in ranked:
        a.setflags(write=False)
    return ranked


@lru_cache(maxsize=8)
def _no_eos(vocab: Vocabulary) -> np.ndarray:
    """int32 [n_words]: every bit but the EOS tokens' (inside rows leave EOS to the matcher)."""
    eos_bits = np.zeros(vocab.n_words, dtype=np.uint32)
    set_bits(eos_bits, np.array(sorted(vocab.eos_ids), dtype=np.int64))
    clear = ~eos_bits.view(np.int32)
    clear.setflags(write=False)
    return clear


class _Uncounted(_Keyed):
    """A DFA keyed by its byte table and accepting states alone: all `exit_tokens` reads, so that the
    length-bounded variants of one string body (same bytes, other counter bounds) share one walk."""

    __slots__ = ()

    def __init__(self, dfa: ByteDFA) -> None:
        self.dfa, self.digest = dfa, _table_digest_of(dfa)


@lru_cache(maxsize=256)
def _table_digest_of(dfa: ByteDFA) -> str:
    h = hashlib.sha256()
    for a in (dfa.transitions, dfa.accepting):
        h.update(np.ascontiguousarray(a).tobytes() + repr((a.dtype.str, a.shape)).encode())
    return h.hexdigest()


@lru_cache(maxsize=64)
def _exit_tokens(key: _Uncounted, vocab: Vocabulary) -> list[np.ndarray]:
    """`exit_tokens` with the pair walk (compiled where built): every candidate token from every state at
    once, the accepting states as exit points (`exit_tokens_py` is the oracle)."""
    dfa = key.dfa
    ids, _, padded, _ = vocab.packed
    cand = _exit_candidates(dfa, vocab)
    n = dfa.n_states
    table = np.full((n + 1, 256), n, dtype=np.int32)  # row n: the dead state
    table[:n] = np.where(dfa.transitions < 0, n, dfa.transitions)
    exit_point = np.append(dfa.accepting.astype(bool), False)
    cur = table[:n, padded[cand, 0]]  # [state, candidate]: the state after the first byte
    src, which = np.nonzero(cur != n)
    w = pair_walk(
        src, cand[which], cur[src, which], table, n, exit_point, np.zeros_like(table, dtype=bool), vocab
    )
    order = np.lexsort((ids[w.unc_tok], w.unc_src))
    tokens, by_state = ids[w.unc_tok][order], w.unc_src[order]
    cuts = np.searchsorted(by_state, np.arange(n + 1)).tolist()
    return [tokens[cuts[q] : cuts[q + 1]].astype(np.int64) for q in range(n)]


def _exit_candidates(dfa: ByteDFA, vocab: Vocabulary) -> np.ndarray:
    """The rows of `vocab.packed` of the tokens with a byte that enters an accepting state before their last
    byte: the only ones that can pass one and then die."""
    trans = dfa.transitions
    enters = np.zeros(256, dtype=bool)
    src, byte = np.nonzero(trans >= 0)
    enters[byte[dfa.accepting[trans[src, byte]]]] = True
    want = np.packbits(enters, bitorder="little").view(np.uint64)
    return np.flatnonzero((_bytes_before_last(vocab) & want).any(axis=1))


@lru_cache(maxsize=8)
def _bytes_before_last(vocab: Vocabulary) -> np.ndarray:
    """uint64 [text tokens, 4]: per row of `vocab.packed`, the set of bytes before its last one (256 bits),
    so that a DFA's exit candidates are one AND over the vocabulary, not a lookup per byte of each token."""
    _, lengths, padded, _ = vocab.packed
    rows, cols = np.nonzero(np.arange(padded.shape[1])[None, :] < (lengths[:, None] - 1))
    flags = np.zeros((len(lengths), 256), dtype=bool)
    flags[rows, padded[rows, cols]] = True
    out = np.ascontiguousarray(np.packbits(flags, axis=1, bitorder="little")).view(np.uint64)
    out.setflags(write=False)
    return out


def exit_tokens_py(dfa: ByteDFA, vocab: Vocabulary) -> list[np.ndarray]:
    """`exit_tokens` a token and a byte at a time in Python (the tests' oracle)."""
    ids, lengths, padded, _ = vocab.packed
    cand = _exit_candidates(dfa, vocab)
    rows = dfa.transitions.tolist()
    acc = dfa.accepting.tolist()
    tokens = [(int(ids[i]), bytes(padded[i, : lengths[i]].tolist())) for i in cand.tolist()]
    out = []
    for q in range(dfa.n_states):
        hit = []
        for tid, data in tokens:
            state, passed = q, False
            for b in data:
                state = rows[state][b]
                if state < 0:
                    if passed:
                        hit.append(tid)
                    break
                passed = passed or acc[state]
        out.append(np.array(sorted(hit), dtype=np.int64))
    return out


__all__ = [
    "StateRows",
    "VocabOrder",
    "accepting_through_nullable",
    "call_first",
    "classify",
    "exit_tokens",
    "exit_tokens_py",
    "vocab_order",
]
