"""Token rows for states inside counted segments: which tokens are allowed depends on the counter.

A token from a segment state either stays inside (adding `delta` characters: allowed while the segment can
still be left within bounds, `live[next][c + delta]`) or leaves it (allowed when min <= c + delta <= max).
The row for counter c therefore depends only on the live/in-bounds pattern over c .. c + W (W: the most
characters one token adds there): its signature. Far from the bounds every c has the same signature, so
a segment needs a handful of rows, each built once, on first use, and cached.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from .dfa import ByteDFA
from .token_automaton import live_layout, pack_bits, set_bits
from .vocab import Vocabulary


@dataclass(eq=False)
class _Counts:
    seg: np.ndarray  # int32 [n]: segment label, -1 outside
    bounds: tuple[tuple[int, int], ...]
    delta: np.ndarray  # int32 per CSR pair: characters the token adds in the start state's segment
    exited: np.ndarray  # bool per CSR pair: the token leaves that segment
    new: np.ndarray  # int32 per CSR pair: the counter afterwards, when it does not follow from delta
    off: np.ndarray
    length: np.ndarray
    flat: np.ndarray
    sig: dict[int, np.ndarray]  # label -> int64 [max + 1]: counter value -> signature
    n_words: int
    eos: np.ndarray
    cache: dict[tuple[int, int], tuple[torch.Tensor, int]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        dfa: ByteDFA,
        vocab: Vocabulary,
        indptr: np.ndarray,
        next_state: np.ndarray,
        eos: np.ndarray,
        cat: list[np.ndarray] | None,
    ) -> _Counts:
        n = dfa.n_states
        if cat is None:
            cat = [np.zeros(0, dtype=np.int32), np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int32)]
        delta, exited, new = cat
        off, length, flat = live_layout(dfa.live, n)
        seg = np.asarray(dfa.seg)
        sig: dict[int, np.ndarray] = {}
        pair_state = np.repeat(np.arange(n), np.diff(indptr))
        for label, (lo, hi) in enumerate(dfa.bounds):
            qs = np.flatnonzero(seg == label)
            if not len(qs):
                continue
            mine = seg[pair_state] == label
            w = int(delta[mine].max(initial=0))
            k = np.arange(hi + w + 1)
            cols = [(k >= lo) & (k <= hi)]
            for q in qs.tolist():
                row = np.zeros(len(k), dtype=bool)
                row[: len(dfa.live[q])] = dfa.live[q]
                cols.append(row)
            col_id = np.unique(np.stack(cols, axis=1), axis=0, return_inverse=True)[1].reshape(-1)
            windows = sliding_window_view(col_id, w + 1)
            sig[label] = np.unique(windows, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
        for a in (delta, exited, new):
            a.setflags(write=False)
        return cls(seg, dfa.bounds, delta, exited, new, off, length, flat, sig, vocab.n_words, eos)

    def valid(self, auto, state: int, c: int) -> np.ndarray:  # type: ignore[no-untyped-def]
        """Per pair of `state` (CSR order): allowed with counter `c`."""
        lo_b, hi_b = self.bounds[int(self.seg[state])]
        a, b = int(auto.indptr[state]), int(auto.indptr[state + 1])
        k = c + self.delta[a:b].astype(np.int64)
        ex = self.exited[a:b]
        ok = ex & (k >= lo_b) & (k <= hi_b)
        stay = np.flatnonzero(~ex)
        q2 = auto.next_state[a:b][stay]
        ks = k[stay]
        inside = ks < self.length[q2]
        good = np.zeros(len(stay), dtype=bool)
        good[inside] = self.flat[self.off[q2[inside]] + ks[inside]]
        ok[stay] = good
        return ok

    def row(self, auto, state: int, c: int) -> tuple[torch.Tensor, int]:  # type: ignore[no-untyped-def]
        label = int(self.seg[state])
        sig = self.sig.get(label)
        key = (state, int(sig[c]) if sig is not None and 0 <= c < len(sig) else -1 - c)
        hit = self.cache.get(key)
        if hit is None:
            toks = auto.token_ids[int(auto.indptr[state]) : int(auto.indptr[state + 1])]
            toks = toks[self.valid(auto, state, c)]
            row = pack_bits(np.zeros(len(toks), dtype=np.int64), toks, 1, self.n_words)[0]
            if auto.dfa.is_accepting(state, c):
                set_bits(row, self.eos)
            hit = self.cache[key] = (torch.from_numpy(row.view(np.int32)), len(toks))
        return hit

    def step(self, auto, state: int, c: int, i: int, nxt: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
        label = int(self.seg[state])
        if label < 0:
            return nxt, int(self.new[i])
        k = c + int(self.delta[i])
        if self.exited[i]:
            lo_b, hi_b = self.bounds[label]
            return (nxt, int(self.new[i])) if lo_b <= k <= hi_b else (-1, 0)
        if k < self.length[nxt] and self.flat[self.off[nxt] + k]:
            return nxt, k
        return -1, 0
