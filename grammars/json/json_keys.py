"""The key language of undeclared properties: a DFA's language minus a finite set of words, from a trie.

An object's extra keys are every JSON string body except the declared names. A generic complement of the
names' DFA and a product with the string body DFA cost a product walk per object; a trie of the names
gives the same automaton directly, in time linear in the names' total length: off the trie, the words run
on in a copy of the base DFA.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..automata.dfa import ByteDFA
from ..regexes.regex_ast import Automaton
from .regex_ops import byte_runs


def _runs(table: np.ndarray) -> list[list[tuple[int, int, int]]]:
    """Each transition row as (lo, hi, target) byte ranges of equal live targets."""
    out: list[list[tuple[int, int, int]]] = [[] for _ in range(table.shape[0])]
    for q, lo, hi, t in byte_runs(table):
        out[q].append((lo, hi, t))
    return out


_TABLES: dict[int, tuple[ByteDFA, list[list[int]], list[bool], list[list[tuple[int, int, int]]]]] = {}


def _tables(base: ByteDFA) -> tuple[list[list[int]], list[bool], list[list[tuple[int, int, int]]]]:
    """`base`'s rows, accepting flags and runs as lists, once per base DFA (every object with extra keys
    excludes its names from the same string body DFA)."""
    hit = _TABLES.get(id(base))
    if hit is None or hit[0] is not base:
        if len(_TABLES) > 64:
            _TABLES.clear()
        hit = _TABLES[id(base)] = (
            base,
            base.transitions.tolist(),
            base.accepting.tolist(),
            _runs(base.transitions),
        )
    return hit[1], hit[2], hit[3]


def excluding(base: ByteDFA, words: Iterable[bytes]) -> Automaton:
    """`base`'s language minus `words`, as an `Automaton` node (states: the trie, then a copy of `base`).

    A trie node stands for its prefix and the base state that prefix reaches; it accepts where the base
    does and no word ends. A byte off the trie goes to the base copy, where no word can end any more."""
    if base.n_states == 0:
        return Automaton(1, 0, frozenset(), ())
    rows, accepting, runs = _tables(base)
    state = [base.start]  # trie node -> base state
    ends = [False]
    children: list[dict[int, int]] = [{}]
    for word in words:
        node = 0
        for b in word:
            nxt = children[node].get(b)
            if nxt is None:
                q = rows[state[node]][b]
                if q < 0:  # the word leaves the base language: nothing to exclude
                    break
                nxt = children[node][b] = len(state)
                state.append(q)
                ends.append(False)
                children.append({})
            node = nxt
        else:
            ends[node] = True
    n_trie = len(state)
    shifted = [[(lo, hi, n_trie + t) for lo, hi, t in qruns] for qruns in runs]  # targets in the copy
    edges: list[tuple[int, int, int, int]] = []
    for node in range(n_trie):
        kids = children[node]
        row = shifted[state[node]]
        if not kids:
            edges += [(node, lo, hi, t) for lo, hi, t in row]
            continue
        # the runs with the kids' bytes cut out (the kids get their own edges)
        cuts = sorted(kids)
        first, last = cuts[0], cuts[-1]
        for lo, hi, t in row:
            if hi < first or lo > last:
                edges.append((node, lo, hi, t))
                continue
            start = lo
            for c in cuts:
                if start <= c <= hi:
                    if start < c:
                        edges.append((node, start, c - 1, t))
                    start = c + 1
            if start <= hi:
                edges.append((node, start, hi, t))
        edges += [(node, b, b, kid) for b, kid in kids.items()]
    for q, row in enumerate(shifted):
        edges += [(n_trie + q, lo, hi, t) for lo, hi, t in row]
    acc = {node for node in range(n_trie) if accepting[state[node]] and not ends[node]}
    acc.update(n_trie + q for q, a in enumerate(accepting) if a)
    return Automaton(n_trie + len(rows), 0, frozenset(acc), tuple(edges))
