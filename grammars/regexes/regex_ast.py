"""The regex AST: four frozen node kinds over Unicode code-point sets, plus code-point set helpers.

Groups, anchors and lazy markers leave no trace: matching is always full and only the language matters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

MAX_CODE_POINT = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)

Ranges = tuple[tuple[int, int], ...]


class _CachedHash:
    """A node's hash, computed once: builders share subtrees (a JSON array's item schema is written twice
    per level), so a recomputed hash would walk the shared parts again at every level, exponentially.

    Only ints go into it (no str or None, whose hashes vary between processes), so a cached value that
    travels in a pickle stays right."""

    def __hash__(self) -> int:
        found = self.__dict__.get("_hash")
        if found is None:
            found = hash(self._key())
            object.__setattr__(self, "_hash", found)
        return found

    def _key(self) -> tuple[object, ...]:
        raise NotImplementedError


@dataclass(frozen=True)
class CharSet(_CachedHash):
    """One character from a code-point set: sorted, disjoint, non-adjacent inclusive ranges, no surrogates."""

    ranges: Ranges

    __hash__ = _CachedHash.__hash__

    def _key(self) -> tuple[object, ...]:
        return (1, self.ranges)


@dataclass(frozen=True)
class Concat(_CachedHash):
    """The items one after another; `Concat(())` matches only the empty string."""

    items: tuple[Node, ...]

    __hash__ = _CachedHash.__hash__

    def _key(self) -> tuple[object, ...]:
        return (2, self.items)


@dataclass(frozen=True)
class Alt(_CachedHash):
    """Any one of the items."""

    items: tuple[Node, ...]

    __hash__ = _CachedHash.__hash__

    def _key(self) -> tuple[object, ...]:
        return (3, self.items)


@dataclass(frozen=True)
class Repeat(_CachedHash):
    """`item` repeated `min` to `max` times (`max=None`: unbounded)."""

    item: Node
    min: int
    max: int | None

    __hash__ = _CachedHash.__hash__

    def _key(self) -> tuple[object, ...]:
        return (4, self.item, self.min, -1 if self.max is None else self.max)


@dataclass(frozen=True)
class Automaton:
    """A small precompiled byte automaton used as one node (JSON numbers, embedded sub-DFAs): `edges` are
    (src, lo, hi, dst) byte ranges. The regex parser never makes one; the NFA builder copies it in."""

    n: int
    start: int
    accepting: frozenset[int]
    edges: tuple[tuple[int, int, int, int], ...]


Node = CharSet | Concat | Alt | Repeat
EMPTY = Concat(())


def map_leaves(node: Any, f: Callable[[Any], Any]) -> Any:
    """`node` with every leaf (anything but Concat, Alt and Repeat: a CharSet, an Automaton, a grammar
    Call, a counted body) replaced by `f(leaf)`; untouched subtrees are shared, not copied."""
    if isinstance(node, Repeat):
        item = map_leaves(node.item, f)
        return node if item is node.item else Repeat(item, node.min, node.max)
    if isinstance(node, Concat | Alt):
        items = tuple(map_leaves(i, f) for i in node.items)
        return node if all(a is b for a, b in zip(items, node.items, strict=True)) else type(node)(items)
    return f(node)


def normalize(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """Sort and merge ranges, dropping surrogates (they have no UTF-8 encoding, so no byte DFA can match them)."""
    pieces: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if lo > hi:
            continue
        if lo <= SURROGATES[1] and hi >= SURROGATES[0]:
            if lo < SURROGATES[0]:
                pieces.append((lo, SURROGATES[0] - 1))
            if hi > SURROGATES[1]:
                pieces.append((SURROGATES[1] + 1, hi))
        else:
            pieces.append((lo, hi))
    pieces.sort()
    out: list[tuple[int, int]] = []
    for lo, hi in pieces:
        # Ranges that touch a removed surrogate block stay split, which is fine: adjacency is only cosmetic.
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def negate(ranges: Ranges) -> Ranges:
    """All code points (surrogates excepted) outside `ranges`."""
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in normalize(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_CODE_POINT:
        out.append((nxt, MAX_CODE_POINT))
    return normalize(out)


def intersects(a: Ranges, b: Ranges) -> bool:
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][1] < b[j][0]:
            i += 1
        elif b[j][1] < a[i][0]:
            j += 1
        else:
            return True
    return False


def char(cp: int) -> CharSet:
    return CharSet(normalize([(cp, cp)]))


DIGIT: Ranges = ((0x30, 0x39),)
WORD: Ranges = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
SPACE: Ranges = ((0x09, 0x0D), (0x20, 0x20))
# Shorthands with `re.ASCII` semantics; the negated ones cover all of Unicode.
SHORTHANDS: dict[str, Ranges] = {
    "d": DIGIT,
    "w": WORD,
    "s": SPACE,
    "D": negate(DIGIT),
    "W": negate(WORD),
    "S": negate(SPACE),
}
DOT = CharSet(negate(((0x0A, 0x0A),)))
