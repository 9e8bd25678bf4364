"""The key language of undeclared properties: a DFA's language minus a finite set of words, from a trie.

An object's extra keys are every JSON string body except the declared names. A generic complement of the
names' DFA and a product with the string body DFA cost a product walk per object; a trie of the names
gives the same automaton directly, in time linear in the names' total length: off the trie, the words run
on in a copy of the base DFA.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

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


def spellings(name: str) -> tuple[str, ...]:
    """`name` as `json.dumps` writes it between the quotes, with and without `ensure_ascii`: printable
    ASCII without quote or backslash (most names) as it is, with no call of `json.dumps`."""
    if name.isascii() and name.isprintable() and '"' not in name and "\\" not in name:
        return (name,)
    return (json.dumps(name, ensure_ascii=True)[1:-1], json.dumps(name, ensure_ascii=False)[1:-1])


class _Base:
    """A base DFA as lists, once per base DFA (every object with extra keys excludes its names from the
    same string body DFA): its rows, accepting flags, runs, and the edges and accepting states of its
    copy, which is the same in every `excluding` automaton (states 0.., before the trie)."""

    def __init__(self, base: ByteDFA) -> None:
        self.base = base
        self.rows: list[list[int]] = base.transitions.tolist()
        self.accepting: list[bool] = base.accepting.tolist()
        self.runs = _runs(base.transitions)
        self.copy_edges = tuple((q, lo, hi, t) for q, qruns in enumerate(self.runs) for lo, hi, t in qruns)
        self.copy_accepting = frozenset(q for q, a in enumerate(self.accepting) if a)
        # (base state, the trie node's bytes) -> its runs with those bytes cut out (trie chains repeat)
        self.cut: dict[tuple[int, tuple[int, ...]], list[tuple[int, int, int]]] = {}


_TABLES: dict[int, _Base] = {}


def _tables(base: ByteDFA) -> _Base:
    """`_Base` of `base`, kept while `base` is (by identity)."""
    hit = _TABLES.get(id(base))
    if hit is None or hit.base is not base:
        if len(_TABLES) > 64:
            _TABLES.clear()
        hit = _TABLES[id(base)] = _Base(base)
    return hit


def excluding(base: ByteDFA, words: Iterable[bytes]) -> Automaton:
    """`base`'s language minus `words`, as an `Automaton` node (states: a copy of `base`, then the trie,
    whose root is the start).

    A trie node stands for its prefix and the base state that prefix reaches; it accepts where the base
    does and no word ends. A byte off the trie goes to the base copy, where no word can end any more.
    The edges are listed on first use (`TrieEdges`): an object's extra keys are a rule of their own, which
    most generations never enter, and the list is most of the work."""
    if base.n_states == 0:
        return Automaton(1, 0, frozenset(), ())
    words = tuple(words)
    t = _tables(base)
    state, ends, _ = _trie(t, words)
    m = len(t.rows)  # trie node k is state m + k
    acc = {m + node for node, q in enumerate(state) if t.accepting[q] and not ends[node]}
    return Automaton(m + len(state), m, t.copy_accepting | acc, TrieEdges(base, words))  # type: ignore[arg-type]


def _trie(t: _Base, words: tuple[bytes, ...]) -> tuple[list[int], list[bool], list[dict[int, int]]]:
    """The trie of `words` inside the base language: per node, its base state, whether a word ends there,
    and its children by byte."""
    rows = t.rows
    state = [t.base.start]  # trie node -> base state
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
    return state, ends, children


def _trie_edges(base: ByteDFA, words: tuple[bytes, ...]) -> tuple[tuple[int, int, int, int], ...]:
    """The edges of `excluding(base, words)`: the base copy's, then each trie node's."""
    t = _tables(base)
    state, _, children = _trie(t, words)
    m = len(t.rows)
    edges = list(t.copy_edges)
    runs, cut = t.runs, t.cut
    for node in range(len(state)):
        kids = children[node]
        me = m + node
        if not kids:
            edges += [(me, lo, hi, q) for lo, hi, q in runs[state[node]]]
            continue
        key = (state[node], tuple(sorted(kids)))
        row = cut.get(key)
        if row is None:
            if len(cut) > 4096:
                cut.clear()
            row = cut[key] = _cut(runs[key[0]], key[1])
        edges += [(me, lo, hi, q) for lo, hi, q in row]
        edges += [(me, b, b, m + kid) for b, kid in kids.items()]
    return tuple(edges)


class TrieEdges(Sequence[tuple[int, int, int, int]]):
    """The edge list of an `excluding` automaton, made the first time it is read (iterated, sized,
    indexed). Hashed and compared by its base DFA and words, so that hashing an automaton that holds it
    lists nothing; the hash is of ints only (as `_CachedHash` needs of a value kept in a pickle), and a
    pickle or a disk cache file keeps the base and the words, not the list."""

    __slots__ = ("base", "words", "_edges", "_hash")

    def __init__(self, base: ByteDFA, words: tuple[bytes, ...]) -> None:
        self.base, self.words = base, words
        self._edges: tuple[tuple[int, int, int, int], ...] | None = None
        digest = hashlib.blake2b(b"\0".join(words), digest_size=8).digest()
        self._hash = hash((len(words), int.from_bytes(digest, "little")))

    def edges(self) -> tuple[tuple[int, int, int, int], ...]:
        if self._edges is None:
            self._edges = _trie_edges(self.base, self.words)
        return self._edges

    def __iter__(self) -> Iterator[tuple[int, int, int, int]]:
        return iter(self.edges())

    def __len__(self) -> int:
        return len(self.edges())

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        return self.edges()[i]

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrieEdges):  # (not equal to a tuple of the same edges: hashes differ)
            return NotImplemented
        return self.words == other.words and (self.base is other.base or self.edges() == other.edges())

    def __getstate__(self) -> dict[str, Any]:  # (pickle and the disk cache: the words, not the list)
        return {"base": self.base, "words": self.words}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["base"], tuple(state["words"]))  # type: ignore[misc]


def _cut(row: list[tuple[int, int, int]], cuts: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """The runs `row` with the bytes `cuts` (sorted) cut out: the trie's kids get their own edges."""
    out: list[tuple[int, int, int]] = []
    first, last = cuts[0], cuts[-1]
    for lo, hi, q in row:
        if hi < first or lo > last:
            out.append((lo, hi, q))
            continue
        start = lo
        for c in cuts:
            if start <= c <= hi:
                if start < c:
                    out.append((start, c - 1, q))
                start = c + 1
        if start <= hi:
            out.append((start, hi, q))
    return out
