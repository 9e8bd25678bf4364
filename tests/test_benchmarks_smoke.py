"""Every benchmark script runs (a few tiny steps, `--smoke`) as `make bench` runs it, from a fresh process
with `benchmarks/` first on `sys.path`, so none rots unnoticed; peers that are not installed (xgrammar,
llguidance) are skipped by the scripts themselves, not failed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@pytest.mark.model
def test_maskbench_mode_runs_and_skips_bad_rows(tmp_path: Path) -> None:
    """`masks.py --maskbench` on a tiny MaskBench-shaped folder: the good rows give one JSON line per
    engine x schema with the outcome the labels imply, bad rows are reported and skipped (no traceback),
    and an out-of-order valid instance goes to the `order` column, not to `valid rejected`."""
    data = tmp_path / "data"
    data.mkdir()
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}}
    tests = [
        {"description": "", "valid": True, "data": {"a": 1, "b": "x"}},
        {"description": "", "valid": True, "data": {"b": "x", "a": 1}},  # keys out of schema order
        {"description": "", "valid": False, "data": {"a": "one"}},
    ]
    row = {"description": "", "meta": {}, "schema": schema, "tests": tests}
    (data / "good.json").write_text(json.dumps(row))
    (data / "no_tests.json").write_text(json.dumps({"schema": schema}))
    (data / "broken.json").write_text("{not json")
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DECC_MASKBENCH": str(data)}
    args = [
        "--maskbench",
        "--engines",
        "decc,decc-eager",
        "--sample",
        "0",
        "--timeout",
        "120",
        "--out",
        str(out),
    ]
    args += ["--clock", "cpu"]  # process CPU times: the mode for a shared machine
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / "masks.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "Traceback" not in run.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["engine"], r["file"], r["outcome"]) for r in records] == [
        ("decc", "good.json", "passing"),
        ("decc-eager", "good.json", "passing"),  # the same engine, every state classified at compile
    ]
    for r in records:
        assert (r["valid"], r["order"], r["invalid"]) == (1, 1, 1)
        assert r["order_rejected"] == 1 and r["compile_ms"] > 0
    assert "broken.json: skipped" in run.stdout and "no_tests.json: skipped" in run.stdout
    assert "process CPU times" in run.stdout
    assert "- decc-eager: mask p99.9 / max " in run.stdout  # the tails past the table's p99
    tables = [line for line in run.stdout.splitlines() if line.startswith("| decc")]
    assert len(tables) == 2
    for table in tables:
        assert [c.strip() for c in table.split("|")[2:9]] == ["1", "0", "0", "0", "0", "0", "1"]


WHYS = ["ok", "token 0 (5) not in mask", "EOS not allowed at the end", "error: ValueError: boom | x.py:1"]


@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.sampled_from(WHYS)), max_size=6))
def test_maskbench_outcome_follows_its_definition(tests: list[tuple[bool, bool, str]]) -> None:
    """A compiled schema's outcome, from (label, keys out of order, walk result) per instance: an error
    wins, then a valid instance rejected, then an invalid one accepted; out-of-order valid instances only
    count in `order_rejected`."""
    sys.path.insert(0, str(BENCHMARKS))
    from maskbench.data import Instance, Row
    from maskbench.runner import record

    row = Row("f.json", {}, tuple(Instance(v, "{}", None, v and o) for v, o, _ in tests))
    reply = {
        "outcome": "compiled",
        "ttfm": 0.001,
        "results": [(w, 3) for *_, w in tests],
        "fills": [],
        "adv": [],
    }
    counted = [(v, w) for v, o, w in tests if not (v and o)]
    if any(w.startswith("error") for *_, w in tests):
        expected = "error"
    elif any(v and w != "ok" for v, w in counted):
        expected = "valid rejected"
    elif any(not v and w == "ok" for v, w in counted):
        expected = "invalid accepted"
    else:
        expected = "passing"
    rec = record("decc", row, reply)
    assert rec["outcome"] == expected
    assert rec["order_rejected"] == sum(v and o and w != "ok" for v, o, w in tests)
    assert rec["valid"] + rec["order"] + rec["invalid"] == len(tests) and rec["tokens"] == 3 * len(tests)


def test_sentencepiece_instances_are_tokenized_in_context() -> None:
    """A SentencePiece-style tokenizer (Metaspace, prefix space on the first word) writes a text encoded
    alone as `▁{...`; the benchmark tokenizes the instance as a model writes it after a prompt: `{...`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    sys.path.insert(0, str(BENCHMARKS))
    from maskbench.engines import adds_prefix_space, encode

    chars = ["\u2581", "\n", "{", "}", '"', "a", "b", ":", ",", "1"]
    core = Tokenizer(
        models.BPE(vocab={c: i for i, c in enumerate(["<unk>", *chars])}, merges=[], unk_token="<unk>")
    )
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    core.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
    tok = PreTrainedTokenizerFast(tokenizer_object=core)
    text = '{"a":1,"b":"a b"}'
    alone = tok.convert_ids_to_tokens(tok.encode(text, add_special_tokens=False))
    assert adds_prefix_space(tok) and alone[0] == "\u2581"
    ids = encode(tok, text)
    assert tok.convert_ids_to_tokens(ids)[0] == "{" and tok.decode(ids) == text
