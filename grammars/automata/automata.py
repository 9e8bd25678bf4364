"""The automaton rewrites the optimizer runs on compiled constraints: product, trim, minimize.

Each takes and gives a plain `ByteDFA` (start state 0) and keeps its language:
- `product` of the parts of a conjunction: the pairs (tuples) of states reachable from the start tuple.
  Tuples from which the parts cannot all still accept are kept (`trimmed=False`).
- `trim` drops the states that are unreachable or cannot reach acceptance (dead states), restoring the
  invariant the token automaton relies on (a walk that has not died can still be completed).
- `minimize` merges equivalent states (Moore refinement, dfa.minimize_table), which trims too.
Counted DFAs (counters.py) are built trimmed and minimal and are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import GrammarLimitError
from ..limits import DEFAULT_LIMITS, Limits, check_time
from .dfa import DEAD, ByteDFA, minimize_table


def trim_table(trans: np.ndarray, accepting: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(transitions, accepting) restricted to the states reachable from 0 that can reach acceptance,
    renumbered in their old order (0 stays 0); no states at all when 0 itself is dead."""
    n = len(accepting)
    if n == 0:
        return trans[:0], accepting[:0]
    src, dst = _edges(trans)
    reach = _closure(src, dst, np.array([0]), n)
    coreach = _closure(dst, src, np.flatnonzero(accepting), n)
    keep = reach & coreach
    if not keep[0]:
        return trans[:0], accepting[:0]
    number = np.full(n + 1, DEAD, dtype=np.int64)  # index n: the old -1
    number[np.flatnonzero(keep)] = np.arange(int(keep.sum()))
    out = number[np.where(trans < 0, n, trans)][keep]
    return out.astype(trans.dtype), accepting[keep]


def _edges(trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct edges (source state, target state) of a transition table, -1 targets left out."""
    n = trans.shape[0]
    src = np.repeat(np.arange(n), trans.shape[1])
    dst = trans.reshape(-1).astype(np.int64)
    ok = dst >= 0
    pairs = np.unique(src[ok] * n + dst[ok])
    return pairs // n, pairs % n


def _closure(src: np.ndarray, dst: np.ndarray, seeds: np.ndarray, n: int) -> np.ndarray:
    """bool [n]: the states reachable from `seeds` along the edges src -> dst."""
    order = np.argsort(src, kind="stable")
    src, dst = src[order], dst[order]
    ptr = np.searchsorted(src, np.arange(n + 1))
    seen = np.zeros(n, dtype=bool)
    seen[seeds] = True
    frontier = np.unique(seeds)
    rounds = 0
    while frontier.size:
        rounds += 1
        if rounds % 256 == 0:  # a long chain takes one round per state
            check_time("trimming the automaton")
        lo, hi = ptr[frontier], ptr[frontier + 1]
        counts = hi - lo
        idx = np.arange(int(counts.sum())) + np.repeat(lo - (np.cumsum(counts) - counts), counts)
        nxt = np.unique(dst[idx])
        frontier = nxt[~seen[nxt]]
        seen[frontier] = True
    return seen


def cut_dead(dfa: ByteDFA) -> ByteDFA:
    """`dfa` with every edge into a dead state removed, the states themselves kept: what the runtime does
    with a DFA the `prune` pass did not trim, so that its token automaton allows exactly the same tokens."""
    if dfa.trimmed:
        return dfa
    src, dst = _edges(dfa.transitions)
    live = _closure(dst, src, np.flatnonzero(dfa.accepting), dfa.n_states)
    table = np.where((dfa.transitions >= 0) & live[np.maximum(dfa.transitions, 0)], dfa.transitions, DEAD)
    return _frozen(table, np.asarray(dfa.accepting), trimmed=True, minimal=dfa.minimal)


def _frozen(table: np.ndarray, accepting: np.ndarray, *, trimmed: bool, minimal: bool) -> ByteDFA:
    table = np.ascontiguousarray(table, dtype=np.int32)
    accepting = np.ascontiguousarray(accepting, dtype=bool)
    table.setflags(write=False)
    accepting.setflags(write=False)
    return ByteDFA(table, accepting, 0 if len(accepting) else DEAD, trimmed=trimmed, minimal=minimal)


def trim(dfa: ByteDFA) -> ByteDFA:
    """`dfa` without its dead and unreachable states."""
    if dfa.trimmed or dfa.has_counters:
        return dfa
    trans, accepting = trim_table(dfa.transitions, dfa.accepting)
    return _frozen(trans, accepting, trimmed=True, minimal=dfa.minimal)


def minimize(dfa: ByteDFA) -> ByteDFA:
    """The minimal DFA of `dfa`'s language (trimmed as well)."""
    if (dfa.minimal and dfa.trimmed) or dfa.has_counters or dfa.n_states == 0:
        return dfa
    columns, byte_class = distinct_columns(dfa.transitions)
    trans, accepting = minimize_table(columns.T.astype(np.int64), np.asarray(dfa.accepting))
    return _frozen(trans[:, byte_class.reshape(-1)], accepting, trimmed=True, minimal=True)


def distinct_columns(trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(trans.T, axis=0, return_inverse=True)`, rows in the same (sorted) order, with the
    columns told apart by their bytes first: `np.unique` sorts whole columns as records, which took 7 s
    for a 100,000-state chain; only the few distinct ones are sorted here."""
    cols = np.ascontiguousarray(trans.T)
    seen: dict[bytes, int] = {}
    first = []
    inverse = np.empty(cols.shape[0], dtype=np.int64)
    for i in range(cols.shape[0]):
        key = cols[i].tobytes()
        j = seen.get(key)
        if j is None:
            j = seen[key] = len(first)
            first.append(i)
        inverse[i] = j
    distinct = cols[first]
    order = np.lexsort(distinct.T[::-1]) if len(first) > 1 else np.zeros(len(first), dtype=np.int64)
    rank = np.empty(len(first), dtype=np.int64)
    rank[order] = np.arange(len(first))
    return distinct[order], rank[inverse]


def product(parts: Sequence[ByteDFA], limits: Limits = DEFAULT_LIMITS) -> ByteDFA:
    """The strings every part accepts: one state per tuple of part states reachable from the start tuple.

    Parts join one at a time; each intermediate product is minimized (so that many parts stay small), the
    last one is left as built (dead states kept, not minimized) for the `prune` and `minimize` passes.
    """
    if any(p.has_counters for p in parts):
        raise ValueError("product() takes plain DFAs; counted parts are combined by combine.conjunction")
    if not parts or any(p.n_states == 0 for p in parts):
        return _frozen(np.zeros((0, 256), np.int32), np.zeros(0, bool), trimmed=True, minimal=True)
    acc = parts[0]
    for i, part in enumerate(parts[1:], 2):
        acc = _pair(acc, part, limits)
        if i < len(parts):
            acc = minimize(acc)
            if acc.n_states == 0:
                return acc
    return acc


def _pair(a: ByteDFA, b: ByteDFA, limits: Limits) -> ByteDFA:
    """The product of two DFAs, breadth first over whole frontiers (a pair is one int64: a + n_a * b)."""
    parts = (a, b)
    sizes = [p.n_states for p in parts]
    radix = np.cumprod([1] + sizes[:-1]).astype(np.int64)
    tables = [p.transitions.astype(np.int64) for p in parts]

    def successors(codes: np.ndarray) -> np.ndarray:
        """int64 [len(codes), 256]: the successor tuples' codes, -1 where some part dies."""
        out = np.zeros((len(codes), 256), dtype=np.int64)
        dead = np.zeros((len(codes), 256), dtype=bool)
        for t, r, size in zip(tables, radix.tolist(), sizes, strict=True):
            nxt = t[(codes // r) % size]
            dead |= nxt < 0
            out += nxt * r
        out[dead] = -1
        return out

    def too_many(total: int) -> GrammarLimitError:
        return GrammarLimitError(
            f"conjunction too complex: its product grows past {total:,} states "
            f"(limit: {limits.max_dfa_states:,})",
            hints=["simplify one of the parts, or write the combination as one regex"],
        )

    codes, table = reachable_codes(
        0, successors, limits.max_dfa_states, too_many, "building the conjunction's product"
    )
    accepting = np.ones(len(codes), dtype=bool)
    for p, r, size in zip(parts, radix.tolist(), sizes, strict=True):
        accepting &= p.accepting[(codes // r) % size]
    return _frozen(table, accepting, trimmed=False, minimal=False)


def reachable_codes(
    start: int,
    successors: Callable[[np.ndarray], np.ndarray],
    limit: int,
    too_many: Callable[[int], Exception],
    what: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Every product state reachable from the code `start`, breadth first over whole frontiers (a product
    state is one int64 code; `successors` maps codes to int64 [len, 256] successor codes, -1 where the
    product dies), and its transition table over their numbers (DEAD where it dies). States are numbered in
    order of first appearance, state by state and byte by byte; past `limit` states `too_many(total)` is
    raised. `what` names the work for the compile deadline."""
    found = [np.array([start], dtype=np.int64)]
    seen = {start}  # a set: re-sorting every code seen per frontier was quadratic in the product's depth
    frontier = found[0]
    total = 1
    while frontier.size:
        check_time(what)
        nxt = successors(frontier).reshape(-1)
        _, first = np.unique(nxt, return_index=True)
        fresh = [c for c in nxt[np.sort(first)].tolist() if c >= 0 and c not in seen]
        seen.update(fresh)
        nxt = np.array(fresh, dtype=np.int64)
        total += len(nxt)
        if total > limit:
            raise too_many(total)
        found.append(nxt)
        frontier = nxt
    codes = np.concatenate(found)
    order = np.argsort(codes)
    succ = successors(codes)
    at = np.searchsorted(codes[order], np.where(succ < 0, 0, succ))
    return codes, np.where(succ < 0, DEAD, order[np.minimum(at, len(codes) - 1)])
