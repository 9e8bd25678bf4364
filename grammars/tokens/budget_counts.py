"""Budget-aware masks for automata with counted segments (counters.py): fewest tokens per (state, counter).

A position is (state, counter); the counter matters only inside a segment (0 elsewhere), where it runs
0..max. Every position gets a node: one per state outside segments, max + 1 per segment state. A token from
a position ends at a position that is, for the token's (next state, delta, exited) group:

- staying in the segment: (next, counter + delta), valid while `live[next][counter + delta]`;
- leaving it: a fixed position (the counter restarts when the token enters another segment, or is 0),
  valid when min <= counter + delta <= max;
- from outside a segment: a fixed position.

The fixed end counters are found by walking the tokens' bytes once (only tokens that end inside a segment
they entered). The valid edges between nodes are then searched backwards from the accepting nodes like the
plain automaton's states (budget.py), and a row is filtered exactly as there, per (state, counter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .budget import UNREACHABLE, reverse_bfs
from .token_automaton import TokenAutomaton, pack_bits, set_bits

__all__ = ["CountedDistances", "counted_budget_row", "counted_distances"]


@dataclass(frozen=True, eq=False)
class CountedDistances:
    base: np.ndarray  # int64 [n]: the node of (s, 0); (s, c) is base[s] + c inside a segment
    dist: np.ndarray  # int64 [nodes]: fewest text tokens from the position to acceptance (UNREACHABLE: none)
    worst: np.ndarray  # int64 [n]: max finite dist over the ends of s's valid tokens, any counter
    dead: np.ndarray  # bool [n]: some valid token of s, at some counter, ends where nothing accepts
    fixed: dict[
        int, tuple[np.ndarray, np.ndarray]
    ]  # state -> (tokens of `pairs(s)` that move, their end nodes)

    def node(self, state: int, counter: int) -> int:
        return int(self.base[state]) + counter


def counted_distances(auto: TokenAutomaton) -> CountedDistances:
    found = auto.budget_cache.get("counted")
    if found is None:
        found = auto.budget_cache["counted"] = _build(auto)
    return found


def _end_counter(auto: TokenAutomaton, state: int, data: bytes) -> int:
    """The counter after walking `data` from `state`, for a token that leaves (or starts outside) the
    state's segment: it depends only on the bytes after the last segment entry."""
    cnt = auto.counts
    assert cnt is not None
    flat, seg, ticks = auto.flat, cnt.py_seg, cnt.ticks
    at, s1, counter = state << 8, seg[state], 0
    for b in data:
        nxt = flat[at + b]
        s2 = seg[nxt >> 8]
        if s1 >= 0 and s1 == s2:
            counter += ticks[at + b]
        else:
            counter = ticks[at + b] if s2 >= 0 else 0
        at, s1 = nxt, s2
    return counter


def _build(auto: TokenAutomaton) -> CountedDistances:
    cnt = auto.counts
    assert cnt is not None
    n = auto.n_states
    seg = np.asarray(cnt.seg, dtype=np.int64)
    size = np.ones(n, dtype=np.int64)
    for q in np.flatnonzero(seg >= 0).tolist():
        size[q] = cnt.bounds[seg[q]][1] + 1
    base = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(size, out=base[1:])
    n_nodes = int(base[-1])
    accepting = np.zeros(n_nodes, dtype=bool)
    for s in np.flatnonzero(auto.dfa.accepting[:n]).tolist():
        if seg[s] < 0:
            accepting[base[s]] = True
        else:
            lo, hi = cnt.bounds[seg[s]]
            accepting[base[s] + lo : base[s] + hi + 1] = True
    src_parts: list[np.ndarray] = []
    dst_parts: list[np.ndarray] = []
    fixed: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    tokens = auto.vocab.token_bytes
    for s in range(n):
        ids, nxt, delta, ex = _pairs(auto, s)
        inside = seg[s] >= 0
        stay = ~ex if inside else np.zeros(len(ids), dtype=bool)
        ends = np.full(len(ids), -1, dtype=np.int64)
        moved = np.flatnonzero(~stay)
        ends[moved] = base[nxt[moved]]
        for i in moved[seg[nxt[moved]] >= 0].tolist():  # ends inside a segment it entered: walk it
            ends[i] += _end_counter(auto, s, tokens[int(ids[i])])
        fixed[s] = (moved, ends[moved])
        if not inside:
            targets = np.unique(ends[moved])
            src_parts.append(np.full(len(targets), base[s], dtype=np.int64))
            dst_parts.append(targets)
            continue
        lo, hi = cnt.bounds[seg[s]]
        cs = np.flatnonzero(np.asarray(auto.dfa.live[s], dtype=bool))
        if len(moved):  # leaving: one edge per (counter, distinct (delta, end)) in bounds
            g_delta, g_end = _distinct(delta[moved], ends[moved])
            k = cs[:, None] + g_delta[None, :]
            ci, gi = np.nonzero((k >= lo) & (k <= hi))
            src_parts.append(base[s] + cs[ci])
            dst_parts.append(g_end[gi])
        staying = np.flatnonzero(stay)
        if len(staying):  # staying: (next, counter + delta) while live
            g_delta, g_next = _distinct(delta[staying], nxt[staying])
            k = cs[:, None] + g_delta[None, :]
            q2 = np.broadcast_to(g_next[None, :], k.shape)
            inb = k < size[q2]
            good = np.zeros(k.shape, dtype=bool)
            good[inb] = cnt.flat[cnt.off[q2[inb]] + k[inb]]
            ci, gi = np.nonzero(good)
            src_parts.append(base[s] + cs[ci])
            dst_parts.append(base[g_next[gi]] + k[ci, gi])
    src = np.concatenate(src_parts) if src_parts else np.zeros(0, dtype=np.int64)
    dst = np.concatenate(dst_parts) if dst_parts else np.zeros(0, dtype=np.int64)
    dist = reverse_bfs(n_nodes, src, dst, accepting)
    node_state = np.repeat(np.arange(n), size)
    after = dist[dst]
    reach = after < UNREACHABLE
    worst = np.full(n, -1, dtype=np.int64)
    np.maximum.at(worst, node_state[src[reach]], after[reach])
    dead = np.zeros(n, dtype=bool)
    dead[node_state[src[~reach]]] = True
    for a in (base, dist, worst, dead):
        a.setflags(write=False)
    return CountedDistances(base[:n], dist, worst, dead, fixed)


def _distinct(small: np.ndarray, big: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (small, big) pairs of two non-negative columns (small < 2**20), as two columns."""
    key = np.unique(big.astype(np.int64) << 20 | small.astype(np.int64))
    return key & ((1 << 20) - 1), key >> 20


def _pairs(auto: TokenAutomaton, s: int) -> tuple[np.ndarray, ...]:
    """(ids, next state, delta, exited) of every text token of `s`, loop tokens included (by id)."""
    cnt = auto.counts
    assert cnt is not None
    if cnt.seg[s] >= 0:
        return cnt.pairs(auto, s)
    ids, nxt = auto.edges(s)
    zeros = np.zeros(len(ids), dtype=np.int32)
    return ids, nxt, zeros, np.zeros(len(ids), dtype=bool)


def counted_budget_row(
    auto: TokenAutomaton, state: int, counter: int, budget: int
) -> tuple[torch.Tensor, int] | None:
    """`budget.budget_row` for a position of a counted automaton."""
    d = counted_distances(auto)
    k = budget - 1
    here = int(d.dist[d.node(state, counter)])
    if (here > budget or k >= d.worst[state]) and not d.dead[state]:
        return None
    rows = auto.budget_cache.setdefault("counted rows", {})
    key = (state, counter, min(k, int(d.worst[state])))
    if key in rows:
        return rows[key]
    cnt = auto.counts
    assert cnt is not None
    ids, nxt, delta, ex = _pairs(auto, state)
    ends = np.full(len(ids), -1, dtype=np.int64)
    moved, moved_ends = d.fixed[state]
    ends[moved] = moved_ends
    if cnt.seg[state] >= 0:
        valid = cnt.valid(state, counter, nxt, delta, ex)
        stay = ~ex
        ends[stay] = d.base[nxt[stay]] + counter + delta[stay]
        ends[~valid] = -1
    else:
        valid = np.ones(len(ids), dtype=bool)
    after = np.where(valid, d.dist[np.clip(ends, 0, len(d.dist) - 1)], UNREACHABLE)
    finite = after[after < UNREACHABLE]
    worst_here = int(finite.max(initial=-1))
    dead_here = bool((valid & (after >= UNREACHABLE)).any())
    if here > budget or k >= worst_here:
        if not dead_here:
            rows[key] = None
            return None
        k = worst_here
    toks = ids[after <= k]
    bits = pack_bits(np.zeros(len(toks), dtype=np.int64), toks, 1, auto.vocab.n_words)[0]
    if auto.is_accepting(state, counter):
        set_bits(bits, auto.eos_ids)
    hit = rows[key] = (torch.from_numpy(bits.view(np.int32)), len(toks))
    return hit
