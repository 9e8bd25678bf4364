"""The optimization passes change how many forward passes a run takes, never what it outputs: every
example program gives the same values and tokens with the passes on and off (greedy steps, and sampled
steps with a seed: the draw is a function of logits, mask and key, so it is the same with drafts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import decc
from decc.compiler import ir
from decc.compiler.pipeline import OPTIMIZATIONS, compile_program
from decc.compiler.trust import Trust
from decc.dsl import parse_file

EXAMPLES = sorted(Path(__file__).resolve().parent.parent.joinpath("examples").glob("*.dec"))


def _comparable(program: decc.Program) -> bool:
    """Some step drafts, and every drafting step is deterministic (greedy or seeded)."""
    drafting = [op for op in program.ir.generates() if op.draft]
    return bool(drafting) and all(
        isinstance(op.search, ir.Sampling) and (op.search.greedy or op.search.seed is not None)
        for op in drafting
    )


@pytest.mark.model
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_are_the_same_with_and_without_passes(path: Path) -> None:
    opt = decc.load(path)
    if not _comparable(opt):
        pytest.skip("no deterministic step the passes touch")
    plain = decc.load(path, no_opt=OPTIMIZATIONS)
    assert not any(op.draft for op in plain.ir.generates())
    a, b = opt.run(), plain.run()
    assert a.values == b.values
    assert a.token_ids == b.token_ids
    assert a.logprob == pytest.approx(b.logprob, abs=1e-3)
    assert a.forward_passes <= b.forward_passes


def test_unknown_pass_names_are_user_errors() -> None:
    with pytest.raises(decc.DeccError, match="no optimization pass named 'fast'"):
        decc.loads("gen x { max_tokens: 2 }", no_opt=["fast"])


AUTOMATON_PASSES = ("product", "prune", "minimize")


@pytest.mark.model
@pytest.mark.parametrize("name", AUTOMATON_PASSES)
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_are_the_same_without_each_automaton_pass(path: Path, name: str) -> None:
    """Where a pass changes an automaton, the run without it (the lazy product, dead states cut when
    lifted to tokens, an unminimized DFA) gives the same values and tokens."""
    notes: list[str] = []
    compile_program(parse_file(path), remarks=notes, trust=Trust(allow_imports=True))  # examples/models.py
    if f"{name}: nothing to do" in notes:
        pytest.skip(f"{name} changes nothing here")
    opt, plain = decc.load(path), decc.load(path, no_opt=[name])
    if not all(
        isinstance(op.search, ir.Sampling) and (op.search.greedy or op.search.seed is not None)
        for op in opt.ir.generates()
    ):
        pytest.skip("a search policy or an unseeded draw: compared on their own tests")
    a, b = opt.run(), plain.run()
    assert a.values == b.values
    assert a.token_ids == b.token_ids


def _benchmark_tasks() -> Any:
    """benchmarks/optimizer.py, loaded by path (benchmarks are scripts, not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "optimizer.py"
    spec = importlib.util.spec_from_file_location("decc_bench_optimizer", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.model
def test_the_benchmark_json_tasks_are_the_same_with_and_without_passes() -> None:
    """The JSON extraction tasks of benchmarks/optimizer.py, greedy: the same values and tokens with every
    pass on and with every pass off, in fewer forward passes. The first 48 tokens of each (a third to a
    half of the value: the keys and values of its first fields), to keep the suite short; the benchmark
    compares the whole values."""
    bench = _benchmark_tasks()
    for name, (schema, what, text) in bench.TASKS.items():
        source = bench.program(schema, what, 48, True)
        opt = decc.loads(source).run(text=text)
        plain = decc.loads(source, no_opt=OPTIMIZATIONS).run(text=text)
        assert opt.values == plain.values, name
        assert opt.token_ids == plain.token_ids, name
        assert opt.forward_passes < plain.forward_passes, name
