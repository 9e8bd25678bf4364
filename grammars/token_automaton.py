"""The token automaton: a byte DFA lifted to a model's vocabulary, precomputed for every DFA state.

A text token is allowed in state `s` iff walking its bytes from `s` never dies; since every DFA state can
still reach acceptance, the text stays completable. EOS is allowed exactly in accepting states. Rows are
stored twice: as an XGrammar/llguidance-style int32 bitmask (bit t%32 of word t//32 = token t) to copy
into the logits mask, and as CSR (`indptr`, sorted `token_ids`, `next_state`) to advance without walking.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .dfa import ByteDFA
from .errors import GrammarLimitError
from .limits import DEFAULT_LIMITS, Limits
from .vocab import Vocabulary

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

    @property
    def n_states(self) -> int:
        return self.dfa.n_states

    @property
    def start(self) -> int:
        return self.dfa.start

    def is_accepting(self, state: int) -> bool:
        return bool(self.dfa.accepting[state])

    def is_eos(self, token_id: int) -> bool:
        i = int(np.searchsorted(self.eos_ids, token_id))
        return i < len(self.eos_ids) and int(self.eos_ids[i]) == token_id

    def next(self, state: int, token_id: int) -> int:
        """The state after text token `token_id` in `state`, or -1 if it is not allowed there."""
        lo, hi = int(self.indptr[state]), int(self.indptr[state + 1])
        i = lo + int(np.searchsorted(self.token_ids[lo:hi], token_id))
        if i < hi and int(self.token_ids[i]) == token_id:
            return int(self.next_state[i])
        return -1

    def allowed(self, state: int) -> np.ndarray:
        """All token ids allowed in `state`, EOS included when accepting, sorted."""
        text = self.token_ids[self.indptr[state] : self.indptr[state + 1]]
        if self.is_accepting(state) and len(self.eos_ids):
            return np.union1d(text, self.eos_ids).astype(np.int32)
        return text

    @classmethod
    def build(cls, dfa: ByteDFA, vocab: Vocabulary, limits: Limits = DEFAULT_LIMITS) -> TokenAutomaton:
        n, width = dfa.n_states, vocab.n_words * 32
        eos = np.array(sorted(vocab.eos_ids), dtype=np.int32)
        bitmask = np.zeros((n, vocab.n_words), dtype=np.int32)
        counts = np.zeros(n, dtype=np.int64)
        tok_parts: list[np.ndarray] = []
        dst_parts: list[np.ndarray] = []
        total = 0
        acc_rows = np.flatnonzero(dfa.accepting)
        eos_word = (eos >> 5).astype(np.int64)
        eos_bits = np.left_shift(np.uint32(1), (eos & 31).astype(np.uint32))
        for lo, hi, src, tok, dst in _walk_chunks(dfa, vocab, max_rows=max(1, _CHUNK // width)):
            # Sort the pairs by (state, token id): the CSR order. Work follows the live pairs, not
            # states x vocabulary (most JSON states allow a handful of tokens).
            # One int64 key per pair, (row, token, next state), sorted in place: no argsort and gathers.
            # Bounded: rows < _CHUNK // width, so row * width * (n + 1) stays far below 2**63.
            key = ((src.astype(np.int64) - lo) * width + tok) * (n + 1) + dst
            key.sort()
            cell, nxt = np.divmod(key, n + 1)
            rows, cols = np.divmod(cell, width)
            tok_parts.append(cols.astype(np.int32))
            dst_parts.append(nxt.astype(np.int32))
            counts[lo:hi] = np.bincount(rows, minlength=hi - lo)
            total += len(cols)
            if total > limits.max_token_transitions:
                raise _too_large(total, limits, hi, n)
            # Bitmask words: the (distinct) bits of one word add up to their OR; float64 sums are exact here.
            words = rows * vocab.n_words + (cols >> 5)
            bits = np.left_shift(1, (cols & 31)).astype(np.float64)
            packed = np.bincount(words, weights=bits, minlength=(hi - lo) * vocab.n_words)
            block = packed.astype(np.uint64).astype(np.uint32).reshape(hi - lo, vocab.n_words)
            if len(eos):
                for r in acc_rows[(acc_rows >= lo) & (acc_rows < hi)].tolist():
                    np.bitwise_or.at(block[r - lo], eos_word, eos_bits)
            bitmask[lo:hi] = block.view(np.int32)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        token_ids = np.concatenate(tok_parts) if tok_parts else np.zeros(0, dtype=np.int32)
        next_state = np.concatenate(dst_parts) if dst_parts else np.zeros(0, dtype=np.int32)
        n_allowed = counts.astype(np.int32)
        tensor = torch.from_numpy(bitmask)  # before freezing: torch warns about read-only arrays
        for a in (bitmask, indptr, token_ids, next_state, n_allowed, eos):
            a.setflags(write=False)
        return cls(dfa, vocab, bitmask, indptr, token_ids, next_state, n_allowed, eos, tensor)


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
    dfa: ByteDFA, vocab: Vocabulary, max_rows: int
) -> Iterator[tuple[int, int, np.ndarray, ...]]:
    """Per chunk of states lo..hi: (lo, hi, state, token id, next state) of every allowed text-token pair.

    Pairs start only where a token's first byte has a transition (tokens are grouped by first byte), then
    advance one byte at a time for all live pairs at once: dead pairs are dropped and finished tokens
    emitted, so the work follows the live pairs rather than states x tokens x length.
    """
    n = dfa.n_states
    ids, lengths, padded, offsets = vocab.packed
    dead = n
    table = np.full((n + 1, 256), dead, dtype=np.int32)
    table[:n] = np.where(dfa.transitions < 0, dead, dfa.transitions)
    live = table[:n] != dead  # [n, 256]
    per_state = live.astype(np.int64) @ np.diff(offsets)  # pairs each state starts with
    lo = 0
    while lo < n:
        # The next chunk: at most max_rows states whose starting pairs fit in about _CHUNK elements.
        hi = lo + 1 + int(np.searchsorted(np.cumsum(per_state[lo + 1 : lo + max_rows]), _CHUNK))
        hi = min(n, hi, lo + max_rows)
        src, t_idx, cur = _start_pairs(lo, hi, table, live, offsets)
        out_src: list[np.ndarray] = []
        out_tok: list[np.ndarray] = []
        out_dst: list[np.ndarray] = []
        j = 1
        while len(t_idx):
            done = lengths[t_idx] == j
            if done.any():
                out_src.append(src[done])
                out_tok.append(ids[t_idx[done]])
                out_dst.append(cur[done])
                keep = ~done
                src, t_idx, cur = src[keep], t_idx[keep], cur[keep]
                if not len(t_idx):
                    break
            cur = table[cur, padded[t_idx, j]]
            alive = cur != dead
            src, t_idx, cur = src[alive], t_idx[alive], cur[alive]
            j += 1
        if out_src:
            yield lo, hi, np.concatenate(out_src), np.concatenate(out_tok), np.concatenate(out_dst)
        else:
            empty = np.zeros(0, dtype=np.int64)
            yield lo, hi, empty, empty, empty
        lo = hi


def _start_pairs(
    lo: int, hi: int, table: np.ndarray, live: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(state, token row, state after the first byte) for states lo..hi and every token whose first byte lives."""
    s_idx, b_idx = np.nonzero(live[lo:hi])
    counts = offsets[b_idx + 1] - offsets[b_idx]
    keep = counts > 0
    s_idx, b_idx, counts = s_idx[keep], b_idx[keep], counts[keep]
    group = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    t_idx = offsets[b_idx][group] + (np.arange(int(counts.sum())) - starts[group])
    states = (s_idx + lo).astype(np.int32)
    return states[group], t_idx, table[states, b_idx][group]
