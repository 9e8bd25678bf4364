"""The vocabulary walks behind `cfg_rows.StateRows`: first visits of a state made cheap and rare.

A state's rows come from walking tokens through its rule's byte table (see cfg_rows for the three
classes). `TrieWalk` walks the vocabulary's byte trie depth first, in pure Python, over the tokens sorted
by bytes (a trie node is a rank range; a child is found by bisection): its cost grows with the live
(node, state) pairs only, since a dead byte drops a whole subtree as one rank range.

Where a node enters a *loop* of its rule (a JSON string body with its escapes and UTF-8 continuations, a
digit run) with many tokens below it, its tokens come from that loop's `Region` instead: the walk of every
token from that depth in that state until the token leaves the loop, made once per vocabulary by
`pair_walk` (all tokens at once, numpy) and kept in `regions` under the loop's shape (`region_key`: its
states up to renaming, their exit points and the bytes that enter callees) and the depth. Every string
body of every schema shares it; what leaves the loop (the tokens holding a closing quote: a few trie
nodes) is walked on from the real exit states of each visit. `pair_walk` over every (state, token) pair is
also the fallback past the trie walk's budget and the tests' reference.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..limits import check_time
from ..tokens.vocab import Vocabulary

_BYTE = [bytes([b]) for b in range(256)]
FEW = 16  # tokens in a trie node, up to which the trie walk takes it even where a shared walk exists


class TrieWalk:
    """Depth-first trie walks of byte-sorted tokens (`words`, `bounds`: where each first byte's start) through
    a byte table (`dead`: no state)."""

    def __init__(
        self,
        words: tuple[bytes, ...],
        bounds: np.ndarray,
        table: np.ndarray,
        dead: int,
        exit_point: np.ndarray,
        enters: np.ndarray,
    ) -> None:
        self.words, self.table, self.dead = words, table, dead
        self.exit_point, self.enters = exit_point, enters
        self._states: dict[int, tuple[list[int], list[int], frozenset[int]]] = {}
        self.bounds = bounds  # the ranks of the tokens starting with byte b: [bounds[b], bounds[b + 1])
        self.first = bounds.tolist()

    def state(self, s: int) -> tuple[list[int], list[int], frozenset[int]]:
        """(byte row, live bytes, bytes that enter a callee) of state s, as Python lists (memoized)."""
        hit = self._states.get(s)
        if hit is None:
            row = self.table[s]
            enters = frozenset(np.flatnonzero(self.enters[s]).tolist())
            hit = (row.tolist(), np.flatnonzero(row != self.dead).tolist(), enters)
            self._states[s] = hit
        return hit

    def roots(self, g: int) -> list[tuple[int, int, int, int, bool]]:
        """The walk's start from state g: one node per live first byte (a first byte never makes a token
        uncertain: the Earley set's own predictions and completions cover it)."""
        row, live, _ = self.state(g)
        first, exit_point = self.first, self.exit_point
        out = []
        for b in live:
            lo, hi = first[b], first[b + 1]
            if lo < hi:
                nxt = row[b]
                out.append((1, lo, hi, nxt, bool(exit_point[nxt])))
        return out

    def walk(
        self,
        frontier: list[tuple[int, int, int, int, bool]],
        shared: Callable[[int, int], tuple[Region, list[int]] | None] | None = None,
        budget: int = 1 << 62,
    ) -> Walk | None:
        """Walk trie nodes (depth, rank lo, rank hi, state reached, passed an exit point) to the end; None
        past `budget` nodes. A node of more than `FEW` tokens in a state with a shared walk (`shared(state,
        depth)`: a `Region` and the states it exits to) takes that walk's tokens in its range instead."""
        words, dead, exit_point, state = self.words, self.dead, self.exit_point, self.state
        out = Walk([], [], [], [])
        inside, unsure = out.inside, out.unsure
        stack = list(frontier)
        while stack:
            d, lo, hi, s, passed = stack.pop()
            budget -= 1
            if budget < 0:
                return None
            if shared is not None and hi - lo > FEW and passed == bool(exit_point[s]):
                hit = shared(s, d)
                if hit is not None:
                    stack += hit[0].take(lo, hi, hit[1], exit_point, out)
                    continue
            k = bisect_right(words, words[lo], lo, hi) if len(words[lo]) == d else lo
            if k > lo:
                inside += (lo, k)  # tokens that end here, alive
            if k == hi:
                continue
            row, live, enters = state(s)
            prefix = words[k][:d]
            if hi - k <= 2 * len(live):  # fewer tokens than live bytes: go through the children
                c = k
                while c < hi:
                    b = words[c][d]
                    e = bisect_left(words, prefix + _BYTE[b + 1], c, hi) if b < 255 else hi
                    nxt = row[b]
                    p = passed or b in enters
                    if nxt != dead:
                        stack.append((d + 1, c, e, nxt, p or bool(exit_point[nxt])))
                    elif p:
                        unsure += (c, e)
                    c = e
                continue
            gap = k  # the start of the tokens not yet placed (for the dead children of a passed node)
            for b in live:
                c = bisect_left(words, prefix + _BYTE[b], gap, hi)
                if c == hi:
                    break
                e = bisect_left(words, prefix + _BYTE[b + 1], c, hi) if b < 255 else hi
                if c == e:
                    continue
                if passed and c > gap:
                    unsure += (gap, c)
                gap = e
                nxt = row[b]
                stack.append((d + 1, c, e, nxt, passed or b in enters or bool(exit_point[nxt])))
            if passed:
                if gap < hi:
                    unsure += (gap, hi)
            elif enters:
                for b in enters:  # a dead byte that may go on in a callee: uncertain
                    if row[b] == dead:
                        c = bisect_left(words, prefix + _BYTE[b], k, hi)
                        e = bisect_left(words, prefix + _BYTE[b + 1], c, hi) if b < 255 else hi
                        if c < e:
                            unsure += (c, e)
        return out


@dataclass(frozen=True)
class Walk:
    """What a trie walk found: rank ranges flat as [lo0, hi0, lo1, hi1, ...], and rank arrays taken from
    shared walks, of the tokens inside and of the uncertain ones."""

    inside: list[int]
    unsure: list[int]
    inside_ranks: list[np.ndarray]
    unsure_ranks: list[np.ndarray]

    def ranks(self) -> tuple[np.ndarray, np.ndarray]:
        """(inside ranks, in no particular order; uncertain ranks, sorted)."""
        inside = [ranges_to_ranks(self.inside), *self.inside_ranks]
        unsure = [ranges_to_ranks(self.unsure), *self.unsure_ranks]
        return (
            np.concatenate(inside) if len(inside) > 1 else inside[0],
            np.sort(np.concatenate(unsure)) if len(unsure) > 1 else unsure[0],
        )


def bits_of(ids: np.ndarray, n_words: int) -> np.ndarray:
    """The bitmask row (uint32 [n_words]) with the bits of token `ids` set."""
    flags = np.zeros(n_words * 32, dtype=bool)
    flags[ids] = True
    return np.packbits(flags, bitorder="little").view(np.uint32)


def ranges_to_ranks(flat: list[int]) -> np.ndarray:
    """The sorted ranks of rank ranges given flat as [lo0, hi0, lo1, hi1, ...] (disjoint)."""
    if not flat:
        return np.zeros(0, dtype=np.int64)
    a = np.array(flat, dtype=np.int64).reshape(-1, 2)
    a = a[np.argsort(a[:, 0], kind="stable")]
    lengths = a[:, 1] - a[:, 0]
    starts = np.repeat(a[:, 0] - (np.cumsum(lengths) - lengths), lengths)
    return starts + np.arange(int(lengths.sum()), dtype=np.int64)


@dataclass(frozen=True)
class Walked:
    """What `pair_walk` found: (source, token row) pairs inside and uncertain, and, when it stops at
    `stop` states, the pairs that reached one: source, token row, bytes read, state, passed."""

    in_src: np.ndarray
    in_tok: np.ndarray
    unc_src: np.ndarray
    unc_tok: np.ndarray
    out_src: np.ndarray
    out_tok: np.ndarray
    out_at: np.ndarray
    out_state: np.ndarray
    out_passed: np.ndarray


def pair_walk(
    src: np.ndarray,
    t_idx: np.ndarray,
    cur: np.ndarray,
    table: np.ndarray,
    dead: int,
    exit_point: np.ndarray,
    enters: np.ndarray,
    vocab: Vocabulary,
    stop: np.ndarray | None = None,
    depth: int = 1,
) -> Walked:
    """Walk (source state, token row of `vocab.packed`, state after the token's first `depth` bytes) pairs
    on, a byte per step, all at once; with `stop` (bool per state), a pair that reaches a stop state
    leaves."""
    ids, lengths, padded, _ = vocab.packed
    passed = exit_point[cur]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in Walked.__dataclass_fields__}
    width = padded.shape[1]
    flat_bytes, flat_table, flat_enters = padded.reshape(-1), table.reshape(-1), enters.reshape(-1)
    j = depth

    def leave(keep: np.ndarray) -> None:
        nonlocal src, t_idx, cur, passed
        src, t_idx, cur, passed = src[keep], t_idx[keep], cur[keep], passed[keep]

    if stop is not None and len(src):
        out = stop[cur]
        if out.any():  # left on the first byte: nothing passed yet (the exit state's own flag comes later)
            for k, v in (("src", src), ("tok", t_idx), ("state", cur)):
                parts[f"out_{k}"].append(v[out])
            parts["out_passed"].append(np.zeros(int(out.sum()), dtype=bool))
            parts["out_at"].append(np.full(int(out.sum()), depth, dtype=np.int64))
            leave(~out)
    while len(t_idx):
        check_time("classifying the vocabulary for the grammar")
        done = lengths[t_idx] == j
        # a token that is done reads a padding byte (or, at the full width, its own last one): ignored
        byte = flat_bytes[t_idx * width + min(j, width - 1)].astype(np.int64)
        at = cur.astype(np.int64) * 256 + byte
        cur = flat_table[at]
        passed = passed | flat_enters[at]
        died = (cur == dead) & ~done
        out = None if stop is None else stop[cur] & ~done & ~died
        if done.any() or died.any() or (out is not None and out.any()):
            if done.any():
                parts["in_src"].append(src[done])
                parts["in_tok"].append(t_idx[done])
            unsure = died & passed
            if unsure.any():
                parts["unc_src"].append(src[unsure])
                parts["unc_tok"].append(t_idx[unsure])
            keep = ~(done | died)
            if out is not None and out.any():
                for k, v in (("src", src), ("tok", t_idx), ("state", cur), ("passed", passed)):
                    parts[f"out_{k}"].append(v[out])
                parts["out_at"].append(np.full(int(out.sum()), j + 1, dtype=np.int64))
                keep &= ~out
            leave(keep)
        passed |= exit_point[cur]
        j += 1
    empty = {"passed": np.zeros(0, dtype=bool)}
    return Walked(
        **{
            k: (np.concatenate(v) if v else empty.get(k.rsplit("_", 1)[1], np.zeros(0, dtype=np.int64)))
            for k, v in parts.items()
        }
    )


# -- regions: the loops of a rule, walked once per vocabulary and shape ---------------------------------


class Loops:
    """The loops of one rule's states lo..hi-1 (byte edges stay inside a rule). A loop is a strongly
    connected component among the *wide* states (at least `wide` live bytes): a string body with its escapes
    and UTF-8 continuations is one, while an object's loop over its members, which passes through narrow
    states (`:`, `,`), is not, so that one string body looks the same wherever it occurs."""

    def __init__(self, table: np.ndarray, dead: int, lo: int, hi: int, wide: int) -> None:
        self.lo = lo
        rows = table[lo:hi]
        srt = np.sort(rows, axis=1)
        keep = srt != dead
        keep[:, 1:] &= srt[:, 1:] != srt[:, :-1]
        flat = srt[keep].tolist()
        ends = np.cumsum(keep.sum(axis=1)).tolist()
        self.succ = succ = [flat[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
        is_wide = ((rows != dead).sum(axis=1) >= wide).tolist()
        narrow = [[t for t in ts if is_wide[t - lo]] if is_wide[v] else [] for v, ts in enumerate(succ)]
        self.comp = _components(narrow, lo)

    def members(self, s: int) -> np.ndarray | None:
        """The states of s's loop (sorted), or, for a state off loops whose every byte leads into one loop
        within a few bytes (a UTF-8 lead byte's continuations before a string body), those states and the
        loop's; None otherwise."""
        lo, comp = self.lo, self.comp
        c = comp[s - lo]
        if c >= 0:
            return np.flatnonzero(comp == c) + lo
        funnel: set[int] = set()
        loop = self._funnel(s, 3, funnel)
        if loop is None:
            return None
        return np.array(sorted(funnel | set((np.flatnonzero(comp == loop) + lo).tolist())), dtype=np.int64)

    def _funnel(self, s: int, depth: int, seen: set[int]) -> int | None:
        """The one loop every byte from s (off loops) leads into within `depth` bytes, else None."""
        lo, comp = self.lo, self.comp
        seen.add(s)
        loop = None
        for t in self.succ[s - lo]:
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
    g: int, members: np.ndarray, table: np.ndarray, dead: int, exit_point: np.ndarray, enters: np.ndarray
) -> tuple[str, list[int]]:
    """(a digest of the loop `members` as seen from g, up to renaming of states; the states it exits to,
    numbered as the digest numbers them). Two states with equal digests walk the same tokens the same way
    until those leave the loop."""
    inside = set(members.tolist())
    number = {g: 0}
    order = [g]
    exits: dict[int, int] = {}
    h = hashlib.sha256()
    i = 0
    while i < len(order):
        s = order[i]
        i += 1
        row = table[s]
        codes = np.full(256, -1, dtype=np.int64)
        for t in np.unique(row[row != dead]).tolist():
            if t in inside:
                if t not in number:
                    number[t] = len(order)
                    order.append(t)
                code = number[t]
            else:
                code = -2 - exits.setdefault(t, len(exits))
            codes[row == t] = code
        h.update(codes.tobytes())
        h.update(np.packbits(enters[s]).tobytes())
        h.update(b"x" if exit_point[s] else b".")
    return h.hexdigest(), sorted(exits, key=exits.__getitem__)


_KEYS: dict[bytes, tuple[str, list[int]]] = {}  # `loop_key` memo: the key, exits relative to the state
_KEYS_MAX = 100_000


def loop_key(
    g: int, members: np.ndarray, table: np.ndarray, dead: int, exit_point: np.ndarray, enters: np.ndarray
) -> tuple[str, list[int]]:
    """`region_key`, memoized on the loop's layout relative to g (its states and edges as offsets from g,
    their flags): the copies of one string body in a grammar, and in other grammars, are laid out alike,
    so a visit pays a few array operations instead of a walk over the loop."""
    rows = table[members]
    layout = hashlib.sha256((members - g).tobytes())
    layout.update(np.where(rows == dead, np.iinfo(np.int64).min, rows.astype(np.int64) - g).tobytes())
    layout.update(exit_point[members].tobytes() + np.packbits(enters[members]).tobytes())
    fp = layout.digest()
    hit = _KEYS.get(fp)
    if hit is None:
        key, exits = region_key(g, members, table, dead, exit_point, enters)
        if len(_KEYS) >= _KEYS_MAX:
            _KEYS.clear()
        hit = _KEYS[fp] = (key, [x - g for x in exits])
    return hit[0], [x + g for x in hit[1]]


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
    words: dict[bytes, np.ndarray] = field(default_factory=dict, repr=False)  # `first_bytes` rows, memo

    # For the disk cache (disk_cache.py): the memo of bitmasks is not stored.
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "words"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, words={})

    def first_bytes(
        self, firsts: np.ndarray, rank_to_id: np.ndarray, n_words: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the tokens starting with a byte in `firsts` (bool [256]) at depth 1: (the bitmask of those
        inside, memoized by byte set; the uncertain ranks; the indices of the leaving nodes)."""
        key = np.packbits(firsts).tobytes()
        hit = self.words.get(key)
        if hit is None:
            first_of = np.searchsorted(self.bounds, self.inside, side="right") - 1
            hit = bits_of(rank_to_id[self.inside[firsts[first_of]]], n_words)
            hit.setflags(write=False)
            self.words[key] = hit
        unsure = self.uncertain[firsts[np.searchsorted(self.bounds, self.uncertain, side="right") - 1]]
        leaving = np.flatnonzero(firsts[np.searchsorted(self.bounds, self.leaving_lo, side="right") - 1])
        return hit, unsure, leaving

    def take(
        self, lo: int, hi: int, exits: list[int], exit_point: np.ndarray, out: Walk
    ) -> list[tuple[int, int, int, int, bool]]:
        """Add the tokens of ranks lo..hi-1 to `out`; the trie nodes among them that leave the loop, to
        walk on from the states `exits` names."""
        for have, to in ((self.inside, out.inside_ranks), (self.uncertain, out.unsure_ranks)):
            a, b = int(have.searchsorted(lo)), int(have.searchsorted(hi))
            if b > a:
                to.append(have[a:b])
        a, b = int(self.leaving_lo.searchsorted(lo)), int(self.leaving_lo.searchsorted(hi))
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
    numbered); with no `leaving` (None) when more than `max_leaving` tokens leave."""
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
    inside = np.sort(rank_of[ids[w.in_tok]]).astype(np.int32)
    uncertain = np.sort(rank_of[ids[w.unc_tok]]).astype(np.int32)
    number = {x: i for i, x in enumerate(exits)}
    if len(w.out_tok) > max_leaving:  # too many to resume from: the region is not worth keeping
        return Region(inside, uncertain, None, np.zeros(0, dtype=np.int64), bounds, len(exits))
    ranks = rank_of[ids[w.out_tok]]
    order = np.argsort(ranks, kind="stable")
    leaving: list[tuple[int, int, int, int, bool]] = []
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


@lru_cache(maxsize=8)
def regions(vocab: Vocabulary) -> dict[tuple[str, int], Region]:
    """The regions walked so far for `vocab`, by `region_key` digest and depth (shared by every grammar)."""
    return {}


__all__ = [
    "Region",
    "TrieWalk",
    "FEW",
    "Walk",
    "Walked",
    "bits_of",
    "Loops",
    "pair_walk",
    "ranges_to_ranks",
    "loop_key",
    "region_key",
    "region_walk",
    "regions",
]
