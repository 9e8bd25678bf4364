"""The engine seam: what the runtime needs from a causal LM, and the transformers implementation of it.

The decode loops (decode.py, batch.py, device_loop.py, and the search policies through `DecodeSession`)
never call a model or reach into its KV cache: they ask an `Engine` to prefill rows, step rows, and fork,
select or crop the rows of a cache the engine made. Logits come back as float32 whatever the model's
dtype (the one cast is here), so masks, sampling and log-probabilities are the same code for a bfloat16
model as for a float32 one; a float32 model's logits are not copied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, runtime_checkable

import torch

from decc.errors import DeccError

__all__ = ["Engine", "PastKV", "TransformersEngine", "cache_keyword"]


@dataclass(frozen=True)
class PastKV:
    """One row's keys and values (per layer, [1, heads, length, dim]) for the first `length` tokens of its
    context: kept after a batched step's prefill so the run's next gen step feeds only what came after."""

    length: int
    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]


@runtime_checkable
class Engine(Protocol):
    """A causal LM as the runtime uses it. A cache (from `new_cache`) holds rows of equal length (left
    padding and an attention mask make them equal in a batch); every call that feeds tokens appends them
    to every row and returns float32 logits."""

    device: torch.device  # where the model, its cache, logits and masks live
    dtype: torch.dtype  # the model's weights (logits are float32 all the same)
    vocab_size: int  # the logits' width (may exceed the tokenizer's token count)
    eos_ids: frozenset[int]
    max_positions: int  # the longest context the model takes; 0 when its config does not say

    def new_cache(self) -> Any:
        """An empty KV cache for this model."""
        ...

    def prefill(
        self,
        cache: Any,
        ids: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        keep: int = 1,
    ) -> torch.Tensor:
        """Feed `ids` [B, n] after the cached rows (`mask` [B, cached + n] marks real tokens; `positions`
        [B, n]); the logits after each row's last token, [B, V], or with `keep` > 1 after each of its last
        `keep` tokens, [B, keep, V]."""
        ...

    def step(
        self,
        cache: Any,
        ids: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Feed one token per row (`ids` [B]); the next-token logits of every row, [B, V]."""
        ...

    def fork(self, cache: Any, n: int) -> None:
        """One cached row becomes `n` equal rows."""
        ...

    def select_rows(self, cache: Any, rows: torch.Tensor, identity: torch.Tensor | None = None) -> None:
        """Row i becomes old row `rows[i]` (repeats fork, a shorter list drops); `identity`, arange(B)
        built once by the caller, lets rows that stay put go uncopied."""
        ...

    def crop(self, cache: Any, tokens: int) -> None:
        """Forget the last `tokens` positions of every row."""
        ...

    def export_row(self, cache: Any, row: int, at: torch.Tensor) -> PastKV | None:
        """Row `row`'s keys and values at positions `at` (its real tokens), or None when this cache cannot
        give them (special layers): the caller then feeds the whole context next time."""
        ...

    def import_rows(
        self, cache: Any, pasts: Sequence[PastKV | None], known: Sequence[int], held: int
    ) -> None:
        """Start an empty cache with each row's first `known[i]` past positions right-aligned in `held`
        slots (zeros before them: the caller masks them out)."""
        ...


@cache
def cache_keyword(model_class: type) -> str:
    """`cache` where the model's forward takes it (transformers 5.x, which deprecates `past_key_values`
    with a FutureWarning on every call), else `past_key_values` (older transformers)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


class TransformersEngine:
    """`Engine` over a transformers causal LM, with the growing KV cache of kvcache.py."""

    def __init__(self, model: Any, eos_ids: frozenset[int], vocab_size: int) -> None:
        self.model = model
        self.eos_ids = eos_ids
        self.vocab_size = vocab_size
        weights = next(model.parameters())
        # Where the weights are, with its index ("cuda:0", never a bare "cuda"): the CUDA paths (Triton
        # sampler and bitmask kernel, device-resident loop, overlapped host masks) key on it.
        self.device = weights.device
        self.dtype: torch.dtype = weights.dtype
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        self._keyword = cache_keyword(type(model))

    def __repr__(self) -> str:
        return f"TransformersEngine({type(self.model).__name__}, {self.device}, {self.dtype})"

    def new_cache(self) -> Any:
        from .kvcache import make_kv_cache  # imports transformers: only when a cache is made

        return make_kv_cache(self.model.config)

    def prefill(
        self,
        cache: Any,
        ids: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        keep: int = 1,
    ) -> torch.Tensor:
        if self.max_positions:  # the one context-length check (a batch's mask spans its longest row)
            width = mask.shape[-1] if mask is not None else cache.get_seq_length() + ids.shape[1]
            if width > self.max_positions:
                raise DeccError(
                    f"the context grew to {width} tokens, more than the model's {self.max_positions}; "
                    "shorten the prompt or lower max_tokens"
                )
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            **{self._keyword: cache},
            use_cache=True,
            logits_to_keep=keep,
        )
        logits = out.logits[:, -1] if keep == 1 else out.logits[:, -keep:]
        return logits.float()  # the seam's one cast: a no-op for float32 models

    def step(
        self,
        cache: Any,
        ids: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.prefill(cache, ids.view(-1, 1), mask=mask, positions=positions)

    def fork(self, cache: Any, n: int) -> None:
        self.select_rows(cache, torch.zeros(n, dtype=torch.long, device=self.device))

    def select_rows(self, cache: Any, rows: torch.Tensor, identity: torch.Tensor | None = None) -> None:
        from .kvcache import select_rows

        select_rows(cache, rows, identity)

    def crop(self, cache: Any, tokens: int) -> None:
        if tokens > 0:
            cache.crop(-tokens)

    def export_row(self, cache: Any, row: int, at: torch.Tensor) -> PastKV | None:
        from .kvcache import GrowingLayer

        if not all(isinstance(layer, GrowingLayer) for layer in cache.layers):
            return None
        keys = tuple(layer.keys[row : row + 1].index_select(2, at) for layer in cache.layers)
        values = tuple(layer.values[row : row + 1].index_select(2, at) for layer in cache.layers)
        return PastKV(int(at.numel()), keys, values)

    def import_rows(
        self, cache: Any, pasts: Sequence[PastKV | None], known: Sequence[int], held: int
    ) -> None:
        sample = next(p for p, k in zip(pasts, known, strict=True) if k and p is not None)
        for layer in range(len(sample.keys)):
            k0, v0 = sample.keys[layer], sample.values[layer]
            keys = k0.new_zeros((len(pasts), k0.shape[1], held, k0.shape[3]))
            values = v0.new_zeros((len(pasts), v0.shape[1], held, v0.shape[3]))
            for i, (p, k) in enumerate(zip(pasts, known, strict=True)):
                if k and p is not None:
                    keys[i, :, held - k :] = p.keys[layer][0, :, :k]
                    values[i, :, held - k :] = p.values[layer][0, :, :k]
            cache.update(keys, values, layer)
