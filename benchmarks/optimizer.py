"""Optimizer benchmark: JSON extraction on the embedded model, decc optimized / unoptimized against
transformers' `generate` with XGrammar's logits processor (and both unconstrained, for reference).

Each task is a schema and a text to extract from; the program is

    user "Extract ... as JSON.\\n\\n{text}"
    assistant { gen out { where: json(...), max_tokens: N } }

run greedily. Per configuration and task: output tokens, model forward passes (decc counts them; for
`generate` it is one per new token plus the prefill), seconds, and whether the optimized output equals the
unoptimized one (the passes must not change it). Figures: forward passes per output token (prefill
excluded) and output tokens per second, medians over `--repeats` after one warm-up run per configuration.

Configurations:
* `decc opt`: every optimization pass, a fresh program per run (drafts: forced tokens, forced text,
  prompt lookup; the suffix store is empty);
* `decc noopt`: `--no-opt` for every pass;
* `decc warm`: `decc opt` after one run of the same program on another text of the task (`WARM`), so
  suffix-match drafts have that run's value to draw on (the timed run only is measured);
* `hf+xgrammar`: `model.generate(do_sample=False, logits_processor=[xgrammar LogitsProcessor])` with the
  schema compiled by XGrammar (default separators; skipped when xgrammar is not installed);
* `decc free` / `hf free`: the same prompts unconstrained, with as many new tokens as the constrained
  decc run made (EOS held back), to compare constrained against unconstrained speed.

    .venv/bin/python benchmarks/optimizer.py [--repeats 3] [--tasks contact,product] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

import decc
from decc.compiler.pipeline import OPTIMIZATIONS
from decc.runtime.model import load_language_model


def _obj(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


STR = {"type": "string"}
TASKS: dict[str, tuple[dict[str, Any], str, str]] = {  # schema, what to extract, the text
    "contact": (
        _obj({"name": STR, "company": STR, "city": STR, "email": STR, "phone": STR}),
        "name, company, city, email and phone",
        "Hi, I am Maria Lopez from Acme Robotics in Barcelona. Reach me at maria.lopez@acme-robotics.com "
        "or +34 612 345 678.",
    ),
    "product": (
        _obj(
            {
                "product_name": STR,
                "brand": STR,
                "price": {"type": "number"},
                "currency": {"enum": ["USD", "EUR", "GBP"]},
                "in_stock": {"type": "boolean"},
                "category": STR,
            }
        ),
        "product name, brand, price, currency, whether it is in stock and the category",
        "The Nimbus 2000 vacuum cleaner by CleanCo costs 249.99 EUR. It is currently in stock and listed "
        "under Home Appliances.",
    ),
    "event": (
        _obj({"title": STR, "date": STR, "start_time": STR, "venue": STR, "city": STR, "organizer": STR}),
        "title, date, start time, venue, city and organizer",
        "Join us for the Spring Jazz Night on 2025-04-12 at 19:30 in the Blue Note Hall, Chicago. "
        "Organized by the Lakeside Music Society.",
    ),
    "invoice": (
        _obj(
            {
                "invoice_number": STR,
                "issue_date": STR,
                "customer_name": STR,
                "total_amount": {"type": "number"},
                "currency": STR,
                "due_date": STR,
            }
        ),
        "invoice number, issue date, customer name, total amount, currency and due date",
        "Invoice INV-2024-0815 was issued on 2024-08-15 to Greenfield Farms Ltd. The total of 1830.50 USD "
        "is due by 2024-09-14.",
    ),
    "address": (
        _obj(
            {
                "recipient": STR,
                "street": STR,
                "house_number": STR,
                "postal_code": STR,
                "city": STR,
                "country": STR,
            }
        ),
        "recipient, street, house number, postal code, city and country",
        "Please ship the parcel to Jonas Becker, Lindenstrasse 42, 10969 Berlin, Germany.",
    ),
}


# A second text per task, run first by `decc warm`: suffix-match drafts then draw on its value.
WARM: dict[str, str] = {
    "contact": "This is Tom Okafor of Bluewave Media, based in Lagos. Write to tom@bluewave.ng or call "
    "+234 803 555 0101.",
    "product": "The AeroBrew kettle from Kitchenly is priced at 39.50 GBP; it is out of stock in the "
    "Kitchen category.",
    "event": "The Harvest Food Fair takes place on 2025-10-03 at 11:00 at Riverside Park in Portland, "
    "run by the Portland Growers Guild.",
    "invoice": "Invoice INV-2025-0102, dated 2025-01-02, billed Northwind Traders 412.00 EUR, payable "
    "until 2025-02-01.",
    "address": "Send the letter to Sofia Rossi, Via Garibaldi 7, 20121 Milano, Italy.",
}


def program(schema: dict[str, Any], what: str, max_tokens: int, constrained: bool) -> str:
    where = f"where: json({json.dumps(json.dumps(schema))}), " if constrained else "eos: false, "
    return (
        "input text: str\n"
        f'user "Extract the {what} from this text as JSON.\\n\\n{{text}}"\n'
        f"assistant {{\n  gen out {{ {where}max_tokens: {max_tokens} }}\n}}\n"
    )


def run_decc(source: str, text: str, no_opt: list[str], warm: str | None = None) -> dict[str, Any]:
    prog = decc.loads(source, no_opt=no_opt)
    if warm is not None:  # an earlier run of the program on another input (suffix-match drafts)
        prog.run(text=warm)
    start = time.perf_counter()
    result = prog.run(text=text)
    seconds = time.perf_counter() - start
    step = result.steps["out"]
    made = len(step.token_ids) + (step.finish_reason == "eos")
    return {"seconds": seconds, "tokens": made, "forwards": result.forward_passes - 1, "text": step.value}


def hf_prompt(lm: Any, what: str, text: str) -> torch.Tensor:
    tok = lm.tokenizer
    chat = [{"role": "user", "content": f"Extract the {what} from this text as JSON.\n\n{text}"}]
    ids = tok(
        tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True), add_special_tokens=False
    )
    return torch.tensor([ids["input_ids"]])


def run_hf(
    lm: Any, ids: torch.Tensor, max_new: int, processor: Any | None, min_new: int = 0
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": False, "min_new_tokens": min_new}
    if processor is not None:
        kwargs["logits_processor"] = [processor]
    start = time.perf_counter()
    with torch.inference_mode():
        out = lm.model.generate(
            ids, attention_mask=torch.ones_like(ids), pad_token_id=min(lm.eos_ids), **kwargs
        )
    seconds = time.perf_counter() - start
    new = out[0, ids.shape[1] :].tolist()
    text = lm.tokenizer.decode([t for t in new if t not in lm.eos_ids])
    return {"seconds": seconds, "tokens": len(new), "forwards": len(new), "text": text}


def xgrammar_processor(lm: Any, schema: dict[str, Any]) -> Any | None:
    try:
        import xgrammar as xgr
    except ImportError:
        return None
    info = xgr.TokenizerInfo.from_huggingface(lm.tokenizer, vocab_size=lm.model.config.vocab_size)
    compiled = xgr.GrammarCompiler(info).compile_json_schema(json.dumps(schema), any_whitespace=False)
    return lambda: xgr.contrib.hf.LogitsProcessor(compiled)


def repeated(fn: Any, repeats: int, warm: int) -> list[dict[str, Any]]:
    """`repeats` timed runs of `fn` after `warm` untimed ones."""
    return [fn() for _ in range(warm + repeats)][warm:]


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    first = runs[0]
    return {
        "tokens": first["tokens"],
        "forwards": first["forwards"],
        "seconds": statistics.median(r["seconds"] for r in runs),
        "text": first["text"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--max-tokens", type=int, default=120)
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument(
        "--smoke", action="store_true", help="one task, one repeat, 16 tokens: check it runs (CI)"
    )
    args = ap.parse_args()
    warm = 0 if args.smoke else 1  # warm-up runs per configuration
    if args.smoke:
        args.repeats, args.tasks, args.max_tokens = 1, next(iter(TASKS)), 16
    lm = load_language_model()
    report: list[dict[str, Any]] = []
    for name in args.tasks.split(","):
        schema, what, text = TASKS[name]
        source = program(schema, what, args.max_tokens, True)
        ids = hf_prompt(lm, what, text)
        xgr = xgrammar_processor(lm, schema)
        configs: dict[str, Any] = {
            "decc opt": lambda s=source, t=text: run_decc(s, t, []),
            "decc noopt": lambda s=source, t=text: run_decc(s, t, list(OPTIMIZATIONS)),
            "decc warm": lambda s=source, t=text, w=WARM[name]: run_decc(s, t, [], w),
        }
        if xgr is not None:
            configs["hf+xgrammar"] = lambda i=ids, x=xgr: run_hf(lm, i, args.max_tokens, x())
        figures = {k: median_of(repeated(fn, args.repeats, warm)) for k, fn in configs.items()}
        n = figures["decc opt"]["tokens"]
        free = program(schema, what, n, False)
        figures["decc free"] = median_of(
            repeated(lambda f=free, t=text: run_decc(f, t, []), args.repeats, warm)
        )
        figures["hf free"] = median_of(
            repeated(lambda i=ids, k=n: run_hf(lm, i, k, None, k), args.repeats, warm)
        )
        same = figures["decc opt"]["text"] == figures["decc noopt"]["text"] == figures["decc warm"]["text"]
        print(f"\n{name}: optimized output {'equals' if same else 'DIFFERS FROM'} unoptimized")
        print(f"  {'config':<12} {'tokens':>6} {'fwd/tok':>8} {'tok/s':>7}")
        for k, f in figures.items():
            print(
                f"  {k:<12} {f['tokens']:>6} {f['forwards'] / max(f['tokens'], 1):>8.2f} {f['tokens'] / f['seconds']:>7.1f}"
            )
        report.append({"task": name, "same": same, **{k: {**f} for k, f in figures.items()}})
    print(f"\n{'config':<12} {'fwd/tok':>8} {'tok/s':>7}  (all tasks)")
    for k in report[0]:
        if k in ("task", "same"):
            continue
        tokens = sum(r[k]["tokens"] for r in report)
        print(
            f"{k:<12} {sum(r[k]['forwards'] for r in report) / tokens:>8.2f}"
            f" {tokens / sum(r[k]['seconds'] for r in report):>7.1f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
