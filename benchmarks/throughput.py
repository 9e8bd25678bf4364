"""Batched decode throughput on the embedded model: tokens/s at several batch sizes, unconstrained and
under a JSON schema, through `decc.runtime.batch.generate_rows` (the path `decc run --inputs` uses).

Every row decodes exactly `--tokens` tokens greedily (EOS kept out with `min_tokens`; under the schema the
value is allowed to complete early, so its rows may stop sooner and the figure counts the tokens actually
made). The overhead is constrained tokens/s against unconstrained at the same batch size.

    .venv/bin/python benchmarks/throughput.py [--batches 1,8,32] [--tokens 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from decc.grammars import Vocabulary
from decc.grammars.json_schema import json_schema
from decc.runtime.batch import RowSpec, generate_rows
from decc.runtime.model import load_language_model
from decc.runtime.sampling import GREEDY
from decc.runtime.tracks import StepRules

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "city": {"type": "string", "maxLength": 40},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 8},
    },
    "required": ["name", "city", "tags"],
    "additionalProperties": False,
}
PROMPTS = [
    "Describe a person as JSON with name, city and tags.",
    "Give me a JSON record of a famous painter: name, city, tags.",
    "Invent a character and return JSON with name, city and tags.",
    "Return JSON about a chef: name, city and a few tags.",
]


def rows(lm, batch: int, tokens: int, constraint) -> list[RowSpec]:
    tok = lm.tokenizer
    out = []
    for i in range(batch):
        text = tok.apply_chat_template(
            [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            tokenize=False,
            add_generation_prompt=True,
        )
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if constraint is None:
            rules = StepRules(tokens, lm.eos_ids, min_tokens=tokens)
        else:
            rules = StepRules(tokens, lm.eos_ids)
        out.append(RowSpec(ids, rules, GREEDY, constraint.matcher() if constraint else None, None))
    return out


def timed(lm, batch: int, tokens: int, constraint) -> tuple[float, int]:
    specs = rows(lm, batch, tokens, constraint)
    start = time.perf_counter()
    gens = generate_rows(lm, specs)
    return time.perf_counter() - start, sum(len(g.token_ids) for g in gens)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    lm = load_language_model()
    vocab = Vocabulary.from_tokenizer(lm.tokenizer, size=lm.vocab_size, eos_ids=lm.eos_ids)
    constraint = json_schema(SCHEMA, vocab)
    report = []
    print(f"{'batch':>5} {'unconstrained tok/s':>20} {'json tok/s':>12} {'overhead':>9}")
    for batch in (int(b) for b in args.batches.split(",")):
        timed(lm, batch, 4, None)  # warm-up
        figures = {}
        for name, c in (("unconstrained", None), ("json", constraint)):
            runs = [timed(lm, batch, args.tokens, c) for _ in range(args.repeats)]
            figures[name] = statistics.median(n / s for s, n in runs)
        overhead = figures["unconstrained"] / figures["json"] - 1
        print(f"{batch:>5} {figures['unconstrained']:>20.1f} {figures['json']:>12.1f} {overhead:>8.1%}")
        report.append({"batch": batch, **figures, "overhead": overhead})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
