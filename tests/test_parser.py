"""The .dec parser: valid programs build the right AST; malformed ones fail at the exact line and column."""

from __future__ import annotations

import pytest

from decc.dsl import ast, parse
from decc.errors import DeccError

HELLO = r"""
# a comment
model default
input event: str = "the Moon landing"
input n: int = 3

system "Be brief."
user "When was {event}? {{literal}}"
assistant {
  "The date: "
  gen date {
    where: regex(r"\d{4}-\d{2}-\d{2}")
    max_tokens: 16,
    stop: ["\n", "."]
    search: sample(temperature=0.7, top_k=40, top_p=0.9, seed=1)
  }
}
"""


def test_valid_chat_program() -> None:
    prog = parse(HELLO, "hello.dec")
    kinds = [type(i).__name__ for i in prog.items]
    assert kinds == ["ModelDecl", "InputDecl", "InputDecl", "Turn", "Turn", "Turn"]
    model, event, n, system, user, assistant = prog.items
    assert isinstance(model, ast.ModelDecl) and model.spec == "default"
    assert isinstance(event, ast.InputDecl) and event.name.value == "event"
    assert isinstance(n.default, ast.NumLit) and n.default.value == 3
    assert isinstance(user, ast.Turn) and user.role.value == "user"
    text = user.body[0]
    assert isinstance(text, ast.Text)
    assert [type(p).__name__ for p in text.parts] == ["TextPart", "Interp", "TextPart"]
    assert text.parts[2].text == "? {literal}"
    gen = assistant.body[1]
    assert isinstance(gen, ast.Gen) and gen.name.value == "date"
    assert [o.key.value for o in gen.options] == ["where", "max_tokens", "stop", "search"]
    where = gen.options[0].value
    assert isinstance(where, ast.Call) and where.args[0].value == r"\d{4}-\d{2}-\d{2}"
    stop = gen.options[2].value
    assert isinstance(stop, ast.ListLit) and [s.value for s in stop.items] == ["\n", "."]
    assert (gen.span.line, gen.span.col) == (11, 3)
    assert (gen.name.span.line, gen.name.span.col) == (11, 7)


def test_plain_program_and_strings() -> None:
    prog = parse('"Q: 2+2?\\nA:"\ngen answer\n"""multi\nline {answer}"""\n', "p.dec")
    first, gen, last = prog.items
    assert isinstance(first, ast.Text) and first.parts[0].text == "Q: 2+2?\nA:"
    assert isinstance(gen, ast.Gen) and gen.options == ()
    assert isinstance(last, ast.Text) and last.parts[0].text == "multi\nline "
    assert last.parts[1].name == "answer" and (last.parts[1].span.line, last.parts[1].span.col) == (4, 6)


def test_escapes_and_unicode() -> None:
    prog = parse('"tab\\there \\u00e9 \\x41 caf\u00e9 \\"q\\""', "u.dec")
    assert prog.items[0].parts[0].text == 'tab\there é A café "q"'


def test_regex_offsets_map_to_source() -> None:
    prog = parse('gen x { where: regex("a\\\\d(") }', "r.dec")
    lit = prog.items[0].options[0].value.args[0]
    assert lit.value == "a\\d("
    # the '(' is the 4th decoded char; in the source it sits after the escaped backslash
    assert lit.span_of(3, 4).col == 27


def test_empty_and_comment_only_files() -> None:
    assert parse("", "e.dec").items == ()
    assert parse("# nothing here\n\n", "e.dec").items == ()


ERRORS = [
    # (source, line, col, message fragment)
    ("gen x { max_tokens 16 }", 1, 20, "unexpected '16'; expected ':'"),
    ('user "abc\n', 1, 6, "unterminated string"),
    ("gen x {\n  max_tokens: 3\n", 2, 16, "unexpected end of file"),
    ("input : str", 1, 7, "unexpected ':'; expected a name"),
    ('\n\nuser "hi {name"', 3, 10, "unclosed '{' in text"),
    ('user "a}b"', 1, 8, "single '}' in text"),
    ('gen x {\n  stop: "\\d"\n}', 2, 10, "unknown escape '\\d' in string"),
    ("gen x { search: sample(temperature=1, 2) }", 1, 39, "positional argument after a keyword argument"),
    ("model default\n  @", 2, 3, "unexpected character '@'"),
    ("assistant { gen }", 1, 17, "unexpected '}'; expected a name"),
    ("gen x: {}", 1, 6, "unexpected ':'"),
    ("model", 1, 6, "unexpected end of file"),
    ('user "x {1abc} y"', 1, 9, "expected a variable name inside '{...}', found '1abc'"),
    ('user "\\xZZ"', 1, 7, "bad escape '\\xZZ': expected 2 hex digits"),
    ('gen x { where: regex(r"a" }', 1, 27, "unexpected '}'"),
    ("input x: str = \x00", 1, 16, "NUL character in source"),
]


@pytest.mark.parametrize(("src", "line", "col", "message"), ERRORS)
def test_syntax_errors_are_positioned(src: str, line: int, col: int, message: str) -> None:
    with pytest.raises(DeccError) as info:
        parse(src, "bad.dec")
    err = info.value
    assert err.span is not None
    assert (err.span.line, err.span.col) == (line, col), err.render()
    assert message in err.message
    rendered = err.render()
    assert rendered.startswith(f"bad.dec:{line}:{col}: error: ")
    assert "^" in rendered


def test_rendered_error_has_source_line_and_caret() -> None:
    with pytest.raises(DeccError) as info:
        parse("gen x {\n  max_tokens 16\n}", "f.dec")
    assert info.value.render().splitlines()[:3] == [
        "f.dec:2:14: error: unexpected '16'; expected ':'",
        "    max_tokens 16",
        "               ^^",
    ]
