"""The decode loop: one causal LM, one growing context, a KV cache, and optional token constraints.

A `DecodeSession` holds the whole context of a program run (prompt pieces and generated values). Appended
tokens stay pending until the next `generate`, which feeds them all in one prefill forward; each sampled
token is then fed alone. Written by hand rather than with `model.generate` because constraints, stop
strings and interleaved prompt pieces need control between steps, and the loop must stay as cheap as
`model.generate` (one forward per token, no per-step allocations beyond the model's own).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import torch

from decc.errors import DeccError, InternalError
from decc.grammars.tokens.healing import HealingMatcher
from decc.grammars.tokens.vocab import decode_in_context, encode_in_context

from .aligned import AlignedTrie, Cursor
from .detokenize import IncrementalDetokenizer, StopScanner, TextStream
from .drafts import Drafter
from .masking import RowMasker, masked_copy
from .model import LanguageModel
from .sampling import SamplingParams, Stream, entropy_run, make_generator, sample

__all__ = ["FINISH_REASONS", "DecodeSession", "FinishReason", "Generation", "TokenMatcher", "cut_at_stop"]

FinishReason = Literal["eos", "stop", "length", "constraint", "entropy"]
FINISH_REASONS: tuple[FinishReason, ...] = ("eos", "stop", "length", "constraint", "entropy")
_NEG_INF = float("-inf")


class TokenMatcher(Protocol):
    """What a grammar matcher provides to the loop (the grammars package implements it)."""

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


class DecodeSession:
    """The context of one program run over one model, with its KV cache.

    Invariant: the cache holds `tokens[:fed]`; `_logits` (when set) are the raw next-token logits after
    all of `tokens`, and are consumed (masked in place) by the step that uses them.
    """

    def __init__(self, lm: LanguageModel) -> None:
        self.lm = lm
        self._engine = lm.engine
        self._device = self._engine.device
        self._tokens: list[int] = []
        self._fed = 0
        self._logits: torch.Tensor | None = None
        self._cache = self._engine.new_cache()
        self._max_positions = self._engine.max_positions
        self._eos = lm.eos_ids
        self._masker = RowMasker(lm.vocab_size, lm.eos_ids, self._device)
        self._step_ids = torch.zeros((1, 1), dtype=torch.long, device=self._device)
        self.forward_calls = 0  # model forward passes so far (what drafts save; benchmarks report it)
        # Positions sliced from one arange (the model would otherwise ask the cache and build one per call).
        self._positions = (
            torch.arange(self._max_positions, device=self._device).unsqueeze(0)
            if self._max_positions
            else None
        )

    @property
    def tokens(self) -> list[int]:
        """The whole context so far (a copy): prompt pieces and generated values."""
        return list(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def append(self, token_ids: Sequence[int]) -> None:
        """Extend the context; the model sees the new tokens at the next `generate` (one prefill)."""
        vocab = self.lm.vocab_size
        ids = [int(t) for t in token_ids]
        for t in ids:
            if not 0 <= t < vocab:
                raise InternalError(f"token id {t} outside the vocabulary (0..{vocab - 1})")
        if ids:
            self._tokens.extend(ids)
            self._logits = None

    # -- model calls -------------------------------------------------------------------------------

    def _forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Feed `input_ids` [1, n] after the cached tokens; return the raw next-token logits [V]."""
        return self._forward_rows(input_ids)[0]

    def _forward_rows(self, input_ids: torch.Tensor, keep: int = 1) -> torch.Tensor:
        """Feed `input_ids` [B, n] after the cached rows (all the same length); return logits [B, V] (with
        `keep` > 1: the logits after each of the last `keep` tokens, [B, keep, V])."""
        n = input_ids.shape[1]
        if self._max_positions and self._fed + n > self._max_positions:
            raise DeccError(
                f"the context grew to {self._fed + n} tokens, more than the model's "
                f"{self._max_positions}; shorten the prompt or lower max_tokens"
            )
        fed = self._fed
        positions = self._positions[:, fed : fed + n] if self._positions is not None else None
        if positions is not None and input_ids.shape[0] > 1:
            positions = positions.expand(input_ids.shape[0], n)
        logits = self._engine.prefill(self._cache, input_ids, positions=positions, keep=keep)
        self._fed = fed + n
        self.forward_calls += 1
        return logits

    def _crop(self, keep: int) -> None:
        if keep < self._fed:
            self._engine.crop(self._cache, self._fed - keep)
            self._fed = keep

    def _next_logits(self) -> torch.Tensor:
        """Raw logits after the whole context, feeding pending tokens in one forward."""
        logits = self._logits
        if logits is not None:
            self._logits = None
            return logits
        n = len(self._tokens)
        if n == 0:
            raise InternalError("generate called on an empty context: append a prompt first")
        if self._fed >= n:
            self._crop(n - 1)  # logits were consumed: re-feed the last token to get them back
        pending = torch.tensor([self._tokens[self._fed :]], dtype=torch.long, device=self._device)
        return self._forward(pending)

    def _forward_one(self, token: int) -> torch.Tensor:
        step = self._step_ids
        step.fill_(token)
        return self._forward(step)

    # -- rows: several hypotheses after the same context (search policies) -------------------------

    def fork(self, n: int) -> torch.Tensor:
        """Start `n` hypotheses after the whole context: the cache becomes `n` equal rows (the context is
        fed once, then its rows are copied) and the raw next-token logits come back as `[n, V]`."""
        logits = self._next_logits()
        self._engine.fork(self._cache, n)
        return logits.unsqueeze(0).expand(n, -1).clone()

    def step_rows(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Feed one token per row (a LongTensor [B]); the raw next-token logits of every row, [B, V]."""
        return self._forward_rows(token_ids.view(-1, 1))

    def select_rows(self, rows: torch.Tensor, identity: torch.Tensor | None = None) -> None:
        """Row i of the cache becomes old row `rows[i]`: beams reordered, particles forked or dropped."""
        self._engine.select_rows(self._cache, rows, identity)

    def adopt(self, row: int | None, token_ids: Sequence[int], fed: int = 0) -> None:
        """End a search: one row again, and the winner's tokens join the context.

        `row` is the winner's cache row when it is still in the batch (its first `fed` tokens are cached
        there); None drops every row back to the shared context, and the winner's tokens are fed at the
        next `generate` (one prefill, and nothing at all when the program ends here).
        """
        self._crop(len(self._tokens) + (fed if row is not None else 0))
        self.select_rows(torch.tensor([row or 0], dtype=torch.long, device=self._device))
        self._tokens.extend(int(t) for t in token_ids)
        self._logits = None

    def take_last(self) -> int:
        """Take the context's last token back out and return it: token healing re-spells it as the start
        of the next value (grammars/tokens/healing.py)."""
        if len(self._tokens) < 2:
            raise InternalError("token healing needs a token left in the context")
        token = self._tokens.pop()
        self._crop(min(self._fed, len(self._tokens)))
        self._logits = None
        return token

    # -- the loop ----------------------------------------------------------------------------------

    def generate(
        self,
        *,
        max_tokens: int,
        sampling: SamplingParams,
        matcher: TokenMatcher | None = None,
        stop: Sequence[str] = (),
        ignore_eos: bool = False,
        generator: Stream | None = None,
        min_tokens: int = 0,
        stop_regex: str | None = None,
        stop_entropy: tuple[bool, float, int] | None = None,
        aligned: AlignedTrie | None = None,
        drafter: Drafter | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Generation:
        """Generate one value after the context and append it (see `Generation` for what comes back).

        Finishes with "constraint" when the matcher accepts and allows nothing more, "eos" on an EOS
        token (not added to the context), "stop" at a stop string (the context becomes prompt + the text
        before it), or "length" after `max_tokens`. Under a matcher EOS is allowed exactly when the matcher
        accepts; `ignore_eos` never allows it. `generator` (default: one from `sampling.seed`) lets a
        caller share one random stream across calls. After a "stop" finish the matcher has consumed
        tokens past the cut and should be discarded. `min_tokens` keeps EOS out for that many tokens;
        `stop_regex` stops like a stop string, at its first match; `stop_entropy` = (above, threshold, k)
        finishes with "entropy" once the next-token entropy (nats, of the distribution sampled from) has been
        above (or below) the threshold for k steps running. `aligned` samples with ASAp (aligned.py): the
        draw is reweighted by the trie's estimates and then updates them. `drafter` proposes tokens to
        check in the same forward pass as the last drawn one (drafts.py); the value is the same either way.
        `on_text` gets the value's text piece by piece as it is decoded (never text a stop cuts later).

        A `HealingMatcher` (grammars/tokens/healing.py) heals the boundary: the prompt's last token was taken back
        (`take_last`) and the first tokens re-spell it; they are the Generation's first tokens, its text
        leaves the re-spelled part out, and tokens that re-spell it only do not count against `max_tokens`.
        """
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
            raise ValueError(f"max_tokens must be an integer >= 0, got {max_tokens!r}")
        stops = tuple(stop)
        if any(not isinstance(s, str) or not s for s in stops):
            raise ValueError(f"stop strings must be non-empty strings, got {stops!r}")
        if generator is None and not sampling.greedy:
            generator = make_generator(sampling.seed)
        rules = _Rules(min_tokens, stop_regex, stop_entropy)
        cursor = aligned.cursor() if aligned is not None else None
        if cursor is not None:
            drafter = None  # ASAp updates its trie per draw: one position at a time
        with torch.inference_mode():
            gen = self._generate(
                max_tokens, sampling, matcher, stops, ignore_eos, generator, rules, cursor, drafter, on_text
            )
        self._crop(min(self._fed, len(self._tokens)))  # cached draft tokens that were not accepted
        if cursor is not None:  # a value cut by a stop or by entropy says nothing about the constraint
            complete = {"eos": 1.0, "constraint": 1.0, "length": 0.0}.get(gen.finish_reason)
            cursor.finish(complete)
        return gen

    def _generate(
        self,
        max_tokens: int,
        sampling: SamplingParams,
        matcher: TokenMatcher | None,
        stops: tuple[str, ...],
        ignore_eos: bool,
        generator: Stream | None,
        rules: _Rules,
        cursor: Cursor | None = None,
        drafter: Drafter | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Generation:
        healer = matcher if isinstance(matcher, HealingMatcher) else None
        skip = len(healer.removed.decode("utf-8")) if healer is not None else 0
        stream = TextStream(on_text, stops, rules.stop_regex is not None, skip) if on_text else None
        gen = self._decode(
            max_tokens, sampling, matcher, stops, ignore_eos, generator, rules, cursor, drafter, skip, stream
        )
        if skip:  # a healed step: the first `skip` characters re-spell the prompt's last token
            gen = replace(gen, text=gen.text[skip:], healed=gen.text[:skip])
        if stream is not None:
            stream.finish(gen.text)
        return gen

    def _decode(
        self,
        max_tokens: int,
        sampling: SamplingParams,
        matcher: TokenMatcher | None,
        stops: tuple[str, ...],
        ignore_eos: bool,
        generator: Stream | None,
        rules: _Rules,
        cursor: Cursor | None,
        drafter: Drafter | None,
        skip: int,
        stream: TextStream | None,
    ) -> Generation:
        generated: list[int] = []
        draft: list[int] = []  # draft tokens fed after the last accepted token, not yet checked
        ahead: list[torch.Tensor] = []  # the logits after each of them
        healer = matcher if isinstance(matcher, HealingMatcher) else None
        if matcher is not None and _finished(matcher):
            return self._result(generated, None, "constraint")
        if max_tokens == 0:
            complete = matcher is None or matcher.is_accepting()
            return self._result(generated, None, "length", complete=complete)
        context = self._tokens
        eos = self._eos
        scanning = bool(stops) or rules.stop_regex is not None
        detok = IncrementalDetokenizer(self.lm.tokenizer) if scanning or stream is not None else None
        scanner = StopScanner(stops, rules.stop_regex, skip) if scanning else None
        running = 0  # steps in a row that met the entropy condition
        extra = len(healer.pending) if healer is not None else 0  # tokens that only re-spell the prompt
        logprobs = torch.empty(max_tokens + extra, dtype=torch.float32, device=self._device)
        logits = self._next_logits()
        finish: FinishReason = "length"
        free = 0  # tokens so far that only re-spelled the prompt's healed text (not counted as the value's)
        for step in range(max_tokens + extra):
            lse = torch.logsumexp(logits.float(), 0)  # no copy for float32 models
            healing = healer is not None and matcher is healer and healer.healing
            no_eos = ignore_eos or step - free < rules.min_tokens
            bitmask = self._masker.bitmask([matcher], no_eos, max_tokens - (step - free))
            masked = logits
            if bitmask is not None and (cursor is not None or rules.stop_entropy is not None):
                masked = masked_copy(logits[None], bitmask)[0]
            if rules.stop_entropy is not None and not healing:
                running = entropy_run(running, masked, sampling, rules.stop_entropy)
                if running >= rules.stop_entropy[2]:
                    return self._result(generated, logprobs[:step], "entropy")
            if cursor is not None:
                token = _aligned_sample(cursor, logits, masked, sampling, generator)
            else:
                token = sample(logits, sampling, generator, bitmask)
            logprobs[step] = logits[token] - lse  # raw: the unmasked model's log-probability
            if token in eos:
                return self._result(generated, logprobs[: step + 1], "eos")
            if matcher is not None and not matcher.advance(token):
                raise InternalError(f"the matcher refused token {token} that its own bitmask allowed")
            generated.append(token)
            context.append(token)
            if healer is not None and matcher is healer:
                free = healer.free
                if not healer.healing:  # the prompt's text is re-spelled: the constraint alone from here
                    matcher = healer.inner
            if detok is not None:
                delta = detok.push(token)
                if delta and scanner is not None and scanner.scan(detok.text, len(delta)):
                    cut = self._cut_at_stop(generated, scanner)
                    if cut is not None:
                        return self._result(cut[0], logprobs[: step + 1], "stop", text=cut[1])
                if delta and stream is not None:
                    stream.update(detok.text)
            if matcher is not None and _finished(matcher):  # before the budget: completing on the last
                finish = "constraint"  # allowed token is still a completion, not a cut
                break
            if step + 1 - free == max_tokens:
                break
            if draft and draft[0] == token:  # the draft guessed right: its next logits are here
                draft.pop(0)
                logits = ahead.pop(0)
                continue
            if draft:  # a miss: forget what the cache holds past the accepted tokens
                self._crop(self._fed - len(draft))
                draft, ahead = [], []
            if drafter is not None and (healer is None or matcher is not healer):  # none while healing
                draft = drafter.propose(context, matcher, max_tokens + free - step - 2)
            if draft:
                rows = self._forward_rows(
                    torch.tensor([[token, *draft]], dtype=torch.long, device=self._device),
                    keep=len(draft) + 1,
                )[0]
                logits, ahead = rows[0], list(rows[1:])
            else:
                logits = self._forward_one(token)
        complete = finish != "length" or matcher is None or matcher.is_accepting()
        return self._result(generated, logprobs[: len(generated)], finish, complete=complete)

    def _cut_at_stop(self, generated: list[int], scanner: StopScanner) -> tuple[list[int], str] | None:
        """Cut the value before the first stop string and rewrite the context's tail to match it.

        Keeps the generated tokens up to the last token boundary at or before the cut, crops the cache to
        them, and appends the re-tokenized rest of the cut text as pending tokens.
        """
        cut = cut_at_stop(self.lm.tokenizer, generated, scanner)
        if cut is None:
            return None  # the incremental text disagreed with a full decode; keep generating
        keep, rest, text = cut
        base = len(self._tokens) - len(generated)
        del self._tokens[base + keep :]
        self._tokens.extend(rest)
        self._crop(min(self._fed, base + keep))
        self._logits = None
        return generated[:keep] + list(rest), text

    def _result(
        self,
        token_ids: list[int],
        logprobs: torch.Tensor | None,
        finish: FinishReason,
        text: str | None = None,
        complete: bool = True,
    ) -> Generation:
        if text is None:
            text = decode_in_context(self.lm.tokenizer, token_ids)
        logprob = float(logprobs.sum()) if logprobs is not None else 0.0
        return Generation(tuple(token_ids), text, logprob, finish, complete=complete)


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


@dataclass(frozen=True)
class _Rules:
    """The stopping rules beyond stop strings and max_tokens."""

    min_tokens: int = 0
    stop_regex: str | None = None
    stop_entropy: tuple[bool, float, int] | None = None


def _aligned_sample(
    cursor: Cursor,
    raw: torch.Tensor,
    masked: torch.Tensor,
    sampling: SamplingParams,
    generator: Stream | None,
) -> int:
    """One ASAp step: the model's log-probabilities (at the temperature, unmasked), masked, reweighted by
    the EFG. Truncations (top-k, top-p, ...) are refused with `mode: aligned` at compile time."""
    x = raw.float() if sampling.greedy else raw.float() / sampling.temperature
    logq = torch.log_softmax(x, 0).masked_fill_(masked == _NEG_INF, _NEG_INF)
    if not bool(torch.isfinite(logq).any()):
        raise InternalError("every token is masked: the constraint allows nothing at this step")
    weights = cursor.reweight(logq)
    if sampling.greedy:
        token = int(torch.argmax(weights))
    else:  # the reweighted log-probabilities, drawn from as they are (temperature already applied)
        token = sample(weights, SamplingParams(greedy=False), generator)
    cursor.take(token, float(logq[token].exp()))
    return token


def _finished(matcher: TokenMatcher) -> bool:
    return matcher.is_accepting() and not matcher.can_continue()
