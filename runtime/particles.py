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
from dataclasses import dataclass, field
from typing import Any

import torch

from .decode import DecodeSession
from .detokenize import IncrementalDetokenizer
from .masking import RowMasker, masked_copy
from .rewards import Scorer
from .sampling import SamplingParams, Stream
from .step import Hypothesis, StepRules, Track, draw

__all__ = ["BestOfRun", "FirstFinishRun", "ParticlePolicy", "SMCRun", "run_particles"]

_NEG_INF = float("-inf")


class ParticlePolicy:
    """What one particle policy adds to the shared loop: its own state (SMC's weights) and its hooks."""

    n: int
    sampling: SamplingParams

    def text_needed(self) -> bool:
        return False

    def begin(self) -> ParticlePolicy:
        """A fresh copy for one run (state does not leak between runs of the same policy)."""
        return self

    def drew(self, i: int, raw: float, logq: float) -> None:
        """Particle `i` took a token: `raw` under the model, `logq` under the proposal."""

    def stepped(self, tracks: list[Track], live: list[int], ended: list[int], tok: Any) -> int | None:
        """After every row of a step: the winner when the policy stops here, else None."""
        return None

    def resample(self, generator: Stream | None) -> list[int] | None:
        """Each particle's ancestor when the policy resamples at this step (its own state follows them),
        else None."""
        return None

    def hypotheses(self, tracks: list[Track], tok: Any, step: int) -> list[Hypothesis]:
        """Every track as a hypothesis under the policy's score; `step`: the loop's last step."""
        raise NotImplementedError

    def choose(self, tracks: list[Track], hyps: list[Hypothesis], generator: Stream | None) -> int:
        return 0  # first-finish where nothing completed: every row ran to the length together

    def answer(self, hyp: Hypothesis) -> bool:
        return True


@dataclass(frozen=True)
class BestOfRun(ParticlePolicy):
    """n samples run to the end; the best under `score` (a complete value before one cut off)."""

    n: int
    sampling: SamplingParams
    score: Scorer

    def hypotheses(self, tracks: list[Track], tok: Any, step: int) -> list[Hypothesis]:
        return [t.hypothesis(tok, self.score(t, t.current_text(tok))) for t in tracks]

    def choose(self, tracks: list[Track], hyps: list[Hypothesis], generator: Stream | None) -> int:
        return max(range(len(hyps)), key=lambda i: (tracks[i].complete(), hyps[i].score, -i))


@dataclass(frozen=True)
class FirstFinishRun(ParticlePolicy):
    """n samples; the lowest-numbered row that completes at the first step where any does."""

    n: int
    sampling: SamplingParams

    def stepped(self, tracks: list[Track], live: list[int], ended: list[int], tok: Any) -> int | None:
        done = [i for i in ended if tracks[i].finish != "length"]
        return min(done) if done else None

    def hypotheses(self, tracks: list[Track], tok: Any, step: int) -> list[Hypothesis]:
        # Every row ended at the loop's last step: it stops at the first completion, and max_tokens cuts
        # every row at the same step.
        return [t.hypothesis(tok, -float(step + 1)) for t in tracks]


@dataclass
class SMCRun(ParticlePolicy):
    """Sequential Monte Carlo; `logw` and `phi` (each particle's log weight and prefix potential) are its
    own state, reordered with the tracks when it resamples."""

    n: int
    sampling: SamplingParams
    potential: Scorer | None = None
    ess_threshold: float = 0.5
    resampling: str = "multinomial"
    logw: list[float] = field(default_factory=list, repr=False)
    phi: list[float] = field(default_factory=list, repr=False)

    def text_needed(self) -> bool:
        return self.potential is not None

    def begin(self) -> SMCRun:
        return SMCRun(self.n, self.sampling, self.potential, self.ess_threshold, self.resampling,
                   [0.0] * self.n, [0.0] * self.n)  # fmt: skip

    def drew(self, i: int, raw: float, logq: float) -> None:
        self.logw[i] += raw - logq

    def stepped(self, tracks: list[Track], live: list[int], ended: list[int], tok: Any) -> int | None:
        if self.potential is not None:
            for i in live:
                self._twist(i, tracks[i], tok)
        for i in ended:  # the target is complete outputs: one cut off at max_tokens is not one
            if tracks[i].finish == "length":
                self.logw[i] = _NEG_INF
        return None

    def _twist(self, i: int, tr: Track, tok: Any) -> None:
        assert self.potential is not None
        phi = self.potential(tr, tr.current_text(tok))
        if phi == _NEG_INF:
            self.logw[i], self.phi[i] = _NEG_INF, phi
            return
        if self.logw[i] != _NEG_INF:
            self.logw[i] += phi - self.phi[i]
        self.phi[i] = phi

    def resample(self, generator: Stream | None) -> list[int] | None:
        if _ess(self.logw) >= self.ess_threshold * self.n:
            return None
        ancestors = _resample(self.logw, self.resampling, generator)
        w = torch.tensor(self.logw, dtype=torch.float64)
        mean = float(torch.logsumexp(w, 0)) - math.log(len(self.logw))
        self.logw = [mean] * len(ancestors)  # every copy carries the mean weight
        self.phi = [self.phi[a] for a in ancestors]
        return ancestors

    def hypotheses(self, tracks: list[Track], tok: Any, step: int) -> list[Hypothesis]:
        return [t.hypothesis(tok, w) for t, w in zip(tracks, self.logw, strict=True)]

    def choose(self, tracks: list[Track], hyps: list[Hypothesis], generator: Stream | None) -> int:
        w = torch.tensor([h.score for h in hyps], dtype=torch.float64)
        if bool(torch.isinf(w).all()):  # no particle completed: the likeliest one, cut at the length
            return max(range(len(tracks)), key=lambda i: (tracks[i].logprob, -i))
        return int(torch.multinomial(torch.softmax(w, 0).float(), 1, generator=_torch(generator)))

    def answer(self, hyp: Hypothesis) -> bool:
        return hyp.score > _NEG_INF


def run_particles(
    session: DecodeSession,
    policy: ParticlePolicy,
    rules: StepRules,
    matcher: Any | None,
    generator: Stream | None,
) -> tuple[Track, list[Hypothesis]]:
    """Run the policy after the session's context; the winner joins the context. Returns the winner and
    the hypotheses that completed (in particle order; every one when none completed)."""
    tok = session.lm.tokenizer
    policy = policy.begin()
    n, sampling = policy.n, policy.sampling
    scanner = rules.scanner()
    text_needed = scanner is not None or policy.text_needed()
    tracks = [
        Track(
            matcher.clone() if matcher is not None else None,
            IncrementalDetokenizer(tok) if text_needed else None,
        )
        for _ in range(n)
    ]
    masker = RowMasker(session.lm.vocab_size, rules.eos_ids, session._device)
    live = list(range(n))  # the track in each cache row
    seat = [(0, 0)] * n  # each track's cache row at the last step it ran, and that step
    winner: int | None = None
    with torch.inference_mode():
        logits = session.fork(n)
        step = 0
        while True:
            budget = rules.max_tokens - step
            bitmask = masker.bitmask([tracks[i].matcher for i in live], rules.no_eos(step), budget)
            entropy = rules.stop_entropy is not None and bitmask is not None
            masked = masked_copy(logits, bitmask) if entropy else logits  # the entropy rule reads these
            drawn = draw(logits, bitmask, [sampling] * len(live), [generator] * len(live))
            tokens, raw = drawn.ids, drawn.raw
            logq = drawn.logq.tolist() if drawn.logq is not None else [0.0] * len(live)
            ended: list[int] = []
            for r, i in enumerate(live):
                tr = tracks[i]
                seat[i] = (r, step)
                if rules.stop_entropy is not None and tr.entropy_stop(masked[r], sampling, rules):
                    ended.append(i)
                    continue
                finish = tr.extend(tokens[r], raw[r], rules, scanner, tok)
                policy.drew(i, raw[r], logq[r])
                if finish is not None:
                    ended.append(i)
            winner = policy.stepped(tracks, live, ended, tok)
            if winner is not None:
                break
            ancestors = policy.resample(generator)
            if ancestors is None:
                ancestors = list(range(n))
            else:
                tracks = _copy(tracks, ancestors)
                seat = [seat[a] for a in ancestors]
            row_of = {i: r for r, i in enumerate(live)}
            running = [i for i in range(n) if tracks[i].finish is None]
            if not running or step + 1 == rules.max_tokens:
                break
            rows = [row_of[ancestors[i]] for i in running]
            if rows != list(range(len(live))):
                session.select_rows(torch.tensor(rows, dtype=torch.long, device=session._device))
            live = running
            feed = torch.tensor(
                [tracks[i].tokens[-1] for i in live], dtype=torch.long, device=session._device
            )
            logits = session.step_rows(feed)
            step += 1
    hyps = policy.hypotheses(tracks, tok, step)
    if winner is None:
        winner = policy.choose(tracks, hyps, generator)
    best = tracks[winner]
    session.join(best, *seat[winner], step)
    # Only answers come back: values that completed (and, under SMC, carry weight); all of them when none did.
    keep = [
        h
        for t, h in zip(tracks, hyps, strict=True)
        if t.finish is not None and t.complete() and policy.answer(h)
    ]
    return best, keep or hyps


def _ess(logw: list[float]) -> float:
    w = torch.tensor(logw, dtype=torch.float64)
    if bool(torch.isinf(w).all()):
        return float(len(logw))  # nothing to resample towards
    w = torch.exp(w - w.max())
    return float(w.sum() ** 2 / (w * w).sum())


def _resample(logw: list[float], scheme: str, generator: Stream | None) -> list[int]:
    """n ancestor indices drawn in proportion to the weights."""
    n = len(logw)
    p = torch.softmax(torch.tensor(logw, dtype=torch.float64), dim=0)
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
    """The tracks of the ancestors, each used once as it is and forked for every further copy."""
    used: set[int] = set()
    out: list[Track] = []
    for a in ancestors:
        out.append(tracks[a] if a not in used else tracks[a].fork())
        used.add(a)
    return out
