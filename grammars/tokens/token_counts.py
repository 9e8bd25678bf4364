"""Token rows for states inside counted segments: which tokens are allowed depends on the counter.

A token from a segment state either stays inside (adding `delta` characters: allowed while the segment can
still be left within bounds, `live[next][c + delta]`) or leaves it (allowed when min <= c + delta <= max).
The row for counter c therefore depends only on the live/in-bounds pattern over c .. c + W (W: the most
characters one token adds there): its signature. Far from the bounds every c has the same signature, so
a state needs a few dozen rows at most. They are all built at compile time, so that no decoding step pays
for one (built on a state's first mask instead, the first visits of long strings took up to 280 ms): a
state's tokens fall into disjoint groups of equal (leaves, next state, delta), whose allowedness is the same for every token of the group; walking the signatures in counter order, each row
is the previous one XOR the few groups that flipped (disjoint groups: OR is XOR, and XOR undoes itself).
A state's loop tokens (token_loops.py) stay in the state: their groups, by delta, are built once per loop.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..automata.counters import counter_signature, row_ids
from ..automata.dfa import ByteDFA
from .token_automaton import NO_LOW, dedup_rows, live_layout, merge_by_id, pack_bits, set_bits
from .token_loops import Loop
from .vocab import Vocabulary

if TYPE_CHECKING:
    from .token_automaton import CountedWalk


@dataclass(eq=False)
class Counts:
    seg: np.ndarray  # int32 [n]: segment label, -1 outside
    bounds: tuple[tuple[int, int], ...]
    delta: np.ndarray  # int32 per CSR pair: characters the token adds in the start state's segment
    exited: np.ndarray  # bool per CSR pair: the token leaves that segment
    off: np.ndarray
    length: np.ndarray
    flat: np.ndarray
    sig: dict[int, np.ndarray]  # label -> int64 [max + 1]: counter value -> signature
    n_words: int
    eos: np.ndarray
    loop_of: np.ndarray
    loops: tuple[Loop, ...]
    cache: dict[tuple[int, int], tuple[torch.Tensor, int]] = field(default_factory=dict)
    # Python-list copies for the per-token byte walk (TokenAutomaton.step): faster than numpy scalars.
    py_seg: list[int] = field(default_factory=list)
    py_sig: dict[int, list[int]] = field(default_factory=dict)  # `sig` as lists, filled with it
    # The most characters one token adds per label (the signature's reach): `sig` is made on first use.
    reach: dict[int, int] = field(default_factory=dict)
    built: set[int] = field(default_factory=set)  # states whose rows are all in `cache`
    # Shared by the states' row builds: loop groups per loop class, distinct rows by content.
    loop_groups: dict[int, tuple[np.ndarray, ...]] = field(default_factory=dict, repr=False)
    distinct: dict[bytes, torch.Tensor] = field(default_factory=dict, repr=False)
    py_live: dict[int, np.ndarray] = field(default_factory=dict)
    ticks: memoryview = field(default_factory=lambda: memoryview(b""))  # flat like TokenAutomaton.flat

    # State for the on-disk constraint cache (disk_cache.py): memoryviews and tensors are not data, and
    # the eager rows are many (tens of thousands, hundreds of MB) but mostly equal: they go as the distinct
    # rows plus an index per key, and come back as views of one array (shared, never written to).
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["loop_groups"], state["distinct"] = {}, {}  # rebuilt as rows are (tensors are not data)
        state["built"] = frozenset(self.built)
        del state["py_live"]  # made again from off/length/flat, on first use
        keys = list(self.cache)
        distinct, index = dedup_rows([self.cache[k][0].numpy() for k in keys], self.n_words)
        state["cache"] = (keys, [self.cache[k][1] for k in keys], distinct, index)
        state["ticks"] = np.asarray(self.ticks, dtype=np.uint8)
        return state

    def __setstate__(self, state: dict) -> None:
        keys, n_text, distinct, index = state["cache"]
        rows = list(torch.from_numpy(np.array(distinct, dtype=np.int32)).unbind(0))
        state["cache"] = {k: (rows[j], n) for k, j, n in zip(keys, index.tolist(), n_text, strict=True)}
        state["ticks"] = memoryview(np.ascontiguousarray(state["ticks"], dtype=np.uint8))
        state["built"] = set(state["built"])
        state["py_live"] = _Lists(state["off"], state["length"], state["flat"])
        self.__dict__.update(state)

    @classmethod
    def build(
        cls,
        dfa: ByteDFA,
        vocab: Vocabulary,
        indptr: np.ndarray,
        token_ids: np.ndarray,
        next_state: np.ndarray,
        eos: np.ndarray,
        cat: list[np.ndarray] | None,
        loop_of: np.ndarray,
        loops: tuple[Loop, ...],
        walk: CountedWalk | None = None,
    ) -> Counts:
        """`walk`: the bounds-free walk these pairs were kept from (`TokenAutomaton.from_walk`), whose
        token groups and rows the automata of its other bounds share (`_shared_groups`)."""
        n = dfa.n_states
        if cat is None:
            cat = [np.zeros(0, dtype=np.int32), np.zeros(0, dtype=bool)]
        delta, exited = cat
        off, length, flat = live_layout(dfa.live, n)
        seg = np.asarray(dfa.seg)
        pair_state = np.repeat(np.arange(n), np.diff(indptr))
        loop_w = np.array([int(lp.ticks.max(initial=0)) for lp in loops] + [0], dtype=np.int64)
        # per label, the most characters one token adds: delta's maximum over the label's pairs
        most = np.zeros(len(dfa.bounds) + 1, dtype=np.int64)  # index -1: pairs outside segments
        np.maximum.at(most, seg[pair_state], delta.astype(np.int64))
        reach = {}
        for label in range(len(dfa.bounds)):
            qs = np.flatnonzero(seg == label)
            if len(qs):
                reach[label] = max(int(most[label]), int(loop_w[loop_of[qs]].max()))
        for a in (delta, exited):
            a.setflags(write=False)
        counts = cls(
            seg, dfa.bounds, delta, exited, off, length, flat, {}, vocab.n_words, eos, loop_of, loops
        )
        counts.reach = reach
        counts.py_seg = seg.tolist()
        counts.py_live = _Lists(off, length, flat)
        counts.ticks = memoryview(np.ascontiguousarray(dfa.tick, dtype=np.uint8).reshape(-1))
        if walk is not None and len(length) and int(length.max()) > dfa.bounds[0][1] + 1:
            walk = None  # (`_shared_groups` needs no live flag past the maximum)
        for q in np.flatnonzero(seg >= 0).tolist():
            counts._eager_rows(dfa, q, indptr, token_ids, next_state, walk)
            counts.built.add(q)
        return counts

    def signature(self, dfa: ByteDFA, label: int) -> np.ndarray | None:
        """`sig[label]`, made with its first row (None for a label no state has)."""
        found = self.sig.get(label)
        if found is None and label in self.reach:
            found = counter_signature(dfa, label, self.reach[label])
            self.py_sig[label] = found.tolist()
            self.sig[label] = found  # last: a reader that sees it in `sig` finds `py_sig` too
        return found

    def build_rows(self, auto, q: int) -> None:  # type: ignore[no-untyped-def]
        """All rows of counted state `q` into the cache, once (at build; after a cache load, on first use)."""
        if q not in self.built:
            if self.seg[q] >= 0:
                self._eager_rows(auto.dfa, q, auto.indptr, auto.token_ids, auto.next_state)
            self.built.add(q)

    def _eager_rows(
        self,
        dfa: ByteDFA,
        q: int,
        indptr: np.ndarray,
        token_ids: np.ndarray,
        next_state: np.ndarray,
        walk: CountedWalk | None = None,
    ) -> None:
        """Every row state `q` can need (one per signature of its live counters), into the cache."""
        loop_groups, distinct = self.loop_groups, self.distinct  # most rows repeat: each stored once
        sig = self.signature(dfa, int(self.seg[q]))
        live = dfa.live.get(q)
        if sig is None or live is None:
            return
        cs = np.flatnonzero(live[: len(sig)])
        if not len(cs):
            return
        values, first = np.unique(sig[cs], return_index=True)
        reps = np.sort(cs[first])  # one counter per signature, ascending: neighbours differ little
        shared = _shared_groups(walk, q, self.n_words) if walk is not None else None
        if shared is not None:
            g_next, g_delta, bits, sizes = shared
            known = walk.memo.setdefault(("rows", q), {})  # type: ignore[union-attr]
        else:
            a, b = int(indptr[q]), int(indptr[q + 1])
            g_next, g_delta, bits, sizes = _groups(
                np.where(self.exited[a:b], -1, next_state[a:b]), self.delta[a:b], token_ids[a:b], self.n_words
            )
            known = None
        c = int(self.loop_of[q])
        if c >= 0:  # loop tokens: stay in q, grouped by delta once per loop
            if c not in loop_groups:
                loop_groups[c] = loop_groups_of(self.loops[c], self.n_words)
            l_delta, l_bits, l_sizes = loop_groups[c]
            g_next = np.concatenate([g_next, np.full(len(l_delta), q)])
            g_delta = np.concatenate([g_delta, l_delta])
            bits = np.concatenate([bits, l_bits])
            sizes = np.concatenate([sizes, l_sizes])
        g_ex = g_next < 0
        lo_b, hi_b = self.bounds[int(self.seg[q])]
        # ok[i, g]: group g is allowed with counter reps[i]
        k = reps[:, None] + g_delta[None, :]
        ok = np.where(g_ex[None, :], (k >= lo_b) & (k <= hi_b), False)
        stay = np.flatnonzero(~g_ex)
        if len(stay):
            q2 = g_next[stay][None, :]
            ks = k[:, stay]
            inside = ks < self.length[q2]
            idx = np.where(inside, self.off[q2] + ks, 0)
            ok[:, stay] = inside & self.flat[idx]
        n_text = (ok.astype(np.int64) @ sizes).tolist()
        # (`dfa.is_accepting` for a segment state, for all reps at once)
        accepts = (reps >= lo_b) & (reps <= hi_b) & bool(dfa.accepting[q])
        # Signatures that allow the same groups (and EOS alike) share one row: most of a state's dozens
        # of signatures differ only in groups no token reaches, so a few rows are built, not one each.
        # (Named by `row_ids` over the packed flags: np.unique(axis=0) sorted them as records, a third
        # of a counted lexeme's build.)
        kind_of = row_ids(np.column_stack([ok, accepts]))
        first = np.unique(kind_of, return_index=True)[1]  # each kind's first rep (kinds are 0 .. k - 1)
        kinds, kind_accepts = ok[first], accepts[first]
        # Each kind's row is the OR of its groups' bits: the groups are disjoint, so it is their sum, and
        # all kinds' sums are one float64 product (exact: a word's sum stays below 2**32), where an OR
        # reduction per kind cost ~50 us each (a counted lexeme's first visit: dozens of kinds a state).
        # With the walk's groups, a kind's row is known from the other bounds' automata where it was made
        # (far from the bounds, a string body's kinds are the same whatever the bounds).
        names = None if known is None else _names(kinds, kind_accepts)
        todo = np.arange(len(kinds)) if names is None else [i for i, k in enumerate(names) if k not in known]
        tensors: list[torch.Tensor | None] = (
            [None] * len(kinds) if names is None else [known.get(k) for k in names]
        )
        if len(todo):
            words = kinds[todo].astype(np.float64) @ bits.view(np.uint32).astype(np.float64)
            rows = words.astype(np.uint32).view(np.int32).reshape(len(todo), self.n_words)
            for i, row in zip(todo, rows, strict=True):
                out = row.copy()
                if kind_accepts[i]:
                    set_bits(out.view(np.uint32), self.eos)
                tensors[i] = distinct.setdefault(out.tobytes(), torch.from_numpy(out))
                if names is not None:
                    known[names[i]] = tensors[i]
        cache = self.cache
        for s, k, n in zip(sig[reps].tolist(), kind_of.tolist(), n_text, strict=True):
            cache[(q, s)] = (tensors[k], n)

    def pairs(self, auto, q: int) -> tuple[np.ndarray, ...]:  # type: ignore[no-untyped-def]
        """(ids, next state, delta, exited) of every text token of `q`, loop tokens included, by id."""
        a, b = int(auto.indptr[q]), int(auto.indptr[q + 1])
        ids, nxt, delta, ex = auto.token_ids[a:b], auto.next_state[a:b], self.delta[a:b], self.exited[a:b]
        c = int(self.loop_of[q])
        if c >= 0:
            lp = self.loops[c]
            loop = (lp.ids, np.full(lp.size, q, dtype=np.int32), lp.ticks, np.zeros(lp.size, dtype=bool))
            ids, nxt, delta, ex = merge_by_id([(ids, nxt, delta, ex), loop])
        return ids, nxt, delta, ex

    def valid(self, q: int, c: int, nxt: np.ndarray, delta: np.ndarray, ex: np.ndarray) -> np.ndarray:
        """Per pair of `q` (as `pairs` gives them): allowed with counter `c`."""
        lo_b, hi_b = self.bounds[int(self.seg[q])]
        k = c + delta.astype(np.int64)
        ok = ex & (k >= lo_b) & (k <= hi_b)
        stay = np.flatnonzero(~ex)
        q2 = nxt[stay]
        ks = k[stay]
        inside = ks < self.length[q2]
        good = np.zeros(len(stay), dtype=bool)
        good[inside] = self.flat[self.off[q2[inside]] + ks[inside]]
        ok[stay] = good
        return ok

    def row(self, auto, state: int, c: int) -> tuple[torch.Tensor, int]:  # type: ignore[no-untyped-def]
        if state not in self.built:
            self.build_rows(auto, state)
        sig = self.py_sig.get(self.py_seg[state])
        key = (state, sig[c] if sig is not None and 0 <= c < len(sig) else -1 - c)
        hit = self.cache.get(key)
        if hit is None:  # a counter no decoding reaches (eager rows cover the live ones)
            ids, nxt, delta, ex = self.pairs(auto, state)
            toks = ids[self.valid(state, c, nxt, delta, ex)]
            row = pack_bits(np.zeros(len(toks), dtype=np.int64), toks, 1, self.n_words)[0]
            if auto.dfa.is_accepting(state, c):
                set_bits(row, self.eos)
            hit = self.cache[key] = (torch.from_numpy(row.view(np.int32)), len(toks))
        return hit


# Loop groups per loop (a vocabulary's loops are shared by its automata: token_loops' `loop_cache`).
_LOOP_GROUPS: weakref.WeakKeyDictionary[Loop, tuple[np.ndarray, ...]] = weakref.WeakKeyDictionary()


def loop_groups_of(loop: Loop, n_words: int) -> tuple[np.ndarray, ...]:
    """(delta, bitmask rows, sizes) of `loop`'s tokens grouped by delta, made once per loop: every
    counted automaton of a vocabulary (each bounded JSON string) has the same string-body loop."""
    found = _LOOP_GROUPS.get(loop)
    if found is None:
        found = _LOOP_GROUPS[loop] = _groups(np.zeros(loop.size, np.int64), loop.ticks, loop.ids, n_words)[1:]
    return found


class _Lists(dict):
    """`live` per state as views of the flat table, made on first use (a long segment's tables hold
    millions of flags: Python lists of them took a tenth of a second to make)."""

    def __init__(self, off: np.ndarray, length: np.ndarray, flat: np.ndarray) -> None:
        super().__init__()
        self.off, self.length, self.flat = off, length, flat

    def __missing__(self, q: int) -> np.ndarray:
        found = self[q] = self.flat[self.off[q] : self.off[q] + self.length[q]]
        return found


def _shared_groups(walk: CountedWalk, q: int, n_words: int) -> tuple[np.ndarray, ...] | None:
    """`_groups` of state q's pairs in the bounds-free walk, made once per walk; None where the bounds
    decide more of q's pairs than that no token adds more characters than the maximum (pairs that leave
    the segment and enter one again). Otherwise the groups of any bounds' kept pairs are these less the
    groups whose delta passes the maximum, which no counter allows (live flags end at the maximum):
    the same rows."""
    key = ("groups", q)
    if key not in walk.memo:
        a, b = np.searchsorted(walk.src, [q, q + 1]).tolist()
        simple = (
            bool((walk.low[a:b] == NO_LOW).all())
            and bool((walk.end[a:b] < 0).all())
            and bool((walk.top[a:b] <= walk.delta[a:b]).all())
        )
        nxt = np.where(walk.exited[a:b], -1, walk.dst[a:b])
        walk.memo[key] = _groups(nxt, walk.delta[a:b], walk.tok[a:b], n_words) if simple else None
    return walk.memo[key]


def _names(kinds: np.ndarray, accepts: np.ndarray) -> list[bytes]:
    """Each kind (the groups it allows, and EOS) as bytes."""
    return [k.tobytes() for k in np.packbits(np.column_stack([kinds, accepts]), axis=1)]


def _groups(nxt: np.ndarray, delta: np.ndarray, ids: np.ndarray, n_words: int) -> tuple[np.ndarray, ...]:
    """Tokens grouped by (next state, -1 for leaving; delta): (next, delta, bitmask rows, sizes) per group.

    Groups by scatter, not np.unique over rows (a sort: ~40 ms at 49k pairs; this is ~0.1 ms).
    """
    shifted = nxt.astype(np.int64) + 1
    seen = np.zeros(int(shifted.max(initial=0)) + 1, dtype=bool)
    seen[shifted] = True
    dense = np.cumsum(seen) - 1
    width = int(delta.max(initial=0)) + 1
    key = dense[shifted] * width + delta
    present = np.zeros(int(dense[-1] + 1) * width, dtype=bool)
    present[key] = True
    gid = (np.cumsum(present) - 1)[key]
    used = np.flatnonzero(present)
    g_next, g_delta = np.flatnonzero(seen)[used // width] - 1, used % width
    bits = pack_bits(gid, ids.astype(np.int64), len(used), n_words).view(np.int32)
    return g_next, g_delta, bits, np.bincount(gid, minlength=len(used))
