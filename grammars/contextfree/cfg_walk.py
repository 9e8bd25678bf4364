"""The vocabulary walks behind `cfg_rows.StateRows`: first visits of a state made cheap.

A state's rows come from walking tokens through its rule's byte table (see cfg_rows for the three
classes). `TrieWalk` walks the vocabulary's byte trie depth first, in pure Python, over the tokens sorted
by bytes (a trie node is a rank range; a child is found by bisection): its cost grows with the live
(node, state) pairs only, since a dead byte drops a whole subtree as one rank range. A node that enters a
loop with many tokens below it takes them from the loop's shared walk instead (cfg_loops.py).
`pair_walk` walks many (state, token) pairs to their ends: for the shared walks, for many tokens into wide
states off loops, as the fallback past the trie walk's budget, and as the tests' reference.
`trie_walk_c` (trie_walk_c.c, built by `pip install`, optional) is the same trie walk and pair walk compiled
(the pair walk a pair at a time; `pair_walk_py`: numpy, a byte per step, all pairs at once), and a whole
first visit in one call (`classify`: cfg_rows' `StateRows._classify`); the Python ones are the fallback (no C
compiler at install, `DECC_PURE_PYTHON=1` read at import) and the tests' oracle.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..limits import check_time
from ..native import use_native
from ..tokens.vocab import Vocabulary

try:
    from . import trie_walk_c as compiled
except ImportError:  # installed without a C compiler: the pure-Python walk
    compiled = None  # type: ignore[assignment]
# whether `TrieWalk` uses the compiled walk by default (False: not built, or forced off)
NATIVE = use_native(compiled)

_BYTE = [bytes([b]) for b in range(256)]
FEW = 16  # tokens in a trie node, up to which the trie walk takes it even where a shared walk exists

Node = tuple[int, int, int, int, bool]  # a trie node in a state: depth, rank lo, rank hi, state, passed
# Nodes leaving a shared walk (`walk_from`): (its nodes (depth, rank lo, rank hi, exit number, passed), the
# indices of those to walk on (int64), the states the exit numbers name)
Leaving = tuple[tuple[tuple[int, int, int, int, bool], ...], np.ndarray, list[int]]


class Shared(Protocol):
    """A walk shared between states (cfg_loops.Region): it gives a trie node's tokens to a `Walk`."""

    def take(self, lo: int, hi: int, exits: list[int], exit_point: np.ndarray, out: Walk) -> list[Node]: ...


class TrieWalk:
    """Depth-first trie walks of byte-sorted tokens (`words`, `bounds`: where each first byte's start) through
    a byte table (`dead`: no state); compiled (`native`; None: `NATIVE`) or in Python, with the same results."""

    def __init__(
        self,
        words: tuple[bytes, ...],
        bounds: np.ndarray,
        table: np.ndarray,
        dead: int,
        exit_point: np.ndarray,
        enters: np.ndarray,
        native: bool | None = None,
        off_loop: np.ndarray | None = None,
    ) -> None:
        self.words, self.table, self.dead = words, table, dead
        self.exit_point, self.enters = exit_point, enters
        # bool per state (or None): states known to have no shared walk at any depth, not asked (`walk`)
        self.off_loop = off_loop
        self._states: dict[int, tuple[list[int], list[int], frozenset[int]]] = {}
        self.bounds = bounds  # the ranks of the tokens starting with byte b: [bounds[b], bounds[b + 1])
        self.first = bounds.tolist()
        self.native = None
        if NATIVE if native is None else native:
            if compiled is None:
                raise RuntimeError("the compiled trie walk (trie_walk_c) is not built in this install")
            # it reads the arrays in place (rows the RTN adds later included): int32 / bool, C order
            self.native = compiled.TrieWalk(words, self.first, table, dead, exit_point, enters, off_loop)

    def state(self, s: int) -> tuple[list[int], list[int], frozenset[int]]:
        """(byte row, live bytes, bytes that enter a callee) of state s, as Python lists (memoized)."""
        hit = self._states.get(s)
        if hit is None:
            row = self.table[s]
            enters = frozenset(np.flatnonzero(self.enters[s]).tolist())
            hit = (row.tolist(), np.flatnonzero(row != self.dead).tolist(), enters)
            self._states[s] = hit
        return hit

    def roots(self, g: int) -> list[Node]:
        """The walk's start from state g: one node per live first byte (a first byte never makes a token
        uncertain: the Earley set's own predictions and completions cover it)."""
        if self.native is not None:
            return self.native.roots(g)
        row, live, _ = self.state(g)
        first, exit_point = self.first, self.exit_point
        out = []
        for b in live:
            lo, hi = first[b], first[b + 1]
            if lo < hi:
                nxt = row[b]
                out.append((1, lo, hi, nxt, bool(exit_point[nxt])))
        return out

    def root_groups(self, g: int, few: int) -> tuple[int, list[tuple[int, int, bytes]]]:
        """(the tokens under state g's roots; per state that g's live first bytes lead to with more than
        `few` tokens, by first byte: (that state, its tokens, those first bytes)): what a first visit looks
        up in the shared walks, without a node per first byte."""
        if self.native is not None:
            return self.native.root_groups(g, few)
        row, live, _ = self.state(g)
        first = self.first
        total = 0
        groups: dict[int, tuple[list[int], list[int]]] = {}
        for b in live:
            n = first[b + 1] - first[b]
            if n > 0:
                total += n
                count, firsts = groups.setdefault(row[b], ([0], []))
                count[0] += n
                firsts.append(b)
        return total, [(s, c[0], bytes(f)) for s, (c, f) in groups.items() if c[0] > few]

    def walk_from(
        self,
        g: int,
        skip: list[int],
        leaving: list[Leaving],
        shared: Callable[[int, int], tuple[Shared, list[int]] | None] | None = None,
        budget: int = 1 << 62,
        row: np.ndarray | None = None,
        rank_to_id: np.ndarray | None = None,
    ) -> Walk | None:
        """`walk` from the nodes that leave shared walks and from the roots of state g but those into the
        states `skip` (their tokens taken elsewhere). `leaving`: (nodes, indices, exits) triples, each node
        nodes[i] = (depth, lo, hi, exit number x, passed) for i in indices going on from state exits[x].
        With a `row` (uint32, written in place even past the budget) and `rank_to_id`, the inside tokens
        are set there, the Walk's lists left empty."""
        if self.native is not None:
            out = Walk([], [], [], [])
            return self.native.walk_from(g, skip, leaving, shared, budget, FEW, out, row, rank_to_id)
        exit_point = self.exit_point
        frontier = []
        for nodes, which, to in leaving:
            for i in which.tolist():
                d, lo, hi, x, p = nodes[i]
                frontier.append((d, lo, hi, to[x], p or bool(exit_point[to[x]])))
        roots = [node for node in self.roots(g) if node[3] not in skip]
        found = self.walk([*frontier, *roots], shared, budget)
        if found is not None and row is not None and rank_to_id is not None:
            row |= bits_of_ranks_py(found.inside, found.inside_ranks, rank_to_id, len(row))
            found.inside.clear()
            found.inside_ranks.clear()
        return found

    def walk(
        self,
        frontier: list[Node],
        shared: Callable[[int, int], tuple[Shared, list[int]] | None] | None = None,
        budget: int = 1 << 62,
    ) -> Walk | None:
        """Walk trie nodes (depth, rank lo, rank hi, state reached, passed an exit point) to the end; None
        past `budget` nodes. A node of more than `FEW` tokens in a state with a shared walk (`shared(state,
        depth)`: a `Region` and the states it exits to) takes that walk's tokens in its range instead."""
        if self.native is not None:
            return self.native.walk(frontier, shared, budget, FEW, Walk([], [], [], []))
        words, dead, exit_point, state = self.words, self.dead, self.exit_point, self.state
        off_loop = self.off_loop
        out = Walk([], [], [], [])
        inside, unsure = out.inside, out.unsure
        stack = list(frontier)
        while stack:
            d, lo, hi, s, passed = stack.pop()
            budget -= 1
            if budget < 0:
                return None
            if (
                shared is not None
                and hi - lo > FEW
                and passed == bool(exit_point[s])
                and not (off_loop is not None and off_loop[s])
            ):
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
    if NATIVE:  # a few microseconds, where numpy's zeros + packbits of n_words * 32 flags take tens
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        return np.frombuffer(compiled.bits_of(ids, n_words), dtype=np.uint32)
    return bits_of_py(ids, n_words)


def bits_of_py(ids: np.ndarray, n_words: int) -> np.ndarray:
    """`bits_of` in numpy (the fallback and the tests' oracle)."""
    flags = np.zeros(n_words * 32, dtype=bool)
    flags[ids] = True
    return np.packbits(flags, bitorder="little").view(np.uint32)


def bits_of_ranks(
    ranges: list[int], ranks: list[np.ndarray], rank_to_id: np.ndarray, n_words: int
) -> np.ndarray:
    """The bitmask row (uint32 [n_words]) of the tokens whose byte-order ranks lie in the flat [lo, hi)
    `ranges` ([lo0, hi0, lo1, hi1, ...]) or in the int64 arrays `ranks`: a first visit's inside row, from
    its trie walk's `Walk.inside` and `inside_ranks` (compiled: one pass, no per-part arrays)."""
    if NATIVE:
        arrays = [r if r.dtype in _RANK_TYPES else np.ascontiguousarray(r, dtype=np.int64) for r in ranks]
        return np.frombuffer(compiled.bits_of_ranks(ranges, arrays, rank_to_id, n_words), dtype=np.uint32)
    return bits_of_ranks_py(ranges, ranks, rank_to_id, n_words)


_RANK_TYPES = (
    np.dtype(np.int32),
    np.dtype(np.int64),
)  # rank arrays the compiled bits_of_ranks takes as they are
FEW_RANGES = 8  # rank ranges up to which `bits_of_ranks_py` takes a slice per range


def bits_of_ranks_py(
    ranges: list[int], ranks: list[np.ndarray], rank_to_id: np.ndarray, n_words: int
) -> np.ndarray:
    """`bits_of_ranks` in numpy (the fallback and the tests' oracle)."""
    parts = [rank_to_id[r] for r in ranks]
    if len(ranges) <= 2 * FEW_RANGES:  # a slice per range: fewer numpy calls than expanding them
        parts += [rank_to_id[ranges[i] : ranges[i + 1]] for i in range(0, len(ranges), 2)]
    else:
        parts.append(rank_to_id[ranges_to_ranks_py(ranges)])
    if not parts:
        return np.zeros(n_words, dtype=np.uint32)
    return bits_of_py(np.concatenate(parts) if len(parts) != 1 else parts[0], n_words)


def ranges_to_ranks(flat: list[int]) -> np.ndarray:
    """The sorted ranks of rank ranges given flat as [lo0, hi0, lo1, hi1, ...] (disjoint)."""
    if NATIVE:
        return np.frombuffer(compiled.ranges_to_ranks(flat), dtype=np.int64)
    return ranges_to_ranks_py(flat)


def ranges_to_ranks_py(flat: list[int]) -> np.ndarray:
    """`ranges_to_ranks` in numpy (the fallback and the tests' oracle)."""
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
    on to the end of each token; with `stop` (bool per state), a pair that reaches a stop state leaves.
    Compiled where built (a pair at a time: tens of times faster than numpy's byte steps for the 20k-50k
    pairs of a first visit), else `pair_walk_py`; the same pairs in each class, maybe in another order."""
    if not NATIVE:
        return pair_walk_py(src, t_idx, cur, table, dead, exit_point, enters, vocab, stop, depth)
    check_time("classifying the vocabulary for the grammar")
    _, lengths, padded, _ = vocab.packed
    c = np.ascontiguousarray
    parts = compiled.pair_walk(
        c(src, dtype=np.int64), c(t_idx, dtype=np.int64), c(cur, dtype=np.int32), c(table, dtype=np.int32),
        dead, c(exit_point, dtype=bool), c(enters, dtype=bool), c(lengths, dtype=np.int64), padded,
        None if stop is None else c(stop, dtype=bool), depth,
    )  # fmt: skip
    arrays = [np.frombuffer(a, dtype=np.int64) for a in parts[:8]]
    return Walked(*arrays, np.frombuffer(parts[8], dtype=bool))


def pair_walk_py(
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
    """`pair_walk` with numpy, a byte per step, all pairs at once (the fallback and the tests' oracle)."""
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


def walks_within_py(flat: memoryview, states: list[int], w: bytes, d: int) -> bool:
    """Some state of `states` walks the bytes w[d:] through its rule's byte edges alone (`flat[g * 256 +
    b]`, negative: dead), ending live (the recognizer's simulation, cfg_matcher.py)."""
    for g in states:
        for b in w[d:] if d else w:
            g = flat[(g << 8) | b]
            if g < 0:
                break
        else:
            return True
    return False


# the compiled walk where built and not turned off (NATIVE), else the Python one
walks_within: Callable[[memoryview, list[int], bytes, int], bool] = (
    compiled.walks_within if NATIVE else walks_within_py
)

# -- regions: the loops of a rule, walked once per vocabulary and shape ---------------------------------


__all__ = [
    "FEW",
    "NATIVE",
    "Leaving",
    "Node",
    "Shared",
    "TrieWalk",
    "Walk",
    "Walked",
    "bits_of",
    "bits_of_py",
    "bits_of_ranks",
    "bits_of_ranks_py",
    "compiled",
    "pair_walk",
    "pair_walk_py",
    "ranges_to_ranks",
    "ranges_to_ranks_py",
    "walks_within",
    "walks_within_py",
]
