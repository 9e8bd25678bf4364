"""A matcher: one decoding stream's position in a token automaton, cheap to clone for beams and forks."""

from __future__ import annotations

import numpy as np
import torch

from .token_automaton import TokenAutomaton


class Matcher:
    """Tracks the DFA state as tokens are accepted; `fill_bitmask` writes the allowed tokens of that state."""

    __slots__ = ("automaton", "_state", "_terminated")

    def __init__(self, automaton: TokenAutomaton, state: int | None = None) -> None:
        self.automaton = automaton
        self._state = automaton.start if state is None else state
        self._terminated = False

    def __repr__(self) -> str:
        return f"Matcher(state={self._state}, terminated={self._terminated})"

    @property
    def state(self) -> int:
        return self._state

    def fill_bitmask(self, row: torch.Tensor) -> None:
        """Copy the allowed-token words of the current state into `row` (int32, ceil(size/32) words).

        Once terminated nothing is allowed, so the row is all zeros.
        """
        if self._terminated:
            row.zero_()
            return
        row.copy_(self.automaton.bitmask_tensor[self._state])

    def advance(self, token_id: int) -> bool:
        """Accept `token_id` if allowed (False and no change otherwise); EOS in an accepting state terminates."""
        if self._terminated:
            return False
        auto = self.automaton
        if auto.is_eos(token_id):
            if auto.is_accepting(self._state):
                self._terminated = True
                return True
            return False
        nxt = auto.next(self._state, token_id)
        if nxt < 0:
            return False
        self._state = nxt
        return True

    def is_accepting(self) -> bool:
        """The text so far is a full match (EOS would be allowed now)."""
        return not self._terminated and self.automaton.is_accepting(self._state)

    def can_continue(self) -> bool:
        """Some text token is allowed now."""
        return not self._terminated and int(self.automaton.n_allowed[self._state]) > 0

    def is_terminated(self) -> bool:
        return self._terminated

    def allowed_token_ids(self) -> np.ndarray:
        if self._terminated:
            return np.zeros(0, dtype=np.int32)
        return self.automaton.allowed(self._state)

    def clone(self) -> Matcher:
        twin = Matcher(self.automaton, self._state)
        twin._terminated = self._terminated
        return twin

    def reset(self) -> None:
        self._state = self.automaton.start
        self._terminated = False
