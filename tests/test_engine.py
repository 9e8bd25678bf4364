"""The engine seam (runtime/engine.py): every model call of every decode loop goes through `lm.engine`, and
a bfloat16 model decodes through the same code, its logits cast to float32 at the seam."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import torch

import decc
from decc.compiler.plan import lower_to_plan
from decc.runtime.batch import execute_batch
from decc.runtime.engine import Engine, TransformersEngine
from decc.runtime.executor import execute
from decc.runtime.model import LanguageModel

pytestmark = pytest.mark.usefixtures("one_thread")

PATTERN = r"[ab]{1,3}c?"
# A single-stream step with a stop string, a beam, SMC particles, best-of and a greedy step: each loop.
SRC = f"""
"ab"
gen x {{ where: regex(r"{PATTERN}") max_tokens: 4 }}
"c"
gen y {{ search: sample(seed=3) max_tokens: 3 stop: ["ba"] }}
gen z {{ search: beam(width=2) max_tokens: 3 }}
gen w {{ where: regex(r"{PATTERN}") search: smc(particles=3, seed=1) max_tokens: 4 }}
gen v {{ search: best_of(n=2, seed=2) max_tokens: 3 }}
"""
# Rows that fit the device loop (no stop strings, plain samplers) and rows for the host loop.
BATCH_SRC = f'"a"\ngen x {{ where: regex(r"{PATTERN}") max_tokens: 4 }}\n"b"\ngen y {{ max_tokens: 3 }}\n'


class Recording:
    """An `Engine` that counts the model calls asked of it, handing everything to `inner`."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.calls = 0
        self.dtypes: set[torch.dtype] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def prefill(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.calls += 1
        out = self.inner.prefill(*args, **kwargs)
        self.dtypes.add(out.dtype)
        return out

    def step(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.calls += 1
        out = self.inner.step(*args, **kwargs)
        self.dtypes.add(out.dtype)
        return out


def _recorded(base: LanguageModel, model: Any) -> tuple[LanguageModel, Recording, list[int]]:
    """A language model over `model` whose engine records its calls, and a count of the model's forwards."""
    lm = LanguageModel("rec", model, base.tokenizer, base.eos_ids, base.vocab_size, torch.device("cpu"))
    rec = Recording(lm.engine)
    lm.engine = rec
    forwards = [0]
    real = model.forward

    def counting(*args: Any, **kwargs: Any) -> Any:
        forwards[0] += 1
        return real(*args, **kwargs)

    model.forward = counting
    return lm, rec, forwards


def _plan(lm: LanguageModel, src: str) -> Any:
    return lower_to_plan(decc.loads(src).ir, lm.tokenizer, lm.tokenizer.vocabulary())


def test_the_transformers_engine_is_an_engine(toy_lm) -> None:
    engine = toy_lm.engine
    assert isinstance(engine, TransformersEngine) and isinstance(engine, Engine)
    assert (engine.device, engine.dtype) == (torch.device("cpu"), torch.float32)
    assert (engine.vocab_size, engine.eos_ids) == (toy_lm.vocab_size, toy_lm.eos_ids)
    assert engine.max_positions == toy_lm.model.config.max_position_embeddings


def test_every_model_call_goes_through_the_engine(toy_lm) -> None:
    """Single runs (sampling, stop strings, beam, SMC, best-of), the batch host loop and the device loop:
    the model's forwards are exactly the engine's calls, and each run gives what the plain model gives."""
    lm, rec, forwards = _recorded(toy_lm, copy.deepcopy(toy_lm.model))
    single = execute(_plan(lm, SRC), lm, {})
    assert forwards[0] == rec.calls > 5
    assert single.values == execute(_plan(toy_lm, SRC), toy_lm, {}).values
    before = rec.calls
    batched = execute_batch(_plan(lm, BATCH_SRC), lm, [{}] * 3, batch_size=3)
    assert forwards[0] == rec.calls > before
    alone = execute(_plan(toy_lm, BATCH_SRC), toy_lm, {})
    assert [r.values for r in batched] == [alone.values] * 3
    assert rec.dtypes == {torch.float32}


def test_a_bfloat16_model_decodes_with_float32_logits(toy_lm) -> None:
    """The same program on a bfloat16 copy of the model: float32 logits at the seam, every value valid
    under its constraint, in a single run and in a batch."""
    lm, rec, forwards = _recorded(toy_lm, copy.deepcopy(toy_lm.model).to(torch.bfloat16))
    assert lm.engine.dtype == torch.bfloat16
    results = [execute(_plan(lm, SRC), lm, {})]
    results += execute_batch(_plan(lm, BATCH_SRC), lm, [{}] * 3, batch_size=3)
    assert rec.dtypes == {torch.float32} and forwards[0] == rec.calls
    for result in results:
        assert re.fullmatch(PATTERN, result.values["x"])
        assert all(isinstance(v, str) for v in result.values.values())
