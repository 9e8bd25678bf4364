"""The batched decode loop with every row's constraint state on the device (see device_tables.py).

Per step, all as tensor ops on the model's device: gather each row's bitmask from its state, draw with the
fused sampler (keys: the row's stream seed and draw count), record the token, advance the state, mark rows
done (EOS, a complete value, the row's max_tokens), feed the tokens back. The host looks at the batch
only every `sync_every` steps (every step on CPU, where it costs nothing) to stop when every row is done
and to drop done rows from the batch. At the end each row's tokens are replayed through its `Track` on
the host (matcher, finish reason, text), which gives what the step-by-step host loop gives: the same
masks, the same keys, so the same tokens.

Eligible rows (`eligible`): no constraint or a counter-free token automaton, no stop strings or stop
regex (they need text), no entropy rule, no typical-p (the fused sampler does not do it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from decc.errors import InternalError
from decc.grammars.tokens.budget import budget_row, distances

from .device_tables import DeviceTables, supports
from .kernels.sample import fused_sample
from .model import LanguageModel
from .sampling import key64, sampling_columns
from .step import Track

__all__ = ["decode_on_device", "eligible"]


def eligible(spec: Any) -> bool:
    """Whether a `RowSpec` can decode in the device loop."""
    return (
        supports(spec.matcher)
        and spec.rules.scanner() is None
        and spec.rules.stop_entropy is None
        and (spec.sampling.greedy or spec.sampling.typical_p >= 1.0)
    )


class _Fixed(NamedTuple):
    """Per-row tensors that stay as they are for the whole loop (rows only leave)."""

    temperature: torch.Tensor
    top_k: torch.Tensor
    top_p: torch.Tensor
    min_p: torch.Tensor
    seed: torch.Tensor
    first: torch.Tensor  # the stream's draw count at the start: draw `step` has key (seed, first + step)
    min_tokens: torch.Tensor
    never_eos: torch.Tensor
    max_tokens: torch.Tensor


def decode_on_device(
    lm: LanguageModel,
    specs: Sequence[Any],
    tracks: Sequence[Track],
    logits: torch.Tensor,
    mask: torch.Tensor,
    positions: torch.Tensor,
    cache: Any,
    *,
    sync_every: int | None = None,
) -> None:
    """Decode `specs` (one per row of `logits`, the prefill's last logits) into `tracks`, stepping `cache`
    through `lm.engine`."""
    engine = lm.engine
    device = engine.device
    n = len(specs)
    if sync_every is None:
        sync_every = 1 if device.type == "cpu" else 8
    automata = [s.matcher.automaton for s in specs if s.matcher is not None]
    tables = DeviceTables(automata, engine.vocab_size, engine.eos_ids, device)

    def column(values: list, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype, device=device)

    streams = [s.generator for s in specs]
    fixed = _Fixed(  # what each row keeps for the whole loop
        *sampling_columns([s.sampling for s in specs], device),
        seed=column([key64(g.seed) if g is not None else 0 for g in streams], torch.int64),
        first=column([g.count if g is not None else 0 for g in streams], torch.int64),
        min_tokens=column([0 if s.rules.ignore_eos else s.rules.min_tokens for s in specs], torch.int64),
        never_eos=column([s.rules.ignore_eos for s in specs], torch.bool),
        max_tokens=column([s.rules.max_tokens for s in specs], torch.int64),
    )
    state = column([tables.start(s.matcher) for s in specs], torch.int64)
    steps = max(s.rules.max_tokens for s in specs)
    history = torch.zeros((n, steps), dtype=torch.int64, device=device)
    raw_lp = torch.zeros((n, steps), dtype=torch.float32, device=device)
    length = torch.zeros(n, dtype=torch.int64, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    where = torch.arange(n, device=device)  # the spec each batch row holds
    failed = torch.zeros((), dtype=torch.bool, device=device)
    # Budget-aware masks (grammars/tokens/budget.py) can differ from the plain rows only within `horizon` tokens
    # of a row's max_tokens: before that step no row needs them, and the loop stays on the device.
    bind_from = min(
        (s.rules.max_tokens - distances(s.matcher.automaton).horizon for s in specs if s.matcher is not None),
        default=steps,
    )
    step = 0
    while True:
        lse = torch.logsumexp(logits.float(), dim=-1)
        no_eos = fixed.never_eos | (step < fixed.min_tokens)
        bitmask = tables.masks(state, no_eos)
        if step >= bind_from:
            _budgeted(bitmask, tables, specs, state, where, done, no_eos, step)
        out = fused_sample(logits, bitmask, *fixed[:4], fixed.seed, fixed.first + step, mass=False)
        tokens = torch.where(done, torch.zeros_like(out.tokens), out.tokens)
        history[where, step] = tokens
        raw_lp[where, step] = logits.gather(1, tokens[:, None])[:, 0].float() - lse
        failed = failed | (out.empty & ~done).any()
        state, eos = tables.advance(state, tokens)
        ended = ~done & (eos | tables.final[state] | (step + 1 >= fixed.max_tokens))
        length[where] = torch.where(ended, step + 1, length[where])
        done = done | ended
        step += 1
        look = step >= steps or step == 1 or step % sync_every == 0  # the host looks (a sync)
        if look and bool(failed):
            raise InternalError("every token is masked: the constraint allows nothing at this step")
        if step >= steps:
            break
        if look:
            keep = (~done).nonzero().squeeze(1)
            if len(keep) == 0:
                break
            if len(keep) < len(done):
                engine.select_rows(cache, keep)
                mask, positions, tokens, state, done, where = (
                    t[keep] for t in (mask, positions, tokens, state, done, where)
                )
                fixed = _Fixed._make(t[keep] for t in fixed)
        mask = torch.cat([mask, torch.ones((len(where), 1), dtype=mask.dtype, device=device)], dim=1)
        positions = positions[:, -1:] + 1
        logits = engine.step(cache, tokens, mask=mask, positions=positions)
    _replay(lm, specs, tracks, history.tolist(), raw_lp.tolist(), length.tolist())


def _budgeted(
    bitmask: torch.Tensor,
    tables: DeviceTables,
    specs: Sequence[Any],
    state: torch.Tensor,
    where: torch.Tensor,
    done: torch.Tensor,
    no_eos: torch.Tensor,
    step: int,
) -> None:
    """Replace, in place, the rows whose budget binds by their budgeted rows, as `RowMasker` fills them on
    the host (a row whose EOS is held back and whose budgeted row allows no text keeps its plain row).
    A host round trip, but only over a value's last few tokens."""
    rows, new = [], []
    columns = (state.tolist(), where.tolist(), done.tolist(), no_eos.tolist())
    for r, (s, w, d, e) in enumerate(zip(*columns, strict=True)):
        m = specs[w].matcher
        if d or m is None or s >= tables.free:
            continue
        auto = m.automaton
        tight = budget_row(auto, s - tables.offsets[id(auto)], specs[w].rules.max_tokens - step)
        if tight is None or (e and tight[1] == 0):
            continue
        rows.append(r)
        new.append(tight[0])
    if rows:
        at = torch.tensor(rows, dtype=torch.long, device=bitmask.device)
        tight_rows = torch.stack(new).to(bitmask.device)
        held = no_eos.index_select(0, at)[:, None]
        bitmask.index_copy_(0, at, torch.where(held, tight_rows & tables.not_eos_words, tight_rows))


def _replay(
    lm: LanguageModel,
    specs: Sequence[Any],
    tracks: Sequence[Track],
    history: list[list[int]],
    raw_lp: list[list[float]],
    length: list[int],
) -> None:
    """Feed each row's tokens through its track (matcher, finish) and move its stream past its draws."""
    tok = lm.tokenizer
    for spec, tr, toks, lps, k in zip(specs, tracks, history, raw_lp, length, strict=True):
        for t, lp in zip(toks[:k], lps[:k], strict=True):
            if tr.extend(t, lp, spec.rules, None, tok) is not None:
                break
        if tr.finish is None:
            tr.finish = "length"
        if spec.generator is not None:
            spec.generator.count += k
