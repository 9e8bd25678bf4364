"""The token automaton: a byte DFA lifted to a model's vocabulary, precomputed for every DFA state.

A text token is allowed in state `s` iff walking its bytes from `s` never dies; since every DFA state can
still reach acceptance, the text stays completable. EOS is allowed exactly in accepting states. Rows are
stored twice: as an XGrammar/llguidance-style int32 bitmask (bit t%32 of word t//32 = token t) to copy
into the logits mask, and as CSR (`indptr`, sorted `token_ids`, `next_state`) to advance without walking.

With counted segments (see counters.py) a position is (state, counter). Rows of states outside segments
stay static. For a state inside one, each token carries how many characters it adds (`delta`) and whether
it leaves the segment (`exited`); the row for a counter value is computed from those on first use and
cached under the counter's signature: the live/in-bounds pattern of the counter values a token can reach,
which is the same for almost every counter value (far from the bounds), so few rows are ever built.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..automata.dfa import ByteDFA
from ..errors import GrammarLimitError
from ..limits import DEFAULT_LIMITS, Limits, check_time
from .token_loops import Loop, loop_classes
from .vocab import Vocabulary

if TYPE_CHECKING:
    from .token_counts import Counts

# Elements per numpy temporary (live pairs, or states x vocabulary in the dense table): ~tens of MB.
_CHUNK = 4_000_000


@dataclass(frozen=True, eq=False)
class TokenAutomaton:
    dfa: ByteDFA
    vocab: Vocabulary
    bitmask: np.ndarray  # int32 [n_states, ceil(size / 32)], EOS bits set in accepting states
    indptr: np.ndarray  # int64 [n_states + 1]: the text tokens of state s are [indptr[s], indptr[s+1])
    token_ids: np.ndarray  # int32, sorted within each state
    next_state: np.ndarray  # int32, the DFA state after each of those tokens
    n_allowed: np.ndarray  # int32 [n_states]: allowed non-EOS tokens per state
    eos_ids: np.ndarray  # int32, sorted
    bitmask_tensor: torch.Tensor  # a CPU tensor sharing `bitmask`'s memory, for copying rows into masks
    counts: Counts | None = None  # counted segments: per-pair counter data and the row cache
    rows: list[torch.Tensor] = field(default_factory=list)  # views of bitmask_tensor's rows, by state
    # The DFA table flattened for byte walks: flat[s * 256 + b] = 256 * next state, or -1 (zero-copy view).
    flat: memoryview = field(default_factory=lambda: memoryview(b""), repr=False)
    # Self-loop tokens kept out of the CSR (see token_loops.py): state s also allows loops[loop_of[s]].ids,
    # each going back to s.
    loop_of: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32), repr=False)
    loops: tuple[Loop, ...] = ()
    # Budget-aware masks (budget.py): token distances and budgeted rows, computed on first use.
    budget_cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_states(self) -> int:
        return self.dfa.n_states

    @property
    def start(self) -> int:
        return self.dfa.start

    def is_accepting(self, state: int, counter: int = 0) -> bool:
        if self.counts is None:
            return bool(self.dfa.accepting[state])
        return self.dfa.is_accepting(state, counter)

    def row(self, state: int, counter: int = 0) -> torch.Tensor:
        """The allowed-token words of (state, counter), EOS included when accepting."""
        cnt = self.counts
        if cnt is None or cnt.py_seg[state] < 0:
            return self.rows[state]
        return cnt.row(self, state, counter)[0]

    def rows_for(self, states: np.ndarray, counters: np.ndarray) -> tuple[list[torch.Tensor], np.ndarray]:
        """`row` of many (state, counter) pairs at once: (the distinct row tensors, each pair's index among
        them). Pairs of one state whose counters have one signature share a row (`Counts`), so `row` is
        asked once per (state, signature) rather than once per pair: a counted lexeme's thousands of
        unrolled (state, counter) states cost ~1 us each in a loop of `row` calls."""
        cnt = self.counts
        if cnt is None:  # one row per state (a plain lexeme: a few dozen states, each once)
            pos: dict[int, int] = {}
            index = [pos.setdefault(q, len(pos)) for q in np.asarray(states).tolist()]
            return [self.rows[q] for q in pos], np.array(index, dtype=np.int64)
        states = np.asarray(states, dtype=np.int64)
        counters = np.asarray(counters, dtype=np.int64)
        # per pair: `row`'s cache key within its state (no signature: a key of its own; outside: 0)
        label = np.asarray(cnt.seg, dtype=np.int64)[states]
        key = np.where(label >= 0, -1 - counters, 0)
        for lab in range(len(self.dfa.bounds)):
            sig = cnt.signature(self.dfa, lab)
            if sig is None:
                continue
            sel = np.flatnonzero((label == lab) & (counters >= 0) & (counters < len(sig)))
            key[sel] = sig[counters[sel]]
        shift = int(key.min(initial=0))
        code = states * (int(key.max(initial=0)) - shift + 1) + (key - shift)
        first, group = _groups_of(code)
        index: dict[int, int] = {}
        distinct: list[torch.Tensor] = []
        of_group = []
        cache, built = cnt.cache, cnt.built
        reps = zip(states[first].tolist(), counters[first].tolist(), key[first].tolist(), strict=True)
        for q, c, sig in reps:  # (`row`'s cache lookup inline where its rows are built: thousands)
            hit = cache.get((q, sig)) if q in built and cnt.py_seg[q] >= 0 else None
            tensor = self.row(q, c) if hit is None else hit[0]
            k = index.setdefault(id(tensor), len(distinct))
            if k == len(distinct):
                distinct.append(tensor)
            of_group.append(k)
        return distinct, np.array(of_group, dtype=np.int64)[group]

    def n_text_allowed(self, state: int, counter: int = 0) -> int:
        cnt = self.counts
        if cnt is None or cnt.seg[state] < 0:
            return int(self.n_allowed[state])
        return cnt.row(self, state, counter)[1]

    def step(self, state: int, counter: int, token_id: int) -> tuple[int, int]:
        """(state, counter) after text token `token_id`, or (-1, 0) if it is not allowed there.

        Walks the token's bytes like `ByteDFA.advance`: a token is allowed exactly when the walk never
        dies (every live (state, counter) can still finish).
        """
        if self.counts is None:
            return self.next(state, token_id), 0
        data = self.vocab.token_bytes[token_id] if 0 <= token_id < len(self.vocab.token_bytes) else None
        if not data:
            return -1, 0
        return self.walk(state, counter, data)

    def walk(self, state: int, counter: int, data: bytes) -> tuple[int, int]:
        """(state, counter) after any bytes `data`, not only a token's (token healing positions a matcher
        inside a token this way), or (-1, 0) where the walk dies. Every live position can still finish."""
        if self.counts is None:
            at = state << 8
            for b in data:
                at = self.flat[at + b]
                if at < 0:
                    return -1, 0
            return at >> 8, 0
        flat, cnt = self.flat, self.counts
        seg, live, ticks, bounds = cnt.py_seg, cnt.py_live, cnt.ticks, self.dfa.bounds
        s1 = seg[state]
        at = state << 8
        for b in data:
            nxt = flat[at + b]
            if nxt < 0:
                return -1, 0
            s2 = seg[nxt >> 8]
            if s1 >= 0 or s2 >= 0:
                if s1 >= 0 and s1 == s2:
                    counter += ticks[at + b]
                else:
                    if s1 >= 0 and not bounds[s1][0] <= counter <= bounds[s1][1]:
                        return -1, 0
                    counter = ticks[at + b] if s2 >= 0 else 0
                if s2 >= 0:
                    lv = live[nxt >> 8]
                    if counter >= len(lv) or not lv[counter]:
                        return -1, 0
            at, s1 = nxt, s2
        return at >> 8, counter

    def is_eos(self, token_id: int) -> bool:
        return token_id in self.vocab.eos_ids

    def next(self, state: int, token_id: int) -> int:
        """The state after text token `token_id` in `state`, or -1 if it is not allowed there.

        Walks the token's bytes through `flat` (every DFA state can still reach acceptance, so "never dies"
        is exactly "allowed"): a few memoryview lookups beat a binary search over the state's CSR row.
        Counted automata go through `step` instead.
        """
        data = self.vocab.token_bytes[token_id] if 0 <= token_id < len(self.vocab.token_bytes) else None
        if not data:
            return -1
        flat = self.flat
        at = state << 8
        for b in data:
            at = flat[at + b]
            if at < 0:
                return -1
        return at >> 8

    def edges(self, state: int) -> tuple[np.ndarray, np.ndarray]:
        """(text token ids, sorted; the state after each) of `state`, counters aside: CSR plus loop tokens."""
        lo, hi = int(self.indptr[state]), int(self.indptr[state + 1])
        ids, nxt = self.token_ids[lo:hi], self.next_state[lo:hi]
        c = int(self.loop_of[state]) if len(self.loop_of) else -1
        if c >= 0:
            loop = self.loops[c].ids
            ids, nxt = merge_by_id([(ids, nxt), (loop, np.full(len(loop), state, dtype=np.int32))])
        return ids, nxt

    def allowed(self, state: int, counter: int = 0) -> np.ndarray:
        """All token ids allowed in `state` (with `counter`), EOS included when accepting, sorted."""
        if self.counts is not None and self.counts.seg[state] >= 0:
            ids, nxt, delta, exited = self.counts.pairs(self, state)
            text = ids[self.counts.valid(state, counter, nxt, delta, exited)]
        else:
            text = self.edges(state)[0]
        if self.is_accepting(state, counter) and len(self.eos_ids):
            return np.union1d(text, self.eos_ids).astype(np.int32)
        return text

    # State for the on-disk constraint cache (disk_cache.py): the tensor, its row views and the flat
    # memoryview are derived from `bitmask` and the DFA, so they are rebuilt on load rather than stored.
    # Most rows repeat (a few hundred distinct ones in thousands of states): the bitmask goes deduplicated.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for name in ("bitmask_tensor", "rows", "flat", "budget_cache"):
            state.pop(name, None)
        state["bitmask"] = dedup_rows(list(self.bitmask), self.vocab.n_words)
        return state

    def __setstate__(self, state: dict) -> None:
        distinct, index = state["bitmask"]
        bitmask = np.ascontiguousarray(distinct[index], dtype=np.int32)  # writable for torch, then frozen
        tensor = torch.from_numpy(bitmask)
        bitmask.setflags(write=False)
        rows = list(tensor.unbind(0))
        derived = {"bitmask": bitmask, "bitmask_tensor": tensor, "rows": rows, "budget_cache": {}}
        self.__dict__.update(state, **derived, flat=_flat_view(state["dfa"]))

    @classmethod
    def build(cls, dfa: ByteDFA, vocab: Vocabulary, limits: Limits = DEFAULT_LIMITS) -> TokenAutomaton:
        loop_of, loops = loop_classes(dfa, vocab)
        width = vocab.n_words * 32
        walk = _walk_chunks(dfa, vocab, max(1, _CHUNK // width), loop_of, loops)
        return cls._assemble(dfa, vocab, limits, loop_of, loops, _sorted_chunks(walk, dfa.n_states, vocab))

    @classmethod
    def from_walk(
        cls, dfa: ByteDFA, vocab: Vocabulary, walk: CountedWalk, limits: Limits = DEFAULT_LIMITS
    ) -> TokenAutomaton:
        """`build`'s automaton (the same arrays) from `walk`, the bounds-free walk of a DFA that differs
        from `dfa` in its bounds and live tables alone: only the bounds-dependent part is made here."""
        keep = walk.kept(dfa)
        src, tok, dst = walk.src[keep], walk.tok[keep], walk.dst[keep]
        chunk = (0, dfa.n_states, src.astype(np.int64), tok, dst, (walk.delta[keep], walk.exited[keep]))
        return cls._assemble(dfa, vocab, limits, walk.loop_of, walk.loops, iter([chunk]), walk)

    @classmethod
    def _assemble(
        cls,
        dfa: ByteDFA,
        vocab: Vocabulary,
        limits: Limits,
        loop_of: np.ndarray,
        loops: tuple[Loop, ...],
        chunks: Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...] | None]],
        walk: CountedWalk | None = None,
    ) -> TokenAutomaton:
        """The automaton from the allowed pairs, chunk by chunk of states lo..hi: (lo, hi, state - lo,
        token id, next state, (delta, exited) or None), in CSR order (by state, then token id)."""
        n = dfa.n_states
        eos = np.array(sorted(vocab.eos_ids), dtype=np.int32)
        bitmask = np.zeros((n, vocab.n_words), dtype=np.int32)
        counts = np.zeros(n, dtype=np.int64)
        tok_parts: list[np.ndarray] = []
        dst_parts: list[np.ndarray] = []
        extra_parts: list[tuple[np.ndarray, ...]] = []
        total = 0
        acc_rows = np.flatnonzero(dfa.accepting)
        loop_bits = np.stack([lp.bits for lp in loops]) if loops else np.zeros((0, vocab.n_words), np.uint32)
        for lo, hi, rows, cols, nxt, extra in chunks:
            if extra is not None:
                extra_parts.append(extra)
            tok_parts.append(cols)
            dst_parts.append(nxt)
            counts[lo:hi] = np.bincount(rows, minlength=hi - lo)
            total += len(cols)
            if total > limits.max_token_transitions:
                raise _too_large(total, limits, hi, n)
            block = pack_bits(rows, cols, hi - lo, vocab.n_words)
            looped = np.flatnonzero(loop_of[lo:hi] >= 0)
            block[looped] |= loop_bits[loop_of[lo + looped]]
            for r in acc_rows[(acc_rows >= lo) & (acc_rows < hi)].tolist():
                set_bits(block[r - lo], eos)
            bitmask[lo:hi] = block.view(np.int32)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        token_ids = np.concatenate(tok_parts) if tok_parts else np.zeros(0, dtype=np.int32)
        next_state = np.concatenate(dst_parts) if dst_parts else np.zeros(0, dtype=np.int32)
        sizes = np.array([lp.size for lp in loops] + [0], dtype=np.int64)
        n_allowed = (counts + sizes[loop_of]).astype(np.int32)  # loop_of -1 picks the trailing 0
        tensor = torch.from_numpy(bitmask)  # before freezing: torch warns about read-only arrays
        for a in (bitmask, indptr, token_ids, next_state, n_allowed, eos):
            a.setflags(write=False)
        counts = None
        if dfa.has_counters:
            from .token_counts import Counts

            cat = [np.concatenate([p[i] for p in extra_parts]) for i in range(2)] if extra_parts else None
            counts = Counts.build(dfa, vocab, indptr, token_ids, next_state, eos, cat, loop_of, loops, walk)
        rows = list(tensor.unbind(0))
        flat = _flat_view(dfa)
        loop_of = loop_of.copy()  # (a walk's is shared by the automata made from it)
        loop_of.setflags(write=False)
        return cls(
            dfa,
            vocab,
            bitmask,
            indptr,
            token_ids,
            next_state,
            n_allowed,
            eos,
            tensor,
            counts,
            rows,
            flat,
            loop_of,
            loops,
        )


def _sorted_chunks(
    walk: Iterator[tuple[int, int, np.ndarray, ...]], n: int, vocab: Vocabulary
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...] | None]]:
    """`_walk_chunks`' pairs of each chunk in CSR order, as `TokenAutomaton._assemble` takes them."""
    width = vocab.n_words * 32
    # counted pairs: (delta, exited) packed below the sort key; delta <= the longest token's length
    spare = 2 * (int(vocab.packed[1].max(initial=0)) + 1)
    for lo, hi, src, tok, dst, *extra in walk:
        # Sort the pairs by (state, token id): the CSR order. Work follows the live pairs, not
        # states x vocabulary (most JSON states allow a handful of tokens).
        # One int64 key per pair, (row, token, next state), sorted in place: no argsort and gathers.
        # Bounded: rows < _CHUNK // width, so row * width * (n + 1) stays far below 2**63.
        key = ((src.astype(np.int64) - lo) * width + tok) * (n + 1) + dst
        out_extra: tuple[np.ndarray, ...] | None = None
        if extra and (hi - lo) * width * (n + 1) * spare < 2**62 and extra[0].max(initial=0) < spare // 2:
            # counter data rides along in the low digits: (state, token) pairs are unique, so the
            # sorted keys give the CSR order with no argsort and gathers (a quarter of the build)
            delta, exited = extra
            key = (key * (spare // 2) + delta) * 2 + exited
            key.sort()
            key, low = np.divmod(key, spare)
            out_extra = ((low >> 1).astype(np.int32), (low & 1).astype(bool))
        elif extra:  # too wide to pack: sort by permutation
            order = np.argsort(key)  # unique keys: any sort is the stable one
            key = key[order]
            out_extra = tuple(e[order] for e in extra)
        else:
            key.sort()
        cell, nxt = np.divmod(key, n + 1)
        rows, cols = np.divmod(cell, width)
        yield lo, hi, rows, cols.astype(np.int32), nxt.astype(np.int32), out_extra


def _groups_of(code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a member of each group, each element's group) of equal non-negative codes: by a dense table where
    the codes' range allows (np.unique sorts: ~0.2 ms for a long string's 20,000 unrolled states)."""
    size = int(code.max(initial=-1)) + 1
    if size > 4 * len(code) + (1 << 20):
        _, first, group = np.unique(code, return_index=True, return_inverse=True)
        return first, group.reshape(-1)
    present = np.zeros(size, dtype=bool)
    present[code] = True
    group = (np.cumsum(present) - 1)[code]
    member = np.empty(int(present.sum()), dtype=np.int64)
    member[group] = np.arange(len(code))  # (any member: a group's pairs share their row)
    return member, group


def dedup_rows(rows: list[np.ndarray], n_words: int) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct rows stacked, int32 [k, n_words]; the index of each row among them)."""
    seen: dict[bytes, int] = {}
    distinct: list[np.ndarray] = []
    index = np.zeros(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        j = seen.setdefault(row.tobytes(), len(distinct))
        if j == len(distinct):
            distinct.append(row)
        index[i] = j
    stacked = np.stack(distinct) if distinct else np.zeros((0, n_words), dtype=np.int32)
    return stacked.astype(np.int32, copy=False), index


def merge_by_id(parts: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """Column groups (ids, *per-id columns) concatenated and sorted by id: a state's CSR pairs and its
    loop tokens as one sorted edge list."""
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    order = np.argsort(cols[0], kind="stable")
    return tuple(c[order] for c in cols)


def _flat_view(dfa: ByteDFA) -> memoryview:
    """`TokenAutomaton.flat`: flat[s * 256 + b] = 256 * T[s, b], or -1."""
    scaled = np.where(dfa.transitions < 0, -1, dfa.transitions.astype(np.int64) << 8).astype(np.int32)
    return memoryview(scaled.reshape(-1))


def pack_bits(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_words: int) -> np.ndarray:
    """uint32 [n_rows, n_words] with bit cols[i] % 32 of word cols[i] // 32 set in row rows[i].

    The (distinct) bits of one word add up to their OR, and float64 sums of them are exact: one bincount.
    """
    cols = cols.astype(np.int64)  # int32 ids would overflow at bit 31
    words = rows * n_words + (cols >> 5)
    bits = np.left_shift(1, (cols & 31)).astype(np.float64)
    packed = np.bincount(words, weights=bits, minlength=n_rows * n_words)
    return packed.astype(np.uint64).astype(np.uint32).reshape(n_rows, n_words)


def set_bits(row: np.ndarray, ids: np.ndarray | list[int]) -> None:
    """Set the bits of token `ids` (EOS, typically) in one bitmask row of uint32 or int32 words, in place;
    a list is set one by one (for a few ids, numpy's per-call cost is higher)."""
    words = row.view(np.uint32)
    if isinstance(ids, list):
        for i in ids:
            words[i >> 5] |= 1 << (i & 31)
    elif len(ids):
        np.bitwise_or.at(
            words, (ids >> 5).astype(np.int64), np.left_shift(np.uint32(1), (ids & 31).astype(np.uint32))
        )


def _too_large(total: int, limits: Limits, done: int, n: int) -> GrammarLimitError:
    return GrammarLimitError(
        f"constraint too large for this vocabulary: more than {total:,} (state, token) transitions "
        f"(limit {limits.max_token_transitions:,}) after {done:,} of {n:,} DFA states",
        hints=[
            "a large bounded repeat of a wide class (like .{0,1000}) needs one state per position; "
            "an unbounded repeat (.*) or a smaller bound is far cheaper"
        ],
    )


def _walk_chunks(
    dfa: ByteDFA,
    vocab: Vocabulary,
    max_rows: int,
    loop_of: np.ndarray,
    loops: tuple[Loop, ...],
    free: bool = False,
) -> Iterator[tuple[int, int, np.ndarray, ...]]:
    """Per chunk of states lo..hi: (lo, hi, state, token id, next state) of every allowed text-token pair.

    Pairs start only where a token's first byte has a transition (tokens are grouped by first byte), then
    advance one byte at a time for all live pairs at once: dead pairs are dropped and finished tokens
    emitted, so the work follows the live pairs rather than states x tokens x length. A state's loop
    tokens (token_loops.py) are not walked at all. `free`: counters without the bounds (`_FreeCounter`).
    """
    n = dfa.n_states
    ids, lengths, padded, offsets = vocab.packed
    dead = n
    table = np.full((n + 1, 256), dead, dtype=np.int32)
    table[:n] = np.where(dfa.transitions < 0, dead, dfa.transitions)
    counter = (_FreeCounter if free else _Counter)(dfa) if dfa.has_counters else None
    live = table[:n] != dead  # [n, 256]
    per_state = live.astype(np.int64) @ np.diff(offsets)  # pairs each state starts with
    member = np.stack([lp.member for lp in loops]) if loops else None
    tails = np.stack([lp.tail for lp in loops]) if loops else None
    # The loop class of each state where a token may end early: none for the dead state (n), nor where
    # the counter says (`_Counter.loop_states`: not inside counted segments, whose loop bytes tick it).
    loop_at = np.append(loop_of if counter is None else counter.loop_states(loop_of), -1)
    if loops:
        per_state -= np.array([lp.size for lp in loops] + [0], dtype=np.int64)[loop_of]
    lo = 0
    while lo < n:
        check_time("lifting the automaton to the vocabulary")
        # The next chunk: at most max_rows states whose starting pairs fit in about _CHUNK elements.
        hi = lo + 1 + int(np.searchsorted(np.cumsum(per_state[lo + 1 : lo + max_rows]), _CHUNK))
        hi = min(n, hi, lo + max_rows)
        src, t_idx, cur = start_pairs(np.arange(lo, hi, dtype=np.int32), table, live[lo:hi], offsets)
        if member is not None:
            lc = loop_of[src]
            drop = (lc >= 0) & member[np.maximum(lc, 0), t_idx]
            if drop.any():
                src, t_idx, cur = src[~drop], t_idx[~drop], cur[~drop]
        out_src: list[np.ndarray] = []
        out_tok: list[np.ndarray] = []
        out_dst: list[np.ndarray] = []
        out_extra: list[tuple[np.ndarray, ...]] = []
        cs: tuple[np.ndarray, ...] = ()
        if counter is not None:
            cs = counter.begin(src)
            src, t_idx, cur, cs = counter.step(src, t_idx, cur, cs, src, padded[t_idx, 0])
        j = 1
        while len(t_idx):
            check_time("lifting the automaton to the vocabulary")
            done = lengths[t_idx] == j
            if tails is not None:  # the rest of the token loops in a loop state: it ends there
                done |= _ends_in_loop(loop_at, tails, cur, t_idx, j)
            if done.any():
                if counter is not None:
                    ended = counter.ended(tuple(c[done] for c in cs), t_idx[done], cur[done], j, vocab)
                    ok, extra = counter.finish(src[done], cur[done], ended)
                    out_extra.append(extra)
                else:
                    ok = slice(None)
                out_src.append(src[done][ok])
                out_tok.append(ids[t_idx[done]][ok])
                out_dst.append(cur[done][ok])
                keep = ~done
                src, t_idx, cur = src[keep], t_idx[keep], cur[keep]
                cs = tuple(c[keep] for c in cs)
                if not len(t_idx):
                    break
            prev = cur
            cur = table[cur, padded[t_idx, j]]
            alive = cur != dead
            src, t_idx, cur, prev = src[alive], t_idx[alive], cur[alive], prev[alive]
            if counter is not None:
                cs = tuple(c[alive] for c in cs)
                src, t_idx, cur, cs = counter.step(src, t_idx, cur, cs, prev, padded[t_idx, j])
            j += 1
        empty = np.zeros(0, dtype=np.int64)
        parts = (
            (np.concatenate(out_src), np.concatenate(out_tok), np.concatenate(out_dst))
            if out_src
            else (empty, empty, empty)
        )
        if counter is None:
            yield lo, hi, *parts
        else:
            extra = (
                tuple(np.concatenate([e[i] for e in out_extra]) for i in range(len(out_extra[0])))
                if out_extra
                else counter.finish(empty, empty, counter.begin(empty))[1]
            )
            yield lo, hi, *parts, *extra
        lo = hi


def _ends_in_loop(
    loop_at: np.ndarray, tails: np.ndarray, cur: np.ndarray, t_idx: np.ndarray, j: int
) -> np.ndarray:
    """The pairs at a loop state (`loop_at`: outside counted segments) whose bytes from position `j` on
    are all that state's loop bytes: each stays in the state to its end (token_loops)."""
    lc = loop_at[cur]
    short = lc >= 0
    idx = np.flatnonzero(short)
    if len(idx):
        short[idx] = tails[lc[idx], t_idx[idx]] <= j
    return short


class _Counter:
    """Counter bookkeeping for the token walk: per pair (ticks so far, still in the first segment, ticks in
    the first segment when it was left). Checks that do not depend on the start counter drop pairs here."""

    def __init__(self, dfa: ByteDFA) -> None:
        n = dfa.n_states
        self.seg = np.append(dfa.seg, -1).astype(np.int64)  # the dead state (n) is in no segment
        self.tick = np.vstack([dfa.tick, np.zeros((1, 256), dtype=bool)])
        self.lo = np.array([b[0] for b in dfa.bounds] + [0], dtype=np.int64)  # index -1: outside
        self.hi = np.array([b[1] for b in dfa.bounds] + [0], dtype=np.int64)
        self.off, self.length, self.flat = live_layout(dfa.live, n)

    def begin(self, src: np.ndarray) -> tuple[np.ndarray, ...]:
        k = len(src)
        return (np.zeros(k, dtype=np.int64), self.seg[src] >= 0, np.zeros(k, dtype=np.int64))

    def loop_states(self, loop_of: np.ndarray) -> np.ndarray:
        """The loop class of each state where a token may end early: none inside counted segments (their
        loop bytes tick the counter)."""
        return np.where(self.seg[:-1] >= 0, -1, loop_of)

    def ended(self, cs, t_idx, cur, j, vocab):  # type: ignore[no-untyped-def]
        """The counter data of pairs done at byte j (some ended early in a loop state: `loop_states`)."""
        return cs

    def step(self, src, t_idx, cur, cs, prev, byte):  # type: ignore[no-untyped-def]
        """One byte of every live pair: only pairs that touch a segment (before or after the byte) change,
        so the counter arithmetic runs on those alone (most pairs of a large schema are outside)."""
        touch = np.flatnonzero((self.seg[prev] >= 0) | (self.seg[cur] >= 0))
        if len(touch) < len(prev):
            if not len(touch):
                return src, t_idx, cur, cs
            keep, sub = self._step(tuple(c[touch] for c in cs), prev[touch], cur[touch], byte[touch])
            cs = tuple(c.copy() for c in cs)
            for c, v in zip(cs, sub, strict=True):
                c[touch] = v
            if keep is None:
                return src, t_idx, cur, cs
            alive = np.ones(len(prev), dtype=bool)
            alive[touch[~keep]] = False
            return src[alive], t_idx[alive], cur[alive], tuple(c[alive] for c in cs)
        keep, cs = self._step(cs, prev, cur, byte)
        if keep is None:
            return src, t_idx, cur, cs
        return src[keep], t_idx[keep], cur[keep], tuple(c[keep] for c in cs)

    def _step(self, cs, prev, cur, byte):  # type: ignore[no-untyped-def]
        """The counter data after one byte, and which pairs stay (None: all)."""
        cnt, first, n0 = cs
        s1, s2 = self.seg[prev], self.seg[cur]
        tk = self.tick[prev, byte]
        inside = (s1 >= 0) & (s1 == s2)
        cnt = np.where(inside, cnt + tk, cnt)
        leave = (s1 >= 0) & (s1 != s2)
        bad = leave & ~first & ((cnt < self.lo[s1]) | (cnt > self.hi[s1]))
        bad |= inside & (cnt > self.hi[s1])
        n0 = np.where(leave & first, cnt, n0)
        first = first & ~leave
        cnt = np.where((s2 >= 0) & (s1 != s2), tk, cnt)
        return (~bad if bad.any() else None), (cnt, first, n0)

    def finish(self, src, cur, cs):  # type: ignore[no-untyped-def]
        """Pairs whose end is valid regardless of the start counter, and their (delta, exited)."""
        cnt, first, n0 = cs
        in_seg = self.seg[cur] >= 0
        static = in_seg & ~first
        ok = np.ones(len(src), dtype=bool)
        if static.any():
            i = np.flatnonzero(static)
            c = cnt[i]
            good = c < self.length[cur[i]]
            good[good] = self.flat[self.off[cur[i][good]] + c[good]]
            ok[i] = good
        delta = np.where(first, cnt, n0).astype(np.int32)
        exited = ~first & (self.seg[src] >= 0)
        return ok, (delta[ok], exited[ok])


class _FreeCounter(_Counter):
    """`_Counter` without the bounds, for a DFA with one segment label: no pair is dropped for its counter;
    each carries instead what the bounds decide (`CountedWalk.kept`), so that one walk serves every bounds.
    Per pair: (ticks so far, still in the first segment, ticks in the first segment when it was left, the
    largest counter `_Counter` compares with the maximum, the smallest it compares with the minimum)."""

    def __init__(self, dfa: ByteDFA) -> None:
        super().__init__(dfa)
        # what each transition does to the counter, in one table (one gather a byte rather than five):
        # stays inside the segment, leaves it, enters it; ticks
        n = dfa.n_states
        s1 = (self.seg[:n] >= 0)[:, None]
        s2 = self.seg[np.where(dfa.transitions < 0, n, dfa.transitions)] >= 0
        code = (s1 & s2) * _INSIDE | (s1 & ~s2) * _LEAVE | (~s1 & s2) * _ENTER | dfa.tick * _TICK
        self.code = np.vstack([code, np.zeros((1, 256), dtype=code.dtype)]).astype(np.uint8).reshape(-1)
        self.dfa = dfa

    def loop_states(self, loop_of: np.ndarray) -> np.ndarray:
        """Tokens may also end early in the states of one loop class inside the segment whose loop bytes all
        tick (the string body: most walks otherwise go on byte by byte through it to their end): the rest
        of such a token stays in the state and adds a character a byte (`ended`)."""
        inside = self.seg[:-1] >= 0
        classes = np.unique(loop_of[inside & (loop_of >= 0)])
        if len(classes) != 1:
            return super().loop_states(loop_of)
        s = int(np.flatnonzero(inside & (loop_of == classes[0]))[0])
        if not self.dfa.tick[s][self.dfa.transitions[s] == s].all():
            return super().loop_states(loop_of)
        return np.where(inside & (loop_of != classes[0]), -1, loop_of)

    def ended(self, cs, t_idx, cur, j, vocab):  # type: ignore[no-untyped-def]
        """The pairs that ended early in the segment's loop state at byte j: their counter after the rest
        of their bytes (inside steps all, each a tick: it grows by their number, and `top` with it)."""
        lengths = vocab.packed[1]
        early = np.flatnonzero((lengths[t_idx] > j) & (self.seg[cur] >= 0))
        if not len(early):
            return cs
        cnt, first, n0, top, low = cs
        add = lengths[t_idx[early]] - j
        cnt, top = cnt.copy(), top.copy()
        cnt[early] += add
        top[early] = np.maximum(top[early], cnt[early])
        return cnt, first, n0, top, low

    def begin(self, src: np.ndarray) -> tuple[np.ndarray, ...]:
        k = len(src)
        return (*super().begin(src), np.full(k, -1, dtype=np.int64), np.full(k, NO_LOW, dtype=np.int64))

    def step(self, src, t_idx, cur, cs, prev, byte):  # type: ignore[no-untyped-def]
        """As `_Counter.step`, dropping nothing."""
        code = self.code[prev.astype(np.int64) * 256 + byte]
        touch = np.flatnonzero(code & _TOUCH)
        if len(touch) == len(prev):
            return src, t_idx, cur, self._free_step(cs, code)
        if len(touch):
            sub = self._free_step(tuple(c[touch] for c in cs), code[touch])
            cs = tuple(c.copy() for c in cs)
            for c, v in zip(cs, sub, strict=True):
                c[touch] = v
        return src, t_idx, cur, cs

    @staticmethod
    def _free_step(cs: tuple[np.ndarray, ...], code: np.ndarray) -> tuple[np.ndarray, ...]:
        """`_Counter._step`'s arithmetic, recording its checks (`top`, `low`) rather than making them."""
        cnt, first, n0, top, low = cs
        inside, leave = (code & _INSIDE) != 0, (code & _LEAVE) != 0
        tk = (code >> 3).astype(np.int64)  # (_TICK: the top bit)
        cnt = cnt + (tk & inside)
        later = leave & ~first  # a segment entered within the token is left: min <= counter <= max
        top = np.where(inside | later, np.maximum(top, cnt), top)  # (inside: counter <= max)
        low = np.where(later, np.minimum(low, cnt), low)
        n0 = np.where(leave & first, cnt, n0)
        first = first & ~leave
        cnt = np.where(code & _ENTER, tk, cnt)
        return cnt, first, n0, top, low

    def finish(self, src, cur, cs):  # type: ignore[no-untyped-def]
        """Every pair, with (delta, exited, top, low, the counter it ends with in a segment entered within
        the token or -1): `_Counter.finish`'s live check is left to `CountedWalk.kept` too."""
        cnt, first, n0, top, low = cs
        static = (self.seg[cur] >= 0) & ~first
        delta = np.where(first, cnt, n0).astype(np.int32)
        exited = ~first & (self.seg[src] >= 0)
        return slice(None), (delta, exited, top, low, np.where(static, cnt, -1))


NO_LOW = 2**62  # `_FreeCounter`'s smallest counter where no segment is left within the token
_INSIDE, _LEAVE, _ENTER, _TICK = 1, 2, 4, 8  # `_FreeCounter.code` bits
_TOUCH = _INSIDE | _LEAVE | _ENTER


@dataclass(frozen=True, eq=False)
class CountedWalk:
    """The token walk of a counted DFA with one segment label, bounds left out: every pair its transitions
    allow, in CSR order (by state, then token id), with what the bounds decide of each. Lexemes that differ
    in their bounds alone (maxLength 50 and 100 on one string body) share it: the walk is about half of a
    counted lexeme's build, and `TokenAutomaton.from_walk` makes the rest (equal to `build`'s)."""

    src: np.ndarray  # int32 per pair
    tok: np.ndarray  # int32
    dst: np.ndarray  # int32
    delta: np.ndarray  # int32: as `Counts.delta`
    exited: np.ndarray  # bool: as `Counts.exited`
    top: np.ndarray  # int64: the pair needs top <= max (-1: nothing)
    low: np.ndarray  # int64: the pair needs low >= min (NO_LOW: nothing)
    end: np.ndarray  # int64: the pair needs live[dst][end] (-1: nothing)
    loop_of: np.ndarray
    loops: tuple[Loop, ...]
    # What the automata of its bounds share beyond the walk (token_counts: per state, token groups and
    # rows by the groups they allow)
    memo: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, dfa: ByteDFA, vocab: Vocabulary) -> CountedWalk:
        assert len(dfa.bounds) == 1, "one segment label"
        loop_of, loops = loop_classes(dfa, vocab)
        loop_of.setflags(write=False)
        width = vocab.n_words * 32
        parts = list(_walk_chunks(dfa, vocab, max(1, _CHUNK // width), loop_of, loops, free=True))
        cols = [np.concatenate([p[i] for p in parts]) for i in range(2, 10)]
        order = np.argsort(cols[0].astype(np.int64) * width + cols[1])  # unique (state, token) keys
        src, tok, dst, *rest = (c[order] for c in cols)
        for a in (src, tok, dst, *rest):
            a.setflags(write=False)
        return cls(src.astype(np.int32), tok.astype(np.int32), dst.astype(np.int32), *rest, loop_of, loops)

    def kept(self, dfa: ByteDFA) -> np.ndarray:
        """Per pair: `build` keeps it for `dfa` (this walk's DFA with its own bounds and live tables)."""
        lo, hi = dfa.bounds[0]
        ok = (self.top <= hi) & (self.low >= lo)
        i = np.flatnonzero(self.end >= 0)
        if len(i):
            off, length, flat = live_layout(dfa.live, dfa.n_states)
            q, c = self.dst[i], self.end[i]
            good = c < length[q]
            good[good] = flat[off[q[good]] + c[good]]
            ok[i] &= good
        return ok


def live_layout(live: Mapping[int, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-state live tables flattened: (offset [n + 1], length [n + 1], flat bools)."""
    off = np.zeros(n + 1, dtype=np.int64)
    length = np.zeros(n + 1, dtype=np.int64)
    parts = []
    pos = 0
    for q in sorted(live):
        off[q], length[q] = pos, len(live[q])
        parts.append(live[q])
        pos += len(live[q])
    flat = np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
    return off, length, flat


def start_pairs(
    states: np.ndarray, table: np.ndarray, live: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(state, token row, state after the first byte) for `states` (`live`: their rows of the liveness
    table) and every token whose first byte lives there."""
    s_idx, b_idx = np.nonzero(live)
    counts = offsets[b_idx + 1] - offsets[b_idx]
    keep = counts > 0
    s_idx, b_idx, counts = s_idx[keep], b_idx[keep], counts[keep]
    group = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    t_idx = offsets[b_idx][group] + (np.arange(int(counts.sum())) - starts[group])
    src = states[s_idx]
    return src[group], t_idx, table[src, b_idx][group]
