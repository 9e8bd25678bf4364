"""The one decode step (runtime/step.py) as each loop takes it: the one-stream loop, beam search, the three
particle policies, the batched host loop and the device loop all hand their drawn tokens to `Track.extend`
(and ask `Track.entropy_stop`), and the step's rules hold in every one of them, judged by oracles that do
not use decc (Python's `re`, string search, token counts)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

import pytest

from decc.compiler.plan import Beam
from decc.grammars.tokens.constraint import regex
from decc.runtime.batch import RowSpec, generate_rows
from decc.runtime.beam import beam_search
from decc.runtime.decode import DecodeSession
from decc.runtime.particles import BestOfRun, FirstFinishRun, SMCRun, run_particles
from decc.runtime.sampling import SamplingParams, make_generator
from decc.runtime.step import StepRules, Track

BOS = 3
SAMPLE = SamplingParams(greedy=False)

pytestmark = pytest.mark.usefixtures("one_thread")


class Value(NamedTuple):
    tokens: tuple[int, ...]
    text: str
    finish: str
    complete: bool


def _session(lm, ids: list[int]) -> DecodeSession:
    s = DecodeSession(lm)
    s.append(ids)
    return s


def _stream(lm, rules: StepRules, matcher: Any, seed: int) -> Value:
    g = _session(lm, [BOS]).generate(
        max_tokens=rules.max_tokens,
        sampling=SAMPLE,
        matcher=matcher,
        stop=rules.stops,
        ignore_eos=rules.ignore_eos,
        generator=make_generator(seed),
        min_tokens=rules.min_tokens,
        stop_entropy=rules.stop_entropy,
    )
    return Value(g.token_ids, g.text, g.finish_reason, g.complete)


def _beam(lm, rules: StepRules, matcher: Any, seed: int) -> Value:
    track, _ = beam_search(_session(lm, [BOS]), Beam(2), rules, matcher)
    g = track.generation(lm.tokenizer)
    return Value(g.token_ids, g.text, g.finish_reason, g.complete)


def _particles(policy: Any) -> Callable[[Any, StepRules, Any, int], Value]:
    def run(lm, rules: StepRules, matcher: Any, seed: int) -> Value:
        track, _ = run_particles(_session(lm, [BOS]), policy, rules, matcher, make_generator(seed))
        g = track.generation(lm.tokenizer)
        return Value(g.token_ids, g.text, g.finish_reason, g.complete)

    return run


def _rows(on_device: bool) -> Callable[[Any, StepRules, Any, int], Value]:
    def run(lm, rules: StepRules, matcher: Any, seed: int) -> Value:
        spec = RowSpec([BOS], rules, SAMPLE, matcher, make_generator(seed))
        (g,) = generate_rows(lm, [spec], on_device=on_device)
        return Value(g.token_ids, g.text, g.finish_reason, g.complete)

    return run


LOOPS: dict[str, Callable[[Any, StepRules, Any, int], Value]] = {
    "stream": _stream,
    "beam": _beam,
    "best_of": _particles(BestOfRun(3, SAMPLE, lambda track, text: track.logprob)),
    "first_finish": _particles(FirstFinishRun(3, SAMPLE)),
    "smc": _particles(SMCRun(3, SAMPLE)),
    "batch": _rows(on_device=False),
    "device": _rows(on_device=True),
}
TEXT_LOOPS = [k for k in LOOPS if k != "device"]  # the device loop takes no stop strings or entropy rule
ENTROPY_LOOPS = [k for k in TEXT_LOOPS if k != "beam"]  # beam with stop_entropy is refused by decc check


@pytest.fixture
def calls(monkeypatch) -> dict[str, int]:
    """How often the loop under test called the step's `Track.extend` and `Track.entropy_stop`."""
    count = {"extend": 0, "entropy_stop": 0}
    for name in count:
        original = getattr(Track, name)

        def spy(self, *args, _original=original, _name=name):
            count[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(Track, name, spy)
    return count


@pytest.mark.parametrize("loop", list(LOOPS))
def test_eos_only_where_the_constraint_accepts_and_after_min_tokens(toy_lm, calls, loop: str) -> None:
    pattern, min_tokens, max_tokens = r"(ab|b)+a?", 3, 6
    rules = StepRules(max_tokens, toy_lm.eos_ids, min_tokens=min_tokens)
    constraint = regex(pattern, toy_lm.tokenizer.vocabulary())
    finishes = set()
    for seed in range(6):
        v = LOOPS[loop](toy_lm, rules, constraint.matcher(), seed)
        finishes.add(v.finish)
        assert v.text == toy_lm.tokenizer.decode(v.tokens)
        if v.finish == "eos":
            assert re.fullmatch(pattern, v.text) and len(v.tokens) >= min_tokens, v
        else:
            assert v.finish == "length" and len(v.tokens) == max_tokens, v
            assert v.complete == bool(re.fullmatch(pattern, v.text)), v
            assert re.fullmatch(r"(ab|b)*a?b?", v.text), v  # a prefix of the language
    assert "eos" in finishes  # the rule was exercised
    assert calls["extend"] >= 6 * min_tokens


@pytest.mark.parametrize("loop", list(LOOPS))
def test_a_constraint_that_allows_nothing_more_finishes_the_value(toy_lm, calls, loop: str) -> None:
    """Also on the last token max_tokens allows: a completion, not a cut."""
    constraint = regex("abc", toy_lm.tokenizer.vocabulary())
    for max_tokens in (3, 5):
        rules = StepRules(max_tokens, toy_lm.eos_ids, ignore_eos=True)
        v = LOOPS[loop](toy_lm, rules, constraint.matcher(), 0)
        assert (v.text, v.finish, v.complete) == ("abc", "constraint", True), v
    assert calls["extend"] >= 6


@pytest.mark.parametrize("loop", TEXT_LOOPS)
def test_a_stop_string_cuts_the_value(toy_lm, calls, loop: str) -> None:
    rules = StepRules(10, toy_lm.eos_ids, ignore_eos=True, stops=("b", "ca"))
    finishes = set()
    for seed in range(4):
        v = LOOPS[loop](toy_lm, rules, None, seed)
        finishes.add(v.finish)
        assert "b" not in v.text and "ca" not in v.text and v.text == toy_lm.tokenizer.decode(v.tokens), v
        assert v.finish == "stop" or len(v.tokens) == 10, v
    assert "stop" in finishes
    assert calls["extend"] > 0


@pytest.mark.parametrize("loop", ENTROPY_LOOPS)
def test_the_entropy_rule_ends_the_value_before_a_draw(toy_lm, calls, loop: str) -> None:
    """Entropy above 0 nats for one step: every value ends at once, with nothing drawn."""
    rules = StepRules(5, toy_lm.eos_ids, stop_entropy=(True, 0.0, 1))
    v = LOOPS[loop](toy_lm, rules, None, 0)
    assert (v.tokens, v.finish) == ((), "entropy"), v
    assert calls["entropy_stop"] > 0
    later = replace(rules, stop_entropy=(True, 0.0, 3))  # three steps running: three tokens first
    v = LOOPS[loop](toy_lm, later, None, 0)
    assert (len(v.tokens), v.finish) == (2, "entropy") or v.finish == "eos", v


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
