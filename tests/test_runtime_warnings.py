"""A run prints nothing of its own accord: no transformers deprecation warning (the KV cache goes to the
forward under the keyword the installed transformers documents), single and batched."""

from __future__ import annotations

import warnings

import pytest

import decc
from decc.compiler.plan import lower_to_plan
from decc.runtime.batch import execute_batch
from decc.runtime.executor import execute

pytestmark = pytest.mark.usefixtures("one_thread")

SRC = '"ab"\ngen x { where: regex(r"[ab]{1,3}") }\n"c"\ngen y { search: sample(seed=3) max_tokens: 3 }\n'


def test_runs_issue_no_warnings(toy_lm) -> None:
    tok = toy_lm.tokenizer
    plan = lower_to_plan(decc.loads(SRC).ir, tok, tok.vocabulary())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        single = execute(plan, toy_lm, {})
        batched = execute_batch(plan, toy_lm, [{}, {}], batch_size=2)
    assert [str(w.message) for w in caught] == []
    assert [r.values for r in batched] == [single.values, single.values]
