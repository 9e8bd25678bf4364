"""Recursive transition network: one DFA per grammar rule over bytes plus call(rule) edges, built lazily.

Each rule's body (a regex AST with `Call`s) is built into a Thompson NFA, determinized treating every callee
as one more alphabet symbol, and trimmed (not minimized: see `rule_dfa`). Calls of rules whose language is
empty are dropped first, so every remaining state can reach acceptance: any item an Earley parser holds is
viable. A rule is built the first time a walk enters it (`RTN.enter`); its states are numbered globally,
after those of the rules built before it, so one byte table serves all.

A `Lexeme` rule (a counted byte DFA: a length-bounded JSON string) is unrolled into one state per live
(DFA state, counter) pair, so the Earley recognizer needs nothing special; `lex_q`/`lex_c` remember the pair
of each such state, so that its token mask can come from the lexeme's own token automaton (cfg_matcher).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from ..automata.dfa import ByteDFA, gc_paused, rule_subset_arrays, rule_subset_table
from ..errors import GrammarLimitError
from ..limits import DEFAULT_LIMITS, Limits
from ..native import use_native
from ..regexes.nfa import NFA, NFABuilder, check_nesting, estimate_states
from ..regexes.regex_ast import Alt, Automaton, CharSet, Concat, Repeat
from ..regexes.utf8 import utf8_sequences
from .cfg_grammar import (
    EMPTY_LANGUAGE,
    AnyNode,
    Call,
    Grammar,
    GrammarError,
    Lexeme,
    map_calls,
    productive_rules,
)

try:
    from . import tail_c as compiled
except ImportError:  # pragma: no cover - no C compiler at install
    compiled = None

# The compiled `_TailBuilder` (tail_c.c, built by `pip install`, optional) where built and not turned off.
NATIVE = use_native(compiled)

DEAD = -1
# Unrolled (state, counter) pairs of all lexemes together: each costs a 1 KiB byte-table row.
MAX_LEXEME_STATES = 60_000
# After its first mask, a grammar builds the rules still unbuilt all at once, the first time it needs one,
# when their estimated NFA states add up to at most this (about 1 ms per 1,000 on a 2-core machine): see
# `RTN.arm`.
BATCH_STATES = 20_000


class RTN:
    """The RTN of a grammar, grown on demand: a rule's DFA is built (and its states numbered, after those
    of the rules built before it) the first time a walk enters the rule (`enter`), so that the cost of a
    grammar grows with what generations visit. `build_all` builds the rest (the eager form: tests,
    `classify`, the shortest-completion walks of decc.testing).

    Per rule (from the bodies, before any DFA): `nullable`, and `first`, the bytes its non-empty strings
    can start with (a 256-bit int). Per global state, lists that only grow (the recognizer reads them
    without a lock): `has_bytes`, `accepts_at`, `rule_at`, `calls` (callee rule, next global state); the
    same as arrays: `table`, `accepting`, `rule_of`, `lex_q`, `lex_c` (views, up to `n_states`).
    `starts[r]`/`ends[r]`: rule r's global states, -1 until built; `built`: the rules built, in order.
    """

    def __init__(self, grammar: Grammar, limits: Limits = DEFAULT_LIMITS) -> None:
        bodies = _productive(dict(grammar.rules))
        names = tuple(name for name, _ in grammar.rules)
        if bodies[names[0]] is EMPTY_LANGUAGE:
            raise GrammarError(f"the grammar matches no string at all (rule '{names[0]}' can never finish)")
        self.grammar, self.limits, self.names = grammar, limits, names
        self.index = {n: i for i, n in enumerate(names)}
        self.bodies: tuple[AnyNode, ...] = tuple(bodies[n] for n in names)
        self.lexemes: tuple[ByteDFA | None, ...] = tuple(
            b.dfa if isinstance(b, Lexeme) else None for b in self.bodies
        )
        self.nullable, self.first = rule_summaries(self.bodies, self.index)
        for body in self.bodies:  # NFA sizes at compile time (cheap estimates): a rule too large is refused
            if not isinstance(body, Lexeme):  # before generation, although rules are built lazily
                check_rule_size(body, limits)
        # each rule's estimated states (kept on the nodes by check_rule_size: no walk again), for `arm`
        self.sizes = [
            0 if body is EMPTY_LANGUAGE else unrolled_states(dfa) if dfa is not None else _estimate(body)
            for body, dfa in zip(self.bodies, self.lexemes, strict=True)
        ]
        self.batch = 0  # 0: not armed; 1: armed (`arm`), the next build brings the rest; 2: done
        unrolled = sum(n for n, dfa in zip(self.sizes, self.lexemes, strict=True) if dfa is not None)
        if unrolled > MAX_LEXEME_STATES:  # refused at compile time although lexemes are unrolled lazily
            _lexeme_limit(unrolled)
        self.starts: list[int] = [-1] * len(names)
        self.ends: list[int] = [-1] * len(names)
        self.built: list[int] = []
        self.has_bytes: list[bool] = []
        self.accepts_at: list[bool] = []
        self.rule_at: list[int] = []
        self.calls: list[tuple[tuple[int, int], ...]] = []
        self._n = 0
        self._lexeme_states = 0
        self._table = np.zeros((0, 256), dtype=np.int32)
        self._acc = np.zeros(0, dtype=bool)
        self._rule = np.zeros(0, dtype=np.int32)
        self._lex_q = np.zeros(0, dtype=np.int32)
        self._lex_c = np.zeros(0, dtype=np.int32)
        self.flat = memoryview(self._table.reshape(-1))  # flat[g * 256 + b]: the recognizer's byte step
        # held while a rule is built; readers that need a consistent snapshot take it too
        self.lock = threading.RLock()
        self.enter(0)

    # The disk cache and pickle keep the grammar only: the rules are built again as walks enter them.
    def __getstate__(self) -> dict:
        return {"grammar": self.grammar, "limits": self.limits}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["grammar"], state["limits"])  # type: ignore[misc]

    @property
    def n_states(self) -> int:
        return self._n

    _first_table: np.ndarray | None = None

    def first_table(self) -> np.ndarray:
        """`first` as uint8 [rules, 32] (bit b of byte b >> 3), made on first use: what the compiled code reads
        (StateRows' `call_first`, the simulation's last-byte probe through ExactFirst)."""
        if self._first_table is None:
            joined = b"".join(f.to_bytes(32, "little") for f in self.first)
            self._first_table = _frozen(np.frombuffer(joined, dtype=np.uint8).reshape(len(self.first), 32))
        return self._first_table

    @property
    def n_rules(self) -> int:
        return len(self.names)

    def span(self, r: int) -> tuple[int, int]:
        """Rule r's global states lo..hi (built: `enter` first)."""
        return self.starts[r], self.ends[r]

    @property
    def table(self) -> np.ndarray:  # int32 [G, 256]: next global state on a byte, or -1
        return _frozen(self._table[: self._n])

    @property
    def accepting(self) -> np.ndarray:  # bool [G]
        return _frozen(self._acc[: self._n])

    @property
    def rule_of(self) -> np.ndarray:  # int32 [G]
        return _frozen(self._rule[: self._n])

    @property
    def lex_q(self) -> np.ndarray:  # int32 [G]: the lexeme DFA state of an unrolled state, -1 elsewhere
        return _frozen(self._lex_q[: self._n])

    @property
    def lex_c(self) -> np.ndarray:  # int32 [G]: its counter
        return _frozen(self._lex_c[: self._n])

    def enter(self, r: int) -> int:
        """Rule r's start state, its DFA built first if no walk entered the rule before (and, the first
        time after `arm`, the other unbuilt rules with it when they are small enough)."""
        s = self.starts[r]
        if s >= 0:
            return s
        with self.lock:  # masks may be computed on a worker thread while another stream advances
            if self.starts[r] < 0:
                with gc_paused():  # the subset construction's containers set off collections otherwise
                    self._build(r)
                    self._take_batch()
            return self.starts[r]

    def arm(self) -> None:
        """From now on, the first rule built brings every unbuilt rule with it, when their estimated states
        add up to at most BATCH_STATES (else rules stay built one at a time).

        Called after a constraint's first mask, which builds only what that mask needs (the time to first
        mask stays small). Built one at a time during generation, each rule cost a step its build, a
        growth of the tables the masks read and their memos made again; together they cost one step
        (half a millisecond for a typical MaskBench schema, 20 ms at most) and less work in all, and the
        masks' p99 halves (benchmarks/first_visits.py). A grammar too large for that keeps the lazy
        form, whose cost grows with what a generation visits. Armed once: later calls do nothing."""
        if self.batch == 0:
            self.batch = 1

    def build_rest(self) -> None:
        """Bring the unbuilt rules now, as the first build after `arm` would (`StateRows.arm`: the step
        that classifies every state builds them first); nothing when not armed, or already done."""
        with self.lock, gc_paused():
            self._take_batch()

    def _take_batch(self) -> None:
        """The armed batch (`arm`), once: the unbuilt rules built (under the lock)."""
        if self.batch == 1:
            self.batch = 2
            self._build_rest()

    def _build_rest(self) -> None:
        rest = [q for q, s in enumerate(self.starts) if s < 0 and self.bodies[q] is not EMPTY_LANGUAGE]
        if not rest or sum(self.sizes[q] for q in rest) > BATCH_STATES:
            return
        for q in rest:
            lexeme_states = self._lexeme_states
            try:
                self._build(q)
            except GrammarLimitError:  # a rule no walk entered yet: left for the walk that does (and errs)
                self._lexeme_states = lexeme_states

    def build_all(self) -> RTN:
        """Every rule that derives something built (the eager form); returns self."""
        for r, body in enumerate(self.bodies):
            if body is not EMPTY_LANGUAGE:
                self.enter(r)
        return self

    def _build(self, r: int) -> None:
        body = self.bodies[r]
        if isinstance(body, Lexeme):
            if NATIVE:  # unrolled in C (tail_c.unroll), straight into the RTN's table
                self._build_lexeme(r, body.dfa)
                return
            trans, acc, q_of, c_of = _unroll_lexeme(body.dfa, self._lexeme_states)
            calls: list[list[tuple[int, int]]] = [[] for _ in range(len(acc))]
            self._lexeme_states += len(acc)
        elif type(body) is Call:  # a rule that only calls another (a schema's start rule): no NFA to build
            lo, hi = self._claim(2)  # two dead rows (no numpy where and any over a table of them)
            self._table[lo:hi] = DEAD
            calls_at = [((self.index[body.rule], lo + 1),), ()]
            self._publish(r, lo, hi, _CALL_ACCEPTING, -1, -1, [False, False], calls_at)
            return
        else:
            table, acc, starts, callees = _rule_table(body, self.index, self.limits)
            if NATIVE:  # the class table spread over bytes and the call edges listed in C (tail_c.spread)
                lo, hi = self._claim(len(acc))
                has_bytes, published = compiled.spread(table, starts, callees, lo, self._table[lo:hi])
                self._publish(r, lo, hi, acc, -1, -1, has_bytes, published)
                return
            trans, calls = _spread(table, starts, callees)
            q_of = c_of = -1  # (no lexeme state)
        lo, hi = self._claim(len(acc))
        live = trans >= 0
        self._table[lo:hi] = np.where(live, trans + lo, DEAD)
        has_bytes = live.any(axis=1).tolist()
        published = [tuple([(callee, lo + nxt) for callee, nxt in edges]) if edges else () for edges in calls]
        self._publish(r, lo, hi, acc, q_of, c_of, has_bytes, published)

    def _build_lexeme(self, r: int, dfa: ByteDFA) -> None:
        """`_unroll_lexeme` compiled: the same pairs, rows and arrays, published as `_build` publishes them."""
        n = dfa.n_states
        seg = np.full(n, -1, dtype=np.int64) if dfa.seg is None else np.asarray(dfa.seg, dtype=np.int64)
        width = _widths(dfa, seg)
        m = int(width.sum())
        if self._lexeme_states + m > MAX_LEXEME_STATES:  # checked before the table grows
            _lexeme_limit(self._lexeme_states + m)
        self._lexeme_states += m  # (before the claim, as `_build` counts them)
        lo, hi = self._claim(m)
        seg_list = seg.tolist()
        lives = [
            np.ascontiguousarray(dfa.live[q], dtype=bool) if seg_list[q] >= 0 else None for q in range(n)
        ]
        acc, q_of, c_of, has_bytes = compiled.unroll(
            np.ascontiguousarray(dfa.transitions, dtype=np.int32),
            np.ascontiguousarray(dfa.accepting, dtype=bool),
            seg,
            None if dfa.tick is None else np.ascontiguousarray(dfa.tick, dtype=bool),
            np.array(dfa.bounds, dtype=np.int64).reshape(-1, 2),
            lives,
            width,
            lo,
            self._table[lo:hi],
        )
        accepting = np.frombuffer(acc, dtype=bool)
        q_arr, c_arr = np.frombuffer(q_of, dtype=np.int32), np.frombuffer(c_of, dtype=np.int32)
        self._publish(r, lo, hi, accepting, q_arr, c_arr, has_bytes, [()] * m)

    def _claim(self, n: int) -> tuple[int, int]:
        """The global states lo..hi of the next rule's n states, room made for them."""
        lo = self._n
        hi = lo + n
        if hi > self.limits.max_dfa_states:
            raise GrammarLimitError(
                f"grammar too large: its rule automata grow past {hi:,} states "
                f"(limit {self.limits.max_dfa_states:,})"
            )
        if hi > len(self._acc):  # (most builds fit: no call)
            self._reserve(hi)
        return lo, hi

    def _publish(
        self,
        r: int,
        lo: int,
        hi: int,
        acc: np.ndarray,
        q_of: np.ndarray | int,
        c_of: np.ndarray | int,
        has_bytes: list[bool],
        calls: list[tuple[tuple[int, int], ...]],
    ) -> None:
        """Rule r's states lo..hi (byte table rows written) into the arrays and the recognizer's lists,
        then the rule published (its start state last)."""
        self._acc[lo:hi] = acc
        self._rule[lo:hi] = r
        self._lex_q[lo:hi] = q_of
        self._lex_c[lo:hi] = c_of
        self.has_bytes.extend(has_bytes)
        self.accepts_at.extend(acc.tolist())
        self.rule_at.extend([r] * (hi - lo))
        self.calls.extend(calls)
        self._n = hi
        self.ends[r] = hi
        self.built.append(r)
        self.starts[r] = lo

    def _reserve(self, n: int) -> None:
        """Room for n states: the arrays grow by doubling (old views stay valid for the old states).

        The table's rows past the built states are left unwritten (untouched memory, and no pass over them
        in the mask step that builds a rule): a build writes every byte of its rows, and no transition
        leads past the built states. When the table moves, the old one's unwritten rows are made dead: a
        reader still holding it (a walk that built a rule and has not read `flat` again) sees the rules built
        since as dead there, as it did when every row started dead."""
        cap = len(self._acc)
        if n <= cap:
            return
        self._table[self._n :] = DEAD
        cap = max(n, 2 * cap, 1024)
        table = np.empty((cap, 256), dtype=np.int32)
        table[: self._n] = self._table[: self._n]
        grown = []
        for a in (self._acc, self._rule, self._lex_q, self._lex_c):
            b = np.zeros(cap, dtype=a.dtype)
            b[: self._n] = a[: self._n]
            grown.append(b)
        self._table = table
        self._acc, self._rule, self._lex_q, self._lex_c = grown
        self.flat = memoryview(table.reshape(-1))


# `rule_dfa` of a body that is one call: state 0 calls, state 1 accepts, no byte edges (dead rows)
_CALL_ACCEPTING = np.array([False, True])
_CALL_ACCEPTING.setflags(write=False)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@lru_cache(maxsize=64)
def build_rtn(grammar: Grammar, limits: Limits = DEFAULT_LIMITS) -> RTN:
    """The (lazily growing) RTN of `grammar`: only the start rule is built here."""
    return RTN(grammar, limits)


@lru_cache(maxsize=32)
def eager_rtn(grammar: Grammar, limits: Limits = DEFAULT_LIMITS) -> RTN:
    """A separate RTN of `grammar` with every rule built in rule order: numbered the same whatever walks
    entered the shared one (`build_rtn`) first, for what must not depend on that (seeded draws)."""
    return RTN(grammar, limits).build_all()


def rule_summaries(
    bodies: tuple[AnyNode, ...], index: dict[str, int], confirm: bool = False
) -> tuple[tuple[bool, ...], tuple[int, ...]]:
    """Per rule: (derives the empty string, the bytes its non-empty strings may start with, as a 256-bit
    int), by fixpoints over the bodies, without building any DFA, so that rules can be built lazily: the
    recognizer needs nullability when it predicts a rule, `cfg_rows.call_first` the first bytes of the
    rules a state calls. Both only look at the left edges of the bodies (a concatenation up to its first
    item that is not nullable). Nullability is exact; the first bytes may include some of a branch whose
    language is empty (a concatenation with an unproductive part), which only makes tokens uncertain.

    A round of first bytes that read no rule before computing it (a JSON object's body starts with `{`,
    its calls come later) is already the fixpoint: no second round confirms it (`confirm`: the tests'
    oracle, rounds until nothing changes).
    """
    nullable = [False] * len(bodies)
    first = [0] * len(bodies)
    consts: dict[int, int] = {}  # first bytes of the leaves, by identity
    # callees mostly come after their callers (a schema's structure rules): rounds in reverse order settle
    # sooner (the fixpoints do not depend on the order)
    order = list(enumerate(bodies))[::-1]
    try:
        changed = True
        while changed:  # nullability only grows
            changed = False
            memo: dict[int, bool] = {}
            for r, body in order:
                if not nullable[r] and _nullable(body, index, nullable, memo):
                    nullable[r] = changed = True
        final: dict[int, bool] = {}
        changed = True
        while changed:
            changed = False
            seen: dict[int, int] = {}
            pending = set(range(len(bodies)))  # the rules not computed yet this round; -1 once one is read
            for r, body in order:
                f = _first(body, index, nullable, first, seen, final, consts, pending)
                pending.discard(r)
                if f != first[r]:
                    first[r], changed = f, True
            if -1 not in pending and not confirm:  # every rule read was final: a fixpoint
                break
    except RecursionError:
        for body in bodies:
            check_nesting(body, "grammar rule")
        raise
    return tuple(nullable), tuple(first)


def _nullable(node: Any, index: dict[str, int], rules: list[bool], memo: dict[int, bool]) -> bool:
    kind = type(node)
    if kind is Call:
        return rules[index[node.rule]]
    if kind is CharSet:
        return False
    found = memo.get(id(node))
    if found is not None:
        return found
    if kind is Concat:
        out = all(_nullable(i, index, rules, memo) for i in node.items)
    elif kind is Alt:
        out = any(_nullable(i, index, rules, memo) for i in node.items)
    elif kind is Repeat:
        out = node.min == 0 or node.max == 0 or _nullable(node.item, index, rules, memo)
    elif kind is Lexeme:
        out = not node.dfa.is_empty() and _lexeme_nullable(node.dfa)
    elif kind is Automaton:
        out = node.start in node.accepting
    else:
        raise TypeError(node)
    memo[id(node)] = out
    return out


def _first(
    node: Any,
    index: dict[str, int],
    nullable: list[bool],
    rules: list[int],
    memo: dict[int, int],
    final: dict[int, bool],
    consts: dict[int, int],
    pending: set[int],
) -> int:
    kind = type(node)
    if kind is Call:
        k = index[node.rule]
        if k in pending:
            pending.add(-1)
        return rules[k]
    found = memo.get(id(node))
    if found is not None:
        return found
    if kind is Concat:
        out = 0
        for item in node.items:
            out |= _first(item, index, nullable, rules, memo, final, consts, pending)
            if not _nullable(item, index, nullable, final):
                break
    elif kind is Alt:
        out = 0
        for item in node.items:
            out |= _first(item, index, nullable, rules, memo, final, consts, pending)
    elif kind is Repeat:
        out = 0 if node.max == 0 else _first(node.item, index, nullable, rules, memo, final, consts, pending)
    else:
        out = consts.get(id(node), -1)
        if out < 0:
            out = consts[id(node)] = _leaf_first(node)
    memo[id(node)] = out
    return out


_UTF8_LEAD = ((0x7F, 0, 0x00), (0x7FF, 6, 0xC0), (0xFFFF, 12, 0xE0), (0x10FFFF, 18, 0xF0))


@lru_cache(maxsize=4096)
def ranges_first(ranges: tuple[tuple[int, int], ...]) -> int:
    """The UTF-8 lead bytes of a CharSet's code points (cached: the same key characters recur in every
    schema's rules)."""
    out = 0
    floor = 0
    for top, shift, mark in _UTF8_LEAD:  # the lead byte grows with the code point in each length
        for lo, hi in ranges:
            lo, hi = max(lo, floor), min(hi, top)
            if lo <= hi:
                out |= _span(mark | (lo >> shift), mark | (hi >> shift))
        floor = top + 1
    return out


def _leaf_first(node: Any) -> int:
    """The first bytes of a CharSet (UTF-8 lead bytes), a precompiled Automaton or a Lexeme."""
    out = 0
    if isinstance(node, CharSet):
        return ranges_first(node.ranges)
    if isinstance(node, Lexeme):
        dfa = node.dfa
        if not dfa.is_empty():
            for b in np.flatnonzero(dfa.transitions[dfa.start] >= 0).tolist():
                out |= 1 << b
    elif isinstance(node, Automaton):
        for s, lo, hi, _ in node.edges:
            if s == node.start:
                out |= _span(lo, hi)
    else:
        raise TypeError(node)
    return out


def _span(lo: int, hi: int) -> int:
    """Bytes lo..hi as bits."""
    return ((1 << (hi + 1)) - 1) ^ ((1 << lo) - 1)


def _lexeme_nullable(dfa: ByteDFA) -> bool:
    """The unrolled start pair (start, counter 0) accepts (as `_unroll_lexeme` decides)."""
    q = dfa.start
    if not dfa.accepting[q]:
        return False
    s = -1 if dfa.seg is None else int(dfa.seg[q])
    if s < 0:
        return True
    lo, hi = dfa.bounds[s]
    return lo <= 0 <= hi and bool(dfa.live[q][0])


def _productive(bodies: dict[str, AnyNode]) -> dict[str, AnyNode]:
    """Bodies with calls of rules that derive no finite string replaced by the empty language."""
    good = productive_rules(bodies)
    if len(good) == len(bodies):  # the common case: nothing to replace
        return bodies
    out = {}
    for name, body in bodies.items():
        if name not in good:
            out[name] = EMPTY_LANGUAGE
        else:
            out[name] = map_calls(body, lambda c: c if c.rule in good else EMPTY_LANGUAGE)
    return out


class _CallBuilder(NFABuilder):
    """Thompson's construction with a call of rule r as an edge on symbol 256 + r (past the bytes)."""

    def __init__(self, index: dict[str, int]) -> None:
        super().__init__()
        self.index = index
        self.callees: set[int] = set()
        # Some part may have an empty language (an empty set or alternation, or a precompiled automaton,
        # not checked): only then can a DFA state fail to reach acceptance (`rule_dfa` trims then).
        self.maybe_dead = False

    def build(self, node):  # type: ignore[override]
        kind = type(node)
        if kind is Call:
            s, e = self.new(), self.new()
            r = self.index[node.rule]
            self.edges[s].append((256 + r, 256 + r, e))
            self.callees.add(r)
            return s, e
        if kind is Concat and node.items:
            return self.concat(node.items)
        if kind is Alt and not node.items or kind is Automaton and not all_coreachable(node):
            self.maybe_dead = True
        return super().build(node)

    def concat(self, items: tuple[Any, ...]) -> tuple[int, int]:
        """Like Thompson's, except that an ASCII set leaves the previous part's exit directly (no epsilon
        edge, no entry state of its own): a property name is a chain of one state per byte. The exit has no
        edges yet (its onward edges come from here), so the language is the same."""
        first, last = self.build(items[0])
        eps, edges = self.eps, self.edges
        for item in items[1:]:
            ranges = item.ranges if type(item) is CharSet else None
            if ranges and ranges[-1][1] < 0x80 and not eps[last] and not edges[last]:
                end = self.new()
                edges[last].extend([(lo, hi, end) for lo, hi in ranges])
                last = end
                continue
            a, b = self.build(item)
            eps[last].append(a)
            last = b
        return first, last

    def charset(self, node: CharSet) -> tuple[int, int]:
        """An ASCII set is one edge per range (what the UTF-8 split gives it), without the split: most of a
        schema's rule bodies are property names, one ASCII character at a time."""
        ranges = node.ranges
        if ranges and ranges[-1][1] < 0x80:
            start, end = self.new(), self.new()
            self.edges[start].extend([(lo, hi, end) for lo, hi in ranges])
            return start, end
        start, end = super().charset(node)
        if not self.edges[start]:  # no ranges, or only code points without UTF-8 (surrogates)
            self.maybe_dead = True
        return start, end


class _TailBuilder:
    """A rule body's NFA built right to left: `into(node, k)` is a state whose language is the node's
    followed by state k's. A subtree met again before the same state is built once: an object's later
    members (props_body writes them after the first member and again after a comma, both followed by
    the same rest) get one set of NFA states, so one set of DFA states, where Thompson's construction
    (`_CallBuilder`, the tests' oracle) copies them at every occurrence. No epsilon edge between the parts
    of a concatenation either: each part leads straight into the next."""

    def __init__(self, index: dict[str, int]) -> None:
        self.index = index
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple[int, int, int]]] = []
        self.callees: set[int] = set()
        self.maybe_dead = False  # as in `_CallBuilder`
        self.memo: dict[tuple[int, int], int] = {}  # (node id, state after it) -> its entry state

    def new(self) -> int:
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def into(self, node: Any, k: int) -> int:
        """A state reading `node`, then on from state k."""
        key = (id(node), k)
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = self._into(node, k)
        return hit

    def _into(self, node: Any, k: int) -> int:
        kind = type(node)
        if kind is Concat:  # `into` of each item inlined: a key's bytes are a long run of one-byte sets
            memo = self.memo
            for item in reversed(node.items):
                key = (id(item), k)
                hit = memo.get(key)
                if hit is None:
                    if type(item) is CharSet and item.ranges and item.ranges[-1][1] < 0x80:
                        hit = self._ascii(item.ranges, k)
                    else:
                        hit = self._into(item, k)
                    memo[key] = hit
                k = hit
            return k
        if kind is CharSet:
            return self._charset(node.ranges, k)
        if kind is Call:
            s = self.new()
            r = self.index[node.rule]
            self.edges[s].append((256 + r, 256 + r, k))
            self.callees.add(r)
            return s
        if kind is Alt:
            s = self.new()
            if not node.items:
                self.maybe_dead = True
            self.eps[s].extend([self.into(item, k) for item in node.items])
            return s
        if kind is Repeat:
            return self._repeat(node, k)
        if kind is Automaton:
            return self._automaton(node, k)
        raise TypeError(node)

    def _repeat(self, node: Repeat, k: int) -> int:
        if node.max is None:  # the star's hub: the item, back to the hub, or on
            t = self.new()
            self.eps[t].extend([self.into(node.item, t), k])
        else:  # up to max - min optional items, each skippable
            t = k
            for _ in range(node.max - node.min):
                o = self.new()
                self.eps[o].extend([self.into(node.item, t), t])
                t = o
        for _ in range(node.min):
            t = self.into(node.item, t)
        return t

    def _ascii(self, ranges: tuple[tuple[int, int], ...], k: int) -> int:
        """`_charset` of ASCII ranges (non-empty): one state, one edge per range."""
        s = len(self.eps)
        self.eps.append([])
        self.edges.append([(lo, hi, k) for lo, hi in ranges])
        return s

    def _charset(self, ranges: tuple[tuple[int, int], ...], k: int) -> int:
        if ranges and ranges[-1][1] < 0x80:  # ASCII: one edge per range
            return self._ascii(ranges, k)
        s = self.new()
        edges = self.edges
        by_suffix: dict[tuple[tuple[int, int], ...], int] = {(): k}
        for seq in utf8_sequences(ranges):
            nxt = k
            for i in range(len(seq) - 1, 0, -1):  # the states that read the rest, shared by suffix
                hit = by_suffix.get(seq[i:])
                if hit is None:
                    hit = by_suffix[seq[i:]] = self.new()
                    edges[hit].append((seq[i][0], seq[i][1], nxt))
                nxt = hit
            edges[s].append((seq[0][0], seq[0][1], nxt))
        if not edges[s]:  # no ranges, or only code points without UTF-8 (surrogates)
            self.maybe_dead = True
        return s

    def _automaton(self, node: Automaton, k: int) -> int:
        if not all_coreachable(node):
            self.maybe_dead = True
        base = len(self.eps)
        self.eps.extend([] for _ in range(node.n))
        self.edges.extend([] for _ in range(node.n))
        edges = self.edges
        for s, lo, hi, d in node.edges:
            edges[base + s].append((lo, hi, base + d))
        for a in node.accepting:
            self.eps[base + a].append(k)
        return base + node.start


def _estimate(node: AnyNode) -> int:
    return rule_states(node)  # no nesting check first: `check_rule_size` checks on a RecursionError


def rule_states(node: Any, counted: Callable[[Any], int] | None = None) -> int:
    """`estimate_states` of a rule body, a call counting as its two states; `counted` sizes the other leaf
    kinds (a JSON schema's counted strings, the same size every time). Kept on each node, calls and all:
    the schema compiler sizes members and bodies, the RTN sizes the same trees again (`check_rule_size`),
    and a walk that stopped only at plain subtrees (`estimate_states`) went down to every call each time."""
    return _rule_states(node, counted)[0]


def _rule_states(node: Any, counted: Callable[[Any], int] | None) -> tuple[int, bool]:
    """(`rule_states`, whether `counted` sized a leaf in it: then only a caller with `counted` may use it)."""
    kept_on = getattr(node, "__dict__", _NO_DICT)
    kept = kept_on.get("_rule_states")
    if kept is not None:
        if kept[1] and counted is None:
            raise TypeError(node)
        return kept
    plain = kept_on.get("_nfa_states")  # a plain subtree `estimate_states` sized before
    if plain is not None:
        return plain, False
    kind = type(node)
    if kind is Call:
        return 2, False
    if kind is Concat or kind is Alt:
        size = 2 if kind is Alt else 0 if node.items else 1
        other = False
        for i in node.items:
            n, o = _rule_states(i, counted)
            size += n
            other = other or o
    elif kind is Repeat:
        inner, other = _rule_states(node.item, counted)
        size = 2 + inner * (node.min + 1 if node.max is None else node.max)
    elif kind is CharSet or kind is Automaton:
        return estimate_states(node, None, {}), False  # kept on the node by `estimate_states`
    elif counted is None:
        raise TypeError(node)
    else:
        return counted(node), True
    object.__setattr__(node, "_rule_states", (size, other))
    return size, other


_NO_DICT: dict[str, Any] = {}


def check_rule_size(body: AnyNode, limits: Limits) -> None:
    """Refuse a rule whose Thompson NFA would exceed `limits.max_nfa_states` (an estimate, no build)."""
    try:
        needed = _estimate(body)
    except RecursionError:
        check_nesting(body, "grammar rule")
        raise
    if needed > limits.max_nfa_states:
        raise GrammarLimitError(
            f"grammar rule too large: its automaton would need {needed:,} NFA states "
            f"(limit {limits.max_nfa_states:,})"
        )


def rule_dfa(
    body: AnyNode, index: dict[str, int], limits: Limits, thompson: bool = False
) -> tuple[np.ndarray, np.ndarray, list[list[tuple[int, int]]]]:
    """(byte table [n, 256], accepting [n], call edges per state) of the trimmed DFA of one rule
    (`_rule_table` spread over bytes: what `RTN._build` publishes, offset by the rule's first state)."""
    table, acc, starts, callees = _rule_table(body, index, limits, thompson)
    full, calls = _spread(table, starts, callees)
    return full, acc, calls


def _rule_table(
    body: AnyNode, index: dict[str, int], limits: Limits, thompson: bool = False
) -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
    """(table [n, classes + callees], accepting [n], each byte class's first byte, callees) of the trimmed
    DFA of one rule: byte classes first, then one column per callee (sorted).

    Not minimized: Earley needs a deterministic automaton whose states can all still reach acceptance (every
    item viable), not a minimal one, and Moore's rounds (one per state of a long chain: a property name)
    cost more than the equivalent states they would merge (about 15% more states, no slower masks).

    The body's nesting is checked only when a recursive walk overflows (rule bodies of parsed grammars and
    schemas nest far less than Python's stack allows: checking first would walk every body once more).
    The NFA shares repeated tails (`_TailBuilder`); `thompson=True` builds Thompson's (the tests' oracle)."""
    direct = NATIVE and compiled is not None and not thompson  # the NFA's lists straight on (no NFA object)
    try:  # its NFA size was checked when the grammar was bound (RTN.__init__: check_rule_size)
        if direct:
            eps, edges, start, accept, callees, maybe_dead = compiled.tail_nfa(body, index, _TAIL_KINDS)
        else:
            nfa, callees, maybe_dead = thompson_nfa(body, index) if thompson else tail_nfa(body, index)
    except RecursionError:
        check_nesting(body, "grammar rule")
        raise
    # Byte classes over all byte edges, then one extra symbol (class) per distinct callee.
    if direct:
        table, accepting, starts = rule_subset_arrays(eps, edges, start, accept, callees, limits)
    else:
        table, accepting, starts = rule_subset_table(nfa, callees, limits)
    if maybe_dead:  # else every NFA state, so every DFA state, reaches acceptance
        rows, acc_list = table.tolist(), accepting.tolist()
        keep = _coreachable(rows, acc_list)
        if not all(keep):  # a part of the body with an empty language (a call of an unproductive rule)
            rows, acc_list = _drop(rows, acc_list, keep)
            table = np.array(rows, dtype=np.int64).reshape(len(rows), table.shape[1])
            accepting = np.array(acc_list, dtype=bool)
    return table, accepting, starts, callees


def _spread(
    table: np.ndarray, starts: list[int], callees: list[int]
) -> tuple[np.ndarray, list[list[tuple[int, int]]]]:
    """A `_rule_table`'s byte table [n, 256] and call edges per state, in the rule's own numbering (the
    Python of `tail_c.spread`, which writes the first offset straight into the RTN's table)."""
    widths = [hi - lo for lo, hi in zip(starts, [*starts[1:], 256], strict=True)]
    n_classes = len(starts)
    # each class's column spread over its bytes (classes are runs of bytes, in order), narrowed first
    full = np.repeat(table[:, :n_classes].astype(np.int32), widths, axis=1)
    calls: list[list[tuple[int, int]]] = [[] for _ in range(len(table))]
    if callees:  # the call edges, state by state in callee order (np.nonzero walks rows first)
        src, col = np.nonzero(table[:, n_classes:] >= 0)
        dst = table[src, n_classes + col].tolist()
        for s, c, t in zip(src.tolist(), col.tolist(), dst, strict=True):
            calls[s].append((callees[c], t))
    return full, calls


def tail_nfa(body: AnyNode, index: dict[str, int], native: bool | None = None) -> tuple[NFA, list[int], bool]:
    """(NFA, callees sorted, maybe_dead) of `_TailBuilder`, compiled (tail_c.c: the same NFA, state for
    state) where built (`native`; None: `NATIVE`), else in Python."""
    if (NATIVE if native is None else native) and compiled is not None:
        eps, edges, start, accept, callees, maybe_dead = compiled.tail_nfa(body, index, _TAIL_KINDS)
        return NFA(eps, edges, start, accept), callees, maybe_dead
    b = _TailBuilder(index)
    accept = b.new()
    start = b.into(body, accept)
    return NFA(b.eps, b.edges, start, accept), sorted(b.callees), b.maybe_dead


def thompson_nfa(body: AnyNode, index: dict[str, int]) -> tuple[NFA, list[int], bool]:
    """`tail_nfa` by Thompson's construction (`_CallBuilder`): the tests' oracle of the shared tails."""
    b = _CallBuilder(index)
    start, accept = b.build(body)
    return NFA(b.eps, b.edges, start, accept), sorted(b.callees), b.maybe_dead


def all_coreachable(node: Automaton) -> bool:
    """Whether every state of a precompiled automaton can reach one of its accepting states (then it
    cannot make a rule's DFA state dead). Kept on the node: a schema's rules share their key automata."""
    kept = node.__dict__.get("_all_coreachable")
    if kept is None:
        targets: list[list[int]] = [[] for _ in range(node.n)]
        for s, _, _, d in node.edges:
            targets[s].append(d)
        kept = all(_coreachable(targets, [s in node.accepting for s in range(node.n)]))
        object.__setattr__(node, "_all_coreachable", kept)
    return kept


# What the compiled builder needs from Python: the node classes, and the UTF-8 split it calls back.
_TAIL_KINDS = (Concat, CharSet, Call, Alt, Repeat, Automaton, utf8_sequences)


def _coreachable(rows: list[list[int]], accepting: list[bool]) -> list[bool]:
    """Per DFA state: some accepting state is reachable from it."""
    preds: list[list[int]] = [[] for _ in rows]
    for s, row in enumerate(rows):
        for t in set(row):
            if t >= 0:
                preds[t].append(s)
    keep = list(accepting)
    stack = [s for s, a in enumerate(accepting) if a]
    while stack:
        for p in preds[stack.pop()]:
            if not keep[p]:
                keep[p] = True
                stack.append(p)
    return keep


def _drop(
    rows: list[list[int]], accepting: list[bool], keep: list[bool]
) -> tuple[list[list[int]], list[bool]]:
    """The kept states renumbered in order (the start, state 0, is kept: the rule is productive)."""
    number = [DEAD] * len(rows)
    count = 0
    for s, k in enumerate(keep):
        if k:
            number[s], count = count, count + 1
    out = [[number[t] if t >= 0 else DEAD for t in row] for row, k in zip(rows, keep, strict=True) if k]
    return out, [a for a, k in zip(accepting, keep, strict=True) if k]


def _widths(dfa: ByteDFA, seg: np.ndarray) -> np.ndarray:
    """Per DFA state, how many (state, counter) pairs it unrolls into."""
    return np.array([len(dfa.live[q]) if seg[q] >= 0 else 1 for q in range(dfa.n_states)], dtype=np.int64)


def unrolled_states(dfa: ByteDFA) -> int:
    """The RTN states a `Lexeme` of this counted DFA unrolls into (all lexemes share MAX_LEXEME_STATES)."""
    if dfa.seg is None:  # no counters (any JSON string): one pair per state
        return dfa.n_states
    seg = (
        np.full(dfa.n_states, -1, dtype=np.int64) if dfa.seg is None else np.asarray(dfa.seg, dtype=np.int64)
    )
    return int(_widths(dfa, seg).sum())


def _lexeme_limit(n: int) -> None:
    raise GrammarLimitError(
        f"length-bounded strings too long for a grammar: unrolling their counters needs "
        f"{n:,} states (limit {MAX_LEXEME_STATES:,})",
        hints=["a smaller maxLength on strings inside recursive definitions"],
    )


def _pair_flags(dfa: ByteDFA, seg: np.ndarray, q: int, cs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of the pairs (q, c) for c in `cs`: which are live, and which have their counter within q's segment's
    bounds (all of them outside segments, where the one pair is (q, 0))."""
    s1 = int(seg[q])
    if s1 < 0:
        return np.ones(1, dtype=bool), np.ones(1, dtype=bool)
    lo, hi = dfa.bounds[s1]
    return dfa.live[q][cs], (cs >= lo) & (cs <= hi)


def _pair_targets(
    dfa: ByteDFA,
    seg: np.ndarray,
    width: np.ndarray,
    base: np.ndarray,
    q: int,
    cs: np.ndarray,
    src_ok: np.ndarray,
    in_bounds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(the bytes with a DFA transition from q, the unrolled pair each pair (q, c), c in `cs`, goes to on
    each, or DEAD): `ByteDFA.advance` over counters, to live pairs only."""
    trans = dfa.transitions
    byte = np.flatnonzero(trans[q] >= 0)
    if not len(byte):
        return byte, np.zeros((len(cs), 0), dtype=np.int64)
    s1 = int(seg[q])
    nxt = trans[q, byte].astype(np.int64)
    tick = dfa.tick[q, byte].astype(np.int64) if dfa.tick is not None else np.zeros(len(byte), np.int64)
    s2 = seg[nxt]
    same = (s1 >= 0) & (s2 == s1)
    counter = np.where(same[None, :], cs[:, None] + tick[None, :], np.where(s2 >= 0, tick, 0)[None, :])
    ok = src_ok[:, None] & (same[None, :] | in_bounds[:, None])
    into = s2 >= 0
    if into.any():
        lens = width[nxt]
        inside = counter < lens[None, :]
        live_ok = np.zeros_like(ok)
        for j in np.flatnonzero(into).tolist():
            row = dfa.live[int(nxt[j])]
            cj = counter[:, j]
            live_ok[:, j] = inside[:, j] & row[np.minimum(cj, len(row) - 1)]
        ok &= np.where(into[None, :], live_ok, True)
    return byte, np.where(ok, base[nxt][None, :] + counter, DEAD)


def lexeme_start_bytes(dfa: ByteDFA) -> int:
    """The bytes (a 256-bit int) on which a lexeme rule's start pair (start, 0) has a transition in its
    unrolled table: its exact first bytes (the DFA's own may lead to pairs a counter makes dead)."""
    if dfa.is_empty():
        return 0
    n = dfa.n_states
    seg = np.full(n, -1, dtype=np.int64) if dfa.seg is None else np.asarray(dfa.seg, dtype=np.int64)
    width = _widths(dfa, seg)
    base = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(width, out=base[1:])
    q = 0  # the rule's start state: pair (0, 0), as `_unroll_lexeme` numbers them
    cs = np.zeros(1, dtype=np.int64)
    byte, target = _pair_targets(dfa, seg, width, base, q, cs, *_pair_flags(dfa, seg, q, cs))
    out = 0
    for b in byte[target[0] != DEAD].tolist():
        out |= 1 << b
    return out


def _unroll_lexeme(dfa: ByteDFA, before: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(byte table, accepting, DFA state, counter) over the (state, counter) pairs of a counted DFA;
    `before`: the pairs earlier lexemes of the grammar took (all count toward `MAX_LEXEME_STATES`).

    Pair (q, c) is state base[q] + c, for c below the length of q's live table (a single c = 0 outside
    segments); the DFA's start (state 0) stays state 0. Transitions follow `ByteDFA.advance` exactly, and
    pairs that are not live get no transitions at all (no live pair leads to them).
    """
    n = dfa.n_states
    seg = np.full(n, -1, dtype=np.int64) if dfa.seg is None else np.asarray(dfa.seg, dtype=np.int64)
    width = _widths(dfa, seg)
    base = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(width, out=base[1:])
    m = int(base[-1])
    if before + m > MAX_LEXEME_STATES:  # checked before the table is allocated
        _lexeme_limit(before + m)
    table = np.full((m, 256), DEAD, dtype=np.int32)
    accepting = np.zeros(m, dtype=bool)
    q_of = np.repeat(np.arange(n, dtype=np.int32), width)
    c_of = (np.arange(m) - base[q_of]).astype(np.int32)
    for q in range(n):
        cs = np.arange(width[q])
        src_ok, in_bounds = _pair_flags(dfa, seg, q, cs)
        if dfa.accepting[q]:
            accepting[base[q] : base[q + 1]] = src_ok & in_bounds
        byte, target = _pair_targets(dfa, seg, width, base, q, cs, src_ok, in_bounds)
        if len(byte):
            table[base[q] : base[q + 1], byte] = target
    return table, accepting, q_of, c_of
