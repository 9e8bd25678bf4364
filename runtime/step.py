"""One decode step, as every loop takes it: the value-level types and rules that say how a value grows and
when it ends, whatever policy drew its token.

Called by the one-stream loop (decode.py `DecodeSession._decode`), beam search (beam.py), the particle
policies (particles.py: best-of-n, first-finish, SMC), the batched host loop (batch.py) and the
device-resident loop's replay (device_loop.py). Each loop masks its rows (masking.py `RowMasker`, with
`Track.no_eos` / `Track.budget`), draws a token per row (`draw`; the device loop fuses it, ASAp reweights
first) and hands it to `Track.extend` with the model's raw log-probability; `Track.entropy_stop` counts the
masked row first. The step guarantees, in every loop:

- EOS is allowed only where the constraint accepts and after `min_tokens` (never with `ignore_eos`); an EOS
  ends the value ("eos") and does not join its tokens;
- a stop string or stop regex cuts the value at its first match ("stop"): the tokens become those of the
  cut text (the drawn ones up to the last boundary before the cut, the rest re-encoded);
- a constraint that accepts and allows nothing more finishes the value ("constraint"), also on the last
  token `max_tokens` allows (a completion, not a cut);
- otherwise the value ends after `max_tokens` tokens ("length"; `complete` False when its constraint does
  not accept it); tokens that only re-spell a healed prompt (`HealingMatcher`) do not count;
- `stop_entropy` ends the value before a draw ("entropy"), never while a healed prompt is re-spelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

import torch

from decc.errors import InternalError
from decc.grammars.tokens.healing import HealingMatcher
from decc.grammars.tokens.vocab import decode_in_context, encode_in_context

from .detokenize import IncrementalDetokenizer, StopScanner
from .sampling import SamplingParams, Stream, draw_rows, entropy_run, next_key, no_token_allowed

__all__ = [
    "FINISH_REASONS",
    "FinishReason",
    "Generation",
    "Hypothesis",
    "StepRules",
    "TokenMatcher",
    "Track",
    "cut_at_stop",
    "draw",
    "finished",
]

FinishReason = Literal["eos", "stop", "length", "constraint", "entropy"]
FINISH_REASONS: tuple[FinishReason, ...] = ("eos", "stop", "length", "constraint", "entropy")


class TokenMatcher(Protocol):
    """What a grammar matcher provides to the loops (the grammars package implements it)."""

    def fill_bitmask(self, row: torch.Tensor, budget: int | None = None) -> None:
        """Set the bits of allowed tokens in an int32 row of ceil(V/32) words (zeroed before the call);
        with `budget` (tokens left, this one included) only those after which the value can still
        finish within it, where the matcher knows how."""
        ...

    def advance(self, token_id: int) -> bool:
        """Consume a token; False means it was not allowed and the state is unchanged."""
        ...

    def is_accepting(self) -> bool:
        """Whether the text so far is a complete value."""
        ...

    def can_continue(self) -> bool:
        """Whether some non-EOS token is allowed."""
        ...

    def rollback(self, n: int) -> None:
        """Undo the last `n` accepted tokens (a terminating EOS counts as one); ValueError when fewer
        were accepted, and then nothing changes."""
        ...

    def clone(self) -> TokenMatcher:
        """An independent copy at the same position (beams, particles and drafts fork matchers)."""
        ...


def finished(matcher: TokenMatcher) -> bool:
    """Whether a constrained value is complete and can take nothing more."""
    return bool(matcher.is_accepting() and not matcher.can_continue())


@dataclass(frozen=True)
class Generation:
    """One generated value.

    `token_ids` are the tokens that joined the context (no EOS; after a stop string, the tokens of the cut
    text). `logprob` is the sum of the model's raw log-softmax (temperature 1, no mask, no top-k/top-p) over
    every token sampled in the call, a final EOS and any tokens past a stop string included: the
    unconstrained model's log-probability of what it produced, comparable across sampling settings.
    `complete` is False for a constrained value that `max_tokens` cut before its constraint accepted it.
    """

    token_ids: tuple[int, ...]
    text: str
    logprob: float
    finish_reason: FinishReason
    healed: str = ""  # token healing: the prompt text the first tokens re-spell (not part of `text`)
    complete: bool = True


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
    """A value being decoded (the one stream, a beam, a particle, a batch row): its tokens, raw
    log-probability, matcher and text. Where a policy keeps more (a beam's cache row, SMC's weights), the
    policy keeps it, not the track."""

    __slots__ = ("tokens", "logprob", "matcher", "detok", "finish", "text", "run", "free", "kept")

    def __init__(self, matcher: TokenMatcher | None, detok: IncrementalDetokenizer | None) -> None:
        self.tokens: list[int] = []
        self.logprob = 0.0
        self.matcher = matcher
        self.detok = detok  # the text as it grows: kept where stop rules, a stream or a potential read it
        self.finish: FinishReason | None = None
        self.text: str | None = None  # set when a stop string cut the value
        self.run = 0  # steps in a row that met the entropy rule
        self.free = 0  # tokens that only re-spelled a healed prompt's text (not the value's own)
        self.kept = -1  # after a stop cut: how many drawn tokens `tokens` starts with (the rest re-encoded)

    def fork(self) -> Track:
        twin = Track.__new__(Track)
        twin.tokens = list(self.tokens)
        twin.logprob, twin.finish, twin.text, twin.run = self.logprob, self.finish, self.text, self.run
        twin.free, twin.kept = self.free, self.kept
        twin.matcher = self.matcher.clone() if self.matcher is not None else None
        twin.detok = self.detok.clone() if self.detok is not None else None
        return twin

    def healing(self) -> bool:
        """Whether the first tokens still re-spell a healed prompt's text (no EOS, no entropy rule, no
        drafts, and the budget is not yet known)."""
        m = self.matcher
        return isinstance(m, HealingMatcher) and m.healing

    def no_eos(self, rules: StepRules) -> bool:
        """Whether EOS is held back at this track's next token (`ignore_eos`, or before `min_tokens`)."""
        return rules.no_eos(len(self.tokens) - self.free)

    def budget(self, rules: StepRules) -> int:
        """The tokens the value may still take, the next one included."""
        return rules.max_tokens - (len(self.tokens) - self.free)

    def extend(
        self, token: int, logprob: float, rules: StepRules, scanner: StopScanner | None, tokenizer: Any
    ) -> FinishReason | None:
        """Take `token` (already allowed by the mask) with its raw log-probability; the finish it causes, if
        any: "eos", "stop", "constraint" (before "length": completing on the last allowed token is a
        completion) or "length" once the budget is spent."""
        self.logprob += logprob
        if token in rules.eos_ids:
            self.finish = "eos"
            return "eos"
        m = self.matcher
        if m is not None and not m.advance(token):
            raise InternalError(f"the matcher refused token {token} that its own bitmask allowed")
        self.tokens.append(token)
        if isinstance(m, HealingMatcher):
            self.free = m.free
            if not m.healing:  # the prompt's text is re-spelled: the constraint alone from here
                self.matcher = m = m.inner
        if self.detok is not None:
            delta = self.detok.push(token)
            if delta and scanner is not None and scanner.scan(self.detok.text, len(delta)):
                cut = cut_at_stop(tokenizer, self.tokens, scanner)
                if cut is not None:  # None: the incremental text disagreed with a full decode; go on
                    keep, rest, text = cut
                    self.tokens = self.tokens[:keep] + rest
                    self.kept, self.text, self.finish = keep, text, "stop"
                    return "stop"
        if m is not None and finished(m):
            self.finish = "constraint"
            return "constraint"
        if len(self.tokens) - self.free >= rules.max_tokens:
            self.finish = "length"
            return "length"
        return None

    def entropy_stop(self, row: torch.Tensor, sampling: SamplingParams, rules: StepRules) -> bool:
        """Count this step against `rules.stop_entropy` (entropy of the masked row as sampled); True when
        the value ends here, before a token is drawn. Re-spelling a healed prompt does not count."""
        rule = rules.stop_entropy
        assert rule is not None
        if self.healing():
            return False
        self.run = entropy_run(self.run, row, sampling, rule)
        if self.run >= rule[2]:
            self.finish = "entropy"
            return True
        return False

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


class Drawn(NamedTuple):
    """One token per row: `tokens` on the logits' device (to feed back), `ids` on the host, `raw` each
    token's log-probability under the model itself (temperature 1, no mask, no filter: what `Track.extend`
    sums), `logq` under the distribution drawn from (None on the greedy path)."""

    tokens: torch.Tensor
    ids: list[int]
    raw: list[float]
    logq: torch.Tensor | None


def draw(
    logits: torch.Tensor,
    bitmask: torch.Tensor | None,
    params: Sequence[SamplingParams],
    streams: Sequence[Stream | None],
) -> Drawn:
    """Mask, draw and score one token per row of raw `[B, V]` logits: under the row's bitmask (None: every
    token), sampling parameters and random stream (its next key; greedy rows take none). Greedy ties go to
    the lowest id."""
    lse = torch.logsumexp(logits.float(), dim=-1)  # no copy for float32 logits
    if bitmask is None and all(p.greedy for p in params):
        # torch.max(dim) gives the first maximum like torch.argmax, at a third of its cost on CPU.
        best, tokens = torch.max(logits, -1)
        if bool((best == float("-inf")).any()):
            raise no_token_allowed()
        logq = None
    else:
        keys = [next_key(None if p.greedy else s) for p, s in zip(params, streams, strict=True)]
        out = draw_rows(logits, bitmask, params, keys)
        tokens, logq = out.tokens, out.logprob
    raw = (logits.gather(1, tokens[:, None])[:, 0].float() - lse).tolist()
    return Drawn(tokens, tokens.tolist(), raw, logq)


def cut_at_stop(
    tokenizer: Any, generated: list[int], scanner: StopScanner
) -> tuple[int, list[int], str] | None:
    """Where a value ends at its first stop: (generated tokens kept, tokens of the rest of the cut text,
    the cut text); None when a full decode finds no stop (the incremental text disagreed).

    Keeps the generated tokens up to the last token boundary at or before the cut and re-tokenizes the
    rest, so the context stays the model's own tokens wherever it can.
    """
    full = decode_in_context(tokenizer, generated)
    at = scanner.first(full)
    if at < 0:
        return None
    text = full[:at]
    keep = len(generated) - 1
    while keep > 0:
        prefix = decode_in_context(tokenizer, generated[:keep])
        if len(prefix) <= at and text.startswith(prefix):
            break
        keep -= 1
    prefix = decode_in_context(tokenizer, generated[:keep])
    rest = encode_in_context(tokenizer, text[len(prefix) :]) if len(text) > len(prefix) else []
    return keep, list(rest), text
