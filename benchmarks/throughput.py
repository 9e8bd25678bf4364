"""Batched decode throughput on the embedded model: tokens/s at several batch sizes, unconstrained and
under a JSON schema, through `decc.runtime.batch.generate_rows` (the path `decc run --inputs` uses).

Every row decodes greedily. Under the schema a row stops where its value completes (or at `--tokens`);
the unconstrained run then makes exactly as many tokens per row (EOS kept out with `min_tokens`, the
row's count as its budget), so both runs shrink the batch at the same steps and the overhead, constrained
time against unconstrained time for the same tokens, is the constraint's cost alone. The two runs
alternate; figures are medians over `--repeats`.

    .venv/bin/python benchmarks/throughput.py [--batches 1,8,32] [--tokens 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from decc.grammars import Vocabulary
from decc.grammars.json.json_schema import json_schema
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


def rows(lm, batch: int, budgets: list[int], constraint) -> list[RowSpec]:
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
            rules = StepRules(budgets[i], lm.eos_ids, min_tokens=budgets[i])
        else:
            rules = StepRules(budgets[i], lm.eos_ids)
        out.append(RowSpec(ids, rules, GREEDY, constraint.matcher() if constraint else None, None))
    return out


def timed(lm, batch: int, budgets: list[int], constraint) -> tuple[float, list[int]]:
    specs = rows(lm, batch, budgets, constraint)
    start = time.perf_counter()
    gens = generate_rows(lm, specs)
    return time.perf_counter() - start, [len(g.token_ids) + (g.finish_reason == "eos") for g in gens]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument(
        "--smoke", action="store_true", help="batches 1 and 2, 4 tokens: check the script runs (CI)"
    )
    args = ap.parse_args()
    if args.smoke:
        args.batches, args.tokens, args.repeats = "1,2", 4, 1
    lm = load_language_model()
    vocab = Vocabulary.from_tokenizer(lm.tokenizer, size=lm.vocab_size, eos_ids=lm.eos_ids)
    constraint = json_schema(SCHEMA, vocab)
    report = []
    print(f"{'batch':>5} {'unconstrained tok/s':>20} {'json tok/s':>12} {'overhead':>9}")
    for batch in (int(b) for b in args.batches.split(",")):
        timed(lm, batch, [4] * batch, None)  # warm-up
        _, made = timed(lm, batch, [args.tokens] * batch, constraint)
        runs: dict[str, list[float]] = {"unconstrained": [], "json": []}
        for _ in range(args.repeats):
            for name, c in (("unconstrained", None), ("json", constraint)):
                seconds, counts = timed(lm, batch, made, c)
                if counts != made:
                    raise SystemExit(f"{name} made {counts} tokens per row, expected {made}")
                runs[name].append(sum(made) / seconds)
        figures = {name: statistics.median(v) for name, v in runs.items()}
        overhead = figures["unconstrained"] / figures["json"] - 1
        print(f"{batch:>5} {figures['unconstrained']:>20.1f} {figures['json']:>12.1f} {overhead:>8.1%}")
        report.append({"batch": batch, "tokens_per_row": made, **figures, "overhead": overhead})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
