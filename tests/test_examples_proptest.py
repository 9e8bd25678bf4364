"""`decc test` passes on every program in examples/ (new examples are covered automatically)."""

from __future__ import annotations

from pathlib import Path

import pytest

from decc.cli import main

pytestmark = pytest.mark.model
EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.dec"))


# hypothesis-jsonschema cannot generate instances of a recursive schema: `decc test`'s completeness check
# (decc/proptest.py `independent`) needs to walk its grammar instead, as it does for grammar(...). Strict:
# this fails once that is fixed, and the mark goes.
KNOWN = {"recursive.dec": "proptest: no independent generator for recursive JSON schemas yet"}
PARAMS = [
    pytest.param(p, marks=pytest.mark.xfail(reason=KNOWN[p.name], strict=True)) if p.name in KNOWN else p
    for p in EXAMPLES
]


@pytest.mark.parametrize("path", PARAMS, ids=[p.name for p in EXAMPLES])
def test_decc_test_passes_on_example(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["test", str(path), "--draws", "8", "--seed", "0", "--allow-imports"])  # models.py: ours
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.rstrip().endswith("PASS") and "FAILED" not in out
