"""Which rules' first bytes (`RTN.first`) are exact: the simulation's last-byte probe trusts only those.

A mask's simulation steps each uncertain token through the recognizer; a step predicts the rules its items
call, and predicting a rule builds its DFA (cfg_matcher). When a single byte of the token remains, the only
question left is whether some item of the closed set takes it, and for a rule predicted there that is
whether the byte is one of the rule's first bytes: no DFA is needed, if those bytes are exact.

`RTN.first` comes from the bodies and may include bytes of a part whose language is empty (an empty
alternation where an unproductive call was, a precompiled automaton with dead states, a counted lexeme whose
first byte leads to a pair its counter makes dead). So a rule's first bytes count as exact only when no rule
it reaches through calls (itself included) has such a part: checked lazily, a rule body at a time, by a
walk of the rules reachable from the one asked about, memoized.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..regexes.regex_ast import Alt, Automaton, CharSet, Concat, Repeat
from .cfg_grammar import Call, Lexeme
from .rtn import RTN, all_coreachable, lexeme_start_bytes, ranges_first

_UNKNOWN = b""  # not asked yet (exact answers are 32 bytes long, inexact ones None)
_SURROGATES = (0xD800, 0xDFFF)


class ExactFirst:
    """`first(r)`: rule r's first bytes as 32 bytes (bit b of byte b >> 3), or None when they may include a
    byte that starts no string of the rule."""

    def __init__(self, rtn: RTN) -> None:
        self.rtn = rtn
        self._bits: list[bytes | None] = [_UNKNOWN] * len(rtn.bodies)

    def __call__(self, r: int) -> bytes | None:
        hit = self._bits[r]
        if hit is not _UNKNOWN:
            return hit
        bits = self._bits
        seen, stack = {r}, [r]
        while stack:
            q = stack.pop()
            known = bits[q]
            if known is None or (known is _UNKNOWN and not self._clean(q, seen, stack)):
                bits[r] = None  # (the others seen stay unknown: they may not reach this part)
                if known is _UNKNOWN:
                    bits[q] = None
                return None
        first = self.rtn.first_table()
        for q in seen:  # every rule these reach is clean: all of them are exact
            if bits[q] is _UNKNOWN:
                bits[q] = first[q].tobytes()
        return bits[r]

    def _clean(self, r: int, seen: set[int], stack: list[int]) -> bool:
        """Rule r's body has no part with an empty language (its callees pushed onto `stack`, once)."""
        body = self.rtn.bodies[r]
        if type(body) is Lexeme:
            return not body.dfa.is_empty() and lexeme_start_bytes(body.dfa) == self.rtn.first[r]
        index = self.rtn.index
        todo: list[Any] = [body]
        visited: set[int] = set()
        while todo:
            node = todo.pop()
            if id(node) in visited:
                continue
            visited.add(id(node))
            kind = type(node)
            if kind is Call:
                callee = index[node.rule]
                if callee not in seen:
                    seen.add(callee)
                    stack.append(callee)
            elif kind is Concat:
                todo.extend(node.items)
            elif kind is Alt:
                if not node.items:
                    return False
                todo.extend(node.items)
            elif kind is Repeat:
                if node.max != 0:
                    todo.append(node.item)
            elif kind is CharSet:
                if not _exact_charset(node.ranges):
                    return False
            elif kind is Automaton:
                if node.n == 0 or not all_coreachable(node):
                    return False
            else:  # (a lexeme inside a body, or a kind added later: not trusted)
                return False
        return True


@lru_cache(maxsize=4096)
def _exact_charset(ranges: tuple[tuple[int, int], ...]) -> bool:
    """The set has an encodable code point, and its lead bytes are those of its encodable code points."""
    lo_s, hi_s = _SURROGATES
    kept: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if hi < lo_s or lo > hi_s:
            kept.append((lo, hi))
            continue
        if lo < lo_s:
            kept.append((lo, lo_s - 1))
        if hi > hi_s:
            kept.append((hi_s + 1, hi))
    return bool(kept) and ranges_first(tuple(kept)) == ranges_first(ranges)


__all__ = ["ExactFirst"]
