"""The command line as a user runs it: exit codes, rendered diagnostics, no tracebacks, emitted stages."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DECC = [sys.executable, "-m", "decc"]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DECC, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_only_the_decc_namespace_is_installed() -> None:
    for bare in ("compiler", "runtime", "grammars", "dsl"):
        assert importlib.util.find_spec(bare) is None, bare
    assert importlib.util.find_spec("decc.compiler") is not None


def test_check_ok_and_failing(tmp_path: Path) -> None:
    good = run("check", "examples/hello.dec")
    assert good.returncode == 0, good.stderr
    bad = tmp_path / "bad.dec"
    bad.write_text("gen x {\n  max_token: 3\n}\n")
    before = bad.read_text()
    out = run("check", str(bad), "examples/hello.dec")
    assert out.returncode == 2
    assert f"{bad}:2:3: error: unknown option 'max_token' for gen" in out.stderr
    assert "did you mean 'max_tokens'?" in out.stderr
    assert "Traceback" not in out.stderr
    assert bad.read_text() == before  # nothing the user wrote is touched


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00garbage", "error:"),
        (b'user "caf\xe9"\n', "invalid UTF-8 byte 0xe9"),
        (b"}}}{{{ ::: gen", "error: unexpected"),
    ],
)
def test_garbage_files_get_clean_diagnostics(tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "x.dec"
    f.write_bytes(content)
    out = run("check", str(f))
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_file() -> None:
    out = run("check", "does/not/exist.dec")
    assert out.returncode == 2
    assert "cannot read 'does/not/exist.dec'" in out.stderr


def test_compile_emits_stages() -> None:
    ast = run("compile", "examples/hello.dec", "--emit", "ast")
    assert ast.returncode == 0 and ast.stdout.startswith("Program @1:1")
    ir = run("compile", "examples/hello.dec", "--emit", "ir")
    assert ir.returncode == 0 and "gen date where=regex(" in ir.stdout and "states=" not in ir.stdout
    opt = run("compile", "examples/hello.dec", "--emit", "opt")
    assert opt.returncode == 0 and "states=" in opt.stdout
    dumps = run("compile", "examples/hello.dec", "--print-after-all")
    assert [line for line in dumps.stdout.splitlines() if line.startswith("// after")] == [
        "// after ir",
        "// after resolve-names",
        "// after compile-constraints",
        "// after check-stops",
        "// after check-branches",
        "// after product",
        "// after prune",
        "// after minimize",
        "// after fold",
        "// after speculate",
    ]
    assert "draft=forced+text+lookup+suffix" in opt.stdout
    plain = run("compile", "examples/hello.dec", "--no-opt", "speculate")
    assert plain.returncode == 0 and "draft=" not in plain.stdout
    ir_lines = [line for line in opt.stdout.splitlines() if not line.startswith("//")]
    assert [line for line in plain.stdout.splitlines() if not line.startswith("//")] == [
        line.replace(" draft=forced+text+lookup+suffix", "") for line in ir_lines
    ]
    assert "// speculate: turned off" in plain.stdout
    assert "// speculate: 'date': drafts from forced, text, lookup, suffix" in opt.stdout
    bad = run("compile", "examples/hello.dec", "--no-opt", "speculation")
    assert bad.returncode == 2 and "no optimization pass named 'speculation'" in bad.stderr
    assert (
        "the passes are: product, prune, minimize, fold, speculate" in bad.stderr
        and "Traceback" not in bad.stderr
    )


@pytest.mark.model
def test_compile_emits_plan() -> None:
    out = run("compile", "examples/hello.dec", "--emit", "plan")
    assert out.returncode == 0, out.stderr
    assert "<|im_start|>user\\n" in out.stdout and "automaton(states=" in out.stdout


@pytest.mark.model
def test_run_json_and_bad_input() -> None:
    out = run("run", "examples/hello.dec", "--json")
    assert out.returncode == 0, out.stderr
    import json
    import re

    data = json.loads(out.stdout)
    assert re.fullmatch(
        r"(1[0-9]|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])", data["values"]["date"]
    )
    bad = run("run", "examples/hello.dec", "--input", "evnt=x")
    assert (
        bad.returncode == 2 and "unknown input 'evnt'" in bad.stderr and "did you mean 'event'?" in bad.stderr
    )
