"""`cfg_loops.Loops` against an independent oracle: the loops of a rule's byte table are the classes of
wide states that reach each other through wide states (transitive closure), a state being on one when it
reaches itself."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.grammars.contextfree.cfg_loops import Loops


@st.composite
def tables(draw: st.DrawFn) -> tuple[np.ndarray, int, int, int, int]:
    """A byte table of a rule at states lo..hi-1 (inside a larger table, `dead` past its end), with wide
    states (many live bytes) and narrow ones."""
    lo = draw(st.integers(0, 3))
    n = draw(st.integers(1, 12))
    hi = lo + n
    dead = hi + draw(st.integers(0, 3))
    table = np.full((dead + 1, 256), dead, dtype=np.int32)
    for g in range(lo, hi):
        live = draw(st.integers(0, 40))
        targets = draw(st.lists(st.integers(lo, hi - 1), min_size=1, max_size=3))
        for b in range(live):
            table[g, b] = targets[b % len(targets)]
    return table, dead, lo, hi, draw(st.sampled_from([1, 8, 16]))


def _oracle(table: np.ndarray, dead: int, lo: int, hi: int, wide: int) -> list[frozenset[int]]:
    n = hi - lo
    is_wide = (table[lo:hi] != dead).sum(axis=1) >= wide
    step = np.zeros((n, n), dtype=bool)
    for g in range(n):
        for t in table[lo + g][table[lo + g] != dead].tolist():
            if is_wide[g] and is_wide[t - lo]:
                step[g, t - lo] = True
    reach = step.copy()  # reach[a, b]: b after >= 1 wide-to-wide step from a
    for _ in range(n):
        reach |= (reach.astype(np.int64) @ step.astype(np.int64)) > 0
    return [
        frozenset(lo + b for b in range(n) if reach[a, b] and reach[b, a]) if reach[a, a] else frozenset()
        for a in range(n)
    ]


@settings(max_examples=200, deadline=None)
@given(tables())
def test_loops_are_the_wide_states_that_reach_each_other(case: tuple[np.ndarray, int, int, int, int]) -> None:
    table, dead, lo, hi, wide = case
    loops = Loops(table, dead, lo, hi, wide)
    want = _oracle(table, dead, lo, hi, wide)
    for g in range(lo, hi):
        c = int(loops.comp[g - lo])
        got = frozenset((np.flatnonzero(loops.comp == c) + lo).tolist()) if c >= 0 else frozenset()
        assert got == want[g - lo], g
        if c >= 0:
            assert set(loops.members(g).tolist()) == want[g - lo]
