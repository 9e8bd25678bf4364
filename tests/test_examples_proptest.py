"""`decc test` passes on every program in examples/ (new examples are covered automatically)."""

from __future__ import annotations

from pathlib import Path

import pytest

from decc.cli import main

pytestmark = pytest.mark.model
EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.dec"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_decc_test_passes_on_example(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["test", str(path), "--draws", "8", "--seed", "0", "--allow-imports"])  # models.py: ours
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.rstrip().endswith("PASS") and "FAILED" not in out
