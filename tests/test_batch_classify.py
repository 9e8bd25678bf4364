"""The batch after the first mask (cfg_rows `StateRows.arm`): the next classification takes every state of
the grammar (its unbuilt rules built first) and walks ahead the uncertain tokens of the states with many,
within `batch_seconds`; the rest stays lazy.

Oracle: the same grammar's eager constraint (`precompute()`), whose masks every step must equal, batch or no
batch; and the tables themselves: once the batch ran within its budget, no state is left unclassified.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_lazy_engine import VOCAB, grammars
from test_precompute import fresh_constraint, masks_agree

from decc.grammars import GrammarError
from decc.grammars.contextfree import cfg_rows


@pytest.mark.parametrize("budget", [60.0, 0.0], ids=["within-budget", "no-budget"])
def test_the_batch_classifies_every_state_within_its_budget_and_masks_stay_the_same(
    budget: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cfg_rows.StateRows, "batch_seconds", budget)
    monkeypatch.setattr(
        cfg_rows, "_WALK_FROM", 1
    )  # (the small vocabulary's states have few uncertain tokens)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(grammars(), st.data())
    def check(text: str, data: st.DataObject) -> None:
        try:
            lazy, eager = fresh_constraint(text), fresh_constraint(text).precompute()
        except GrammarError:
            assume(False)
        rows = lazy.rows
        lazy.matcher().mask()  # (a first mask: only what it needs, then armed)
        assert rows.batch >= 1
        for _ in range(3):
            masks_agree(lazy, eager, data, least=1)
        if rows.batch != 2:
            return  # no later mask needed a new state
        unclassified = int((rows.row_of[: rows.n] < 0).sum())
        if budget:
            assert rows.n == lazy.rtn.n_states and unclassified == 0
            assert lazy.rtn.batch == 2  # the rest of the grammar was built first (or with the rule before)
            if rows.walks is not None:  # (kept by the compiled simulation only)
                want = [g for g, u in enumerate(rows.uncertain) if u is not None and len(u)]
                assert [g for g in want if g in rows.walks] == want  # every one with uncertain tokens walked
        else:
            # out of time at once: marked behind (the next classification goes on), unless nothing was left
            assert rows._behind or unclassified == 0

    check()


def test_a_batch_runs_once() -> None:
    c = fresh_constraint('start: "a" b | "b" d\nb: "c" d\nd: "a"+ ","')
    m = c.matcher()
    m.mask()
    assert c.rows.batch == 1
    for t in (b"a", b"c", b"a"):
        m.mask()
        assert m.advance(VOCAB.token_bytes.index(t))
    m.mask()
    assert c.rows.batch == 2
    assert (c.rows.row_of[: c.rows.n] >= 0).all()
    c.rows.arm()
    assert c.rows.batch == 2  # armed once
