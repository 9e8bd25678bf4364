"""Batched runs: the same results row for row as running each input alone (seeds included), on the toy
model (many rows, ragged contexts, per-row constraints and samplers) and on the embedded model through
`Program.run_batch` and `decc run --inputs --out` (resumable output)."""

from __future__ import annotations

import json

import pytest

import decc
from decc.cli import main
from decc.grammars.tokens.constraint import regex
from decc.runtime.batch import RowSpec, generate_rows
from decc.runtime.decode import DecodeSession
from decc.runtime.sampling import GREEDY, SamplingParams, make_generator
from decc.runtime.step import StepRules

BOS = 3


def test_rows_decode_as_they_would_alone(toy_lm) -> None:
    lm = toy_lm
    vocab = lm.tokenizer.vocabulary()
    patterns = [None, r"(ab|b)+a?", r"[ab]*c", None, r"c|ab", r"a[bc]{0,3}"]
    contexts = [[BOS], [BOS, 0, 1, 1], [BOS, 2], [BOS, 1, 0, 2, 2, 0], [BOS, 0], [BOS, 1, 1]]
    samplings = [
        GREEDY,
        SamplingParams(greedy=False, seed=1),
        SamplingParams(greedy=False, temperature=0.7, top_k=3, seed=2),
        SamplingParams(greedy=False, top_p=0.8, seed=3),
        GREEDY,
        SamplingParams(greedy=False, min_p=0.1, seed=4),
    ]
    rules = [
        StepRules(6, lm.eos_ids),
        StepRules(5, lm.eos_ids, min_tokens=2),
        StepRules(6, lm.eos_ids, stops=("ba",)),
        StepRules(4, lm.eos_ids, ignore_eos=True),
        StepRules(3, lm.eos_ids),
        StepRules(6, lm.eos_ids, stop_entropy=(False, 0.3, 1)),
    ]

    def matcher(p):
        return regex(p, vocab).matcher() if p else None

    for trial in range(3):  # seeds differ per trial
        specs, alone = [], []
        for ctx, p, s, r in zip(contexts, patterns, samplings, rules, strict=True):
            s = SamplingParams(**{**s.__dict__, "seed": None if s.greedy else s.seed + 10 * trial})
            gen = None if s.greedy else make_generator(s.seed)
            specs.append(RowSpec(ctx, r, s, matcher(p), gen))
            session = DecodeSession(lm)
            session.append(ctx)
            alone.append(
                session.generate(
                    max_tokens=r.max_tokens,
                    sampling=s,
                    matcher=matcher(p),
                    stop=r.stops,
                    ignore_eos=r.ignore_eos,
                    min_tokens=r.min_tokens,
                    stop_entropy=r.stop_entropy,
                )
            )
        batched = generate_rows(lm, specs)
        for a, b in zip(alone, batched, strict=True):
            assert (a.token_ids, a.text, a.finish_reason) == (b.token_ids, b.text, b.finish_reason)
            assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
        for s in specs:  # again with the host work on a worker thread beside the forward pass
            s.generator = None if s.sampling.greedy else make_generator(s.sampling.seed)
            s.matcher = s.matcher.clone() if s.matcher is not None else None
            if s.matcher is not None:
                s.matcher.reset()
        for a, b in zip(alone, generate_rows(lm, specs, overlap=True), strict=True):
            assert (a.token_ids, a.text, a.finish_reason) == (b.token_ids, b.text, b.finish_reason)


def test_a_shared_prefix_is_fed_once(toy_lm) -> None:
    """Rows that share a long prefix: it is fed once (one forward on one row, then copied) and every row
    still decodes what it decodes alone."""
    lm = toy_lm
    vocab = lm.tokenizer.vocabulary()
    head = [BOS, 0, 1, 2, 2, 1, 0, 0, 1, 2, 1]
    tails = [[0], [1, 2, 0], [], [2, 2], [0, 1, 1, 1, 0]]
    samplings = [
        GREEDY,
        SamplingParams(greedy=False, seed=3),
        GREEDY,
        SamplingParams(greedy=False, seed=4),
        GREEDY,
    ]
    specs, alone = [], []
    for k, (tail, s) in enumerate(zip(tails, samplings, strict=True)):
        m = regex(r"(ab|c)+", vocab).matcher() if k % 2 else None
        specs.append(
            RowSpec(head + tail, StepRules(5, lm.eos_ids), s, m, None if s.greedy else make_generator(s.seed))
        )
        session = DecodeSession(lm)
        session.append(head + tail)
        alone.append(session.generate(max_tokens=5, sampling=s, matcher=m.clone() if m else None))
        if m is not None:
            m.reset()
    calls = []
    real = lm.model.forward

    def counting(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape)
        return real(*args, **kwargs)

    lm.model.forward = counting
    try:
        batched = generate_rows(lm, specs)
    finally:
        del lm.model.forward
    assert tuple(calls[0]) == (1, len(head) - 1)  # the shared prefix, once (the shortest row keeps a token)
    assert calls[1][0] == len(tails)
    for a, b in zip(alone, batched, strict=True):
        assert (a.token_ids, a.text, a.finish_reason) == (b.token_ids, b.text, b.finish_reason)
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)


def test_a_rows_past_is_reused_at_its_next_step(toy_lm) -> None:
    """Rows that kept their keys and values after one step feed only the tokens since then at the next,
    and decode what they decode with the whole context fed again (and alone)."""
    lm = toy_lm
    vocab = lm.tokenizer.vocabulary()
    firsts = [[BOS, 0, 1, 2], [BOS, 2, 2, 1, 0, 0, 1], [BOS, 1]]
    specs = [RowSpec(c, StepRules(4, lm.eos_ids), GREEDY, None, None) for c in firsts]
    gens = generate_rows(lm, specs, keep_past=True)
    assert [s.saved.length for s in specs] == [len(c) for c in firsts]  # type: ignore[union-attr]
    seconds = [
        c + list(g.token_ids) + [2, 1] * (k + 1) for k, (c, g) in enumerate(zip(firsts, gens, strict=True))
    ]

    def second(past: bool) -> tuple[list, list]:
        specs2 = []
        for k, ctx in enumerate(seconds):
            s = GREEDY if k != 1 else SamplingParams(greedy=False, seed=9)
            m = regex(r"(ab|c)+", vocab).matcher() if k == 2 else None
            g = None if s.greedy else make_generator(9)
            specs2.append(RowSpec(ctx, StepRules(5, lm.eos_ids), s, m, g, specs[k].saved if past else None))
        calls = []
        real = lm.model.forward

        def counting(*args, **kwargs):
            calls.append(tuple(kwargs["input_ids"].shape))
            return real(*args, **kwargs)

        lm.model.forward = counting
        try:
            return generate_rows(lm, specs2), calls
        finally:
            del lm.model.forward

    (reused, calls), (fresh, _) = second(True), second(False)
    width = max(len(c) - len(f) for c, f in zip(seconds, firsts, strict=True))
    assert calls[0] == (3, width)  # only what came after each row's past
    for a, b in zip(reused, fresh, strict=True):
        assert (a.token_ids, a.text, a.finish_reason) == (b.token_ids, b.text, b.finish_reason)
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)


PROGRAM = """input thing: str
input n: int = 2
user "Write {n} words about {thing}."
assistant {
  gen words { max_tokens: 10, stop: "." }
}
user "Is it big? Answer yes or no."
assistant {
  gen big { where: choice("yes", "no") }
  if big == "yes" {
    gen why { max_tokens: 6, search: sample(seed=5, temperature=0.8) }
  } else {
    gen colour { where: regex(r"[a-z]{3,8}"), search: sample(seed=6) }
  }
}
"""
INPUTS = [{"thing": "a whale"}, {"thing": "an ant", "n": 3}, {"thing": "the sun"}, {"thing": "a pebble"}]


@pytest.mark.model
def test_run_batch_equals_each_run_alone() -> None:
    program = decc.loads(PROGRAM, "batch.dec")
    batched = program.run_batch(INPUTS, batch_size=3)
    for given, got in zip(INPUTS, batched, strict=True):
        alone = program.run(**given)
        assert got.values == alone.values
        assert got.token_ids == alone.token_ids
        assert got.logprob == pytest.approx(alone.logprob, abs=1e-3)


@pytest.mark.model
def test_cli_batch_output_is_resumable(tmp_path, capsys) -> None:
    src = tmp_path / "p.dec"
    src.write_text(PROGRAM)
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in INPUTS[:3]) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["run", str(src), "--inputs", str(data), "--out", str(out), "--batch-size", "2"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2]
    # An interrupt mid-write leaves row 0 and half of row 1: a rerun keeps row 0 and redoes only 1 and 2.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text(lines[0] + lines[1][: len(lines[1]) // 2])
    assert main(["run", str(src), "--inputs", str(data), "--out", str(out)]) == 0
    again = [json.loads(line) for line in out.read_text().splitlines()]
    assert again[0] == rows[0]
    assert sorted(r["index"] for r in again) == [0, 1, 2]
    assert {r["index"]: r["values"] for r in again} == {r["index"]: r["values"] for r in rows}
    assert "1 of 3 rows already" in capsys.readouterr().err


def test_cli_batch_errors(tmp_path, capsys) -> None:
    src = tmp_path / "p.dec"
    src.write_text(PROGRAM)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"thing": "x"}\n{"thing": oops}\n')
    assert main(["run", str(src), "--inputs", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2:11: error: not valid JSON: Expecting value" in err and "^" in err
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"n": 3}\n')
    assert main(["run", str(src), "--inputs", str(missing)]) == 2
    assert "input row 1: missing input 'thing'" in capsys.readouterr().err
    same = tmp_path / "same.jsonl"
    same.write_text('{"thing": "x"}\n')
    assert main(["run", str(src), "--inputs", str(same), "--out", str(same)]) == 2
    assert "is the inputs file" in capsys.readouterr().err
    assert same.read_text() == '{"thing": "x"}\n'  # nothing the user wrote is touched


def test_bad_batch_size_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError):
        decc.loads(PROGRAM, "b.dec").run_batch(INPUTS, batch_size=0)
