"""Compile limits for grammars, so pathological patterns fail fast with a `GrammarLimitError`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Upper bounds on automaton sizes; frozen so it can be part of a cache key."""

    max_nfa_states: int = 200_000
    # ~100k DFA states take a few seconds in pure Python (subset construction + minimization).
    max_dfa_states: int = 100_000
    # Work bound on the subset construction (sizes of the NFA-state sets it unions): stops blow-ups like
    # `(\w+\s?){1,300}` within a few seconds even when the state count stays small.
    max_subset_work: int = 30_000_000
    # (state, token) pairs a token automaton stores (8 bytes each); reached after ~1-2 s of building.
    max_token_transitions: int = 20_000_000


DEFAULT_LIMITS = Limits()
