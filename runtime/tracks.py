"""Hypotheses decoded side by side: one `Track` per beam or particle, each with its own matcher clone and
text, and the masking of a whole batch of rows at once.

The search policies (beam.py, particles.py) share these so every policy honours the same step rules as the
one-stream loop in decode.py: EOS only where the constraint accepts and after `min_tokens`, stop strings
and stop regexes cut the value, a constraint that allows nothing more finishes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from decc.errors import InternalError
from decc.grammars.tokens.vocab import decode_in_context

from .decode import DecodeSession, FinishReason, Generation, TokenMatcher, cut_at_stop
from .detokenize import IncrementalDetokenizer, StopScanner
from .sampling import SamplingParams, entropy_run

__all__ = ["Hypothesis", "StepRules", "Track"]


@dataclass(frozen=True)
class StepRules:
    """Everything but the policy that decides how a value may grow and when it ends."""

    max_tokens: int
    eos_ids: frozenset[int]
    min_tokens: int = 0
    ignore_eos: bool = False
    stops: tuple[str, ...] = ()
    stop_regex: str | None = None
    stop_entropy: tuple[bool, float, int] | None = None
    skip: int = 0  # a healed step's re-spelled prompt text: characters where no stop is looked for

    def scanner(self) -> StopScanner | None:
        return StopScanner(self.stops, self.stop_regex, self.skip) if self.stops or self.stop_regex else None

    def no_eos(self, step: int) -> bool:
        return self.ignore_eos or step < self.min_tokens


@dataclass(frozen=True)
class Hypothesis:
    """One finished beam or particle. `score` is the policy's own number: the length-penalized beam score,
    the best-of score, -steps for first-finish, or the SMC log importance weight (unnormalized: the
    log-mean-exp over the particles estimates the log of the target's total mass, e.g. the probability that
    the model writes a valid value). `complete`: False when max_tokens cut it before its constraint
    accepted it."""

    token_ids: tuple[int, ...]
    text: str
    logprob: float
    finish_reason: FinishReason
    score: float
    complete: bool = True


class Track:
    """A hypothesis being decoded: its tokens, raw log-probability, matcher and text.

    `row` and `step` say where it last sat in the batch (its cache row) and when it finished, so the
    winner's cache row can be kept when it is still there at the end.
    """

    __slots__ = (
        "tokens",
        "logprob",
        "matcher",
        "detok",
        "finish",
        "text",
        "run",
        "row",
        "step",
    )

    def __init__(self, matcher: TokenMatcher | None, detok: IncrementalDetokenizer | None) -> None:
        self.tokens: list[int] = []
        self.logprob = 0.0
        self.matcher = matcher
        self.detok = detok
        self.finish: FinishReason | None = None
        self.text: str | None = None  # set when a stop string cut the value
        self.run = 0  # steps in a row that met the entropy rule
        self.row = -1
        self.step = -1

    def fork(self) -> Track:
        twin = Track.__new__(Track)
        twin.tokens = list(self.tokens)
        twin.logprob, twin.finish, twin.text, twin.run = self.logprob, self.finish, self.text, self.run
        twin.row, twin.step = self.row, self.step
        twin.matcher = self.matcher.clone() if self.matcher is not None else None  # type: ignore[attr-defined]
        twin.detok = self.detok.clone() if self.detok is not None else None
        return twin

    def extend(
        self, token: int, logprob: float, rules: StepRules, scanner: StopScanner | None, tokenizer: Any
    ) -> FinishReason | None:
        """Take `token` (already allowed by the mask); the finish it causes, if any (not "length")."""
        self.logprob += logprob
        if token in rules.eos_ids:
            self.finish = "eos"
            return "eos"
        m = self.matcher
        if m is not None and not m.advance(token):
            raise InternalError(f"the matcher refused token {token} that its own bitmask allowed")
        self.tokens.append(token)
        if self.detok is not None:  # kept where the text is read: stop rules, or an SMC potential
            delta = self.detok.push(token)
            if delta and scanner is not None and scanner.scan(self.detok.text, len(delta)):
                cut = cut_at_stop(tokenizer, self.tokens, scanner)
                if cut is not None:
                    keep, rest, text = cut
                    self.tokens = self.tokens[:keep] + rest
                    self.text = text
                    self.finish = "stop"
                    return "stop"
        if m is not None and m.is_accepting() and not m.can_continue():
            self.finish = "constraint"
            return "constraint"
        return None

    def entropy_stop(self, row: torch.Tensor, sampling: SamplingParams, rules: StepRules) -> bool:
        """Count this step against `rules.stop_entropy` (entropy of the masked row as sampled); True when
        the value ends here, before a token is drawn."""
        rule = rules.stop_entropy
        assert rule is not None
        self.run = entropy_run(self.run, row, sampling, rule)
        if self.run >= rule[2]:
            self.finish = "entropy"
            return True
        return False

    def join(self, session: DecodeSession, last_step: int) -> None:
        """Make this (winning) hypothesis the session's context. Its cache row is kept when it finished at
        the search's last step (the row is still in the batch, holding its first `last_step` tokens) and no
        stop rewrote its tokens; otherwise its tokens are fed again at the next generate."""
        if self.step == last_step and self.finish not in ("stop", "entropy"):
            session.adopt(self.row, self.tokens, fed=min(last_step, len(self.tokens)))
        else:
            session.adopt(None, self.tokens)

    def current_text(self, tokenizer: Any) -> str:
        if self.text is not None:
            return self.text
        if self.detok is not None and self.finish is None:
            return self.detok.text
        return decode_in_context(tokenizer, self.tokens)

    def complete(self) -> bool:
        """False for a constrained value cut at max_tokens before its constraint accepted it."""
        m = self.matcher
        return self.finish not in (None, "length") or m is None or m.is_accepting()

    def hypothesis(self, tokenizer: Any, score: float) -> Hypothesis:
        text, finish = self.current_text(tokenizer), self.finish or "length"
        return Hypothesis(tuple(self.tokens), text, self.logprob, finish, score, self.complete())

    def generation(self, tokenizer: Any) -> Generation:
        text, finish = self.current_text(tokenizer), self.finish or "length"
        return Generation(tuple(self.tokens), text, self.logprob, finish, complete=self.complete())
