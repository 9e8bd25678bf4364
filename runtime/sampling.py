"""Choosing the next token: greedy, or temperature -> top-k -> top-p -> min-p (-> typical-p) -> a draw.

Every draw goes through the fused sampler (kernels/sample.py: Triton on CUDA, its sort-free torch twin on
CPU): Gumbel-max with noise keyed by (seed, draw index) and the vocabulary index. A `Stream` is a seed and
a draw counter, so a value's tokens depend on its seed and on how many draws came before it in its own
stream, never on which batch row it sat in or what else was in the batch.

Masked tokens are never drawn; a row where every token is masked is a bug upstream (the constraint left
nothing), reported as `InternalError`.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from decc.errors import InternalError

from .kernels.sample import FusedSample, fused_sample
from .masking import masked_copy

__all__ = [
    "GREEDY",
    "SamplingParams",
    "Stream",
    "draw_rows",
    "entropy",
    "entropy_run",
    "no_token_allowed",
    "key64",
    "make_generator",
    "next_key",
    "sample",
    "sampling_columns",
]

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


class Stream:
    """A random stream: a 64-bit seed and how many token draws it has made. Draw `i` of the stream uses
    the noise keyed by `(seed, i)`; other random choices (SMC resampling) use `torch_generator`, a torch
    generator seeded with the same seed."""

    __slots__ = ("seed", "count", "_torch")

    def __init__(self, seed: int | None = None) -> None:
        self.seed = secrets.randbits(64) if seed is None else seed
        self.count = 0
        self._torch: torch.Generator | None = None

    def key(self) -> tuple[int, int]:
        """The (seed, index) of the next draw."""
        self.count += 1
        return self.seed, self.count - 1

    @property
    def torch_generator(self) -> torch.Generator:
        if self._torch is None:
            self._torch = torch.Generator().manual_seed(self.seed)
        return self._torch


def make_generator(seed: int | None) -> Stream:
    """The stream a value with this seed draws from (`seed=None`: fresh OS entropy)."""
    return Stream(seed)


def next_key(stream: Stream | None) -> tuple[int, int]:
    """The key of a row's next draw; greedy rows have no stream and their draw ignores the key."""
    return stream.key() if stream is not None else (0, 0)


def sampling_columns(
    params: Sequence[SamplingParams], device: torch.device | str
) -> tuple[torch.Tensor, ...]:
    """(temperature, top_k, top_p, min_p) as the fused sampler's per-row tensors; a greedy row is
    temperature 0 with every filter off."""
    on = [not p.greedy for p in params]
    pairs = zip(on, params, strict=True)
    rows = [(p.temperature, p.top_k, p.top_p, p.min_p) if s else (0.0, 0, 1.0, 0.0) for s, p in pairs]
    dtypes = (torch.float32, torch.int32, torch.float32, torch.float32)
    return tuple(torch.tensor([r[j] for r in rows], dtype=dtypes[j], device=device) for j in range(4))


def no_token_allowed() -> InternalError:
    """The error of a draw from a row with nothing allowed (a bug: masks always leave EOS or a token)."""
    return InternalError("every token is masked: the constraint allows nothing at this step")


def filter_logits(logits_row: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """A new float32 row after temperature, top-k (ties at the k-th value kept, as in transformers) and
    top-p (the smallest most-likely set with mass >= p, never empty); removed tokens are -inf."""
    x = logits_row.float() / params.temperature
    vocab = x.shape[-1]
    if 0 < params.top_k < vocab:
        kth = torch.topk(x, params.top_k).values[-1]
        x.masked_fill_(x < kth, _NEG_INF)
    if params.top_p < 1.0:  # ties with the last kept value are all kept, as top-k keeps them
        sorted_x, _ = torch.sort(x, descending=True)
        probs = torch.softmax(sorted_x, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs
        n_keep = max(1, int((mass_before < params.top_p).sum()))
        x.masked_fill_(x < sorted_x[n_keep - 1], _NEG_INF)
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


def entropy_run(run: int, row: torch.Tensor, params: SamplingParams, rule: tuple[bool, float, int]) -> int:
    """The stop_entropy rule's count after one more step: how many steps running the entropy of `row` (as
    drawn from) has been above (or below) the threshold. The one-stream loop and every policy's tracks
    count with this, so the rule means the same everywhere; the value ends once it reaches `rule[2]`."""
    above, threshold, _ = rule
    h = entropy(row, params)
    return run + 1 if (h > threshold if above else h < threshold) else 0


def _entropy(logp: torch.Tensor) -> torch.Tensor:
    """-sum p log p over a row of log-probabilities, masked (-inf) entries counting 0."""
    p = logp.exp()
    return -(torch.where(p > 0, p * logp, torch.zeros_like(p))).sum()


def key64(seed: int) -> int:
    """A uint64 seed as the int64 with the same bits (the kernels take int64)."""
    return seed - (1 << 64) if seed >= 1 << 63 else seed


def draw_rows(
    logits: torch.Tensor,
    bitmask: torch.Tensor | None,
    params: Sequence[SamplingParams],
    keys: Sequence[tuple[int, int]],
    *,
    mass: bool = False,
) -> FusedSample:
    """One token per row of `[B, V]` logits under the row's bitmask (None: all allowed), parameters and
    (seed, index) key. `logprob` is under the distribution drawn from; `log_mass` (only with `mass=True`)
    the log of the mass the mask leaves under the tempered model. Typical-p, which the fused sampler does
    not do, filters those rows first and then draws with the same keyed noise."""
    batch, dev = logits.shape[0], logits.device
    out = fused_sample(
        logits,
        bitmask,
        *sampling_columns(params, dev),
        torch.tensor([key64(k[0]) for k in keys], dtype=torch.int64, device=dev),
        torch.tensor([k[1] for k in keys], dtype=torch.int64, device=dev),
        mass=mass,
    )
    typical = [b for b in range(batch) if not params[b].greedy and params[b].typical_p < 1.0]
    for b in typical:
        _draw_typical(out, b, logits[b], bitmask[b] if bitmask is not None else None, params[b], keys[b])
    if bool(out.empty.any()):
        raise no_token_allowed()
    return out


def _draw_typical(
    out: FusedSample,
    b: int,
    row: torch.Tensor,
    words: torch.Tensor | None,
    params: SamplingParams,
    key: tuple[int, int],
) -> None:
    masked = masked_copy(row[None], words[None] if words is not None else None)[0]
    x = filter_logits(masked, params)  # tempered and filtered
    one = fused_sample(x[None], None, 1.0, seed=key64(key[0]), step=key[1])
    out.tokens[b], out.logprob[b], out.empty[b] = one.tokens[0], one.logprob[0], one.empty[0]


def sample(
    logits_row: torch.Tensor,
    params: SamplingParams,
    generator: Stream | None,
    bitmask: torch.Tensor | None = None,
) -> int:
    """One token id from a 1-D row of logits, under `bitmask` (`[1, W]` int32; None: every token not
    already at -inf). Greedy ties go to the lowest id. Draws take the stream's next key."""
    if params.greedy and bitmask is None:
        # torch.max(dim) gives the first maximum like torch.argmax, at a third of its cost on CPU.
        best, index = torch.max(logits_row, 0)
        if best == _NEG_INF:
            raise no_token_allowed()
        return int(index)
    if not params.greedy and generator is None:
        generator = Stream(params.seed)
    key = next_key(None if params.greedy else generator)
    return int(draw_rows(logits_row[None], bitmask, [params], [key]).tokens[0])
