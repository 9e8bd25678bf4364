"""Constraints for decoding: regex -> byte DFA -> token automaton over a model's vocabulary -> matcher.

`compile_regex` is model-free; `regex(pattern, vocab)` binds a pattern to a `Vocabulary` and gives a
`TokenConstraint`, whose matchers fill allowed-token bitmasks and advance token by token.
"""

from .constraint import TokenConstraint, regex
from .dfa import ByteDFA, compile_regex
from .errors import GrammarLimitError, RegexError
from .limits import DEFAULT_LIMITS, Limits
from .matcher import Matcher
from .token_automaton import TokenAutomaton
from .vocab import Vocabulary

__all__ = [
    "ByteDFA",
    "DEFAULT_LIMITS",
    "GrammarLimitError",
    "Limits",
    "Matcher",
    "RegexError",
    "TokenAutomaton",
    "TokenConstraint",
    "Vocabulary",
    "compile_regex",
    "regex",
]
