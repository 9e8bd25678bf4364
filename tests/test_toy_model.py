"""The toy model (runtime/toy.py) and the exact oracle (tests/_exact.py): the decode loop's samples follow
the exactly enumerated per-step-masked distribution, which differs from the model's own distribution
conditioned on a valid output (the known bias of per-step masking)."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from _exact import ELLIPSIS, chi_square_pvalue, exact_outcomes, kl, next_logprobs, outcome_key

from decc.grammars import Vocabulary, regex
from decc.runtime.decode import DecodeSession
from decc.runtime.sampling import GREEDY, SamplingParams, make_generator
from decc.runtime.toy import ToyTokenizer, toy_language_model

BOS, EOS = 3, 4
PATTERN = r"(ab|b)+a?"
MAX_TOKENS = 6
DRAWS = 2000  # ~3 ms each (a fresh session, ~4 forwards)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def lm(toy_lm):
    return toy_lm


@pytest.fixture(scope="module")
def constraint(lm):
    return regex(PATTERN, lm.tokenizer.vocabulary())


def test_tokenizer_round_trip_and_vocabulary() -> None:
    tok = ToyTokenizer("abc")
    assert (len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (5, BOS, EOS, EOS)
    assert tok.encode("cab") == [2, 0, 1]
    assert tok.encode("cab", add_special_tokens=True) == [BOS, 2, 0, 1]
    assert tok("ba")["input_ids"] == [1, 0]
    assert tok.decode([BOS, 2, 0, EOS]) == "ca" == tok.decode([2, 0], skip_special_tokens=True)
    assert tok.decode(tok.encode("abccba")) == "abccba"
    with pytest.raises(ValueError, match="'d'"):
        tok.encode("abd")
    vocab = tok.vocabulary()
    assert Vocabulary.from_tokenizer(tok) == vocab
    assert vocab.token_bytes == (b"a", b"b", b"c", None, None)
    assert vocab.eos_ids == {EOS} and BOS in vocab.special_ids
    matcher = regex(r"[ab]*c", vocab).matcher()
    assert sorted(matcher.allowed_token_ids().tolist()) == [0, 1, 2]
    assert matcher.advance(0) and not matcher.advance(EOS) and matcher.advance(2)
    assert matcher.is_accepting() and not matcher.can_continue()


def test_same_seed_same_weights_and_context_dependent(lm) -> None:
    rng = torch.get_rng_state()
    twin = toy_language_model.__wrapped__("abc", 0, 3.0)  # built again, not from the cache
    other = toy_language_model.__wrapped__("abc", 1, 3.0)
    assert torch.equal(rng, torch.get_rng_state()), "building a toy model must not touch the global RNG"
    assert toy_language_model() is lm
    assert (lm.name, lm.vocab_size, lm.eos_ids, lm.device) == ("toy", 5, {EOS}, torch.device("cpu"))
    ours, theirs = lm.model.state_dict(), twin.model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert not torch.equal(ours["lm_head.weight"], other.model.state_dict()["lm_head.weight"])
    # Next-token distributions after every 3-character prefix: far from uniform, context-dependent, no BOS.
    prefixes = [[BOS, a, b, c] for a in range(3) for b in range(3) for c in range(3)]
    p = next_logprobs(lm, prefixes).exp()
    assert float(p[:, BOS].max()) == 0.0
    entropy = -(p[:, :BOS] * p[:, :BOS].log()).sum(1) - p[:, EOS] * p[:, EOS].log()
    assert float(entropy.mean()) < 0.8 * math.log(4)
    tv = (p[:, None, :] - p[None, :, :]).abs().sum(-1) / 2
    assert float(tv.max()) > 0.5 and float(tv.mean()) > 0.2
    assert 0.05 < float(p[:, EOS].mean()) < 0.4


def _greedy_reference(lm, prompt: list[int], n: int, matcher=None) -> list[int]:
    """Argmax of full-sequence forwards, EOS excluded, text tokens limited to what `matcher` allows."""
    ids = list(prompt)
    for _ in range(n):
        row = next_logprobs(lm, [ids])[0]
        row[EOS] = -math.inf
        if matcher is not None:
            allowed = torch.zeros_like(row, dtype=torch.bool)
            allowed[matcher.allowed_token_ids().tolist()] = True
            row[~allowed] = -math.inf
        token = int(row.argmax())
        if matcher is not None:
            assert matcher.advance(token)
        ids.append(token)
    return ids[len(prompt) :]


@pytest.mark.parametrize("text", ["", "a", "cab", "bbbca"])
def test_greedy_session_matches_full_forwards(lm, text: str) -> None:
    prompt = lm.tokenizer.encode(text, add_special_tokens=True)
    session = DecodeSession(lm)
    session.append(prompt)
    gen = session.generate(max_tokens=8, sampling=GREEDY, ignore_eos=True)
    assert list(gen.token_ids) == _greedy_reference(lm, prompt, 8)
    assert session.tokens == prompt + list(gen.token_ids)
    constraint = regex(r"[abc]*", lm.tokenizer.vocabulary())  # a mask that allows every text token
    session = DecodeSession(lm)
    session.append(prompt)
    masked = session.generate(max_tokens=8, sampling=GREEDY, matcher=constraint.matcher(), ignore_eos=True)
    assert masked.token_ids == gen.token_ids and masked.finish_reason == "length"
    constraint = regex(r"(ab|b)+c?a*", lm.tokenizer.vocabulary())
    session = DecodeSession(lm)
    session.append(prompt)
    gen = session.generate(max_tokens=6, sampling=GREEDY, matcher=constraint.matcher(), ignore_eos=True)
    assert list(gen.token_ids) == _greedy_reference(lm, prompt, 6, constraint.matcher())


def test_generation_logprob_is_the_raw_model_logprob(lm, constraint) -> None:
    gen_stream = make_generator(7)
    for _ in range(5):
        session = DecodeSession(lm)
        session.append([BOS])
        gen = session.generate(
            max_tokens=MAX_TOKENS,
            sampling=SamplingParams(greedy=False),
            matcher=constraint.matcher(),
            generator=gen_stream,
        )
        tokens = [*gen.token_ids, EOS] if gen.finish_reason == "eos" else list(gen.token_ids)
        expected = sum(float(next_logprobs(lm, [[BOS, *tokens[:i]]])[0, t]) for i, t in enumerate(tokens))
        assert gen.logprob == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("pattern", [None, r"[ab]*c", PATTERN, r"a[bc]*", r"(a|bc)*b", r"c|ab"])
@pytest.mark.parametrize("mode", ["masked", "conditional"])
def test_exact_outcomes_sum_to_one(lm, pattern: str | None, mode: str) -> None:
    constraint = regex(pattern, lm.tokenizer.vocabulary()) if pattern is not None else None
    factory = constraint.matcher if constraint is not None else lambda: None
    probs = exact_outcomes(lm, [BOS], factory, MAX_TOKENS, mode)
    assert abs(math.fsum(probs.values()) - 1.0) < 1e-9
    assert all(p > 0 for p in probs.values())
    assert any(k.endswith(ELLIPSIS) for k in probs) == (mode == "masked" and pattern not in ("c|ab",))
    if pattern == "c|ab":  # finished by the constraint: no EOS step, so masking changes nothing
        assert probs.keys() == {"c", "ab"}


def test_masked_sampling_matches_exact_distribution(lm, constraint) -> None:
    masked = exact_outcomes(lm, [BOS], constraint.matcher, MAX_TOKENS, "masked")
    counts: Counter[str] = Counter()
    stream = make_generator(20240611)
    sampling = SamplingParams(greedy=False, seed=0)
    for _ in range(DRAWS):
        session = DecodeSession(lm)  # generate appends its value to the context: one session per draw
        session.append([BOS])
        gen = session.generate(
            max_tokens=MAX_TOKENS, sampling=sampling, matcher=constraint.matcher(), generator=stream
        )
        counts[outcome_key(gen.text, gen.finish_reason)] += 1
    assert set(counts) <= set(masked)
    assert chi_square_pvalue(counts, masked) > 1e-3
    # The same draws, cut values left out, are far from the model's own distribution given a valid output.
    conditional = exact_outcomes(lm, [BOS], constraint.matcher, MAX_TOKENS, "conditional")
    complete = {k: n for k, n in counts.items() if not k.endswith(ELLIPSIS)}
    assert chi_square_pvalue(complete, conditional) < 1e-6


def test_per_step_masking_is_biased(lm, constraint) -> None:
    """Masking each step renormalizes locally, so it over-weights prefixes whose valid continuations the
    model finds unlikely: here KL(conditional || masked) is ~0.49 nats ("b" 0.55 vs 0.20)."""
    masked = exact_outcomes(lm, [BOS], constraint.matcher, MAX_TOKENS, "masked")
    conditional = exact_outcomes(lm, [BOS], constraint.matcher, MAX_TOKENS, "conditional")
    complete = {k: v for k, v in masked.items() if not k.endswith(ELLIPSIS)}
    total = math.fsum(complete.values())
    masked_complete = {k: v / total for k, v in complete.items()}
    assert masked_complete.keys() == conditional.keys()
    assert kl(conditional, masked_complete) > 0.3
    assert kl(masked, conditional) == math.inf  # the masked sampler also yields cut values
    assert kl(conditional, conditional) == 0.0
