"""Recursive JSON schemas in programs: a grammar-backed constraint through every pass and every command."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from decc.cli import main
from decc.compiler.pipeline import compile_program
from decc.dsl import parse
from decc.errors import DeccError

SCHEMAS = {
    "root": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}},
    "defs": {"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"},
    "max_items": {
        "type": "object",
        "properties": {"kids": {"type": "array", "maxItems": 2, "items": {"$ref": "#"}}},
    },
    "siblings": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "kids": {"type": "array", "items": {"$ref": "#"}}},
        "required": ["name"],
    },
}


def program(schema: dict, extra: str = "") -> str:
    return f'gen t {{ where: json(r"""{json.dumps(schema)}""") {extra} }}\n"{{t}}"\n'


@pytest.mark.parametrize("name", SCHEMAS)
@pytest.mark.parametrize(
    "command",
    [["check"], ["check", "--model-free"], ["compile", "--emit", "ir"], ["compile", "--emit", "opt"]],
    ids=["check", "model-free", "ir", "opt"],
)
def test_every_command_takes_a_recursive_schema(
    name: str, command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "r.dec"
    f.write_text(program(SCHEMAS[name]))
    rc = main([*command[:1], str(f), *command[1:]])
    out = capsys.readouterr()
    assert rc == 0, out.err
    if command[-1] == "opt":
        assert "grammar rules=" in out.out


VALID = {
    "root": {"kids": [{"kids": []}, {}]},
    "defs": [[[]], []],
    "max_items": {"kids": [{"kids": [{}]}, {}]},
    "siblings": {"name": "a", "kids": [{"name": "b", "kids": []}]},
}
INVALID = {
    "root": {"kids": [{"kids": 1}]},
    "defs": [[1]],
    "max_items": {"kids": [{}, {}, {}]},
    "siblings": {},
}


@pytest.mark.model
@pytest.mark.parametrize("name", SCHEMAS)
def test_plan_binds_a_matcher_that_follows_the_schema(name: str, decc_tokenizer: object) -> None:
    """The plan's matcher (what `run` and `compile --emit plan` use) takes a valid nested instance token by
    token and refuses an invalid one; `jsonschema` is the judge of which is which."""
    from decc.api import loads
    from decc.compiler.plan import plan_gens

    schema = SCHEMAS[name]
    (gen,) = plan_gens(loads(program(schema), "r.dec").plan().steps)
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(VALID[name]) and not validator.is_valid(INVALID[name])
    for value, ok in ((VALID[name], True), (INVALID[name], False)):
        m = gen.constraint.matcher()
        ids = decc_tokenizer.encode(json.dumps(value), add_special_tokens=False)  # type: ignore[attr-defined]
        taken = all(m.advance(t) for t in ids)
        assert (taken and m.is_accepting()) == ok, value


def test_a_stop_string_and_a_branch_on_a_recursive_schema_compile() -> None:
    src = program(SCHEMAS["root"], 'stop: "\\n"') + 'if t == "{}" { "a" } else { "b" }\n'
    module = compile_program(parse(src, "r.dec"))
    assert module.generates()[0].constraint.compiled is not None


def test_a_recursive_schema_in_a_conjunction_is_a_positioned_error() -> None:
    src = f'gen t {{ where: json(r"""{json.dumps(SCHEMAS["defs"])}""") & length(max=9) }}'
    with pytest.raises(DeccError, match="recursive JSON schema cannot be combined") as e:
        compile_program(parse(src, "r.dec"))
    assert e.value.span is not None and e.value.span.col == 21
