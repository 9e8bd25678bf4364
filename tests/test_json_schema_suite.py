"""The official JSON Schema Test Suite (draft 2020-12) against `compile_json_schema`, model-free.

Every schema either compiles or is refused cleanly (UnsupportedSchema / InvalidSchema / GrammarLimitError);
a compiled schema must accept every valid instance and reject every invalid one. decc writes object keys in
schema order, so instances are reordered into schema order first (instances that cannot be are skipped).
Integral floats are written as integers (JSON Schema does not tell 1.0 from 1). `format.json` is skipped:
in 2020-12 `format` is an annotation, while decc asserts it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from decc.grammars import GrammarLimitError
from decc.grammars.json_schema import InvalidSchema, UnsupportedSchema, compile_json_schema

SUITE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "json-schema-test-suite"
    / "tests"
    / "draft2020-12"
)
SKIP_FILES = {"format.json"}


class _Skip(Exception):
    pass


def _resolve(root: Any, s: Any, depth: int = 0) -> Any:
    while isinstance(s, dict) and "$ref" in s and depth < 20:
        ref = s["$ref"]
        if not ref.startswith("#/") and ref != "#":
            raise _Skip
        t = root
        for part in ref[2:].split("/") if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            t = t[int(part)] if isinstance(t, list) else t[part]
        s = t
        depth += 1
    return s


def _order(root: Any, s: Any) -> list[str]:
    """Property names in the order decc writes them: own properties, then those of allOf branches."""
    s = _resolve(root, s)
    if not isinstance(s, dict):
        return []
    names = list(s.get("properties", {}))
    for sub in s.get("allOf", []):
        names += [n for n in _order(root, sub) if n not in names]
    for n in s.get("required", []):
        if n not in names:
            names.append(n)
    return names


def _reorder(root: Any, s: Any, v: Any) -> Any:
    if isinstance(v, float):
        if not math.isfinite(v):
            raise _Skip
        return int(v) if v.is_integer() else v
    s = _resolve(root, s)
    if isinstance(v, list):
        if not isinstance(s, dict):
            return [_reorder(root, True, x) for x in v]
        prefix = s.get("prefixItems", s.get("items") if isinstance(s.get("items"), list) else [])
        rest = (
            s.get("items", True) if not isinstance(s.get("items"), list) else s.get("additionalItems", True)
        )
        return [_reorder(root, prefix[i] if i < len(prefix) else rest, x) for i, x in enumerate(v)]
    if isinstance(v, dict):
        if not isinstance(s, dict):
            if len(v) > 1:
                raise _Skip
            return {k: _reorder(root, True, x) for k, x in v.items()}
        if len(v) > 1 and any(k in s for k in ("anyOf", "oneOf")):
            raise _Skip
        order = _order(root, s)
        consts = [s["const"]] if "const" in s else list(s.get("enum", []))
        for c in consts:
            if isinstance(c, dict) and set(c) == set(v):
                order = list(c)
                break
        keys = [k for k in order if k in v] + [k for k in v if k not in order]
        props = s.get("properties", {})
        return {k: _reorder(root, props.get(k, True), v[k]) for k in keys}
    return v


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
                    inst = _reorder(schema, schema, test["data"])
                except (_Skip, KeyError, IndexError, TypeError, ValueError):
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
