"""The optimization passes change how many forward passes a run takes, never what it outputs: every
example program gives the same values and tokens with the passes on and off (greedy steps, and sampled
steps with a seed: the draw is a function of logits, mask and key, so it is the same with drafts)."""

from __future__ import annotations

from pathlib import Path

import pytest

import decc
from decc.compiler import ir
from decc.compiler.pipeline import OPTIMIZATIONS, compile_program
from decc.dsl import parse_file

EXAMPLES = sorted(Path(__file__).resolve().parent.parent.joinpath("examples").glob("*.dec"))


def _comparable(program: decc.Program) -> bool:
    """Some step drafts, and every drafting step is deterministic (greedy or seeded)."""
    drafting = [op for op in program.ir.generates() if op.draft]
    return bool(drafting) and all(
        isinstance(op.search, ir.Sampling) and (op.search.greedy or op.search.seed is not None)
        for op in drafting
    )


@pytest.mark.model
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_are_the_same_with_and_without_passes(path: Path) -> None:
    opt = decc.load(path)
    if not _comparable(opt):
        pytest.skip("no deterministic step the passes touch")
    plain = decc.load(path, no_opt=OPTIMIZATIONS)
    assert not any(op.draft for op in plain.ir.generates())
    a, b = opt.run(), plain.run()
    assert a.values == b.values
    assert a.token_ids == b.token_ids
    assert a.logprob == pytest.approx(b.logprob, abs=1e-3)
    assert a.forward_passes <= b.forward_passes


def test_unknown_pass_names_are_user_errors() -> None:
    with pytest.raises(decc.DeccError, match="no optimization pass named 'fast'"):
        decc.loads("gen x { max_tokens: 2 }", no_opt=["fast"])


AUTOMATON_PASSES = ("product", "prune", "minimize")


@pytest.mark.model
@pytest.mark.parametrize("name", AUTOMATON_PASSES)
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_are_the_same_without_each_automaton_pass(path: Path, name: str) -> None:
    """Where a pass changes an automaton, the run without it (the lazy product, dead states cut when
    lifted to tokens, an unminimized DFA) gives the same values and tokens."""
    notes: list[str] = []
    compile_program(parse_file(path), remarks=notes)
    if f"{name}: nothing to do" in notes:
        pytest.skip(f"{name} changes nothing here")
    opt, plain = decc.load(path), decc.load(path, no_opt=[name])
    if not all(
        isinstance(op.search, ir.Sampling) and (op.search.greedy or op.search.seed is not None)
        for op in opt.ir.generates()
    ):
        pytest.skip("a search policy or an unseeded draw: compared on their own tests")
    a, b = opt.run(), plain.run()
    assert a.values == b.values
    assert a.token_ids == b.token_ids
