"""Untrusted programs: checking or compiling one runs none of its code, names only the modules beside it
(or allowed), and reads only the files in its folder (or allowed), never echoing a file that is no schema."""

from __future__ import annotations

import keyword
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import decc
from decc.cli import main
from decc.compiler.pipeline import compile_program
from decc.compiler.trust import Trust
from decc.dsl import parse_file
from decc.errors import DeccError

COMPANION = """
import pathlib
pathlib.Path(__file__).with_name("MARKER").write_text("imported")
from pydantic import BaseModel

class City(BaseModel):
    name: str

def score(text):
    return float(len(text))
"""


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def decc_cli(capsys, monkeypatch) -> Callable[..., Done]:
    """`decc ARGS` run in `cwd`, in this process (a subprocess each costs seconds)."""

    def run(*args: str, cwd: Path) -> Done:
        monkeypatch.chdir(cwd)
        code = main(list(args))
        out = capsys.readouterr()
        return Done(code, out.out, out.err)

    return run


def test_check_and_compile_import_nothing(tmp_path: Path, decc_cli) -> None:
    """`decc check`, `check --model-free` and `compile` leave the companion module unimported (it would
    write MARKER); a pydantic model is checked statically, and `compile` asks for --allow-imports."""
    (tmp_path / "comp.py").write_text(COMPANION)
    (tmp_path / "model.dec").write_text('gen c { where: json(model="comp:City"), max_tokens: 30 }\n')
    (tmp_path / "score.dec").write_text(
        'gen d { where: choice("a", "bb"), search: best_of(n=2, score=python("comp:score")) }\n'
    )
    marker = tmp_path / "MARKER"
    for args in (("check", "model.dec", "score.dec"), ("check", "--model-free", "model.dec", "score.dec")):
        out = decc_cli(*args, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "checked without importing" in out.stdout
        assert not marker.exists()
    out = decc_cli("compile", "score.dec", cwd=tmp_path)
    assert out.returncode == 0 and not marker.exists(), out.stderr
    out = decc_cli("compile", "model.dec", cwd=tmp_path)
    assert out.returncode == 2 and "--allow-imports" in out.stderr and "Traceback" not in out.stderr
    assert not marker.exists()
    out = decc_cli("check", "--model-free", "--allow-imports", "model.dec", cwd=tmp_path)
    assert out.returncode == 0 and marker.exists(), out.stderr


def test_a_module_that_exits_on_import_does_not_pass_check(tmp_path: Path, decc_cli) -> None:
    """`sys.exit(0)` in an imported module once made `check` exit 0 on a program with an error."""
    (tmp_path / "ex.py").write_text("import sys\nclass M: ...\nsys.exit(0)\n")
    (tmp_path / "p.dec").write_text('gen x { where: json(model="ex:M") }\ngen y { max_token: 3 }\n')
    prog = str(tmp_path / "p.dec")
    out = decc_cli("check", "--model-free", prog, cwd=tmp_path)
    assert out.returncode == 2 and "unknown option 'max_token'" in out.stderr
    out = decc_cli("check", "--model-free", "--allow-imports", prog, cwd=tmp_path)
    assert out.returncode == 2 and "cannot import module 'ex': SystemExit" in out.stderr


def test_shell_reward_is_refused(tmp_path: Path, decc_cli) -> None:
    """`python("os:system")` hands values to a shell: the standard library needs --allow-installed."""
    (tmp_path / "p.dec").write_text(
        'gen x { where: choice("touch pwned"), search: best_of(n=1, score=python("os:system")) }\n'
    )
    out = decc_cli("check", "--model-free", "p.dec", cwd=tmp_path)
    assert out.returncode == 2 and "p.dec:1:73: error: cannot import module 'os'" in out.stderr
    assert "--allow-installed" in out.stderr
    out = decc_cli("check", "--model-free", "--allow-installed", "p.dec", cwd=tmp_path)
    assert out.returncode == 0, out.stderr


STDLIB = sorted(n for n in sys.stdlib_module_names if n.isidentifier() and not n.startswith("_"))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(STDLIB), st.sampled_from(["python", "model"]))
def test_no_standard_module_is_reachable_by_default(tmp_path_factory, module: str, how: str) -> None:
    folder = tmp_path_factory.mktemp("std")
    call = (
        f'search: best_of(n=2, score=python("{module}:f"))'
        if how == "python"
        else (f'where: json(model="{module}:f")')
    )
    (folder / "p.dec").write_text(f"gen x {{ {call} }}\n")
    for trust in (Trust(), Trust(allow_imports=True), Trust(check_only=True)):
        with pytest.raises(DeccError) as info:
            compile_program(parse_file(folder / "p.dec"), trust=trust)
        assert info.value.message.startswith(f"cannot import module '{module}'")
        assert any("--allow-installed" in h for h in info.value.hints)


NAME = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(lambda n: not keyword.iskeyword(n))
BINDING = st.sampled_from(
    ["def {}(t):\n    return 1.0\n", "class {}: ...\n", "{} = 3\n", "import json as {}\n"]
)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(NAME, BINDING, max_size=5), NAME)
def test_static_resolution_finds_exactly_the_top_level_names(
    tmp_path_factory, bindings: dict[str, str], wanted: str
) -> None:
    """Without importing, `python("helper:NAME")` passes iff the module's source binds NAME at top level."""
    folder = tmp_path_factory.mktemp("mod")
    body = "".join(form.format(name) for name, form in bindings.items())
    (folder / "helper.py").write_text("raise SystemExit('never imported')\n" + body)
    (folder / "p.dec").write_text(f'gen x {{ search: best_of(n=2, score=python("helper:{wanted}")) }}\n')
    try:
        compile_program(parse_file(folder / "p.dec"))
        accepted = True
    except DeccError as e:
        assert e.message == f"module 'helper' has no '{wanted}'"
        accepted = False
    assert accepted == (wanted in bindings)


def test_python_path_adds_folders(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "prog").mkdir()
    (tmp_path / "lib" / "scores.py").write_text("def n(text):\n    return 2.0\n")
    (tmp_path / "prog" / "p.dec").write_text('gen x { search: best_of(n=2, score=python("scores:n")) }\n')
    with pytest.raises(DeccError, match="cannot import module 'scores'") as info:
        decc.load(tmp_path / "prog" / "p.dec")
    assert any("--python-path" in h for h in info.value.hints)
    program = decc.load(tmp_path / "prog" / "p.dec", python_path=[tmp_path / "lib"])
    (gen,) = program.ir.generates()
    assert gen.search.score.fn("abc") == 2.0


def test_same_module_name_in_two_programs(tmp_path: Path) -> None:
    """Two programs with their own `m.py` each get their own module, not the one imported first."""
    for value in (1, 2):
        folder = tmp_path / f"p{value}"
        folder.mkdir()
        (folder / "m.py").write_text(f"def f(text):\n    return {value}.0\n")
        (folder / "p.dec").write_text('gen x { search: best_of(n=2, score=python("m:f")) }\n')
        (gen,) = decc.load(folder / "p.dec").ir.generates()
        assert gen.search.score.fn("x") == value


def test_a_module_shadowing_an_installed_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "json.py").write_text("def f(text):\n    return 1.0\n")
    (tmp_path / "p.dec").write_text('gen x { search: best_of(n=2, score=python("json:f")) }\n')
    for trust in (Trust(), Trust(allow_imports=True)):
        with pytest.raises(DeccError, match="has the name of an installed module") as info:
            compile_program(parse_file(tmp_path / "p.dec"), trust=trust)
        assert info.value.hints == ("rename json.py",)


@pytest.mark.parametrize(
    "option",
    [
        'where: json(file="{}")',
        'where: grammar(file="{}")',
        'search: best_of(n=2, score=json_valid(file="{}"))',
    ],
)
def test_files_outside_the_folder_need_an_allowance(tmp_path: Path, option: str) -> None:
    """A path up, an absolute path and a symlink out of the program's folder are refused, naming the flag."""
    prog = tmp_path / "prog"
    prog.mkdir()
    ext = "lark" if "grammar" in option else "json"
    (tmp_path / "s.json").write_text('{"type": "integer"}')
    (tmp_path / "s.lark").write_text('start: "a"\n')
    (prog / f"link.{ext}").symlink_to(tmp_path / f"s.{ext}")
    (prog / "sub").mkdir()
    (prog / "sub" / f"in.{ext}").write_text((tmp_path / f"s.{ext}").read_text())
    for name in (f"../s.{ext}", str(tmp_path / f"s.{ext}"), f"link.{ext}", f"sub/../../s.{ext}"):
        (prog / "p.dec").write_text(f"gen x {{ {option.format(name)} }}\n")
        with pytest.raises(DeccError, match="is outside the program's folder") as info:
            compile_program(parse_file(prog / "p.dec"))
        assert any("--allow-files-outside" in h for h in info.value.hints)
        compile_program(parse_file(prog / "p.dec"), trust=Trust(allow_files_outside=True))
    (prog / "p.dec").write_text(f"gen x {{ {option.format(f'sub/in.{ext}')} }}\n")
    compile_program(parse_file(prog / "p.dec"))


SECRET = st.from_regex(r"[A-Za-z0-9:/_ -]{6,30}", fullmatch=True).filter(lambda s: s.lstrip()[:1] not in "{[")


@settings(max_examples=30, deadline=None)
@given(SECRET, st.sampled_from(["", "\nmore\n", "\n"]))
def test_a_file_that_is_no_schema_is_never_echoed(tmp_path_factory, secret: str, rest: str) -> None:
    """`json(file=...)` on a file such as /etc/passwd says it is not a schema, showing none of it."""
    folder = tmp_path_factory.mktemp("echo")
    (folder / "notes.txt").write_text(secret + rest)
    (folder / "p.dec").write_text('gen x { where: json(file="notes.txt") }\n')
    try:
        compile_program(parse_file(folder / "p.dec"))
    except DeccError as e:
        assert secret.strip() not in e.render()
        assert e.span is not None and e.span.path == str(folder / "p.dec")
    else:
        assert isinstance(__import__("json").loads(secret + rest), bool)


def test_a_schema_file_with_a_typo_still_points_into_it(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"type": "object",\n "properties": {"a": }}\n')
    (tmp_path / "p.dec").write_text('gen x { where: json(file="s.json") }\n')
    with pytest.raises(DeccError) as info:
        compile_program(parse_file(tmp_path / "p.dec"))
    assert info.value.span is not None and info.value.span.path.endswith("s.json")


def test_runnable_only_when_imported(tmp_path: Path) -> None:
    """A program compiled without imports has no callable to run: it says so rather than scoring with None."""
    (tmp_path / "m.py").write_text(textwrap.dedent("def f(text):\n    return 1.0\n"))
    (tmp_path / "p.dec").write_text('gen x { search: best_of(n=2, score=python("m:f")) }\n')
    (gen,) = decc.load(tmp_path / "p.dec", allow_imports=False).ir.generates()
    assert gen.search.score.fn is None
    from decc.runtime.rewards import scorer

    with pytest.raises(DeccError, match="was not imported"):
        scorer(gen.search.score)


def test_a_package_beside_the_program(tmp_path: Path) -> None:
    """`python("pkg.mod:f")` finds pkg/mod.py statically and imports it with its package when loaded."""
    (tmp_path / "zzpkg").mkdir()
    (tmp_path / "zzpkg" / "__init__.py").write_text("")
    (tmp_path / "zzpkg" / "mod.py").write_text("from .helpers import f\n")
    (tmp_path / "zzpkg" / "helpers.py").write_text("def f(text):\n    return 7.0\n")
    (tmp_path / "p.dec").write_text('gen x { search: best_of(n=2, score=python("zzpkg.mod:f")) }\n')
    compile_program(parse_file(tmp_path / "p.dec"))
    (gen,) = decc.load(tmp_path / "p.dec").ir.generates()
    assert gen.search.score.fn("x") == 7.0
    (tmp_path / "p.dec").write_text('gen x { search: best_of(n=2, score=python("zzpkg.mod:g")) }\n')
    with pytest.raises(DeccError, match="module 'zzpkg.mod' has no 'g'"):
        compile_program(parse_file(tmp_path / "p.dec"))
