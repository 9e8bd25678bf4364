"""Recursive transition network: one minimal DFA per grammar rule over bytes plus call(rule) edges.

Each rule's body (a regex AST with `Call`s) is built into a Thompson NFA, determinized treating every callee
as one more alphabet symbol, minimized (`dfa.minimize_table`) and trimmed. Calls of rules whose language is empty are
dropped first, so every remaining state can reach acceptance: any item an Earley parser holds is viable.
All rules' states are numbered globally (`offsets[r]` is rule r's start state) so one byte table serves all.

A `Lexeme` rule (a counted byte DFA: a length-bounded JSON string) is unrolled into one state per live
(DFA state, counter) pair, so the Earley recognizer needs nothing special; `lex_q`/`lex_c` remember the pair
of each such state, so that its token mask can come from the lexeme's own token automaton (cfg_matcher).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..automata.dfa import ByteDFA, epsilon_closure, minimize_table
from ..errors import GrammarLimitError
from ..limits import DEFAULT_LIMITS, Limits, check_time
from ..regexes.nfa import NFABuilder, estimate_states
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

DEAD = -1
# Unrolled (state, counter) pairs of all lexemes together: each costs a 1 KiB byte-table row.
MAX_LEXEME_STATES = 60_000


@dataclass(frozen=True, eq=False)
class RTN:
    names: tuple[str, ...]  # rule names, the start rule first
    offsets: np.ndarray  # int64 [n_rules + 1]: rule r owns global states offsets[r]..offsets[r+1]
    table: np.ndarray  # int32 [G, 256]: next global state on a byte, or -1
    accepting: np.ndarray  # bool [G]
    calls: tuple[tuple[tuple[int, int], ...], ...]  # per global state: (callee rule, next global state)
    rule_of: np.ndarray  # int32 [G]
    nullable: tuple[bool, ...]  # per rule: derives the empty string
    lexemes: tuple[ByteDFA | None, ...]  # per rule: its counted DFA when the rule is a `Lexeme`
    lex_q: np.ndarray  # int32 [G]: the lexeme DFA state of an unrolled state, -1 elsewhere
    lex_c: np.ndarray  # int32 [G]: its counter

    @property
    def n_states(self) -> int:
        return int(self.table.shape[0])

    @property
    def n_rules(self) -> int:
        return len(self.names)


@lru_cache(maxsize=64)
def build_rtn(grammar: Grammar, limits: Limits = DEFAULT_LIMITS) -> RTN:
    bodies = _productive(dict(grammar.rules))
    names = tuple(name for name, _ in grammar.rules)
    if bodies[names[0]] is EMPTY_LANGUAGE:
        raise GrammarError(f"the grammar matches no string at all (rule '{names[0]}' can never finish)")
    index = {n: i for i, n in enumerate(names)}
    tables, accepts, callss, pairs = [], [], [], []
    lexemes: list[ByteDFA | None] = []
    total = lexeme_total = 0
    for name in names:
        body = bodies[name]
        if isinstance(body, Lexeme):
            trans, acc, q_of, c_of = _unroll_lexeme(body.dfa, lexeme_total)
            calls = [[] for _ in range(len(acc))]
            lexeme_total += len(acc)
            lexemes.append(body.dfa)
        else:
            trans, acc, calls = _rule_dfa(body, index, limits)
            q_of = c_of = np.full(len(acc), -1, dtype=np.int32)
            lexemes.append(None)
        pairs.append((q_of, c_of))
        total += len(acc)
        if total > limits.max_dfa_states:
            raise GrammarLimitError(
                f"grammar too large: its rule automata grow past {total:,} states (limit {limits.max_dfa_states:,})"
            )
        tables.append(trans)
        accepts.append(acc)
        callss.append(calls)
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum([len(a) for a in accepts], out=offsets[1:])
    table = np.concatenate([np.where(t >= 0, t + offsets[r], DEAD) for r, t in enumerate(tables)]).astype(
        np.int32
    )
    accepting = np.concatenate(accepts)
    calls_g: list[tuple[tuple[int, int], ...]] = []
    for r, calls in enumerate(callss):
        for edges in calls:
            calls_g.append(tuple((callee, int(offsets[r]) + nxt) for callee, nxt in edges))
    rule_of = np.repeat(np.arange(len(names), dtype=np.int32), np.diff(offsets))
    nullable = [False] * len(names)
    changed = True
    while changed:  # a rule is nullable if its start reaches acceptance through calls of nullable rules
        changed = False
        for r in range(len(names)):
            if nullable[r] or offsets[r] == offsets[r + 1]:  # no states: an unproductive rule, never called
                continue
            seen = {int(offsets[r])}
            stack = [int(offsets[r])]
            while stack and not nullable[r]:
                g = stack.pop()
                if accepting[g]:
                    nullable[r] = changed = True
                for callee, nxt in calls_g[g]:
                    if nullable[callee] and nxt not in seen:
                        seen.add(nxt)
                        stack.append(nxt)
    lex_q = np.concatenate([q for q, _ in pairs]).astype(np.int32)
    lex_c = np.concatenate([c for _, c in pairs]).astype(np.int32)
    for a in (offsets, table, accepting, rule_of, lex_q, lex_c):
        a.setflags(write=False)
    return RTN(
        names,
        offsets,
        table,
        accepting,
        tuple(calls_g),
        rule_of,
        tuple(nullable),
        tuple(lexemes),
        lex_q,
        lex_c,
    )


def _productive(bodies: dict[str, AnyNode]) -> dict[str, AnyNode]:
    """Bodies with calls of rules that derive no finite string replaced by the empty language."""
    good = productive_rules(bodies)
    out = {}
    for name, body in bodies.items():
        if name not in good:
            out[name] = EMPTY_LANGUAGE
        else:
            out[name] = map_calls(body, lambda c: c if c.rule in good else EMPTY_LANGUAGE)
    return out


class _CallBuilder(NFABuilder):
    def __init__(self, index: dict[str, int]) -> None:
        super().__init__()
        self.index = index
        self.calls: list[list[tuple[int, int]]] = []

    def new(self) -> int:
        self.calls.append([])
        return super().new()

    def build(self, node):  # type: ignore[override]
        if isinstance(node, Call):
            s, e = self.new(), self.new()
            self.calls[s].append((self.index[node.rule], e))
            return s, e
        return super().build(node)


def _estimate(node: AnyNode) -> int:
    return estimate_states(node, _call_size)


def _call_size(node: Any) -> int:
    if isinstance(node, Call):
        return 2
    raise TypeError(node)


def _rule_dfa(
    body: AnyNode, index: dict[str, int], limits: Limits
) -> tuple[np.ndarray, np.ndarray, list[list[tuple[int, int]]]]:
    """(byte table [n, 256], accepting [n], call edges per state) of the minimal trimmed DFA of one rule."""
    needed = _estimate(body)
    if needed > limits.max_nfa_states:
        raise GrammarLimitError(
            f"grammar rule too large: its automaton would need {needed:,} NFA states "
            f"(limit {limits.max_nfa_states:,})"
        )
    b = _CallBuilder(index)
    start, accept = b.build(body)
    # Byte classes over all byte edges, then one extra symbol per distinct callee.
    cuts = np.zeros(257, dtype=bool)
    cuts[0] = True
    for edges in b.edges:
        for lo, hi, _ in edges:
            cuts[lo] = True
            cuts[hi + 1] = True
    byte_class = np.cumsum(cuts[:256]).astype(np.int64) - 1
    n_classes = int(byte_class[-1]) + 1
    callees = sorted({c for cs in b.calls for c, _ in cs})
    call_col = {c: n_classes + i for i, c in enumerate(callees)}
    k = n_classes + len(callees)
    classes = byte_class.tolist()

    important = [bool(b.edges[s]) or bool(b.calls[s]) or s == accept for s in range(len(b.eps))]
    closure = epsilon_closure(b.eps, important)

    succ = [
        [(c, closure(t)) for lo, hi, t in edges for c in range(classes[lo], classes[hi] + 1)]
        + [(call_col[callee], closure(t)) for callee, t in b.calls[s]]
        for s, edges in enumerate(b.edges)
    ]
    first = closure(start)
    ids = {first: 0}
    sets = [first]
    rows: list[list[int]] = []
    while len(rows) < len(sets):
        if not len(rows) & 63:
            check_time("building the grammar's automata")
        moves: dict[int, set[int]] = {}
        for s in sets[len(rows)]:
            for c, closed in succ[s]:
                moves.setdefault(c, set()).update(closed)
        row = [DEAD] * k
        for c, target in moves.items():
            key = frozenset(target)
            d = ids.get(key)
            if d is None:
                d = ids[key] = len(sets)
                sets.append(key)
            row[c] = d
        rows.append(row)
        if len(sets) > limits.max_dfa_states:
            raise GrammarLimitError(
                f"grammar rule too complex: its DFA grows past {len(sets):,} states "
                f"(limit {limits.max_dfa_states:,})"
            )
    trans = np.array(rows, dtype=np.int64).reshape(len(rows), k)
    acc = np.array([accept in s for s in sets], dtype=bool)
    trans, acc = minimize_table(trans, acc)
    full = trans[:, byte_class] if len(acc) else np.zeros((0, 256), dtype=np.int64)
    calls = [
        [(c, int(trans[s, call_col[c]])) for c in callees if trans[s, call_col[c]] >= 0]
        for s in range(len(acc))
    ]
    return full.astype(np.int32), acc, calls


def _widths(dfa: ByteDFA, seg: np.ndarray) -> np.ndarray:
    """Per DFA state, how many (state, counter) pairs it unrolls into."""
    return np.array([len(dfa.live[q]) if seg[q] >= 0 else 1 for q in range(dfa.n_states)], dtype=np.int64)


def unrolled_states(dfa: ByteDFA) -> int:
    """The RTN states a `Lexeme` of this counted DFA unrolls into (all lexemes share MAX_LEXEME_STATES)."""
    seg = (
        np.full(dfa.n_states, -1, dtype=np.int64) if dfa.seg is None else np.asarray(dfa.seg, dtype=np.int64)
    )
    return int(_widths(dfa, seg).sum())


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
        raise GrammarLimitError(
            f"length-bounded strings too long for a grammar: unrolling their counters needs "
            f"{before + m:,} states (limit {MAX_LEXEME_STATES:,})",
            hints=["a smaller maxLength on strings inside recursive definitions"],
        )
    table = np.full((m, 256), DEAD, dtype=np.int32)
    accepting = np.zeros(m, dtype=bool)
    q_of = np.repeat(np.arange(n, dtype=np.int32), width)
    c_of = (np.arange(m) - base[q_of]).astype(np.int32)
    trans = dfa.transitions
    for q in range(n):
        s1 = int(seg[q])
        cs = np.arange(width[q])
        src_ok = dfa.live[q][cs] if s1 >= 0 else np.ones(1, dtype=bool)
        if s1 >= 0:
            lo, hi = dfa.bounds[s1]
            in_bounds = (cs >= lo) & (cs <= hi)
        else:
            in_bounds = np.ones(1, dtype=bool)
        if dfa.accepting[q]:
            accepting[base[q] : base[q + 1]] = src_ok & in_bounds
        byte = np.flatnonzero(trans[q] >= 0)
        if not len(byte):
            continue
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
        target = np.where(ok, base[nxt][None, :] + counter, DEAD)
        table[base[q] : base[q + 1], byte] = target
    return table, accepting, q_of, c_of
