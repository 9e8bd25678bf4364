"""Token rows for states inside counted segments: which tokens are allowed depends on the counter.

A token from a segment state either stays inside (adding `delta` characters: allowed while the segment can
still be left within bounds, `live[next][c + delta]`) or leaves it (allowed when min <= c + delta <= max).
The row for counter c therefore depends only on the live/in-bounds pattern over c .. c + W (W: the most
characters one token adds there): its signature. Far from the bounds every c has the same signature, so
a state needs a few dozen rows at most. They are all built at compile time, so that no decoding step pays
for one: a state's tokens fall into disjoint groups of equal (leaves, next state, delta), whose
allowedness is the same for every token of the group; walking the signatures in counter order, each row
is the previous one XOR the few groups that flipped (disjoint groups: OR is XOR, and XOR undoes itself).
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
    off: np.ndarray
    length: np.ndarray
    flat: np.ndarray
    sig: dict[int, np.ndarray]  # label -> int64 [max + 1]: counter value -> signature
    n_words: int
    eos: np.ndarray
    cache: dict[tuple[int, int], tuple[torch.Tensor, int]] = field(default_factory=dict)
    # Python-list copies for the per-token byte walk (TokenAutomaton.step): faster than numpy scalars.
    py_seg: list[int] = field(default_factory=list)
    py_sig: dict[int, list[int]] = field(default_factory=dict)
    py_live: dict[int, list[bool]] = field(default_factory=dict)
    ticks: memoryview = field(default_factory=lambda: memoryview(b""))  # flat like TokenAutomaton.flat

    @classmethod
    def build(
        cls,
        dfa: ByteDFA,
        vocab: Vocabulary,
        indptr: np.ndarray,
        token_ids: np.ndarray,
        next_state: np.ndarray,
        eos: np.ndarray,
        cat: list[np.ndarray] | None,
    ) -> _Counts:
        n = dfa.n_states
        if cat is None:
            cat = [np.zeros(0, dtype=np.int32), np.zeros(0, dtype=bool)]
        delta, exited = cat
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
        for a in (delta, exited):
            a.setflags(write=False)
        counts = cls(seg, dfa.bounds, delta, exited, off, length, flat, sig, vocab.n_words, eos)
        counts.py_seg = seg.tolist()
        counts.py_sig = {label: v.tolist() for label, v in sig.items()}
        counts.py_live = {q: v.tolist() for q, v in dfa.live.items()}
        counts.ticks = memoryview(np.ascontiguousarray(dfa.tick, dtype=np.uint8).reshape(-1))
        for q in np.flatnonzero(seg >= 0).tolist():
            counts._eager_rows(dfa, q, indptr, token_ids, next_state)
        return counts

    def _eager_rows(
        self, dfa: ByteDFA, q: int, indptr: np.ndarray, token_ids: np.ndarray, next_state: np.ndarray
    ) -> None:
        """Every row state `q` can need (one per signature of its live counters), into the cache."""
        sig = self.sig.get(int(self.seg[q]))
        live = dfa.live.get(q)
        if sig is None or live is None:
            return
        cs = np.flatnonzero(live[: len(sig)])
        if not len(cs):
            return
        values, first = np.unique(sig[cs], return_index=True)
        reps = np.sort(cs[first])  # one counter per signature, ascending: neighbours differ little
        a, b = int(indptr[q]), int(indptr[q + 1])
        ex = self.exited[a:b]
        key = np.stack([ex.astype(np.int64), np.where(ex, -1, next_state[a:b]), self.delta[a:b]], axis=1)
        groups, gid = np.unique(key, axis=0, return_inverse=True)
        gid = gid.reshape(-1)
        bits = pack_bits(gid, token_ids[a:b].astype(np.int64), len(groups), self.n_words).view(np.int32)
        sizes = np.bincount(gid, minlength=len(groups))
        g_ex, g_next, g_delta = groups[:, 0].astype(bool), groups[:, 1], groups[:, 2]
        lo_b, hi_b = self.bounds[int(self.seg[q])]
        # ok[i, g]: group g is allowed with counter reps[i]
        k = reps[:, None] + g_delta[None, :]
        ok = np.where(g_ex[None, :], (k >= lo_b) & (k <= hi_b), False)
        stay = np.flatnonzero(~g_ex)
        if len(stay):
            q2 = g_next[stay][None, :]
            ks = k[:, stay]
            inside = ks < self.length[q2]
            idx = np.where(inside, self.off[q2] + ks, 0)
            ok[:, stay] = inside & self.flat[idx]
        row = np.zeros(self.n_words, dtype=np.int32)
        prev = np.zeros(len(groups), dtype=bool)
        n_text = ok.astype(np.int64) @ sizes
        for i, c in enumerate(reps.tolist()):
            for g in np.flatnonzero(ok[i] != prev).tolist():
                row ^= bits[g]
            prev = ok[i]
            out = row.copy()
            if dfa.is_accepting(q, c):
                set_bits(out.view(np.uint32), self.eos)
            self.cache[(q, int(sig[c]))] = (torch.from_numpy(out), int(n_text[i]))

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
        sig = self.py_sig.get(self.py_seg[state])
        key = (state, sig[c] if sig is not None and 0 <= c < len(sig) else -1 - c)
        hit = self.cache.get(key)
        if hit is None:  # a counter no decoding reaches (eager rows cover the live ones)
            toks = auto.token_ids[int(auto.indptr[state]) : int(auto.indptr[state + 1])]
            toks = toks[self.valid(auto, state, c)]
            row = pack_bits(np.zeros(len(toks), dtype=np.int64), toks, 1, self.n_words)[0]
            if auto.dfa.is_accepting(state, c):
                set_bits(row, self.eos)
            hit = self.cache[key] = (torch.from_numpy(row.view(np.int32)), len(toks))
        return hit
