"""`let` definitions and imports of other `.dec` files: what they resolve to, and every way they go wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from decc.compiler import ir
from decc.compiler.pipeline import compile_program
from decc.compiler.printer import constraint_text
from decc.dsl import parse, parse_file
from decc.errors import DeccError


def compile_file(path: Path) -> ir.Module:
    return compile_program(parse_file(path))


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def test_definitions_expand_where_they_are_used() -> None:
    module = compile_program(
        parse(
            'let digits = regex(r"[0-9]+")\nlet short = length(max=3)\nlet both = digits & short\n'
            'let pick = sample(temperature=0.5, seed=2)\nlet hello = "Hi {there}"\n'
            '"{hello}: "\ngen n { where: both & choice("1", "22", "333", "4444"), search: pick }'
        )
    )
    (gen,) = module.generates()
    # A defined conjunction joins the one it is used in, flat.
    assert isinstance(gen.constraint, ir.All) and len(gen.constraint.parts) == 3
    assert gen.search == ir.Sampling(greedy=False, temperature=0.5, seed=2)
    emit = module.body[0]  # a defined string is inserted as it is: its braces are not interpolated (and
    # the fold pass joins it with the literal after it)
    assert isinstance(emit, ir.Emit) and [p.text for p in emit.parts] == ["Hi {there}: "]  # type: ignore[union-attr]


def test_import_all_and_some_with_alias(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "lib/defs.dec": '# only definitions\nimport "more.dec"\nlet yn = choice("yes", "no")\n'
            'let person = json(file="person.json")\n',
            "lib/more.dec": 'let word = regex(r"[a-z]+")\n',
            "lib/person.json": '{"type": "object", "properties": {"name": {"type": "string"}}}',
            "main.dec": 'import "lib/defs.dec"\nfrom "lib/defs.dec" import word as w\n'
            "gen a { where: yn }\ngen b { where: w }\ngen c { where: person }\ngen d { where: word }\n",
        },
    )
    a, b, c, d = compile_file(tmp_path / "main.dec").generates()
    assert constraint_text(a.constraint).startswith('choice("yes", "no"')  # type: ignore[arg-type]
    assert b.constraint == d.constraint and isinstance(b.constraint, ir.Regex)
    # A file named in a definition is found next to the file that defines it.
    assert isinstance(c.constraint, ir.JsonSchema) and '"name"' in c.constraint.schema
    assert c.constraint.span.path.endswith("defs.dec")


@pytest.mark.parametrize(
    ("files", "message", "where", "hint"),
    [
        (
            {"main.dec": 'import "nope.dec"\n'},
            "cannot import 'nope.dec': no such file",
            ("main.dec", 1, 8),
            None,
        ),
        ({"main.dec": 'import "x.json"\n'}, "only .dec files can be imported", ("main.dec", 1, 8), None),
        (
            {"main.dec": 'import "a.dec"\n', "a.dec": 'import "b.dec"\n', "b.dec": 'import "a.dec"\n'},
            "import cycle: 'a.dec' imports this file again",
            ("b.dec", 1, 8),
            "move the shared definitions into a third file that both import",
        ),
        (
            {"main.dec": 'import "main.dec"\n'},
            "import cycle: 'main.dec' imports this file again",
            ("main.dec", 1, 8),
            None,
        ),
        (
            {"main.dec": 'from "a.dec" import yesno\n', "a.dec": 'let yes_no = choice("y", "n")\n'},
            "'a.dec' defines no 'yesno'",
            ("main.dec", 1, 21),
            "did you mean 'yes_no'?",
        ),
        (
            {"main.dec": 'import "a.dec"\n', "a.dec": "let x = 1\ngen y\n"},
            "an imported file may hold only definitions ('let' and 'import')",
            ("a.dec", 2, 1),
            None,
        ),
        (
            {"main.dec": 'import "a.dec"\nlet x = 2\n', "a.dec": "let x = 1\n"},
            "'x' is already defined",
            ("main.dec", 2, 5),
            None,
        ),
        (
            {"main.dec": 'import "a.dec"\n', "a.dec": "let x = (\n"},
            "unexpected '('",
            ("a.dec", 1, 9),
            None,
        ),
    ],
)
def test_import_errors(
    tmp_path: Path, files: dict[str, str], message: str, where: tuple[str, int, int], hint: str | None
) -> None:
    write(tmp_path, files)
    with pytest.raises(DeccError) as info:
        compile_file(tmp_path / "main.dec")
    err = info.value
    assert message in err.message, err.render()
    assert err.span is not None
    assert (Path(err.span.path).name, err.span.line, err.span.col) == where, err.render()
    if hint is not None:
        assert hint in err.hints


def test_errors_inside_a_definition_point_at_the_definition(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"lib.dec": 'let bad = regex(r"a(")\n', "main.dec": 'import "lib.dec"\ngen x { where: bad }\n'},
    )
    with pytest.raises(DeccError) as info:
        compile_file(tmp_path / "main.dec")
    err = info.value
    assert err.message.startswith("invalid regex") and err.span is not None
    assert (Path(err.span.path).name, err.span.line) == ("lib.dec", 1)


def test_names_in_branches_are_scoped() -> None:
    module = compile_program(
        parse('gen a { where: choice("x", "y") }\nif a == "x" { gen b "{b}" } else { gen c "{a}{c}" }\n"{a}"')
    )
    (branch,) = [op for op in module.body if isinstance(op, ir.Branch)]
    assert [c.test.op for c in branch.cases] == ["=="] and branch.otherwise is not None
    assert [g.name for g in module.generates()] == ["a", "b", "c"]
    with pytest.raises(DeccError, match="'b' is already defined"):
        compile_program(parse('gen a\nif a == "x" { gen b } else { gen b }'))


def test_one_definition_reached_through_two_imports_is_not_a_clash(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "b.dec": "let a = 1\n",
            "c.dec": 'import "b.dec"\n',
            "main.dec": 'import "c.dec"\nimport "b.dec"\ngen x { max_tokens: a }\n',
            "other.dec": "let a = 1\n",
            "clash.dec": 'import "b.dec"\nimport "other.dec"\n',
        },
    )
    (gen,) = compile_file(tmp_path / "main.dec").generates()
    assert gen.max_tokens == 1
    with pytest.raises(DeccError, match="'a' is already defined"):  # equal text, but two definitions
        compile_file(tmp_path / "clash.dec")
