"""Search policies on the embedded model: beam search against transformers, constrained beams and SMC
particles that validate, best-of and first-finish against their definitions."""

from __future__ import annotations

import json

import jsonschema
import pytest
import torch

import decc
from decc.compiler.ir import Beam
from decc.runtime.beam import beam_search
from decc.runtime.decode import DecodeSession
from decc.runtime.step import StepRules

pytestmark = pytest.mark.model

PROMPTS = (
    "Name three colours of the rainbow.",
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain gravity in one sentence.",
    "List two prime numbers.",
)
N = 16


def chat_ids(lm, text: str) -> list[int]:
    prompt = lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )
    return lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize(
    "width,length_penalty,early_stopping", [(2, 1.0, False), (4, 0.6, True), (3, 2.0, False)]
)
def test_beam_search_matches_transformers(
    lm, width: int, length_penalty: float, early_stopping: bool
) -> None:
    """Token for token, for every prompt: the best hypothesis (with its EOS) is what generate returns."""
    eos = min(lm.eos_ids)
    for text in PROMPTS:
        ids = chat_ids(lm, text)
        session = DecodeSession(lm)
        session.append(ids)
        params = Beam(width, length_penalty, early_stopping)
        winner, hyps = beam_search(session, params, StepRules(N, lm.eos_ids), None)
        with torch.inference_mode():
            x = torch.tensor([ids])
            out = lm.model.generate(
                x,
                attention_mask=torch.ones_like(x),
                do_sample=False,
                num_beams=width,
                max_new_tokens=N,
                length_penalty=length_penalty,
                early_stopping=early_stopping,
                pad_token_id=lm.tokenizer.pad_token_id,
            )
        expected = out[0, len(ids) :].tolist()
        mine = list(winner.tokens) + ([eos] if winner.finish == "eos" else [])
        assert mine == expected, text
        assert session.tokens == ids + list(winner.tokens)  # the winner joined the context
        assert 1 <= len(hyps) <= width and hyps[0].token_ids == tuple(winner.tokens)
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_the_context_goes_on_after_a_beam(lm) -> None:
    """After a beam step the cache holds the winner: the next greedy step equals a fresh session's."""
    ids = chat_ids(lm, PROMPTS[1])
    session = DecodeSession(lm)
    session.append(ids)
    beam_search(session, Beam(3), StepRules(6, lm.eos_ids), None)
    session.append(lm.tokenizer.encode(" And", add_special_tokens=False))
    from decc.runtime.sampling import GREEDY

    after = session.generate(max_tokens=6, sampling=GREEDY)
    fresh = DecodeSession(lm)
    fresh.append(session.tokens[: len(session.tokens) - len(after.token_ids)])
    assert fresh.generate(max_tokens=6, sampling=GREEDY).token_ids == after.token_ids


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 30},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


def test_beam_search_over_a_json_schema_returns_only_valid_hypotheses() -> None:
    program = decc.loads(
        f'''user "Describe a cat as JSON with its name and age."
assistant {{
  gen cat {{
    where: json(r"""{json.dumps(SCHEMA)}""")
    max_tokens: 48
    search: beam(width=4)
  }}
}}''',
        "beam_json.dec",
    )
    step = program.run().steps["cat"]
    assert len(step.hypotheses) == 4
    for h in step.hypotheses:
        assert h.finish_reason in ("constraint", "eos")
        jsonschema.validate(json.loads(h.text), SCHEMA)
    assert step.value == step.hypotheses[0].text


def test_smc_over_a_lark_grammar_returns_only_valid_particles() -> None:
    from lark import Lark

    from decc.grammars import builtin_grammar

    program = decc.loads(
        """user "Write a short sum of small numbers, like 3+4."
assistant {
  gen sum {
    where: grammar("arith")
    max_tokens: 10
    search: smc(particles=4, potential=regex(r"[+]"), seed=3)
  }
}""",
        "smc_grammar.dec",
    )
    step = program.run().steps["sum"]
    parser = Lark(builtin_grammar("arith"))
    assert step.hypotheses, "no particle completed"
    for h in step.hypotheses:  # only particles that completed, and carry weight, come back
        assert h.finish_reason != "length" and h.score > float("-inf")
        parser.parse(h.text)
    assert step.value in {h.text for h in step.hypotheses}


def test_best_of_returns_the_best_sample_under_its_score() -> None:
    program = decc.loads(
        """user "Say something about the weather."
assistant {
  gen x {
    max_tokens: 8
    search: best_of(n=4, score=length, seed=5, temperature=1.0)
  }
}""",
        "best.dec",
    )
    step = program.run().steps["x"]
    assert len(step.hypotheses) == 4
    lengths = [len(h.token_ids) for h in step.hypotheses]
    assert [h.score for h in step.hypotheses] == [float(n) for n in lengths]
    best = max(range(4), key=lambda i: (lengths[i], -i))
    assert step.value == step.hypotheses[best].text


def test_first_finish_returns_the_first_sample_to_complete() -> None:
    program = decc.loads(
        """user "Pick a number."
assistant {
  gen x {
    where: regex(r"[0-9]{1,6}")
    max_tokens: 8
    search: first_finish(n=4, seed=11)
  }
}""",
        "first.dec",
    )
    step = program.run().steps["x"]
    assert step.finish_reason in ("eos", "constraint")
    # What comes back are the samples that completed at the first step any did, the winner first among them.
    assert step.hypotheses and step.hypotheses[0].text == step.value
    assert len({h.score for h in step.hypotheses}) == 1  # score = -(steps taken)
    assert all(h.finish_reason in ("eos", "constraint") for h in step.hypotheses)


def test_aligned_runs_of_one_program_share_their_estimates() -> None:
    program = decc.loads(
        """user "Yes or no?"
assistant {
  gen a {
    where: choice("yes", "no", "maybe not")
    mode: aligned
    search: sample(seed=1)
  }
}""",
        "aligned.dec",
    )
    values = {program.run().values["a"] for _ in range(3)}
    assert values <= {"yes", "no", "maybe not"}
    (trie,) = program._aligned.values()  # one step after one context: one trie, three draws
    assert trie.draws == 3
