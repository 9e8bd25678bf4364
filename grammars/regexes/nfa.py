"""Thompson NFA over bytes, built from the regex AST; size is checked before building so blow-ups fail fast."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import GrammarLimitError
from ..limits import Limits
from .regex_ast import Alt, Automaton, CharSet, Concat, Node, Repeat
from .utf8 import state_count, utf8_sequences


@dataclass
class NFA:
    """`eps[s]`: epsilon successors; `edges[s]`: (lo, hi, target) byte-range transitions; one accept state.

    Counted segments (length-bounded JSON strings) stay loops instead of being unrolled: `seg_of` maps the
    states of segment k's body to k, the byte edges of states in `tick` start one counted character, and
    `bounds[k]` is the (min, max) number of characters; the DFA carries them on as counters.
    """

    eps: list[list[int]]
    edges: list[list[tuple[int, int, int]]]
    start: int
    accept: int
    seg_of: dict[int, int] = field(default_factory=dict)
    tick: set[int] = field(default_factory=set)
    bounds: list[tuple[int, int]] = field(default_factory=list)


def estimate_states(
    node: Any, other: Callable[[Any], int] | None = None, memo: dict[int, int] | None = None
) -> int:
    """The exact number of NFA states `build_nfa` will create (Python ints, so huge counts don't overflow).

    `other` sizes the node kinds a subclassed builder adds (grammar calls, counted string bodies). Shared
    subtrees are sized once (`memo`, by identity): a JSON array writes its item twice per nesting level.
    A plain regex subtree (no node that `other` sizes) keeps its size on itself, for every later estimate:
    the compiler sizes the same members and rule bodies again and again.
    """
    if memo is None:  # the outermost call: refuse what the recursion below could not walk
        check_nesting(node)
        memo = {}
    return _estimate(node, other, memo)[0]


def _estimate(node: Any, other: Callable[[Any], int] | None, memo: dict[int, int]) -> tuple[int, bool]:
    """`estimate_states` and whether `node` is plain (its size is its own, whatever `other` says)."""
    kept = getattr(node, "__dict__", _NO_DICT).get("_nfa_states")
    if kept is not None:
        return kept, True
    found = memo.get(id(node))
    if found is not None:
        return found, False
    plain = True
    kind = type(node)  # exact types (no subclasses exist; isinstance with a union costs more per node)
    if kind is Concat or kind is Alt:
        size = 2 if kind is Alt else 0 if node.items else 1
        for i in node.items:
            n, p = _estimate(i, other, memo)
            size += n
            plain = plain and p
    elif kind is CharSet:
        size = state_count(node.ranges)
    elif kind is Repeat:
        inner, plain = _estimate(node.item, other, memo)
        size = 2 + inner * (node.min + 1 if node.max is None else node.max)
    elif kind is Automaton:
        size = node.n + 1
    elif other is None:
        raise TypeError(node)
    else:
        size, plain = other(node), False
    if plain:
        object.__setattr__(node, "_nfa_states", size)
    else:
        memo[id(node)] = size
    return size, plain


_NO_DICT: dict[str, int] = {}


MAX_NESTING = 250  # node levels the recursive builders (and size estimates) walk within Python's stack


def nesting(node: Any) -> int:
    """How deeply `node` nests (iteratively, each shared subtree once), so deep trees fail with an error
    instead of a RecursionError in the recursive walks that follow. Each node keeps its depth on itself:
    the compiler checks the same subtrees again in every rule and estimate that holds them."""
    depth: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(node, False)]
    while stack:
        n, done = stack.pop()
        if id(n) in depth:
            continue
        kept = getattr(n, "__dict__", {}).get("_depth")
        if kept is not None:
            depth[id(n)] = kept
            continue
        kids = (n.item,) if isinstance(n, Repeat) else n.items if isinstance(n, Concat | Alt) else ()
        if done or not kids:
            d = depth[id(n)] = 1 + max((depth[id(k)] for k in kids), default=0)
            if kids:
                object.__setattr__(n, "_depth", d)
        else:
            stack.append((n, True))
            stack.extend((k, False) for k in kids if id(k) not in depth)
    return depth[id(node)]


def check_nesting(node: Any, what: str = "constraint") -> None:
    """A GrammarLimitError when `node` nests deeper than MAX_NESTING."""
    if (depth := nesting(node)) > MAX_NESTING:
        raise GrammarLimitError(
            f"{what} nested too deep: {depth} levels (at most {MAX_NESTING})",
            hints=["long lists of items and long digit bounds nest one level per item or digit"],
        )


def build_nfa(
    node: Node,
    limits: Limits,
    *,
    builder_class: type[NFABuilder] | None = None,
    needed: int | None = None,
    what: str = "regex",
    hint: str = "large bounded repeats like {1000} multiply the size of what they repeat",
) -> NFA:
    """Thompson construction, refused up front when the estimated size passes the limit.

    JSON schemas reuse it with their own builder (one extra node kind) and size estimate.
    """
    check_nesting(node, what)
    needed = estimate_states(node) if needed is None else needed
    if needed > limits.max_nfa_states:
        raise GrammarLimitError(
            f"{what} too large: its automaton would need {needed:,} NFA states "
            f"(limit {limits.max_nfa_states:,})",
            hints=[hint],
        )
    builder = (builder_class or NFABuilder)()
    start, end = builder.build(node)
    return NFA(builder.eps, builder.edges, start, end, builder.seg_of, builder.tick, builder.bounds)


class NFABuilder:
    def __init__(self) -> None:
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple[int, int, int]]] = []
        self.seg_of: dict[int, int] = {}
        self.tick: set[int] = set()
        self.bounds: list[tuple[int, int]] = []

    def new(self) -> int:
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def build(self, node: Node) -> tuple[int, int]:
        """A fragment (entry, exit); the exit gets its onward epsilon edges from the caller."""
        if isinstance(node, CharSet):
            return self.charset(node)
        if isinstance(node, Concat):
            if not node.items:
                s = self.new()
                return s, s
            first, last = self.build(node.items[0])
            for item in node.items[1:]:
                a, b = self.build(item)
                self.eps[last].append(a)
                last = b
            return first, last
        if isinstance(node, Alt):
            s, e = self.new(), self.new()
            for item in node.items:
                a, b = self.build(item)
                self.eps[s].append(a)
                self.eps[b].append(e)
            return s, e
        if isinstance(node, Automaton):
            ids = self.automaton(node)
            return ids[node.start], ids[-1]
        return self.repeat(node)

    def automaton(self, node: Automaton) -> list[int]:
        """Copy a precompiled automaton in: its states' new ids, then one exit state (reached by epsilon
        from every accepting state)."""
        base = len(self.eps)
        self.eps.extend([] for _ in range(node.n + 1))
        self.edges.extend([] for _ in range(node.n + 1))
        edges, eps = self.edges, self.eps
        for s, lo, hi, d in node.edges:
            edges[base + s].append((lo, hi, base + d))
        for a in node.accepting:
            eps[base + a].append(base + node.n)
        return list(range(base, base + node.n + 1))

    def repeat(self, node: Repeat) -> tuple[int, int]:
        s = self.new()
        cur = s
        for _ in range(node.min):
            a, b = self.build(node.item)
            self.eps[cur].append(a)
            cur = b
        end = self.new()
        if node.max is None:
            a, b = self.build(node.item)
            self.eps[cur] += [a, end]
            self.eps[b].append(cur)  # loop back to `cur`, the star's hub
            return s, end
        for _ in range(node.max - node.min):
            a, b = self.build(node.item)
            self.eps[cur] += [a, end]
            cur = b
        self.eps[cur].append(end)
        return s, end

    def charset(self, node: CharSet) -> tuple[int, int]:
        start, end = self.new(), self.new()
        by_suffix: dict[tuple[tuple[int, int], ...], int] = {}

        def state_for(suffix: tuple[tuple[int, int], ...]) -> int:
            """The state from which reading `suffix` reaches `end`; shared between sequences. (A loop, not
            a closure that calls itself: that is a cycle holding the whole builder, freed only by the
            cyclic garbage collector.)"""
            made = []  # the missing states, numbered from the longest suffix in
            nxt = end
            for i in range(len(suffix)):
                hit = by_suffix.get(suffix[i:])
                if hit is not None:
                    nxt = hit
                    break
                made.append((i, self.new()))
            for i, s in reversed(made):
                lo, hi = suffix[i]
                self.edges[s].append((lo, hi, nxt))
                by_suffix[suffix[i:]] = nxt = s
            return nxt

        for seq in utf8_sequences(node.ranges):
            lo, hi = seq[0]
            self.edges[start].append((lo, hi, state_for(seq[1:])))
        return start, end
