"""Shortest token paths through a token automaton: the fewest tokens any complete output can take.

Counters are ignored (a counted state's CSR allows every token some counter value allows), so the answer
is a lower bound, which is what a static check needs: a `max_tokens` below it can never be enough.
"""

from __future__ import annotations

import numpy as np

from .token_automaton import TokenAutomaton


def shortest_tokens(a: TokenAutomaton) -> int | None:
    """The fewest text tokens from the start to an accepting state (breadth first), or None if none is."""
    if a.n_states == 0:
        return None
    accepting = np.asarray(a.dfa.accepting, dtype=bool)
    seen = np.zeros(a.n_states, dtype=bool)
    frontier = np.array([a.start], dtype=np.int64)
    seen[a.start] = True
    depth = 0
    while frontier.size:
        if accepting[frontier].any():
            return depth
        nxt = [a.next_state[a.indptr[s] : a.indptr[s + 1]] for s in frontier.tolist()]
        reached = np.unique(np.concatenate(nxt)) if nxt else np.zeros(0, dtype=np.int64)
        reached = reached[~seen[reached]]
        seen[reached] = True
        frontier = reached
        depth += 1
    return None
