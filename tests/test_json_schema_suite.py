"""The official JSON Schema Test Suite (draft 2020-12) against `compile_json_schema`, model-free.

Every schema either compiles or is refused cleanly (UnsupportedSchema / InvalidSchema / GrammarLimitError);
a compiled schema must accept every valid instance and reject every invalid one. decc writes object keys in
schema order, so instances are reordered into schema order first (instances that cannot be are skipped).
Integral floats are written as integers (JSON Schema does not tell 1.0 from 1). `format.json` is skipped:
in 2020-12 `format` is an annotation, while decc asserts it.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from _suite import SUITE, serializations, suite_files
from hypothesis import given, settings

from decc import testing
from decc.grammars import ByteDFA, GrammarLimitError
from decc.grammars.contextfree.cfg_grammar import Grammar
from decc.grammars.contextfree.earley import Recognizer
from decc.grammars.contextfree.rtn import build_rtn
from decc.grammars.json.json_formats import FORMATS
from decc.grammars.json.json_schema import InvalidSchema, UnsupportedSchema, compile_json_schema


@functools.cache
def _compiled(path: Path, index: int) -> Any:
    """What decc compiles one schema of the suite to (a ByteDFA, or a grammar for recursive schemas), or
    None when decc refuses it; shared by this module's tests."""
    schema = json.loads(path.read_text())[index]["schema"]
    try:
        return compile_json_schema(schema)
    except (UnsupportedSchema, InvalidSchema, GrammarLimitError):
        return None


def _accepts(compiled: Any, data: bytes) -> bool:
    """Byte-level acceptance by a ByteDFA or, for recursive schemas, by the grammar's Earley recognizer."""
    if isinstance(compiled, Grammar):
        return Recognizer(build_rtn(compiled)).accepts(data)
    return compiled.accepts(data)


@pytest.mark.skipif(not SUITE.is_dir(), reason="JSON Schema Test Suite not found")
def test_json_schema_suite() -> None:
    rows = []
    wrong: list[str] = []
    totals = [0, 0, 0, 0, 0, 0, 0]
    for path in suite_files():
        counts = [0, 0, 0, 0, 0, 0, 0]  # compiled, unsupported, valid ok/total, invalid ok/total, skipped
        for index, group in enumerate(json.loads(path.read_text())):
            schema = group["schema"]
            dfa = _compiled(path, index)
            if dfa is None:
                counts[1] += 1
                continue
            counts[0] += 1
            for test in group["tests"]:
                texts = serializations(test["data"], schema)
                if texts is None:
                    counts[6] += 1
                    continue
                verdicts = {_accepts(dfa, t.encode()) for t in texts}
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


# -- soundness sweep: strings drawn from every schema decc compiles are valid by jsonschema ----------------

# The formats decc asserts that jsonschema can check here (all of them with the `test` extra's format
# packages installed).
CHECKED_FORMATS = set(FORMATS) & set(jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers)
SWEEP_DRAWS = 4


def _sweep_groups() -> list[tuple[Path, int]]:
    if not SUITE.is_dir():
        return []
    files = sorted(SUITE.glob("*.json")) + sorted(SUITE.glob("optional/format/*.json"))
    return [(p, i) for p in files for i in range(len(json.loads(p.read_text())))]


def _sweep_check(dfa: Any, validator: jsonschema.Validator, where: str):
    @settings(max_examples=SWEEP_DRAWS, derandomize=True, database=None, deadline=None)
    @given(testing.from_constraint(dfa))
    def check(text: str) -> None:
        error = next(iter(validator.iter_errors(json.loads(text))), None)
        assert error is None, f"{where}: {text!r}: {error.message if error else ''}"

    return check


def _python_reads_patterns(schema: Any) -> bool:
    """Every `pattern` and `patternProperties` key in `schema` compiles with Python's `re` (jsonschema's
    regex engine)."""
    if isinstance(schema, dict):
        patterns = [schema.get("pattern"), *(schema.get("patternProperties") or {})]
        for p in patterns:
            try:
                if isinstance(p, str):
                    re.compile(p)
            except re.error:
                return False
        return all(_python_reads_patterns(v) for k, v in schema.items() if k not in ("const", "enum"))
    if isinstance(schema, list):
        return all(_python_reads_patterns(v) for v in schema)
    return True


@pytest.mark.skipif(not SUITE.is_dir(), reason="JSON Schema Test Suite not found")
def test_drawn_strings_are_valid_for_every_suite_schema() -> None:
    """`decc.testing.from_constraint` over each compiled schema: a few draws each, judged by jsonschema
    (draft 2020-12, asserting the formats decc asserts). Compiles are shared with the test above."""
    checker = jsonschema.FormatChecker(CHECKED_FORMATS)
    failures: list[str] = []
    drawn = 0
    for path, index in _sweep_groups():
        dfa = _compiled(path, index)
        if dfa is None or (isinstance(dfa, ByteDFA) and dfa.is_empty()):
            continue
        group = json.loads(path.read_text())[index]
        if not _python_reads_patterns(group["schema"]):
            continue  # e.g. `\p{Letter}`: decc enforces it, but jsonschema's `re` cannot judge the draws
        validator = jsonschema.Draft202012Validator(group["schema"], format_checker=checker)
        where = f"{path.relative_to(SUITE)}: {group['description']}"

        check = _sweep_check(dfa, validator, where)
        try:
            check()
        except AssertionError as e:  # hypothesis has shrunk it: the minimal counterexample
            failures.append(str(e).splitlines()[0])
        drawn += 1
    assert drawn > 150, f"only {drawn} schemas compiled: is the suite complete?"
    assert not failures, "\n".join(failures)


def test_date_format_knows_month_lengths() -> None:
    dfa = compile_json_schema({"type": "string", "format": "date"})
    assert not dfa.accepts(b'"2021-02-30"') and not dfa.accepts(b'"2021-09-31"')


def test_time_format_refuses_every_leap_second() -> None:
    """RFC 3339 allows 23:59:60 UTC; decc refuses second 60 everywhere, like jsonschema's checker (being
    exact would take an automaton remembering the local hour and minute: see json_formats)."""
    dfa = compile_json_schema({"type": "string", "format": "time"})
    assert not dfa.accepts(b'"23:59:60Z"') and not dfa.accepts(b'"22:59:60Z"')
    assert dfa.accepts(b'"23:59:59Z"')
