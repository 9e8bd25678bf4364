"""Shortest token paths through a token automaton: the fewest tokens any complete output can take.

Exact, counters included (budget.py, budget_counts.py: the same distances the budget-aware masks use), so
a `max_tokens` below it can never be enough, and one at or above it always is.
"""

from __future__ import annotations

from .budget import UNREACHABLE, distances
from .budget_counts import counted_distances
from .token_automaton import TokenAutomaton


def shortest_tokens(a: TokenAutomaton) -> int | None:
    """The fewest text tokens from the start to acceptance, or None if no token sequence gets there."""
    if a.n_states == 0:
        return None
    if a.counts is not None:
        d = counted_distances(a)
        fewest = int(d.dist[d.node(a.start, 0)])
    else:
        fewest = int(distances(a).dist[a.start])
    return None if fewest >= UNREACHABLE else fewest
