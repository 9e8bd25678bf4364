"""The wiring of `engine="vllm"` (decc/api.py, decc/cli.py) with a stand-in for decc.runtime.vllm_engine:
one runner per Program, made lazily from the program's plan, model, dtype and device; runs, batches, streams
and `decc run --engine vllm --inputs/--out` go to it and never load decc's own model; a missing vLLM is a
user error naming the extra. What vLLM does with a plan is tested against the real vLLM in its own venv."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import decc
from decc.api import Program
from decc.cli import main
from decc.errors import DeccError
from decc.runtime.executor import Result, StepResult

SRC = 'input city: str = "Paris"\n"City: {city}. Answer: "\ngen answer { where: regex(r"[a-z]+"), max_tokens: 5 }\n'


class FakeRunner:
    """Records what it was given; its value for a row is the row's city, lower-cased (not a model's)."""

    made: list[FakeRunner] = []

    def __init__(self, plan: Any, model: str, *, dtype: str | None = None, device: str | None = None) -> None:
        self.plan, self.model, self.dtype, self.device = plan, model, dtype, device
        self.batches: list[list[dict[str, Any]]] = []
        self.closed = False
        FakeRunner.made.append(self)

    def run_batch(self, inputs: Sequence[Mapping[str, Any]], *, seed: int | None = None) -> list[Result]:
        assert not self.closed
        self.batches.append([dict(row) for row in inputs])
        return [self._result(row.get("city", "Paris").lower()) for row in inputs]

    @staticmethod
    def _result(value: str) -> Result:
        step = StepResult("answer", value, (1, 2), -0.5, "stop")
        return Result({"answer": value}, value, [1, 2], -0.5, {"answer": step})

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> type[FakeRunner]:
    module = types.ModuleType("decc.runtime.vllm_engine")
    module.VllmRunner = FakeRunner  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "decc.runtime.vllm_engine", module)
    FakeRunner.made = []

    def no_model(self: Program) -> None:
        raise AssertionError("engine vllm loaded decc's own model")

    monkeypatch.setattr(Program, "language_model", no_model)
    return FakeRunner


def test_one_runner_made_lazily_from_the_program(fake_vllm: type[FakeRunner]) -> None:
    program = decc.loads(SRC, engine="vllm", dtype="float32", device="cpu")
    assert program.engine == "vllm" and fake_vllm.made == []  # loading starts nothing
    assert program.run(city="Rome")["answer"] == "rome"
    assert program.run()["answer"] == "paris"
    [runner] = fake_vllm.made
    assert runner.plan is program.plan() and runner.model == program.model
    assert (runner.dtype, runner.device) == ("float32", "cpu")
    assert runner.batches == [[{"city": "Rome"}], [{}]]
    program.close()
    assert runner.closed
    program.run()  # a run after close starts a new runner
    assert len(fake_vllm.made) == 2


def test_run_batch_goes_in_batches_in_order(fake_vllm: type[FakeRunner]) -> None:
    program = decc.loads(SRC, engine="vllm")
    rows = [{"city": c} for c in ("A", "B", "C", "D", "E")]
    seen: list[tuple[int, str]] = []
    results = program.run_batch(rows, batch_size=2, on_result=lambda i, r: seen.append((i, r["answer"])))
    assert [r["answer"] for r in results] == ["a", "b", "c", "d", "e"]
    assert seen == list(enumerate(["a", "b", "c", "d", "e"]))
    [runner] = fake_vllm.made
    assert [len(b) for b in runner.batches] == [2, 2, 1]


def test_stream_gives_each_value_in_one_piece(fake_vllm: type[FakeRunner]) -> None:
    events = list(decc.loads(SRC, engine="vllm").stream(city="Oslo"))
    assert events[:2] == [("answer", ""), ("answer", "oslo")]
    assert isinstance(events[2], Result) and events[2]["answer"] == "oslo" and len(events) == 3


def test_overrides_keep_the_engine(fake_vllm: type[FakeRunner]) -> None:
    program = decc.loads(SRC, engine="vllm").with_overrides(max_tokens=3, seed=4)
    assert program.engine == "vllm"
    program.run()
    assert fake_vllm.made[0].plan.steps is program.plan().steps


def test_engine_decc_never_imports_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "decc.runtime.vllm_engine", None)  # importing it would fail
    program = decc.loads(SRC)
    assert program.engine == "decc"
    program.plan()  # compiling and planning for decc's engine touch no vLLM


def test_a_missing_vllm_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "decc.runtime.vllm_engine", None)
    with pytest.raises(DeccError) as info:
        decc.loads(SRC, engine="vllm").run()
    text = info.value.render()
    assert "engine 'vllm' needs vLLM, which is not installed here" in text
    assert "decc[vllm]" in text and "make vllm-env" in text


def test_a_runner_that_cannot_import_vllm_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("decc.runtime.vllm_engine")

    def runner(*args: Any, **kwargs: Any) -> None:
        raise ModuleNotFoundError("No module named 'vllm'", name="vllm")

    module.VllmRunner = runner  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "decc.runtime.vllm_engine", module)
    with pytest.raises(DeccError, match=r"not installed here \(vllm\)"):
        decc.loads(SRC, engine="vllm").run()


def test_cli_run_inputs_out(
    fake_vllm: type[FakeRunner], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    program = tmp_path / "p.dec"
    program.write_text(SRC)
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"city": c}) + "\n" for c in ("X", "Y", "Z")))
    out = tmp_path / "out.jsonl"
    argv = ["run", str(program), "--engine", "vllm", "--inputs", str(inputs), "--out", str(out)]
    assert main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["index"], r["values"]["answer"]) for r in rows] == [(0, "x"), (1, "y"), (2, "z")]
    assert [len(b) for b in fake_vllm.made[0].batches] == [3]  # one vLLM batch (--batch-size 64 there)
    assert fake_vllm.made[0].closed  # decc run shuts the engine down as it ends
    assert main(argv) == 0  # a rerun finds every row written
    assert len(fake_vllm.made) == 1  # and starts no engine
    assert main(["run", str(program), "--engine", "vllm", "--json", "-i", "city=Q"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["values"] == {"answer": "q"}


def test_cli_refuses_ray_with_vllm(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("{}\n")
    assert main(["run", "examples/hello.dec", "--engine", "vllm", "--inputs", str(inputs), "--ray"]) == 2
    err = capsys.readouterr().err
    assert "--ray does not go with --engine vllm" in err and "Traceback" not in err
