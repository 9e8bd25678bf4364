"""Masking rows of logits by their matchers, with EOS allowed exactly where the step's rules say.

One implementation for the single-stream loop (decode.py), beams and particles (beam.py, particles.py)
and batched runs (batch.py): a row's bits come from its matcher (all set without one), then the EOS bits
are set where the matcher accepts and EOS is not held back, and cleared elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from decc.grammars.tokens.budget import NO_LIMIT

from .kernels.bitmask import apply_token_bitmask_inplace, bitmask_words

__all__ = ["RowMasker", "masked_copy"]

_NEG_INF = float("-inf")

Budgets = int | Sequence[int | None] | None


class RowMasker:
    """Masks a `[B, V]` batch of scores in place. The rows are filled in a host buffer (pinned when the
    scores live on a GPU) and copied to the device in one transfer; both buffers are reused (grown when
    the batch grows). Filling touches only host memory, so it may run on a worker thread while the
    device runs the forward pass (batch.py overlaps them)."""

    def __init__(self, vocab_size: int, eos_ids: frozenset[int], device: torch.device | str) -> None:
        self._words = bitmask_words(vocab_size)
        self._device = torch.device(device)
        self._host = torch.empty((0, self._words), dtype=torch.int32)
        self._buf = self._host
        self._eos = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device)
        self._eos_bits = [(w, np.uint32(bits)) for w, bits in _bit_words(sorted(eos_ids))]

    def __call__(
        self,
        scores: torch.Tensor,
        matchers: Sequence[Any | None],
        no_eos: bool | Sequence[bool],
        budgets: Budgets = None,
    ) -> None:
        """`matchers`: one per row (None: no constraint). `no_eos`: one flag for every row, or one per row
        (rows of different steps in one batch). `budgets`: the tokens each row's value may still take, the
        one being drawn included (one number for every row, or one per row; None: no limit): a matcher
        then allows only tokens after which its value can still finish within them."""
        flags = [no_eos] * len(matchers) if isinstance(no_eos, bool) else list(no_eos)
        if all(m is None for m in matchers):
            if any(flags) and len(self._eos):
                if all(flags):
                    scores[:, self._eos] = _NEG_INF
                else:
                    refused = torch.tensor(flags, device=scores.device).nonzero().squeeze(1)
                    scores[refused[:, None], self._eos] = _NEG_INF
            return
        apply_token_bitmask_inplace(scores, self._fill(matchers, flags, budgets))

    def bitmask(
        self, matchers: Sequence[Any | None], no_eos: bool | Sequence[bool], budgets: Budgets = None
    ) -> torch.Tensor | None:
        """The `[B, W]` int32 bitmask of the rows (valid until the next call), None when it allows every
        token (no matcher and EOS nowhere held back): the fused sampler takes it instead of masked scores."""
        flags = [no_eos] * len(matchers) if isinstance(no_eos, bool) else list(no_eos)
        if all(m is None for m in matchers) and not (any(flags) and len(self._eos)):
            return None
        return self._fill(matchers, flags, budgets)

    def _fill(self, matchers: Sequence[Any | None], flags: Sequence[bool], budgets: Budgets) -> torch.Tensor:
        b = len(matchers)
        if self._host.shape[0] < b:
            pin = self._device.type == "cuda"
            self._host = torch.empty((b, self._words), dtype=torch.int32, pin_memory=pin)
            on_host = self._device.type == "cpu"
            self._buf = self._host if on_host else torch.empty_like(self._host, device=self._device)
        host = self._host[:b]
        host.fill_(-1)
        bits = host.numpy().view(np.uint32)
        per_row = [budgets] * b if budgets is None or isinstance(budgets, int) else list(budgets)
        for i, m in enumerate(matchers):
            if m is not None:
                host[i].zero_()
                m.fill_bitmask(host[i], per_row[i])
            allow = not flags[i] and (m is None or m.is_accepting())
            if m is not None or not allow:
                for w, eos in self._eos_bits:
                    bits[i, w] = bits[i, w] | eos if allow else bits[i, w] & ~eos
            if m is not None and per_row[i] is not None and flags[i] and not bits[i].any():
                m.fill_bitmask(host[i], NO_LIMIT)  # EOS held back, no token finishes in time: any that can
                for w, eos in self._eos_bits:
                    bits[i, w] = bits[i, w] & ~eos
        if self._device.type == "cpu":
            return host
        rows = self._buf[:b]
        rows.copy_(host, non_blocking=True)
        return rows


def masked_copy(scores: torch.Tensor, bitmask: torch.Tensor | None) -> torch.Tensor:
    """A float copy of `[B, V]` scores with the tokens `bitmask` disallows at -inf (for the steps that need
    the masked row itself: entropy rules, ASAp, typical-p; the draw takes the bitmask instead)."""
    out = scores.to(torch.float32, copy=True)
    if bitmask is not None:
        apply_token_bitmask_inplace(out, bitmask)
    return out


def _bit_words(token_ids: Sequence[int]) -> list[tuple[int, int]]:
    """(word, bits) pairs that cover `token_ids` in the packed bitmask layout, one pair per word."""
    words: dict[int, int] = {}
    for t in token_ids:
        words[t // 32] = words.get(t // 32, 0) | (1 << (t % 32))
    return sorted(words.items())
