"""The decode loop (against transformers' own generate), constraints, stop strings, and sampling."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from decc.errors import InternalError
from decc.runtime.decode import DecodeSession, Generation
from decc.runtime.kernels.bitmask import pack_bitmask, unpack_bitmask
from decc.runtime.sampling import (
    GREEDY,
    SamplingParams,
    Stream,
    draw_rows,
    filter_logits,
    make_generator,
    sample,
)

N = 24
NEG_INF = float("-inf")


def chat_ids(lm, text: str) -> list[int]:
    prompt = lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )
    return lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]


def plain_ids(lm, text: str) -> list[int]:
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"]


def session_with(lm, ids: list[int]) -> DecodeSession:
    session = DecodeSession(lm)
    session.append(ids)
    return session


def greedy(lm, ids: list[int], n: int = N, **kwargs) -> Generation:
    return session_with(lm, ids).generate(max_tokens=n, sampling=GREEDY, **kwargs)


# -- the loop against model.generate ------------------------------------------------------------


@pytest.mark.model
@pytest.mark.parametrize(
    "kind,text",
    [
        ("chat", "Name three colours of the rainbow."),
        ("plain", "The capital of France is Paris. The capital of"),
    ],
)
def test_greedy_matches_transformers_generate(lm, kind: str, text: str) -> None:
    ids = chat_ids(lm, text) if kind == "chat" else plain_ids(lm, text)
    session = session_with(lm, ids)
    gen = session.generate(max_tokens=N, sampling=GREEDY)
    with torch.inference_mode():
        input_ids = torch.tensor([ids])
        out = lm.model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=False,
            max_new_tokens=N,
            pad_token_id=lm.tokenizer.pad_token_id,
        )
    expected = out[0, len(ids) :].tolist()
    if gen.finish_reason == "eos":
        assert expected == [*gen.token_ids, expected[-1]] and expected[-1] in lm.eos_ids
    else:
        assert gen.finish_reason == "length" and list(gen.token_ids) == expected and len(expected) == N
    assert session.tokens == ids + list(gen.token_ids)  # EOS never joins the context
    assert gen.text == lm.tokenizer.decode(list(gen.token_ids))


@pytest.mark.model
def test_logprob_is_raw_model_log_probability(lm) -> None:
    ids = plain_ids(lm, "One, two, three, four,")
    gen = greedy(lm, ids, 8)
    full = torch.tensor([ids + list(gen.token_ids)])
    with torch.inference_mode():
        logp = torch.log_softmax(lm.model(full).logits[0].float(), -1)
    expected = sum(float(logp[len(ids) - 1 + i, t]) for i, t in enumerate(gen.token_ids))
    assert gen.finish_reason == "length" and len(gen.token_ids) == 8
    assert math.isclose(gen.logprob, expected, abs_tol=1e-3)


@pytest.mark.model
def test_ignore_eos_runs_to_length_and_context_grows_lazily(lm) -> None:
    ids = chat_ids(lm, "Say just: yes")
    first = greedy(lm, ids, 12)
    assert first.finish_reason == "eos"  # the instruct model ends a one-word answer quickly
    forced = greedy(lm, ids, len(first.token_ids) + 3, ignore_eos=True)
    assert forced.finish_reason == "length" and len(forced.token_ids) == len(first.token_ids) + 3
    assert forced.token_ids[: len(first.token_ids)] == first.token_ids
    assert not set(forced.token_ids) & lm.eos_ids

    # After an EOS finish, appending and generating again continues the same context.
    session = session_with(lm, ids)
    session.generate(max_tokens=12, sampling=GREEDY)
    more = plain_ids(lm, "\nAgain:")
    session.append(more)
    assert session.tokens[-len(more) :] == more
    again = session.generate(max_tokens=4, sampling=GREEDY)
    assert again.token_ids == greedy(lm, session.tokens[: -len(again.token_ids)], 4).token_ids


@pytest.mark.model
def test_empty_context_and_bad_arguments(lm) -> None:
    session = DecodeSession(lm)
    with pytest.raises(InternalError):
        session.generate(max_tokens=1, sampling=GREEDY)
    with pytest.raises(InternalError):
        session.append([lm.vocab_size])
    session.append([1])
    with pytest.raises(ValueError):
        session.generate(max_tokens=-1, sampling=GREEDY)
    with pytest.raises(ValueError):
        session.generate(max_tokens=1, sampling=GREEDY, stop=[""])
    assert session.generate(max_tokens=0, sampling=GREEDY) == Generation((), "", 0.0, "length")


# -- constraints --------------------------------------------------------------------------------


class DigitsMatcher:
    """A tiny matcher: between `low` and `high` digit tokens, then nothing. Records what it allowed."""

    def __init__(self, lm, low: int, high: int) -> None:
        vocab = lm.tokenizer.get_vocab()
        self.digits = {i for s, i in vocab.items() if s.isascii() and s.isdigit()}
        allowed = torch.zeros(lm.vocab_size, dtype=torch.bool)
        allowed[sorted(self.digits)] = True
        self.packed = pack_bitmask(allowed)
        self.vocab_size = lm.vocab_size
        self.low, self.high, self.count = low, high, 0
        self.fills = 0
        self.row: torch.Tensor | None = None
        self.seen: list[torch.Tensor] = []  # the final mask (EOS policy applied) of each advanced step

    def fill_bitmask(self, row: torch.Tensor, budget: int | None = None) -> None:
        assert not row.any()  # the loop hands over a zeroed row
        if self.count < self.high:
            row.copy_(self.packed)
        self.fills += 1
        self.row = row

    def advance(self, token_id: int) -> bool:
        assert self.row is not None
        allowed = unpack_bitmask(self.row, self.vocab_size)
        assert allowed[token_id]  # the loop only samples what the final mask allows
        self.seen.append(allowed)
        if token_id not in self.digits or self.count >= self.high:
            return False
        self.count += 1
        return True

    def is_accepting(self) -> bool:
        return self.count >= self.low

    def can_continue(self) -> bool:
        return self.count < self.high


@pytest.mark.model
def test_matcher_constrains_every_token_and_finishes(lm) -> None:
    ids = chat_ids(lm, "Write a long story about a dragon.")
    matcher = DigitsMatcher(lm, low=3, high=3)
    session = session_with(lm, ids)
    gen = session.generate(max_tokens=10, sampling=GREEDY, matcher=matcher)
    assert gen.finish_reason == "constraint"
    assert len(gen.token_ids) == 3 and all(t in matcher.digits for t in gen.token_ids)
    assert gen.text.isdigit()
    assert matcher.fills == 3  # no step (and no forward) after the matcher finished
    for allowed in matcher.seen:  # EOS stays masked until the matcher accepts
        assert not allowed[sorted(lm.eos_ids)].any()
    assert session.tokens == ids + list(gen.token_ids)

    # Already finished before the first step: nothing sampled.
    assert session.generate(max_tokens=5, sampling=GREEDY, matcher=matcher) == Generation(
        (), "", 0.0, "constraint"
    )

    # Running out of tokens first; sampling under the mask too.
    matcher = DigitsMatcher(lm, low=1, high=50)
    params = SamplingParams(greedy=False, temperature=1.5, seed=7)
    gen = session_with(lm, ids).generate(max_tokens=5, sampling=params, matcher=matcher, ignore_eos=True)
    assert gen.finish_reason == "length" and all(t in matcher.digits for t in gen.token_ids)
    assert all(not a[sorted(lm.eos_ids)].any() for a in matcher.seen)  # ignore_eos keeps EOS masked


@pytest.mark.model
def test_matcher_allows_eos_once_accepting(lm) -> None:
    ids = chat_ids(lm, "What is 2+2? Reply with the number only.")
    matcher = DigitsMatcher(lm, low=1, high=20)
    gen = greedy(lm, ids, 10, matcher=matcher)
    assert gen.finish_reason == "eos" and gen.text.isdigit() and len(gen.token_ids) < 10
    assert all(a[sorted(lm.eos_ids)].all() for a in matcher.seen[1:])


@pytest.mark.model
def test_matcher_bugs_are_internal_errors(lm) -> None:
    ids = plain_ids(lm, "Numbers:")

    class Refuses(DigitsMatcher):
        def advance(self, token_id: int) -> bool:
            return False

    with pytest.raises(InternalError, match="refused"):
        greedy(lm, ids, 3, matcher=Refuses(lm, 1, 3))

    class Empty(DigitsMatcher):
        def fill_bitmask(self, row: torch.Tensor, budget: int | None = None) -> None:
            pass

    with pytest.raises(InternalError, match="masked"):
        greedy(lm, ids, 3, matcher=Empty(lm, 1, 3))


# -- stop strings -------------------------------------------------------------------------------


@pytest.mark.model
def test_stop_strings_cut_and_rewrite_context(lm) -> None:
    ids = chat_ids(lm, "Write a haiku about the sea.")
    free = greedy(lm, ids, N)
    text = free.text
    pieces = [lm.tokenizer.decode(list(free.token_ids[:i])) for i in range(len(free.token_ids) + 1)]
    # A stop string that starts exactly on a token boundary, and one that starts inside a token.
    boundary_at = len(pieces[4])
    boundary_stop = text[boundary_at : boundary_at + 4]
    mid_at = next(len(p) + 2 for p, q in zip(pieces[5:], pieces[6:], strict=False) if len(q) - len(p) >= 4)
    mid_stop = text[mid_at : mid_at + 3]
    assert text.find(boundary_stop) == boundary_at and text.find(mid_stop) == mid_at

    for stop, cut_at in ((boundary_stop, boundary_at), (mid_stop, mid_at)):
        session = session_with(lm, ids)
        gen = session.generate(max_tokens=N, sampling=GREEDY, stop=[stop, "never-appears-xyz"])
        assert gen.finish_reason == "stop"
        assert gen.text == text[:cut_at] and stop not in gen.text
        assert session.tokens == ids + list(gen.token_ids)
        assert lm.tokenizer.decode(list(gen.token_ids)) == gen.text
        # The KV cache was cropped consistently: continuing equals a fresh session on the same context.
        context = session.tokens
        assert session.generate(max_tokens=3, sampling=GREEDY).token_ids == greedy(lm, context, 3).token_ids

    # With several stop strings the earliest occurrence wins.
    gen = greedy(lm, ids, N, stop=[mid_stop, boundary_stop])
    assert gen.text == text[: min(text.find(mid_stop), text.find(boundary_stop))]


# -- sampling -------------------------------------------------------------------------------------


@pytest.mark.model
def test_seeded_sampling_is_reproducible_and_top_k_1_is_greedy(lm) -> None:
    ids = chat_ids(lm, "Tell me a joke.")
    params = SamplingParams(greedy=False, temperature=1.3, top_p=0.95, seed=1234)
    first = session_with(lm, ids).generate(max_tokens=12, sampling=params, ignore_eos=True)
    second = session_with(lm, ids).generate(max_tokens=12, sampling=params, ignore_eos=True)
    assert first == second
    other = session_with(lm, ids).generate(
        max_tokens=12,
        sampling=SamplingParams(greedy=False, temperature=1.3, top_p=0.95, seed=99),
        ignore_eos=True,
    )
    assert other.token_ids != first.token_ids
    top1 = SamplingParams(greedy=False, temperature=0.7, top_k=1, seed=None)
    greedy_like = session_with(lm, ids).generate(max_tokens=12, sampling=top1, ignore_eos=True)
    assert greedy_like.token_ids == greedy(lm, ids, 12, ignore_eos=True).token_ids


def test_sampling_params_are_validated() -> None:
    SamplingParams(greedy=False, temperature=0.5, top_k=10, top_p=0.9, seed=0)
    for kwargs in (
        {"temperature": 0.0},
        {"temperature": -1.0},
        {"temperature": float("nan")},
        {"top_k": -1},
        {"top_k": 2.5},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"seed": -1},
        {"seed": "1"},
    ):
        with pytest.raises(ValueError):
            SamplingParams(greedy=False, **kwargs)
    with pytest.raises(ValueError):
        SamplingParams(greedy=1)  # type: ignore[arg-type]


def test_streams_key_draws_by_seed_and_count() -> None:
    """A stream's draws depend on its seed and draw count only: two streams with one seed agree, a row's
    token does not depend on its batch position, and unseeded streams differ."""
    a, b = make_generator(5), make_generator(5)
    assert (a.key(), a.key()) == ((5, 0), (5, 1)) and b.key() == (5, 0)
    assert torch.equal(torch.rand(4, generator=a.torch_generator), torch.rand(4, generator=b.torch_generator))
    assert make_generator(None).seed != make_generator(None).seed
    logits = torch.randn(6, 500, generator=torch.Generator().manual_seed(1))
    params = [SamplingParams(greedy=False, temperature=1.5)] * 6
    keys = [(2**64 - 1 - i, i) for i in range(6)]
    drawn = draw_rows(logits, None, params, keys).tokens
    order = [4, 0, 5, 2, 1, 3]
    again = draw_rows(logits[order], None, params, [keys[i] for i in order]).tokens
    assert torch.equal(again, drawn[order])
    one = Stream(9)
    first = [sample(logits[0], params[0], one) for _ in range(20)]
    assert first == [sample(logits[0], params[0], s) for s in [Stream(9)] for _ in range(20)]
    assert len(set(first)) > 5


def test_greedy_ties_and_all_masked() -> None:
    logits = torch.tensor([0.0, 3.0, 1.0, 3.0])
    assert sample(logits, GREEDY, None) == 1
    masked = torch.full((5,), NEG_INF)
    with pytest.raises(InternalError):
        sample(masked, GREEDY, None)
    with pytest.raises(InternalError):
        sample(masked, SamplingParams(greedy=False, seed=0), make_generator(0))


def test_top_k_and_top_p_keep_the_right_sets() -> None:
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    logits = probs.log()

    def kept(**kwargs) -> set[int]:
        x = filter_logits(logits, SamplingParams(greedy=False, **kwargs))
        return set(torch.nonzero(x != NEG_INF).flatten().tolist())

    assert kept() == {0, 1, 2, 3}
    assert kept(top_k=1) == {1}
    assert kept(top_k=2) == {1, 3}
    assert kept(top_k=10) == {0, 1, 2, 3}
    assert kept(top_p=0.45) == {1}
    assert kept(top_p=0.75) == {1, 3}
    assert kept(top_p=0.9) == {1, 2, 3}
    assert kept(top_p=1e-9) == {1}  # never empty
    assert kept(top_k=3, top_p=0.75) == {1, 3}
    # Temperature rescales before top-p: hotter flattens the distribution, so more tokens are needed.
    assert kept(temperature=4.0, top_p=0.75) == {1, 2, 3}


def test_masked_tokens_are_never_drawn_and_frequencies_follow_probs() -> None:
    gen = make_generator(0)
    logits = torch.zeros(100)
    logits[::3] = NEG_INF
    params = SamplingParams(greedy=False, temperature=2.0, seed=0)
    draws = Counter(sample(logits, params, gen) for _ in range(3000))
    assert all(t % 3 != 0 for t in draws)
    assert len(draws) == 66  # every allowed token shows up

    probs = torch.tensor([0.6, 0.3, 0.1, 0.0])
    draws = Counter(sample(probs.log(), SamplingParams(greedy=False), gen) for _ in range(4000))
    assert draws[3] == 0
    for token, p in enumerate(probs.tolist()[:3]):
        assert abs(draws[token] / 4000 - p) < 0.03


def test_growing_kv_layer_matches_concatenation() -> None:
    from transformers.cache_utils import DynamicLayer

    from decc.runtime.kvcache import GrowingLayer

    gen = torch.Generator().manual_seed(0)
    grow, plain = GrowingLayer(), DynamicLayer()
    for n in (5, 1, 1, 300, 1, 40, 1):  # past the first capacity and through a doubling
        k, v = torch.randn(1, 3, n, 8, generator=gen), torch.randn(1, 3, n, 8, generator=gen)
        gk, gv = grow.update(k, v)
        pk, pv = plain.update(k, v)
        assert torch.equal(gk, pk) and torch.equal(gv, pv)
    for layer in (grow, plain):
        layer.crop(-30)
    assert grow.get_seq_length() == plain.get_seq_length() == 319
    k, v = torch.randn(1, 3, 2, 8, generator=gen), torch.randn(1, 3, 2, 8, generator=gen)
    gk, gv = grow.update(k, v)
    pk, pv = plain.update(k, v)
    assert torch.equal(gk, pk) and torch.equal(gv, pv) and gk.shape[-2] == 321
