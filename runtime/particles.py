"""n sampled hypotheses side by side: best-of-n, first-finish, and sequential Monte Carlo (SMC).

All three sample every row from the same proposal as `sample(...)` does for one stream (the constraint's
mask, then temperature / top-k / top-p / min-p / typical-p). They differ in what they keep:

- best-of-n runs all n to the end and keeps the best under its score (a value the constraint accepts
  before one cut off at max_tokens);
- first-finish stops at the first step where some row completes (EOS, stop, constraint) and keeps the
  lowest-numbered row that completed then;
- SMC gives each particle an importance weight and resamples. Reference loop:

      log w_i = 0 for all particles
      each step, for each running particle i with token t drawn from the proposal q:
          log w_i += log p(t | x_i) - log q(t | x_i)   (p: the model at temperature 1, unmasked; for
                     plain sampling this is log of the mass the mask allowed)
          log w_i += phi(x_i t) - phi(x_i)              (the potential, a log-weight, on prefixes)
      a particle cut off at max_tokens gets log w = -inf (it is not a complete output)
      when ESS = (sum w)^2 / sum w^2 < ess_threshold x n: draw n ancestors in proportion to w
          (multinomial or systematic), copy them, and set every log w to the mean weight's log
      at the end, one particle drawn in proportion to w is the value

  so the particles target p(x) 1[x complete and valid] exp(phi(x)), not the biased per-step-masked p.

Finished rows leave the batch; resampling forks the cache rows of the running particles it copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .decode import DecodeSession
from .detokenize import IncrementalDetokenizer
from .kernels.bitmask import apply_token_bitmask_inplace
from .masking import RowMasker
from .rewards import Scorer
from .sampling import SamplingParams, Stream, draw_rows, next_key
from .tracks import Hypothesis, StepRules, Track

__all__ = ["ParticleParams", "run_particles"]

_NEG_INF = float("-inf")


@dataclass(frozen=True)
class ParticleParams:
    kind: str  # "best_of" | "first_finish" | "smc"
    n: int
    sampling: SamplingParams
    score: Scorer | None = None  # best_of
    potential: Scorer | None = None  # smc
    ess_threshold: float = 0.5
    resampling: str = "multinomial"


def run_particles(
    session: DecodeSession,
    params: ParticleParams,
    rules: StepRules,
    matcher: Any | None,
    generator: Stream | None,
) -> tuple[Track, list[Hypothesis]]:
    """Run the policy after the session's context; the winner joins the context. Returns the winner and
    the hypotheses that completed (in particle order; every one when none completed)."""
    tok = session.lm.tokenizer
    n, sampling = params.n, params.sampling
    scanner = rules.scanner()
    smc = params.kind == "smc"
    text_needed = scanner is not None or params.potential is not None
    tracks = [
        Track(
            matcher.clone() if matcher is not None else None,
            IncrementalDetokenizer(tok) if text_needed else None,
        )
        for _ in range(n)
    ]
    masker = RowMasker(session.lm.vocab_size, rules.eos_ids, session._device)
    live = list(range(n))  # the track in each cache row
    winner: int | None = None
    with torch.inference_mode():
        logits = session.fork(n)
        step = 0
        while True:
            lse = torch.logsumexp(logits.float(), dim=-1)
            budget = rules.max_tokens - step
            bitmask = masker.bitmask([tracks[i].matcher for i in live], rules.no_eos(step), budget)
            if rules.stop_entropy is not None and bitmask is not None:
                apply_token_bitmask_inplace(logits, bitmask)  # the entropy rule reads the masked rows
                bitmask = None
            keys = [next_key(generator) for _ in live]
            drawn = draw_rows(logits, bitmask, [sampling] * len(live), keys)
            raw = (logits.gather(1, drawn.tokens[:, None])[:, 0].float() - lse).tolist()
            tokens, logq = drawn.tokens.tolist(), drawn.logprob.tolist()
            ended: list[int] = []
            for r, i in enumerate(live):
                tr = tracks[i]
                tr.row, tr.step = r, step
                if rules.stop_entropy is not None and tr.entropy_stop(logits[r], sampling, rules):
                    ended.append(i)
                    continue
                t = tokens[r]
                finish = tr.extend(t, raw[r], rules, scanner, tok)
                if smc:
                    tr.logw += raw[r] - logq[r]
                if finish is None and step + 1 == rules.max_tokens:
                    tr.finish = "length"
                if tr.finish is not None:
                    ended.append(i)
            if smc and params.potential is not None:
                for i in live:
                    _twist(tracks[i], params.potential, tok)
            if smc:  # the target is complete outputs: one cut off at max_tokens is not one
                for i in ended:
                    if tracks[i].finish == "length":
                        tracks[i].logw = _NEG_INF
            if params.kind == "first_finish":
                done = [i for i in ended if tracks[i].finish != "length"]
                if done:
                    winner = min(done)
                    break
            ancestors = list(range(n))
            if smc and _ess(tracks) < params.ess_threshold * n:
                ancestors = _resample(tracks, params.resampling, generator)
                tracks = _copy(tracks, ancestors)
            row_of = {i: r for r, i in enumerate(live)}
            running = [i for i in range(n) if tracks[i].finish is None]
            if not running or step + 1 == rules.max_tokens:
                break
            rows = [row_of[ancestors[i]] for i in running]
            if rows != list(range(len(live))):
                session.select_rows(torch.tensor(rows, dtype=torch.long, device=session._device))
            for r, i in enumerate(running):
                tracks[i].row = r
            live = running
            feed = torch.tensor(
                [tracks[i].tokens[-1] for i in live], dtype=torch.long, device=session._device
            )
            logits = session.step_rows(feed)
            step += 1
    hyps = _hypotheses(tracks, params, tok)
    if winner is None:
        winner = _choose(tracks, hyps, params, generator)
    best = tracks[winner]
    best.join(session, step)
    # Only answers come back: values that completed (and, under SMC, carry weight); all of them when none did.
    keep = [
        h
        for t, h in zip(tracks, hyps, strict=True)
        if t.finish is not None and t.complete() and (not smc or h.score > _NEG_INF)
    ]
    return best, keep or hyps


def _twist(tr: Track, potential: Scorer, tok: Any) -> None:
    phi = potential(tr, tr.current_text(tok))
    if phi == _NEG_INF:
        tr.logw, tr.phi = _NEG_INF, phi
        return
    if tr.logw != _NEG_INF:
        tr.logw += phi - tr.phi
    tr.phi = phi


def _ess(tracks: list[Track]) -> float:
    w = torch.tensor([t.logw for t in tracks], dtype=torch.float64)
    if bool(torch.isinf(w).all()):
        return float(len(tracks))  # nothing to resample towards
    w = torch.exp(w - w.max())
    return float(w.sum() ** 2 / (w * w).sum())


def _resample(tracks: list[Track], scheme: str, generator: Stream | None) -> list[int]:
    """n ancestor indices drawn in proportion to the weights."""
    n = len(tracks)
    w = torch.tensor([t.logw for t in tracks], dtype=torch.float64)
    p = torch.softmax(w, dim=0)
    if scheme == "systematic":
        u = float(torch.rand((), generator=_torch(generator), dtype=torch.float64))
        points = (torch.arange(n, dtype=torch.float64) + u) / n
        cdf = torch.cumsum(p, 0)
        cdf[-1] = 1.0
        return torch.searchsorted(cdf, points, right=True).clamp(max=n - 1).tolist()
    return torch.multinomial(p.float(), n, replacement=True, generator=_torch(generator)).tolist()


def _torch(stream: Stream | None) -> torch.Generator | None:
    return stream.torch_generator if stream is not None else None


def _copy(tracks: list[Track], ancestors: list[int]) -> list[Track]:
    w = torch.tensor([t.logw for t in tracks], dtype=torch.float64)
    mean = float(torch.logsumexp(w, 0)) - math.log(len(tracks))
    used: set[int] = set()
    out: list[Track] = []
    for a in ancestors:
        t = tracks[a] if a not in used else tracks[a].fork()
        used.add(a)
        out.append(t)
    for t in out:
        t.logw = mean
    return out


def _hypotheses(tracks: list[Track], params: ParticleParams, tok: Any) -> list[Hypothesis]:
    if params.kind == "best_of":
        assert params.score is not None
        return [t.hypothesis(tok, params.score(t, t.current_text(tok))) for t in tracks]
    if params.kind == "smc":
        return [t.hypothesis(tok, t.logw) for t in tracks]
    return [t.hypothesis(tok, -float(t.step + 1)) for t in tracks]


def _choose(
    tracks: list[Track], hyps: list[Hypothesis], params: ParticleParams, generator: Stream | None
) -> int:
    if params.kind == "smc":
        w = torch.tensor([h.score for h in hyps], dtype=torch.float64)
        if bool(torch.isinf(w).all()):  # no particle completed: the likeliest one, cut at the length
            return max(range(len(tracks)), key=lambda i: (tracks[i].logprob, -i))
        return int(torch.multinomial(torch.softmax(w, 0).float(), 1, generator=_torch(generator)))
    if params.kind == "best_of":  # a value the constraint accepts beats one cut off mid-value
        return max(range(len(hyps)), key=lambda i: (tracks[i].complete(), hyps[i].score, -i))
    return 0  # first-finish where nothing completed: every row ran to the length together
