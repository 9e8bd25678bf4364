"""`precompute()`: the eager form of a grammar constraint (every rule built, every state classified at once).

Its masks must equal the lazy constraint's at every step of random walks, and once it has run no mask
may classify a state again (the first visits it exists to take off the masks).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_lazy_engine import VOCAB, grammars

from decc.grammars import GrammarError, regex
from decc.grammars.contextfree.cfg_grammar import parse_grammar
from decc.grammars.contextfree.cfg_matcher import cfg_from_grammar
from decc.grammars.limits import DEFAULT_LIMITS

EOS = VOCAB.eos_ids


def fresh_constraint(text: str):  # a fresh one (the factory is memoized)
    return cfg_from_grammar.__wrapped__(parse_grammar(text), VOCAB, DEFAULT_LIMITS, text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammars(), st.data())
def test_precomputed_masks_equal_the_lazy_ones_and_classify_nothing_more(
    text: str, data: st.DataObject
) -> None:
    try:
        lazy, eager = fresh_constraint(text), fresh_constraint(text)
    except GrammarError:
        assume(False)
    assert eager.precompute() is eager
    rows = eager.rows
    assert rows.n == eager.rtn.n_states and (rows.row_of[: rows.n] >= 0).all()
    assert all(u is not None for u in rows.uncertain)
    classified = rows.n_rows
    with pytest.MonkeyPatch.context() as mp:

        def refuse(states: list[int]) -> None:  # a state left unclassified would be classified here
            if any(rows.row_of[g] < 0 for g in states):
                raise AssertionError(f"states {states} classified after precompute()")

        mp.setattr(rows, "_fill", refuse)  # this constraint's only: the lazy one classifies as it goes
        for _ in range(3):
            masks_agree(lazy, eager, data)
    assert rows.n_rows == classified  # no row added by the walks


def masks_agree(a_constraint, b_constraint, data: st.DataObject, least: int = 0) -> None:
    """Both constraints' masks equal at every step of one random walk (at least `least` tokens, when the
    grammar allows)."""
    a, b = a_constraint.matcher(), b_constraint.matcher()
    for _ in range(data.draw(st.integers(least, 8))):
        ma, mb = a.mask(), b.mask()
        np.testing.assert_array_equal(ma, mb)
        allowed = np.flatnonzero(np.unpackbits(ma.view(np.uint8), bitorder="little")[: VOCAB.size])
        allowed = [t for t in allowed.tolist() if t not in EOS]
        if not allowed:
            break
        t = data.draw(st.sampled_from(allowed))
        assert a.advance(t) and b.advance(t)
    np.testing.assert_array_equal(a.mask(), b.mask())


def test_a_token_automaton_is_already_eager() -> None:
    c = regex("ab+", VOCAB)
    assert c.precompute() is c
