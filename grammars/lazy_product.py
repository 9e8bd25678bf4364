"""A conjunction whose parts are kept apart: what runs when the optimizer's `product` pass is off.

The mask is not just the AND of the parts' masks: "ab" & "ac" both allow "a", after which nothing can
satisfy both. A token is allowed when every part allows it and the tuple of part states it leads to can
still reach a tuple where every part accepts (`Conjunction.is_live`, a search of the product explored on
demand and remembered). So the allowed tokens are exactly those of the product automaton, which the
`product` pass builds ahead of time instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .automata import minimize, product
from .dfa import ByteDFA
from .token_automaton import TokenAutomaton, set_bits

State = tuple[int, ...]


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

    def __repr__(self) -> str:
        return f"ConjunctionConstraint({self.source!r}, parts={len(self.parts)})"


class ProductMatcher:
    """A matcher over a `ConjunctionConstraint`: the same interface as `Matcher`."""

    __slots__ = ("constraint", "_state", "_terminated")

    def __init__(self, constraint: ConjunctionConstraint, state: State | None = None) -> None:
        self.constraint = constraint
        self._state = constraint.conj.start if state is None else state
        self._terminated = False

    def __repr__(self) -> str:
        return f"ProductMatcher(state={self._state}, terminated={self._terminated})"

    @property
    def state(self) -> State:
        return self._state

    def fill_bitmask(self, row: torch.Tensor, budget: int | None = None) -> None:
        """As `Matcher.fill_bitmask`; the budget is not applied (a value cut at max_tokens is reported)."""
        if self._terminated:
            row.zero_()
        else:
            row.copy_(self.constraint.row(self._state)[2])

    def advance(self, token_id: int) -> bool:
        if self._terminated:
            return False
        c = self.constraint
        if c.parts[0].is_eos(token_id):
            if c.accepting(self._state):
                self._terminated = True
                return True
            return False
        ids, tuples, _ = c.row(self._state)
        at = int(np.searchsorted(ids, token_id))
        if at >= len(ids) or ids[at] != token_id:
            return False
        self._state = tuple(tuples[at].tolist())
        return True

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
        return twin

    def reset(self) -> None:
        self._state = self.constraint.conj.start
        self._terminated = False


def bind(conj: Conjunction, vocab: Any, source: str = "") -> ConjunctionConstraint:
    """`conj` over `vocab`: each part's token automaton (cached by `from_dfa`)."""
    from .constraint import from_dfa

    return ConjunctionConstraint(conj, tuple(from_dfa(p, vocab).automaton for p in conj.parts), source)
