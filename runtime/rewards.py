"""Rewards: numbers computed from a (partial) output, used as best-of scores and as SMC log-potentials.

| kind | value |
|---|---|
| logprob | the model's raw log-probability of the tokens so far |
| length | the number of tokens |
| keyword(a, b, ...) | how many of the keywords occur in the text |
| regex(r) | 1 if the regex matches somewhere in the text, else 0 |
| json_valid(schema) | 1 if the text is JSON valid under the schema, else 0 |
| python("mod:fn") | fn(text) as a float (-inf allowed: an SMC particle with it dies) |
| classifier(path, label) | log P(label | text) under a local sequence classifier |

As an SMC potential the reward is a log-weight: a particle's weight is multiplied by exp(reward(prefix))
(in increments, so the final target is model x constraint x exp(reward(output))).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from decc.compiler.plan import Reward
from decc.errors import DeccError

from .step import Track

__all__ = ["Scorer", "scorer"]

Scorer = Callable[[Track, str], float]


def scorer(reward: Reward) -> Scorer:
    """The function (track, text) -> float for `reward`; imports and model loads happen here, once."""
    kind, args = reward.kind, reward.args
    if kind == "logprob":
        return lambda track, text: track.logprob
    if kind == "length":
        return lambda track, text: float(len(track.tokens))
    if kind == "keyword":
        words = tuple(args)
        return lambda track, text: float(sum(w in text for w in words))
    if kind == "regex":
        pattern = re.compile(args[0])
        return lambda track, text: 1.0 if pattern.search(text) else 0.0
    if kind == "json_valid":
        return _json_valid(args[0])
    if kind == "python":
        return _python(args[0], reward.fn)
    if kind == "classifier":
        return _classifier(args[0], int(args[1]))
    raise DeccError(f"unknown reward '{kind}'", reward.span)


def _json_valid(schema: Any) -> Scorer:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema if not isinstance(schema, str) else json.loads(schema))

    def score(track: Track, text: str) -> float:
        try:
            return 1.0 if validator.is_valid(json.loads(text)) else 0.0
        except ValueError:
            return 0.0

    return score


def _python(spec: str, fn: Callable[[str], Any] | None) -> Scorer:
    if fn is None:
        raise DeccError(
            f"the reward python({spec!r}) was not imported: the program was compiled without allow_imports",
            hints=[
                "decc.load(...) and decc run import it; compile_program(..., trust=Trust(allow_imports=True))"
            ],
        )

    def score(track: Track, text: str) -> float:
        value = float(fn(text))
        if math.isnan(value):
            raise DeccError(f"the reward {spec} returned NaN for {text[:60]!r}")
        return value

    return score


@cache
def _load_classifier(path: str) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = Path(path)
    model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
    model.eval()
    return model, AutoTokenizer.from_pretrained(folder, local_files_only=True)


def _classifier(path: str, label: int) -> Scorer:
    import torch

    model, tokenizer = _load_classifier(path)
    n_labels = int(model.config.num_labels)
    if not 0 <= label < n_labels:
        raise DeccError(f"the classifier at {path} has {n_labels} labels; label {label} is not one of them")

    def score(track: Track, text: str) -> float:
        with torch.inference_mode():
            batch = tokenizer(text or " ", return_tensors="pt", truncation=True)
            logits = model(**batch).logits[0].float()
        return float(torch.log_softmax(logits, -1)[label])

    return score
