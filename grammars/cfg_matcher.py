"""Token masks for context-free grammars: an Earley recognizer plus an XGrammar-style adaptive mask cache.

At compile time every vocabulary token is walked, for every RTN state with byte edges, through that rule's
byte transitions alone (calls and completions ignored), and classified once:

- *inside*: all its bytes stay inside the rule and end in a live state: allowed whenever an item at that
  state is in the current Earley set (every item is viable, so no context is needed);
- *rejected*: it dies before passing an exit point (a state, after >= 1 byte, that accepts or calls):
  this item can never take it;
- *uncertain*: it dies after passing an exit point: it may continue in a callee or in a caller, which
  only the Earley set at run time can tell.

A token whose first byte enters a callee or continues a caller is covered by the predicted or completed
items of the same set. At run time the mask is the OR of the inside rows of the set's scanning states, plus
those uncertain tokens that survive a real Earley simulation, walked in byte order so that shared prefixes
are simulated once. EOS is allowed exactly when the set accepts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from . import disk_cache
from .cfg_grammar import Grammar, GrammarError, parse_grammar
from .counters import counter_signature
from .dfa import ByteDFA
from .earley import Chart, ESet, Recognizer
from .errors import GrammarLimitError
from .limits import DEFAULT_LIMITS, Limits, check_time, deadline
from .rtn import RTN, build_rtn
from .token_automaton import pack_bits, set_bits, start_pairs
from .vocab import Vocabulary

_CHUNK = 4_000_000
_MASK_CACHE = 4096  # masks kept per constraint, by context signature
_CONTEXT_LIMIT = 200_000  # interned contexts before the caches are reset


class _Cyclic(Exception):
    pass


BUILTIN_GRAMMARS = ("json", "arith", "sql_select")


def builtin_grammar(name: str) -> str:
    """The Lark text of a built-in grammar: "json", "arith" or "sql_select"."""
    if name not in BUILTIN_GRAMMARS:
        raise GrammarError(
            f"unknown built-in grammar '{name}'", hints=[f"known: {', '.join(BUILTIN_GRAMMARS)}"]
        )
    return (Path(__file__).parent / f"{name}.lark").read_text(encoding="utf-8")


@dataclass(frozen=True, eq=False)
class CFGConstraint:
    """A grammar compiled for one vocabulary: RTN, recognizer and the per-state token classification."""

    grammar: Grammar
    rtn: RTN
    vocab: Vocabulary
    recognizer: Recognizer
    inside: np.ndarray  # int32 [n_rows, n_words]: context-independent allowed-token rows (row 0: none)
    inside_of: np.ndarray  # int64 [n_states]: each RTN state's row in `inside`
    uncertain: tuple[np.ndarray, ...]  # per RTN state: byte-order ranks of the tokens to check at run time
    rank_to_id: np.ndarray  # int64: text token ids sorted by their bytes
    rank_bytes: tuple[bytes, ...]  # the bytes of those tokens, in the same order
    eos_ids: np.ndarray  # int32
    source: str = ""
    # Per RTN state, the state the mask cache files it under: itself, or for an unrolled lexeme pair
    # (q, c) the first pair (q, c') whose counter has the same future for any one token (see `_canon`).
    canon: tuple[int, ...] = ()
    # Masks by context signature, and the interning table of continuation contexts (see `_signature`).
    _masks: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _interned: dict[frozenset, int] = field(default_factory=dict, repr=False)
    _ids: itertools.count = field(default_factory=itertools.count, repr=False)  # ids are never reused

    @property
    def n_states(self) -> int:
        return self.rtn.n_states

    @property
    def n_uncertain(self) -> int:
        return sum(len(u) for u in self.uncertain)

    # State for the on-disk constraint cache (disk_cache.py): the recognizer and the token bytes are
    # rebuilt from the RTN and the vocabulary; the run-time mask caches start empty.
    _DERIVED = ("recognizer", "rank_bytes", "_masks", "_interned", "_ids")

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._DERIVED}

    def __setstate__(self, state: dict) -> None:
        vocab, rank_to_id = state["vocab"], state["rank_to_id"]
        derived = {
            "recognizer": Recognizer(state["rtn"]),
            "rank_bytes": tuple(vocab.token_bytes[i] or b"" for i in rank_to_id.tolist()),
            "_masks": {},
            "_interned": {},
            "_ids": itertools.count(),
        }
        self.__dict__.update(state, **derived)

    def matcher(self) -> CFGMatcher:
        return CFGMatcher(self)

    def __repr__(self) -> str:
        return f"CFGConstraint({self.source[:40]!r}, rules={self.rtn.n_rules}, states={self.n_states})"

    def mask(self, chart: Chart) -> np.ndarray:
        """The allowed-token bitmask (int32 words, EOS included) after `chart`; cached on its last set."""
        last = chart[-1]
        if last.mask is not None:
            return last.mask
        key = self._signature(chart)
        if key is not None:
            hit = self._masks.get(key)
            if hit is not None:
                last.mask = hit
                return hit
        mask = self._compute_mask(chart)
        last.mask = mask
        if key is not None:
            if len(self._masks) >= _MASK_CACHE:
                self._masks.clear()
            self._masks[key] = mask
        return mask

    def _signature(self, chart: Chart) -> int | None:
        """An id equal for charts with the same future: items with origins replaced by their contexts.

        Earley only looks back through `chart[o].waiting[r]` when an item of rule r from o completes, so
        an item's future is its state plus the context C(o, r) = {(g', C(o', rule of g'))} of the
        callers waiting there (plus a top marker for the start rule at 0). Cyclic contexts (left
        recursion left after normalization) give None: no caching then.
        """
        rule_of = self.recognizer.rule_of
        canon = self.canon
        interned = self._interned
        if len(interned) > _CONTEXT_LIMIT:
            interned.clear()
            self._masks.clear()

        def context(o: int, r: int) -> int:
            s = chart[o]
            hit = s.contexts.get(r)
            if hit is not None:
                if hit < 0:
                    raise _Cyclic
                return hit
            s.contexts[r] = -1
            try:
                key = frozenset((g2, context(o2, rule_of[g2])) for g2, o2 in s.waiting.get(r, ()))
            except _Cyclic:
                del s.contexts[r]
                raise
            if o == 0 and r == 0:
                key = key | {(-1, -1)}
            cid = interned.get(key)
            if cid is None:
                cid = interned[key] = next(self._ids)
            s.contexts[r] = cid
            return cid

        try:
            key = frozenset((canon[g], context(o, rule_of[g])) for g, o in chart[-1].items)
        except _Cyclic:
            return None
        cid = interned.get(key)
        if cid is None:
            cid = interned[key] = next(self._ids)
        return cid

    def _compute_mask(self, chart: Chart) -> np.ndarray:
        last = chart[-1]
        states = last.scan_states()
        words = self.vocab.n_words
        if len(states):
            mask = np.bitwise_or.reduce(self.inside[self.inside_of[states]], axis=0)
        else:
            mask = np.zeros(words, dtype=np.int32)
        parts = [self.uncertain[g] for g in states.tolist() if len(self.uncertain[g])]
        if parts:
            ranks = np.unique(np.concatenate(parts)) if len(parts) > 1 else parts[0]
            ids = self.rank_to_id[ranks]
            unset = ((mask[ids >> 5] >> (ids & 31)) & 1) == 0
            ok = self._simulate(chart, ranks[unset].tolist())
            if ok:
                hit = self.rank_to_id[np.array(ok, dtype=np.int64)]
                np.bitwise_or.at(
                    mask, hit >> 5, (np.uint32(1) << (hit & 31).astype(np.uint32)).view(np.int32)
                )
        if last.accept and len(self.eos_ids):
            e = self.eos_ids.astype(np.int64)
            np.bitwise_or.at(mask, e >> 5, (np.uint32(1) << (e & 31).astype(np.uint32)).view(np.int32))
        mask.setflags(write=False)
        return mask

    def _simulate(self, chart: Chart, ranks: list[int]) -> list[int]:
        """The ranks whose token bytes the recognizer takes after `chart` (tokens in byte order)."""
        step = self.recognizer.step
        words = self.rank_bytes
        base = len(chart)
        sim = list(chart)  # sim[base + d - 1] is the set after d bytes of the current prefix
        prev = b""
        dead_at = 1 << 30  # prefix length at which the previous path died
        ok: list[int] = []
        for r in ranks:
            w = words[r]
            lcp = 0
            m = min(len(w), len(prev), len(sim) - base)
            while lcp < m and w[lcp] == prev[lcp]:
                lcp += 1
            if dead_at <= lcp:
                continue  # a shared prefix already died
            del sim[base + lcp :]
            dead_at = 1 << 30
            prev = w
            alive = True
            for d in range(lcp, len(w)):
                s = step(sim, w[d])
                if s is None:
                    dead_at = d + 1
                    alive = False
                    break
                sim.append(s)
            if alive:
                ok.append(r)
        return ok


class CFGMatcher:
    """One stream's position in a grammar: the Earley chart of the bytes accepted so far."""

    __slots__ = ("constraint", "chart", "_terminated")

    def __init__(self, constraint: CFGConstraint, chart: Chart | None = None) -> None:
        self.constraint = constraint
        self.chart: Chart = constraint.recognizer.initial() if chart is None else chart
        self._terminated = False

    def __repr__(self) -> str:
        return f"CFGMatcher(pos={len(self.chart) - 1}, terminated={self._terminated})"

    def mask(self) -> np.ndarray:
        if self._terminated:
            return np.zeros(self.constraint.vocab.n_words, dtype=np.int32)
        return self.constraint.mask(self.chart)

    def fill_bitmask(self, row: torch.Tensor, budget: int | None = None) -> None:
        """The allowed tokens; the budget is not applied (the fewest tokens to finish an Earley state is
        not tabulated): a value cut at max_tokens is reported as cut by the runtime."""
        if self._terminated:
            row.zero_()
            return
        row.copy_(torch.from_numpy(self.constraint.mask(self.chart).copy()))

    def advance(self, token_id: int) -> bool:
        if self._terminated:
            return False
        c = self.constraint
        if token_id in c.vocab.eos_ids:
            if self.chart[-1].accept:
                self._terminated = True
                return True
            return False
        if not 0 <= token_id < len(c.vocab.token_bytes) or token_id in c.vocab.special_ids:
            return False
        data = c.vocab.token_bytes[token_id]
        if not data:
            return False
        last = self.chart[-1]
        if last.mask is not None and not (int(last.mask[token_id >> 5]) >> (token_id & 31)) & 1:
            return False
        nxt = c.recognizer.advance_bytes(self.chart, data)
        if nxt is None:
            return False
        self.chart = nxt
        return True

    def is_accepting(self) -> bool:
        return not self._terminated and self.chart[-1].accept

    def can_continue(self) -> bool:
        if self._terminated:
            return False
        mask = self.constraint.mask(self.chart).copy()
        e = self.constraint.eos_ids.astype(np.int64)
        if len(e):
            mask.view(np.uint32)[e >> 5] &= ~(np.uint32(1) << (e & 31).astype(np.uint32))
        return bool(mask.any())

    def is_terminated(self) -> bool:
        return self._terminated

    def allowed_token_ids(self) -> np.ndarray:
        bits = np.unpackbits(self.mask().view(np.uint8), bitorder="little")
        return np.flatnonzero(bits[: self.constraint.vocab.size]).astype(np.int32)

    def clone(self) -> CFGMatcher:
        twin = CFGMatcher(self.constraint, list(self.chart))
        twin._terminated = self._terminated
        return twin

    def reset(self) -> None:
        self.chart = self.constraint.recognizer.initial()
        self._terminated = False


def cfg(
    grammar_text: str, vocab: Vocabulary, *, start: str = "start", limits: Limits = DEFAULT_LIMITS
) -> CFGConstraint:
    """Constrain generation to sentences of a Lark grammar (Earley semantics, `lexer="dynamic_complete"`)."""
    return _cfg(grammar_text, vocab, start, limits)


def cfg_builtin(name: str, vocab: Vocabulary, *, limits: Limits = DEFAULT_LIMITS) -> CFGConstraint:
    """`cfg` of a built-in grammar by name ("json", "arith", "sql_select")."""
    return _cfg(builtin_grammar(name), vocab, "start", limits)


@lru_cache(maxsize=32)
def _cfg(text: str, vocab: Vocabulary, start: str, limits: Limits) -> CFGConstraint:
    build = lambda: cfg_from_grammar(parse_grammar(text, start), vocab, limits, text)  # noqa: E731
    return disk_cache.cached("cfg", (text, start, limits), vocab, build)


@lru_cache(maxsize=32)
def cfg_from_grammar(grammar: Grammar, vocab: Vocabulary, limits: Limits, source: str) -> CFGConstraint:
    """A parsed grammar (from Lark text, or a recursive JSON schema) bound to a vocabulary."""
    with deadline(limits.max_seconds):
        rtn = build_rtn(grammar, limits)
        inside, inside_of, uncertain_ids = classify(rtn, vocab, limits)
        canon = _canon(rtn, vocab)
    ids = vocab.text_ids
    order = sorted(ids.tolist(), key=lambda i: vocab.token_bytes[i])
    rank_to_id = np.array(order, dtype=np.int64)
    rank_of = np.zeros(vocab.size, dtype=np.int64)
    rank_of[rank_to_id] = np.arange(len(rank_to_id))
    ranked: dict[int, np.ndarray] = {}  # unrolled lexeme states share their arrays: convert each once
    for u in uncertain_ids:
        if id(u) not in ranked:
            ranked[id(u)] = np.sort(rank_of[u])
    uncertain = tuple(ranked[id(u)] for u in uncertain_ids)
    rank_bytes = tuple(vocab.token_bytes[i] or b"" for i in order)
    eos = np.array(sorted(vocab.eos_ids), dtype=np.int32)
    return CFGConstraint(
        grammar,
        rtn,
        vocab,
        Recognizer(rtn),
        inside,
        inside_of,
        uncertain,
        rank_to_id,
        rank_bytes,
        eos,
        source,
        tuple(canon),
    )


def classify(
    rtn: RTN, vocab: Vocabulary, limits: Limits = DEFAULT_LIMITS
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(inside rows [R, n_words], each state's row [G], uncertain token ids per state) for every RTN state.

    Ordinary states are classified by walking the vocabulary; unrolled lexeme states take their rows from
    the lexeme's token automaton (`_lexeme_rows`).
    """
    n = rtn.n_states
    lexical = rtn.lex_q >= 0  # unrolled lexeme (state, counter) pairs
    ids, lengths, padded, offsets = vocab.packed
    dead = n
    table = np.full((n + 1, 256), dead, dtype=np.int32)
    table[:n] = np.where(rtn.table < 0, dead, rtn.table)
    exit_point = np.zeros(n + 1, dtype=bool)  # a token passing here may go on in a caller
    exit_point[:n] = _accepting_through_nullable(rtn)
    enters = _call_first(rtn)  # [n + 1, 256]: this byte may go on in a callee called here
    live = table[:n] != dead
    live[lexical] = False
    rows: list[np.ndarray] = [np.zeros((1, vocab.n_words), dtype=np.int32)]
    inside_of = np.zeros(n, dtype=np.int64)
    n_rows = 1
    unc_src: list[np.ndarray] = []
    unc_tok: list[np.ndarray] = []
    per_state = live.astype(np.int64) @ np.diff(offsets)
    if int(per_state.sum()) > 4 * limits.max_token_transitions:  # fail fast, before seconds of walking
        raise GrammarLimitError(
            f"grammar too large for this vocabulary: about {int(per_state.sum()):,} (state, token) pairs to "
            f"classify (limit {limits.max_token_transitions:,})",
            hints=[
                "long bounded repeats (like a large maxItems inside a recursive schema) are unrolled here"
            ],
        )
    total = 0
    lo = 0
    while lo < n:
        hi = lo + 1 + int(np.searchsorted(np.cumsum(per_state[lo + 1 :]), _CHUNK))
        hi = min(n, hi)
        src, t_idx, cur = start_pairs(lo, hi, table, live, offsets)
        passed = exit_point[cur]
        in_src: list[np.ndarray] = []
        in_tok: list[np.ndarray] = []
        j = 1
        while len(t_idx):
            check_time("classifying the vocabulary for the grammar")
            done = lengths[t_idx] == j
            if done.any():
                in_src.append(src[done])
                in_tok.append(ids[t_idx[done]])
                keep = ~done
                src, t_idx, cur, passed = src[keep], t_idx[keep], cur[keep], passed[keep]
                if not len(t_idx):
                    break
            byte = padded[t_idx, j]
            passed |= enters[cur, byte]
            cur = table[cur, byte]
            died = cur == dead
            if died.any():
                unsure = died & passed
                unc_src.append(src[unsure])
                unc_tok.append(ids[t_idx[unsure]])
                alive = ~died
                src, t_idx, cur, passed = src[alive], t_idx[alive], cur[alive], passed[alive]
            passed |= exit_point[cur]
            j += 1
        if in_src:
            s_all, t_all = np.concatenate(in_src), np.concatenate(in_tok)
            states, which = np.unique(s_all, return_inverse=True)
            rows.append(pack_bits(which.reshape(-1), t_all, len(states), vocab.n_words).view(np.int32))
            inside_of[states] = n_rows + np.arange(len(states))
            n_rows += len(states)
            total += len(s_all)
        total += sum(len(u) for u in unc_src)
        if total > limits.max_token_transitions:
            raise GrammarLimitError(
                f"grammar too large for this vocabulary: more than {total:,} classified (state, token) pairs "
                f"(limit {limits.max_token_transitions:,})"
            )
        lo = hi
    if unc_src:
        s_all, t_all = np.concatenate(unc_src), np.concatenate(unc_tok)
        order = np.argsort(s_all, kind="stable")
        s_all, t_all = s_all[order], t_all[order]
        bounds = np.searchsorted(s_all, np.arange(n + 1))
        uncertain = [t_all[bounds[g] : bounds[g + 1]] for g in range(n)]
    else:
        uncertain = [np.zeros(0, dtype=np.int64) for _ in range(n)]
    if lexical.any():
        lex_rows, lex_of, lex_unc = _lexeme_rows(rtn, vocab, limits)
        rows.append(lex_rows)
        inside_of[lexical] = np.where(lex_of[lexical] > 0, n_rows - 1 + lex_of[lexical], 0)
        for g in np.flatnonzero(lexical).tolist():
            uncertain[g] = lex_unc[g]
    inside = np.ascontiguousarray(np.concatenate(rows), dtype=np.int32)
    for a in (inside, inside_of):
        a.setflags(write=False)
    return inside, inside_of, uncertain


def _call_first(rtn: RTN) -> np.ndarray:
    """bool [G + 1, 256]: the bytes that can start what a call made from state g derives (the callee, and
    what follows it when the callee is nullable), the last row (the dead state) empty.

    A token that dies in its own rule only after passing such a byte may have gone into the callee there
    instead, so it is uncertain; one that never did is rejected for good.
    """
    n = rtn.n_states
    first = np.zeros((n + 1, 256), dtype=bool)
    first[:n] = rtn.table >= 0
    src, callee_start, nxt = [], [], []
    starts = rtn.offsets[:-1]
    for g, edges in enumerate(rtn.calls):
        for callee, after in edges:
            src.append(g)
            callee_start.append(int(starts[callee]))
            nxt.append(after if rtn.nullable[callee] else n)
    if not src:
        return np.zeros((n + 1, 256), dtype=bool)
    src_a, start_a, nxt_a = (np.array(x, dtype=np.int64) for x in (src, callee_start, nxt))
    while True:  # F(g) = bytes(g) | F(callee start) | F(next), if the callee is nullable, for g's calls
        before = first[src_a].copy()
        np.logical_or.at(first, src_a, first[start_a] | first[nxt_a])
        if (first[src_a] == before).all():
            break
    out = np.zeros((n + 1, 256), dtype=bool)
    np.logical_or.at(out, src_a, first[start_a] | first[nxt_a])
    return out


def _accepting_through_nullable(rtn: RTN) -> np.ndarray:
    """bool [G]: the state accepts, or reaches an accepting state through calls of nullable rules (the
    Earley set then also holds that state, whose completion continues in a caller)."""
    acc = rtn.accepting.copy()
    edges = [(g, nxt) for g, es in enumerate(rtn.calls) for callee, nxt in es if rtn.nullable[callee]]
    changed = True
    while changed:
        changed = False
        for g, nxt in edges:
            if acc[nxt] and not acc[g]:
                acc[g] = changed = True
    return acc


def _lexeme_rows(
    rtn: RTN, vocab: Vocabulary, limits: Limits
) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """For the unrolled lexeme states: (distinct rows, stacked, row 0 unused; each state's row number, 0 for
    none; uncertain token ids per state).

    A pair (q, c) allows inside its rule exactly the tokens its lexeme's token automaton allows there (EOS
    aside: the chart decides that). Tokens that pass an accepting state and then die are uncertain, as
    for any state; they are found per DFA state q with the counter ignored, a superset that the Earley
    simulation then checks exactly.
    """
    from .token_automaton import TokenAutomaton

    n = rtn.n_states
    row_of = np.zeros(n, dtype=np.int64)
    found: dict[bytes, int] = {}
    distinct: list[np.ndarray] = [np.zeros(vocab.n_words, dtype=np.int32)]
    eos_bits = np.zeros(vocab.n_words, dtype=np.uint32)
    set_bits(eos_bits, np.array(sorted(vocab.eos_ids), dtype=np.int64))
    clear = ~eos_bits.view(np.int32)
    uncertain: dict[int, np.ndarray] = {}
    has_bytes = (rtn.table >= 0).any(axis=1)
    for r, dfa in enumerate(rtn.lexemes):
        if dfa is None:
            continue
        auto = TokenAutomaton.build(dfa, vocab, limits)
        exits = _exit_tokens(dfa, vocab)
        by_tensor: dict[int, int] = {}
        for g in range(int(rtn.offsets[r]), int(rtn.offsets[r + 1])):
            q, c = int(rtn.lex_q[g]), int(rtn.lex_c[g])
            uncertain[g] = exits[q]
            if not has_bytes[g]:
                continue
            tensor = auto.row(q, c)
            k = by_tensor.get(id(tensor))
            if k is None:
                row = tensor.numpy() & clear
                k = by_tensor[id(tensor)] = found.setdefault(row.tobytes(), len(distinct))
                if k == len(distinct):
                    distinct.append(row)
            row_of[g] = k
    return np.stack(distinct)[1:], row_of, uncertain


def _exit_tokens(dfa: ByteDFA, vocab: Vocabulary) -> list[np.ndarray]:
    """Per DFA state: the text tokens whose walk (counters ignored) passes an accepting state after at
    least one byte and then dies. Only tokens with a byte that enters an accepting state before their last
    byte can; there are few (a JSON string's closing quote inside a token like `",`)."""
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


def _canon(rtn: RTN, vocab: Vocabulary) -> list[int]:
    """Each state's mask-cache name: itself, or for a lexeme pair (q, c) the first pair (q, c') whose counter
    behaves the same for every counter value one token can reach (c .. c + the longest token in bytes:
    the same in-bounds and live pattern), so that a long string reuses its masks."""
    canon = list(range(rtn.n_states))
    reach = int(vocab.packed[1].max(initial=1))
    for r, dfa in enumerate(rtn.lexemes):
        if dfa is None or not dfa.bounds:
            continue
        seg = np.asarray(dfa.seg)
        sig = {label: counter_signature(dfa, label, reach).tolist() for label in range(len(dfa.bounds))}
        first: dict[tuple[int, int], int] = {}
        for g in range(int(rtn.offsets[r]), int(rtn.offsets[r + 1])):
            q = int(rtn.lex_q[g])
            label = int(seg[q])
            if label >= 0:
                canon[g] = first.setdefault((q, sig[label][int(rtn.lex_c[g])]), g)
    return canon


def is_viable(constraint: CFGConstraint, data: bytes) -> bool:
    """`data` is a prefix of some sentence of the grammar."""
    return constraint.recognizer.is_prefix(data)


__all__ = [
    "CFGConstraint",
    "CFGMatcher",
    "ESet",
    "builtin_grammar",
    "cfg",
    "cfg_builtin",
    "classify",
    "is_viable",
]
