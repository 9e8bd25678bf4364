"""Datasets on Ray (decc/distributed.py) on a real two-node cluster: `ray.cluster_utils.Cluster` starts a
head and a worker node in this machine, one CPU each, so the two one-CPU actors must land on different
nodes. The tests that need Ray are marked `ray` (skip them with `-m "not ray"`); `make test` installs the
decc[ray] extra so that they run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import decc
from decc.batch_io import ROW_START
from decc.cli import main
from decc.distributed import run_on_ray
from decc.errors import DeccError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sentiment.dec"
MAX_TOKENS = 3
ROWS = [
    {"review": f"Review {i}: the film was {('dull', 'lovely', 'long')[i % 3]} and {i} minutes."}
    for i in range(12)
]
MB = 1024 * 1024
NEEDS_RAY = "needs the decc[ray] extra: pip install 'decc[ray]'"


def test_ray_not_installed_is_a_user_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps(ROWS[0]) + "\n")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when not installed
    assert main(["run", str(EXAMPLE), "--inputs", str(inputs), "--ray"]) == 2
    err = capsys.readouterr().err
    assert "error: --ray needs Ray Data, which is not installed" in err and "decc[ray]" in err
    assert "Traceback" not in err


@pytest.mark.ray
def test_unreachable_address_is_a_user_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps(ROWS[0]) + "\n")
    ray = pytest.importorskip("ray", reason=NEEDS_RAY)
    assert not ray.is_initialized()  # runs first: connected, decc would use that cluster
    code = main(["run", str(EXAMPLE), "--inputs", str(inputs), "--ray", "--address", "127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: cannot reach the Ray cluster at 127.0.0.1:9" in err and "Traceback" not in err


@pytest.mark.ray
def test_an_actor_pool_larger_than_a_local_ray_is_a_user_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """It would wait for ever for GPUs (or CPUs) a local Ray cannot get."""
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps(ROWS[0]) + "\n")
    ray = pytest.importorskip("ray", reason=NEEDS_RAY)
    assert not ray.is_initialized()
    argv = ["run", str(EXAMPLE), "--inputs", str(inputs), "--ray", "--actors", "1", "--gpus-per-actor", "64"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert (
        "error: the actors need 64 GPUs (1 x 64); this machine's local Ray has" in err
        and "Traceback" not in err
    )
    assert not ray.is_initialized()  # the local Ray it started is stopped


@pytest.fixture(scope="module")
def cluster():
    """A head and a worker node, one CPU and a small object store each, joined by this process."""
    ray = pytest.importorskip("ray", reason=NEEDS_RAY)
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": 80 * MB, "include_dashboard": False},
    )
    c.add_node(num_cpus=1, object_store_memory=80 * MB)
    c.wait_for_nodes()
    ray.init(address=c.address)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def program():
    return decc.load(EXAMPLE).with_overrides(max_tokens=MAX_TOKENS)


@pytest.fixture(scope="module")
def reference(program):
    """The rows `run_batch` gives in this process: what the cluster must give token for token."""
    return [r.to_json() for r in program.run_batch(ROWS, batch_size=4)]


def same_tokens(row: dict, ref: dict) -> bool:
    """Token for token the same run: logprobs may differ in the last bits (batches padded differently)."""
    same = {k: v for k, v in row.items() if k != "logprob"} == {
        k: v for k, v in ref.items() if k != "logprob"
    }
    return same and row["logprob"] == pytest.approx(ref["logprob"], rel=1e-4, abs=1e-4)


@pytest.mark.ray
@pytest.mark.model
def test_rows_on_both_nodes_equal_run_batch(cluster, program, reference) -> None:
    import ray

    bad = {"reveiw": "misspelled"}
    arrived: list[int] = []
    got = run_on_ray(
        program,
        [*ROWS, bad],
        actors=2,
        batch_size=4,
        on_result=lambda i, _: arrived.append(i),
    )
    assert len(ray.nodes()) == 2
    assert set(got.nodes.values()) == {n["NodeID"] for n in ray.nodes()}  # actors ran on both nodes
    assert sorted(arrived) == list(range(len(ROWS)))
    assert sorted(got.results) == list(range(len(ROWS)))
    for i, result in got.results.items():
        assert same_tokens(result.to_json(), reference[i])
    assert list(got.errors) == [len(ROWS)]  # the bad row failed alone, named by its place in the dataset
    assert f"input row {len(ROWS) + 1}: unknown input 'reveiw'" in got.errors[len(ROWS)].message


@pytest.mark.ray
@pytest.mark.model
def test_rerun_after_a_cut_file_runs_only_the_missing_rows(
    cluster, reference, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inputs.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    done = [3, 0, 7, 10, 5]  # written out of order, as the actors return them
    # Rows of an earlier run, marked so that one run again would show; then a row cut by an interrupt.
    kept = "".join(json.dumps({"index": i, **reference[i], "text": "MARK"}) + "\n" for i in done)
    out.write_text(kept + (ROW_START + b'1, "values": {"lab').decode())
    argv = ["run", str(EXAMPLE), "--inputs", str(inputs), "--out", str(out), "--ray", "--actors", "2"]
    assert main([*argv, "--max-tokens", str(MAX_TOKENS), "--batch-size", "2"]) == 0
    err = capsys.readouterr().err
    assert f"{len(done)} of {len(ROWS)} rows already in" in err
    text = out.read_text()
    assert text.startswith(kept)  # the done rows untouched, the cut row gone
    rows = [json.loads(line) for line in text[len(kept) :].splitlines()]
    assert sorted(r["index"] for r in rows) == sorted(set(range(len(ROWS))) - set(done))
    for r in rows:
        assert same_tokens({k: v for k, v in r.items() if k != "index"}, reference[r["index"]])


@pytest.mark.ray
@pytest.mark.model
def test_an_actor_that_cannot_load_the_model_stops_the_run_with_its_error(cluster) -> None:
    """Here: a GPU the nodes lack. The actor's DeccError reaches the driver as itself, not as Ray's text."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    program = decc.load(EXAMPLE, device="cuda").with_overrides(max_tokens=MAX_TOKENS)
    with pytest.raises(DeccError, match="device 'cuda' is not available") as caught:
        run_on_ray(program, ROWS[:2], actors=2, batch_size=1)
    assert "Traceback" not in caught.value.render()
