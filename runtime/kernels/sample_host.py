"""The fused sampler for CPU tensors: the reference's results, row by row, without its sort.

The reference (sample.py) is written for clarity: it sorts every row and hashes Gumbel noise for the
whole vocabulary. On a CPU that costs ~5 ms a row at V=49152, more than the draw is worth. This path
computes the same thresholds from `topk` (only as many of the largest values as top-k / top-p need) and
hashes noise only for the kept tokens, with numpy's uint32 arithmetic (wrapping, as the hash is defined),
then takes the logs in torch so the noise is bit-identical to `gumbel_noise`. Tokens equal the
reference's; masses agree up to float64 summation order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .bitmask import unpack_bitmask
from .sample import FusedSample, check_sample_args, min_p_offset, row_keys

__all__ = ["fused_sample_host", "gumbel_at"]

_NEG_INF = float("-inf")
_U16, _U13, _U9 = np.uint32(16), np.uint32(13), np.uint32(9)
_C1, _C2 = np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35)
_FIRST_TOP = 128  # values fetched first when looking for a top-p boundary (doubled until found)


def _fmix32(h: np.ndarray) -> np.ndarray:
    h ^= h >> _U16
    h *= _C1
    h ^= h >> _U13
    h *= _C2
    h ^= h >> _U16
    return h


def gumbel_at(h1: int, h2: int, index: torch.Tensor) -> torch.Tensor:
    """`gumbel_noise(...)[b, index]` for the row keys `(h1, h2)` of one row: float32, bit-identical."""
    with np.errstate(over="ignore"):
        r = index.numpy().astype(np.uint32) ^ np.uint32(h1)
        r = _fmix32(_fmix32(r) ^ np.uint32(h2))
        u = ((r >> _U9).astype(np.float32) + np.float32(0.5)) * np.float32(1.0 / 2**23)
    return -torch.log(-torch.log(torch.from_numpy(u)))


def fused_sample_host(
    logits: torch.Tensor,
    bitmask: torch.Tensor | None,
    temperature: Any,
    top_k: Any = 0,
    top_p: Any = 1.0,
    min_p: Any = 0.0,
    seed: Any = 0,
    step: Any = 0,
    *,
    mass: bool = True,
) -> FusedSample:
    """Same contract as `fused_sample_reference`, for CPU tensors. `mass=False` skips `log_mass` (left
    NaN): two passes over the row that only SMC weights need."""
    a = check_sample_args(logits, bitmask, temperature, top_k, top_p, min_p, seed, step)
    batch, vocab = a.logits.shape
    allowed = unpack_bitmask(a.bitmask, vocab) if a.bitmask is not None else None
    h1, h2 = (h.tolist() for h in row_keys(a.seed, a.step))
    temps, ks, ps = a.temperature.tolist(), a.top_k.tolist(), a.top_p.tolist()
    log_min_p = min_p_offset(a.min_p)
    tokens = torch.full((batch,), -1, dtype=torch.int64)
    logprob = torch.full((batch,), _NEG_INF, dtype=torch.float32)
    log_mass = torch.full((batch,), _NEG_INF if mass else float("nan"), dtype=torch.float32)
    empty = torch.zeros(batch, dtype=torch.bool)
    for b in range(batch):
        greedy = temps[b] <= 0
        x_all = a.logits[b].float()
        if not greedy and temps[b] != 1.0:  # x / 1 is x: no pass for the common case
            x_all = x_all / a.temperature[b]
        x = x_all if allowed is None else x_all.masked_fill(~allowed[b], _NEG_INF)
        m = x.max()
        if float(m) == _NEG_INF:
            empty[b] = True
            continue
        if greedy:
            tokens[b] = int(torch.max(x, 0).indices)  # the first maximum, as argmax
            logprob[b] = 0.0
            if mass:
                log_mass[b] = _log_mass(x, x_all, m)
            continue
        w = torch.exp(x - m)
        if mass:
            log_mass[b] = _log_mass(x, x_all, m, w)
        tau = _threshold(x, w, m, ks[b], ps[b], a.top_p[b], log_min_p[b])
        kept = (
            torch.nonzero(x >= tau).squeeze(1) if tau > _NEG_INF else torch.nonzero(x > _NEG_INF).squeeze(1)
        )
        score = x[kept] + gumbel_at(h1[b], h2[b], kept)
        j = int(torch.argmax(score))
        tokens[b] = int(kept[j])
        logprob[b] = float(x[kept[j]].double() - m.double() - torch.log(w[kept].double().sum()))
    return FusedSample(tokens, logprob, log_mass, empty)


def _log_mass(x: torch.Tensor, x_all: torch.Tensor, m: torch.Tensor, w: torch.Tensor | None = None) -> float:
    """logsumexp(x) - logsumexp(x_all), the allowed set's mass under the tempered model."""
    w = torch.exp(x - m) if w is None else w
    lse = torch.log(w.double().sum()) + m.double()
    return float(lse - torch.logsumexp(x_all, 0).double())


def _threshold(
    x: torch.Tensor,
    w: torch.Tensor,
    m: torch.Tensor,
    k: int,
    p: float,
    p32: torch.Tensor,
    log_min_p: torch.Tensor,
) -> float:
    """max(v_k, v_p, v_m) of the reference for one row (see `fused_sample_reference`)."""
    live = x > _NEG_INF
    n_live = int(live.sum())
    v_k = _NEG_INF
    if 0 < k < n_live:
        v_k = float(torch.topk(x, k).values[-1])
    v_p = _NEG_INF
    if p < 1:
        cand = live & (x >= v_k) if v_k > _NEG_INF else live
        n_k = int(cand.sum())
        target = float(p32.double()) * float(w[cand].double().sum())
        c = min(n_k, _FIRST_TOP)
        while True:
            top = torch.topk(x, c).values
            cs = torch.cumsum(torch.exp(top - m).double(), 0)
            reached = int((cs < target).sum())
            if reached < c or c == n_k:
                v_p = float(top[min(reached, n_k - 1)])
                break
            c = n_k if 8 * c > n_k else 2 * c  # a flat row: one full sort beats more rounds
    v_m = float(m + log_min_p)
    return max(v_k, v_p, v_m)
