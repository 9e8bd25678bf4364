"""Sampling filters and stopping rules of the full language: min-p and typical-p against transformers'
warpers; min_tokens, stop_regex and stop_entropy on the embedded model (a few tokens each)."""

from __future__ import annotations

import math
import re

import pytest
import torch
from transformers.generation.logits_process import MinPLogitsWarper, TypicalLogitsWarper

from decc.runtime.decode import DecodeSession
from decc.runtime.sampling import GREEDY, SamplingParams, entropy, filter_logits

NEG_INF = float("-inf")


@pytest.mark.parametrize("seed", range(5))
def test_min_p_and_typical_p_keep_the_same_sets_as_transformers(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, 300, generator=g) * 3
    for min_p in (0.05, 0.3):
        ours = filter_logits(logits[0], SamplingParams(greedy=False, min_p=min_p))
        theirs = MinPLogitsWarper(min_p=min_p)(None, logits.clone())[0]
        assert torch.equal(ours == NEG_INF, theirs == NEG_INF)
    for mass in (0.2, 0.9):
        ours = filter_logits(logits[0], SamplingParams(greedy=False, typical_p=mass))
        theirs = TypicalLogitsWarper(mass=mass)(None, logits.clone())[0]
        assert torch.equal(ours == NEG_INF, theirs == NEG_INF)


def test_entropy_is_shannon_entropy_of_what_is_sampled() -> None:
    x = torch.tensor([0.0, 0.0, NEG_INF, 0.0])
    assert math.isclose(entropy(x, GREEDY), math.log(3), rel_tol=1e-6)
    y = torch.tensor([1.0, 0.0, NEG_INF, 0.5])  # top-k keeps ties, so no ties here
    assert math.isclose(entropy(y, SamplingParams(greedy=False, top_k=1)), 0.0, abs_tol=1e-6)


def _session(lm, text: str) -> DecodeSession:
    prompt = lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )
    s = DecodeSession(lm)
    s.append(lm.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    return s


@pytest.mark.model
def test_stop_regex_cuts_at_the_first_match(lm) -> None:
    free = _session(lm, "List three fruits, one per line.").generate(max_tokens=24, sampling=GREEDY)
    m = re.search(r"[aeiou]{1}n", free.text)
    assert m is not None, free.text
    gen = _session(lm, "List three fruits, one per line.").generate(
        max_tokens=24, sampling=GREEDY, stop_regex=r"[aeiou]{1}n"
    )
    assert gen.finish_reason == "stop" and gen.text == free.text[: m.start()]


@pytest.mark.model
def test_min_tokens_holds_eos_back_and_entropy_stops(lm) -> None:
    short = _session(lm, "Say OK.").generate(max_tokens=24, sampling=GREEDY)
    assert short.finish_reason == "eos" and len(short.token_ids) < 20
    longer = _session(lm, "Say OK.").generate(
        max_tokens=30, sampling=GREEDY, min_tokens=len(short.token_ids) + 3
    )
    assert len(longer.token_ids) >= len(short.token_ids) + 3
    assert longer.token_ids[: len(short.token_ids)] == short.token_ids
    # Entropy is never below 0 nats: 'above 0 for 2 steps' stops after exactly 2 - 1 = 1 sampled token;
    # 'below 0' never triggers.
    gen = _session(lm, "Say OK.").generate(max_tokens=8, sampling=GREEDY, stop_entropy=(True, 0.0, 2))
    assert gen.finish_reason == "entropy" and len(gen.token_ids) == 1
    gen = _session(lm, "Say OK.").generate(max_tokens=4, sampling=GREEDY, stop_entropy=(False, 0.0, 1))
    assert gen.finish_reason != "entropy"


@pytest.mark.model
def test_completing_on_the_last_allowed_token_is_a_completion(lm) -> None:
    from decc.grammars import Vocabulary, regex

    vocab = Vocabulary.from_tokenizer(lm.tokenizer, size=lm.vocab_size, eos_ids=lm.eos_ids)
    for budget in (2, 3):  # digits are single tokens: two of them complete the value on token 2
        gen = _session(lm, "Two digits: ").generate(
            max_tokens=budget, sampling=GREEDY, matcher=regex(r"[0-9]{2}", vocab).matcher()
        )
        assert len(gen.text) == 2 and gen.finish_reason == "constraint", (budget, gen)
