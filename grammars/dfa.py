"""Byte-level DFA: subset construction over byte classes, Hopcroft minimization, dead-state removal.

Every state of a `ByteDFA` can still reach an accepting state, so "the walk has not died" also means "the
text so far can still be completed": that is what lets the token automaton allow a token by walking it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .errors import GrammarLimitError
from .limits import DEFAULT_LIMITS, Limits
from .nfa import NFA, build_nfa
from .regex_parser import parse_regex

DEAD = -1


@dataclass(frozen=True, eq=False)
class ByteDFA:
    """`transitions[s, b]` is the next state on byte `b` (or -1); states are numbered from `start` = 0.

    The empty language has no states at all and `start` = -1: the walk is dead before it begins.

    A DFA may carry counters: the states of a counted segment (a length-bounded JSON string body, kept as a
    loop rather than unrolled) have `seg[s]` = its label, `bounds[label]` = (min, max) characters. The
    position is then (state, counter): a byte with `tick[s, b]` starts a character (counter + 1), leaving
    the segment needs min <= counter <= max, entering it starts the counter at 0, and `live[s][c]` says
    whether the segment can still be left within bounds from state s with counter c. Without segments the
    counter stays 0 and everything is a plain DFA.
    """

    transitions: np.ndarray  # int32 [n_states, 256]
    accepting: np.ndarray  # bool [n_states]
    start: int = 0
    seg: np.ndarray | None = None  # int32 [n_states]: counted segment label, -1 outside any
    tick: np.ndarray | None = None  # bool [n_states, 256]: the byte starts a counted character
    bounds: tuple[tuple[int, int], ...] = ()
    live: Mapping[int, np.ndarray] = field(default_factory=dict)  # segment state -> bool [max + 1]

    @property
    def n_states(self) -> int:
        return int(self.transitions.shape[0])

    @property
    def has_counters(self) -> bool:
        return bool(self.bounds)

    def step(self, state: int, data: bytes) -> int:
        """The state after reading `data` from `state`, or -1 once the walk dies (counters ignored)."""
        table = self.transitions
        for b in data:
            if state < 0:
                return DEAD
            state = int(table[state, b])
        return state

    def advance(self, state: int, counter: int, data: bytes) -> tuple[int, int]:
        """(state, counter) after reading `data`, or (-1, 0) once the walk dies; counters honoured."""
        if not self.bounds:
            return self.step(state, data), 0
        table, seg, tick, live = self.transitions, self.seg, self.tick, self.live
        for b in data:
            if state < 0:
                return DEAD, 0
            nxt = int(table[state, b])
            if nxt < 0:
                return DEAD, 0
            s1, s2 = int(seg[state]), int(seg[nxt])
            if s1 >= 0 and s1 == s2:
                counter += int(tick[state, b])
            else:
                if s1 >= 0 and not (self.bounds[s1][0] <= counter <= self.bounds[s1][1]):
                    return DEAD, 0
                counter = int(tick[state, b]) if s2 >= 0 else 0
            if s2 >= 0:
                row = live[nxt]
                if counter >= len(row) or not row[counter]:
                    return DEAD, 0
            state = nxt
        return state, counter

    def is_accepting(self, state: int, counter: int = 0) -> bool:
        if state < 0 or not self.accepting[state]:
            return False
        s = -1 if self.seg is None else int(self.seg[state])
        return s < 0 or self.bounds[s][0] <= counter <= self.bounds[s][1]

    def accepts(self, data: bytes) -> bool:
        state, counter = self.advance(self.start, 0, data)
        return self.is_accepting(state, counter)

    def is_empty(self) -> bool:
        """True when the language is empty (the regex matches no string)."""
        return self.n_states == 0


@lru_cache(maxsize=256)
def compile_regex(pattern: str, limits: Limits = DEFAULT_LIMITS) -> ByteDFA:
    """The minimal byte DFA for full matches of `pattern` (Python `re` syntax, `re.ASCII` shorthands)."""
    return dfa_from_nfa(build_nfa(parse_regex(pattern), limits), limits)


def dfa_from_nfa(nfa: NFA, limits: Limits = DEFAULT_LIMITS) -> ByteDFA:
    byte_class, n_classes = _byte_classes(nfa)
    if nfa.seg_of:
        from .counters import counted_dfa

        return counted_dfa(nfa, byte_class, n_classes, limits)
    trans, accepting, _ = _determinize(nfa, byte_class, n_classes, limits)
    trans, accepting = _minimize(trans, accepting)
    full = np.ascontiguousarray(trans[:, byte_class], dtype=np.int32)
    full.setflags(write=False)
    accepting.setflags(write=False)
    return ByteDFA(full, accepting, 0 if len(accepting) else DEAD)


def _byte_classes(nfa: NFA) -> tuple[np.ndarray, int]:
    """Map bytes to classes that no NFA edge tells apart, so the subset construction works per class."""
    cuts = np.zeros(257, dtype=bool)
    cuts[0] = True
    for edges in nfa.edges:
        for lo, hi, _ in edges:
            cuts[lo] = True
            cuts[hi + 1] = True
    byte_class = np.cumsum(cuts[:256]).astype(np.int64) - 1
    return byte_class, int(byte_class[-1]) + 1


def epsilon_closure(
    eps: Sequence[Sequence[int]], important: Sequence[bool]
) -> Callable[[int], frozenset[int]]:
    """A memoized map from an NFA state to the "important" states reachable from it by epsilon edges.

    Subset construction only needs those (states with real edges, or accepting); shared by the byte DFA
    and the RTN rule DFAs so both determinize the same way.
    """
    closures: dict[int, frozenset[int]] = {}

    def closure(t: int) -> frozenset[int]:
        found = closures.get(t)
        if found is None:
            seen = {t}
            stack = [t]
            while stack:
                for u in eps[stack.pop()]:
                    if u not in seen:
                        seen.add(u)
                        stack.append(u)
            found = closures[t] = frozenset(u for u in seen if important[u])
        return found

    return closure


def _determinize(
    nfa: NFA, byte_class: np.ndarray, n_classes: int, limits: Limits, what: str = "regex"
) -> tuple[np.ndarray, np.ndarray, list[frozenset[int]]]:
    """Subset construction; DFA states are frozensets of "important" NFA states (byte edges or accept).

    Returns (transitions over byte classes, accepting, each DFA state's NFA subset); the subsets let the
    counted-segment analysis (counters.py) see which NFA states a DFA state stands for.
    """
    eps = nfa.eps
    important = [bool(edges) for edges in nfa.edges]
    important[nfa.accept] = True
    closure = epsilon_closure(eps, important)

    # succ[s]: (class, closure of the target) for every class an edge of `s` covers.
    classes = byte_class.tolist()
    succ: list[list[tuple[int, frozenset[int]]]] = [
        [(c, closure(t)) for lo, hi, t in edges for c in range(classes[lo], classes[hi] + 1)]
        for edges in nfa.edges
    ]
    start = closure(nfa.start)
    ids: dict[frozenset[int], int] = {start: 0}
    sets = [start]
    rows: list[list[int]] = []
    work = 0
    while len(rows) < len(sets):
        moves: dict[int, list[frozenset[int]]] = {}
        for s in sets[len(rows)]:
            for c, closed in succ[s]:
                moves.setdefault(c, []).append(closed)
        row = [DEAD] * n_classes
        memo: dict[tuple[int, ...], int] = {}
        for c, parts in moves.items():
            work += len(parts)
            key = tuple(map(id, parts))
            d = memo.get(key)
            if d is None:
                target = parts[0] if len(parts) == 1 else frozenset().union(*parts)
                work += len(target)
                d = ids.get(target, DEAD) if target else DEAD
                if d == DEAD and target:
                    d = len(sets)
                    ids[target] = d
                    sets.append(target)
                memo[key] = d
            row[c] = d
        rows.append(row)
        if len(sets) > limits.max_dfa_states or work > limits.max_subset_work:
            raise GrammarLimitError(
                f"{what} too complex: its DFA grows past {len(sets):,} states "
                f"(limits: {limits.max_dfa_states:,} states, {limits.max_subset_work:,} work)"
                + (" before the construction finishes" if what == "regex" else ""),
                hints=["nested or overlapping repeats (like (a|b)*a(a|b){20}) make DFAs explode"]
                if what == "regex"
                else [],
            )
    trans = np.array(rows, dtype=np.int64).reshape(len(rows), n_classes)
    accepting = np.array([nfa.accept in s for s in sets], dtype=bool)
    return trans, accepting, sets


def _minimize(
    trans: np.ndarray, accepting: np.ndarray, labels: np.ndarray | None = None, reps: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Hopcroft's partition refinement with an explicit dead state, then drop the dead block and renumber.

    In a minimal DFA every state that cannot reach acceptance is equivalent to the dead state, so removing
    the dead block is exactly removing the states from which no match is possible. `labels` (optional)
    refines the initial partition: states with different labels are never merged; label 0 must mean
    "nothing special" (the dead state gets it). `reps`, if given, receives each new state's old state.
    """
    n, k = trans.shape
    dead = n
    table = np.vstack([np.where(trans < 0, dead, trans), np.full((1, k), dead, dtype=trans.dtype)])
    acc = np.append(accepting, False)
    # Predecessor lists per class: inverse[c][t] = states going to t on class c.
    inverse: list[dict[int, list[int]]] = []
    for c in range(k):
        col = table[:, c]
        order = np.argsort(col, kind="stable")
        targets, starts = np.unique(col[order], return_index=True)
        chunks = np.split(order, starts[1:])
        inverse.append({int(t): chunk.tolist() for t, chunk in zip(targets, chunks, strict=True)})

    if labels is None:
        blocks: list[set[int]] = [set(np.flatnonzero(acc).tolist()), set(np.flatnonzero(~acc).tolist())]
    else:
        key = np.append(labels, 0).astype(np.int64) * 2 + acc
        _, inv = np.unique(key, return_inverse=True)
        order = np.argsort(inv, kind="stable")
        cuts = np.flatnonzero(np.diff(inv[order])) + 1
        blocks = [set(part.tolist()) for part in np.split(order, cuts)]
    blocks = [b for b in blocks if b]
    block_of = [0] * (n + 1)
    for i, b in enumerate(blocks):
        for s in b:
            block_of[s] = i
    pending = set(range(len(blocks)))
    while pending:
        splitter = list(blocks[pending.pop()])
        for c in range(k):
            inv = inverse[c]
            touched: dict[int, list[int]] = {}
            for t in splitter:
                for s in inv.get(t, ()):
                    touched.setdefault(block_of[s], []).append(s)
            for y, xs in touched.items():
                whole = blocks[y]
                if len(xs) == len(whole):
                    continue
                if 2 * len(xs) <= len(whole):
                    moved = set(xs)
                    whole.difference_update(moved)
                else:
                    moved = whole.difference(xs)
                    blocks[y] = set(xs)
                new = len(blocks)
                blocks.append(moved)
                for s in moved:
                    block_of[s] = new
                pending.add(new)  # the smaller half (or both, if y is still pending)
    return _renumber(table, acc, block_of, dead, reps)


def _renumber(
    table: np.ndarray, acc: np.ndarray, block_of: list[int], dead: int, reps: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Breadth-first numbering of the live blocks from the start state's block, dead block mapped to -1."""
    k = table.shape[1]
    dead_block = block_of[dead]
    rep: dict[int, int] = {}
    for s in range(len(block_of)):
        rep.setdefault(block_of[s], s)
    start_block = block_of[0]
    if start_block == dead_block:  # empty language: no live state at all
        return np.zeros((0, k), dtype=np.int64), np.zeros(0, dtype=bool)
    number = {start_block: 0}
    order = [start_block]
    queue = deque([start_block])
    while queue:
        b = queue.popleft()
        for t in table[rep[b]].tolist():
            tb = block_of[t]
            if tb != dead_block and tb not in number:
                number[tb] = len(order)
                order.append(tb)
                queue.append(tb)
    out = np.full((len(order), k), DEAD, dtype=np.int64)
    for i, b in enumerate(order):
        out[i] = [number.get(block_of[t], DEAD) for t in table[rep[b]].tolist()]
    accepting = np.array([bool(acc[rep[b]]) for b in order], dtype=bool)
    if reps is not None:
        reps[:] = [rep[b] for b in order]
    return out, accepting
