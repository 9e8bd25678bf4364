"""Exact output distributions of a small model (no sampling), and the statistics to compare samples to them.

`exact_outcomes` enumerates every path the decode loop can take on the toy model (runtime/toy.py) and scores
it with full-sequence forwards (no KV cache, so it shares no code with the loop it checks), batching all
prefixes of one length into one forward.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch

__all__ = ["ELLIPSIS", "chi_square_pvalue", "exact_outcomes", "kl", "outcome_key"]

ELLIPSIS = "\u2026"  # marks an outcome cut by the token budget ("length"), in "masked" mode
Mode = Literal["masked", "conditional"]


def outcome_key(text: str, finish_reason: str) -> str:
    """How `exact_outcomes` names a generation: its text, with `ELLIPSIS` appended when cut by length."""
    return text + ELLIPSIS if finish_reason == "length" else text


def next_logprobs(lm: Any, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """Raw next-token log-probabilities (float64, temperature 1) after each sequence, all of one length,
    from one full forward without a cache."""
    ids = torch.tensor([list(s) for s in sequences], dtype=torch.long, device=lm.device)
    with torch.inference_mode():
        logits = lm.model(input_ids=ids, use_cache=False).logits[:, -1]
    return torch.log_softmax(logits.double(), dim=-1).cpu()


def _finished(matcher: Any) -> bool:
    return matcher is not None and matcher.is_accepting() and not matcher.can_continue()


def exact_outcomes(
    lm: Any,
    prompt_ids: Sequence[int],
    matcher_factory: Callable[[], Any],
    max_len: int,
    mode: Mode,
) -> dict[str, float]:
    """Every complete output text after `prompt_ids` with its probability, following `DecodeSession.generate`.

    At a prefix x: a finished matcher (accepting, nothing more allowed) ends with x, no EOS factor; else
    at `max_len` tokens the value is cut ("length"); else the next token t has the model's raw probability
    p(t | prompt + x), EOS allowed only where the matcher accepts (always without a matcher) and a text
    token only where the matcher advances on it. Tokens of probability 0 (the toy model's BOS) are never
    taken, as the sampler never takes them.

    "masked": the loop's sampler, p renormalized over the allowed tokens at each step; cut values are
    outcomes keyed x + `ELLIPSIS`, so the result sums to 1. "conditional": the model's own distribution
    given a complete valid output, the product of raw p over each allowed path (times p(EOS) when it ends
    by EOS), cut values dropped, normalized to sum 1. The two differ: per-step masking is biased.
    `matcher_factory()` gives a fresh matcher, or None for no constraint.
    """
    if mode not in ("masked", "conditional"):
        raise ValueError(f"mode must be 'masked' or 'conditional', got {mode!r}")
    prompt = [int(t) for t in prompt_ids]
    if not prompt:
        raise ValueError("the prompt must not be empty (start it with BOS)")
    decode = lm.tokenizer.decode
    eos = lm.eos_ids
    masked = mode == "masked"
    out: dict[str, float] = {}

    def end(tokens: tuple[int, ...], logp: float, suffix: str = "") -> None:
        key = decode(list(tokens)) + suffix
        out[key] = out.get(key, 0.0) + math.exp(logp)

    # (tokens so far, matcher after them, log-probability of the path)
    frontier: list[tuple[tuple[int, ...], Any, float]] = [((), matcher_factory(), 0.0)]
    for depth in range(max_len + 1):
        live = []
        for tokens, matcher, logp in frontier:
            if _finished(matcher):
                end(tokens, logp)
            elif depth == max_len:
                if masked:
                    end(tokens, logp, ELLIPSIS)
            else:
                live.append((tokens, matcher, logp))
        if not live:
            break
        rows = next_logprobs(lm, [prompt + list(tokens) for tokens, _, _ in live]).tolist()
        frontier = []
        for (tokens, matcher, logp), row in zip(live, rows, strict=True):
            steps = []  # (token, raw log-probability, matcher after it)
            for t, lp in enumerate(row):
                if math.exp(lp) == 0.0:
                    continue
                if t in eos:
                    if matcher is None or matcher.is_accepting():
                        steps.append((t, lp, None))
                elif matcher is None:
                    steps.append((t, lp, None))
                else:
                    after = matcher.clone()
                    if after.advance(t):
                        steps.append((t, lp, after))
            if not steps:
                if masked:
                    raise AssertionError(f"the constraint allows nothing after {decode(list(tokens))!r}")
                continue
            norm = _logsumexp([lp for _, lp, _ in steps]) if masked else 0.0
            for t, lp, after in steps:
                if t in eos:
                    end(tokens, logp + lp - norm)
                else:
                    frontier.append(((*tokens, t), after, logp + lp - norm))
    if not masked:
        total = math.fsum(out.values())
        if total <= 0.0:
            raise AssertionError("no complete valid output within max_len")
        out = {k: v / total for k, v in out.items()}
    return out


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(math.fsum(math.exp(v - top) for v in values))


def kl(p: dict[str, float], q: dict[str, float]) -> float:
    """KL(p || q) in nats; a key p gives mass and q does not (or gives 0) makes it infinite."""
    total = 0.0
    for key, pk in p.items():
        if pk <= 0.0:
            continue
        qk = q.get(key, 0.0)
        if qk <= 0.0:
            return math.inf
        total += pk * math.log(pk / qk)
    return total


def chi_square_pvalue(counts: dict[str, int], probs: dict[str, float]) -> float:
    """Pearson's chi-square goodness-of-fit p-value of `counts` against `probs` (which sum to 1).

    Categories expected fewer than 5 times are pooled into one bin (merged into the smallest other bin if
    the pool is still under 5). An observed category of probability 0 gives 0.0.
    """
    n = sum(counts.values())
    if n <= 0:
        raise ValueError("no observations")
    if any(c > 0 and probs.get(k, 0.0) <= 0.0 for k, c in counts.items()):
        return 0.0
    bins: list[tuple[float, float]] = []  # (observed, expected)
    pooled_obs = pooled_exp = 0.0
    for key, pk in probs.items():
        obs, exp = float(counts.get(key, 0)), n * pk
        if exp < 5.0:
            pooled_obs += obs
            pooled_exp += exp
        else:
            bins.append((obs, exp))
    if pooled_exp > 0.0:
        if pooled_exp < 5.0 and bins:
            i = min(range(len(bins)), key=lambda j: bins[j][1])
            bins[i] = (bins[i][0] + pooled_obs, bins[i][1] + pooled_exp)
        else:
            bins.append((pooled_obs, pooled_exp))
    if len(bins) < 2:
        return 1.0
    stat = sum((o - e) ** 2 / e for o, e in bins)
    return chi_square_sf(stat, len(bins) - 1)


def chi_square_sf(x: float, dof: int) -> float:
    """P(X >= x) for X chi-square with `dof` degrees of freedom: the regularized upper incomplete gamma
    Q(dof/2, x/2), from torch (scipy is not a dependency)."""
    if x <= 0.0:
        return 1.0
    a = torch.tensor(dof / 2.0, dtype=torch.float64)
    return float(torch.special.gammaincc(a, torch.tensor(x / 2.0, dtype=torch.float64)))
