"""The official JSON Schema Test Suite (draft 2020-12) against `compile_json_schema`, model-free.

Every schema either compiles or is refused cleanly (UnsupportedSchema / InvalidSchema / GrammarLimitError);
a compiled schema must accept every valid instance and reject every invalid one. decc writes object keys in
schema order, so instances are reordered into schema order first (instances that cannot be are skipped).
Integral floats are written as integers (JSON Schema does not tell 1.0 from 1). `format.json` is skipped:
in 2020-12 `format` is an annotation, while decc asserts it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from decc.grammars import GrammarLimitError
from decc.grammars.json_schema import InvalidSchema, UnsupportedSchema, compile_json_schema
from decc.testing import SchemaOrderError, to_schema_order

SUITE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "json-schema-test-suite"
    / "tests"
    / "draft2020-12"
)
SKIP_FILES = {"format.json"}


def _files() -> list[Path]:
    if not SUITE.is_dir():
        return []
    return sorted(p for p in SUITE.glob("*.json") if p.name not in SKIP_FILES)


@pytest.mark.skipif(not SUITE.is_dir(), reason="JSON Schema Test Suite not found")
def test_json_schema_suite() -> None:
    rows = []
    wrong: list[str] = []
    totals = [0, 0, 0, 0, 0, 0, 0]
    for path in _files():
        counts = [0, 0, 0, 0, 0, 0, 0]  # compiled, unsupported, valid ok/total, invalid ok/total, skipped
        for group in json.loads(path.read_text()):
            schema = group["schema"]
            try:
                dfa = compile_json_schema(schema)
            except (UnsupportedSchema, InvalidSchema, GrammarLimitError):
                counts[1] += 1
                continue
            counts[0] += 1
            for test in group["tests"]:
                try:
                    inst = to_schema_order(test["data"], schema)
                except (SchemaOrderError, KeyError, IndexError, TypeError, ValueError):
                    counts[6] += 1
                    continue
                texts = [json.dumps(inst), json.dumps(inst, separators=(",", ":"))]
                verdicts = {dfa.accepts(t.encode()) for t in texts}
                if test["valid"]:
                    counts[3] += 1
                    counts[2] += verdicts == {True}
                else:
                    counts[5] += 1
                    counts[4] += verdicts == {False}
                if verdicts != {test["valid"]}:
                    wrong.append(f"{path.name}: {group['description']} / {test['description']}: {texts[1]}")
        rows.append((path.name, counts))
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
    print()
    print(f"{'file':32} {'compiled':>8} {'unsupp':>7} {'valid ok':>10} {'invalid ok':>11} {'skipped':>8}")
    for name, c in [*rows, ("TOTAL", totals)]:
        print(f"{name:32} {c[0]:8} {c[1]:7} {c[2]:>4}/{c[3]:<5} {c[4]:>5}/{c[5]:<5} {c[6]:8}")
    assert not wrong, "\n".join(wrong[:40])
