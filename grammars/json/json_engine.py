"""Which engine runs a compiled JSON schema: one token automaton, or the lazy grammar engine.

The schema compiler writes every schema as a grammar whose rules are its structure (objects, arrays, any
JSON value, recursive `$ref` targets). A small regular one is inlined back into one regex and built into a
token automaton: built eagerly over states x vocabulary, but the fastest masks. Everything else (recursion,
a schema-free value, which nests to any depth, or an inlined automaton past `AUTOMATON_MAX_NFA` NFA states)
stays a grammar, whose token rows are computed
lazily (cfg_rows.py), so compiling costs O(schema).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..contextfree.cfg_grammar import Call, Grammar, map_calls
from ..regexes.nfa import check_nesting, estimate_states
from ..regexes.regex_ast import Alt, Concat, Repeat

# Inlined schemas up to this many NFA states compile to a token automaton (tiny choices, enums, literals,
# short patterns). Measured on the MaskBench 200 sample (seed 1): from about 100 NFA states the eager build
# over the vocabulary costs 4-15 ms (SmolLM2) or 7-45 ms (Llama-3) where the lazy engine's first mask
# takes 1-3 ms, with the same outcomes and no slower masks.
AUTOMATON_MAX_NFA = 64
# A step that heals its text-then-gen boundary (token healing, grammars/tokens/healing.py) needs a matcher that
# can be positioned inside a token, which the grammar engine cannot be: such a step keeps the automaton up to
# this size, so that the JSON steps of programs still heal (`decc.grammars.json_schema` alone uses the above).
HEALING_MAX_NFA = 500

AUTOMATON = "automaton"
GRAMMAR = "grammar"


@dataclass(frozen=True)
class EngineChoice:
    """The engine of one constraint and why (`decc compile --emit opt` prints it)."""

    engine: str  # AUTOMATON or GRAMMAR
    reason: str

    def remark(self) -> str:
        name = "grammar (lazy)" if self.engine == GRAMMAR else "token automaton"
        return f"engine: {name} because {self.reason}"


def calls_in(node: Any) -> set[str]:
    """The rule names `node` calls (each shared subtree walked once; a subtree that keeps its NFA size
    estimate is plain regex, with no call inside: nfa.estimate_states)."""
    out: set[str] = set()
    stack = [node]
    seen: set[int] = set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        kind = type(n)
        if kind is Call:
            out.add(n.rule)
        elif kind is Concat or kind is Alt:
            if "_nfa_states" not in n.__dict__:
                stack.extend(n.items)
        elif kind is Repeat:
            if "_nfa_states" not in n.__dict__:
                stack.append(n.item)
    return out


@lru_cache(maxsize=64)
def call_graph(grammar: Grammar) -> dict[str, set[str]]:
    """Each rule's called rule names (the engine choice asks several questions of one grammar)."""
    return {name: calls_in(body) for name, body in grammar.rules}


def recursive(grammar: Grammar, skip: str) -> bool:
    """Some rule reachable from the start calls itself again (rule `skip` aside: it has a regular form)."""
    graph = {name: calls - {skip} for name, calls in call_graph(grammar).items() if name != skip}
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(r: str) -> bool:
        state[r] = 1
        for c in graph.get(r, ()):
            s = state.get(c, 0)
            if s == 1 or (s == 0 and visit(c)):
                return True
        state[r] = 2
        return False

    return visit(grammar.rules[0][0])


def inline(grammar: Grammar, fixed: dict[str, Any]) -> Any:
    """The start rule with every call expanded into its rule's body (`fixed`: bodies to use instead, for
    rules that recurse in the grammar but have a bounded regular form); the grammar must not recurse."""
    bodies = dict(grammar.rules)
    for body in bodies.values():
        check_nesting(body)  # before the recursion below walks it
    return map_calls(grammar.rules[0][1], _Inliner(bodies, dict(fixed)).expand)


class _Inliner:
    """`inline`'s expansion of calls, each rule's once (a method, not a closure that calls itself: that is
    a reference cycle holding every expanded body, freed only by the cyclic collector, later)."""

    def __init__(self, bodies: dict[str, Any], done: dict[str, Any]) -> None:
        self.bodies, self.done = bodies, done

    def expand(self, call: Call) -> Any:
        hit = self.done.get(call.rule)
        if hit is None:
            hit = self.done[call.rule] = map_calls(self.bodies[call.rule], self.expand)
        return hit


def inline_size(grammar: Grammar, fixed: dict[str, int], other: Callable[[Any], int]) -> int:
    """The NFA states of `inline(grammar, ...)` without building it (each rule sized once)."""
    return estimate_states(grammar.rules[0][1], _Sizer(dict(grammar.rules), dict(fixed), other).size)


class _Sizer:
    """`inline_size`'s sizes of calls, each rule's once (a method: see `_Inliner`)."""

    def __init__(self, bodies: dict[str, Any], sizes: dict[str, int], other: Callable[[Any], int]) -> None:
        self.bodies, self.sizes, self.other = bodies, sizes, other

    def size(self, node: Any) -> int:
        if isinstance(node, Call):
            hit = self.sizes.get(node.rule)
            if hit is None:
                hit = self.sizes[node.rule] = estimate_states(self.bodies[node.rule], self.size)
            return hit
        return self.other(node)


def choose(
    grammar: Grammar,
    any_rule: str,
    other: Callable[[Any], int],
    heals: bool = False,
    *,
    recurses: bool | None = None,
    calls_any: bool | None = None,
) -> EngineChoice:
    """The engine for a schema's grammar (see the module docstring); `heals`: the step heals its boundary,
    which only an automaton can (HEALING_MAX_NFA). `recurses` (`recursive(grammar, any_rule)`) and
    `calls_any` (some rule calls `any_rule`): the answers where the caller knows them without a walk over
    every body (None: found from the call graph)."""
    if recursive(grammar, any_rule) if recurses is None else recurses:
        return EngineChoice(GRAMMAR, "the schema recurses ($ref)")
    if calls_any is None:
        calls_any = any(any_rule in calls for calls in call_graph(grammar).values())
    if calls_any:
        return EngineChoice(GRAMMAR, "a schema-free value (`true`, `{}`) nests to any depth")
    n = inline_size(grammar, {}, other)
    limit = HEALING_MAX_NFA if heals else AUTOMATON_MAX_NFA
    if n > limit:
        return EngineChoice(
            GRAMMAR, f"as one automaton it would need {n:,} NFA states (automaton limit {limit:,})"
        )
    if n > AUTOMATON_MAX_NFA:
        why = f"it is regular ({n:,} NFA states) and the step heals its boundary (limit {limit:,})"
        return EngineChoice(AUTOMATON, why)
    return EngineChoice(AUTOMATON, f"it is regular and small ({n:,} NFA states)")


__all__ = [
    "AUTOMATON",
    "AUTOMATON_MAX_NFA",
    "GRAMMAR",
    "HEALING_MAX_NFA",
    "EngineChoice",
    "choose",
    "inline",
    "inline_size",
]
