"""benchmarks/gpu.sh, the one command a lent GPU runs, kept working on the CPU: its smoke mode runs both
benchmarks end to end (the Triton kernel interpreted) and writes what it promises; its layout makes decc
importable where decc is not installed (the device image); the kernel check fails a kernel that is wrong.
No timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.runtime.kernels.sample import FusedSample, fused_sample_reference

ROOT = Path(__file__).resolve().parent.parent
GPU_SH = ROOT / "benchmarks" / "gpu.sh"


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHON": sys.executable,
        "DECC_GPU_WORK": str(tmp_path / "w"),
    }
    env["OUT"] = str(tmp_path / "out")
    return subprocess.run(
        ["bash", str(GPU_SH), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.mark.model
def test_smoke_runs_both_benchmarks_and_writes_the_results(tmp_path: Path) -> None:
    run = _run(["--smoke"], tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Traceback" not in run.stdout + run.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["gpu.log", "kernels.json", "throughput.json"]
    log = (out / "gpu.log").read_text()
    assert "## summary" in log and log.rstrip().endswith(f"raw results: {out}")  # tee got the last line

    kernels = json.loads((out / "kernels.json").read_text())
    shapes = {(r["batch"], r["vocab"], r["dtype"], r["sampling"]) for r in kernels["rows"]}
    assert len(shapes) == len(kernels["rows"]) == 4  # batches 1, 3 x samplings mixed, plain (bf16)
    assert all(r["check"] == "ok" and r["fused_s"] > 0 and r["torch_chain_s"] > 0 for r in kernels["rows"])

    throughput = json.loads((out / "throughput.json").read_text())
    loops = {r["schema"]: r["loops"] for r in throughput["rows"]}
    # `bounded` has length counters (host loop); `free` is a counter-free automaton (device loop)
    assert loops == {
        "bounded": {"unconstrained": "device", "json": "host"},
        "free": {"unconstrained": "device", "json": "device"},
    }
    for row in throughput["rows"]:
        assert len(row["tokens_per_row"]) == row["batch"] and row["unconstrained"] > 0 and row["json"] > 0
    table = [line for line in run.stdout.splitlines() if line.startswith("| ") and line.endswith(" s |")]
    assert len(table) == 2 and all("| ok |" in line for line in table), table


def test_layout_makes_decc_importable_without_installing_it(tmp_path: Path) -> None:
    """On the device decc is not installed: `--layout` maps pyproject's package-dir to a folder whose
    modules are the tree's own files (a run from outside the repository imports them from there)."""
    dest = tmp_path / "src"
    run = _run(["--layout", str(dest)], tmp_path)
    assert run.returncode == 0, run.stderr
    code = (
        "import decc, decc.runtime.batch, decc.grammars.json.json_schema as j, decc.dsl.parser as p\n"
        "p.lark_parser()\n"  # reads dec.lark beside the module
        "print(decc.__file__, decc.runtime.batch.__file__, j.__file__, p.__file__, sep='\\n')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(dest)}
    imported = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    files = [Path(line) for line in imported.stdout.split()]
    assert all(f.is_relative_to(dest) for f in files), files
    targets = [f.resolve().relative_to(ROOT).as_posix() for f in files]
    assert targets == [
        "decc/__init__.py",
        "runtime/batch.py",
        "grammars/json/json_schema.py",
        "dsl/parser.py",
    ]


def _sampler_kernels() -> ModuleType:
    """The benchmark script, imported as a module."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import sampler_kernels

    return sampler_kernels


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 4),
    vocab=st.integers(33, 300),
    sampling=st.sampled_from(["topp", "topk", "mixed", "plain"]),
    fault=st.sampled_from([None, "tokens", "logprob", "log_mass"]),
    row=st.integers(0, 3),
)
def test_kernel_check_fails_exactly_the_wrong_kernels(
    batch: int, vocab: int, sampling: str, fault: str | None, row: int
) -> None:
    """The check the benchmark runs before timing: a kernel equal to the reference passes; one that moves
    a row's token, or its log-probability or log-mass by 0.01, is reported."""
    bench = _sampler_kernels()
    case = bench.make_case(batch, vocab, torch.float32, sampling, "cpu")
    row = row % batch

    def kernel(*args: torch.Tensor) -> FusedSample:
        out = fused_sample_reference(*args)
        if fault == "tokens":
            out.tokens[row] = (out.tokens[row] + 1) % vocab
        elif fault is not None:
            getattr(out, fault)[row] += 0.01
        return out

    verdict = bench.check_kernel(kernel, case)
    assert (verdict == "ok") == (fault is None), verdict
