"""Every static check of `decc check`, both sides: the failing program gets exactly this diagnostic, and
its corrected twin passes. The texts are exact, so a changed message, position, caret or hint fails here."""

from __future__ import annotations

import pytest

from decc.api import Program
from decc.compiler.pipeline import compile_program
from decc.dsl import parse
from decc.errors import DeccError, DeccWarning


def check(src: str) -> tuple[DeccWarning, ...]:
    """All the checks `decc check` runs, vocabulary ones included (they need the tokenizer, not weights);
    the warnings they found."""
    tree = parse(src, "c.dec")
    program = Program(tree, compile_program(tree))
    program.plan()
    return program.warnings


CHECKS = [
    (
        "unknown_name",
        'gen x { where: regx(r"a") }',
        'gen x { where: regex(r"a") }',
        r"""
c.dec:1:16: error: unknown constraint 'regx'
  gen x { where: regx(r"a") }
                 ^^^^
  hint: did you mean 'regex'?
""",
    ),
    (
        "wrong_type",
        'gen x { max_tokens: "3" }',
        "gen x { max_tokens: 3 }",
        r"""
c.dec:1:21: error: max_tokens must be an integer, not a string
  gen x { max_tokens: "3" }
                      ^^^
  hint: write a whole number, e.g. 16
""",
    ),
    (
        "wrong_value",
        "gen x { search: sample(top_p=1.5) }",
        "gen x { search: sample(top_p=0.5) }",
        r"""
c.dec:1:30: error: top_p must be in (0, 1], not 1.5
  gen x { search: sample(top_p=1.5) }
                               ^^^
  hint: top_p=1 turns it off
""",
    ),
    (
        "invalid_regex",
        'gen x { where: regex(r"[0-9]+(\\.[0-9]+") }',
        'gen x { where: regex(r"[0-9]+(\\.[0-9]+)?") }',
        r"""
c.dec:1:30: error: invalid regex: unbalanced parenthesis: '(' is never closed
  gen x { where: regex(r"[0-9]+(\.[0-9]+") }
                               ^
  hint: close the group with ')', or escape a literal parenthesis: \(
""",
    ),
    (
        "meta_schema",
        'gen x { where: json(r"""{"type": "object", "properties": {"a": {"minLength": -1}}}""") }',
        'gen x { where: json(r"""{"type": "object", "properties": {"a": {"minLength": 1}}}""") }',
        r'''
c.dec:1:65: error: invalid JSON schema at '/properties/a/minLength': -1 is less than the minimum of 0
  gen x { where: json(r"""{"type": "object", "properties": {"a": {"minLength": -1}}}""") }
                                                                  ^^^^^^^^^^^
  hint: schemas are checked against the JSON Schema meta-schema (draft 2020-12) before use
''',
    ),
    (
        "unsupported_keyword",
        'gen x { where: json(r"""{"type": "object", "properties": {"a": {"type": "array", "uniqueItems": true}}}""") }',
        'gen x { where: json(r"""{"type": "object", "properties": {"a": {"type": "array", "maxItems": 3}}}""") }',
        r'''
c.dec:1:82: error: unsupported JSON schema: JSON Schema keyword 'uniqueItems' is not supported over items with more than 12 possible values (an enum, booleans, a small integer range) (at '/properties/a/uniqueItems')
  gen x { where: json(r"""{"type": "object", "properties": {"a": {"type": "array", "uniqueItems": true}}}""") }
                                                                                   ^^^^^^^^^^^^^
  hint: json(..., lenient=true) ignores unsupported keywords with a warning
''',
    ),
    (
        "empty_constraint",
        "gen x { where: int(min=5, max=1) }",
        "gen x { where: int(min=1, max=5) }",
        r"""
c.dec:1:16: error: int(...) with min 5 above max 1 matches nothing
  gen x { where: int(min=5, max=1) }
                 ^^^^^^^^^^^^^^^^^
  hint: swap min and max
""",
    ),
    (
        "empty_conjunction",
        'gen x { where: regex(r"[a-z]+") & int(min=0, max=9) }',
        'gen x { where: regex(r"[0-9]+") & int(min=0, max=9) }',
        r"""
c.dec:1:16: error: this conjunction matches nothing: no text satisfies all its parts at once
  gen x { where: regex(r"[a-z]+") & int(min=0, max=9) }
                 ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  note: part: c.dec:1:22
  note: part: c.dec:1:35
  hint: each part alone matches some text; drop or loosen the part that excludes the others
""",
    ),
    (
        "beam_stop_entropy",
        "gen x { search: beam(width=2), stop_entropy: above(2.5) }",
        "gen x { search: best_of(n=2), stop_entropy: above(2.5) }",
        r"""
c.dec:1:32: error: stop_entropy is not supported with beam(...): beams are compared token by token and cannot stop one at a time
  gen x { search: beam(width=2), stop_entropy: above(2.5) }
                                 ^^^^^^^^^^^^
  note: the search policy is at c.dec:1:17
  hint: use best_of(...), first_finish(...) or smc(...), or remove stop_entropy
""",
    ),
    (
        "stop_every",
        'gen x { where: regex(r"[a-z]+\\."), stop: "." }',
        'gen x { where: regex(r"[a-z]+\\.?"), stop: "." }',
        r"""
c.dec:1:42: error: stop string "." would cut every output of 'x': each valid output contains it
  gen x { where: regex(r"[a-z]+\."), stop: "." }
                                           ^^^
  note: the constraint of 'x' is at c.dec:1:22
  hint: remove it, or change the constraint so the value ends before it
""",
    ),
    (
        "unreachable_case",
        'gen x { where: choice("yes", "no") }\nif x == "yess" { "!" }',
        'gen x { where: choice("yes", "no") }\nif x == "yes" { "!" }',
        r"""
c.dec:2:4: error: this branch can never run
  if x == "yess" { "!" }
     ^^^^^^^^^^^
  note: 'x' can never be "yess": its constraint is at c.dec:1:16
  hint: did you mean 'yes'?
""",
    ),
    (
        "unreachable_taken",
        'gen x { where: choice("yes", "no") }\nif x in ["yes", "no"] { "!" } elif x == "no" { "?" }',
        'gen x { where: choice("yes", "no") }\nif x == "yes" { "!" } elif x == "no" { "?" }',
        r"""
c.dec:2:36: error: this branch can never run
  if x in ["yes", "no"] { "!" } elif x == "no" { "?" }
                                     ^^^^^^^^^
  note: earlier cases already take every value of 'x' this one could match
  hint: remove this case: the cases above it catch these values first
""",
    ),
    (
        "unreachable_else",
        'gen x { where: choice("yes", "no") }\nif x != "maybe" { "!" } else { "?" }',
        'gen x { where: choice("yes", "no") }\nif x != "no" { "!" } else { "?" }',
        r"""
c.dec:2:30: error: this 'else' can never run: the cases above take every value
  if x != "maybe" { "!" } else { "?" }
                               ^^^^^^^
  note: 'x' reaches an earlier case whatever its value
  hint: remove the 'else', or turn the last case into it
""",
    ),
    (
        "max_tokens_short",
        'gen x { where: regex(r"[0-9]{12}"), max_tokens: 4 }',
        'gen x { where: regex(r"[0-9]{12}"), max_tokens: 12 }',
        r"""
c.dec:1:49: error: max_tokens is 4, but every valid output of 'x' takes at least 12 tokens
  gen x { where: regex(r"[0-9]{12}"), max_tokens: 4 }
                                                  ^
  hint: raise max_tokens to at least 12
""",
    ),
    (
        "let_before",
        'let a = b\nlet b = regex(r"x")',
        'let b = regex(r"x")\nlet a = b',
        r"""
c.dec:1:9: error: 'b' is used before it is defined
  let a = b
          ^
  note: 'b' is defined at c.dec:2:5
  hint: move the 'let' above its first use
""",
    ),
    (
        "let_twice",
        "let a = 1\nlet a = 2",
        "let a = 1\nlet b = 2",
        r"""
c.dec:2:5: error: 'a' is already defined
  let a = 2
      ^
  note: first defined at c.dec:1:5
  hint: rename one of them (an import can rename: from "x.dec" import a as b)
""",
    ),
    (
        "let_clash",
        'let a = regex(r"x")\ngen a { where: a }',
        'let a = regex(r"x")\ngen b { where: a }',
        r"""
c.dec:2:5: error: 'a' names both a definition and a generated variable
  gen a { where: a }
      ^
  note: 'a' is defined at c.dec:1:5
  hint: rename one of them
""",
    ),
    (
        "let_not_text",
        'let a = regex(r"x")\n"{a}"',
        'let a = "x"\n"{a}"',
        r"""
c.dec:2:2: error: 'a' is a call, not text
  "{a}"
   ^^^
  note: 'a' is defined at c.dec:1:5
  hint: only a string definition can be inserted into text
""",
    ),
    (
        "branch_var_scope",
        'gen x { where: choice("a", "b") }\nif x == "a" { gen y }\n"{y}"',
        'gen x { where: choice("a", "b") }\nif x == "a" { gen y "{y}" }',
        r"""
c.dec:3:2: error: 'y' may not exist here: it is generated inside an 'if' branch
  "{y}"
   ^^^
  note: 'y' is generated at c.dec:2:19
  hint: use it inside that branch, or generate it before the 'if'
""",
    ),
    (
        "test_list",
        'gen x\nif x in "a" { "!" }',
        'gen x\nif x in ["a"] { "!" }',
        r"""
c.dec:2:9: error: 'in' tests against a list, not a string
  if x in "a" { "!" }
          ^^^
  hint: write x in ["a", "b"]
""",
    ),
    (
        "unknown_definition",
        'let yesno = choice("yes", "no")\ngen a { where: yesnoo }',
        'let yesno = choice("yes", "no")\ngen a { where: yesno }',
        r"""
c.dec:2:16: error: unknown name 'yesnoo'
  gen a { where: yesnoo }
                 ^^^^^^
  hint: did you mean 'yesno'?
""",
    ),
]


@pytest.mark.model
@pytest.mark.parametrize(("name", "bad", "good", "expected"), CHECKS, ids=[c[0] for c in CHECKS])
def test_check_fails_with_exact_diagnostic(name: str, bad: str, good: str, expected: str) -> None:
    with pytest.raises(DeccError) as info:
        check(bad)
    assert info.value.render() == expected.strip("\n")


@pytest.mark.model
@pytest.mark.parametrize(("name", "bad", "good", "expected"), CHECKS, ids=[c[0] for c in CHECKS])
def test_corrected_program_passes(name: str, bad: str, good: str, expected: str) -> None:
    check(good)


WARNINGS = [
    (
        "stop_never",
        'gen x { where: choice("yes", "no"), stop: ["\\n"] }',
        r"""
c.dec:1:44: warning: stop string "\n" can never occur: no output of 'x' contains it
  gen x { where: choice("yes", "no"), stop: ["\n"] }
                                             ^^^^
  note: the constraint of 'x' is at c.dec:1:16
  hint: remove it: the constraint already decides where the value ends
""",
    ),
]


@pytest.mark.model
@pytest.mark.parametrize(("name", "src", "expected"), WARNINGS, ids=[w[0] for w in WARNINGS])
def test_harmless_mistakes_warn_and_pass(name: str, src: str, expected: str) -> None:
    """A harmless mistake (a stop string that can never occur) is a positioned warning, not an error."""
    found = check(src)
    assert [w.render() for w in found] == [expected.strip("\n")]
