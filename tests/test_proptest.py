"""`decc test`: passes on good programs, fails with a counterexample on bad examples and on a broken matcher."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st

import decc
from decc.cli import main
from decc.proptest import StepReport, check_program, render

pytestmark = pytest.mark.model
ROOT = Path(__file__).resolve().parent.parent


def test_hello_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(ROOT / "examples" / "hello.dec"), "--draws", "30"]) == 0
    out = capsys.readouterr().out
    assert "soundness     30/30 passed  ok" in out and "rejection     3/3 passed  ok" in out
    assert out.rstrip().endswith("PASS")


def test_bad_declared_example_fails_with_counterexample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.dec"
    f.write_text('gen d {\n  where: regex(r"[0-9]{4}")\n  examples: ["2024", "20x4"]\n}\n')
    assert main(["test", str(f), "--draws", "10"]) == 1
    out = capsys.readouterr().out
    assert "counterexample: declared example '20x4' violates the constraint" in out
    assert out.splitlines()[-1].startswith("FAIL: 2 checks failed: gen d examples, gen d completeness")


def test_planted_bug_one_extra_token_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Break the matcher: in one state, the mask also allows the letter 'x'. decc test must notice."""
    program = decc.loads('gen d { where: regex(r"[0-9]{3}") }', "planted.dec")
    (step,) = [s for s in program.plan().steps if hasattr(s, "constraint")]
    automaton = step.constraint.automaton
    bad = program.plan().vocab.token_bytes.index(b"x")
    bitmask = automaton.bitmask.copy()
    bitmask[automaton.start, bad // 32] |= (
        np.int32(1 << (bad % 32)) if bad % 32 < 31 else np.int32(-(1 << 31))
    )
    next_state = dict(zip(*(a.tolist() for a in automaton.edges(0)), strict=True))
    from decc.grammars.tokens.matcher import Matcher

    real_fill, real_advance = Matcher.fill_bitmask, Matcher.advance

    def fill(self: Matcher, row) -> None:  # type: ignore[no-untyped-def]
        real_fill(self, row)
        if self.state == automaton.start:
            row.copy_(__import__("torch").from_numpy(bitmask[automaton.start]))

    def advance(self: Matcher, token: int) -> bool:
        if token == bad and self.state == automaton.start:
            self._state = next(iter(next_state.values()))  # the bug: treat 'x' like a digit
            return True
        return real_advance(self, token)

    monkeypatch.setattr(Matcher, "fill_bitmask", fill)
    monkeypatch.setattr(Matcher, "advance", advance)
    reports = check_program(program, draws=200, seed_value=1)
    text = render(reports, "planted.dec", 200, 1)
    soundness = reports[0].checks[1]
    assert not soundness.ok, text
    assert "does not match the regex" in soundness.failures[0] and "'x" in soundness.failures[0]
    assert text.splitlines()[-1].startswith("FAIL: 1 check failed: gen d soundness"), text


# -- false alarms (issue 18, defect 5) ----------------------------------------------------------------------

LINE = re.compile(r"^    (\w+) +(\d+)/(\d+) passed(?:, (\d+) skipped)?  (ok|FAILED)$")


def assert_consistent(text: str) -> None:
    """Every check line's status agrees with its counts, and its skips are explained, reason by reason."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = LINE.match(line)
        if not m:
            continue
        passed, total, skipped, status = int(m[2]), int(m[3]), int(m[4] or 0), m[5]
        assert (status == "FAILED") == (passed < total), line
        explained = 0
        for follow in lines[i + 1 :]:
            if not follow.startswith("      "):
                break
            if follow.startswith("      skipped "):
                explained += int(follow.split()[1].rstrip(":"))
        assert explained == skipped, (line, text)
    failed = [line for line in lines if LINE.match(line) and line.endswith("FAILED")]
    assert text.splitlines()[-1].startswith("FAIL" if failed else "PASS"), text


def run_test(tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, *args: str) -> tuple[int, str]:
    f = tmp_path / "p.dec"
    f.write_text(source)
    code = main(["test", str(f), *args])
    out = capsys.readouterr().out
    assert_consistent(out)
    return code, out


def test_walk_home_honours_length_counters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After 48 tokens (here: spent in the array) the walk heads home; the way home must write the 20
    characters `minLength` asks for, not close the counted string at once (the mask refuses that)."""
    schema = (
        '{"type":"object","properties":{"a":{"type":"array","items":{"type":"integer"}},'
        '"name":{"type":"string","minLength":20,"maxLength":40}},"required":["a","name"],'
        '"additionalProperties":false}'
    )
    code, out = run_test(tmp_path, capsys, f'gen p {{ where: json(r"""{schema}""") }}\n', "--draws", "30")
    assert "soundness     30/30 passed  ok" in out, out
    assert code == 0, out


def test_uuid_instances_are_judged_before_they_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = '{"type":"object","properties":{"id":{"type":"string","format":"uuid"}},"required":["id"]}'
    code, out = run_test(tmp_path, capsys, f'gen p {{ where: json(r"""{schema}""") }}\n', "--draws", "25")
    assert "completeness  25/25 passed" in out, out
    assert code == 0, out


def test_generated_texts_the_oracle_rejects_are_set_aside_and_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The regex part draws long words; the length part rejects most: set aside, with why, never failed."""
    code, out = run_test(
        tmp_path, capsys, 'gen w { where: regex(r"[a-z]+") & length(max=3) }\n', "--draws", "20"
    )
    assert code == 0, out
    assert "completeness  20/20 passed, " in out, out
    assert "instances from hypothesis' from_regex that the oracle rejects, e.g. " in out, out


def test_unicode_property_regex(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_test(tmp_path, capsys, 'gen w { where: regex(r"\\p{Lu}\\p{L}+") }\n', "--draws", "20")
    assert "soundness     20/20 passed  ok" in out and "completeness  20/20 passed" in out, out
    assert code == 0, out


def test_a_generator_that_cannot_run_is_a_skipped_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse() -> str:
        raise NotImplementedError("no")

    def broken(*args: object, **kwargs: object) -> st.SearchStrategy[str]:
        return st.builds(refuse)

    monkeypatch.setattr(st, "from_regex", broken)
    code, out = run_test(tmp_path, capsys, 'gen d { where: regex(r"[0-9]{2}") }\n', "--draws", "10")
    assert code == 0, out
    assert (
        "      not run: hypothesis' from_regex cannot generate instances (NotImplementedError: no)" in out
    ), out
    assert out.rstrip().endswith("  note: 1 check not run (see above)\nPASS"), out


def test_counterexamples_show_the_tokens_that_led_to_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Break the matcher the other way: after a first digit it refuses the digit 7 (which the mask allows).
    Completeness must say which token was refused after which prefix; the summary names the failed checks."""
    program = decc.loads('gen d { where: regex(r"[0-9]{3}") }', "planted.dec")
    vocab = program.plan().vocab
    seven = vocab.token_bytes.index(b"7")
    from decc.grammars.tokens.matcher import Matcher

    real_advance = Matcher.advance

    def advance(self: Matcher, token: int) -> bool:
        if token == seven and self.state != self.automaton.start:
            return False
        return real_advance(self, token)

    monkeypatch.setattr(Matcher, "advance", advance)
    reports = check_program(program, draws=60, seed_value=0)
    text = render(reports, "planted.dec", 60, 0)
    assert_consistent(text)
    completeness = reports[0].checks[2]
    assert not completeness.ok, text
    failure = completeness.failures[0]
    assert re.search(rf"token \d+ \({seven} '7'\) refused after '\d+' \(tokens \[\d+ '\d+'", failure), failure
    assert text.splitlines()[-1].startswith("FAIL: "), text
    assert "gen d completeness" in text.splitlines()[-1], text


RECURSIVE = {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}


def test_recursive_schema_through_the_api() -> None:
    """A recursive $ref runs on the grammar engine; hypothesis-jsonschema cannot resolve it, so completeness
    draws from decc's grammar walk (judged by jsonschema) instead of failing."""
    from decc import grammars
    from decc.compiler import ir
    from decc.errors import Span
    from decc.proptest import Tokens, check_constraint
    from decc.runtime.model import load_tokenizer

    program = decc.loads('gen d { where: regex(r"[0-9]") }', "vocab.dec")
    vocab = program.plan().vocab
    compiled = grammars.compile_json_schema(RECURSIVE)
    c = ir.JsonSchema(json.dumps(RECURSIVE), Span(0, 0, 1, 1, 1, 1), compiled=compiled)
    checks = check_constraint(
        c, grammars.json_schema(RECURSIVE, vocab), Tokens(vocab, load_tokenizer(program.model)), draws=12
    )
    text = render([StepReport("tree", "recursive", checks)], "api", 12, 0)
    assert_consistent(text)
    assert all(check.ok and check.not_run is None for check in checks), text
    assert "soundness     12/12 passed  ok" in text and "completeness  12/12 passed" in text, text


def test_recursive_schema_program(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = f'gen tree {{ where: json(r"""{json.dumps(RECURSIVE)}""") }}\n'
    code, out = run_test(tmp_path, capsys, source, "--draws", "12")
    assert code == 0 and "completeness  12/12 passed" in out, out
