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
        "// after check-engine",
        "// after choose-engine",
        "// after compile-constraints",
        "// after check-stops",
        "// after check-branches",
        "// after check-heal",
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


def test_version() -> None:
    import decc

    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"decc {decc.__version__}"


def test_check_says_what_it_checked_model_free(tmp_path: Path) -> None:
    prog = tmp_path / "p.dec"
    prog.write_text('"Q"\ngen a { where: regex(r"[0-9]+") }\ngen b\ngen c { where: choice("x", "y") }\n')
    out = run("check", str(prog), "--model-free")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"ok: {prog} — 3 steps, 2 constraints compiled (model-free: the tokenizer checks were skipped)"
    ]


@pytest.mark.model
def test_check_names_the_tokenizer() -> None:
    out = run("check", "examples/hello.dec")
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        "ok: examples/hello.dec — 1 step, 1 constraint compiled for the smollm2-135m-instruct tokenizer\n"
    )


@pytest.mark.parametrize("policy", ["beam(width=2)", "diverse_beam(width=2, groups=2)"])
def test_check_refuses_beam_with_stop_entropy(tmp_path: Path, policy: str) -> None:
    prog = tmp_path / "p.dec"
    prog.write_text(f'"Q"\ngen a {{\n  search: {policy}\n  stop_entropy: below(0.3)\n}}\n')
    out = run("check", str(prog), "--model-free")
    assert out.returncode == 2
    assert out.stderr.startswith(
        f"{prog}:4:3: error: stop_entropy is not supported with {policy.split('(')[0]}(...)"
    )
    assert "  ^^^^^^^^^^^^\n" in out.stderr and "Traceback" not in out.stderr


def test_dead_stop_string_is_a_positioned_warning(tmp_path: Path) -> None:
    prog = tmp_path / "p.dec"
    prog.write_text('"Q"\ngen a { where: choice("yes", "no")  stop: "!" }\n')
    out = run("check", str(prog), "--model-free")
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith(f'{prog}:2:43: warning: stop string "!" can never occur')
    assert "Warning" not in out.stderr  # decc's own rendering, not Python's warnings module
    assert out.stdout.rstrip().endswith("1 warning")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-tokens", "0"], "--max-tokens must be at least 1, not 0"),
        (["--max-tokens", "many"], "argument --max-tokens: invalid int value: 'many'"),
        (["--seed", "-1"], "--seed must be in [0, 2**64), not -1"),
        (["--seed", str(2**64)], f"--seed must be in [0, 2**64), not {2**64}"),
        pytest.param(
            ["--max-tokens", "2"],
            "examples/hello.dec:13:7: error: max_tokens is 2, but every valid output of 'date' takes at least",
            marks=pytest.mark.model,
        ),
        pytest.param(["--max-tokens", "2"], "(--max-tokens)", marks=pytest.mark.model),
    ],
)
def test_run_refuses_bad_overrides(flags: list[str], message: str) -> None:
    out = run("run", "examples/hello.dec", *flags)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


SAMPLED = """"Name a colour:"
gen a {{ where: regex(r"[a-z ]+") search: sample(temperature=1.5{seed}){max_tokens} }}
gen b {{ search: best_of(n=2, temperature=1.3{seed}){max_tokens} }}
gen c {{ where: choice("x", "y") }}
"""


@pytest.mark.model
def test_run_overrides_equal_the_options_written_out(tmp_path: Path) -> None:
    """--max-tokens N --seed S give what max_tokens: N and seed=S in every (sampling) step give, with
    timings and forward passes in --json, and nothing at all on stderr (no FutureWarning either)."""
    import json

    import decc

    prog = tmp_path / "p.dec"
    prog.write_text(SAMPLED.format(seed="", max_tokens=""))
    out = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-m", "decc", "run", str(prog), "--json"]
        + ["--max-tokens", "3", "--seed", "11"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    data = json.loads(out.stdout)
    written = decc.loads(SAMPLED.format(seed=", seed=11", max_tokens=" max_tokens: 3"), "w.dec").run()
    assert data["values"] == written.values and data["token_ids"] == written.token_ids
    assert data["forward_passes"] == written.forward_passes > 0
    assert set(data["timings"]) == {"compile_s", "load_s", "decode_s"}
    assert all(isinstance(t, float) and t >= 0 for t in data["timings"].values())
