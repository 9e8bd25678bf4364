"""Input no one should write still gets a clean diagnostic (or runs): garbage bytes, an empty file, the wrong
encoding, a 10,000-line program, absurd nesting. Never a traceback, never exit 70, the file untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

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
