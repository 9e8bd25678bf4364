"""A matcher: one decoding stream's position in a token automaton, cheap to clone for beams and forks."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .budget import budget_row, distances
from .budget_counts import counted_budget_row, counted_distances
from .token_automaton import TokenAutomaton


class Matcher:
    """Tracks the DFA state as tokens are accepted; `fill_bitmask` writes the allowed tokens of that state."""

    __slots__ = ("automaton", "_state", "_counter", "_terminated", "_history")

    def __init__(self, automaton: TokenAutomaton, state: int | None = None, counter: int = 0) -> None:
        self.automaton = automaton
        self._state = automaton.start if state is None else state
        self._counter = counter  # characters so far in the current counted segment (see counters.py)
        self._terminated = False
        self._history: History = None  # the positions before each accepted token, for rollback

    def __repr__(self) -> str:
        return f"Matcher(state={self._state}, counter={self._counter}, terminated={self._terminated})"

    @property
    def state(self) -> int:
        return self._state

    @property
    def counter(self) -> int:
        """Characters so far in the current counted segment (0 outside one)."""
        return self._counter

    def n_text_allowed(self) -> int:
        """How many text tokens are allowed now (a table lookup: nothing is listed)."""
        return 0 if self._terminated else self.automaton.n_text_allowed(self._state, self._counter)

    def fill_bitmask(self, row: torch.Tensor, budget: int | None = None) -> None:
        """Copy the allowed-token words of the current state into `row` (int32, ceil(size/32) words).

        `budget`: tokens the value may still take, the one being chosen included; only tokens after which
        it can still finish within them are allowed (budget.py), where it can at all. Once terminated
        nothing is allowed, so the row is all zeros.
        """
        if self._terminated:
            row.zero_()
            return
        if budget is not None:
            auto = self.automaton
            if auto.counts is None:
                tight = budget_row(auto, self._state, budget)
            else:
                tight = counted_budget_row(auto, self._state, self._counter, budget) if budget >= 1 else None
            if tight is not None:
                row.copy_(tight[0])
                return
        row.copy_(self.automaton.row(self._state, self._counter))

    def advance(self, token_id: int) -> bool:
        """Accept `token_id` if allowed (False and no change otherwise); EOS in an accepting state terminates."""
        if self._terminated:
            return False
        auto = self.automaton
        if auto.is_eos(token_id):
            if auto.is_accepting(self._state, self._counter):
                self._history = (self._history, (self._state, self._counter))
                self._terminated = True
                return True
            return False
        nxt, counter = auto.step(self._state, self._counter, token_id)
        if nxt < 0:
            return False
        self._history = (self._history, (self._state, self._counter))
        self._state, self._counter = nxt, counter
        return True

    def rollback(self, n: int) -> None:
        """Undo the last `n` accepted tokens (a terminating EOS counts as one): speculative drafts and
        external engines step back without re-walking from the start."""
        self._history, (self._state, self._counter) = unwind(self._history, n, (self._state, self._counter))
        if n:
            self._terminated = False

    def after_bytes(self, data: bytes) -> Matcher | None:
        """A copy positioned after `data`, any bytes and not only whole tokens (token healing starts a
        value inside a token), or None where they leave the language."""
        if self._terminated:
            return None
        state, counter = self.automaton.walk(self._state, self._counter, data)
        return None if state < 0 else Matcher(self.automaton, state, counter)

    def is_accepting(self) -> bool:
        """The text so far is a full match (EOS would be allowed now)."""
        return not self._terminated and self.automaton.is_accepting(self._state, self._counter)

    def can_continue(self) -> bool:
        """Some text token is allowed now."""
        return self.n_text_allowed() > 0

    def is_terminated(self) -> bool:
        return self._terminated

    def allowed_token_ids(self) -> np.ndarray:
        if self._terminated:
            return np.zeros(0, dtype=np.int32)
        return self.automaton.allowed(self._state, self._counter)

    def fewest_tokens(self) -> int:
        """The fewest tokens that reach acceptance from here (budget.py; UNREACHABLE when none can)."""
        auto = self.automaton
        if auto.counts is None:
            return int(distances(auto).dist[self._state])
        d = counted_distances(auto)
        return int(d.dist[d.node(self._state, self._counter)])

    def budget_horizon(self) -> int:
        """A budget above this never binds anywhere in the automaton (the largest finite fewest-tokens)."""
        auto = self.automaton
        if auto.counts is None:
            return int(distances(auto).horizon)
        return int(counted_distances(auto).worst.max(initial=0))

    def clone(self) -> Matcher:
        """An independent copy (history shared: it is immutable), so rollback works on both."""
        twin = Matcher(self.automaton, self._state, self._counter)
        twin._terminated = self._terminated
        twin._history = self._history
        return twin

    def reset(self) -> None:
        self._state = self.automaton.start
        self._counter = 0
        self._terminated = False
        self._history = None


# The positions before each accepted token, newest first, as an immutable linked list (parent, position):
# clones share it in O(1), and a rollback of n tokens walks n links.
History = tuple[Any, Any] | None


def unwind(history: History, n: int, current: Any) -> tuple[History, Any]:
    """(history, position) after undoing `n` tokens; ValueError when fewer than `n` were accepted."""
    if n < 0:
        raise ValueError(f"rollback needs n >= 0, not {n}")
    for done in range(n):
        if history is None:
            raise ValueError(f"cannot roll back {n} tokens: only {done} were accepted")
        history, current = history
    return history, current
