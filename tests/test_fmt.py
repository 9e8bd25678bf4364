"""`decc fmt`: canonical output, every comment kept, idempotent, meaning unchanged, and a CLI that never
writes a file it cannot parse or one that is already formatted."""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from io import StringIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.cli import main
from decc.dsl import ast, parse, read_source
from decc.dsl.format import ast_shape, format_source
from decc.dsl.parser import comments
from decc.errors import DeccError, InternalError

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = sorted([*(ROOT / "examples").glob("*.dec"), *(ROOT / "tests" / "golden").glob("*.dec")])


def fmt(text: str) -> str:
    return format_source(text)


def comment_texts(text: str) -> Counter[str]:
    return Counter(t.rstrip() for _, t in comments(text))


# --- exact output


@pytest.mark.parametrize(
    ("messy", "canonical"),
    [
        pytest.param(
            '\n\nmodel   default\ninput  x:str="a"\ninput n : int=3\ninput y\n',
            'model default\ninput x: str = "a"\ninput n: int = 3\ninput y\n',
            id="declarations",
        ),
        pytest.param(
            'import   "a.dec"\nfrom "b.dec" import  p,q  as  r ,\nlet   k=[ "a",\n"b", ]\nlet z = f( 1 , k = true )',
            'import "a.dec"\nfrom "b.dec" import p, q as r\nlet k = ["a", "b"]\nlet z = f(1, k=true)\n',
            id="imports-and-lets",
        ),
        pytest.param(
            'system   "s"\nuser{"u"}\nassistant {gen x{max_tokens:3,stop:["\\n"]}\ngen y {}\ngen z}',
            'system "s"\nuser {\n  "u"\n}\nassistant {\n  gen x { max_tokens: 3, stop: ["\\n"] }\n'
            "  gen y\n  gen z\n}\n",
            id="turns-and-gens",
        ),
        pytest.param(
            'assistant { gen  x {  where : regex(r"a+")  &length( max=3 ) , } }',
            'assistant {\n  gen x { where: regex(r"a+") & length(max=3) }\n}\n',
            id="one-option-gen-stays-on-one-line",
        ),
        pytest.param(
            'input c\nassistant{if c=="a"{"A"}elif c not   in ["b","c"]{gen x}else{}}\nif c != "d" {}',
            'input c\nassistant {\n  if c == "a" {\n    "A"\n  } elif c not in ["b", "c"] {\n    gen x\n'
            '  } else {}\n}\nif c != "d" {}\n',
            id="branches",
        ),
        pytest.param(
            "let a = 1\n\n\n\nlet b = 2\nlet c = 3\n\n\n",
            "let a = 1\n\nlet b = 2\nlet c = 3\n",
            id="blank-lines-collapse",
        ),
        pytest.param(
            'let s = [r"\\d#", """a\n  "b" # c\n""", "\\u00e9\\t", r"""x\\"""", .5, -1e3]',
            'let s = [r"\\d#", """a\n  "b" # c\n""", "\\u00e9\\t", r"""x\\"""", .5, -1e3]\n',
            id="literals-verbatim",
        ),
        pytest.param(
            'gen x{max_tokens:3,eos:false,min_tokens:1,stop:"a"}',
            'gen x {\n  max_tokens: 3\n  eos: false\n  min_tokens: 1\n  stop: "a"\n}\n',
            id="four-options-take-the-block-form",
        ),
        pytest.param("", "", id="empty"),
        pytest.param("\n\n  \n", "", id="only-whitespace"),
    ],
)
def test_canonical_output(messy: str, canonical: str) -> None:
    assert fmt(messy) == canonical
    assert fmt(canonical) == canonical


def test_long_lists_and_calls_wrap_one_element_per_line() -> None:
    items = ", ".join(f'"item number {i:02d}"' for i in range(8))
    out = fmt(f"assistant {{ gen x {{ where: choice({items}), stop: [{items}] }} }}")
    expected_items = "".join(f'      "item number {i:02d}",\n' for i in range(8))
    assert out == (
        "assistant {\n  gen x {\n"
        f"    where: choice(\n{expected_items}    )\n"
        f"    stop: [\n{expected_items}    ]\n"
        "  }\n}\n"
    )
    assert all(len(line) <= 100 for line in out.splitlines())


def test_a_list_that_fits_in_100_columns_stays_on_one_line() -> None:
    fits = "let x = [" + ", ".join(['"' + "a" * 19 + '"'] * 4) + "]"
    assert len(fits) == 100 and fmt(fits) == fits + "\n"
    too_long = fits.replace('"a', '"aa', 1)
    assert len(too_long) == 101 and fmt(too_long).count("\n") == 6


# --- comments


def test_comments_own_line_trailing_end_of_block_and_end_of_file() -> None:
    src = (
        "# head\n"
        "model default   # which model\n"
        "assistant {  # the reply\n"
        "  # before x\n"
        "  gen x {\n"
        '    max_tokens: 3 # three\n    stop: ["\\n"],  # comma first\n'
        "    # last option comment\n"
        "  }\n"
        "  # end of block\n"
        "}\n"
        "\n"
        "# tail 1\n"
        "# tail 2"
    )
    assert fmt(src) == (
        "# head\n"
        "model default  # which model\n"
        "assistant {  # the reply\n"
        "  # before x\n"
        "  gen x {\n"
        '    max_tokens: 3  # three\n    stop: ["\\n"]  # comma first\n'
        "    # last option comment\n"
        "  }\n"
        "  # end of block\n"
        "}\n"
        "\n"
        "# tail 1\n"
        "# tail 2\n"
    )


def test_hash_inside_strings_is_not_a_comment_and_quotes_inside_comments_are_kept() -> None:
    src = (
        'let a = "x # y"  # a "quoted" comment with \'quotes\' and """ too\n'
        'let b = r"#[0-9]+"\n'
        'let c = """\n# not a comment\n"""\n'
        'let d = r"""# nor this"""  # but this is\n'
    )
    out = fmt(src)
    assert out == src
    assert comment_texts(out) == Counter(
        ['# a "quoted" comment with \'quotes\' and """ too', "# but this is"]
    )


def test_comments_inside_expressions_and_between_keywords_are_moved_never_dropped() -> None:
    src = (
        "model # m\n default\n"
        "let x = [  # open\n"
        '  "a", # after a\n'
        "  # before b\n"
        '  "b"\n'
        "  # end\n"
        "]\n"
        "let y = f # before paren\n(1)\n"
        "input c\n"
        'assistant { if c == "a" { "A" } # after if-block\n else # before else brace\n { "B" } }\n'
    )
    out = fmt(src)
    assert comment_texts(out) == comment_texts(src)
    assert out == (
        "# m\n"
        "model default\n"
        "let x = [  # open\n"
        '  "a",  # after a\n'
        "  # before b\n"
        '  "b",\n'
        "  # end\n"
        "]\n"
        "# before paren\n"
        "let y = f(1)\n"
        "input c\n"
        "assistant {\n"
        '  if c == "a" {\n'
        '    "A"\n'
        "    # after if-block\n"
        "    # before else brace\n"
        "  } else {\n"
        '    "B"\n'
        "  }\n"
        "}\n"
    )
    assert fmt(out) == out


def test_crlf_and_trailing_whitespace_in_comments() -> None:
    src = "# hello   \r\nlet a = 1  # one\t\r\n\r\n\r\nlet b = 2\r\n"
    assert fmt(src) == "# hello\nlet a = 1  # one\n\nlet b = 2\n"


# --- meaning kept, idempotent


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_every_example_keeps_its_meaning_and_comments_and_formats_once(path: Path) -> None:
    source = read_source(path)
    out = format_source(source)
    assert ast_shape(parse(out)) == ast_shape(parse(source))
    assert comment_texts(out) == comment_texts(source.text)
    assert format_source(out) == out


def test_shape_ignores_positions_but_not_content() -> None:
    assert ast_shape(parse("let a = 1")) == ast_shape(parse("\n\nlet   a =\n 1"))
    assert ast_shape(parse("let a = 1")) != ast_shape(parse("let a = 2"))
    assert ast_shape(parse('let a = "x"')) != ast_shape(parse('let a = r"x"'))


# Programs built from random tokens, with random whitespace and comments between every two tokens.
STRINGS = [
    '"a"',
    '"x # y"',
    '"q\\"uote"',
    '"{v}"',
    'r"\\d#"',
    '"""multi\nline # no"""',
    'r"""raw "" \\\n"""',
    '"' + "w" * 30 + '"',
    '"' + "z" * 70 + '"',
]
SEPARATORS = [" ", "\n", "\n\n  ", "\t", " # c\n", "\n  # own 'q\"\n\n", "  #\n"]


@st.composite
def tokens_of_expr(draw: st.DrawFn, depth: int = 0) -> list[str]:
    kind = draw(
        st.sampled_from(["str", "num", "name", "bool"] + (["list", "call", "conj"] if depth < 3 else []))
    )
    if kind == "str":
        return [draw(st.sampled_from(STRINGS))]
    if kind == "num":
        return [draw(st.sampled_from(["1", "-2", "3.5", ".5", "1e3"]))]
    if kind == "name":
        return [draw(st.sampled_from(["v", "greedy", "w2"]))]
    if kind == "bool":
        return [draw(st.sampled_from(["true", "false"]))]
    if kind == "conj":
        parts = draw(st.lists(tokens_of_expr(depth + 1), min_size=2, max_size=3))
        return [t for i, p in enumerate(parts) for t in ([] if i == 0 else ["&"]) + p]
    items = draw(st.lists(tokens_of_expr(depth + 1), max_size=5))
    out = [
        "[" if kind == "list" else draw(st.sampled_from(["f", "regex", "choice"])),
        *([] if kind == "list" else ["("]),
    ]
    keywords_from = draw(st.integers(0, len(items))) if kind == "call" else len(items)
    for i, item in enumerate(items):
        out += ([","] if i else []) + ([f"k{i}", "="] if i >= keywords_from else []) + item
    if items and draw(st.booleans()):
        out.append(",")
    out.append("]" if kind == "list" else ")")
    return out


@st.composite
def tokens_of_body(draw: st.DrawFn, depth: int = 0) -> list[str]:
    out: list[str] = []
    for kind in draw(
        st.lists(st.sampled_from(["text", "gen", "if"] if depth < 2 else ["text", "gen"]), max_size=4)
    ):
        if kind == "text":
            out.append(draw(st.sampled_from(STRINGS)))
        elif kind == "gen":
            out += ["gen", "g"]
            if draw(st.booleans()):
                out.append("{")
                for key in draw(st.lists(st.sampled_from(["where", "stop", "max_tokens"]), max_size=3)):
                    out += [key, ":", *draw(tokens_of_expr(1))] + ([","] if draw(st.booleans()) else [])
                out.append("}")
        else:
            out += ["if", "v", draw(st.sampled_from(["==", "!=", "in", "not in"])), *draw(tokens_of_expr(2))]
            out += ["{", *draw(tokens_of_body(depth + 1)), "}"]
            for _ in range(draw(st.integers(0, 2))):
                out += [
                    "elif",
                    "v",
                    "==",
                    draw(st.sampled_from(STRINGS)),
                    "{",
                    *draw(tokens_of_body(depth + 1)),
                    "}",
                ]
            if draw(st.booleans()):
                out += ["else", "{", *draw(tokens_of_body(depth + 1)), "}"]
    return out


@st.composite
def programs(draw: st.DrawFn) -> str:
    toks: list[str] = []
    for kind in draw(
        st.lists(st.sampled_from(["model", "input", "import", "let", "turn", "body"]), max_size=6)
    ):
        if kind == "model":
            toks += ["model", draw(st.sampled_from(["default", '"some/model"']))]
        elif kind == "input":
            toks += ["input", "v"] + draw(st.sampled_from([[], [":", "str"]]))
            toks += draw(st.sampled_from([[], ["=", '"d # e"'], ["=", "3"]]))
        elif kind == "import":
            toks += draw(
                st.sampled_from(
                    [["import", '"l.dec"'], ["from", '"l.dec"', "import", "a", ",", "b", "as", "c"]]
                )
            )
        elif kind == "let":
            toks += ["let", "w2", "=", *draw(tokens_of_expr())]
        elif kind == "turn":
            role = draw(st.sampled_from(["system", "user", "assistant"]))
            if draw(st.booleans()):
                toks += [role, draw(st.sampled_from(STRINGS))]
            else:
                toks += [role, "{", *draw(tokens_of_body()), "}"]
        else:
            toks += draw(tokens_of_body())
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(toks) + 1, max_size=len(toks) + 1))
    return seps[0].lstrip("\n ") + "".join(t + s for t, s in zip(toks, seps[1:], strict=True))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_formatting_random_programs_is_idempotent_and_keeps_meaning_and_comments(src: str) -> None:
    out = fmt(src)  # itself refuses output whose AST or comments differ
    assert ast_shape(parse(out)) == ast_shape(parse(src))
    assert comment_texts(out) == comment_texts(src)
    assert fmt(out) == out
    assert out == "" or (out.endswith("\n") and not out.endswith("\n\n") and not out.startswith("\n"))
    assert not re.search(r"[ \t]+\n", _outside_long_strings(out))


def _outside_long_strings(text: str) -> str:
    return re.sub(r'r?"""(?:[^"\\]|\\.|"(?!""))*"""', '""', text, flags=re.S)


# --- refusing to lose anything


def test_syntax_errors_are_positioned_decc_errors() -> None:
    with pytest.raises(DeccError) as e:
        fmt("gen x {\n  max_tokens 3\n}\n")
    assert (e.value.span.line, e.value.span.col) == (2, 14)
    with pytest.raises(DeccError):
        comments("let = 1")


def test_an_unknown_node_is_an_internal_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import dataclass

    from decc.dsl import format as fmt_module

    @dataclass(frozen=True)
    class Loop:
        span: object

    real = parse("let a = 1")

    def fake_parse(source: object) -> tuple[ast.Program, list[tuple[int, str]]]:
        return ast.Program((Loop(real.items[0].span),), real.span, real.source), []  # type: ignore[arg-type]

    monkeypatch.setattr(fmt_module, "parse_with_comments", fake_parse)
    with pytest.raises(InternalError, match="Loop"):
        format_source("let a = 1")


def test_output_that_loses_a_comment_or_changes_meaning_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from decc.dsl import format as fmt_module

    monkeypatch.setattr(fmt_module._Printer, "program", lambda self: "let a = 1\n")
    with pytest.raises(InternalError, match="comments"):
        format_source("let a = 1  # keep me")
    with pytest.raises(InternalError, match="meaning"):
        format_source("let a = 2")
    monkeypatch.setattr(fmt_module._Printer, "program", lambda self: "let a = \n")
    with pytest.raises(InternalError, match="does not parse"):
        format_source("let a = 1")


# --- the command line


MESSY = 'assistant{gen x{max_tokens:3,stop:["\\n"]}}  # reply\n'
TIDY = 'assistant {\n  gen x { max_tokens: 3, stop: ["\\n"] }\n}  # reply\n'


def test_fmt_rewrites_in_place_and_check_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messy, tidy = tmp_path / "messy.dec", tmp_path / "tidy.dec"
    messy.write_text(MESSY)
    tidy.write_text(TIDY)
    assert main(["fmt", "--check", str(messy), str(tidy)]) == 1
    err = capsys.readouterr().err
    assert f"would reformat {messy}" in err and str(tidy) not in err
    assert messy.read_text() == MESSY  # --check writes nothing
    assert main(["fmt", "--diff", str(messy)]) == 0
    assert "+  gen x {" in capsys.readouterr().out
    assert messy.read_text() == MESSY  # nor does --diff
    assert main(["fmt", str(messy), str(tidy)]) == 0
    assert messy.read_text() == TIDY
    assert f"reformatted {messy}" in capsys.readouterr().err
    assert main(["fmt", "--check", str(messy), str(tidy)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["messy.dec", "tidy.dec"]  # no temporary file left


def test_fmt_never_touches_a_formatted_file(tmp_path: Path) -> None:
    tidy = tmp_path / "tidy.dec"
    tidy.write_text(TIDY)
    os.utime(tidy, (1_000_000_000, 1_000_000_000))
    assert main(["fmt", str(tidy)]) == 0
    assert tidy.stat().st_mtime == 1_000_000_000


def test_fmt_keeps_file_permissions(tmp_path: Path) -> None:
    f = tmp_path / "x.dec"
    f.write_text(MESSY)
    f.chmod(0o640)
    assert main(["fmt", str(f)]) == 0
    assert f.read_text() == TIDY and (f.stat().st_mode & 0o777) == 0o640


@pytest.mark.parametrize(
    "content",
    [b"gen x {\n  max_tokens 3\n}\n", b'user "caf\xe9"\n', b'let a = "open\n', b"\x00\x01binary"],
)
def test_a_file_that_does_not_parse_is_left_byte_identical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    bad, good = tmp_path / "bad.dec", tmp_path / "good.dec"
    bad.write_bytes(content)
    good.write_text(MESSY)
    assert main(["fmt", str(bad), str(good)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:" in err and "error:" in err and "Traceback" not in err
    assert bad.read_bytes() == content
    assert good.read_text() == TIDY  # the other files are still formatted


def test_fmt_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fmt", "does/not/exist.dec"]) == 2
    assert "cannot read 'does/not/exist.dec'" in capsys.readouterr().err


def test_fmt_stdin_to_stdout(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", StringIO(MESSY))
    assert main(["fmt", "-"]) == 0
    assert capsys.readouterr().out == TIDY
    monkeypatch.setattr(sys, "stdin", StringIO(MESSY))
    assert main(["fmt", "--check", "-"]) == 1
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.name for p in PROGRAMS])
def test_examples_and_golden_programs_are_formatted(path: Path) -> None:
    """What we show users is what `decc fmt` writes (`decc fmt examples tests/golden` fixes a failure)."""
    assert format_source(path.read_text()) == path.read_text()
