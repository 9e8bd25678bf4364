"""Boolean operations on regular languages given as regex `Node`s: intersection, difference, complement
within a universe. They go through minimal byte DFAs (automata.product over a completed complement) and come
back as `Automaton` nodes, so the JSON schema compiler can keep building on them.

Only regular languages qualify: a node holding a grammar `Call` (a recursive schema) is refused by the
caller (`has_call`). Products are capped at `MAX_STATES`, well below the general DFA limit, so that an
exact `oneOf`/`not` either compiles quickly or ends in a clear limit error.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from ..automata.automata import minimize, product
from ..automata.dfa import ByteDFA, dfa_from_nfa
from ..contextfree.cfg_grammar import Call
from ..errors import GrammarLimitError
from ..limits import DEFAULT_LIMITS, Limits
from ..regexes.nfa import build_nfa
from ..regexes.regex_ast import Alt, Automaton, CharSet, Concat, Node, Repeat, map_leaves

MAX_STATES = 50_000


def has_call(node: Any) -> bool:
    """Does `node` call a grammar rule somewhere (so that its language may not be regular)?"""
    if isinstance(node, Call):
        return True
    if isinstance(node, Concat | Alt):
        return any(has_call(i) for i in node.items)
    if isinstance(node, Repeat):
        return has_call(node.item)
    return False


@lru_cache(maxsize=256)
def dfa_of(node: Node, limits: Limits = DEFAULT_LIMITS) -> ByteDFA:
    """The minimal byte DFA of a plain regex node (no counters, no calls). Cached: the branches of an
    exact oneOf subtract the same merged subschemas from one another."""
    return dfa_from_nfa(build_nfa(node, limits), limits)


def byte_runs(table: np.ndarray) -> list[tuple[int, int, int, int]]:
    """A transition table's (state, lo, hi, target) runs of equal live targets, in row and byte order."""
    cut = np.ones(table.shape, dtype=bool)  # where a run starts, row by row
    cut[:, 1:] = table[:, 1:] != table[:, :-1]
    rows, los = np.nonzero(cut)
    his = np.empty_like(los)
    his[:-1] = los[1:] - 1
    his[np.r_[rows[1:] != rows[:-1], True]] = 255  # a row's last run ends at byte 255
    targets = table[rows, los]
    live = targets >= 0
    cols = (rows[live].tolist(), los[live].tolist(), his[live].tolist(), targets[live].tolist())
    return list(zip(*cols, strict=True))


def node_of(dfa: ByteDFA) -> Node:
    """A plain byte DFA as an `Automaton` node (byte-range edges); the empty language as an empty set."""
    if dfa.n_states == 0:
        return CharSet(())
    acc = frozenset(int(i) for i in np.flatnonzero(dfa.accepting))
    return Automaton(dfa.n_states, dfa.start, acc, tuple(byte_runs(dfa.transitions)))  # type: ignore[return-value]


def counted_loop(loop: ByteDFA, lo: int, hi: int | None) -> Automaton:
    """`lo`..`hi` rounds of `loop`, a DFA of (one round)* whose only accepting state is its start (JSON
    string characters): layer i of copies counts the rounds done, an edge back into the start ends one.
    A plain automaton without the epsilon web of the unrolled regex, whose DFA costs a long subset
    construction. `hi` None: at least `lo` rounds (the last layer's rounds end in itself)."""
    if np.flatnonzero(loop.accepting).tolist() != [loop.start]:
        raise ValueError("counted_loop needs a loop DFA whose only accepting state is its start")
    n = loop.n_states
    top = lo if hi is None else hi
    runs = byte_runs(loop.transitions)
    edges: list[tuple[int, int, int, int]] = []
    for i in range(top + 1):
        at, nxt = i * n, (i + 1) * n
        for q, a, b, t in runs:
            if t != loop.start:
                edges.append((at + q, a, b, at + t))
            elif i < top:
                edges.append((at + q, a, b, nxt + t))
            elif hi is None:
                edges.append((at + q, a, b, at + t))
    accepting = frozenset(i * n + loop.start for i in range(lo, top + 1))
    return Automaton(n * (top + 1), loop.start, accepting, tuple(edges))


def complement(dfa: ByteDFA) -> ByteDFA:
    """Every byte string `dfa` rejects: the DFA completed with a sink state, acceptance flipped (untrimmed)."""
    n = dfa.n_states
    table = np.full((n + 1, 256), n, dtype=np.int32)
    if n:
        table[:n] = np.where(dfa.transitions < 0, n, dfa.transitions)
    accepting = np.ones(n + 1, dtype=bool)
    accepting[:n] = ~np.asarray(dfa.accepting, dtype=bool)
    table.setflags(write=False)
    accepting.setflags(write=False)
    return ByteDFA(table, accepting, 0 if n else n, trimmed=False, minimal=False)


def intersection(parts: list[ByteDFA], what: str) -> ByteDFA:
    """The strings every part accepts, minimal; a `GrammarLimitError` naming `what` past `MAX_STATES`."""
    if any(p.n_states == 0 for p in parts):
        return parts[0] if parts[0].n_states == 0 else next(p for p in parts if p.n_states == 0)
    for p in parts:
        if p.has_counters:
            raise ValueError("regex_ops works on plain DFAs; unroll counted strings first")
    try:
        return minimize(product(parts, Limits(max_dfa_states=MAX_STATES)))
    except GrammarLimitError:
        raise GrammarLimitError(
            f"{what} needs an automaton of over {MAX_STATES:,} states to be enforced exactly",
            hints=["smaller or fewer overlapping subschemas, or lenient=true to accept an approximation"],
        ) from None


def difference(keep: ByteDFA, remove: list[ByteDFA], what: str) -> ByteDFA:
    """The strings `keep` accepts and no DFA of `remove` does."""
    if keep.n_states == 0:
        return keep
    others = [complement(r) for r in remove if r.n_states]
    return intersection([keep, *others], what) if others else keep


def expand_counted(node: Any) -> Any:
    """`node` with every counted string body (anything with an `unrolled()` form) unrolled to plain regex."""
    return map_leaves(node, lambda leaf: leaf.unrolled() if hasattr(leaf, "unrolled") else leaf)


def top_level_alternatives(pattern: str) -> list[str]:
    """`pattern` split at its top-level `|` (outside groups and classes, escapes skipped): with ECMAScript
    search semantics each alternative keeps its own `^` / `$` (`^a|b$`: starts with a, or ends with b)."""
    parts: list[str] = []
    depth = 0
    in_class = False
    start = 0
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts
