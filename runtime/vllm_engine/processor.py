"""decc's constraints inside vLLM: a logits processor that vLLM loads through the `vllm.logits_processors`
entry point. vLLM has two processor interfaces, and its loaders check the class against theirs: the V1
model runner's (what the CPU build runs; batch updates carry each request's live output-token list) and
Model Runner V2's (the GPU default; requests are slots, tokens are read from the runner's token table). One
class implements both, so an installed decc never stops either runner from starting.

A request opts in with `decc_*` extra args (constraints.py). Each step the processor advances the request's
decc matcher by the tokens vLLM sampled since the last step and masks its row exactly as decc's own loop
does (runtime/masking.py `RowMasker`: the matcher's tokens within the remaining max_tokens budget, EOS
exactly where the matcher accepts and EOS is not held back); columns past decc's vocabulary (padding) are
masked too. Where the matcher is complete and allows nothing more, only EOS is left (decc ends the value
there, "constraint"). Requests without `decc_*` args are left alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates
from vllm.v1.worker.gpu.sample.logits_processor.interface import LogitsProcessor as LogitsProcessorV2

from decc.errors import InternalError
from decc.runtime.kernels.bitmask import apply_token_bitmask_inplace
from decc.runtime.masking import RowMasker

from .constraints import TRACE_ENV, factory, read_args, wanted

__all__ = ["DeccLogitsProcessor", "allowed_digest"]

_log = logging.getLogger("decc.vllm")


def allowed_digest(ids: np.ndarray) -> str:
    """A short digest of a sorted array of allowed token ids (what the trace records and tests compare)."""
    return hashlib.sha1(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()[:16]


class _EndNow:
    """A constraint that allows nothing but EOS (a request whose constraint failed to bind in the worker)."""

    def matcher(self) -> _EndNow:
        return self

    def fill_bitmask(self, row: torch.Tensor, budget: int | None = None) -> None:
        pass

    def advance(self, token_id: int) -> bool:
        return False

    def is_accepting(self) -> bool:
        return True

    def can_continue(self) -> bool:
        return False


@dataclass
class _Row:
    """One request's state: its matcher, the live list of its output tokens, how many it has consumed."""

    matcher: Any
    output: list[int]
    max_tokens: int | None
    min_tokens: int
    ignore_eos: bool
    trace: str | None
    seen: int = 0
    eos: frozenset[int] = field(default_factory=frozenset)

    def catch_up(self) -> None:
        while self.seen < len(self.output):
            token = self.output[self.seen]
            if token < 0:  # a placeholder for a token still in flight (async scheduling)
                return
            if token not in self.eos and not self.matcher.advance(token):
                raise InternalError(f"the decc matcher refused token {token} that its own mask allowed")
            self.seen += 1

    def finished(self) -> bool:
        return bool(self.matcher.is_accepting() and not self.matcher.can_continue())


class DeccLogitsProcessor(LogitsProcessor, LogitsProcessorV2):
    """Masks the rows of requests that carry `decc_*` extra args; the vocabulary is vLLM's tokenizer's,
    loaded on the first such request (engines that never see one pay nothing). V1 calls `__init__(config,
    device, pin_memory)`, `update_state` and `apply(logits)`; V2 calls `__init__(config, request_states)`,
    `add_request` and `apply(logits, context)`."""

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        extra = sampling_params.extra_args
        if wanted(extra):
            factory(read_args(extra), None)

    def __init__(self, vllm_config: Any, *args: Any) -> None:
        self._model = vllm_config.model_config
        self._states = args[0] if len(args) == 1 else None  # V2: the runner's per-slot request state
        self._rows: dict[int, _Row] = {}
        self._vocab: Any = None
        self._masker: RowMasker | None = None
        self._factories: dict[Any, Any] = {}
        self._trace = os.environ.get(TRACE_ENV)

    def is_argmax_invariant(self) -> bool:
        return False

    def _vocabulary(self) -> Any:
        if self._vocab is None:
            from decc.grammars import Vocabulary
            from decc.runtime.model import load_tokenizer, model_facts

            folder = str(self._model.model)
            tokenizer = load_tokenizer(str(self._model.tokenizer or folder))
            size, eos = model_facts(folder)
            self._vocab = Vocabulary.from_tokenizer(tokenizer, size=size, eos_ids=eos)
            self._masker = RowMasker(self._vocab.size, self._vocab.eos_ids, "cpu")
        return self._vocab

    def _new_row(self, params: SamplingParams, prompt: list[int] | None, output: list[int]) -> _Row | None:
        extra = params.extra_args
        if not wanted(extra):
            return None
        args = read_args(extra)
        vocab = self._vocabulary()
        key = (args.program, args.path, args.gen, args.gen_at, args.regex, args.json_schema)
        made = self._factories.get(key)
        if made is None:
            try:
                made = self._factories[key] = factory(args, vocab)
            except Exception as e:  # validate_params compiled it; binding failed: end the request, not vLLM
                _log.error("decc: a request's constraint could not be bound (%s); it ends at once", e)
                made = _EndNow()
        if made is None:  # an unconstrained gen of a program: vLLM's own EOS rules serve it
            return None
        row = _Row(made.matcher(), output, params.max_tokens, args.min_tokens, args.ignore_eos, args.trace)
        row.eos = vocab.eos_ids
        return row

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self._rows, batch_update, self._new_row)

    def add_request(self, req_idx: int, sampling_params: SamplingParams) -> bool:
        """V2: a request entered slot `req_idx`; its tokens are read from the runner's table."""
        row = self._new_row(sampling_params, None, [])
        if row is None:
            self._rows.pop(req_idx, None)
            return False
        self._rows[req_idx] = row
        return True

    def apply(self, logits: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        if not self._rows:
            return logits
        if ctx is None:  # V1: batch index -> row; the output lists are live
            order = sorted(self._rows)
            return self._mask(logits, order, [self._rows[i] for i in order])
        slots = ctx.expanded_idx_mapping.cpu().tolist()
        order = [k for k, slot in enumerate(slots) if slot in self._rows]
        if not order:
            return logits
        if len(set(slots)) != len(slots):
            raise InternalError("the decc logits processor does not run with speculative decoding")
        rows = [self._rows[slots[k]] for k in order]
        for k, r in zip(order, rows, strict=True):
            self._read_tokens(slots[k], r)
        return self._mask(logits, order, rows)

    def _read_tokens(self, slot: int, row: _Row) -> None:
        """V2: append the slot's output tokens that the row has not seen (from the runner's token table)."""
        states = self._states
        start = int(states.prompt_len.np[slot]) + len(row.output)
        end = int(states.total_len.gpu[slot])
        if end > start:
            row.output.extend(int(t) for t in states.all_token_ids.gpu[slot, start:end].tolist())

    def _mask(self, logits: torch.Tensor, order: list[int], rows: list[_Row]) -> torch.Tensor:
        assert self._masker is not None
        for r in rows:
            r.catch_up()
        flags = [r.ignore_eos or r.seen < r.min_tokens for r in rows]
        budgets = [None if r.max_tokens is None else max(1, r.max_tokens - r.seen) for r in rows]
        bitmask = self._masker.bitmask([r.matcher for r in rows], flags, budgets)
        assert bitmask is not None  # every row has a matcher
        index = torch.tensor(order, dtype=torch.long, device=logits.device)
        picked = logits.index_select(0, index)
        apply_token_bitmask_inplace(picked, bitmask.to(picked.device))
        eos = sorted(self._vocab.eos_ids)
        for k, r in enumerate(rows):
            if r.finished():  # decc ends the value here ("constraint"); vLLM needs its EOS to end it
                raw = logits[order[k]]
                picked[k].fill_(float("-inf"))
                picked[k, eos] = raw[eos]
        logits.index_copy_(0, index, picked)
        if self._trace:
            self._write_trace(rows, picked)
        return logits

    def _write_trace(self, rows: list[_Row], picked: torch.Tensor) -> None:
        finite = torch.isfinite(picked).cpu().numpy()
        with open(self._trace, "a") as f:
            for k, r in enumerate(rows):
                if r.trace is None:
                    continue
                ids = np.flatnonzero(finite[k])
                record = {
                    "trace": r.trace,
                    "prefix": [int(t) for t in r.output[: r.seen]],
                    "digest": allowed_digest(ids),
                    "count": int(ids.size),
                    "finished": r.finished(),
                }
                f.write(json.dumps(record) + "\n")
