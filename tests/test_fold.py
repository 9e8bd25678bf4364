"""The fold pass (compiler/passes/fold.py): text joined, always-true cases inlined, nothing else touched."""

from __future__ import annotations

from decc.compiler.pipeline import OPTIMIZATIONS, compile_program
from decc.compiler.printer import print_ir
from decc.dsl import parse

PROGRAM = """gen ans { where: choice("yes", "no") }
"A" "" "B{ans}" "C"
if ans != "maybe" {
  " fine"
  gen more { max_tokens: 3 }
}
if ans == "yes" {
  " yes"
} elif ans not in ["no"] {
  " odd"
}
gen free { max_tokens: 2 }
if free != "x" {
  " kept"
}
"""


def ir_text(disabled: frozenset[str] = frozenset()) -> str:
    return print_ir(compile_program(parse(PROGRAM, "t.dec"), disabled=disabled))


def test_fold_joins_text_and_inlines_cases_that_always_hold() -> None:
    folded = ir_text(frozenset({"speculate"}))
    plain = ir_text(frozenset(OPTIMIZATIONS))
    assert 'emit "AB" {ans:gen} "C fine"' in folded  # the inlined case's text joins too
    assert 'emit "A"' in plain and 'emit "B" {ans:gen}' in plain
    assert 'if {ans:gen} != "maybe"' in plain and 'if {ans:gen} != "maybe"' not in folded
    assert "\n  gen more" in folded  # the body, now unconditional (no longer indented under an if)
    # "no" is a value ans can take: that case depends on the model and stays.
    assert 'elif {ans:gen} not in ["no"]' in folded
    assert 'if {free:gen} != "x"' in folded  # an unconstrained value may be anything
    assert folded.count("  if ") == plain.count("  if ") - 1
