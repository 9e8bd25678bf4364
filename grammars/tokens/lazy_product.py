"""A conjunction whose parts are kept apart: what runs when the optimizer's `product` pass is off.

The mask is not just the AND of the parts' masks: "ab" & "ac" both allow "a", after which nothing can
satisfy both. A token is allowed when every part allows it and the tuple of part states it leads to can
still reach a tuple where every part accepts (`Conjunction.is_live`, a search of the product explored on
demand and remembered). So the allowed tokens are exactly those of the product automaton, which the
`product` pass builds ahead of time instead.

Budget-aware masks (budget.py) over the tuple: with `budget` tokens left a token is allowed when the tuple
it leads to can reach a tuple where every part accepts within `budget - 1` tokens, found by a breadth-first
search of the product (pruned by the parts' own fewest tokens, a lower bound, and remembered). Beyond
`EXACT_WITHIN` tokens only that lower bound refuses tokens: a value can then still be cut, and is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..automata.automata import minimize, product
from ..automata.dfa import ByteDFA
from .budget import distances
from .matcher import History, unwind
from .token_automaton import TokenAutomaton, set_bits

State = tuple[int, ...]
EXACT_WITHIN = 64  # budgets up to this many tokens get exact masks (a bounded search of the product)


@dataclass(frozen=True, eq=False)
class Conjunction:
    """Plain DFAs whose languages are intersected lazily."""

    parts: tuple[ByteDFA, ...]
    _live: dict[State, bool] = field(default_factory=dict, repr=False)
    _language: list[ByteDFA] = field(default_factory=list, repr=False)

    @property
    def start(self) -> State:
        return tuple(p.start for p in self.parts)

    def is_live(self, states: State) -> bool:
        """Can the parts, from `states`, all accept one common continuation?"""
        known = self._live.get(states)
        if known is not None:
            return known
        parts = self.parts
        seen = {states}
        queue = [states]
        for q in queue:
            if self._live.get(q) or all(p.accepting[s] for p, s in zip(parts, q, strict=True)):
                self._live[states] = True
                return True
            if self._live.get(q) is False:
                continue
            nxt = np.stack([p.transitions[s] for p, s in zip(parts, q, strict=True)])
            cols = np.unique(nxt[:, (nxt >= 0).all(0)].T, axis=0)
            for col in cols.tolist():
                t = tuple(col)
                if t not in seen:
                    seen.add(t)
                    queue.append(t)
        for q in seen:  # nothing reachable from any of them accepts
            self._live[q] = False
        return False

    def language(self) -> ByteDFA:
        """The minimal DFA of the intersection (built once, for the compiler's static checks)."""
        if not self._language:
            self._language.append(minimize(product(self.parts)))
        return self._language[0]


@dataclass(frozen=True, eq=False)
class ConjunctionConstraint:
    """A `Conjunction` bound to a vocabulary: one token automaton per part, rows built per state tuple."""

    conj: Conjunction
    parts: tuple[TokenAutomaton, ...]
    source: str = ""
    _rows: dict[State, tuple[np.ndarray, np.ndarray, torch.Tensor]] = field(default_factory=dict, repr=False)
    _fewest: dict[State, int] = field(default_factory=dict, repr=False)  # exact fewest tokens to accept
    _above: dict[State, int] = field(default_factory=dict, repr=False)  # known: fewest > this
    _budget_rows: dict[tuple[State, int], torch.Tensor | None] = field(default_factory=dict, repr=False)
    _succ: dict[State, tuple[list[State], np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def matcher(self) -> ProductMatcher:
        return ProductMatcher(self)

    def accepting(self, q: State) -> bool:
        return all(a.is_accepting(s) for a, s in zip(self.parts, q, strict=True))

    def row(self, q: State) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """(allowed text tokens, sorted; the state tuple after each; the bitmask row, EOS included)."""
        found = self._rows.get(q)
        if found is not None:
            return found
        ids, nxt = self.parts[0].edges(q[0])
        nexts = [nxt]
        for a, s in zip(self.parts[1:], q[1:], strict=True):
            ids2, nxt2 = a.edges(s)
            ids, i1, i2 = np.intersect1d(ids, ids2, assume_unique=True, return_indices=True)
            nexts = [n[i1] for n in nexts] + [nxt2[i2]]
        tuples = np.stack(nexts, 1) if len(ids) else np.zeros((0, len(q)), dtype=np.int32)
        if len(ids):
            uniq, inv = np.unique(tuples, axis=0, return_inverse=True)
            live = np.array([self.conj.is_live(tuple(u)) for u in uniq.tolist()])
            keep = live[inv.reshape(-1)]
            ids, tuples = ids[keep], tuples[keep]
        bits = np.zeros(self.parts[0].bitmask.shape[1], dtype=np.uint32)
        set_bits(bits, ids)
        if self.accepting(q):
            set_bits(bits, self.parts[0].eos_ids)
        found = (ids.astype(np.int32), tuples, torch.from_numpy(bits.view(np.int32)))
        self._rows[q] = found
        return found

    def lower_bound(self, q: State) -> int:
        """Fewest tokens to accept is at least each part's own fewest (UNREACHABLE when a part cannot)."""
        return max(int(distances(a).dist[s]) for a, s in zip(self.parts, q, strict=True))

    def finishes_within(self, q: State, limit: int) -> bool:
        """Some `limit` tokens or fewer lead from `q` to a tuple where every part accepts."""
        if q in self._fewest:
            return self._fewest[q] <= limit
        if self._above.get(q, -1) >= limit or self.lower_bound(q) > limit:
            return False
        seen, frontier = {q}, [q]
        for depth in range(limit + 1):
            if any(self.accepting(t) for t in frontier):
                self._fewest[q] = depth
                return True
            if depth == limit:
                break
            nxt: list[State] = []
            for t in frontier:
                tuples = self.row(t)[1]
                for u in map(tuple, np.unique(tuples, axis=0).tolist()) if len(tuples) else ():
                    if u not in seen and depth + 1 + self.lower_bound(u) <= limit:
                        seen.add(u)
                        nxt.append(u)
            frontier = nxt
        self._above[q] = max(self._above.get(q, -1), limit)
        return False

    def budget_row(self, q: State, budget: int) -> torch.Tensor | None:
        """The row of `q` with `budget` tokens left (see the module docstring), or None for the plain row:
        the budget does not bind, or `q` cannot finish within it anyway (the value is cut and reported)."""
        k = budget - 1
        ids = self.row(q)[0]
        succ, inv, bounds = self._successors(q)
        if k > EXACT_WITHIN:  # lower bounds only: a comparison per distinct successor
            fits = bounds <= k
            return None if fits.all() else self._bits(q, ids[fits[inv]])
        key = (q, k)
        if key not in self._budget_rows:
            found = None
            if len(ids) and self.finishes_within(q, budget):
                fits = np.array([self.finishes_within(u, k) for u in succ], dtype=bool)
                if not fits.all():
                    found = self._bits(q, ids[fits[inv]])
            self._budget_rows[key] = found
        return self._budget_rows[key]

    def _successors(self, q: State) -> tuple[list[State], np.ndarray, np.ndarray]:
        """(the distinct tuples q's tokens lead to, each token's index among them, their lower bounds)."""
        found = self._succ.get(q)
        if found is None:
            tuples = self.row(q)[1]
            if len(tuples):
                uniq, inv = np.unique(tuples, axis=0, return_inverse=True)
                succ = [tuple(u) for u in uniq.tolist()]
            else:
                succ, inv = [], np.zeros(0, dtype=np.int64)
            bounds = np.array([self.lower_bound(u) for u in succ], dtype=np.int64)
            found = self._succ[q] = (succ, inv.reshape(-1), bounds)
        return found

    def _bits(self, q: State, ids: np.ndarray) -> torch.Tensor:
        bits = np.zeros(self.parts[0].bitmask.shape[1], dtype=np.uint32)
        set_bits(bits, ids)
        if self.accepting(q):
            set_bits(bits, self.parts[0].eos_ids)
        return torch.from_numpy(bits.view(np.int32))

    def __repr__(self) -> str:
        return f"ConjunctionConstraint({self.source!r}, parts={len(self.parts)})"


class ProductMatcher:
    """A matcher over a `ConjunctionConstraint`: the same interface as `Matcher`."""

    __slots__ = ("constraint", "_state", "_terminated", "_history")

    def __init__(self, constraint: ConjunctionConstraint, state: State | None = None) -> None:
        self.constraint = constraint
        self._state = constraint.conj.start if state is None else state
        self._terminated = False
        self._history: History = None

    def __repr__(self) -> str:
        return f"ProductMatcher(state={self._state}, terminated={self._terminated})"

    @property
    def state(self) -> State:
        return self._state

    def fill_bitmask(self, row: torch.Tensor, budget: int | None = None) -> None:
        """As `Matcher.fill_bitmask`, budget included."""
        if self._terminated:
            row.zero_()
            return
        if budget is not None and budget >= 1:
            tight = self.constraint.budget_row(self._state, budget)
            if tight is not None:
                row.copy_(tight)
                return
        row.copy_(self.constraint.row(self._state)[2])

    def advance(self, token_id: int) -> bool:
        if self._terminated:
            return False
        c = self.constraint
        if c.parts[0].is_eos(token_id):
            if c.accepting(self._state):
                self._history = (self._history, self._state)
                self._terminated = True
                return True
            return False
        ids, tuples, _ = c.row(self._state)
        at = int(np.searchsorted(ids, token_id))
        if at >= len(ids) or ids[at] != token_id:
            return False
        self._history = (self._history, self._state)
        self._state = tuple(tuples[at].tolist())
        return True

    def rollback(self, n: int) -> None:
        """As `Matcher.rollback`."""
        self._history, self._state = unwind(self._history, n, self._state)
        if n:
            self._terminated = False

    def after_bytes(self, data: bytes) -> ProductMatcher | None:
        """A copy positioned after `data` (any bytes, as `Matcher.after_bytes`), or None where no common
        continuation is left."""
        if self._terminated:
            return None
        q = []
        for a, s in zip(self.constraint.parts, self._state, strict=True):
            nxt, _ = a.walk(s, 0, data)
            if nxt < 0:
                return None
            q.append(nxt)
        state = tuple(q)
        return ProductMatcher(self.constraint, state) if self.constraint.conj.is_live(state) else None

    def is_accepting(self) -> bool:
        return not self._terminated and self.constraint.accepting(self._state)

    def n_text_allowed(self) -> int:
        return 0 if self._terminated else len(self.constraint.row(self._state)[0])

    def can_continue(self) -> bool:
        return self.n_text_allowed() > 0

    def is_terminated(self) -> bool:
        return self._terminated

    def allowed_token_ids(self) -> np.ndarray:
        if self._terminated:
            return np.zeros(0, dtype=np.int32)
        ids = self.constraint.row(self._state)[0]
        if self.constraint.accepting(self._state):
            return np.union1d(ids, self.constraint.parts[0].eos_ids).astype(np.int32)
        return ids

    def clone(self) -> ProductMatcher:
        twin = ProductMatcher(self.constraint, self._state)
        twin._terminated = self._terminated
        twin._history = self._history
        return twin

    def reset(self) -> None:
        self._state = self.constraint.conj.start
        self._terminated = False
        self._history = None


def bind(conj: Conjunction, vocab: Any, source: str = "") -> ConjunctionConstraint:
    """`conj` over `vocab`: each part's token automaton (cached by `from_dfa`)."""
    from .constraint import from_dfa

    return ConjunctionConstraint(conj, tuple(from_dfa(p, vocab).automaton for p in conj.parts), source)
