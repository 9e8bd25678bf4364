"""Constraints built from parts: a choice of strings, a length in characters, and conjunctions.

A conjunction of regular constraints is one product automaton, so the mask never allows a token after
which the parts cannot all still finish (masking each part separately would: "ab" & "ac" both allow "a").
A character length joins as a counted segment around that product (counters.py), so `length(max=500)`
stays a loop plus a counter rather than 500 unrolled copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

from .automata.counters import SegmentConflict
from .automata.dfa import ByteDFA, dfa_from_nfa
from .errors import GrammarLimitError
from .json.json_numbers import lit
from .json.json_schema import (
    COUNT_FROM,
    NOTHING,
    CountedBody,
    counted_nfa,
    intersect_nodes,
    string_product,
)
from .json.regex_ops import node_of
from .limits import DEFAULT_LIMITS, Limits, deadline
from .regexes.regex_ast import Alt, Automaton, Node, Repeat
from .regexes.regex_parser import parse_regex

ANY_CHAR = parse_regex(r"[\s\S]")


def choice_dfa(options: Sequence[str], limits: Limits = DEFAULT_LIMITS, minimal: bool = True) -> ByteDFA:
    """Exactly one of `options` (`minimal=False`: not minimized, for the optimizer's `minimize` pass)."""
    with deadline(limits.max_seconds):
        return dfa_from_nfa(counted_nfa(Alt(tuple(lit(o) for o in options)), limits), limits, minimal)


def length_dfa(lo: int, hi: int | None, limits: Limits = DEFAULT_LIMITS, minimal: bool = True) -> ByteDFA:
    """Any text of `lo`..`hi` characters (a counted DFA from COUNT_FROM characters on)."""
    return conjunction((), (lo, hi), limits, minimal)


def is_counted(lo: int, hi: int | None) -> bool:
    """Whether `length_dfa(lo, hi)` keeps a counter rather than unrolled states."""
    return hi is not None and hi >= lo and hi >= COUNT_FROM


def conjunction(
    parts: Sequence[ByteDFA],
    length: tuple[int, int | None] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    minimal: bool = True,
) -> ByteDFA:
    """The strings every DFA of `parts` accepts, of `length` = (lo, hi) characters if given.

    The parts must be counter-free (`GrammarLimitError` otherwise: two counters cannot be combined).
    `minimal=False` skips the minimization of a counter-free result.
    """
    for p in parts:
        if p.has_counters:
            raise GrammarLimitError(
                "cannot combine a length-counted constraint (a JSON string with a maxLength of 16 or more) "
                "with another constraint",
                hints=["give the length bound inside the JSON schema, or a smaller maxLength"],
            )
    with deadline(limits.max_seconds):
        nodes: list[Node] = [node_of(p) if p.n_states else NOTHING for p in parts]
        plain = reduce(intersect_nodes, nodes) if nodes else None
        if length is None:
            assert plain is not None
            return dfa_from_nfa(counted_nfa(plain, limits), limits, minimal)
        lo, hi = length
        if hi is not None and hi < lo:
            return dfa_from_nfa(counted_nfa(NOTHING, limits), limits)
        if hi is None or hi < COUNT_FROM:
            chars = Repeat(ANY_CHAR, lo, hi)
            node = chars if plain is None else intersect_nodes(plain, chars)
            return dfa_from_nfa(counted_nfa(node, limits), limits, minimal)
        loop = Repeat(ANY_CHAR, 0, None)
        auto, boundary = string_product(() if plain is None else (plain,), NOTHING, loop)
        if not isinstance(auto, Automaton):  # the parts already exclude each other
            return dfa_from_nfa(counted_nfa(NOTHING, limits), limits)
        body = CountedBody(auto, boundary, lo, hi, ())  # type: ignore[arg-type]
        try:
            return dfa_from_nfa(counted_nfa(body, limits), limits)
        except SegmentConflict:  # one segment spanning the whole text cannot conflict with another
            raise AssertionError("a lone counted segment conflicted") from None
