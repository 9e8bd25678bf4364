"""Diagnostics about JSON schemas and grammar files point at what is wrong: the keyword in the schema as
written (inline or in its file), the line of a broken `.lark` file; `lenient=true` warns as decc does."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.cli import main
from decc.compiler.json_positions import key_spans
from decc.compiler.pipeline import compile_program
from decc.dsl import parse, parse_file
from decc.errors import DeccError, DeccWarning, Source, Span

UNSUPPORTED = ["uniqueItems", "unevaluatedItems", "unevaluatedProperties"]


def nested(keyword: str, path: list[str]) -> dict:
    """A schema with `keyword` (unsupported) at the end of a chain of properties named `path`."""
    s: dict = {"type": "array", keyword: True if keyword == "uniqueItems" else {"type": "null"}}
    for name in reversed(path):
        s = {"type": "object", "properties": {"pad": {"type": "integer"}, name: s}, "required": [name]}
    return s


names = st.lists(st.text("abcxyz", min_size=1, max_size=4), max_size=3)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(UNSUPPORTED), names, st.booleans(), st.integers(0, 2))
def test_the_caret_is_on_the_unsupported_keyword(
    keyword: str, path: list[str], raw: bool, indent: int
) -> None:
    """Wherever the keyword sits, in a raw literal or one with escapes, indented or not: the error's span
    is exactly the keyword's key as it appears in the source (found here by plain text search)."""
    text = json.dumps(nested(keyword, path), indent=indent or None)
    literal = f'r"""{text}"""' if raw else json.dumps(text)
    src = f"gen x {{ where: json({literal}) }}"
    key = f'"{keyword}"' if raw else json.dumps(f'"{keyword}"')[1:-1]
    assert src.count(key) == 1
    with pytest.raises(DeccError, match=f"'{keyword}' is not supported") as e:
        compile_program(parse(src, "k.dec"))
    span = e.value.span
    assert span is not None and (span.start, span.end) == (src.index(key), src.index(key) + len(key))


def test_a_schema_file_error_points_into_the_file(tmp_path: Path) -> None:
    schema = tmp_path / "s.json"
    schema.write_text('{\n  "type": "array",\n  "uniqueItems": true\n}\n')
    prog = tmp_path / "p.dec"
    prog.write_text('gen x {\n  where: json(file="s.json")\n}\n')
    with pytest.raises(DeccError) as e:
        compile_program(parse_file(prog))
    text = e.value.render()
    assert text.startswith(f"{schema}:3:3: error: unsupported JSON schema")
    assert '  "uniqueItems": true\n    ^^^^^^^^^^^^^' in text
    assert f"note: the schema file is named at {prog}:2:20" in text


def test_key_spans_agree_with_json_loads() -> None:
    """Each recorded span of a key holds that key, and of an array element, that element."""
    doc = {"a": [1, {"b~/c": "x,}]"}, [2, 3]], "é": {"": None}}
    for indent in (None, 2):
        text = json.dumps(doc, indent=indent, ensure_ascii=False)
        spans = key_spans(text)
        assert json.loads(text[slice(*spans["/a"])]) == "a"
        assert json.loads(text[slice(*spans["/a/1/b~0~1c"])]) == "b~/c"
        assert json.loads(text[slice(*spans["/a/1"])]) == {"b~/c": "x,}]"}
        assert json.loads(text[slice(*spans["/a/2/1"])]) == 3
        assert json.loads(text[slice(*spans["/é/"])]) == ""


LENIENT = (
    "gen x {\n"
    '  where: json(r"""{"type": "object", "properties": {"a": {"type": "array", "uniqueItems": true,\n'
    '                   "items": {"type": "string"}, "unevaluatedItems": false}}}""", lenient=true)\n'
    "  max_tokens: 8\n"
    "}\n"
)


@pytest.mark.parametrize(
    "command",
    [
        ["check", "--model-free"],
        ["compile", "--emit", "opt"],
        pytest.param(["run", "--json"], marks=pytest.mark.model),
    ],
    ids=["check", "compile", "run"],
)
def test_lenient_warns_positioned_once_per_keyword(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "l.dec"
    f.write_text(LENIENT)
    for _ in range(2):  # a second compile in the same process warns again (no cache swallows it)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # no Python UserWarning escapes
            assert main([command[0], str(f), *command[1:]]) == 0
        err = capsys.readouterr().err
        assert err.count("warning:") == 2, err
        assert f"{f}:2:76: warning: JSON Schema keyword 'uniqueItems' is not supported over items" in err
        assert f"{f}:3:49: warning: JSON Schema keyword 'unevaluatedItems' is not supported; ignored" in err
        assert "\n" + " " * (2 + 48) + "^" * 18 + "\n" in err  # under "unevaluatedItems" (column 49)
        assert "UserWarning" not in err and "json_schema.py" not in err


def test_lenient_warnings_are_on_the_module() -> None:
    module = compile_program(parse(LENIENT, "l.dec"))
    found = [(w.span.line, w.span.col) for w in module.warnings if w.span is not None]
    assert sorted(found) == [(2, 76), (3, 49)] and len(module.warnings) == 2


def test_a_warning_renders_like_an_error() -> None:
    src = Source("w.dec", 'gen x { stop: "a" }\n')
    span = Span.of(src, 14, 17)
    w = DeccWarning("stop string 'a' is redundant", span, hints=("remove it",), notes=("why",))
    e = DeccError("stop string 'a' is redundant", span, hints=["remove it"], notes=["why"])
    assert w.render() == e.render().replace(": error: ", ": warning: ", 1)
    assert w.render().startswith("w.dec:1:15: warning: ")


@pytest.mark.parametrize(
    ("lark", "line", "col", "message"),
    [
        ('start: item+\nitem: "a"\nbad: : "x"\n', 3, 6, "expected a value"),
        ('start: "a" ]\n', 1, 12, "unexpected ']' here: expected the end of the line"),
        ('start: x\nx: "a" ->\n', 2, 10, "unexpected end of line here: expected a rule name"),
        ('start: "a" (\n', 1, 13, "unclosed parenthesis"),
    ],
)
def test_a_broken_lark_file_is_reported_once_in_words(
    lark: str, line: int, col: int, message: str, tmp_path: Path
) -> None:
    g = tmp_path / "g.lark"
    g.write_text(lark)
    prog = tmp_path / "p.dec"
    prog.write_text('gen x {\n  where: grammar(file="g.lark")\n}\n')
    with pytest.raises(DeccError) as e:
        compile_program(parse_file(prog))
    text = e.value.render()
    assert text.splitlines()[0] == f"{g}:{line}:{col}: error: invalid grammar: {message}"
    assert text.count("invalid grammar") == 1 and "Token(" not in text
    assert f"note: the grammar file is named at {prog}:2:23" in text


def test_a_bad_terminal_regex_in_a_lark_file_is_said_in_words(tmp_path: Path) -> None:
    (tmp_path / "g.lark").write_text("start: A\nA: /[/\n")
    prog = tmp_path / "p.dec"
    prog.write_text('gen x {\n  where: grammar(file="g.lark")\n}\n')
    with pytest.raises(DeccError) as e:
        compile_program(parse_file(prog))
    assert (
        e.value.message
        == "invalid grammar: invalid regex in a terminal: unterminated character set at position 1"
    )
