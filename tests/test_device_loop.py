"""Constraint state on the device (runtime/device_tables.py, runtime/device_loop.py): the tables agree with
the host matcher step for step, and the device loop decodes what the host loop decodes, row for row."""

from __future__ import annotations

import random

import pytest
import torch

from decc.grammars.tokens.constraint import regex
from decc.runtime.batch import RowSpec, generate_rows
from decc.runtime.device_tables import DeviceTables, supports
from decc.runtime.kernels.bitmask import unpack_bitmask
from decc.runtime.sampling import GREEDY, SamplingParams, make_generator
from decc.runtime.step import StepRules

BOS = 3
PATTERNS = [r"(ab|b)+a?", r"[ab]*c", r"c|ab", r"a[bc]{0,3}", r"(abc)+", r"[abc]{2,5}"]


def test_tables_follow_the_matchers(toy_lm) -> None:
    """Random walks in several automata at once: the gathered masks are the matchers' bitmasks (EOS
    where accepting), the advanced states are the matchers' states, EOS goes to DONE."""
    vocab = toy_lm.tokenizer.vocabulary()
    constraints = [regex(p, vocab) for p in PATTERNS]
    tables = DeviceTables([c.automaton for c in constraints], toy_lm.vocab_size, toy_lm.eos_ids, "cpu")
    rng = random.Random(0)
    eos = min(toy_lm.eos_ids)
    for _ in range(30):
        matchers = [c.matcher() for c in constraints] + [None]
        state = torch.tensor([tables.start(m) for m in matchers])
        for _ in range(8):
            rows = tables.masks(state, torch.zeros(len(matchers), dtype=torch.bool))
            allowed = unpack_bitmask(rows, toy_lm.vocab_size)
            picks = []
            for i, m in enumerate(matchers):
                if m is None:
                    assert bool(allowed[i].all())
                    picks.append(rng.randrange(toy_lm.vocab_size))
                    continue
                if m.is_terminated():
                    assert allowed[i].nonzero().flatten().tolist() == [eos]
                    picks.append(eos)
                    continue
                want = set(m.allowed_token_ids().tolist()) | ({eos} if m.is_accepting() else set())
                assert set(allowed[i].nonzero().flatten().tolist()) == want
                picks.append(rng.choice(sorted(want)))
            state, was_eos = tables.advance(state, torch.tensor(picks))
            for i, m in enumerate(matchers):
                if m is None:
                    assert int(state[i]) == (tables.done if picks[i] == eos else tables.free)
                    if picks[i] == eos:
                        matchers[i] = None
                        state[i] = tables.free
                    continue
                m.advance(picks[i])
                assert bool(was_eos[i]) == (picks[i] == eos)
                expect = tables.done if m.is_terminated() else tables.start(m)
                assert int(state[i]) == expect
                assert bool(tables.final[state[i]]) == (
                    not m.is_terminated() and m.is_accepting() and not m.can_continue()
                )
    no_eos = tables.masks(torch.tensor([tables.free]), torch.tensor([True]))
    assert not bool(unpack_bitmask(no_eos, toy_lm.vocab_size)[0, eos])


@pytest.mark.parametrize("trial", range(3))
def test_device_loop_equals_host_loop(toy_lm, trial: int) -> None:
    lm = toy_lm
    vocab = lm.tokenizer.vocabulary()
    patterns = [None, *PATTERNS, None]
    samplings = [
        GREEDY,
        SamplingParams(greedy=False, seed=1),
        SamplingParams(greedy=False, temperature=0.7, top_k=3, seed=2),
        SamplingParams(greedy=False, top_p=0.8, seed=3),
        GREEDY,
        SamplingParams(greedy=False, min_p=0.1, seed=4),
        SamplingParams(greedy=False, temperature=1.5, seed=5),
        SamplingParams(greedy=False, seed=None),
    ]
    rules = [
        StepRules(6, lm.eos_ids),
        StepRules(5, lm.eos_ids, min_tokens=2),
        StepRules(7, lm.eos_ids),
        StepRules(4, lm.eos_ids, ignore_eos=True),
        StepRules(3, lm.eos_ids),
        StepRules(9, lm.eos_ids, min_tokens=1),
        StepRules(8, lm.eos_ids),
        StepRules(6, lm.eos_ids, ignore_eos=True),
    ]
    contexts = [[BOS] + [random.Random(trial * 10 + i).randrange(3) for _ in range(i % 4)] for i in range(8)]

    def specs() -> list[RowSpec]:
        out = []
        for ctx, p, s, r in zip(contexts, patterns, samplings, rules, strict=True):
            if not s.greedy:
                s = SamplingParams(**{**s.__dict__, "seed": (s.seed or 77) + 100 * trial})
            gen = None if s.greedy else make_generator(s.seed)
            out.append(RowSpec(ctx, r, s, regex(p, vocab).matcher() if p else None, gen))
        return out

    host_specs, dev_specs = specs(), specs()
    assert all(supports(s.matcher) for s in dev_specs)
    host = generate_rows(lm, host_specs, on_device=False)
    dev = generate_rows(lm, dev_specs, on_device=True)
    for a, b in zip(host, dev, strict=True):
        assert (a.token_ids, a.text, a.finish_reason) == (b.token_ids, b.text, b.finish_reason)
        assert a.logprob == pytest.approx(b.logprob, abs=1e-5)
    for a, b in zip(host_specs, dev_specs, strict=True):  # the streams moved on by as many draws
        assert (a.generator.count if a.generator else 0) == (b.generator.count if b.generator else 0)
    assert {g.finish_reason for g in host} >= {"length", "constraint"}
