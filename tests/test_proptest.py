"""`decc test`: passes on good programs, fails with a counterexample on bad examples and on a broken matcher."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import decc
from decc.cli import main
from decc.proptest import check_program, render

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
    assert out.rstrip().endswith("FAIL")


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
    from decc.grammars.matcher import Matcher

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
    assert text.rstrip().endswith("FAIL")
