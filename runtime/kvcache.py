"""A KV cache that grows in place, for the decode loop.

transformers' `DynamicLayer` concatenates the whole cache with each new token, copying O(context) bytes per
layer per step (92 MB a step at 2,000 tokens on SmolLM2-135M). `GrowingLayer` keeps keys and values in
buffers with spare capacity (doubling when full) and hands attention views of the filled part, so a step
writes one slot. Cropping just moves the end back. Everything else is the stock `DynamicCache`.

Search policies run several hypotheses as the rows of one batch. `select_rows` reorders, forks and drops
rows in place (beams and particles chosen by the search): a row that stays where it is is not copied, so a
beam step copies only the rows whose hypothesis changed, where transformers copies the whole cache.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

__all__ = ["GrowingLayer", "make_kv_cache", "select_rows"]

_MIN_CAPACITY = 256


class GrowingLayer(DynamicLayer):
    """A `DynamicLayer` whose `keys`/`values` are views into preallocated, amortized-doubling buffers."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._key_buf: torch.Tensor | None = None
        self._value_buf: torch.Tensor | None = None
        self._length = 0

    def _reserve(self, key_states: torch.Tensor, value_states: torch.Tensor, end: int) -> None:
        old = self._key_buf
        capacity = max(end, _MIN_CAPACITY, 2 * old.shape[-2] if old is not None else 0)
        keys = key_states.new_empty((*key_states.shape[:-2], capacity, key_states.shape[-1]))
        values = value_states.new_empty((*value_states.shape[:-2], capacity, value_states.shape[-1]))
        if old is not None and self._value_buf is not None and self._length:
            keys[..., : self._length, :] = old[..., : self._length, :]
            values[..., : self._length, :] = self._value_buf[..., : self._length, :]
        self._key_buf, self._value_buf = keys, values

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start = self._length
        end = start + key_states.shape[-2]
        if self._key_buf is None or end > self._key_buf.shape[-2]:
            self._reserve(key_states, value_states, end)
        keys, values = self._key_buf, self._value_buf
        assert keys is not None and values is not None
        keys[..., start:end, :] = key_states
        values[..., start:end, :] = value_states
        self._length = end
        self.keys = keys[..., :end, :]
        self.values = values[..., :end, :]
        return self.keys, self.values

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)
        if self.is_initialized:
            self._length = self.keys.shape[-2]

    def reset(self) -> None:
        super().reset()
        self._key_buf = self._value_buf = None
        self._length = 0

    def select_rows(self, rows: torch.Tensor, identity: torch.Tensor | None = None) -> None:
        """Row i becomes old row `rows[i]` (a LongTensor; repeats fork a row, a shorter list drops rows).

        Same batch size: only rows that change are copied (`identity` is arange(batch), passed in by the
        caller so it is built once). Another size: new buffers with the same spare capacity.
        """
        keys, values = self._key_buf, self._value_buf
        if keys is None or values is None or not self._length:
            return
        n = self._length
        if rows.shape[0] == keys.shape[0]:
            ident = identity if identity is not None else torch.arange(rows.shape[0], device=rows.device)
            moved = (rows != ident).nonzero().squeeze(1)
            if moved.numel():
                src = rows.index_select(0, moved)
                keys[moved, :, :n] = keys[src, :, :n]
                values[moved, :, :n] = values[src, :, :n]
        else:
            shape = (rows.shape[0], *keys.shape[1:])
            new_keys, new_values = keys.new_empty(shape), values.new_empty(shape)
            new_keys[:, :, :n] = keys[rows, :, :n]
            new_values[:, :, :n] = values[rows, :, :n]
            self._key_buf, self._value_buf = keys, values = new_keys, new_values
        self.keys = keys[..., :n, :]
        self.values = values[..., :n, :]

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self._key_buf is None:
            return
        rows = torch.arange(self._key_buf.shape[0], device=self._key_buf.device)
        self.select_rows(rows.repeat_interleave(repeats))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.select_rows(indices.long())


def make_kv_cache(config: Any) -> DynamicCache:
    """A `DynamicCache` for `config` with every plain full-attention layer made a `GrowingLayer`
    (sliding-window or other special layers keep their own classes)."""
    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    if cache.layer_class_to_replicate is DynamicLayer:  # layers created lazily, on first update
        cache.layer_class_to_replicate = GrowingLayer
    return cache


def select_rows(cache: DynamicCache, rows: torch.Tensor, identity: torch.Tensor | None = None) -> None:
    """Reorder / fork / drop the batch rows of every layer (see `GrowingLayer.select_rows`)."""
    for layer in cache.layers:
        if isinstance(layer, GrowingLayer):
            layer.select_rows(rows, identity)
        else:
            layer.batch_select_indices(rows)
