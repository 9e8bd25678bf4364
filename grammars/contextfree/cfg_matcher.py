"""Token masks for context-free grammars: an Earley recognizer plus an XGrammar-style adaptive mask cache.

Each RTN state's tokens are classified (cfg_rows.py) as *inside* (allowed whenever an item at that state is
in the Earley set), *rejected*, or *uncertain* (it leaves the rule: only the Earley set at run time can
tell), lazily, the first time a mask needs that state. A token whose first byte enters a callee or
continues a caller is covered by the predicted or completed items of the same set. At run time the mask is
the OR of the inside rows of the set's scanning states, plus those uncertain tokens that survive a real
Earley simulation: each walked first while it stays in states that close to nothing (a string's content),
then grouped by what follows, which is simulated in byte order so that shared prefixes are simulated once
(and a token whose rest stays inside a scanning item's rule is taken without closing more sets). EOS is
allowed exactly when the set accepts. Masks are memoized per Earley-set signature (its scanning items with
origins replaced by their continuation contexts, and whether it accepts).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .. import disk_cache
from ..automata.counters import counter_signature
from ..automata.dfa import gc_paused
from ..limits import DEFAULT_LIMITS, Limits, deadline
from ..tokens.token_automaton import set_bits
from ..tokens.vocab import Vocabulary
from .cfg_grammar import Grammar, GrammarError, parse_grammar
from .cfg_loops import joined_words
from .cfg_rows import StateRows, classify, vocab_order
from .cfg_walk import walks_within
from .earley import Chart, ESet, Recognizer
from .rtn import RTN, build_rtn

_MASK_CACHE = 4096  # masks kept per constraint, by context signature
_MAX_WALKS = 1024  # states' walks of their uncertain tokens kept (`StateRows.walks`)
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
    """A grammar bound to one vocabulary: RTN, recognizer, and the per-state token classification, which
    `rows` computes the first time a mask needs a state (so binding costs O(grammar), not O(states x
    vocabulary))."""

    grammar: Grammar
    rtn: RTN
    vocab: Vocabulary
    recognizer: Recognizer
    rank_to_id: np.ndarray  # int64: text token ids sorted by their bytes
    rank_bytes: tuple[bytes, ...]  # the bytes of those tokens, in the same order
    eos_ids: np.ndarray  # int32
    source: str = ""
    limits: Limits = DEFAULT_LIMITS
    # The lazily classified states (cfg_rows.StateRows), the states' mask-cache names (`Canon`), masks by
    # context signature, and the interning table of continuation contexts (see `_signature`): run-time
    # memos, never stored.
    rows: StateRows = field(default=None, repr=False)  # type: ignore[assignment]
    canon: Canon = field(default=None, repr=False)  # type: ignore[assignment]
    _masks: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _tensors: dict[int, tuple[np.ndarray, torch.Tensor]] = field(default_factory=dict, repr=False)
    _interned: dict[frozenset | tuple, int] = field(default_factory=dict, repr=False)
    _ids: itertools.count = field(default_factory=itertools.count, repr=False)  # ids are never reused

    def __post_init__(self) -> None:
        if self.rows is None:
            order = vocab_order(self.vocab)
            object.__setattr__(self, "rows", StateRows(self.rtn, self.vocab, order, self.limits))
        if not self.recognizer.native:
            self.rows.walks = None  # (only the compiled simulation keeps them)
        if self.canon is None:
            object.__setattr__(self, "canon", Canon(self.rtn, self.vocab))

    @property
    def n_states(self) -> int:
        return self.rtn.n_states

    # State for the on-disk constraint cache (disk_cache.py): the recognizer, the token order, the lazy
    # rows and the states' names are rebuilt from the RTN (itself from the grammar) and the vocabulary; the
    # run-time memos start empty.
    _DERIVED = ("recognizer", "rank_to_id", "rank_bytes", "rows", "canon")
    _DERIVED += ("_masks", "_tensors", "_interned", "_ids")  # the run-time memos

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._DERIVED}

    def __setstate__(self, state: dict) -> None:
        order = vocab_order(state["vocab"])
        derived = {
            "recognizer": Recognizer(state["rtn"]),
            "rank_to_id": order.rank_to_id,
            "rank_bytes": order.rank_bytes,
            "rows": StateRows(state["rtn"], state["vocab"], order, state["limits"]),
            "canon": Canon(state["rtn"], state["vocab"]),
            "_masks": {},
            "_tensors": {},
            "_interned": {},
            "_ids": itertools.count(),
        }
        self.__dict__.update(state, **derived)

    def matcher(self) -> CFGMatcher:
        return CFGMatcher(self)

    def precompute(self) -> CFGConstraint:
        """Build every rule and classify every state now; returns self. The eager trade, for a constraint
        reused over many requests: its compile cost grows with schema x vocabulary (about 3x the lazy
        compile's median on MaskBench), and in exchange no mask pays a first visit, which is what the
        lazy masks' p99 is made of (benchmarks/masks.py `decc-eager`). Masks are the same either way;
        what a mask still computes on a cache miss is the simulation of its uncertain tokens."""
        self.rtn.build_all()
        self.rows.classify(range(self.rtn.n_states))
        return self

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
        with gc_paused():  # the walks and simulations make many short-lived containers: see `_compute_mask`
            mask = self._compute_mask(chart)
        self.rtn.arm()  # the first mask built what it needed; the next rule built brings the rest (RTN.arm)
        self.rows.arm()  # and classified what it needed; the next state classified brings the rest
        last.mask = mask
        if key is not None:
            if len(self._masks) >= _MASK_CACHE:
                self._masks.clear()
            self._masks[key] = mask
        return mask

    def mask_tensor(self, chart: Chart) -> torch.Tensor:
        """`mask` as a torch tensor (not to be written to), one per distinct mask: the hit path is a copy."""
        last = chart[-1]
        if last.tensor is None:
            m = self.mask(chart)
            hit = self._tensors.get(id(m))
            if hit is None or hit[0] is not m:
                if len(self._tensors) >= _MASK_CACHE:
                    self._tensors.clear()
                hit = self._tensors[id(m)] = (m, torch.from_numpy(m.copy()))  # m kept: its id stays unique
            last.tensor = hit[1]
        return last.tensor

    def _signature(self, chart: Chart) -> int | None:
        """An id equal for charts with the same future: scanning items with origins replaced by contexts.

        Earley only looks back through `chart[o].waiting[r]` when an item of rule r from o completes, so
        an item's future is its state plus the context C(o, r) = {(g', C(o', rule of g'))} of the
        callers waiting there (plus a top marker for the start rule at 0). A mask reads only the set's
        scanning items (their rows, and the simulation, which steps from them) and whether it accepts, so
        the other items (calls and completions already closed over) are left out: fewer contexts to
        name, and sets that differ only there share a mask. Cyclic contexts (left recursion left after
        normalization) give None: no caching then.
        """
        canon = self.canon.names()
        interned = self._interned
        if len(interned) > _CONTEXT_LIMIT:
            interned.clear()
            self._masks.clear()
        if self.recognizer.native:  # the same keys and ids, made in C (and with no recursion depth limit)
            return self.recognizer.signature(chart, canon, interned, self._ids)
        return self._signature_py(chart, canon)

    def _signature_py(self, chart: Chart, canon: list[int]) -> int | None:
        """`_signature`'s keys in Python (the fallback, and the compiled one's oracle), `canon` the states'
        names."""
        rule_of = self.recognizer.rule_of
        interned = self._interned
        last = chart[-1]
        try:
            key = (
                last.accept,
                frozenset((canon[g], self._context(chart, o, rule_of[g])) for g, o in last.scan),
            )
        except _Cyclic:
            return None
        cid = interned.get(key)
        if cid is None:
            cid = interned[key] = next(self._ids)
        return cid

    def _context(self, chart: Chart, o: int, r: int) -> int:
        """The interned context C(o, r) of `_signature`, memoized on the set `chart[o]`. A method, not a
        closure that calls itself: such a closure is a reference cycle holding the chart, which only the
        cyclic garbage collector frees (its collections were a large part of the slowest steps)."""
        s = chart[o]
        if s.contexts is None:
            s.contexts = {}
        hit = s.contexts.get(r)
        if hit is not None:
            if hit < 0:
                raise _Cyclic
            return hit
        s.contexts[r] = -1
        rule_of = self.recognizer.rule_of
        try:
            key = frozenset((g2, self._context(chart, o2, rule_of[g2])) for g2, o2 in s.waiting.get(r, ()))
        except BaseException:  # cyclic (or an error): no mark left, a later call finds it anew
            del s.contexts[r]
            raise
        if o == 0 and r == 0:
            key = key | {(-1, -1)}
        interned = self._interned
        cid = interned.get(key)
        if cid is None:
            cid = interned[key] = next(self._ids)
        s.contexts[r] = cid
        return cid

    def _compute_mask(self, chart: Chart) -> np.ndarray:
        """The mask after `chart` (run with the cyclic collector paused: the trie walks' nodes and the
        simulation's Earley sets are many containers that die when it returns, while a collection set off
        in the middle walks them all and moves them to older generations, whose collections then walk them
        again; afterwards they are freed by reference counting and no longer count towards one)."""
        last = chart[-1]
        if self.recognizer.native:
            mask = np.empty(self.vocab.n_words, dtype=np.int32)
            rl = self._compose(last, mask)
        else:
            mask, rl = self._compose_py(last)
        if rl:
            ok = self._simulate(chart, rl)
            self.take_built()
            if ok and self.recognizer.native:
                self.recognizer.set_ranks(mask, ok, self.rank_to_id)
            elif ok:
                set_bits(
                    mask,
                    self.rank_to_id[ok] if len(ok) > _FEW_BITS else [int(self.rank_to_id[r]) for r in ok],
                )
        if last.accept and len(self.eos_ids):
            set_bits(mask, self.eos_ids.tolist())
        mask.setflags(write=False)
        return mask

    def take_built(self) -> None:
        """Take the rules built since into the token rows' tables now (`StateRows` syncs on its next
        classification otherwise): the step that built them (a simulation or an advance that entered a
        rule, above all the one that built the rest of the grammar, RTN.arm) pays for them too, not a
        later mask."""
        if self.rtn.n_states != self.rows.n:
            self.rows.classify(())

    def _compose(self, last: ESet, mask: np.ndarray) -> list[int]:
        """Set `mask` to the OR of the rows of `last`'s scanning states, classifying the new ones; the
        sorted ranks of their uncertain tokens not set there (the simulation's to decide). One compiled
        call (`earley_c.compose`) when every state is classified, else it names those to classify first."""
        rows = self.rows
        compose = self.recognizer.compose
        while True:
            got = compose(last.scan, rows.row_of, rows.n, rows.buf, rows.uncertain, self.rank_to_id, mask)
            if type(got) is list:
                return got
            rows.classify(got)

    def _compose_py(self, last: ESet) -> tuple[np.ndarray, list[int]]:
        """`_compose` with numpy (the fallback, and the compiled one's oracle): the mask and the ranks."""
        states = last.scan_states()
        rows = self.rows
        # the distinct rows to OR (row 0 is empty); first: classifying new states may replace `buf`
        of = sorted(set(rows.rows(states).tolist()) - {0}) if len(states) else []
        buf = rows.buf
        if not of:
            mask = np.zeros(self.vocab.n_words, dtype=np.int32)
        elif len(of) <= _FEW_ROWS:  # one ufunc call per row beats gathering them for a reduction
            mask = buf[of[0]].copy()
            for k in of[1:]:
                np.bitwise_or(mask, buf[k], out=mask)
        else:
            mask = np.bitwise_or.reduce(buf[of], axis=0)
        uncertain = rows.uncertain
        # states often share one uncertain array (the same lexeme's tokens): each is taken once
        parts = list({id(u): u for g in states.tolist() if len(u := uncertain[g])}.values())  # type: ignore[arg-type]
        return mask, unset_ranks(parts, mask, self.rank_to_id) if parts else []

    def _simulate(self, chart: Chart, rl: list[int]) -> list[int]:
        """The ranks (sorted) whose token bytes the recognizer takes after `chart` (tokens in byte order).

        First each token is walked through the byte table from the set's scanning items for as long as it
        stays in states that close to nothing (not accepting, calling nothing: the set after such a byte is
        the stepped items alone, no closure): it dies there, ends there (taken: its last byte is only
        scanned), or reaches the byte that leads into a state that does close. The tokens are then grouped
        by the items they stand on before that byte (the chart's own set when it is their first, or when
        they are back at the scanning state, as in a string's body: the same items), and
        each group's rests, sorted, are simulated from those items: a string's uncertain tokens (its
        content, the closing quote, what follows) walk their content here, and share the sets after the
        quote by the bytes that follow it, not by their content (about 1,150 tokens of a 128k vocabulary
        close one set and step a few dozen bytes, where each token closed its own).

        In a group, sets are built (closed) only for the prefixes that need them, shared by the rests that
        follow: at each prefix a rest is first tried *within* the rules of the set's scanning items (its
        bytes walked through their byte edges alone, no closure: every item is viable, so that already
        proves it, as for the inside rows of cfg_rows.py); only when that fails is the next byte stepped
        through the recognizer. A token's last byte is only scanned, not closed: whether some item takes it
        is all the answer needs, and closing the set would predict (and build) rules that the token never
        enters; nor is the set before it kept when only that byte is left (`Recognizer.probe`: a rule
        predicted there is built only when its first bytes are not exact)."""
        if not rl:
            return []
        if self.recognizer.native:  # the same in C, the bytes read from one buffer, the walks kept
            walks = self.rows.walks
            if walks is not None and len(walks) >= _MAX_WALKS:
                walks.clear()  # (bounded memory: a walk holds a few bytes per uncertain token)
            return self.recognizer.simulate(chart, rl, *joined_words(self.rank_bytes), walks)
        return self._simulate_py(chart, rl)

    def _simulate_py(self, chart: Chart, rl: list[int]) -> list[int]:
        """`_simulate` in Python (the fallback, and the compiled one's oracle): the same groups, in the
        same order (so the same rules are built in the same order)."""
        rec, flat, words = self.recognizer, self.rtn.flat, self.rank_bytes
        accepting, calls = rec.accepting, rec.calls
        ok: list[int] = []
        heads = chart[-1].scan_states().tolist()
        if len(heads) != 1:  # every token from the chart's set, in byte order
            self._simulate_rests(list(chart), heads, False, [(words[r], r) for r in rl], ok)
            return sorted(ok)
        rests: list[tuple[int, bytes, int]] = []  # (state before the closing byte, or -1: the chart's set)
        for r in rl:
            w = words[r]
            g, before = heads[0], -1
            for j, b in enumerate(w):
                nxt = flat[(g << 8) | b]
                if nxt < 0:
                    break  # dead
                if j == len(w) - 1:
                    ok.append(r)  # its last byte, only scanned
                    break
                if accepting[nxt] or calls[nxt]:
                    # back at the scanning state (a string's body): its items are the chart's, so is its group
                    rests.append((-1 if before == heads[0] else before, w[j:], r))
                    break
                g = before = nxt
        rests.sort()
        origins = sorted({o for _, o in chart[-1].scan})
        for t, group in itertools.groupby(rests, key=lambda e: e[0]):
            if t < 0:
                base, within0, hs = list(chart), False, heads
            else:  # the scanning items stepped to t: a set of its own (no closure: t closes to nothing)
                items = [(t, o) for o in origins]
                base, within0, hs = [*chart, ESet(set(items), items)], True, [t]
            self._simulate_rests(base, hs, within0, [(w, r) for _, w, r in group], ok)
        return sorted(ok)

    def _simulate_rests(
        self,
        base_chart: Chart,
        heads0: list[int],
        within0: bool,
        rests: list[tuple[bytes, int]],
        ok: list[int],
    ) -> None:
        """Simulate the sorted `rests` (bytes, rank) from the last set of `base_chart` (its scanning states
        `heads0`), appending the ranks taken to `ok`. `within0`: try a walk within at the first byte too (at
        the chart's own set, a token that stays in a rule is in that state's inside row)."""
        step, probe, probing = self.recognizer.step, self.recognizer.probe, self.recognizer.probing
        rtn = self.rtn
        base = len(base_chart)
        sim = list(base_chart)  # sim[base + d - 1] is the set after d bytes of the current prefix
        heads = [heads0]  # heads[d]: the distinct scanning states after d bytes
        dead_at = 1 << 30  # prefix length at which the previous path died
        prev, prev_ok = None, False
        for i, (w, r) in enumerate(rests):
            if w == prev:  # the same rest (other tokens' content before it): the same answer
                if prev_ok:
                    ok.append(r)
                continue
            lcp = 0 if prev is None else _common_prefix(prev, w)
            prev, prev_ok = w, False
            if dead_at <= lcp:
                continue  # a shared prefix already died
            d = min(lcp, len(heads) - 1)
            del sim[base + d :], heads[d + 1 :]
            dead_at = 1 << 30
            last = len(w) - 1
            while True:
                if (d or within0 or d == last) and walks_within(rtn.flat, heads[d], w, d):
                    prev_ok = True
                    break
                if d == last:
                    dead_at = last + 1
                    break
                # one byte left after this one: no set to keep (`probe`), unless the next rests go on past the
                # same byte (then the set is built once for them all)
                if d == last - 1 and probing and not _goes_on(rests, i, w, d):
                    got = probe(sim, w[d], w[last])
                    if got == 1:
                        prev_ok = True
                    else:
                        dead_at = d + 1 if got == 0 else last + 1
                    break
                s = step(sim, w[d])
                if s is None:
                    dead_at = d + 1
                    break
                sim.append(s)
                heads.append(list({g: None for g, _ in s.scan}))
                d += 1
            if prev_ok:
                ok.append(r)


_SHARED_STEP = 4  # rests after one that go on past its next-to-last byte from which that byte is stepped


def _goes_on(rests: list[tuple[bytes, int]], i: int, w: bytes, d: int) -> bool:
    """Whether the `_SHARED_STEP` rests after rests[i] (whose bytes are `w`) start with w[: d + 1] and the
    last of them goes on past it (sorted: those between do too): their sets after it are one."""
    j = i + _SHARED_STEP
    if j >= len(rests):
        return False
    nxt = rests[j][0]
    return len(nxt) > d + 1 and nxt[: d + 1] == w[: d + 1]


def _common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


_FEW_ROWS = 8  # rows ORed one by one below this count, gathered for one reduction above

_FEW_BITS = 16  # bits set one by one in Python below this count: numpy's per-call cost is higher
_FEW_RANKS = 256  # merged by sort below this count, by a flag array above it


def union_sorted(parts: list[np.ndarray], n: int) -> np.ndarray:
    """The sorted union of sorted int64 arrays of values below `n`."""
    if len(parts) == 1:
        return parts[0]
    if sum(map(len, parts)) <= _FEW_RANKS:
        return np.unique(np.concatenate(parts))
    flag = np.zeros(n, dtype=bool)  # a sort of thousands of ranks costs more than a pass over n flags
    for u in parts:
        flag[u] = True
    return np.flatnonzero(flag)


def unset_ranks(parts: list[np.ndarray], mask: np.ndarray, rank_to_id: np.ndarray) -> list[int]:
    """The sorted union of the sorted int64 rank arrays `parts`, less the ranks whose token's bit is set in
    the int32 bitmask `mask` (the uncertain tokens left to simulate; the compiled one's oracle)."""
    ranks = union_sorted(parts, len(rank_to_id))
    ids = rank_to_id[ranks]
    return ranks[((mask[ids >> 5] >> (ids & 31)) & 1) == 0].tolist()


class CFGMatcher:
    """One stream's position in a grammar: the Earley chart of the bytes accepted so far."""

    __slots__ = ("constraint", "chart", "_terminated", "_history")

    def __init__(self, constraint: CFGConstraint, chart: Chart | None = None) -> None:
        self.constraint = constraint
        self.chart: Chart = constraint.recognizer.initial() if chart is None else chart
        self._terminated = False
        self._history: list[int] = []  # the chart length before each accepted token (for `rollback`)

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
        row.copy_(self.constraint.mask_tensor(self.chart))

    def advance(self, token_id: int) -> bool:
        if self._terminated:
            return False
        c = self.constraint
        if token_id in c.vocab.eos_ids:
            if self.chart[-1].accept:
                self._terminated = True
                self._history.append(len(self.chart))
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
        n = len(self.chart)
        if not c.recognizer.extend(self.chart, data):
            return False
        self._history.append(n)
        c.take_built()
        return True

    def rollback(self, n: int) -> None:
        """Undo the last `n` accepted tokens (EOS included); the chart's sets are shared, so this is a cut."""
        if not 0 <= n <= len(self._history):
            raise ValueError(f"cannot roll back {n} tokens: {len(self._history)} accepted")
        if n == 0:
            return
        keep = self._history[-n]
        del self._history[-n:]
        del self.chart[keep:]
        self._terminated = False

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
        twin._history = list(self._history)
        return twin

    def reset(self) -> None:
        self.chart = self.constraint.recognizer.initial()
        self._terminated = False
        self._history = []


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
    """A parsed grammar (from Lark text, or a recursive JSON schema) bound to a vocabulary: the RTN with its
    start rule built; the other rules, their states' mask-cache names and token rows come lazily, as walks
    and masks reach them."""
    with deadline(limits.max_seconds):
        rtn = build_rtn(grammar, limits)
    order = vocab_order(vocab)
    eos = np.array(sorted(vocab.eos_ids), dtype=np.int32)
    return CFGConstraint(
        grammar,
        rtn,
        vocab,
        Recognizer(rtn),
        order.rank_to_id,
        order.rank_bytes,
        eos,
        source,
        limits,
    )


class Canon:
    """Each RTN state's mask-cache name: itself, or for a lexeme pair (q, c) the first pair (q, c') whose
    counter behaves the same for every counter value one token can reach (c .. c + the longest token in
    bytes: the same in-bounds and live pattern), so that a long string reuses its masks. Named a rule at a
    time, as the RTN builds them (states are numbered in build order)."""

    def __init__(self, rtn: RTN, vocab: Vocabulary) -> None:
        self.rtn = rtn
        self.reach = vocab.longest_token
        self._names: list[int] = []
        self._done = 0  # rules of `rtn.built` named so far
        self._lock = threading.Lock()

    def names(self) -> list[int]:
        """The names of every state built so far (a list that only grows)."""
        if len(self._names) < self.rtn.n_states:
            with self._lock, self.rtn.lock:  # no rule half published meanwhile
                built = self.rtn.built
                while self._done < len(built):
                    self._names.extend(self._rule(built[self._done]))
                    self._done += 1
        return self._names

    def _rule(self, r: int) -> list[int]:
        rtn = self.rtn
        lo, hi = rtn.span(r)
        names = list(range(lo, hi))
        dfa = rtn.lexemes[r]
        if dfa is None or not dfa.bounds:
            return names
        seg = np.asarray(dfa.seg)
        sig = {label: counter_signature(dfa, label, self.reach).tolist() for label in range(len(dfa.bounds))}
        first: dict[tuple[int, int], int] = {}
        lex_q, lex_c = rtn.lex_q, rtn.lex_c
        for g in range(lo, hi):
            q = int(lex_q[g])
            label = int(seg[q])
            if label >= 0:
                names[g - lo] = first.setdefault((q, sig[label][int(lex_c[g])]), g)
        return names


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
