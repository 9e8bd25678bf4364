"""Constraints for decoding: regex -> byte DFA -> token automaton over a model's vocabulary -> matcher.

`compile_regex` and `compile_json_schema` are model-free; `regex(pattern, vocab)` binds a pattern to a `Vocabulary` and gives a
`TokenConstraint`, whose matchers fill allowed-token bitmasks and advance token by token.
`cfg(grammar_text, vocab)` does the same for a context-free grammar in Lark syntax (Earley semantics);
`cfg_builtin(name, vocab)` for the built-in "json", "arith" and "sql_select" grammars.
"""

from .automata.dfa import ByteDFA, compile_regex
from .combine import choice_dfa, conjunction, is_counted, length_dfa
from .contextfree.cfg_grammar import GrammarError
from .contextfree.cfg_matcher import (
    BUILTIN_GRAMMARS,
    CFGConstraint,
    CFGMatcher,
    builtin_grammar,
    cfg,
    cfg_builtin,
)
from .errors import GrammarLimitError, RegexError
from .json.json_schema import (
    IgnoredKeyword,
    InvalidSchema,
    UnsupportedSchema,
    compile_json_schema,
    ignored_keywords,
    json_schema,
    json_schema_engine,
)
from .limits import DEFAULT_LIMITS, Limits
from .tokens.constraint import TokenConstraint, from_dfa, regex
from .tokens.matcher import Matcher
from .tokens.token_automaton import TokenAutomaton
from .tokens.vocab import Vocabulary

__all__ = [
    "BUILTIN_GRAMMARS",
    "ByteDFA",
    "CFGConstraint",
    "CFGMatcher",
    "GrammarError",
    "builtin_grammar",
    "choice_dfa",
    "conjunction",
    "from_dfa",
    "is_counted",
    "length_dfa",
    "cfg",
    "cfg_builtin",
    "DEFAULT_LIMITS",
    "GrammarLimitError",
    "IgnoredKeyword",
    "InvalidSchema",
    "Limits",
    "Matcher",
    "RegexError",
    "TokenAutomaton",
    "TokenConstraint",
    "UnsupportedSchema",
    "Vocabulary",
    "compile_json_schema",
    "compile_regex",
    "ignored_keywords",
    "json_schema",
    "json_schema_engine",
    "regex",
]
