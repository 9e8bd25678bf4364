"""Search policies on the toy model, whose output distributions can be enumerated exactly (tests/_exact.py).

- the KV cache rows that follow beams and particles give the same logits as full forwards;
- beam and diverse beam search equal a brute-force reference (full forwards, every candidate listed);
- SMC's weighted particles and ASAp-aligned draws converge to the exact conditional distribution, which
  per-step masking misses (test_toy_model.py documents that bias).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import pytest
import torch
from _exact import ELLIPSIS, chi_square_pvalue, exact_outcomes, kl, next_logprobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.compiler.ir import Beam
from decc.grammars.tokens.constraint import regex
from decc.runtime.aligned import AlignedTrie
from decc.runtime.beam import beam_search
from decc.runtime.decode import DecodeSession
from decc.runtime.particles import SMCRun, run_particles
from decc.runtime.sampling import SamplingParams, make_generator
from decc.runtime.step import StepRules

BOS, EOS = 3, 4
PATTERN = r"(ab|b)+a?"
MAX_TOKENS = 6
NEG_INF = float("-inf")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def lm(toy_lm):
    return toy_lm


@pytest.fixture(scope="module")
def constraint(lm):
    return regex(PATTERN, lm.tokenizer.vocabulary())


def _session(lm, ids: list[int]) -> DecodeSession:
    s = DecodeSession(lm)
    s.append(ids)
    return s


# -- the cache rows -------------------------------------------------------------------------------


def test_rows_fork_reorder_and_drop_like_full_forwards(lm) -> None:
    prompt = [BOS, 0, 1]
    s = _session(lm, prompt)
    first = s.fork(3)
    assert torch.allclose(first, first[0].expand(3, -1))
    seqs = [prompt + [t] for t in (0, 1, 2)]
    logits = s.step_rows(torch.tensor([0, 1, 2]))
    assert torch.allclose(torch.log_softmax(logits.double(), -1), next_logprobs(lm, seqs), atol=1e-5)
    for rows, tokens in (([2, 0, 0], [1, 2, 0]), ([1, 1, 2, 0], [0, 1, 2, 2]), ([3, 0], [1, 1])):
        s.select_rows(torch.tensor(rows))  # reorder with forks, grow, shrink
        seqs = [seqs[r] + [t] for r, t in zip(rows, tokens, strict=True)]
        logits = s.step_rows(torch.tensor(tokens))
        assert torch.allclose(torch.log_softmax(logits.double(), -1), next_logprobs(lm, seqs), atol=1e-5)
    s.adopt(1, seqs[1][len(prompt) :], fed=len(seqs[1]) - len(prompt) - 1)
    assert s.tokens == seqs[1]
    from decc.runtime.sampling import GREEDY

    follow = s.generate(max_tokens=3, sampling=GREEDY)
    fresh = _session(lm, seqs[1]).generate(max_tokens=3, sampling=GREEDY)
    assert follow == fresh


# -- beam search against a brute-force reference ------------------------------------------------------


def _allowed(matcher, t: int, no_eos: bool, budget: int) -> bool:
    """As the loop's mask with `budget` tokens left (this one included): a text token only when the value
    can still finish within the budget after it, if it can finish within the budget at all."""
    if t == EOS:
        return not no_eos and (matcher is None or matcher.is_accepting())
    if matcher is None:
        return True
    after = matcher.clone()
    if not after.advance(t):
        return False
    return not _finishes(matcher, budget) or _finishes(after, budget - 1)


def _finishes(matcher, k: int) -> bool:
    """Some k text tokens or fewer make the value complete (brute force over the 3 letters)."""
    if matcher.is_accepting():
        return True
    if k == 0:
        return False
    for t in range(3):
        after = matcher.clone()
        if after.advance(t) and _finishes(after, k - 1):
            return True
    return False


def reference_beam(lm, prompt, factory, width, groups, diversity, lp, early, max_tokens):
    """Beam search from its definition (see runtime/beam.py): every (beam, token) candidate listed and
    scored with a full forward of its sequence, sorted in Python; groups in order, each penalized by
    `diversity` x the number of earlier groups' beams that chose the token at this step."""
    wg = width // groups
    k = 2 * wg  # max(2, 1 + one EOS) x group width
    state = [
        {"beams": [(0.0 if i == 0 else -1e9, (), factory()) for i in range(wg)], "done": [], "open": True}
        for _ in range(groups)
    ]
    cut: list[tuple[float, tuple[int, ...], bool]] = []
    for step in range(max_tokens):
        last = step + 1 == max_tokens
        live = [b for g in state for b in g["beams"] if b[0] != NEG_INF]
        logps = dict(
            zip(
                [b[1] for b in live],
                next_logprobs(lm, [prompt + list(b[1]) for b in live]).tolist(),
                strict=True,
            )
        )
        chosen: Counter[int] = Counter()
        continues = False
        for g in state:
            cands = []
            for bi, (score, toks, m) in enumerate(g["beams"]):
                if score == NEG_INF:
                    continue
                for t in range(lm.vocab_size):
                    if _allowed(m, t, False, max_tokens - step):
                        cands.append((score + logps[toks][t] - diversity * chosen[t], bi, t))
            cands.sort(key=lambda c: -c[0])
            running, new_done = [], []
            for j, (s, bi, t) in enumerate(cands[:k]):
                _, toks, m = g["beams"][bi]
                m2 = m.clone() if m is not None else None
                if t == EOS:
                    finish, new = "eos", toks
                else:
                    if m2 is not None:
                        m2.advance(t)
                    new = (*toks, t)
                    finished = m2 is not None and m2.is_accepting() and not m2.can_continue()
                    finish = "constraint" if finished else None
                if finish is None and not last:
                    if len(running) < wg:
                        running.append((s, new, m2, t))
                    continue
                if finish is None and m2 is not None and not m2.is_accepting():
                    if j < wg:
                        cut.append((s / (step + 1) ** lp, new, s < -5e8))
                    continue
                if j < wg:
                    new_done.append((s / (step + 1) ** lp, new, s < -5e8))
            if new_done and g["open"] and not (early and len(g["done"]) == wg):
                g["done"] = sorted(g["done"] + new_done, key=lambda e: -e[0])[:wg]
            g["beams"] = [(s, new, m2) for s, new, m2, _ in running]
            g["beams"] += [(NEG_INF, (), None)] * (wg - len(running))
            chosen.update(t for s, *_, t in running if s > -5e8)  # real beams only
            continues = continues or bool(running)
            best = running[0][0] / (step + 1) ** lp if running else NEG_INF
            worst = min(e[0] for e in g["done"]) if len(g["done"]) == wg else -1e9
            g["open"] = g["open"] and best > worst
        if last or not continues or all(not g["open"] or (early and len(g["done"]) == wg) for g in state):
            break
    done = sorted((e for g in state for e in g["done"]), key=lambda e: -e[0])
    done = done or sorted(cut, key=lambda e: -e[0])[:width]
    real = [(s, toks) for s, toks, placeholder in done if not placeholder]  # not grown from a -1e9 beam
    return real or [(s, toks) for s, toks, _ in done[:1]]


@pytest.mark.parametrize(
    "width,groups,diversity,lp,early,constrained",
    [
        (2, 1, 0.0, 1.0, False, False),
        (3, 1, 0.0, 0.5, True, True),
        (4, 2, 0.5, 1.0, False, False),
        (4, 2, 2.0, 1.0, True, True),
        (6, 3, 1.0, 0.0, False, True),
    ],
)
def test_beam_search_equals_the_reference(lm, constraint, width, groups, diversity, lp, early, constrained):
    factory = constraint.matcher if constrained else (lambda: None)
    for prompt in ([BOS], [BOS, 1], [BOS, 2, 0]):
        expected = reference_beam(lm, prompt, factory, width, groups, diversity, lp, early, 5)
        params = Beam(width, lp, early, groups, diversity)
        winner, hyps = beam_search(_session(lm, prompt), params, StepRules(5, lm.eos_ids), factory())
        assert [h.token_ids for h in hyps] == [toks for _, toks in expected], prompt
        assert [h.score for h in hyps] == pytest.approx([s for s, _ in expected], rel=1e-6, abs=1e-4)
        assert tuple(winner.tokens) == expected[0][1]
        if constrained:  # every returned hypothesis is a complete value
            for h in hyps:
                m = constraint.matcher()
                assert all(m.advance(t) for t in h.token_ids) and m.is_accepting()


def test_diversity_changes_what_the_groups_find(lm) -> None:
    """With a large penalty the second group avoids the first group's tokens: more distinct hypotheses."""
    plain = beam_search(_session(lm, [BOS]), Beam(4, groups=2, diversity=0.0), StepRules(4, lm.eos_ids), None)
    diverse = beam_search(
        _session(lm, [BOS]), Beam(4, groups=2, diversity=5.0), StepRules(4, lm.eos_ids), None
    )
    first_tokens = {h.token_ids[:1] for h in diverse[1]}
    assert len(first_tokens) >= len({h.token_ids[:1] for h in plain[1]})


# -- SMC and ASAp converge to the exact conditional -------------------------------------------------


def _smc_estimate(lm, constraint, runs, n, ess, scheme, potential=None, seed=0) -> dict[str, float]:
    """Σ over runs and particles of w δ(text), normalized: the SMC estimate of the target (consistent in
    the number of runs, since each run's unnormalized weights are unbiased)."""
    stream = make_generator(seed)
    params = SMCRun(
        n, SamplingParams(greedy=False), potential=potential, ess_threshold=ess, resampling=scheme
    )
    mass: dict[str, float] = defaultdict(float)
    for _ in range(runs):
        _, hyps = run_particles(
            _session(lm, [BOS]), params, StepRules(MAX_TOKENS, lm.eos_ids), constraint.matcher(), stream
        )
        for h in hyps:
            if h.score > NEG_INF:
                assert h.finish_reason != "length"
                mass[h.text] += math.exp(h.score) / n
    total = math.fsum(mass.values())
    return {k: v / total for k, v in mass.items()}


@pytest.mark.parametrize("ess,scheme", [(0.0, "multinomial"), (0.5, "multinomial"), (0.9, "systematic")])
def test_smc_converges_to_the_exact_conditional(lm, constraint, ess, scheme) -> None:
    exact = exact_outcomes(lm, [BOS], constraint.matcher, MAX_TOKENS, "conditional")
    masked = exact_outcomes(lm, [BOS], constraint.matcher, MAX_TOKENS, "masked")
    complete = {k: v for k, v in masked.items() if not k.endswith(ELLIPSIS)}
    biased = kl({k: v / math.fsum(complete.values()) for k, v in complete.items()}, exact)  # ~0.75
    estimate = _smc_estimate(lm, constraint, runs=300, n=8, ess=ess, scheme=scheme)
    assert set(estimate) <= set(exact)
    assert kl(estimate, exact) < 0.015 < biased / 20  # measured 0.002-0.005 over seeds


def test_smc_with_a_potential_targets_the_twisted_distribution(lm, constraint) -> None:
    """potential φ (a log-weight): the target is p(x | valid) exp(φ(x)), normalized."""
    exact = exact_outcomes(lm, [BOS], constraint.matcher, MAX_TOKENS, "conditional")
    twisted = {k: v * math.exp(0.8 * k.count("a")) for k, v in exact.items()}
    total = math.fsum(twisted.values())
    twisted = {k: v / total for k, v in twisted.items()}
    estimate = _smc_estimate(
        lm,
        constraint,
        runs=300,
        n=8,
        ess=0.5,
        scheme="systematic",
        potential=lambda tr, text: 0.8 * text.count("a"),
    )
    assert kl(estimate, twisted) < 0.015 < kl(exact, twisted) / 3


def test_aligned_sampling_converges_to_the_exact_conditional(lm, constraint) -> None:
    exact = exact_outcomes(lm, [BOS], constraint.matcher, MAX_TOKENS, "conditional")
    trie = AlignedTrie()
    stream = make_generator(7)
    sampling = SamplingParams(greedy=False)
    late: Counter[str] = Counter()
    cut = 0
    for i in range(1500):
        gen = _session(lm, [BOS]).generate(
            max_tokens=MAX_TOKENS,
            sampling=sampling,
            matcher=constraint.matcher(),
            generator=stream,
            aligned=trie,
        )
        if i >= 500:
            if gen.finish_reason == "length":
                cut += 1
            else:
                late[gen.text] += 1
    assert trie.draws == 1500
    assert cut < 10  # a cut-off path is learned as a dead end (EFG 0) the first time it is drawn
    assert chi_square_pvalue(late, exact) > 1e-3
    masked = exact_outcomes(lm, [BOS], constraint.matcher, MAX_TOKENS, "masked")
    complete = {k: v for k, v in masked.items() if not k.endswith(ELLIPSIS)}
    total = math.fsum(complete.values())
    assert chi_square_pvalue(late, {k: v / total for k, v in complete.items()}) < 1e-6


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.sampled_from([(1, 1), (2, 1), (3, 1), (2, 2), (4, 2), (6, 2), (6, 3)]),
    diversity=st.sampled_from([0.0, 0.3, 1.5]),
    lp=st.sampled_from([0.0, 1.0, 2.0]),
    early=st.booleans(),
    pattern=st.sampled_from([None, PATTERN, r"[ab]*c", r"c|ab", r"a[bc]{0,3}"]),
    prompt=st.lists(st.integers(0, 2), max_size=3),
    max_tokens=st.integers(1, 5),
)
def test_beam_search_property(lm, shape, diversity, lp, early, pattern, prompt, max_tokens) -> None:
    """Any width, groups, penalty, stopping rule, constraint and budget: the reference's hypotheses."""
    width, groups = shape
    factory = regex(pattern, lm.tokenizer.vocabulary()).matcher if pattern else (lambda: None)
    ids = [BOS, *prompt]
    expected = reference_beam(lm, ids, factory, width, groups, diversity, lp, early, max_tokens)
    params = Beam(width, lp, early, groups, diversity)
    _, hyps = beam_search(_session(lm, ids), params, StepRules(max_tokens, lm.eos_ids), factory())
    assert [h.token_ids for h in hyps] == [toks for _, toks in expected]
    assert [h.score for h in hyps] == pytest.approx([s for s, _ in expected], rel=1e-6, abs=1e-4)
