"""Model-free drafts (runtime/drafts.py) checked by the model in the decode loop: values are the same
tokens with drafts as without, greedy and seeded sampling alike, in fewer forward passes."""

from __future__ import annotations

import pytest

from decc.grammars.tokens.constraint import regex
from decc.runtime.decode import DecodeSession
from decc.runtime.drafts import Drafter, SuffixStore, ngram_lookup
from decc.runtime.sampling import GREEDY, SamplingParams, make_generator

A, B, C, BOS = 0, 1, 2, 3


def test_lookup_takes_the_latest_longest_match() -> None:
    assert ngram_lookup([A, B, C, A, B], 3, 4, 2) == [C, A, B]
    assert ngram_lookup([A, B, C, B, A, B, B, A, B], 2, 4, 2) == [B, A]  # [B, A, B] last occurred at 3
    assert ngram_lookup([A, B, C], 3, 4, 2) == []
    assert ngram_lookup([A, A, A, A], 5, 4, 2) == [A]


def test_the_suffix_store_finds_the_latest_longest_match() -> None:
    store = SuffixStore(max_ngram=3, min_ngram=2, capacity=40)
    store.add([BOS, A], [B, C, A, A])
    store.add([BOS, C], [B, C, B, B])
    assert store.propose([A, B, C], 4) == [A, A]  # the 3-gram [A, B, C] beats [B, C]'s later occurrence
    assert store.propose([C, B, C], 2) == [B, B]  # the latest occurrence of [B, C]
    assert store.propose([C, C], 4) == [] and store.propose([A], 4) == []  # too short to match
    for _i in range(10):  # past capacity the oldest half goes
        store.add([BOS], [C, C, C, A])
    assert len(store) < 12 and store.propose([A, B, C], 4) == []


def test_suffix_drafts_from_an_earlier_value(toy_lm) -> None:
    """A second run of the same step drafts its predecessor's value: fewer forward passes, same tokens."""
    prompt = [BOS, C, C]
    store = SuffixStore()
    outs, calls = [], []
    for drafter in (None, Drafter(lookup=False, suffix=store), Drafter(lookup=False, suffix=store)):
        session = DecodeSession(toy_lm)
        session.append(prompt)
        gen = session.generate(max_tokens=10, sampling=GREEDY, drafter=drafter)
        if drafter is not None:
            store.add(prompt, gen.token_ids)
        outs.append(gen.token_ids)
        calls.append(session.forward_calls)
    assert outs[0] == outs[1] == outs[2] and len(outs[0]) > 3
    assert calls[2] < calls[1] == calls[0]


def test_forced_tokens_then_lookup_within_the_constraint(toy_lm) -> None:
    vocab = toy_lm.tokenizer.vocabulary()
    m = regex(r"abcab(a|c)+", vocab).matcher()
    draft = Drafter().propose([BOS], m, 20)
    assert draft[:5] == [A, B, C, A, B]
    probe = m.clone()
    assert all(probe.advance(t) for t in draft)  # every draft token is allowed, in order
    assert Drafter(lookup=False).propose([BOS], m, 20) == [A, B, C, A, B]
    assert Drafter(lookup=False).propose([BOS], m, 3) == [A, B, C]
    assert Drafter(forced=False, lookup=False).propose([BOS], m, 20) == []
    assert m.state == regex(r"abcab(a|c)+", vocab).matcher().state  # the matcher itself never moves


CASES = [
    (None, GREEDY, ()),
    (r"abcab(a|c)+b?", GREEDY, ()),
    (r"(abc)+", SamplingParams(greedy=False, seed=1), ()),
    (None, SamplingParams(greedy=False, temperature=0.7, seed=2), ()),
    (r"(ab|ba|c)+", SamplingParams(greedy=False, top_k=2, seed=3), ("ca",)),
    (None, GREEDY, ("bb",)),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_drafts_change_nothing_but_the_forward_count(toy_lm, case: int) -> None:
    pattern, sampling, stops = CASES[case]
    vocab = toy_lm.tokenizer.vocabulary()
    prompt = [BOS, A, B, C, A, B, C, A, B, B, A, C, A, B, C]
    calls = {}
    for trial in range(4):
        outs = {}
        for name, drafter in (("plain", None), ("drafts", Drafter(max_draft=4))):
            session = DecodeSession(toy_lm)
            session.append(prompt)
            s = (
                sampling
                if sampling.greedy
                else SamplingParams(**{**sampling.__dict__, "seed": sampling.seed + trial})
            )
            gen = session.generate(
                max_tokens=12,
                sampling=s,
                matcher=regex(pattern, vocab).matcher() if pattern else None,
                stop=stops,
                drafter=drafter,
            )
            after = session.generate(max_tokens=3, sampling=GREEDY)  # the session's state is intact
            outs[name] = (gen, after, session.tokens)
            calls[name] = calls.get(name, 0) + session.forward_calls
        (g1, a1, t1), (g2, a2, t2) = outs["plain"], outs["drafts"]
        assert (g1.token_ids, g1.text, g1.finish_reason) == (g2.token_ids, g2.text, g2.finish_reason)
        assert g1.logprob == pytest.approx(g2.logprob, abs=1e-4)
        assert a1.token_ids == a2.token_ids and t1 == t2
    assert calls["drafts"] <= calls["plain"]
    if pattern and pattern.startswith("abcab"):
        assert calls["drafts"] < calls["plain"]


def test_a_seeded_stream_draws_alike_with_drafts(toy_lm) -> None:
    """One stream shared across values: drafts never consume or skip a draw."""
    texts = {}
    for drafter in (None, Drafter()):
        stream = make_generator(11)
        out = []
        for _ in range(5):
            session = DecodeSession(toy_lm)
            session.append([BOS, A, B, A, B, A])
            out.append(
                session.generate(
                    max_tokens=8, sampling=SamplingParams(greedy=False), generator=stream, drafter=drafter
                ).token_ids
            )
        texts[drafter is None] = out
    assert texts[True] == texts[False]


@pytest.mark.usefixtures("one_thread")
def test_sampled_values_with_drafts_follow_the_exact_distribution(toy_lm) -> None:
    """2000 sampled values with drafts (forced tokens and lookups do fire here) against the exact
    distribution of per-step masked sampling: a chi-square test, as for sampling without drafts."""
    from collections import Counter

    from _exact import chi_square_pvalue, exact_outcomes, outcome_key

    constraint = regex(r"(ab|b)+a?", toy_lm.tokenizer.vocabulary())
    exact = exact_outcomes(toy_lm, [BOS], constraint.matcher, 6, "masked")
    counts: Counter[str] = Counter()
    stream = make_generator(314159)
    saved = 0
    store = SuffixStore()  # earlier values as drafts too, as a program's runs share them
    for _ in range(2000):
        session = DecodeSession(toy_lm)
        session.append([BOS])
        gen = session.generate(
            max_tokens=6,
            sampling=SamplingParams(greedy=False),
            matcher=constraint.matcher(),
            generator=stream,
            drafter=Drafter(suffix=store),
        )
        store.add([BOS], gen.token_ids)
        saved += len(gen.token_ids) + (gen.finish_reason == "eos") - (session.forward_calls - 1)
        counts[outcome_key(gen.text, gen.finish_reason)] += 1
    assert set(counts) <= set(exact)
    assert chi_square_pvalue(counts, exact) > 1e-3
    assert saved > 500  # the drafts did save forward passes
