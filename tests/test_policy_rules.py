"""Every search policy x stop rule x mode combination is either refused by `decc check` (at the offending
option) or runs: nothing `decc check` accepts may be refused at run time (the oracle is the runtime itself,
on the toy model)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import decc
from decc.compiler.plan import lower_to_plan
from decc.errors import DeccError
from decc.runtime.executor import execute

POLICIES = (
    "greedy",
    "sample(seed=1)",
    "beam(width=2)",
    "diverse_beam(width=2, groups=2)",
    "best_of(n=2)",
    "first_finish(n=2)",
    "smc(particles=2)",
)
RULES = (
    "stop_entropy: above(0.5)",
    "stop_entropy: below(0.1, steps=2)",
    'stop_regex: r"ba"',
    'stop: "c"',
    "eos: false",
    "mode: aligned",
    'where: length(min=1, max=3, unit="tokens")',
)

pytestmark = pytest.mark.usefixtures("one_thread")


def program(policy: str, rules: tuple[str, ...]) -> str:
    where = "" if any(r.startswith("where") for r in rules) else 'where: regex(r"[ab]{1,4}")'
    return f'"ab"\ngen x {{ {where} search: {policy} {" ".join(rules)} max_tokens: 4 }}\n'


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(POLICIES),
    st.lists(st.sampled_from(RULES), max_size=2, unique_by=lambda r: r.split(":")[0]),
)
def test_what_check_accepts_runs(toy_lm, policy: str, rules: list[str]) -> None:
    src = program(policy, tuple(rules))
    try:
        prog = decc.loads(src, "p.dec", model="toy")
    except DeccError as e:  # refused: at the position of an option the user wrote
        assert e.span is not None and e.span.line == 2, e.render()
        return
    tok = toy_lm.tokenizer
    plan = lower_to_plan(prog.ir, tok, tok.vocabulary())
    execute(plan, toy_lm, {})  # must not raise


@pytest.mark.parametrize("policy", ["beam(width=2)", "diverse_beam(width=4, groups=2)"])
def test_beam_stop_entropy_refused_at_the_option(policy: str) -> None:
    src = f'"ab"\ngen x {{ search: {policy}\n  stop_entropy: above(2.5) }}\n'
    with pytest.raises(DeccError) as info:
        decc.loads(src, "p.dec")
    span = info.value.span
    assert span is not None and (span.line, span.col) == (3, 3)
    assert span.source is not None and span.source.text[span.start : span.end] == "stop_entropy"
    assert policy.split("(")[0] in info.value.message
