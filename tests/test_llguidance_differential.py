"""decc's token masks against llguidance's, at every step of valid instances (issue 20, item 4).

Same tokenizer (the embedded SmolLM2), compact separators, no free whitespace for llguidance. Every step of
each instance's canonical tokenization (and the end, where EOS is decided) compares the two full masks;
a disagreement must be explained by one of the named, checked filters of benchmarks/maskbench/
differential.py (decc's `, `/`: ` separators, llguidance's forced-token masks, `format`, U+007F, escape
spellings, number spellings under bounds or enums), or the case fails with a report. Cases: small inline
schemas, a seeded sample of the benchmark corpus (benchmarks/schemas), and, when `DECC_MASKBENCH` names a
MaskBench data folder, a seeded sample of it (`DECC_MASKBENCH_SAMPLE` files, default 6).
Skipped when llguidance is not installed (it is a benchmark-only peer: `pip install -e .[bench]`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from maskbench.data import keys_in_schema_order  # noqa: E402
from maskbench.differential import Differential, Refused  # noqa: E402
from maskbench.engines import encode  # noqa: E402
from maskbench.layout import SEPS, layout  # noqa: E402

from decc.vocabs import CORE_FAMILIES  # noqa: E402

needs_llguidance = pytest.mark.skipif(
    importlib.util.find_spec("llguidance") is None,
    reason="llguidance not installed (pip install -e .[bench])",
)
CORPUS_SAMPLE = 8  # of the 51 corpus schemas: decc's cold compiles are most of this test's time

INLINE: dict[str, tuple[dict, list[Any]]] = {
    "flat-object": (
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 40},
                "age": {"type": "integer", "minimum": 0, "maximum": 150},
                "admin": {"type": "boolean"},
                "nick": {"type": ["string", "null"]},
                "score": {"type": "number", "minimum": 0, "maximum": 10},
            },
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        [
            {"name": 'Ada "the" Countess\\ é ✓', "age": 36, "admin": True, "nick": None, "score": 7.5},
            {"name": "", "age": 0},
        ],
    ),
    "enum-const-array": (
        {
            "type": "object",
            "properties": {
                "kind": {"const": "point"},
                "color": {"enum": ["red", "green", "blue", 3, None]},
                "xy": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 3},
            },
            "required": ["kind", "xy"],
        },
        [{"kind": "point", "color": "green", "xy": [1.5, -2, 3e-05]}, {"kind": "point", "xy": [0, 0]}],
    ),
    "refs-anyof": (
        {
            "$defs": {"tag": {"type": "string", "pattern": "^[a-z]+$"}},
            "type": "object",
            "properties": {
                "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
                "when": {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 5}]},
            },
        },
        [{"tags": ["a", "bc"], "when": 12}, {"tags": [], "when": "soon"}, {}],
    ),
    "free-values": (
        {"type": "object", "properties": {"n": {"type": "integer", "minimum": -9, "maximum": 9}}},
        [{"n": -3, "extra": {"a": {"b": [1]}}}],
    ),
    "spaced-pattern": ({"type": "string", "pattern": "^\\s*[a-f]+\\s*$"}, [" abc  "]),
    "free-text": (
        {"type": "array", "items": {"type": "string"}},
        [["tab\there", "line\nbreak", 'quote"', "ünïcödé", "emoji 😀", "ctrl \u0001"]],
    ),
}


def _corpus() -> list[tuple[str, Any, list[Any]]]:
    folder = ROOT / "benchmarks" / "schemas"
    names = sorted(p.name[: -len(".json")] for p in folder.glob("*.json") if p.name.count(".") == 1)
    out = []
    for name in random.Random(20).sample(names, min(CORPUS_SAMPLE, len(names))):
        schema = json.loads((folder / f"{name}.json").read_text())
        out.append((f"corpus/{name}", schema, json.loads((folder / f"{name}.instances.json").read_text())))
    return out


def _maskbench() -> list[tuple[str, Any, list[Any]]]:
    folder = Path(os.environ.get("DECC_MASKBENCH", "")) if os.environ.get("DECC_MASKBENCH") else None
    if folder is None or not folder.is_dir():
        return []
    files = sorted(folder.glob("*.json"))
    n = int(os.environ.get("DECC_MASKBENCH_SAMPLE", "6"))
    out = []
    for path in random.Random(20).sample(files, min(n, len(files))):
        try:
            row = json.loads(path.read_text())
            valid = [t["data"] for t in row["tests"] if t["valid"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        out.append((f"maskbench/{path.name}", row["schema"], valid))
    return out


# decc bugs the comparison meets, each `xfail(strict=True)`: (schema, instances, reason, what it raises).
KNOWN_DECC_BUGS: dict[str, tuple[Any, list[Any], str, type[BaseException]]] = {}


def _params() -> list[Any]:
    cases = [(f"inline/{k}", s, i) for k, (s, i) in INLINE.items()] + _corpus() + _maskbench()
    params = [pytest.param(schema, instances, id=name) for name, schema, instances in cases]
    for name, (schema, instances, reason, raises) in KNOWN_DECC_BUGS.items():
        mark = pytest.mark.xfail(strict=True, reason=reason, raises=raises)
        params.append(pytest.param(schema, instances, id=name, marks=mark))
    return params


@pytest.fixture(scope="module")
def differential() -> Differential:
    pytest.importorskip("llguidance", reason="the differential oracle needs llguidance (the bench extra)")
    import decc
    from decc.runtime.model import model_facts

    size, eos = model_facts("default")
    return Differential(decc.load_tokenizer(), size, min(eos))


@pytest.mark.model
@needs_llguidance
@pytest.mark.parametrize(("schema", "instances"), _params())
def test_masks_agree_at_every_step(differential: Differential, schema: Any, instances: list[Any]) -> None:
    try:
        bound = differential.bind(schema)
    except Refused as e:
        pytest.skip(f"not compared: {e}")
    report = []
    for i, instance in enumerate(instances):
        walk = differential.compare(schema, bound, instance)
        report += [f"instance {i}, {d}" for d in walk.unexplained[:3]]
    assert not report, "decc and llguidance disagree (unexplained):\n" + "\n".join(report)


@pytest.mark.model
@needs_llguidance
@pytest.mark.parametrize("name", sorted(INLINE))
def test_inline_cases_are_compared_to_the_end(differential: Differential, name: str) -> None:
    """Both engines take every inline schema and walk each instance through EOS: the comparison above
    cannot pass by skipping them."""
    schema, instances = INLINE[name]
    bound = differential.bind(schema)
    for instance in instances:
        text = json.dumps(instance, separators=SEPS, ensure_ascii=False)
        walk = differential.compare(schema, bound, instance)
        assert walk.stopped == ""
        assert walk.steps == len(differential.tok.encode(text, add_special_tokens=False)) + 1


@pytest.mark.model
@needs_llguidance
@pytest.mark.model
@needs_llguidance
def test_each_filter_explains_something(differential: Differential) -> None:
    """Every named filter is met on the inline cases, so none is dead code that could hide a change."""
    seen: set[str] = set()
    for schema, instances in INLINE.values():
        bound = differential.bind(schema)
        for instance in instances:
            seen |= set(differential.compare(schema, bound, instance).explained)
    expected = {"separator-space", "forced-prefix", "negative-zero", "del-in-string"}
    expected |= {"escape-spelling", "pattern-escape", "number-spelling", "unicode-space"}
    assert expected <= seen, expected - seen


def test_a_real_difference_is_reported(differential: Differential) -> None:
    """decc bound to one enum and llguidance to another: the filters must not explain that away."""
    decc_side = differential.bind({"enum": ["red", "green"]})[0]
    llg_side = differential.bind({"enum": ["red", "blue"]})[1]
    walk = differential.compare({"enum": ["red"]}, (decc_side, llg_side), "red")
    first = walk.unexplained[0]
    assert first.prefix == '"' and "'green'" in first.decc_only and "'blue'" in first.llg_only


# -- the helpers, without llguidance -----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
@settings(max_examples=200, deadline=None)
def test_layout_spans_are_the_values_json_dumps_writes(value: Any) -> None:
    lay = layout(value)
    assert lay.text == json.dumps(value, separators=SEPS, ensure_ascii=False).encode()
    for span in lay.spans:
        piece = json.loads(lay.text[span.start : span.end])
        if span.kind == "key":
            assert piece == span.path[-1]
        else:
            at = value
            for part in span.path:
                at = at[part]
            assert piece == at
    assert all(lay.text[i : i + 1] in (b",", b":") for i in lay.separators)


SCHEMA = {"type": "object", "properties": {"a": {}, "b": {}, "c": {}}, "required": ["z"]}


@given(st.permutations(["a", "b", "c", "z", "x"]), st.integers(1, 5))
def test_key_order_oracle(keys: list[str], n: int) -> None:
    """In order exactly when the declared keys present keep a<b<c<z and come before undeclared ones."""
    keys = keys[:n]
    declared = [k for k in keys if k != "x"]
    expected = declared == sorted(declared, key="abcz".index) and (
        "x" not in keys or keys.index("x") == len(keys) - 1
    )
    assert keys_in_schema_order(SCHEMA, dict.fromkeys(keys, 1)) == expected


ORDERED = {"type": "object", "properties": {"a": {}, "b": {}}}


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (ORDERED, False),
        ({"anyOf": [ORDERED, {"type": "object", "additionalProperties": {}}]}, True),  # a free alternative
        ({"anyOf": [ORDERED, {"type": "string"}]}, False),  # that alternative takes no object
        ({"allOf": [ORDERED, {"description": "annotation only"}]}, False),  # a conjunct, not an alternative
        ({"type": "object", "properties": {"x": {"anyOf": [{"$ref": "#"}, {}]}}}, True),
    ],
)
def test_key_order_with_alternatives(schema: dict, expected: bool) -> None:
    """Keys b, a: out of order unless some alternative that takes objects declares no properties."""
    data = (
        {"b": 1, "a": 2}
        if "properties" not in schema or "x" not in schema["properties"]
        else {"x": {"b": 1, "a": 2}}
    )
    assert keys_in_schema_order(schema, data) is expected


@needs_llguidance
@pytest.mark.parametrize("family", CORE_FAMILIES)
def test_masks_agree_on_every_tokenizer_family(tokenizer_family: Any, family: str) -> None:
    """The inline cases again on each tokenizer family (byte-level BPE 50k-152k, SentencePiece with byte
    fallback): masks agree with llguidance's at every step, up to the same named differences."""
    from decc.runtime.model import model_facts

    tok, _ = tokenizer_family(family)
    size, eos = model_facts(family)
    diff = Differential(tok, size, min(eos))
    report = []
    for name, (schema, instances) in sorted(INLINE.items()):
        bound = diff.bind(schema)
        for i, instance in enumerate(instances):
            ids = encode(tok, json.dumps(instance, separators=SEPS, ensure_ascii=False))
            if not all(diff.vocab.token_bytes[t] for t in ids):
                continue  # the tokenizer spells it with a token that is not text (deepseek-coder's stand-ins)
            walk = diff.compare(schema, bound, instance)
            assert walk.stopped == "", f"{name} instance {i}: {walk.stopped}"
            report += [f"{name} instance {i}, {d}" for d in walk.unexplained[:3]]
    assert not report, f"{family}: decc and llguidance disagree (unexplained):\n" + "\n".join(report)
