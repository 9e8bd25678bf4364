"""Loops of a rule (a JSON string body with its escapes and UTF-8 continuations, a digit run) walked once
per vocabulary and shared by every grammar: first visits of a state made rare.

Where a trie node enters a loop with many tokens below it, its tokens come from that loop's `Region`: the
walk of every token from that depth in that state until the token leaves the loop, made once per
vocabulary by `cfg_walk.pair_walk` and kept (in memory, and on disk by cfg_rows) under the loop's shape
(`region_key`: its states up to renaming, their exit points and the bytes that enter callees) and the
depth. Every string body of every schema shares it; what leaves the loop (the tokens holding a closing
quote: a few trie nodes) is walked on from the real exit states of each visit.

The look-up a first visit pays before that (`Loops`, `loop_key`, `region_key`, `Region.first_bytes`) is
compiled (`loops_c`, loops_c.c, built by `pip install`, optional); the numpy and Python versions are the
fallback (no C compiler, `DECC_PURE_PYTHON=1`) and the tests' oracle, with the same results.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..native import use_native
from ..tokens.vocab import Vocabulary
from . import cfg_walk
from .cfg_walk import Node, Walk, bits_of, pair_walk

try:
    from . import loops_c as compiled
except ImportError:  # installed without a C compiler: the pure-Python loop lookup
    compiled = None  # type: ignore[assignment]
# whether the loop lookup (`Loops`, `loop_key`, `region_key`) is compiled (loops_c.c) by default
NATIVE = use_native(compiled)


class Loops:
    """The loops of one rule's states lo..hi-1 (byte edges stay inside a rule). A loop is a strongly
    connected component among the *wide* states (at least `wide` live bytes): a string body with its escapes
    and UTF-8 continuations is one, while an object's loop over its members, which passes through narrow
    states (`:`, `,`), is not, so that one string body looks the same wherever it occurs. Compiled where
    built (loops_c: `native`, None: `NATIVE`), else numpy and Python, with the same results."""

    def __init__(
        self,
        table: np.ndarray,
        dead: int,
        lo: int,
        hi: int,
        wide: int,
        n_live: np.ndarray | None = None,
        native: bool | None = None,
    ) -> None:
        self.lo, self.rows, self.dead = lo, table[lo:hi], dead
        self.native = (NATIVE if native is None else native) and compiled is not None
        self._succ: dict[int, list[int]] = {}
        # Only the wide states can be on a loop: the components are found among them alone (a rule of
        # thousands of states, a large object's, has few: its string bodies'), the others' successors
        # only when `members` asks (`succ`). `n_live`: the states' live bytes, where the caller has them.
        live = (self.rows != dead).sum(axis=1) if n_live is None else n_live
        self._of_comp: dict[int, np.ndarray] = {}  # `members` of each loop, memoized
        if self.native:  # compiled (loops_c): the same components, numbered alike
            self._rows32 = np.ascontiguousarray(self.rows, dtype=np.int32)  # (StateRows': as they are)
            live = np.ascontiguousarray(live, dtype=np.int64)
            comp, self.any_loop = compiled.components(self._rows32, lo, dead, live, wide)
            self.comp = np.frombuffer(comp, dtype=np.int64)
        else:
            self.comp = _wide_components(self.rows, lo, hi, dead, live, wide)
            self.any_loop = bool((self.comp >= 0).any())  # most rules have none: `members` is None at once

    def succ(self, s: int) -> list[int]:
        """The distinct states a byte leads to from s (memoized)."""
        hit = self._succ.get(s)
        if hit is None:
            hit = self._succ[s] = sorted(set(self.rows[s - self.lo].tolist()) - {self.dead})
        return hit

    def members(self, s: int) -> np.ndarray | None:
        """The states of s's loop (sorted), or, for a state off loops whose every byte leads into one loop
        within a few bytes (a UTF-8 lead byte's continuations before a string body), those states and the
        loop's; None otherwise."""
        if not self.any_loop:
            return None
        c = int(self.comp[s - self.lo])
        if c >= 0:
            return self._loop(c)
        if self.native:
            got = compiled.funnel(self._rows32, self.lo, self.dead, self.comp, s, 3)
            return None if got is None else np.frombuffer(got, dtype=np.int64)
        funnel: set[int] = set()
        loop = self._funnel(s, 3, funnel)
        if loop is None:
            return None
        return np.array(sorted(funnel | set(self._loop(loop).tolist())), dtype=np.int64)

    def off_loops(self) -> np.ndarray:
        """Per state of the rule, whether `members` is None (bool): a rule's states flagged at once (compiled:
        one pass, where asking each state costs microseconds of Python)."""
        n = len(self.rows)
        if not self.any_loop:
            return np.ones(n, dtype=bool)
        if self.native:
            flags = compiled.off_loops(self._rows32, self.lo, self.dead, self.comp, 3)
            return np.frombuffer(flags, dtype=bool)
        return np.array([self.members(self.lo + i) is None for i in range(n)], dtype=bool)

    def _loop(self, c: int) -> np.ndarray:
        """The states of loop c (sorted, read-only)."""
        hit = self._of_comp.get(c)
        if hit is None:
            hit = self._of_comp[c] = np.flatnonzero(self.comp == c) + self.lo
            hit.setflags(write=False)
        return hit

    def _funnel(self, s: int, depth: int, seen: set[int]) -> int | None:
        """The one loop every byte from s (off loops) leads into within `depth` bytes, else None."""
        lo, comp = self.lo, self.comp
        seen.add(s)
        loop = None
        for t in self.succ(s):
            c = comp[t - lo]
            if c < 0:
                if depth <= 1 or t in seen:
                    return None
                c = self._funnel(t, depth - 1, seen)
                if c is None:
                    return None
            if loop is not None and c != loop:
                return None
            loop = int(c)
        return loop


def _wide_components(
    rows: np.ndarray, lo: int, hi: int, dead: int, live: np.ndarray, wide: int
) -> np.ndarray:
    """The component of each of a rule's states among its wide ones (`Loops.comp`), with numpy and
    `_components`: the fallback and the tests' oracle of loops_c's `components`."""
    comp = np.full(hi - lo, -1, dtype=np.int64)
    w = np.flatnonzero(live >= wide)
    if len(w) > 1 or len(w) == 1 and (rows[w[0]] == lo + w[0]).any():  # (a loop needs an edge)
        index = np.full(hi - lo + 1, -1, dtype=np.int64)  # wide state -> its node; the rest (dead) -1
        index[w] = np.arange(len(w))
        to = rows[w].astype(np.int64) - lo
        to[to < 0] = hi - lo  # a dead byte (`dead` is past every rule)
        nodes = np.sort(index[np.minimum(to, hi - lo)], axis=1)
        keep = nodes >= 0
        keep[:, 1:] &= nodes[:, 1:] != nodes[:, :-1]
        flat = nodes[keep].tolist()
        ends = np.cumsum(keep.sum(axis=1)).tolist()
        graph = [flat[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
        comp[w] = _components(graph, 0)
    return comp


def _components(succ: list[list[int]], lo: int) -> np.ndarray:
    """Tarjan's strongly connected components of the graph `succ` (node v's successors, offset by `lo`):
    a component id per node, -1 for a node on no cycle."""
    n = len(succ)
    index = [-1] * n
    low = [0] * n
    on = [False] * n
    comp = [-1] * n
    stack: list[int] = []
    counter = n_comp = 0
    for root in range(n):
        if index[root] >= 0:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on[v] = True
            edges = succ[v]
            while i < len(edges):
                w = edges[i] - lo
                i += 1
                if index[w] < 0:
                    work.append((v, i))
                    work.append((w, 0))
                    break
                if on[w]:
                    low[v] = min(low[v], index[w])
            else:
                if low[v] == index[v]:
                    members = []
                    while True:
                        w = stack.pop()
                        on[w] = False
                        members.append(w)
                        if w == v:
                            break
                    cyclic = len(members) > 1 or (v + lo) in succ[v]
                    for w in members:
                        comp[w] = n_comp if cyclic else -1
                    n_comp += 1
                if work:
                    u = work[-1][0]
                    low[u] = min(low[u], low[v])
    return np.array(comp, dtype=np.int64)


def region_key(
    g: int,
    members: np.ndarray,
    table: np.ndarray,
    dead: int,
    exit_point: np.ndarray,
    enters: np.ndarray,
    native: bool | None = None,
) -> tuple[str, list[int]]:
    """`region_key_py`'s digest and exits; compiled (loops_c: the same bytes hashed, made in one pass, where
    the Python pays a few hundred microseconds of numpy calls) where built and not turned off."""
    if (NATIVE if native is None else native) and compiled is not None:
        data, exits = compiled.region_bytes(table, members, g, dead, exit_point, enters)
        return hashlib.sha256(data).hexdigest(), exits
    return region_key_py(g, members, table, dead, exit_point, enters)


def region_key_py(
    g: int, members: np.ndarray, table: np.ndarray, dead: int, exit_point: np.ndarray, enters: np.ndarray
) -> tuple[str, list[int]]:
    """(a digest of the loop `members` as seen from g, up to renaming of states and merging of equivalent
    ones; the states it exits to, numbered as the digest numbers them). Two states with equal digests walk
    the same tokens the same way until those leave the loop (a loop built without minimization, a string
    body after its escapes, has several copies of one state: they share one walk)."""
    cls = loop_classes(members, table, dead, exit_point, enters)
    index = {x: i for i, x in enumerate(members.tolist())}
    rep: dict[int, int] = {}  # a class's first member
    for x, c in zip(members.tolist(), cls.tolist(), strict=True):
        rep.setdefault(c, x)
    number = {int(cls[index[g]]): 0}
    order = [g]
    exits: dict[int, int] = {}
    h = hashlib.sha256()
    i = 0
    while i < len(order):
        s = order[i]
        i += 1
        row = table[s]
        codes = np.full(256, -1, dtype=np.int64)
        targets, first = np.unique(row, return_index=True)
        for t in targets[np.argsort(first)].tolist():  # by first byte: copies of a state number alike
            if t == dead:
                continue
            k = index.get(t)
            if k is not None:
                c = int(cls[k])
                if c not in number:
                    number[c] = len(order)
                    order.append(rep[c])
                code = number[c]
            else:
                code = -2 - exits.setdefault(t, len(exits))
            codes[row == t] = code
        h.update(codes.tobytes())
        h.update(np.packbits(enters[s]).tobytes())
        h.update(b"x" if exit_point[s] else b".")
    return h.hexdigest(), sorted(exits, key=exits.__getitem__)


def loop_classes(
    members: np.ndarray, table: np.ndarray, dead: int, exit_point: np.ndarray, enters: np.ndarray
) -> np.ndarray:
    """The equivalence class of each of the loop's `members` (int64, numbered by first member): states
    with the same flags whose bytes lead to the same exits, or to equivalent members, alike (Moore's
    partition refinement; exits are told apart by state)."""
    k = len(members)
    rows = table[members].astype(np.int64)
    where = np.searchsorted(members, rows)
    inside = (where < k) & (members[np.minimum(where, k - 1)] == rows)
    # a target's code: -1 dead, k + (the exit state) outside the loop, else the member's class (below)
    outside = np.where(rows == dead, -1, k + rows)
    cls = _numbered(np.concatenate([exit_point[members][:, None], enters[members]], axis=1))
    n = int(cls.max(initial=-1)) + 1
    while True:
        sig = np.concatenate([cls[:, None], np.where(inside, cls[np.minimum(where, k - 1)], outside)], axis=1)
        cls = _numbered(sig)
        if int(cls.max(initial=-1)) + 1 == n:
            return cls
        n = int(cls.max(initial=-1)) + 1


def _numbered(rows: np.ndarray) -> np.ndarray:
    """Equal rows numbered alike, by first occurrence (a dict of their bytes: a loop has a few dozen rows,
    for which `np.unique(axis=0)` costs far more)."""
    ids: dict[bytes, int] = {}
    return np.array([ids.setdefault(r.tobytes(), len(ids)) for r in rows], dtype=np.int64)


# `loop_key` memos: the key, and the exits relative to the state; by the compiled layout (`_LAYOUTS`) or by
# the Python's digest of it (`_KEYS`)
_KEYS: dict[bytes, tuple[str, list[int]]] = {}
_LAYOUTS: dict[bytes, tuple[str, list[int]]] = {}
_KEYS_MAX = 100_000
_LAYOUTS_MAX = 20_000  # (a layout is about a kilobyte)


def loop_key(
    g: int,
    members: np.ndarray,
    table: np.ndarray,
    dead: int,
    exit_point: np.ndarray,
    enters: np.ndarray,
    native: bool | None = None,
) -> tuple[str, list[int]]:
    """`region_key`, memoized on the loop's layout relative to g (its states and edges as offsets from g,
    their flags): the copies of one string body in a grammar, and in other grammars, are laid out alike,
    so a visit pays a look-up instead of a walk over the loop. Compiled, the layout itself is the memo's key
    (run-length bytes, a few hundred for a string body: no digest, no collision); else a digest of it."""
    native = (NATIVE if native is None else native) and compiled is not None
    if native:
        fp = compiled.layout(table, members, g, dead, exit_point, enters)
        memo = _LAYOUTS
    else:
        fp = layout_digest(g, members, table, dead, exit_point, enters)
        memo = _KEYS
    hit = memo.get(fp)
    if hit is None:
        key, exits = region_key(g, members, table, dead, exit_point, enters, native)
        if len(memo) >= (_LAYOUTS_MAX if native else _KEYS_MAX):
            memo.clear()
        hit = memo[fp] = (key, [x - g for x in exits])
    return hit[0], [x + g for x in hit[1]]


def layout_digest(
    g: int, members: np.ndarray, table: np.ndarray, dead: int, exit_point: np.ndarray, enters: np.ndarray
) -> bytes:
    """A digest of the loop's layout relative to g (the Python `loop_key`'s memo key)."""
    rows = table[members]
    layout = hashlib.sha256((members - g).tobytes())
    layout.update(np.where(rows == dead, np.iinfo(np.int64).min, rows.astype(np.int64) - g).tobytes())
    layout.update(exit_point[members].tobytes() + np.packbits(enters[members]).tobytes())
    return layout.digest()


@dataclass(frozen=True, eq=False)
class Region:
    """The walk of every token from its byte `depth` on, starting in a loop state, until it leaves the loop:
    the ranks (sorted, int32) of the tokens that end inside it and of those that die in it after an exit
    point, and the trie nodes that leave it (depth, rank lo, rank hi, exit number, passed), by rank. Any
    trie node at that depth in that state takes its part: `take`."""

    inside: np.ndarray
    uncertain: np.ndarray
    leaving: tuple[tuple[int, int, int, int, bool], ...] | None  # None: too many to be worth it
    leaving_lo: np.ndarray
    bounds: np.ndarray  # the vocabulary's first-byte rank bounds (VocabOrder.first_bounds)
    n_exits: int
    words: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    # The first byte of each rank in `inside`, `uncertain` and `leaving_lo` (uint8), made on first use.
    firsts: list[np.ndarray] = field(default_factory=list, repr=False)
    # `inside`, `uncertain` and `leaving_lo` as memoryviews, made on first use: `take` bisects them (a
    # memoryview item is a Python int; numpy's searchsorted costs microseconds a call, six a node).
    views: list[memoryview] = field(default_factory=list, repr=False)
    # Its arrays for the compiled one-call classification (`parts`), made on first use.
    compiled_parts: list[object] = field(default_factory=list, repr=False)

    # For the disk cache (disk_cache.py): the memos are not stored.
    def __getstate__(self) -> dict:
        memos = ("words", "firsts", "views", "compiled_parts")
        return {k: v for k, v in self.__dict__.items() if k not in memos}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, words={}, firsts=[], views=[], compiled_parts=[])

    def parts(self) -> object:
        """This walk as `trie_walk_c.TrieWalk.classify` reads it (a `trie_walk_c.RegionParts`, made once: it
        keeps the first bytes it took per byte set, as `first_bytes` does); a region with `leaving`."""
        if not self.compiled_parts:
            assert self.leaving is not None and cfg_walk.compiled is not None
            c = np.ascontiguousarray
            leaving = np.array(self.leaving, dtype=np.int64).reshape(-1)
            self.compiled_parts.append(
                cfg_walk.compiled.RegionParts(
                    c(self.inside, dtype=np.int32),
                    c(self.uncertain, dtype=np.int32),
                    c(self.leaving_lo, dtype=np.int64),
                    leaving,
                    c(self.bounds, dtype=np.int64),
                )  # fmt: skip
            )
        return self.compiled_parts[0]

    def first_bytes(
        self, firsts: bytes, rank_to_id: np.ndarray, n_words: int, native: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the tokens starting with one of the bytes `firsts` (sorted, distinct) at depth 1: (the bitmask
        of those inside; the uncertain ranks; the indices of the leaving nodes), memoized by byte set (read
        only: a state's first visit takes them as they are). Compiled (loops_c: `native`, None: `NATIVE`)
        where built, else numpy, with the same results."""
        hit = self.words.get(firsts)
        if hit is not None:
            return hit
        if (NATIVE if native is None else native) and compiled is not None:
            # compiled: each byte's ranks are one slice of each sorted array, where the Python below
            # classifies every rank of `inside` (most of a vocabulary for a string body) by first byte
            c = np.ascontiguousarray
            parts = compiled.first_parts(
                c(self.inside, dtype=np.int32), c(self.uncertain, dtype=np.int32),
                c(self.leaving_lo, dtype=np.int64), c(self.bounds, dtype=np.int64), firsts,
                c(rank_to_id, dtype=np.int64), n_words,
            )  # fmt: skip
            row, unc, leaving = parts
            hit = (
                np.frombuffer(row, np.uint32),
                np.frombuffer(unc, np.int64),
                np.frombuffer(leaving, np.int64),
            )
            self.words[firsts] = hit
            return hit
        if not self.firsts:
            self.firsts.extend(
                (np.searchsorted(self.bounds, a, side="right") - 1).astype(np.uint8)
                for a in (self.inside, self.uncertain, self.leaving_lo)
            )
        first_in, first_unc, first_leaving = self.firsts
        pick = np.zeros(256, dtype=bool)
        pick[list(firsts)] = True
        hit = (
            bits_of(rank_to_id[self.inside[pick[first_in]]], n_words),
            self.uncertain[pick[first_unc]].astype(np.int64),
            np.flatnonzero(pick[first_leaving]),
        )
        for a in hit:
            a.setflags(write=False)
        self.words[firsts] = hit
        return hit

    def take(self, lo: int, hi: int, exits: list[int], exit_point: np.ndarray, out: Walk) -> list[Node]:
        """Add the tokens of ranks lo..hi-1 to `out`; the trie nodes among them that leave the loop, to
        walk on from the states `exits` names."""
        views = self.views
        if not views:
            views += [
                memoryview(np.ascontiguousarray(a)) for a in (self.inside, self.uncertain, self.leaving_lo)
            ]
        for have, v, to in (
            (self.inside, views[0], out.inside_ranks),
            (self.uncertain, views[1], out.unsure_ranks),
        ):
            a, b = bisect_left(v, lo), bisect_left(v, hi)
            if b > a:
                to.append(have[a:b])
        a, b = bisect_left(views[2], lo), bisect_left(views[2], hi)
        nodes = []
        for d, l2, h2, x, p in self.leaving[a:b]:
            s = exits[x]
            nodes.append((d, l2, h2, s, p or bool(exit_point[s])))
        return nodes


def region_walk(
    s: int,
    depth: int,
    members: np.ndarray,
    exits: list[int],
    table: np.ndarray,
    dead: int,
    exit_point: np.ndarray,
    enters: np.ndarray,
    vocab: Vocabulary,
    rank_of: np.ndarray,
    words: tuple[bytes, ...],
    bounds: np.ndarray,
    max_leaving: int,
) -> Region:
    """`Region` of the loop state s at `depth` (`members`: its loop, `exits`: the states it leaves to,
    numbered); with no `leaving` (None) when more than `max_leaving` tokens leave. Compiled where built: the
    tokens walked in rank order, each from the states of the prefix it shares with the previous one (a
    cost per trie node, not per byte: a third of the pair walk's on Llama-3), their ranks sorted as they
    come; else `region_walk_py`, the tests' oracle, with the same result."""
    if not cfg_walk.NATIVE or cfg_walk.compiled is None:
        return region_walk_py(
            s, depth, members, exits, table, dead, exit_point, enters, vocab, rank_of, words, bounds, max_leaving
        )  # fmt: skip
    stop = np.ones(len(table), dtype=bool)
    stop[members] = False
    stop[dead] = False
    blob, offsets, lcps = joined_ranks(words)
    c = np.ascontiguousarray
    parts = cfg_walk.compiled.region_walk(
        s, depth, c(table, dtype=np.int32), dead, c(exit_point, dtype=bool), stop, c(enters, dtype=bool), blob,
        offsets, lcps,
    )  # fmt: skip
    inside, uncertain = (np.frombuffer(a, dtype=np.int32) for a in parts[:2])
    if parts[2] > max_leaving:  # too many to resume from: the region is not worth keeping
        return Region(inside, uncertain, None, np.zeros(0, dtype=np.int64), bounds, len(exits))
    at, lo, hi, state = (np.frombuffer(a, dtype=np.int64) for a in parts[3:7])
    number = {x: i for i, x in enumerate(exits)}
    leaving = tuple(
        (d, a, b, number[x], bool(p))
        for d, a, b, x, p in zip(at.tolist(), lo.tolist(), hi.tolist(), state.tolist(), parts[7], strict=True)
    )
    leaving_lo = lo.copy()
    for a in (inside, uncertain, leaving_lo):
        a.setflags(write=False)
    return Region(inside, uncertain, leaving, leaving_lo, bounds, len(exits))


_JOINED: dict[int, tuple[tuple[bytes, ...], bytes, np.ndarray]] = {}  # `joined_words` memo, by id
_LCPS: dict[int, tuple[tuple[bytes, ...], bytearray]] = {}  # `joined_ranks`' prefix lengths, by id
_MAX_JOINED = 8  # vocabulary orders whose joined bytes are kept (each memo keeps its tuple alive: ids stay)


def joined_words(words: tuple[bytes, ...]) -> tuple[bytes, np.ndarray]:
    """`words` joined into one bytes object, and the int64 offsets of each (one more than the words), made
    once per vocabulary order: the compiled walks read a token's bytes from there rather than from its own
    bytes object, a cache miss for each of hundreds of tokens per mask on a 128k vocabulary."""
    got = _JOINED.get(id(words))
    if got is not None and got[0] is words:
        return got[1], got[2]
    offsets = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum([len(w) for w in words], out=offsets[1:])
    blob = b"".join(words)
    if len(_JOINED) >= _MAX_JOINED:
        _JOINED.clear()
    _JOINED[id(words)] = (words, blob, offsets)
    return blob, offsets


def joined_ranks(words: tuple[bytes, ...]) -> tuple[bytes, np.ndarray, bytearray]:
    """`joined_words` and each rank's common prefix with the previous one (`rank_lcps`), for the compiled
    region walk."""
    blob, offsets = joined_words(words)
    hit = _LCPS.get(id(words))
    if hit is None or hit[0] is not words:
        if len(_LCPS) >= _MAX_JOINED:
            _LCPS.clear()
        hit = _LCPS[id(words)] = (words, cfg_walk.compiled.rank_lcps(blob, offsets))
    return blob, offsets, hit[1]


def region_walk_py(
    s: int,
    depth: int,
    members: np.ndarray,
    exits: list[int],
    table: np.ndarray,
    dead: int,
    exit_point: np.ndarray,
    enters: np.ndarray,
    vocab: Vocabulary,
    rank_of: np.ndarray,
    words: tuple[bytes, ...],
    bounds: np.ndarray,
    max_leaving: int,
) -> Region:
    """`region_walk` with the pair walk (`cfg_walk.pair_walk`, compiled or not) and numpy: the fallback and
    the tests' oracle."""
    ids, lengths, _, _ = vocab.packed
    stop = np.ones(len(table), dtype=bool)
    stop[members] = False
    stop[dead] = False
    t_idx = np.flatnonzero(lengths >= depth)
    n = len(t_idx)
    w = pair_walk(
        np.full(n, s, dtype=np.int64), t_idx, np.full(n, s, dtype=table.dtype), table, dead, exit_point,
        enters, vocab, stop, depth,
    )  # fmt: skip
    inside, uncertain = (_sorted_ranks(rank_of[ids[t]], len(ids)) for t in (w.in_tok, w.unc_tok))
    number = {x: i for i, x in enumerate(exits)}
    if len(w.out_tok) > max_leaving:  # too many to resume from: the region is not worth keeping
        return Region(inside, uncertain, None, np.zeros(0, dtype=np.int64), bounds, len(exits))
    ranks = rank_of[ids[w.out_tok]]
    order = np.argsort(ranks, kind="stable")
    leaving: list[Node] = []
    for r, at, x, p in zip(
        ranks[order].tolist(), w.out_at[order].tolist(), w.out_state[order].tolist(),
        w.out_passed[order].tolist(), strict=True,
    ):  # fmt: skip
        last = leaving[-1] if leaving else None
        if last is not None and last[2] == r and last[0] == at and words[r][:at] == words[r - 1][:at]:
            leaving[-1] = (at, last[1], r + 1, last[3], last[4])  # the same trie node: one more token
        else:
            leaving.append((at, r, r + 1, number[x], bool(p)))
    leaving_lo = np.array([lo for _, lo, _, _, _ in leaving], dtype=np.int64)
    for a in (inside, uncertain, leaving_lo):
        a.setflags(write=False)
    return Region(inside, uncertain, tuple(leaving), leaving_lo, bounds, len(exits))


def _sorted_ranks(ranks: np.ndarray, n: int) -> np.ndarray:
    """The distinct `ranks` (< n) sorted, int32: flagged and read back in one pass (most of a vocabulary
    stays inside a string body, where sorting them cost more than the rest of the region's walk)."""
    flags = np.zeros(n, dtype=bool)
    flags[ranks] = True
    return np.flatnonzero(flags).astype(np.int32)


@lru_cache(maxsize=8)
def regions(vocab: Vocabulary) -> dict[tuple[str, int], Region]:
    """The regions walked so far for `vocab`, by `region_key` digest and depth (shared by every grammar)."""
    return {}


__all__ = [
    "Loops",
    "Region",
    "joined_ranks",
    "joined_words",
    "loop_classes",
    "layout_digest",
    "loop_key",
    "region_key",
    "region_key_py",
    "region_walk",
    "region_walk_py",
    "regions",
]
