"""The decode loop: one causal LM, one growing context, a KV cache, and optional token constraints.

A `DecodeSession` holds the whole context of a program run (prompt pieces and generated values). Appended
tokens stay pending until the next `generate`, which feeds them all in one prefill forward; each sampled
token is then fed alone. Written by hand rather than with `model.generate` because constraints, stop
strings and interleaved prompt pieces need control between steps, and the loop must stay as cheap as
`model.generate` (one forward per token, no per-step allocations beyond the model's own).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from decc.errors import InternalError
from decc.grammars.tokens.healing import HealingMatcher

from .aligned import AlignedTrie, Cursor
from .detokenize import IncrementalDetokenizer, TextStream
from .drafts import Drafter
from .masking import RowMasker, masked_copy
from .model import LanguageModel
from .sampling import SamplingParams, Stream, make_generator, sample
from .step import Generation, StepRules, TokenMatcher, Track, draw, finished

__all__ = ["DecodeSession"]

_NEG_INF = float("-inf")


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

    def join(self, track: Track, row: int, step: int, last_step: int) -> None:
        """Make a search's winning `track` the context. Its cache `row` is kept when it finished (at
        `step`) at the search's last step (the row is still in the batch, holding its first `last_step`
        tokens) and no stop rewrote its tokens; otherwise its tokens are fed again at the next generate."""
        if step == last_step and track.finish not in ("stop", "entropy"):
            self.adopt(row, track.tokens, fed=min(last_step, len(track.tokens)))
        else:
            self.adopt(None, track.tokens)

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
        healer = matcher if isinstance(matcher, HealingMatcher) else None
        skip = len(healer.removed.decode("utf-8")) if healer is not None else 0
        rules = StepRules(
            max_tokens, self._eos, min_tokens, ignore_eos, stops, stop_regex, stop_entropy, skip=skip
        )
        cursor = aligned.cursor() if aligned is not None else None
        if cursor is not None:
            drafter = None  # ASAp updates its trie per draw: one position at a time
        stream = TextStream(on_text, stops, stop_regex is not None, skip) if on_text else None
        with torch.inference_mode():
            gen = self._decode(rules, sampling, matcher, generator, cursor, drafter, stream)
        self._crop(min(self._fed, len(self._tokens)))  # cached draft tokens that were not accepted
        if skip:  # a healed step: the first `skip` characters re-spell the prompt's last token
            gen = replace(gen, text=gen.text[skip:], healed=gen.text[:skip])
        if stream is not None:
            stream.finish(gen.text)
        if cursor is not None:  # a value cut by a stop or by entropy says nothing about the constraint
            complete = {"eos": 1.0, "constraint": 1.0, "length": 0.0}.get(gen.finish_reason)
            cursor.finish(complete)
        return gen

    def _decode(
        self,
        rules: StepRules,
        sampling: SamplingParams,
        matcher: TokenMatcher | None,
        generator: Stream | None,
        cursor: Cursor | None,
        drafter: Drafter | None,
        stream: TextStream | None,
    ) -> Generation:
        """The one-stream loop: each step masks, draws and hands the token to the stream's `Track` (step.py),
        whose finish ends the value; drafts are checked in the forward pass of the last drawn token."""
        tok = self.lm.tokenizer
        scanner = rules.scanner()
        detok = IncrementalDetokenizer(tok) if scanner is not None or stream is not None else None
        track = Track(matcher, detok)
        if matcher is not None and finished(matcher):
            track.finish = "constraint"
            return track.generation(tok)
        if rules.max_tokens == 0:
            track.finish = "length"
            return track.generation(tok)
        context = self._tokens
        base = len(context)
        draft: list[int] = []  # draft tokens fed after the last accepted token, not yet checked
        ahead: list[torch.Tensor] = []  # the logits after each of them
        entropy = rules.stop_entropy is not None
        healing = len(matcher.pending) if isinstance(matcher, HealingMatcher) else 0  # bytes left to re-spell
        logits = self._next_logits()
        params, streams = [sampling], [generator]
        for _ in range(rules.max_tokens + healing):  # the track finishes first: this only bounds the loop
            bitmask = self._masker.bitmask([track.matcher], track.no_eos(rules), track.budget(rules))
            masked = logits
            if bitmask is not None and (cursor is not None or entropy):
                masked = masked_copy(logits[None], bitmask)[0]
            if entropy and track.entropy_stop(masked, sampling, rules):
                break
            if cursor is not None:
                token = _aligned_sample(cursor, logits, masked, sampling, generator)
                raw = float(logits[token] - torch.logsumexp(logits.float(), 0))
            else:
                drawn = draw(logits[None], bitmask, params, streams)
                token, raw = drawn.ids[0], drawn.raw[0]
            finish = track.extend(token, raw, rules, scanner, tok)
            if finish == "eos":
                break
            if finish == "stop":  # the context's tail becomes the cut text's tokens
                keep = base + track.kept
                del context[keep:]
                context.extend(track.tokens[track.kept :])
                self._crop(min(self._fed, keep))
                self._logits = None
                break
            context.append(token)
            if stream is not None:
                stream.update(track.detok.text)  # type: ignore[union-attr]
            if finish is not None:
                break
            if draft and draft[0] == token:  # the draft guessed right: its next logits are here
                draft.pop(0)
                logits = ahead.pop(0)
                continue
            if draft:  # a miss: forget what the cache holds past the accepted tokens
                self._crop(self._fed - len(draft))
                draft, ahead = [], []
            if drafter is not None and not track.healing():  # none while healing
                draft = drafter.propose(context, track.matcher, track.budget(rules) - 1)
            if draft:
                rows = self._forward_rows(
                    torch.tensor([[token, *draft]], dtype=torch.long, device=self._device),
                    keep=len(draft) + 1,
                )[0]
                logits, ahead = rows[0], list(rows[1:])
            else:
                logits = self._forward_one(token)
        return track.generation(tok)


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
