"""The vocabulary walks behind `cfg_rows.StateRows`: first visits of a state made cheap and rare.

A state's rows come from walking tokens through its rule's byte table (see cfg_rows for the three
classes). Three walks, chosen by how many tokens the state's live first bytes start:

- `TrieWalk`, for few: a depth-first walk of the vocabulary's byte trie, in pure Python, over the tokens
  sorted by bytes (a trie node is a rank range; a child is found by bisection). Its cost grows with the
  live (node, state) pairs only: a dead byte drops a whole subtree at once, as one rank range.
- `pair_walk`, for many: every (state, token) pair walked at once with numpy, a byte per step.
- a *region* walk, for many from a state inside a loop of its rule (a JSON string body, a digit run):
  the tokens are walked (with `pair_walk`) only until they leave the loop, and that part is kept per
  vocabulary under the loop's shape (`region_key`: its states up to renaming, their exit points and the
  bytes that enter callees), so that every string body of every schema shares one walk. What leaves the
  loop is a few trie nodes (the tokens holding a closing quote) that `TrieWalk` resumes from the real
  exit states of each visit.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..limits import check_time
from ..tokens.token_automaton import set_bits
from ..tokens.vocab import Vocabulary

_BYTE = [bytes([b]) for b in range(256)]


class TrieWalk:
    """Depth-first trie walks of byte-sorted tokens (`words`) through a byte table (`dead`: no state)."""

    def __init__(
        self,
        words: tuple[bytes, ...],
        table: np.ndarray,
        dead: int,
        exit_point: np.ndarray,
        enters: np.ndarray,
    ) -> None:
        self.words, self.table, self.dead = words, table, dead
        self.exit_point, self.enters = exit_point, enters
        self._states: dict[int, tuple[list[int], list[int], frozenset[int]]] = {}
        first = np.frombuffer(b"".join(w[:1] for w in words), dtype=np.uint8)
        self.bounds = np.searchsorted(first, np.arange(257))  # the ranks of tokens starting with b: [b, b+1)
        self.first = self.bounds.tolist()

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

    def walk(self, frontier: list[tuple[int, int, int, int, bool]]) -> tuple[list[int], list[int]]:
        """Walk trie nodes (depth, rank lo, rank hi, state reached, passed an exit point) to the end:
        (inside rank ranges, uncertain rank ranges), each flat as [lo0, hi0, lo1, hi1, ...]."""
        words, dead, exit_point, state = self.words, self.dead, self.exit_point, self.state
        inside: list[int] = []
        unsure: list[int] = []
        stack = list(frontier)
        while stack:
            d, lo, hi, s, passed = stack.pop()
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
        return inside, unsure


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
) -> Walked:
    """Walk (source state, token row of `vocab.packed`, state after the token's first byte) pairs on, a
    byte per step, all at once; with `stop` (bool per state), a pair that reaches a stop state leaves."""
    ids, lengths, padded, _ = vocab.packed
    passed = exit_point[cur]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in Walked.__dataclass_fields__}
    width = padded.shape[1]
    flat_bytes, flat_table, flat_enters = padded.reshape(-1), table.reshape(-1), enters.reshape(-1)
    j = 1

    def leave(keep: np.ndarray) -> None:
        nonlocal src, t_idx, cur, passed
        src, t_idx, cur, passed = src[keep], t_idx[keep], cur[keep], passed[keep]

    if stop is not None and len(src):
        out = stop[cur]
        if out.any():  # left on the first byte: nothing passed yet (the exit state's own flag comes later)
            for k, v in (("src", src), ("tok", t_idx), ("state", cur)):
                parts[f"out_{k}"].append(v[out])
            parts["out_passed"].append(np.zeros(int(out.sum()), dtype=bool))
            parts["out_at"].append(np.full(int(out.sum()), 1, dtype=np.int64))
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
        self.succ = succ = [np.unique(r[r != dead]).tolist() for r in rows]
        is_wide = ((rows != dead).sum(axis=1) >= wide).tolist()
        narrow = [[t for t in ts if is_wide[t - lo]] if is_wide[v] else [] for v, ts in enumerate(succ)]
        self.comp = _components(narrow, lo)

    def members(self, s: int, row: np.ndarray) -> np.ndarray | None:
        """The states of s's loop (sorted), or, for a state s off loops (`row`: its byte row), s with the
        loop that most of its bytes lead into, directly or through states that lead nowhere else within a
        few bytes (a UTF-8 lead byte's continuations before a string body); None when s leads into none."""
        lo, comp = self.lo, self.comp
        c = comp[s - lo]
        if c >= 0:
            return np.flatnonzero(comp == c) + lo
        region = {s}
        votes: dict[int, int] = {}
        for t in self.succ[s - lo]:
            seen: set[int] = set()
            loop = comp[t - lo] if comp[t - lo] >= 0 else self._funnel(t, 3, seen)
            if loop is not None:
                votes[int(loop)] = votes.get(int(loop), 0) + int((row == t).sum())
        if not votes:
            return None
        loop = max(votes, key=lambda k: (votes[k], -k))
        for t in self.succ[s - lo]:  # the funnels into that loop join it
            seen = set()
            if comp[t - lo] < 0 and self._funnel(t, 3, seen) == loop:
                region |= seen
        return np.array(sorted(region | set((np.flatnonzero(comp == loop) + lo).tolist())), dtype=np.int64)

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


@dataclass(frozen=True, eq=False)
class Region:
    """The walk of every token from a loop state s, its first byte taken as read (so this serves any state
    whose byte b goes to s, for the tokens starting with b), until the token leaves the loop. Ranks are
    sorted; each `*_first` array holds the first byte of those tokens, to pick the ones a visit needs."""

    inside: np.ndarray  # ranks of the tokens that end inside the loop
    inside_first: np.ndarray
    uncertain: np.ndarray  # ranks of those that die in it after an exit point
    uncertain_first: np.ndarray
    leaving: tuple[tuple[int, int, int, int, bool], ...]  # trie nodes (depth, lo, hi, exit number, passed)
    leaving_first: np.ndarray
    words: dict[bytes, np.ndarray] = field(default_factory=dict)  # inside bitmask by first-byte set

    def inside_words(self, firsts: np.ndarray, rank_to_id: np.ndarray, n_words: int) -> np.ndarray:
        """The bitmask (uint32) of the inside tokens that start with a byte in `firsts` (bool [256])."""
        key = np.packbits(firsts).tobytes()
        hit = self.words.get(key)
        if hit is None:
            hit = np.zeros(n_words, dtype=np.uint32)
            set_bits(hit, rank_to_id[self.inside[firsts[self.inside_first]]])
            hit.setflags(write=False)
            self.words[key] = hit
        return hit


def region_walk(
    s: int,
    members: np.ndarray,
    exits: list[int],
    table: np.ndarray,
    dead: int,
    exit_point: np.ndarray,
    enters: np.ndarray,
    vocab: Vocabulary,
    rank_of: np.ndarray,
    trie: TrieWalk,
) -> Region:
    """`Region` of the loop state s (`members`: its loop, `exits`: the states it leaves to, numbered)."""
    ids, _, padded, _ = vocab.packed
    stop = np.ones(len(table), dtype=bool)
    stop[members] = False
    stop[dead] = False
    n = len(ids)
    t_idx = np.arange(n, dtype=np.int64)
    w = pair_walk(
        np.full(n, s, dtype=np.int64), t_idx, np.full(n, s, dtype=table.dtype), table, dead, exit_point,
        enters, vocab, stop,
    )  # fmt: skip
    inside = np.sort(rank_of[ids[w.in_tok]])
    uncertain = np.sort(rank_of[ids[w.unc_tok]])
    number = {x: i for i, x in enumerate(exits)}
    rank_bytes = trie.words
    ranks = rank_of[ids[w.out_tok]]
    order = np.argsort(ranks, kind="stable")
    leaving: list[tuple[int, int, int, int, bool]] = []
    for r, at, x, p in zip(
        ranks[order].tolist(), w.out_at[order].tolist(), w.out_state[order].tolist(),
        w.out_passed[order].tolist(), strict=True,
    ):  # fmt: skip
        last = leaving[-1] if leaving else None
        if last is not None and last[2] == r and last[0] == at and rank_bytes[r][:at] == rank_bytes[r - 1][:at]:
            leaving[-1] = (at, last[1], r + 1, last[3], last[4])  # the same trie node: one more token
        else:
            leaving.append((at, r, r + 1, number[x], bool(p)))
    bounds = trie.bounds

    def first_byte(r: np.ndarray) -> np.ndarray:
        return np.searchsorted(bounds, r, side="right") - 1

    leaving_first = first_byte(np.array([lo for _, lo, _, _, _ in leaving], dtype=np.int64))
    return Region(
        inside, first_byte(inside), uncertain, first_byte(uncertain), tuple(leaving), leaving_first
    )


@lru_cache(maxsize=8)
def regions(vocab: Vocabulary) -> dict[str, Region]:
    """The regions walked so far for `vocab`, by `region_key` digest (shared by every grammar)."""
    return {}


__all__ = [
    "Region",
    "TrieWalk",
    "Walked",
    "Loops",
    "pair_walk",
    "ranges_to_ranks",
    "region_key",
    "region_walk",
    "regions",
]
