"""The optimization passes change how many forward passes a run takes, never what it outputs: every
example program gives the same values and tokens with the passes on and off (greedy steps, and sampled
steps with a seed: the draw is a function of logits, mask and key, so it is the same with drafts)."""

from __future__ import annotations

from pathlib import Path

import pytest

import decc
from decc.compiler import ir
from decc.compiler.pipeline import OPTIMIZATIONS

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
