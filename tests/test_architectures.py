"""Any local transformers causal LM: tiny random-weight models of four architectures, each with the real
tokenizer of its family (decc/tiny_models.py), run every example program end to end.

Llama + Llama-3's 128k byte-level BPE, Qwen2 + its 152k BPE (logits padded past the tokenizer, as the real
checkpoints are), Mistral + Llama-2's SentencePiece with byte fallback, GPT-2 + its BPE (absolute positions,
no chat template). The weights are random, so nothing here compares text with a golden file: every value is
judged by the oracles of tests/test_examples.py (Python's `re`, `jsonschema`, Lark, plain Python), whole
values by the constraint's language, cut ones as prefixes its matcher takes. The tokenizer-only tests
below (no weights) pin the fixes these families needed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import test_examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_examples import EXAMPLES, EXTRA, IDS, PROGRAMS, check_branches, check_values

import decc
from decc.compiler.plan import PlanText
from decc.grammars.tokens.vocab import decode_in_context, encode_in_context
from decc.runtime.detokenize import IncrementalDetokenizer
from decc.tiny_models import NAMES, TINY

FAMILIES = tuple(s.family for s in TINY)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)


# -- the tokenizer-side fixes (no weights) ----------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT)
def test_a_value_decodes_to_the_text_its_tokens_spell_in_context(tokenizer_family, family: str, text: str):
    """A value's text is what its tokens spell mid-context (a SentencePiece `▁the` is ` the` there, not
    `the`), decoded whole or token by token, as the constraint's matcher read those tokens' bytes."""
    tok, vocab = tokenizer_family(family)
    ids = encode_in_context(tok, text)
    spelled = b"".join(vocab.token_bytes[t] or b"" for t in ids)
    if spelled != text.encode():  # a text the tokenizer normalizes (no token spells it): not a value
        return
    assert decode_in_context(tok, ids) == text
    detok = IncrementalDetokenizer(tok)
    for t in ids:
        detok.push(t)
    assert detok.text == text


CHAT = """
system "Be terse."
user "Name a colour."
assistant { gen colour { where: choice("red", "blue") } }
"""


@pytest.mark.parametrize("family", FAMILIES)
def test_chat_turns_render_on_every_family(tokenizer_family, family: str) -> None:
    """A tokenizer without a chat template (GPT-2, Llama-3's and Llama-2's GGUF vocabularies) renders turns
    as `Role:` paragraphs; one with a template (Qwen2) uses it. Either way each turn's text comes in order,
    and the start token heads the prompt where the family has one."""
    tok, _ = tokenizer_family(family)
    plan = decc.loads(CHAT, model=family).plan()
    (text,) = [s for s in plan.steps if isinstance(s, PlanText)]
    prompt = "".join(p for p in text.parts if isinstance(p, str))
    at = [prompt.find(s) for s in ("Be terse.", "Name a colour.")]
    assert 0 <= at[0] < at[1], prompt
    if tok.bos_token and not getattr(tok, "chat_template", None):
        assert prompt.startswith(tok.bos_token), prompt
    if not getattr(tok, "chat_template", None):
        assert prompt.endswith("Assistant:\n") and prompt.index("System:") < at[0] < prompt.index("User:")


# -- every example on every architecture ------------------------------------------------------------------


@pytest.fixture
def on_tiny(tiny_model, monkeypatch: pytest.MonkeyPatch):
    """`get(name) -> load(path)`; the examples' own checks (test_examples.EXTRA), which load and rerun
    programs through `program` and `run`, run them on that tiny model too."""

    def get(name: str):
        folder = tiny_model(name)
        load = cache(lambda path: decc.load(path, model=folder))
        monkeypatch.setattr(test_examples, "program", load)
        monkeypatch.setattr(test_examples, "run", cache(lambda path, **inputs: load(path).run(**inputs)))
        return load

    return get


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("path", PROGRAMS, ids=IDS)
def test_example_runs_on_each_architecture(on_tiny, name: str, path: Path) -> None:
    load = on_tiny(name)
    prog = load(path)
    result = test_examples.run(path)
    check_values(prog, result)
    check_branches(prog.ir, result)
    extra = EXTRA.get(path.stem)
    if extra is not None and path.stem not in MODEL_DEPENDENT:
        extra(path, result)


# Examples whose own checks assume a trained model's choices: a thread or particle that completes within
# max_tokens (recursive, smc), groups whose first choices overlap so that the diversity penalty bites
# (diverse_beam). Their values are still judged above by the constraint oracles.
MODEL_DEPENDENT = {"recursive", "smc", "diverse_beam"}

BATCHED = {"hello": [{}, {"event": "the fall of the Berlin Wall"}], "stopping": [{}, {"topic": "volcanoes"}]}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("stem", sorted(BATCHED))
def test_a_batch_equals_its_runs_alone_on_each_architecture(on_tiny, name: str, stem: str) -> None:
    """Rows decoded together give each run's own tokens (batch padding, positions, healing, entropy)."""
    prog = on_tiny(name)(EXAMPLES / f"{stem}.dec")
    inputs = BATCHED[stem]
    batch = prog.run_batch(inputs, batch_size=len(inputs))
    for given_inputs, got in zip(inputs, batch, strict=True):
        alone = prog.run(**given_inputs)
        assert got.token_ids == alone.token_ids and got.values == alone.values, (given_inputs, got, alone)


def test_a_context_past_gpt2s_positions_is_an_error_alone_and_batched(tiny_model) -> None:
    """GPT-2 has 1024 learned positions: a context that an input makes longer (a literal prompt is refused
    by `decc check`) is a user error naming the limit, in a batch too (its position embedding would
    otherwise fail with an IndexError)."""
    prog = decc.loads('input t: str\n"{t}"\ngen x { max_tokens: 2 }\n', model=tiny_model("gpt2"))
    prog.plan()  # nothing the compiler can see is too long
    long = {"t": "word " * 1100}
    for go in (lambda: prog.run(**long), lambda: prog.run_batch([long, long])):
        with pytest.raises(decc.DeccError, match="more than the model's 1024"):
            go()


def test_a_template_that_drops_a_turn_is_refused_at_that_turn(tokenizer_family) -> None:
    """Phi-3's template renders no system turn: the error names the model given and points at the turn."""
    tokenizer_family("phi-3")
    with pytest.raises(decc.DeccError) as info:
        decc.loads(CHAT, model="phi-3").plan()
    e = info.value
    assert "'phi-3'" in e.message and "system turn" in e.message, e.message
    assert e.span is not None and e.span.line == CHAT.splitlines().index('system "Be terse."') + 1


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("stem", ["extract_json", "json_inline"])
def test_drafts_change_no_token_on_each_architecture(on_tiny, tiny_model, name: str, stem: str) -> None:
    """Drafted tokens are checked in multi-token forward passes and a miss crops the cache (a sliding-window
    layer on Mistral, learned positions on GPT-2): the values are the same tokens with drafts or without."""
    path = EXAMPLES / f"{stem}.dec"
    drafted = on_tiny(name)(path).run()
    plain = decc.load(path, model=tiny_model(name), no_opt=["speculate"]).run()
    assert drafted.token_ids == plain.token_ids
    assert drafted.forward_passes < plain.forward_passes  # the drafts were used


def test_the_command_line_runs_a_model_folder(tiny_model) -> None:
    """`decc run FILE --model FOLDER` as a user types it: exit 0, the value valid, nothing on stderr."""
    path = EXAMPLES / "hello.dec"
    cmd = [sys.executable, "-m", "decc", "run", str(path), "--model", tiny_model("gpt2"), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    (op,) = decc.load(path).ir.generates()
    assert re.fullmatch(op.constraint.pattern, json.loads(done.stdout)["values"]["date"]), done.stdout


def test_a_tiny_model_builds_the_same_weights_every_time(tiny_model, tmp_path, monkeypatch) -> None:
    """Seeded (without touching the global torch RNG), so every machine's CI runs the same model; a folder
    whose recipe differs from the current one is rebuilt."""
    import torch

    from decc import vocabs
    from decc.tiny_models import STAMP, tiny_model_dir

    first = Path(tiny_model("gpt2"))
    (tmp_path / "tiny").mkdir()
    (tmp_path / "vocabs").symlink_to(vocabs.vocabs_dir())
    monkeypatch.setenv("DECC_CACHE", str(tmp_path))
    state = torch.random.get_rng_state()
    again = tiny_model_dir("gpt2")
    assert torch.equal(state, torch.random.get_rng_state())
    assert (
        again != first
        and (again / "model.safetensors").read_bytes() == (first / "model.safetensors").read_bytes()
    )
    (again / STAMP).write_text("an older recipe")
    assert tiny_model_dir("gpt2") == again and (again / STAMP).read_text() == (first / STAMP).read_text()
