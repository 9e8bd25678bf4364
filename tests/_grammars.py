"""Random Lark grammars for the recognizer's property tests (test_lazy_rtn.py, test_earley_native.py)."""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from decc.grammars import GrammarError
from decc.grammars.contextfree.cfg_grammar import parse_grammar
from decc.grammars.contextfree.rtn import RTN

ALPHABET = "ab(),"
LEXEMES = ("/a[ab]*/", "/\\(b{1,3}\\)/", "/[ab]{2}/")


@st.composite
def grammars(draw: st.DrawFn, lexemes: bool = False) -> str:
    """A random Lark grammar of 1-5 rules: literals, calls (any recursion, left recursion and unproductive
    rules too), ?, *, +, empty alternatives; with `lexemes`, a regex lexeme now and then."""
    n = draw(st.integers(1, 5))
    names = [f"r{i}" for i in range(n)]
    literal = st.text(alphabet=ALPHABET, min_size=1, max_size=2).map(lambda s: '"' + s + '"')
    parts = [literal, st.sampled_from(names), st.sampled_from(names)]
    if lexemes:
        parts.append(st.sampled_from(LEXEMES))
    item = st.tuples(st.one_of(*parts), st.sampled_from(["", "", "?", "*", "+"])).map("".join)
    seq = st.lists(item, min_size=0, max_size=3).map(" ".join)
    lines = ["start: r0"]
    for name in names:
        lines.append(f"{name}: " + " | ".join(draw(st.lists(seq, min_size=1, max_size=3))))
    return "\n".join(lines) + "\n"


def fresh_rtn(text: str) -> RTN:
    """A new RTN (not the cached one of `build_rtn`), so that each test sees its own growth."""
    try:
        return RTN(parse_grammar(text))
    except GrammarError:
        assume(False)
        raise
