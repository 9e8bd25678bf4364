"""Choosing the next token from one row of logits: greedy, or temperature -> top-k -> top-p -> min-p ->
typical-p -> multinomial.

Masked tokens carry -inf logits; every path keeps them at probability zero, and a row where every token
is masked is a bug upstream (the constraint left nothing), reported as `InternalError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from decc.errors import InternalError

__all__ = ["GREEDY", "SamplingParams", "entropy", "make_generator", "sample"]

_NEG_INF = float("-inf")


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens. `top_k=0` and `top_p=1.0` switch those filters off; `seed=None` is nondeterministic.

    The checks raise `ValueError` with messages the compiler can pre-check and re-raise as user errors.
    """

    greedy: bool
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    min_p: float = 0.0
    typical_p: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.greedy, bool):
            raise ValueError(f"greedy must be true or false, got {self.greedy!r}")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise ValueError(f"temperature must be a finite number > 0, got {t!r}")
        k = self.top_k
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {k!r}")
        p = self.top_p
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise ValueError(f"top_p must be a number in (0, 1] (1 = off), got {p!r}")
        m = self.min_p
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m < 1:
            raise ValueError(f"min_p must be a number in [0, 1) (0 = off), got {m!r}")
        tp = self.typical_p
        if isinstance(tp, bool) or not isinstance(tp, (int, float)) or not 0 < tp <= 1:
            raise ValueError(f"typical_p must be a number in (0, 1] (1 = off), got {tp!r}")
        s = self.seed
        if s is not None and (isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**64):
            raise ValueError(f"seed must be an integer in [0, 2**64), got {s!r}")


GREEDY = SamplingParams(greedy=True)


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded with `seed`, or from OS entropy when `seed` is None (torch's default seed is fixed)."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen


def _all_masked() -> InternalError:
    return InternalError("every token is masked: the constraint allows nothing at this step")


def filter_logits(logits_row: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """A new float32 row after temperature, top-k (ties at the k-th value kept, as in transformers) and
    top-p (the smallest most-likely set with mass >= p, never empty); removed tokens are -inf."""
    x = logits_row.float() / params.temperature
    vocab = x.shape[-1]
    if 0 < params.top_k < vocab:
        kth = torch.topk(x, params.top_k).values[-1]
        x.masked_fill_(x < kth, _NEG_INF)
    if params.top_p < 1.0:
        sorted_x, order = torch.sort(x, descending=True)
        probs = torch.softmax(sorted_x, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs
        drop = mass_before >= params.top_p
        drop[0] = False
        x[order[drop]] = _NEG_INF
    if params.min_p > 0.0:  # keep tokens with at least min_p times the top token's probability
        probs = torch.softmax(x, dim=-1)
        x.masked_fill_(probs < params.min_p * probs.max(), _NEG_INF)
    if params.typical_p < 1.0:  # locally typical sampling (Meister et al.), as transformers does it
        logp = torch.log_softmax(x, dim=-1)
        p = logp.exp()
        shifted = (-logp - _entropy(logp)).abs()
        _, order = torch.sort(shifted)
        mass_before = torch.cumsum(p[order], dim=-1) - p[order]
        drop = mass_before >= params.typical_p
        drop[0] = False
        x[order[drop]] = _NEG_INF
    return x


def entropy(logits_row: torch.Tensor, params: SamplingParams) -> float:
    """The entropy (nats) of the distribution a token is drawn from: the filtered one when sampling, the
    model's (masked) one when greedy."""
    x = logits_row.float() if params.greedy else filter_logits(logits_row, params)
    return float(_entropy(torch.log_softmax(x, dim=-1)))


def _entropy(logp: torch.Tensor) -> torch.Tensor:
    """-sum p log p over a row of log-probabilities, masked (-inf) entries counting 0."""
    p = logp.exp()
    return -(torch.where(p > 0, p * logp, torch.zeros_like(p))).sum()


def sample(logits_row: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """One token id from a 1-D row of logits. Greedy ties go to the lowest id (torch.argmax)."""
    if params.greedy:
        # torch.max(dim) gives the first maximum like torch.argmax, at a third of its cost on CPU.
        best, index = torch.max(logits_row, 0)
        if best == _NEG_INF:
            raise _all_masked()
        return int(index)
    x = filter_logits(logits_row, params)
    if x.max() == _NEG_INF:
        raise _all_masked()
    probs = torch.softmax(x, dim=-1)
    token = int(torch.multinomial(probs, 1, generator=generator))
    if probs[token] <= 0:  # multinomial never picks a zero weight; guard the invariant cheaply anyway
        raise InternalError(f"sampled token {token} has probability 0")
    return token
