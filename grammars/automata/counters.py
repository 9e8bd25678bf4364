"""Counted segments: length-bounded string bodies kept as loops plus a counter, not unrolled.

`maxLength: 500` unrolled is 500 copies of a JSON character's automaton, and every copy's token row differs
only in how close it is to the bound: the DFA, the token walk and the memory all grow with the bound
(XGrammar's issue #852). Here the body stays one small loop; a byte that starts a character ticks a counter,
leaving the body needs min <= counter <= max, and a per-state table of live counter values keeps every
reachable (state, counter) completable.

Determinizing keeps the segment of each DFA state and the tick of each transition. It refuses (with
`SegmentConflict`) the cases where one counter cannot tell what happened: a DFA state mixing two segments,
or one byte that both continues a segment and leaves it (or ticks in one thread and not another). The JSON
Schema compiler then unrolls just those segments.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import GrammarLimitError
from ..limits import Limits
from ..regexes.nfa import NFA
from .dfa import DEAD, ByteDFA, minimize_table, subset_construction


class SegmentConflict(Exception):
    """Internal: these NFA segments cannot be counted (see the module docstring); unroll them."""

    def __init__(self, ids: set[int]) -> None:
        super().__init__(sorted(ids))
        self.ids = ids


def counted_dfa(nfa: NFA, byte_class: np.ndarray, n_classes: int, limits: Limits) -> ByteDFA:
    trans, accepting, sets = subset_construction(nfa, byte_class, n_classes, limits, "JSON schema")
    seg_id, tick = _segments(nfa, byte_class, trans, sets)
    # Segments with equal bounds behave alike, so they share a label (and may merge when minimizing).
    bounds = sorted(set(nfa.bounds))
    label_of = {b: i for i, b in enumerate(bounds)}
    seg = np.array([-1 if s < 0 else label_of[nfa.bounds[s]] for s in seg_id], dtype=np.int64)
    while True:
        tick_id = row_ids(tick)
        key = (seg + 1) * (int(tick_id.max(initial=0)) + 1) + tick_id.reshape(-1)
        labels = np.unique(np.append(key, 0), return_inverse=True)[1][:-1]  # non-segment states -> 0
        labels = np.where(seg < 0, 0, labels + 1)
        reps: list[int] = []
        trans, accepting = minimize_table(trans, accepting, labels, reps)
        seg, tick = seg[reps], tick[reps]
        full = np.ascontiguousarray(trans[:, byte_class], dtype=np.int32)
        full_tick = np.ascontiguousarray(tick[:, byte_class], dtype=bool)
        live = _live_tables(full, seg, full_tick, bounds, limits, accepting)
        cut = _dead_entries(full, seg, full_tick, live)
        if not cut:
            break
        for q, b in cut:  # entries whose segment cannot be left within bounds: drop, re-trim
            trans[q, byte_class[b]] = DEAD
    if not len(accepting):
        return ByteDFA(full, accepting, DEAD)
    seg32 = seg.astype(np.int32)
    for a in (full, accepting, seg32, full_tick):
        a.setflags(write=False)
    used = tuple(bounds) if (seg32 >= 0).any() else ()
    if not used:
        return ByteDFA(full, accepting, 0)
    return ByteDFA(full, accepting, 0, seg32, full_tick, used, live)


def counter_signature(dfa: ByteDFA, label: int, reach: int) -> np.ndarray:
    """int64 [max + 1]: counter value c -> an id equal for two counters exactly when the segment's
    in-bounds flag and every segment state's live flag agree on c .. c + `reach` (what any walk adding at
    most `reach` characters can see)."""
    lo, hi = dfa.bounds[label]
    qs = np.flatnonzero(np.asarray(dfa.seg) == label)
    k = np.arange(hi + reach + 1)
    cols = np.zeros((len(k), len(qs) + 1), dtype=bool)
    cols[:, 0] = (k >= lo) & (k <= hi)
    for j, q in enumerate(qs.tolist()):
        cols[: len(dfa.live[q]), j + 1] = dfa.live[q][: len(k)]
    return window_ids(row_ids(cols), reach + 1)


def window_ids(ids: np.ndarray, width: int) -> np.ndarray:
    """Equal ids for equal windows ids[c : c + width], c = 0 .. len - width. The ids change at a few
    points only (the bounds, where live flags end): a window with no change inside is constant, named by
    its value; only the windows across a change are compared whole (a 65,535-long maxLength took ~0.3 s
    as 65,536 windows sorted as records)."""
    n = len(ids) - width + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(ids[1:] != ids[:-1]) + 1  # where a new run of equal ids begins
    across = np.zeros(n + width, dtype=np.int64)  # windows c with a run start in c + 1 .. c + width - 1
    np.add.at(across, np.maximum(starts - width + 1, 0), 1)
    np.add.at(across, starts, -1)
    mixed = np.flatnonzero(np.cumsum(across)[:n] > 0)
    out = ids[:n].astype(np.int64) * 2  # constant windows: 2 * value; mixed ones: odd ids
    if len(mixed):
        windows = sliding_window_view(ids, width)[mixed]
        out[mixed] = row_ids(np.ascontiguousarray(windows)) * 2 + 1
    return np.unique(out, return_inverse=True)[1].reshape(-1).astype(np.int64)


def row_ids(rows: np.ndarray) -> np.ndarray:
    """Equal ids for equal rows of a 2-D array: rows (bools packed to bits) compared whole as bytes, much
    faster than `np.unique(axis=0)`, which sorts them as records of one-element fields."""
    packed = np.packbits(rows, axis=1) if rows.dtype == bool else rows
    packed = np.ascontiguousarray(packed)
    if packed.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    keys = packed.view(np.dtype((np.void, packed.dtype.itemsize * packed.shape[1]))).reshape(-1)
    return np.unique(keys, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _segments(
    nfa: NFA, byte_class: np.ndarray, trans: np.ndarray, sets: list[frozenset[int]]
) -> tuple[list[int], np.ndarray]:
    """Each DFA state's segment (-1: none) and each transition's tick, from the states' NFA subsets.

    Raises `SegmentConflict` where one counter cannot follow: a state mixing two segments, a byte that
    both continues the segment and leaves it, or ticks in one thread and not another, or leaves and
    re-enters a segment at once.
    """
    classes = byte_class.tolist()
    seg_of, ticking = nfa.seg_of, nfa.tick
    ticks = np.zeros(trans.shape, dtype=bool)
    segs: list[int] = []
    conflicts: set[int] = set()
    for i, members in enumerate(sets):
        found = {seg_of[s] for s in members if s in seg_of}
        if len(found) > 1:
            conflicts |= found
        here = min(found) if found else -1
        segs.append(here)
        if here < 0:
            continue
        kinds: dict[int, list[bool]] = {}  # per class: [from inside, from outside, ticking, not ticking]
        for s in members:
            inside = seg_of.get(s, -1) == here
            t = s in ticking
            for lo, hi, _ in nfa.edges[s]:
                for c in range(classes[lo], classes[hi] + 1):
                    k = kinds.setdefault(c, [False, False, False, False])
                    k[0 if inside else 1] = True
                    if inside:
                        k[2 if t else 3] = True
        for c, k in kinds.items():
            if (k[0] and k[1]) or (k[2] and k[3]):
                conflicts.add(here)
            target = sets[trans[i, c]] if trans[i, c] >= 0 else frozenset()
            if k[1] and any(s in seg_of for s in target):  # leaves and re-enters on one byte
                conflicts.add(here)
                conflicts.update(seg_of[s] for s in target if s in seg_of)
            ticks[i, c] = k[2]
    if conflicts:
        raise SegmentConflict(conflicts)
    return segs, ticks


def _live_tables(
    trans: np.ndarray,
    seg: np.ndarray,
    tick: np.ndarray,
    bounds: list[tuple[int, int]],
    limits: Limits,
    accepting: np.ndarray,
) -> dict[int, np.ndarray]:
    """For every segment state s: bool [max + 1], c -> the segment can be left within bounds from (s, c).

    R(s), the tick counts with which s can reach an exit, is computed as layers r = 0, 1, ... (states
    that exit after exactly r more characters); layer r depends only on layer r - 1, so once a layer
    repeats the rest is periodic and the table is tiled rather than searched.
    """
    out: dict[int, np.ndarray] = {}
    for label, (lo, hi) in enumerate(bounds):
        qs = np.flatnonzero(seg == label)
        if not len(qs):
            continue
        if len(qs) * (hi + 1) > limits.max_token_transitions:
            raise GrammarLimitError(f"string length bound {hi:,} too large to count for this schema")
        local = {int(q): i for i, q in enumerate(qs)}
        sub = trans[qs]
        tgt_seg = np.where(sub >= 0, seg[np.maximum(sub, 0)], -2)
        inside = tgt_seg == label
        exit_ok = ((sub >= 0) & ~inside).any(axis=1) | accepting[qs]  # ending the text leaves it too
        pred: tuple[list[set[int]], list[set[int]]] = ([set() for _ in qs], [set() for _ in qs])
        ii, bb = np.nonzero(inside)
        for i, j, t in zip(ii.tolist(), sub[ii, bb].tolist(), tick[qs[ii], bb].tolist(), strict=True):
            pred[int(t)][local[j]].add(i)

        def close(found: set[int], back: list[set[int]] = pred[0]) -> frozenset[int]:
            stack = list(found)
            while stack:
                for i in back[stack.pop()]:
                    if i not in found:
                        found.add(i)
                        stack.append(i)
            return frozenset(found)

        layers = [close({i for i in range(len(qs)) if exit_ok[i]})]
        seen = {layers[0]: 0}
        loop_at = None
        while len(layers) <= hi:
            nxt = close({i for j in layers[-1] for i in pred[1][j]})
            if nxt in seen:
                loop_at = seen[nxt]
                break
            seen[nxt] = len(layers)
            layers.append(nxt)
        m = np.zeros((len(qs), len(layers)), dtype=bool)
        for r, layer in enumerate(layers):
            m[list(layer), r] = True
        if loop_at is not None and len(layers) <= hi:
            period = len(layers) - loop_at
            r = np.arange(hi + 1)
            cols = np.where(r < len(layers), r, loop_at + (r - loop_at) % period)
            m = m[:, np.minimum(cols, len(layers) - 1)]
        else:
            m = m[:, : hi + 1]
        cs = np.zeros((len(qs), hi + 2), dtype=np.int64)
        np.cumsum(m, axis=1, out=cs[:, 1:])
        c = np.arange(hi + 1)
        a, b = np.maximum(0, lo - c), hi - c
        table = (cs[:, b + 1] - cs[:, a]) > 0
        for i, q in enumerate(qs.tolist()):
            row = np.ascontiguousarray(table[i])
            row.setflags(write=False)
            out[q] = row
    return out


def _dead_entries(
    trans: np.ndarray, seg: np.ndarray, tick: np.ndarray, live: dict[int, np.ndarray]
) -> set[tuple[int, int]]:
    """(state, byte) transitions that enter a segment where its counter could never leave within bounds."""
    cut: set[tuple[int, int]] = set()
    src, byte = np.nonzero(trans >= 0)
    dst = trans[src, byte]
    entering = (seg[dst] >= 0) & (seg[src] != seg[dst])
    for q, b, d in zip(src[entering].tolist(), byte[entering].tolist(), dst[entering].tolist(), strict=True):
        c = int(tick[q, b])
        row = live[d]
        if c >= len(row) or not row[c]:
            cut.add((q, b))
    return cut
