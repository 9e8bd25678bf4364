"""`json(...)` in a program writes only the properties an object declares (`extra_keys=true` allows more);
the constraint API stays exact to JSON Schema unless asked (`strict=True`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc import testing
from decc.compiler.pipeline import compile_program
from decc.compiler.trust import Trust
from decc.dsl import parse, parse_file
from decc.grammars import compile_json_schema
from decc.grammars.json.json_strict import close_objects

LEAVES = [{"type": "integer"}, {"type": "boolean"}, {"type": "string", "maxLength": 3}, {"enum": ["a", "b"]}]


def objects(depth: int) -> st.SearchStrategy[dict]:
    """Object schemas with no additionalProperties, nested `depth` deep, some properties required."""
    value = st.sampled_from(LEAVES) if depth == 0 else st.one_of(st.sampled_from(LEAVES), objects(depth - 1))
    names = st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=0, max_size=3, unique=True)

    @st.composite
    def build(draw: Any) -> dict:
        props = {n: draw(value) for n in draw(names)}
        required = [n for n in props if draw(st.booleans())]
        return {"type": "object", "properties": props, "required": required}

    return build()


def undeclared(value: Any, schema: dict) -> list[str]:
    """The keys of `value` (and its nested objects) that their schema does not declare: an oracle that
    reads only the schema's `properties`."""
    if not isinstance(value, dict) or "properties" not in schema:
        return []
    props = schema["properties"]
    out = [k for k in value if k not in props]
    for k, v in value.items():
        if k in props:
            out += undeclared(v, props[k])
    return out


def compiled(schema: dict, options: str = "") -> Any:
    src = f'gen x {{ where: json(r"""{json.dumps(schema)}"""{options}) }}'
    (gen,) = compile_program(parse(src, "s.dec")).generates()
    return gen.constraint


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects(2), st.data())
def test_a_program_writes_only_declared_keys(schema: dict, data: st.DataObject) -> None:
    """Random walks through the program's automaton give JSON valid under the schema with no undeclared
    key at any depth; the same text with an extra key is refused, and taken under `extra_keys=true`."""
    c = compiled(schema)
    text = data.draw(testing.from_constraint(c.compiled, max_bytes=120))
    value = json.loads(text)
    jsonschema.validate(value, schema)
    assert undeclared(value, schema) == [], text
    more = json.dumps({**value, "zz": 1})
    assert not c.compiled.accepts(more.encode())
    assert compiled(schema, ", extra_keys=true").compiled.accepts(more.encode())


def test_pydantic_models_are_closed_by_default(tmp_path: Path) -> None:
    (tmp_path / "strict_models_m.py").write_text(
        "from pydantic import BaseModel\n"
        "class Inner(BaseModel):\n    x: int\n"
        "class Outer(BaseModel):\n    name: str\n    inner: Inner\n    tags: dict[str, int]\n"
    )
    for option, extra_ok in (("", False), (", extra_keys=true", True)):
        f = tmp_path / "p.dec"
        f.write_text(f'gen x {{ where: json(model="strict_models_m:Outer"{option}) }}\n')
        (gen,) = compile_program(parse_file(f), trust=Trust(allow_imports=True)).generates()
        dfa = gen.constraint.compiled
        base = {"name": "n", "inner": {"x": 1}, "tags": {"free": 2}}  # a dict field stays a free map
        assert dfa.accepts(json.dumps(base).encode())
        assert dfa.accepts(json.dumps({**base, "more": 1}).encode()) == extra_ok
        assert dfa.accepts(json.dumps({**base, "inner": {"x": 1, "y": 2}}).encode()) == extra_ok


def test_explicit_additional_properties_are_honoured() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": True}
    assert compiled(schema).compiled.accepts(b'{"a": 1, "b": 2}')
    pattern = {"type": "object", "properties": {"a": {"type": "integer"}}, "patternProperties": {"^x": {}}}
    dfa = compiled(pattern).compiled
    assert dfa.accepts(b'{"a": 1, "xy": 2}') and dfa.accepts(b'{"a": 1, "b": 2}')  # as JSON Schema says


def test_a_required_name_without_a_schema_counts_as_declared() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a", "b"]}
    dfa = compiled(schema).compiled
    assert dfa.accepts(b'{"a": 1, "b": [true]}') and not dfa.accepts(b'{"a": 1, "b": 2, "c": 3}')
    assert compiled({"type": "object", "required": ["x"]}).compiled.accepts(b'{"x": null}')


def test_the_constraint_api_is_exact_unless_strict() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert compile_json_schema(schema).accepts(b'{"a": 1, "b": 2}')
    assert not compile_json_schema(schema, strict=True).accepts(b'{"a": 1, "b": 2}')
    assert compile_json_schema(schema, strict=True).accepts(b'{"a": 1}')


def test_allof_parts_stay_open_so_their_properties_combine() -> None:
    schema = {
        "$defs": {"A": {"type": "object", "properties": {"a": {"type": "integer"}}}},
        "allOf": [{"$ref": "#/$defs/A"}, {"type": "object", "properties": {"b": {"type": "integer"}}}],
    }
    closed, n = close_objects(schema)
    assert n == 0 and closed == schema
    assert compile_json_schema(schema, strict=True).accepts(b'{"a": 1, "b": 2}')


@pytest.mark.parametrize(
    ("options", "shown"), [("", "closed-objects=2"), (", extra_keys=true", "extra_keys")]
)
def test_the_printer_says_so(options: str, shown: str) -> None:
    from decc.compiler.printer import print_ir

    schema = {"type": "object", "properties": {"o": {"type": "object", "properties": {}}}}
    src = f'gen x {{ where: json(r"""{json.dumps(schema)}"""{options}) }}'
    assert shown in print_ir(compile_program(parse(src, "s.dec")))
