"""Beam search as transformers defines it, over any constraint, and diverse beam search (groups with a
Hamming diversity penalty, Vijayakumar et al. 2016).

Reference loop (one group; diverse search runs the groups in order within each step):

    scores = running beam scores, the first beam 0 and the others -1e9 (so step one expands one beam)
    each step s (the new token is the (s+1)-th):
        cand[b, t] = scores[b] + log_softmax(logits[b])[t]   (masked tokens -inf; in group g, minus
                     diversity x how many earlier groups' beams chose t at this step)
        top K = max(2, 1 + #EOS) x width candidates
        a candidate "hits" when it ends the value: EOS, a stop string, a constraint that allows nothing
        more, or the last allowed token (s + 1 == max_tokens; under a constraint a value cut off there
        that the constraint does not accept is kept aside, and returned only if nothing completed)
        finished: hitting candidates ranked within the top `width` join with score cand / (s+1)^length_penalty,
            unless the finished set is full under early stopping or the heuristic below said stop;
            the best `width` finished are kept
        running: the best `width` non-hitting candidates (fewer: the rest of the rows are dead)
        the heuristic: stop adding once best running / (s+1)^lp <= worst finished (when `width` finished)
    stop when every group is done (heuristic, or full under early stopping), no candidate continues, or
    at max_tokens; the answer is the best finished hypothesis.

The KV cache rows follow the beams: after each step the rows are reordered in place (`select_rows`), and
only rows whose beam changed are copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from decc.compiler.plan import Beam
from decc.errors import InternalError

from .decode import DecodeSession
from .detokenize import IncrementalDetokenizer
from .masking import RowMasker
from .step import Hypothesis, StepRules, Track

__all__ = ["beam_search"]

_NEG_INF = float("-inf")
_BIG = 1.0e9


class _Done(NamedTuple):
    """A finished hypothesis with where it was drawn: its parent's cache row and the step."""

    score: float
    track: Track
    row: int
    step: int


@dataclass
class _Group:
    rows: list[Track | None]  # the running beams: beam i of group g sits in cache row g * width + i
    scores: list[float]
    finished: list[_Done] = field(default_factory=list)
    open: bool = True  # transformers' is_early_stop_heuristic_unsatisfied

    def done(self, width: int, early: bool) -> bool:
        return not self.open or (early and len(self.finished) == width)


def beam_search(
    session: DecodeSession,
    params: Beam,
    rules: StepRules,
    matcher: Any | None,
) -> tuple[Track, list[Hypothesis]]:
    """Run beam search after the session's context; the winner joins the context. Returns the winner and
    every finished hypothesis, best first."""
    tok = session.lm.tokenizer
    width, n_groups = params.width, params.groups
    wg = width // n_groups
    scanner = rules.scanner()

    def new_track() -> Track:
        return Track(
            matcher.clone() if matcher is not None else None,
            IncrementalDetokenizer(tok) if scanner is not None else None,
        )

    groups = [_Group([new_track() for _ in range(wg)], [0.0] + [-_BIG] * (wg - 1)) for _ in range(n_groups)]
    k = max(2, 1 + len(rules.eos_ids)) * wg
    masker = RowMasker(session.lm.vocab_size, rules.eos_ids, session._device)
    identity = torch.arange(width, device=session._device)
    cut: list[_Done] = []  # candidates the constraint did not accept when max_tokens ran out
    with torch.inference_mode():
        logits = session.fork(width)
        step = 0
        while True:
            logp = torch.log_softmax(logits.float(), dim=-1)
            masker(
                logp,
                [t.matcher if t is not None else None for g in groups for t in g.rows],
                rules.no_eos(step),
                rules.max_tokens - step,
            )
            vocab = logp.shape[1]
            last = step + 1 == rules.max_tokens
            counts = torch.zeros(vocab, device=logp.device) if n_groups > 1 and params.diversity else None
            src: list[int] = []
            next_tokens: list[int] = []
            continues = False
            for gi, g in enumerate(groups):
                lp = logp[gi * wg : (gi + 1) * wg]
                if counts is not None and gi:
                    lp = lp - params.diversity * counts
                cand = (lp + torch.tensor(g.scores, device=lp.device)[:, None]).view(-1)
                top_s, top_i = torch.topk(cand, min(k, cand.numel()))
                top_b, top_t = top_i // vocab, top_i % vocab
                raw = logp[gi * wg + top_b, top_t].tolist()  # unpenalized: what the tokens cost the model
                running: list[tuple[int, float, Track, int]] = []
                new_done: list[_Done] = []
                for j, (score, b, t) in enumerate(
                    zip(top_s.tolist(), top_b.tolist(), top_t.tolist(), strict=True)
                ):
                    if score == _NEG_INF:
                        break
                    parent = g.rows[b]
                    if parent is None:
                        continue
                    if len(running) >= wg and j >= wg:
                        break  # nothing below here can run or finish
                    child = parent.fork()
                    finish = child.extend(t, raw[j], rules, scanner, tok)  # "length" at the last step
                    if finish is None:
                        if len(running) < wg:
                            running.append((b, score, child, t))
                        continue
                    done = _Done(score / ((step + 1) ** params.length_penalty), child, gi * wg + b, step)
                    if finish == "length" and not child.complete():
                        if j < wg:  # cut off mid-value: not an answer unless there is no other
                            cut.append(done)
                        continue
                    if j < wg:
                        new_done.append(done)
                full = params.early_stopping and len(g.finished) == wg
                if new_done and g.open and not full:
                    merged = g.finished + new_done
                    merged.sort(key=lambda d: -d.score)  # stable: earlier entries win ties
                    g.finished = merged[:wg]
                g.rows = [c for _, _, c, _ in running] + [None] * (wg - len(running))
                g.scores = [s for _, s, _, _ in running] + [_NEG_INF] * (wg - len(running))
                src += [gi * wg + b for b, _, _, _ in running] + [gi * wg] * (wg - len(running))
                next_tokens += [t for _, _, _, t in running] + [0] * (wg - len(running))
                # The Hamming penalty counts real beams only: the placeholders' tokens are float32 ties
                # (-1e9 + x rounds to -1e9), so which of them runs is arbitrary and must not matter.
                chosen = [t for _, score, _, t in running if score > -_BIG / 2]
                if counts is not None and chosen:
                    counts.index_add_(
                        0,
                        torch.tensor(chosen, device=counts.device),
                        torch.ones(len(chosen), device=counts.device),
                    )
                continues = continues or bool(running)
                best = g.scores[0] / ((step + 1) ** params.length_penalty) if running else _NEG_INF
                worst = min(d.score for d in g.finished) if len(g.finished) == wg else -_BIG
                g.open = g.open and best > worst
            if last or not continues or all(g.done(wg, params.early_stopping) for g in groups):
                break
            rows = torch.tensor(src, device=session._device)
            session.select_rows(rows, identity)
            logits = session.step_rows(torch.tensor(next_tokens, device=session._device))
            step += 1
    finished = sorted((d for g in groups for d in g.finished), key=lambda d: -d.score)
    if not finished:  # no beam completed a value within max_tokens: the best ones cut off
        finished = sorted(cut, key=lambda d: -d.score)[:width]
        if not finished:
            raise InternalError("every beam was masked: the constraint allows nothing at this step")
    # Hypotheses grown from the placeholder beams of step one (score -1e9) are artifacts of the rules,
    # kept above so the rules match transformers', but not answers: left out unless there is nothing else.
    finished = [e for e in finished if not _placeholder(e, params.length_penalty)] or finished[:1]
    best = finished[0]
    session.join(best.track, best.row, best.step, step)
    return best.track, [d.track.hypothesis(tok, d.score) for d in finished]


def _placeholder(done: _Done, length_penalty: float) -> bool:
    return done.score * (done.step + 1) ** length_penalty - done.track.logprob < -_BIG / 2
