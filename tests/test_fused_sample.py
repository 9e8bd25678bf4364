"""The fused mask-and-sample kernel (runtime/kernels/sample.py): the Triton kernel (interpreted on CPU)
against the torch reference, the reference against `runtime.sampling.filter_logits` + softmax, and the
invariances the counter-based noise promises."""

from __future__ import annotations

import math

import pytest
import torch
from _exact import chi_square_pvalue

from decc.runtime.kernels.bitmask import bitmask_words, pack_bitmask, unpack_bitmask
from decc.runtime.kernels.sample import (
    fused_filter_reference,
    fused_sample,
    fused_sample_reference,
    fused_sample_triton,
    gumbel_noise,
)
from decc.runtime.sampling import SamplingParams, filter_logits

NEG_INF = float("-inf")
BIG_BLOCK = 32768  # the interpreter's cost is per block op: big blocks keep the large vocabularies quick


def rows_params(batch: int) -> dict[str, torch.Tensor]:
    """Per-row parameters cycling through the interesting cases (greedy, each filter, all together)."""
    table = [  # temperature, top_k, top_p, min_p
        (1.0, 0, 1.0, 0.0),
        (0.7, 50, 1.0, 0.0),
        (0.0, 0, 1.0, 0.0),
        (1.3, 1000, 0.8, 0.01),
        (0.9, 0, 0.95, 0.05),
        (1.0, 5, 0.5, 0.0),
        (2.0, 0, 0.3, 0.0),
        (0.5, 1, 1.0, 0.0),
    ]
    picked = [table[i % len(table)] for i in range(batch)]
    return {
        "temperature": torch.tensor([p[0] for p in picked], dtype=torch.float32),
        "top_k": torch.tensor([p[1] for p in picked], dtype=torch.int32),
        "top_p": torch.tensor([p[2] for p in picked], dtype=torch.float32),
        "min_p": torch.tensor([p[3] for p in picked], dtype=torch.float32),
    }


def seeds(batch: int, base: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(base)
    seed = torch.randint(-(2**62), 2**62, (batch,), generator=gen, dtype=torch.int64) * 2  # sign bit too
    step = torch.randint(0, 2**40, (batch,), generator=gen, dtype=torch.int64)
    return seed, step


def random_case(batch: int, vocab: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits like a model's (a spread body and a few large ones) and masks of varied density; row 0's mask
    is all zero (empty), row 2's keeps one token in a hundred."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, vocab, generator=gen) * 2.5
    spikes = torch.randint(0, vocab, (batch, 8), generator=gen)
    logits.scatter_add_(1, spikes, 8.0 + 4.0 * torch.rand(batch, 8, generator=gen))
    density = torch.tensor([0.0, 0.5, 0.01, 0.9, 1.0, 0.3, 0.7, 0.05])[torch.arange(batch) % 8]
    allowed = torch.rand(batch, vocab, generator=gen) < density[:, None]
    return logits.to(dtype), pack_bitmask(allowed)


def direct_log_mass(logits: torch.Tensor, allowed: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    t = torch.where(temperature > 0, temperature, torch.ones_like(temperature)).double()
    x = logits.double() / t[:, None]
    return torch.logsumexp(x.masked_fill(~allowed, NEG_INF), 1) - torch.logsumexp(x, 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("vocab", [49152, 32001, 128256])
def test_triton_matches_reference(vocab: int, dtype: torch.dtype) -> None:
    batch = 6
    logits, mask = random_case(batch, vocab, dtype, seed=vocab)
    params = rows_params(batch)
    seed, step = seeds(batch, vocab)
    ref = fused_sample_reference(logits, mask, **params, seed=seed, step=step)
    tri = fused_sample_triton(logits, mask, **params, seed=seed, step=step, block=BIG_BLOCK)
    assert torch.equal(ref.tokens, tri.tokens)
    assert torch.equal(ref.empty, tri.empty)
    assert ref.empty.tolist() == [True] + [False] * (batch - 1)
    assert ref.tokens[0] == -1 and ref.logprob[0] == NEG_INF and ref.log_mass[0] == NEG_INF
    torch.testing.assert_close(tri.logprob, ref.logprob, atol=1e-4, rtol=0)
    torch.testing.assert_close(tri.log_mass, ref.log_mass, atol=1e-4, rtol=0)
    allowed = unpack_bitmask(mask, vocab)
    live = ~ref.empty
    assert allowed[live.nonzero()[:, 0], ref.tokens[live]].all()
    expected = direct_log_mass(logits, allowed, params["temperature"]).float()
    torch.testing.assert_close(ref.log_mass[live], expected[live], atol=1e-4, rtol=0)
    # the greedy row (2) takes the lowest-id maximum of the masked logits, with probability 1
    greedy_row = logits[2].float().masked_fill(~allowed[2], NEG_INF)
    assert ref.tokens[2] == int(torch.argmax(greedy_row)) and ref.logprob[2] == 0.0


def test_bitmask_narrower_than_logits_and_no_bitmask() -> None:
    """Tokens past the bitmask's coverage are never drawn; `bitmask=None` allows everything."""
    batch, vocab = 4, 3000
    logits, _ = random_case(batch, vocab, torch.float32, seed=11)
    logits[:, 2500:] += 30.0  # the best tokens are the uncovered ones
    mask = torch.full((batch, 40), -1, dtype=torch.int32)  # covers 1280 tokens
    params = rows_params(batch)
    seed, step = seeds(batch, 11)
    for fn in (fused_sample_reference, fused_sample_triton):
        out = fn(logits, mask, **params, seed=seed, step=step)
        assert (out.tokens < 1280).all() and not out.empty.any()
        free = fn(logits, None, **params, seed=seed, step=step)
        assert (free.tokens >= 2500).all()
        torch.testing.assert_close(free.log_mass, torch.zeros(batch), atol=1e-5, rtol=0)
    assert torch.equal(
        fused_sample_reference(logits, mask, **params, seed=seed, step=step).tokens,
        fused_sample_triton(logits, mask, **params, seed=seed, step=step, block=512).tokens,
    )


def test_many_small_rows_agree() -> None:
    """Small vocabulary, many blocks per row (block 32), every parameter mix, heavy ties (rounded logits)."""
    batch, vocab = 48, 70
    gen = torch.Generator().manual_seed(5)
    logits = (torch.randn(batch, vocab, generator=gen) * 2).round()  # many equal values
    allowed = torch.rand(batch, vocab, generator=gen) < 0.6
    allowed[7] = False
    logits[9, allowed[9]] = NEG_INF  # allowed tokens all at -inf: nothing can be drawn
    mask = pack_bitmask(allowed)
    params = rows_params(batch)
    seed, step = seeds(batch, 5)
    ref = fused_sample_reference(logits, mask, **params, seed=seed, step=step)
    tri = fused_sample_triton(logits, mask, **params, seed=seed, step=step, block=32)
    assert torch.equal(ref.tokens, tri.tokens)
    assert ref.empty.nonzero()[:, 0].tolist() == [7, 9] and torch.equal(ref.empty, tri.empty)
    assert (ref.tokens[ref.empty] == -1).all()
    torch.testing.assert_close(tri.logprob, ref.logprob, atol=1e-5, rtol=0)
    torch.testing.assert_close(tri.log_mass, ref.log_mass, atol=1e-5, rtol=0)


SETTINGS = [  # temperature, top_k, top_p, min_p
    (1.0, 0, 1.0, 0.0),
    (0.8, 10, 1.0, 0.0),
    (1.2, 0, 0.8, 0.0),
    (1.0, 0, 1.0, 0.1),
    (0.9, 20, 0.9, 0.02),
]


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "T{}-k{}-p{}-m{}".format(*s))
def test_reference_draws_follow_filter_logits(setting: tuple[float, int, float, float]) -> None:
    """4000 draws (one row, 4000 seeds) against softmax(filter_logits(masked row)): chi-square, the kept set
    equal to filter_logits' exactly, and the reported logprob equal to the filtered log-softmax."""
    temperature, top_k, top_p, min_p = setting
    vocab, draws = 50, 4000
    gen = torch.Generator().manual_seed(top_k + int(100 * top_p))
    row = torch.randn(vocab, generator=gen) * 1.5
    allowed = torch.rand(vocab, generator=gen) < 0.8
    masked = row.masked_fill(~allowed, NEG_INF)
    sp = SamplingParams(greedy=False, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    filtered = filter_logits(masked, sp)
    probs = torch.softmax(filtered.double(), 0)

    logits = row.expand(draws, vocab)
    mask = pack_bitmask(allowed).expand(draws, bitmask_words(vocab))
    kept_ref = fused_filter_reference(logits[:1], mask[:1], temperature, top_k, top_p, min_p)[0]
    assert torch.equal(kept_ref > NEG_INF, filtered > NEG_INF)
    torch.testing.assert_close(kept_ref, filtered)

    out = fused_sample_reference(
        logits, mask, temperature, top_k, top_p, min_p, seed=torch.arange(draws) * 7919 + 3, step=11
    )
    tokens = out.tokens.tolist()
    assert all(probs[t] > 0 for t in tokens), "drew a token outside filter_logits' kept set"
    counts: dict[str, int] = {}
    for t in tokens:
        counts[str(t)] = counts.get(str(t), 0) + 1
    pvalue = chi_square_pvalue(counts, {str(t): float(p) for t, p in enumerate(probs) if p > 0})
    assert pvalue > 1e-3, f"chi-square p = {pvalue}"
    torch.testing.assert_close(out.logprob, torch.log(probs).float()[out.tokens], atol=1e-5, rtol=0)
    mass = float(torch.logsumexp(masked / temperature, 0) - torch.logsumexp(row / temperature, 0))
    assert torch.allclose(out.log_mass, torch.tensor(mass), atol=1e-5)


def test_triton_draws_equal_reference_draws_on_one_row() -> None:
    """The same one-row broadcast (as the chi-square test) through the kernel: the same tokens per seed."""
    vocab, draws = 50, 32
    gen = torch.Generator().manual_seed(1)
    row = torch.randn(vocab, generator=gen) * 1.5
    mask = pack_bitmask(torch.rand(vocab, generator=gen) < 0.8).expand(draws, 2)
    logits = row.expand(draws, vocab)
    args = (logits, mask, 0.9, 20, 0.9, 0.02, torch.arange(draws) * 7919 + 3, 11)
    ref = fused_sample_reference(*args)
    assert torch.equal(fused_sample_triton(*args, block=64).tokens, ref.tokens)
    assert len(set(ref.tokens.tolist())) > 3


def test_row_order_and_block_size_do_not_change_draws() -> None:
    batch, vocab = 8, 3000
    logits, mask = random_case(batch, vocab, torch.float32, seed=3)
    params = rows_params(batch)
    seed, step = seeds(batch, 3)
    base = fused_sample_reference(logits, mask, **params, seed=seed, step=step)
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(0))

    def permuted(fn, **kw):
        p = {k: v[perm] for k, v in params.items()}
        return fn(logits[perm], mask[perm], **p, seed=seed[perm], step=step[perm], **kw)

    assert torch.equal(permuted(fused_sample_reference).tokens, base.tokens[perm])
    for block in (256, 4096):
        assert torch.equal(permuted(fused_sample_triton, block=block).tokens, base.tokens[perm])
    # a row alone, or next to other rows, draws the same token
    for b in (1, 4):
        alone = fused_sample_reference(
            logits[b : b + 1], mask[b : b + 1], **{k: v[b : b + 1] for k, v in params.items()},
            seed=seed[b : b + 1], step=step[b : b + 1],
        )  # fmt: skip
        assert alone.tokens.item() == base.tokens[b]
    # and another step or seed gives other draws (row 0 is empty, rows 2 and 7 are deterministic)
    other = fused_sample_reference(logits, mask, **params, seed=seed, step=step + 1)
    assert not torch.equal(other.tokens, base.tokens)


def test_gumbel_noise_is_a_function_of_seed_step_and_index() -> None:
    seed = torch.tensor([0, 1, -1, 2**62, 0], dtype=torch.int64)
    step = torch.tensor([0, 0, 5, 5, 1], dtype=torch.int64)
    wide = gumbel_noise(seed, step, 1000)
    assert torch.equal(gumbel_noise(seed, step, 10), wide[:, :10])
    assert torch.equal(gumbel_noise(seed[3:4], step[3:4], 1000), wide[3:4])
    assert torch.isfinite(wide).all()
    for a in range(5):
        for b in range(a):
            assert not torch.equal(wide[a], wide[b])
    # Gumbel(0, 1): mean = Euler's gamma, variance = pi^2 / 6
    assert abs(float(wide.mean()) - 0.5772) < 0.05
    assert abs(float(wide.var()) - math.pi**2 / 6) < 0.1


@pytest.mark.parametrize("impl", ["reference", "triton"])
def test_greedy_is_masked_argmax_lowest_id_on_ties(impl: str) -> None:
    batch, vocab = 5, 300
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(batch, vocab, generator=gen).round()  # ties everywhere
    logits[3, [40, 41, 250]] = 9.0
    allowed = torch.rand(batch, vocab, generator=gen) < 0.5
    allowed[3, [40, 41, 250]] = torch.tensor([False, True, True])
    allowed[4] = False
    fn = fused_sample_reference if impl == "reference" else fused_sample_triton
    out = fn(logits, pack_bitmask(allowed), 0.0, 7, 0.5, 0.2, seed=torch.arange(batch), step=3)
    masked = logits.masked_fill(~allowed, NEG_INF)
    expected = torch.argmax(masked, 1)  # torch.argmax: first maximum
    assert out.tokens[:4].tolist() == expected[:4].tolist()
    assert out.tokens[3] == 41 and out.tokens[4] == -1
    assert out.logprob[:4].tolist() == [0.0] * 4
    mass = torch.logsumexp(masked, 1) - torch.logsumexp(logits, 1)
    torch.testing.assert_close(out.log_mass[:4], mass[:4], atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["reference", "triton"])
def test_tie_semantics(impl: str) -> None:
    """top-k keeps every token tied with the k-th value and a top-p boundary inside a run of equal values
    keeps the whole run (as filter_logits does). The kept set shows in the logprob: it is renormalized over
    exactly that set."""
    fn = fused_sample_reference if impl == "reference" else fused_sample_triton
    x = torch.tensor([0.0, 2.0, 1.0, 2.0, 2.0, 1.0, -1.0, 1.0])
    rows = x.expand(16, -1)

    def check(kept: set[int], **filters) -> None:
        out = fn(rows, None, 1.0, seed=torch.arange(16), step=0, **filters)
        assert set(out.tokens.tolist()) <= kept
        keep = torch.tensor([t in kept for t in range(len(x))])
        logp = torch.log_softmax(x.masked_fill(~keep, NEG_INF), 0)
        torch.testing.assert_close(out.logprob, logp[out.tokens], atol=1e-6, rtol=0)
        if impl == "reference":
            filtered = fused_filter_reference(x[None], None, 1.0, **filters)[0]
            assert torch.equal(filtered > NEG_INF, keep)

    check({1, 3, 4}, top_k=2)
    check({1, 2, 3, 4, 5, 7}, top_k=4)
    check({1, 3, 4}, top_p=0.4)  # each 2.0 has 0.23 of the mass: two reach 0.4, the tie keeps the third
    check({1, 3, 4}, top_p=0.2)
    check({1, 2, 3, 4, 5, 7}, top_p=0.75)
    check({1, 3, 4}, min_p=0.99)
    check({1, 3, 4}, min_p=3.0, top_p=0.0)  # out-of-range values clamp: the maximal tokens stay
    check({1, 3, 4}, top_k=2, top_p=0.01)
    kept_by_filter = filter_logits(x, SamplingParams(greedy=False, top_p=0.4)) > NEG_INF
    assert int(kept_by_filter.sum()) == 3


def test_dispatch_and_bad_inputs() -> None:
    logits, mask = random_case(3, 100, torch.float32, seed=9)
    args = (logits, mask, 1.0, 0, 1.0, 0.0, torch.arange(3), 0)
    ref = fused_sample_reference(*args)
    assert torch.equal(fused_sample(*args).tokens, ref.tokens)
    assert torch.equal(fused_sample(*args, use_triton=True).tokens, ref.tokens)
    assert ref.tokens.dtype == torch.int64 and ref.logprob.dtype == torch.float32
    assert ref.log_mass.dtype == torch.float32 and ref.empty.dtype == torch.bool
    with pytest.raises(ValueError, match="int32"):
        fused_sample(logits, mask.long(), 1.0)
    with pytest.raises(ValueError, match="bitmask"):
        fused_sample(logits, mask[:2], 1.0)
    with pytest.raises(ValueError, match="dtype"):
        fused_sample(logits.double(), mask, 1.0)
    with pytest.raises(ValueError, match="logits"):
        fused_sample(logits[0], mask[0], 1.0)
    with pytest.raises(ValueError, match="top_k"):
        fused_sample(logits, mask, 1.0, top_k=torch.ones(3))
    with pytest.raises(ValueError, match="block"):
        fused_sample_triton(logits, mask, 1.0, 0, 1.0, 0.0, 0, 0, block=100)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("vocab", [49152, 32001, 1000])
def test_host_path_matches_reference(vocab: int, dtype: torch.dtype) -> None:
    """The CPU path (topk thresholds, noise hashed only on kept tokens) draws the reference's tokens."""
    from decc.runtime.kernels.sample_host import fused_sample_host

    batch = 16
    logits, mask = random_case(batch, vocab, dtype, seed=vocab + 1)
    params = rows_params(batch)
    for base in range(3):
        seed, step = seeds(batch, base)
        for bitmask in (mask, None):
            ref = fused_sample_reference(logits, bitmask, **params, seed=seed, step=step)
            out = fused_sample_host(logits, bitmask, **params, seed=seed, step=step)
            assert torch.equal(out.tokens, ref.tokens)
            assert torch.equal(out.empty, ref.empty)
            torch.testing.assert_close(out.logprob, ref.logprob, atol=1e-5, rtol=0)
            torch.testing.assert_close(out.log_mass, ref.log_mass, atol=1e-5, rtol=0)
    x = torch.tensor([0.0, 2.0, 1.0, 2.0, 2.0, 1.0, -1.0, 1.0]).expand(16, -1)
    for filters in (
        {"top_k": 2},
        {"top_p": 0.4},
        {"top_p": 0.75},
        {"min_p": 0.99},
        {"top_k": 2, "top_p": 0.01},
    ):
        ref = fused_sample_reference(x, None, 1.0, seed=torch.arange(16), **filters)
        assert torch.equal(
            fused_sample_host(x, None, 1.0, seed=torch.arange(16), **filters).tokens, ref.tokens
        )
    assert torch.equal(
        fused_sample(logits, mask, 1.0, seed=seed).tokens,
        fused_sample_reference(logits, mask, 1.0, seed=seed).tokens,
    )
