"""The hostile-input set (benchmarks/hostile.py, at small sizes): each case runs `decc check` in its own
process under a 2 GiB address-space cap, a wall-clock cap and a 3 s compile limit (DECC_COMPILE_SECONDS;
30 s for the inputs that must compile, so that a busy machine does not turn them into limit errors),
and must end with exit 0 where the input is fine, else exit 2 with a positioned error: never exit 70, never
killed by a cap. The big inputs are generated here, never committed."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _hostile() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hostile", ROOT / "benchmarks" / "hostile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hostile"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


hostile = _hostile()
SCALE, COMPILE_SECONDS, WALL = 20, 3.0, 90.0
# An input that must compile gets a generous limit: the outcome, not this machine's speed, is under test.
OK_COMPILE_SECONDS = 30.0
OUTCOMES: list = []


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    yield
    if OUTCOMES:
        print("\nhostile inputs:", hostile.summary(OUTCOMES))


def _params() -> list:
    return [
        pytest.param(c, id=c.name, marks=[] if c.model_free else [pytest.mark.model]) for c in hostile.CASES
    ]


@pytest.mark.parametrize("case", _params())
def test_hostile_input_ends_with_a_result_or_a_positioned_error(case) -> None:  # type: ignore[no-untyped-def]
    outcome = hostile.run_case(case, SCALE, OK_COMPILE_SECONDS if case.expect == 0 else COMPILE_SECONDS, WALL)
    OUTCOMES.append(outcome)
    want = {0: {"ok"}, 2: {"positioned error"}, None: {"ok", "positioned error"}}[case.expect]
    assert outcome.verdict in want, outcome
