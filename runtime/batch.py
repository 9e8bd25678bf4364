"""Many runs of one program at once: their gen steps decoded as the rows of one batch.

Each run walks its plan on its own (text, branches) until it reaches a gen step; the runs waiting on a gen
are decoded together: their contexts left-padded into one prefill with an attention mask, then one forward
per step for every row still going, each row with its own constraint, sampling parameters, seed and
stopping rules. Rows that finish leave the batch. A row draws from its own generator seeded as a single
run seeds it, so a batch gives what each input gives alone (up to float rounding between padded and
unpadded shapes). Steps that use a search policy or `mode: aligned` run alone, as in a single run.

The rows' common prefix (a system prompt, the chat template's head) is fed once and its cache rows copied
to every row; the rest is left-padded after it. After each step's prefill every row's keys and values for
its context are kept (`PastKV`), so the run's next gen step feeds only the value and the text after it:
the pasts are left-padded into the new cache and the new tokens follow, with the padding masked out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from decc.compiler.plan import Plan, PlanGen, Sampling, plan_gens

from .detokenize import IncrementalDetokenizer
from .device_loop import decode_on_device, eligible
from .engine import Engine, PastKV
from .executor import ProgramRun, Result, bind_inputs, sampling_params, step_rules
from .masking import RowMasker, masked_copy
from .model import LanguageModel
from .sampling import SamplingParams, Stream, make_generator
from .step import Generation, StepRules, Track, draw

__all__ = ["PastKV", "RowSpec", "execute_batch", "generate_rows"]

SHARE_MIN = 8  # a shared prefix shorter than this is not worth its own forward pass


@dataclass
class RowSpec:
    """One row of a batched gen: its context, rules, sampling, matcher and random stream."""

    context: list[int]
    rules: StepRules
    sampling: SamplingParams
    matcher: Any | None
    generator: Stream | None
    past: PastKV | None = None  # keys and values of the context's first tokens, from the previous step
    saved: PastKV | None = field(default=None, repr=False)  # filled by generate_rows(keep_past=True)


def generate_rows(
    lm: LanguageModel,
    rows: Sequence[RowSpec],
    *,
    on_device: bool | None = None,
    overlap: bool | None = None,
    keep_past: bool = False,
) -> list[Generation]:
    """Decode one value per row after its context, all rows in one batch (left padding, attention mask).

    Rows whose constraints and rules allow it decode in the device loop (device_loop.py: no host round
    trip per step); the others step by step here. `on_device` forces one or the other (tests compare them);
    `overlap` runs the host loop's host work beside the forward pass (default: on CUDA).

    A row with a `past` feeds only its context after `past.length` tokens; with `keep_past` each row's
    keys and values for its whole context are saved (in `row.saved`) right after the prefill.
    """
    engine = lm.engine
    device = engine.device
    tok = lm.tokenizer
    n = len(rows)
    pad = getattr(tok, "pad_token_id", None)
    pad = int(pad) if pad is not None else min(engine.eos_ids)
    cache = engine.new_cache()
    known = [r.past.length if r.past is not None and r.past.length < len(r.context) else 0 for r in rows]
    held = max(known)  # the widest past: every row's past is left-padded to it
    shared = _shared_prefix([r.context for r in rows]) if n > 1 and not held else 0
    if shared < SHARE_MIN:
        shared = 0
    width = max(len(r.context) - k for r, k in zip(rows, known, strict=True)) - shared
    ids = torch.full((n, width), pad, dtype=torch.long, device=device)
    mask = torch.zeros((n, held + shared + width), dtype=torch.long, device=device)
    mask[:, :shared] = 1
    for i, r in enumerate(rows):
        rest = r.context[shared + known[i] :]
        ids[i, width - len(rest) :] = torch.tensor(rest, dtype=torch.long)
        mask[i, held - known[i] : held] = 1
        mask[i, held + shared + width - len(rest) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, held + shared :]
    if held:
        engine.import_rows(cache, [r.past for r in rows], known, held)
    tracks = [
        Track(r.matcher, IncrementalDetokenizer(tok) if r.rules.scanner() is not None else None) for r in rows
    ]
    live = [i for i, r in enumerate(rows) if not _done_at_start(tracks[i], r)]
    with torch.inference_mode():
        if shared:  # the common prefix (a system prompt, a template) is computed once and its rows copied
            head = torch.tensor([rows[0].context[:shared]], dtype=torch.long, device=device)
            engine.prefill(
                cache, head, mask=mask[:1, :shared], positions=torch.arange(shared, device=device)[None]
            )
            engine.fork(cache, n)
        logits = engine.prefill(cache, ids, mask=mask, positions=positions)
        if keep_past:
            for i in live:
                rows[i].saved = _past_of(engine, cache, i, mask[i], len(rows[i].context))
        if len(live) < n:
            keep = torch.tensor(live, dtype=torch.long, device=device)
            engine.select_rows(cache, keep)
            logits, mask, positions = logits[keep], mask[keep], positions[keep]
        if on_device is None:
            on_device = all(eligible(rows[i]) for i in live)
        if on_device and live:
            if not all(eligible(rows[i]) for i in live):
                raise ValueError("a row's constraint or rules need the host loop")
            decode_on_device(
                lm, [rows[i] for i in live], [tracks[i] for i in live], logits, mask, positions, cache
            )
            live = []
        if live:
            if overlap is None:
                overlap = device.type == "cuda"
            _decode_on_host(lm, rows, tracks, live, logits, mask, positions, cache, overlap)
    return [_value(t.generation(tok), r.rules.skip) for t, r in zip(tracks, rows, strict=True)]


def _value(gen: Generation, skip: int) -> Generation:
    """A healed row's text without the re-spelled prompt text (its tokens keep it: they join the context)."""
    return replace(gen, text=gen.text[skip:], healed=gen.text[:skip]) if skip else gen


def _decode_on_host(
    lm: LanguageModel,
    rows: Sequence[RowSpec],
    tracks: list[Track],
    live: list[int],
    logits: torch.Tensor,
    mask: torch.Tensor,
    positions: torch.Tensor,
    cache: Any,
    overlap: bool,
) -> None:
    """The step-by-step loop; with `overlap` the host's share of each step runs beside the forward pass.

    Overlapped, after a draw the rows that surely go on (not EOS, not at their budget) are fed to the
    forward pass at once, while a worker thread extends every row's track (matcher, stop scan) and fills
    the next step's bitmask (pushdown masks are the costly part). Rows the worker finds finished (a stop
    string, a complete value) are dropped afterwards: one extra forward row is the price of not waiting.
    That pays where the forward runs on a GPU; on a CPU the forward's own Python needs the GIL between
    ops, so the default there is inline: extend, fill, then forward.
    """
    engine = lm.engine
    device = engine.device
    host = _HostWork(rows, tracks, RowMasker(engine.vocab_size, engine.eos_ids, device), lm.tokenizer)
    bitmask = host.bitmask(live)
    with ThreadPoolExecutor(1, thread_name_prefix="decc-mask") as pool:
        while live:
            ending = {
                r
                for r, i in enumerate(live)
                if rows[i].rules.stop_entropy is not None
                and tracks[i].entropy_stop(_masked_row(logits, bitmask, r), rows[i].sampling, rows[i].rules)
            }
            drawn = draw(logits, bitmask, [rows[i].sampling for i in live], [rows[i].generator for i in live])
            ids, picked = drawn.ids, drawn.raw
            go = [
                r
                for r, i in enumerate(live)
                if r not in ending
                and ids[r] not in rows[i].rules.eos_ids
                and (tracks[i].healing() or tracks[i].budget(rows[i].rules) > 1)
            ]  # a healing row's budget is known once its drawn token is taken (the track's extend says)

            if overlap:
                work = pool.submit(host.step, live, go, ending, ids, picked)
            else:  # on a CPU the forward needs the GIL between ops: the host's share goes first, inline
                host.extend(live, ending, ids, picked)
                go = [r for r in go if tracks[live[r]].finish is None]
            if go:
                keep = torch.tensor(go, dtype=torch.long, device=device)
                if len(go) < len(live):
                    engine.select_rows(cache, keep)
                    mask, positions = mask[keep], positions[keep]
                feed = drawn.tokens[keep]
                mask = torch.cat([mask, torch.ones((len(go), 1), dtype=mask.dtype, device=device)], dim=1)
                positions = positions[:, -1:] + 1
                if not overlap:
                    bitmask = host.bitmask([live[r] for r in go])
                logits = engine.step(cache, feed, mask=mask, positions=positions)
            if overlap:
                bitmask = work.result()
            still = [k for k, r in enumerate(go) if tracks[live[r]].finish is None]
            if len(still) < len(go) and still:
                keep = torch.tensor(still, dtype=torch.long, device=device)
                engine.select_rows(cache, keep)
                logits, mask, positions = logits[keep], mask[keep], positions[keep]
                bitmask = bitmask[keep] if bitmask is not None else None
            live = [live[go[k]] for k in still]


@dataclass
class _HostWork:
    """The host's share of a step: extend the rows' tracks by their drawn tokens, fill the next bitmask."""

    rows: Sequence[RowSpec]
    tracks: list[Track]
    masker: RowMasker
    tokenizer: Any
    scanners: list[Any] = field(init=False)

    def __post_init__(self) -> None:
        self.scanners = [r.rules.scanner() for r in self.rows]

    def extend(self, live: list[int], ending: set[int], ids: list[int], picked: list[float]) -> None:
        for r, i in enumerate(live):
            if r not in ending:
                self.tracks[i].extend(ids[r], picked[r], self.rows[i].rules, self.scanners[i], self.tokenizer)

    def bitmask(self, going: list[int]) -> torch.Tensor | None:
        """The next step's bitmask for the rows `going`."""
        tracks = [self.tracks[i] for i in going]
        rules = [self.rows[i].rules for i in going]
        return self.masker.bitmask(
            [t.matcher for t in tracks],
            [t.no_eos(r) for t, r in zip(tracks, rules, strict=True)],
            [t.budget(r) for t, r in zip(tracks, rules, strict=True)],
        )

    @torch.inference_mode()
    def step(
        self, live: list[int], go: list[int], ending: set[int], ids: list[int], picked: list[float]
    ) -> torch.Tensor | None:
        """Both, on the worker thread beside the forward pass. Inference mode is per thread, and the
        buffers were made under it, so the worker enters it too."""
        self.extend(live, ending, ids, picked)
        return self.bitmask([live[r] for r in go])


def _masked_row(logits: torch.Tensor, bitmask: torch.Tensor | None, r: int) -> torch.Tensor:
    return masked_copy(logits[r : r + 1], bitmask[r : r + 1] if bitmask is not None else None)[0]


def _shared_prefix(contexts: Sequence[list[int]]) -> int:
    """Tokens every context starts with, leaving each at least one of its own (its logits come from it)."""
    first = contexts[0]
    limit = min(len(c) for c in contexts) - 1
    k = 0
    while k < limit and all(c[k] == first[k] for c in contexts):
        k += 1
    return k


def _done_at_start(track: Track, spec: RowSpec) -> bool:
    m = spec.matcher
    if m is not None and m.is_accepting() and not m.can_continue():
        track.finish = "constraint"
        return True
    if spec.rules.max_tokens == 0:
        track.finish = "length"
        return True
    return False


def _past_of(engine: Engine, cache: Any, row: int, mask: torch.Tensor, length: int) -> PastKV | None:
    """Row `row`'s keys and values at its real (unmasked) positions: its whole context."""
    at = mask.nonzero().squeeze(1)
    assert at.numel() == length, (at.numel(), length)
    return engine.export_row(cache, row, at)


def execute_batch(
    plan: Plan,
    lm: LanguageModel,
    inputs: Sequence[Mapping[str, Any]],
    *,
    batch_size: int = 8,
    aligned: dict | None = None,
    on_result: Callable[[int, Result], None] | None = None,
    suffixes: dict | None = None,
) -> list[Result]:
    """Run `plan` once per input, `batch_size` runs at a time; `on_result(index, result)` is called as each
    batch completes (the CLI writes rows as they come). Inputs are all checked before anything runs."""
    envs = []
    for i, given in enumerate(inputs):
        try:
            envs.append(bind_inputs(plan.inputs, given))
        except Exception as err:
            from decc.errors import DeccError

            if isinstance(err, DeccError):
                err.message = f"input row {i + 1}: {err.message}"
            raise
    shared = {} if aligned is None else aligned
    results: list[Result] = []
    for start in range(0, len(envs), batch_size):
        runs = [ProgramRun(plan, lm, env, shared, suffixes) for env in envs[start : start + batch_size]]
        _drive(runs, lm)
        for k, run in enumerate(runs):
            result = run.result()
            results.append(result)
            if on_result is not None:
                on_result(start + k, result)
    return results


def _drive(runs: list[ProgramRun], lm: LanguageModel) -> None:
    """Walk every run to its next gen, decode the batchable gens together, repeat until all are done."""
    walks: list[Iterator[PlanGen] | None] = [run.walk(run.plan.steps) for run in runs]
    waiting: dict[int, PlanGen] = {}
    pasts: dict[int, PastKV | None] = {}
    # A program with one gen step never reads a past: copying every row's keys and values would be waste.
    keep_past = bool(runs) and len(plan_gens(runs[0].plan.steps)) > 1

    def advance(i: int) -> None:
        walk = walks[i]
        if walk is None:
            return
        step = next(walk, None)
        if step is None:
            walks[i] = None
        else:
            waiting[i] = step

    for i in range(len(runs)):
        advance(i)
    while waiting:
        batchable = [i for i, s in waiting.items() if type(s.policy) in ROW_SPECS and not s.aligned]
        for i in [i for i in waiting if i not in batchable]:
            runs[i].generate(waiting.pop(i))
            advance(i)
        if not batchable:
            continue
        specs = [ROW_SPECS[type(waiting[i].policy)](runs[i], waiting[i], lm, pasts.get(i)) for i in batchable]
        for i, spec, gen in zip(batchable, specs, generate_rows(lm, specs, keep_past=keep_past), strict=True):
            pasts[i] = spec.saved  # the next gen step of this run feeds only what comes after
            step = waiting.pop(i)
            runs[i].session.append(gen.token_ids)
            runs[i].record(step, gen)
            advance(i)


def _spec(run: ProgramRun, step: PlanGen, lm: LanguageModel, past: PastKV | None = None) -> RowSpec:
    assert isinstance(step.policy, Sampling)
    sampling = sampling_params(step.policy)
    generator = None if sampling.greedy else make_generator(sampling.seed)
    matcher = step.constraint.matcher() if step.constraint is not None else None
    healer = run.healer(step, matcher)  # takes the prompt's last token back: before the context is read
    rules = step_rules(step, lm.eos_ids)
    if healer is not None:
        rules = replace(rules, skip=len(healer.removed.decode("utf-8")))
    return RowSpec(
        context=run.session.tokens,
        rules=rules,
        sampling=sampling,
        matcher=healer or matcher,
        generator=generator,
        past=past,
    )


RowSpecBuilder = Callable[[ProgramRun, PlanGen, LanguageModel, "PastKV | None"], RowSpec]
# The policies whose steps decode as rows of one batch, by plan type, with how each builds its row; a step
# of any other policy runs alone, with its runner in executor.STEP_RUNNERS.
ROW_SPECS: dict[type, RowSpecBuilder] = {Sampling: _spec}
