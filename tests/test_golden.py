"""Golden files for the compiler stages: `decc compile --emit ast|ir|opt` must not drift silently.

Regenerate after an intended change with `DECC_UPDATE_GOLDEN=1 pytest tests/test_golden.py` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from decc.compiler.pipeline import compile_program
from decc.compiler.printer import print_ast, print_ir
from decc.dsl import parse_file

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.dec"))
STAGES = ("ast", "ir", "opt", "plan")


def render(path: Path, stage: str) -> str:
    tree = parse_file(path)
    if stage == "ast":
        return print_ast(tree)
    notes: list[str] = []
    module = compile_program(tree, stop_after="ir" if stage == "ir" else None, remarks=notes)
    if stage == "plan":  # needs the model's tokenizer (not its weights)
        from decc.api import Program
        from decc.compiler.plan import print_plan

        return print_plan(Program(tree, module).plan())
    if stage == "opt":  # what each optimization pass did, as `decc compile --emit opt` prints it
        return print_ir(module) + "".join(f"// {line}\n" for line in notes)
    return print_ir(module)


@pytest.mark.parametrize(
    "stage", [pytest.param(s, marks=pytest.mark.model) if s == "plan" else s for s in STAGES]
)
@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, stage: str) -> None:
    # Paths in spans are reported as given; run from the golden folder so files are location-independent.
    src = GOLDEN / f"{case}.dec"
    expected_path = GOLDEN / f"{case}.{stage}"
    actual = render(src, stage)
    if os.environ.get("DECC_UPDATE_GOLDEN"):
        expected_path.write_text(actual)
    assert expected_path.exists(), f"missing golden file {expected_path.name}; run with DECC_UPDATE_GOLDEN=1"
    assert actual == expected_path.read_text()
