"""Input no one should write still gets a clean diagnostic (or runs): garbage bytes, an empty file, the wrong
encoding, a 10,000-line program, absurd nesting. Never a traceback, never exit 70, the file untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.cli import main


def check(tmp_path: Path, data: bytes, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str]:
    f = tmp_path / "p.dec"
    f.write_bytes(data)
    code = main(["check", "--model-free", *flags, str(f)])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    assert f.read_bytes() == data  # nothing the user wrote is touched
    return code, err.replace(str(f), "p.dec")


@pytest.mark.parametrize(
    ("data", "first_line"),
    [
        (bytes(range(256)) * 4, "p.dec:2:118: error: invalid UTF-8 byte 0x80: .dec files must be UTF-8"),
        (
            b"\x89PNG\r\n\x1a\n\x01\x02garbage",
            "p.dec:1:1: error: invalid UTF-8 byte 0x89: .dec files must be UTF-8",
        ),
        (b'user "caf\xe9"\n', "p.dec:1:10: error: invalid UTF-8 byte 0xe9: .dec files must be UTF-8"),
        (
            'gen x\n"été"\n'.encode("utf-16"),
            "decc: error: 'p.dec' is encoded as UTF-16: .dec files must be UTF-8",
        ),
        (b"}}}{{{ ::: gen", "p.dec:1:1: error: unexpected '}'"),
        (
            b'gen x {\n  where: regex(r"a")\n',
            "p.dec:2:21: error: unexpected end of file; expected ',', '}' or a name",
        ),
        (b'"unterminated\ngen x', "p.dec:1:1: error: unterminated string"),
    ],
)
def test_garbage_gets_a_positioned_diagnostic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, first_line: str
) -> None:
    code, err = check(tmp_path, data, capsys)
    assert code == 2
    assert err.splitlines()[0].startswith(first_line), err


@pytest.mark.parametrize(
    "data", [b"", b"\n\n   \n", b"# only a comment\n", "\ufeff# a BOM is fine\n".encode()]
)
def test_empty_programs_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes) -> None:
    assert check(tmp_path, data, capsys)[0] == 0


def _long_program(last: str) -> bytes:
    lines = ["# 10,000 lines: text, definitions, inputs, comments"]
    i = 0
    while len(lines) < 9_999:
        lines += [
            f'"line {i}\\n"  # {i}',
            f'let d{i} = regex(r"[0-9]{{1,3}}")',
            f"input x{i}: int = {i}",
            f'"{{x{i}}} "',
        ]
        i += 1
    return ("\n".join(lines[:9_999]) + "\n" + last + "\n").encode()


def test_a_10000_line_program_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, _long_program("gen final { where: d7, max_tokens: 3 }"), capsys)
    assert code == 0, err


def test_a_mistake_on_line_10000_is_positioned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, _long_program("gen final { where: d7, max_tokns: 3 }"), capsys)
    assert code == 2
    assert err.splitlines()[0] == "p.dec:10000:24: error: unknown option 'max_tokns' for gen"


def test_absurd_nesting_and_width(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, b"gen x { stop: " + b"[" * 5000 + b'"a"' + b"]" * 5000 + b" }", capsys)
    assert code == 2 and err.splitlines()[0] == "p.dec:1:213: error: nested more than 200 levels deep"
    assert max(len(line) for line in err.splitlines()) < 200  # a long line is shown as a window
    wide = b"gen x { where: " + b" & ".join([b'regex(r"[a-z]+")'] * 2000) + b" }"
    assert check(tmp_path, wide, capsys)[0] == 0


def _schema(text: str) -> bytes:
    return b'gen x { where: json(r"""' + text.encode() + b'""") }\n'


@pytest.mark.parametrize(
    ("data", "first_line"),
    [
        (b'"\\ud800"\n', "p.dec:1:2: error: '\\ud800' is a lone surrogate, not a character"),
        (b"gen x { where: number(max=1e400) }", "p.dec:1:27: error: number 1e400 is out of range"),
        (
            b"gen x { search: sample(temperature=1e999), max_tokens: 3 }",
            "p.dec:1:36: error: number 1e999 is out of range",
        ),
        (_schema('{"maximum": 1e400}'), "p.dec:1:37: error: number 1e400 in schema is out of range"),
        (_schema('{"maximum": -Infinity}'), "p.dec:1:37: error: number -Infinity in schema is out of range"),
        (_schema('{"items": ' * 1000 + "{}" + "}" * 1000), "p.dec:1:1025: error: schema nested too deep: more than 100 levels"),
        (
            _schema('{"type": "array", "prefixItems": [' + ", ".join(['{"type": "integer"}'] * 200) + "]}"),
            "p.dec:1:21: error: constraint nested too deep: 407 levels (at most 250)",
        ),
        (_schema('{"type": "integer", "maximum": 1e300}'), "p.dec:1:21: error: constraint nested too deep"),
        (
            b'gen x { where: regex(r"' + b"(" * 250 + b"a" + b")" * 250 + b'") }',
            "p.dec:1:124: error: invalid regex: groups nested too deep: more than 100 levels",
        ),
        (b"# a comment\rgen x { max_tokns: 3 }\r", "p.dec:2:9: error: unknown option 'max_tokns' for gen"),
        (
            'gen x\n"été"\n'.encode("utf-32"),
            "decc: error: 'p.dec' is encoded as UTF-32: .dec files must be UTF-8",
        ),
    ],
    ids=[
        "lone-surrogate", "number-1e400", "temperature-1e999", "schema-1e400", "schema-infinity",
        "schema-1000-deep", "prefix-items-200", "integer-max-1e300", "regex-250-groups", "cr-only", "utf-32",
    ],
)  # fmt: skip
def test_hostile_values_get_a_positioned_error_at_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, first_line: str
) -> None:
    code, err = check(tmp_path, data, capsys)
    assert code == 2
    assert err.splitlines()[0].startswith(first_line), err


@pytest.mark.parametrize(
    ("grammar", "first_line"),
    [
        ("%declare X\nstart: X\n", "g.lark:1:10: error: invalid grammar: terminal 'X' is declared but never"),
        ("start: start\n", "g.lark:1:1: error: invalid grammar: the grammar matches no string at all"),
        ("start: a\na: start\n", "g.lark:1:1: error: invalid grammar: the grammar matches no string at all"),
    ],
)
def test_hostile_grammars_get_a_positioned_error_at_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], grammar: str, first_line: str
) -> None:
    (tmp_path / "g.lark").write_text(grammar)
    code, err = check(tmp_path, b'gen x { where: grammar(file="g.lark") }\n', capsys)
    assert code == 2
    assert err.replace(str(tmp_path) + "/", "").splitlines()[0].startswith(first_line), err


def test_a_chain_of_500_grammar_rules_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = "\n".join(f'r{i}: r{i + 1} | "a"' for i in range(500))
    (tmp_path / "g.lark").write_text(f'start: r0\n{rules}\nr500: "b"\n')
    code, err = check(tmp_path, b'gen x { where: grammar(file="g.lark") }\n', capsys)
    assert code == 0, err


def test_an_unbounded_schema_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Outside the program's folder it is refused unread; allowed there, it is read only up to the cap."""
    code, err = check(tmp_path, b'gen x { where: json(file="/dev/zero") }\n', capsys)
    assert code == 2 and "is outside the program's folder" in err.splitlines()[0]
    code, err = check(tmp_path, b'gen x { where: json(file="/dev/zero") }\n', capsys, "--allow-files-outside")
    assert (
        code == 2 and err.splitlines()[0] == "p.dec:1:26: error: cannot read '/dev/zero': larger than 16 MiB"
    )


# The string terminals as first written: `(?:a|b)*` keeps re's backtracking state per character (a 7 MB
# literal took 1.6 GiB); the unrolled forms in dec.lark must match exactly the same texts.
_ORIGINAL_STRINGS = {
    "LONG_STRING": r'"""(?:[^"\\]|\\.|"(?!""))*"""',
    "RAW_LONG_STRING": r'r"""(?:[^"\\]|\\.|"(?!""))*"""',
    "RAW_STRING": r'r"(?:[^"\\\n]|\\.)*"',
    "STRING": r'"(?:[^"\\\n]|\\.)*"',
}


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet='"\\\nar ', max_size=14))
def test_string_terminals_match_what_they_matched(text: str) -> None:
    import re

    from decc.dsl.parser import lark_parser

    flags = {t.name: t.pattern for t in lark_parser().terminals}
    for name, original in _ORIGINAL_STRINGS.items():
        pattern = flags[name]
        now = re.compile(pattern.to_regexp(), re.S if "s" in pattern.flags else 0)
        then = re.compile(original, re.S if "s" in pattern.flags else 0)
        for candidate in (text, f'"{text}"', f'r"{text}"', f'"""{text}"""', f'r"""{text}"""'):
            assert bool(now.fullmatch(candidate)) == bool(then.fullmatch(candidate)), (name, candidate)
            assert (now.match(candidate) or [None])[0] == (then.match(candidate) or [None])[0], (
                name,
                candidate,
            )
