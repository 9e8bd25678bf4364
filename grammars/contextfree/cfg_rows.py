"""The per-state token classification of a grammar (see cfg_matcher), computed lazily and memoized.

Every vocabulary token is walked, for an RTN state with byte edges, through that rule's byte transitions
alone (calls and completions ignored), and classified once:

- *inside*: all its bytes stay inside the rule and end in a live state: allowed whenever an item at that
  state is in the current Earley set (every item is viable, so no context is needed);
- *rejected*: it dies before passing an exit point (a state, after >= 1 byte, that accepts or calls):
  this item can never take it;
- *uncertain*: it dies after passing an exit point: it may continue in a callee or in a caller, which
  only the Earley set at run time can tell.

`StateRows` does this the first time a mask needs a state (for the batch of states that mask needs, walking
only the tokens whose first byte lives there), so that binding a grammar to a vocabulary costs O(grammar),
not O(states x vocabulary). `classify` runs the same walk over every state at once (the eager form, kept
for tests and for callers that want every row up front).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .. import disk_cache
from ..automata.dfa import ByteDFA
from ..errors import GrammarLimitError
from ..limits import DEFAULT_LIMITS, Limits, check_time
from ..tokens.constraint import TokenConstraint
from ..tokens.token_automaton import TokenAutomaton, pack_bits, set_bits, start_pairs
from ..tokens.vocab import Vocabulary
from .rtn import RTN

_CHUNK = 4_000_000  # (state, token) pairs walked at once


@dataclass(frozen=True, eq=False)
class VocabOrder:
    """A vocabulary's text tokens sorted by their bytes (so that a mask's simulation shares prefixes)."""

    rank_to_id: np.ndarray  # int64: text token ids sorted by their bytes
    rank_of: np.ndarray  # int64 [size]: each id's rank (0 for ids that are not text tokens)
    rank_bytes: tuple[bytes, ...]  # the bytes of those tokens, in the same order


@lru_cache(maxsize=8)
def vocab_order(vocab: Vocabulary) -> VocabOrder:
    ids = vocab.text_ids
    order = sorted(ids.tolist(), key=lambda i: vocab.token_bytes[i])
    rank_to_id = np.array(order, dtype=np.int64)
    rank_of = np.zeros(vocab.size, dtype=np.int64)
    rank_of[rank_to_id] = np.arange(len(rank_to_id))
    for a in (rank_to_id, rank_of):
        a.setflags(write=False)
    return VocabOrder(rank_to_id, rank_of, tuple(vocab.token_bytes[i] or b"" for i in order))


class StateRows:
    """Inside rows and uncertain ranks per RTN state, each computed on first use and then kept.

    `rows(states)` gives the rows' indices into `buf` (row 0: no token); `uncertain[g]` the sorted
    byte-order ranks of state g's uncertain tokens. Unrolled lexeme states take theirs from the lexeme's
    token automaton, a whole lexeme rule at a time.
    """

    def __init__(
        self, rtn: RTN, vocab: Vocabulary, order: VocabOrder, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self.rtn, self.vocab, self.order, self.limits = rtn, vocab, order, limits
        # Per state, as the RTN grows (`_sync`): the byte table with a dead row at `dead` (the capacity),
        # whether a token passing here may go on in a caller, the bytes that may go on in a callee called
        # here, and whether the state is an unrolled lexeme pair. Rows past the RTN's states are dead.
        self.n = 0
        self.dead = 0
        self.table = np.zeros((1, 256), dtype=np.int32)
        self.exit_point = np.zeros(1, dtype=bool)
        self.enters = np.zeros((1, 256), dtype=bool)
        self.lexical = np.zeros(0, dtype=bool)
        self.row_of = np.full(0, -1, dtype=np.int64)  # -1: not computed yet
        self.buf = np.zeros((64, vocab.n_words), dtype=np.int32)
        self.n_rows = 1
        self.uncertain: list[np.ndarray | None] = []
        self.walked = 0  # (state, token) pairs walked so far
        self.lock = threading.Lock()
        self._sync()

    def _sync(self) -> None:
        """Take in the states of the rules the RTN built since the last call."""
        with self.rtn.lock:  # no rule half published meanwhile
            self._take_new_rules()

    def _take_new_rules(self) -> None:
        rtn = self.rtn
        n, old = rtn.n_states, self.n
        if n == old:
            return
        if n > self.dead:  # grow by doubling; the dead row moves to the new capacity
            cap = max(n, 2 * self.dead, 64)
            table = np.full((cap + 1, 256), cap, dtype=np.int32)
            table[:old] = np.where(self.table[:old] == self.dead, cap, self.table[:old])
            exit_point = np.zeros(cap + 1, dtype=bool)
            exit_point[:old] = self.exit_point[:old]
            enters = np.zeros((cap + 1, 256), dtype=bool)
            enters[:old] = self.enters[:old]
            lexical = np.zeros(cap, dtype=bool)
            lexical[:old] = self.lexical[:old]
            row_of = np.full(cap, -1, dtype=np.int64)
            row_of[:old] = self.row_of[:old]
            self.table, self.exit_point, self.enters, self.lexical = table, exit_point, enters, lexical
            self.dead = cap
            self.row_of = row_of  # last: readers without the lock index it
        self.table[old:n] = np.where(rtn.table[old:n] < 0, self.dead, rtn.table[old:n])
        for r in rtn.built:
            lo, hi = rtn.span(r)
            if old <= lo < hi <= n:
                self.exit_point[lo:hi] = accepting_through_nullable(rtn, r)
                self.enters[lo:hi] = call_first(rtn, r)
        self.lexical[old:n] = rtn.lex_q[old:n] >= 0
        self.uncertain.extend([None] * (n - old))
        self.n = n

    def rows(self, states: np.ndarray) -> np.ndarray:
        """The row indices of `states` (int64, sorted unique RTN states), classifying the new ones."""
        if len(states) and states[-1] < self.n:
            have = self.row_of[states]
            if (have >= 0).all():
                return have
        with self.lock:  # masks may be filled on a worker thread while another asks too
            self._sync()
            return self._rows(states)

    def _rows(self, states: np.ndarray) -> np.ndarray:
        have = self.row_of[states]
        missing = states[have < 0]
        if len(missing):
            lex = self.lexical[missing]
            if lex.any():
                for r in np.unique(self.rtn.rule_of[missing[lex]]).tolist():
                    self._lexeme(r)
            plain = missing[~lex]
            if len(plain):
                self._walk(plain)
            have = self.row_of[states]
        return have

    def _add_rows(self, rows: np.ndarray) -> int:
        """Append rows to `buf`; the index of the first."""
        k = len(rows)
        while self.n_rows + k > len(self.buf):
            grown = np.zeros((2 * len(self.buf), self.buf.shape[1]), dtype=np.int32)
            grown[: self.n_rows] = self.buf[: self.n_rows]
            self.buf = grown
        first = self.n_rows
        self.buf[first : first + k] = rows
        self.n_rows += k
        return first

    def _walk(self, states: np.ndarray) -> None:
        """Classify the plain (not lexeme) `states` by walking their live tokens, a chunk at a time."""
        ids, lengths, padded, offsets = self.vocab.packed
        live = self.table[states] != self.dead
        per_state = live.astype(np.int64) @ np.diff(offsets)
        self.walked += int(per_state.sum())
        bounds = np.searchsorted(np.cumsum(per_state), np.arange(_CHUNK, int(per_state.sum()), _CHUNK))
        for part in np.split(np.arange(len(states)), np.unique(bounds)):
            if len(part):
                self._walk_chunk(states[part], live[part], ids, lengths, padded, offsets)

    def _walk_chunk(
        self,
        states: np.ndarray,
        live: np.ndarray,
        ids: np.ndarray,
        lengths: np.ndarray,
        padded: np.ndarray,
        offsets: np.ndarray,
    ) -> None:
        table, dead, exit_point, enters = self.table, self.dead, self.exit_point, self.enters
        src, t_idx, cur = start_pairs(states, table, live, offsets)
        passed = exit_point[cur]
        in_src: list[np.ndarray] = []
        in_tok: list[np.ndarray] = []
        unc_src: list[np.ndarray] = []
        unc_tok: list[np.ndarray] = []
        # flat views: one gather per step instead of 2-D fancy indexing; one compaction per step
        width = padded.shape[1]
        flat_bytes = padded.reshape(-1)
        flat_table = table.reshape(-1)
        flat_enters = enters.reshape(-1)
        j = 1
        while len(t_idx):
            check_time("classifying the vocabulary for the grammar")
            done = lengths[t_idx] == j
            # a token that is done reads a padding byte (or, at the full width, its own last one): ignored
            byte = flat_bytes[t_idx * width + min(j, width - 1)].astype(np.int64)
            at = cur.astype(np.int64) * 256 + byte
            cur = flat_table[at]
            passed = passed | flat_enters[at]
            died = (cur == dead) & ~done
            if done.any() or died.any():
                if done.any():
                    in_src.append(src[done])
                    in_tok.append(ids[t_idx[done]])
                unsure = died & passed
                if unsure.any():
                    unc_src.append(src[unsure])
                    unc_tok.append(ids[t_idx[unsure]])
                keep = ~(done | died)
                src, t_idx, cur, passed = src[keep], t_idx[keep], cur[keep], passed[keep]
            passed |= exit_point[cur]
            j += 1
        row_of = np.zeros(len(states), dtype=np.int64)  # set last: readers without the lock test it
        if in_src:
            s_all, t_all = np.concatenate(in_src), np.concatenate(in_tok)
            which_states, which = np.unique(s_all, return_inverse=True)
            packed = pack_bits(which.reshape(-1), t_all, len(which_states), self.vocab.n_words)
            first = self._add_rows(packed.view(np.int32))
            row_of[np.searchsorted(states, which_states)] = first + np.arange(len(which_states))
        rank_of = self.order.rank_of
        empty = np.zeros(0, dtype=np.int64)
        if unc_src:
            s_all, t_all = np.concatenate(unc_src), np.concatenate(unc_tok)
            order = np.argsort(s_all, kind="stable")
            s_all, t_all = s_all[order], t_all[order]
            cut = np.searchsorted(s_all, states, side="left").tolist()
            end = np.searchsorted(s_all, states, side="right").tolist()
            for g, a, b in zip(states.tolist(), cut, end, strict=True):
                self.uncertain[g] = np.sort(rank_of[t_all[a:b]]) if b > a else empty
        else:
            for g in states.tolist():
                self.uncertain[g] = empty
        self.row_of[states] = row_of

    def _lexeme(self, r: int) -> None:
        """Rows and uncertain ranks of every unrolled state of lexeme rule r (from its token automaton)."""
        rtn, vocab = self.rtn, self.vocab
        dfa = rtn.lexemes[r]
        assert dfa is not None
        auto = lexeme_automaton(dfa, vocab, self.limits)
        exits = exit_tokens(dfa, vocab)
        rank_of = self.order.rank_of
        ranked = [np.sort(rank_of[e]) for e in exits]
        eos_bits = np.zeros(vocab.n_words, dtype=np.uint32)
        set_bits(eos_bits, np.array(sorted(vocab.eos_ids), dtype=np.int64))
        clear = ~eos_bits.view(np.int32)
        by_tensor: dict[int, int] = {}
        lo, hi = rtn.span(r)
        has_bytes = (self.table[lo:hi] != self.dead).any(axis=1)
        lex_q, lex_c = rtn.lex_q, rtn.lex_c
        for g in range(lo, hi):
            q, c = int(lex_q[g]), int(lex_c[g])
            self.uncertain[g] = ranked[q]
            if not has_bytes[g - lo]:
                self.row_of[g] = 0
                continue
            tensor = auto.row(q, c)
            k = by_tensor.get(id(tensor))
            if k is None:
                k = by_tensor[id(tensor)] = self._add_rows((tensor.numpy() & clear)[None, :])
            self.row_of[g] = k


@lru_cache(maxsize=64)
def lexeme_automaton(dfa: ByteDFA, vocab: Vocabulary, limits: Limits) -> TokenAutomaton:
    """The token automaton of a lexeme's counted DFA: built once per (DFA, vocabulary) in a process and
    kept in the disk cache under the DFA's contents, so that lexemes every schema shares (a JSON string)
    cost nothing after the first run."""

    def build() -> TokenConstraint:
        return TokenConstraint(dfa, vocab, TokenAutomaton.build(dfa, vocab, limits), "lexeme")

    return disk_cache.cached("lexeme", (dfa_digest(dfa), limits), vocab, build).automaton


def dfa_digest(dfa: ByteDFA) -> str:
    """A hash of everything that defines a (counted) DFA's language, for cache keys."""
    h = hashlib.sha256()
    for a in (dfa.transitions, dfa.accepting, dfa.seg, dfa.tick):
        h.update(b"-" if a is None else np.ascontiguousarray(a).tobytes() + repr(a.shape).encode())
    h.update(repr((dfa.start, dfa.bounds)).encode())
    for q in sorted(dfa.live):
        h.update(repr(q).encode() + np.ascontiguousarray(dfa.live[q]).tobytes())
    return h.hexdigest()


def classify(
    rtn: RTN, vocab: Vocabulary, limits: Limits = DEFAULT_LIMITS
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Eagerly, for every RTN state (every rule built first): (inside rows [R, n_words], each state's row
    [G], uncertain token ids per state), refusing grammars whose (state, token) pairs exceed
    `limits.max_token_transitions`."""
    rtn.build_all()
    rows = StateRows(rtn, vocab, vocab_order(vocab), limits)
    n = rows.n
    plain = np.flatnonzero(~rows.lexical[:n])
    live = rows.table[plain] != rows.dead
    pairs = int((live.astype(np.int64) @ np.diff(vocab.packed[3])).sum())
    if pairs > limits.max_token_transitions:
        raise GrammarLimitError(
            f"grammar too large for this vocabulary: about {pairs:,} (state, token) pairs to classify "
            f"(limit {limits.max_token_transitions:,})"
        )
    of = rows.rows(np.arange(n, dtype=np.int64))
    rank_to_id = rows.order.rank_to_id
    uncertain = [np.sort(rank_to_id[u]) for u in rows.uncertain if u is not None]
    inside = np.ascontiguousarray(rows.buf[: rows.n_rows])
    return inside, of, uncertain


def call_first(rtn: RTN, r: int) -> np.ndarray:
    """bool [states of built rule r, 256]: the bytes that can start what a call made from the state
    derives (the callee, and what follows it when the callee is nullable).

    A token that dies in its own rule only after passing such a byte may have gone into the callee there
    instead, so it is uncertain; one that never did is rejected for good. The callees' first bytes come
    from `rtn.first` (from their bodies: they need not be built); what follows a call is in rule r.
    """
    lo, hi = rtn.span(r)
    calls = rtn.calls
    if not any(calls[g] for g in range(lo, hi)):
        return np.zeros((hi - lo, 256), dtype=bool)
    packed = np.packbits(rtn.table[lo:hi] >= 0, axis=1, bitorder="little")
    bits = [int.from_bytes(row.tobytes(), "little") for row in packed]  # F(g) as a 256-bit int
    first, nullable = rtn.first, rtn.nullable
    via = [0] * (hi - lo)  # what a call made here may start with
    changed = True
    while changed:  # F(g) = bytes(g) | first(callee) | F(next), if the callee is nullable, for g's calls
        changed = False
        for i in range(hi - lo):
            v = 0
            for callee, nxt in calls[lo + i]:
                v |= first[callee] | (bits[nxt - lo] if nullable[callee] else 0)
            if v != via[i]:
                via[i] = v
                bits[i] |= v
                changed = True
    out = np.frombuffer(b"".join(v.to_bytes(32, "little") for v in via), dtype=np.uint8)
    return np.unpackbits(out, bitorder="little").reshape(hi - lo, 256).astype(bool)


def accepting_through_nullable(rtn: RTN, r: int) -> np.ndarray:
    """bool [states of built rule r]: the state accepts, or reaches an accepting state through calls of
    nullable rules (the Earley set then also holds that state, whose completion continues in a caller)."""
    lo, hi = rtn.span(r)
    acc = rtn.accepting[lo:hi].copy()
    edges = [
        (g - lo, nxt - lo) for g in range(lo, hi) for callee, nxt in rtn.calls[g] if rtn.nullable[callee]
    ]
    changed = True
    while changed:
        changed = False
        for g, nxt in edges:
            if acc[nxt] and not acc[g]:
                acc[g] = changed = True
    return acc


def exit_tokens(dfa: ByteDFA, vocab: Vocabulary) -> list[np.ndarray]:
    """Per DFA state: the text tokens whose walk (counters ignored) passes an accepting state after at
    least one byte and then dies. Only tokens with a byte that enters an accepting state before their last
    byte can; there are few (a JSON string's closing quote inside a token like `",`)."""
    return _exit_tokens(dfa, vocab)


@lru_cache(maxsize=64)
def _exit_tokens(dfa: ByteDFA, vocab: Vocabulary) -> list[np.ndarray]:
    ids, lengths, padded, _ = vocab.packed
    trans = dfa.transitions
    enters = np.zeros(256, dtype=bool)
    src, byte = np.nonzero(trans >= 0)
    enters[byte[dfa.accepting[trans[src, byte]]]] = True
    width = padded.shape[1]
    before_last = np.arange(width)[None, :] < (lengths[:, None] - 1)
    cand = np.flatnonzero((enters[padded] & before_last).any(axis=1))
    rows = trans.tolist()
    acc = dfa.accepting.tolist()
    tokens = [(int(ids[i]), bytes(padded[i, : lengths[i]].tolist())) for i in cand.tolist()]
    out = []
    for q in range(dfa.n_states):
        hit = []
        for tid, data in tokens:
            state, passed = q, False
            for b in data:
                state = rows[state][b]
                if state < 0:
                    if passed:
                        hit.append(tid)
                    break
                passed = passed or acc[state]
        out.append(np.array(sorted(hit), dtype=np.int64))
    return out


__all__ = ["StateRows", "VocabOrder", "accepting_through_nullable", "call_first", "classify", "vocab_order"]
