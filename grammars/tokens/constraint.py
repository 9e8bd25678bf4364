"""`TokenConstraint`: a compiled constraint bound to one vocabulary; what the runtime asks for matchers.

Regexes compile through it today; JSON schemas and CFGs are meant to produce the same object.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .. import disk_cache
from ..automata.automata import cut_dead
from ..automata.dfa import ByteDFA, compile_regex
from ..errors import RegexError
from ..limits import DEFAULT_LIMITS, Limits, deadline
from .matcher import Matcher
from .token_automaton import TokenAutomaton
from .vocab import Vocabulary


@dataclass(frozen=True, eq=False)
class TokenConstraint:
    """A byte DFA, the vocabulary it was lifted to, and the resulting token automaton."""

    dfa: ByteDFA
    vocab: Vocabulary
    automaton: TokenAutomaton
    source: str = ""  # what it was compiled from, for messages and reprs

    @property
    def n_states(self) -> int:
        return self.dfa.n_states

    def matcher(self) -> Matcher:
        """A fresh matcher at the start state."""
        return Matcher(self.automaton)

    def precompute(self) -> TokenConstraint:
        """Nothing to do: the token automaton is built whole at compile (`CFGConstraint.precompute`'s
        counterpart, so that a caller need not ask which engine a schema got); returns self."""
        return self

    def __repr__(self) -> str:
        return f"TokenConstraint({self.source!r}, n_states={self.n_states})"


def regex(pattern: str, vocab: Vocabulary, limits: Limits = DEFAULT_LIMITS) -> TokenConstraint:
    """Constrain generation to full matches of `pattern` (Python `re` syntax, `re.ASCII` shorthands).

    A pattern that matches no string at all is refused: decoding under it could never stop.
    """
    return _regex(pattern, vocab, limits)


@lru_cache(maxsize=128)
def _regex(pattern: str, vocab: Vocabulary, limits: Limits) -> TokenConstraint:
    return disk_cache.cached("regex", (pattern, limits), vocab, lambda: _build_regex(pattern, vocab, limits))


def _build_regex(pattern: str, vocab: Vocabulary, limits: Limits) -> TokenConstraint:
    with deadline(limits.max_seconds):
        dfa = compile_regex(pattern, limits)
        if dfa.is_empty():
            raise RegexError("this regex matches no string at all", pattern, 0, max(1, len(pattern)))
        return TokenConstraint(dfa, vocab, TokenAutomaton.build(dfa, vocab, limits), pattern)


@lru_cache(maxsize=64)
def from_dfa(
    dfa: ByteDFA, vocab: Vocabulary, source: str = "", limits: Limits = DEFAULT_LIMITS
) -> TokenConstraint:
    """An already compiled byte DFA (a choice, a length, a conjunction) bound to `vocab`.

    A DFA with dead states (the `prune` pass off) has its edges into them cut first (automata.cut_dead).
    """
    with deadline(limits.max_seconds):
        dfa = cut_dead(dfa)
        return TokenConstraint(dfa, vocab, TokenAutomaton.build(dfa, vocab, limits), source)
