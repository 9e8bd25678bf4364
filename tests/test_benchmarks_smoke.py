"""Every benchmark script runs (a few tiny steps, `--smoke`) as `make bench` runs it, from a fresh process
with `benchmarks/` first on `sys.path`, so none rots unnoticed; peers that are not installed (xgrammar,
llguidance) are skipped by the scripts themselves, not failed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))
NO_MODEL = {"draws.py", "sampler_kernels.py"}  # the others load the embedded model or its tokenizer


def test_every_script_is_covered() -> None:
    assert len(SCRIPTS) >= 8 and NO_MODEL <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_script_shadows_an_installed_module(script: str) -> None:
    """A script runs with its folder first on sys.path: a file named like an installed package (such as
    `kernels`, which transformers probes) would be imported in its place."""
    spec = importlib.util.find_spec(Path(script).stem)
    assert spec is None or Path(spec.origin or "").parent == BENCHMARKS, spec


@pytest.mark.parametrize(
    "script", [pytest.param(s, marks=() if s in NO_MODEL else pytest.mark.model) for s in SCRIPTS]
)
def test_script_runs(script: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert "Traceback" not in out.stderr and out.stdout.strip()
