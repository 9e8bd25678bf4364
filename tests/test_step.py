"""The one decode step (runtime/step.py) as each loop takes it: the step's rules hold in the one-stream loop,
beam search, the particle policies, the batched host loop and the device loop alike."""

from __future__ import annotations

import pytest

from decc.grammars.tokens.constraint import regex
from decc.runtime.decode import DecodeSession
from decc.runtime.particles import SMCRun, run_particles
from decc.runtime.sampling import SamplingParams, make_generator
from decc.runtime.tracks import StepRules

BOS = 3

pytestmark = pytest.mark.usefixtures("one_thread")


def _session(lm, ids: list[int]) -> DecodeSession:
    s = DecodeSession(lm)
    s.append(ids)
    return s


def test_an_smc_potential_sees_each_particles_text_as_it_grows(toy_lm) -> None:
    """The potential twists the weights on prefixes: it must be given the prefix's text, not an empty one."""
    seen: list[tuple[int, str]] = []

    def potential(track, text: str) -> float:
        if track.finish is None:
            seen.append((len(track.tokens), text))
        return 0.0

    lm = toy_lm
    matcher = regex(r"(ab|b)+a?", lm.tokenizer.vocabulary()).matcher()
    policy = SMCRun(4, SamplingParams(greedy=False), potential=potential)
    run_particles(_session(lm, [BOS]), policy, StepRules(6, lm.eos_ids), matcher, make_generator(1))
    assert seen
    for n, text in seen:
        assert len(text) >= n, (n, text)  # every toy token spells at least one character
