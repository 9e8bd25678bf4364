"""Budget-aware masks: allow only the tokens after which a value can still finish within its token budget.

A plain mask allows every token that keeps the text completable, however many tokens the completion takes:
`choice("billing", "shipping")` with `max_tokens: 3` may spell `s|hi|pp` and be cut at the limit outside the
constraint. Here each token-automaton state gets `dist[s]`, the fewest text tokens from s to an accepting
state (a reverse breadth-first search over the token edges, 0 when accepting), and with `budget` tokens
left (the one being chosen included) a token t is allowed iff the plain mask allows it and
`dist[next(s, t)] <= budget - 1`. Reaching the limit in an accepting state is a complete value, so a value
that starts with `dist[start] <= max_tokens` (a static check, compiler/plan.py) always completes.

`worst[s]`, the largest finite dist over s's successors, says when the budget can bind at all: for
`budget - 1 >= worst[s]` the budgeted row is the plain row, so the filter only runs over the last few tokens
of a value. A token after which no whole-token path accepts at all (a dead end of the vocabulary: "ship" in
"shipping" with no "p" or "ping" token) is refused whatever the budget (`dead[s]`); and where the value
cannot finish within its budget anyway, the row allows every token that can still finish at all.

Automata with counted segments (their fewest tokens depend on the counter) are handled per (state, counter)
in budget_counts.py; a value that is cut anyway (grammars, budgets below the fewest tokens) is reported as
cut by the runtime (`Generation.complete`), never passed off as a complete one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .token_automaton import TokenAutomaton, pack_bits, set_bits

__all__ = ["NO_LIMIT", "UNREACHABLE", "Distances", "budget_row", "distances", "reverse_bfs"]

UNREACHABLE = np.iinfo(np.int32).max // 2  # dist of a state no whole-token path leads to acceptance from
NO_LIMIT = UNREACHABLE  # a budget that never binds (dead-end tokens are still refused under it)


@dataclass(frozen=True, eq=False)
class Distances:
    """Per state of one token automaton: fewest tokens to acceptance, and the most over its successors."""

    dist: np.ndarray  # int64 [n]: fewest text tokens from s to an accepting state (UNREACHABLE: none)
    worst: np.ndarray  # int64 [n]: max finite dist over the states s's text tokens lead to (-1: none)
    dead: np.ndarray  # bool [n]: some text token of s leads where no whole-token path accepts
    horizon: int  # max of `worst`: a budget above it never binds anywhere


def distances(auto: TokenAutomaton) -> Distances:
    """The automaton's `Distances`, computed on first use and kept with it (not persisted: a BFS is cheap)."""
    found = auto.budget_cache.get("distances")
    if found is None:
        found = auto.budget_cache["distances"] = _distances(auto)
    return found


def _distances(auto: TokenAutomaton) -> Distances:
    n = auto.n_states
    src = np.repeat(np.arange(n, dtype=np.int64), np.diff(auto.indptr))
    dst = auto.next_state.astype(np.int64)
    accepting = np.asarray(auto.dfa.accepting[:n], dtype=bool)
    dist = reverse_bfs(n, src, dst, accepting)
    after = dist[dst]
    reach = after < UNREACHABLE
    worst = np.full(n, -1, dtype=np.int64)
    np.maximum.at(worst, src[reach], after[reach])
    dead = np.zeros(n, dtype=bool)
    dead[src[~reach]] = True
    if len(auto.loop_of):  # loop tokens go back to the state itself
        looped = np.flatnonzero(auto.loop_of >= 0)
        finite = looped[dist[looped] < UNREACHABLE]
        worst[finite] = np.maximum(worst[finite], dist[finite])
        dead[looped[dist[looped] >= UNREACHABLE]] = True
    horizon = int(worst.max(initial=0))
    for a in (dist, worst, dead):
        a.setflags(write=False)
    return Distances(dist, worst, dead, horizon)


def reverse_bfs(n: int, src: np.ndarray, dst: np.ndarray, accepting: np.ndarray) -> np.ndarray:
    """Fewest edges from each state to an accepting one, layer by layer over the reversed edges."""
    dist = np.full(n, UNREACHABLE, dtype=np.int64)
    key = np.unique(dst * max(n, 1) + src)  # distinct (dst, src) pairs, grouped by dst
    r_dst, r_src = np.divmod(key, max(n, 1))
    rptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(r_dst, minlength=n), out=rptr[1:])
    frontier = np.flatnonzero(accepting)
    dist[frontier] = 0
    depth = 0
    while len(frontier):
        lo, hi = rptr[frontier], rptr[frontier + 1]
        sizes = hi - lo
        total = int(sizes.sum())
        if not total:
            break
        idx = np.repeat(lo - np.cumsum(sizes) + sizes, sizes) + np.arange(total)
        preds = np.unique(r_src[idx])
        preds = preds[dist[preds] == UNREACHABLE]
        depth += 1
        dist[preds] = depth
        frontier = preds
    return dist


def budget_row(auto: TokenAutomaton, state: int, budget: int) -> tuple[torch.Tensor, int] | None:
    """(the allowed-token words of `state` with `budget` tokens left, EOS included when accepting; how many
    text tokens it allows), or None where the plain row applies: the budget cannot bind there and no token
    is a dead end, or the automaton is counted. Where the value cannot finish within `budget` anyway (it
    will be cut, and reported), every token that can still finish at all is allowed."""
    if auto.counts is not None or budget < 1:
        return None
    d = distances(auto)
    k = budget - 1
    if d.dist[state] > budget or k >= d.worst[state]:
        if not d.dead[state]:
            return None
        k = int(d.worst[state])
    rows = auto.budget_cache.setdefault("rows", {})
    hit = rows.get((state, k))
    if hit is None:
        ids, nxt = auto.edges(state)
        toks = ids[d.dist[nxt] <= k]
        bits = pack_bits(np.zeros(len(toks), dtype=np.int64), toks, 1, auto.vocab.n_words)[0]
        if auto.is_accepting(state):
            set_bits(bits, auto.eos_ids)
        hit = rows[(state, k)] = (torch.from_numpy(bits.view(np.int32)), len(toks))
    return hit
