"""Beam search throughput: decc's `beam_search` against transformers' `model.generate(num_beams=...)`.

Both run beam search (width `--width`, length penalty 1, no early stopping) at batch 1 on the embedded model
over a few chat prompts, forced to exactly `--new-tokens` new tokens (decc with `min_tokens`, transformers
with `min_new_tokens`, which both keep EOS out), so every run takes the same number of steps and the two
must return the same sequence; the script checks that and reports any mismatch. After one warm-up run per
side and prompt, runs alternate between the two; the figure is new tokens of the returned sequence per
second of wall time (session/prefill included on both sides), median (and best) over the repeats, per
prompt and over all prompts (total tokens / total of the per-prompt medians).

A constrained case is timed for decc alone (transformers has no JSON-schema constraint without extra
libraries): the same beam search under a JSON-schema `TokenConstraint` (compiled once, outside the timing;
each run makes a fresh matcher), up to `--new-tokens` tokens and no `min_tokens`, so a beam ends when the
schema's value is complete. It reports tokens of the winner per second, the search steps (forwards after
the prefill + 1), and whether the winner is a complete value valid under the schema.

    .venv/bin/python benchmarks/search.py [--width 4] [--new-tokens 64] [--repeats 5] [--prompts 3]
        [--schema PATH] [--no-constrained] [--profile] [--json results.json]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from decc.compiler.ir import Beam
from decc.grammars import Vocabulary, json_schema
from decc.runtime.beam import beam_search
from decc.runtime.decode import DecodeSession
from decc.runtime.model import load_language_model
from decc.runtime.step import StepRules

PROMPTS = [
    "Explain how a rainbow forms, in a few sentences.",
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "What are the main differences between a list and a tuple in Python?",
    "Give three tips for staying focused while working from home.",
    "Describe the water cycle to a ten-year-old.",
]

JSON_PROMPTS = [
    "Invent a person and describe them as a JSON object with name, age, email and languages.",
    "Make up a software engineer's profile as JSON: name, age, email and the languages they speak.",
    "Return a JSON record for a fictional customer with name, age, email and languages.",
    "Describe a made-up teacher as JSON with the fields name, age, email and languages.",
    "Create a JSON object for an imaginary pen pal: name, age, email, languages.",
]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "email": {"type": "string", "format": "email"},
        "languages": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
    },
    "required": ["name", "age", "email", "languages"],
    "additionalProperties": False,
}


def chat_ids(lm: Any, content: str) -> list[int]:
    messages = [{"role": "user", "content": content}]
    text = lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"]


def run_decc(
    lm: Any, prompt_ids: list[int], params: Beam, rules: StepRules, constraint: Any = None
) -> tuple[float, list[int], int]:
    """Seconds, the winner's tokens, and the search steps (forwards after the prefill, plus one)."""
    start = time.perf_counter()
    session = DecodeSession(lm)
    session.append(prompt_ids)
    steps = [1]
    step_rows = session.step_rows

    def counted(token_ids: torch.Tensor) -> torch.Tensor:
        steps[0] += 1
        return step_rows(token_ids)

    session.step_rows = counted  # type: ignore[method-assign]
    matcher = constraint.matcher() if constraint is not None else None
    winner, _ = beam_search(session, params, rules, matcher)
    return time.perf_counter() - start, list(winner.tokens), steps[0]


def run_transformers(lm: Any, prompt_ids: list[int], width: int, n: int) -> tuple[float, list[int]]:
    start = time.perf_counter()
    with torch.inference_mode():
        input_ids = torch.tensor([prompt_ids], device=lm.device)
        out = lm.model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=False,
            num_beams=width,
            max_new_tokens=n,
            min_new_tokens=n,
            pad_token_id=lm.tokenizer.pad_token_id,
        )
    return time.perf_counter() - start, out[0, len(prompt_ids) :].tolist()


def first_diff(a: list[int], b: list[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def check_value(text: str, schema: dict) -> str:
    """'valid', or why the text is not a valid instance of the schema."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return "incomplete JSON"
    try:
        from jsonschema import validators
    except ImportError:
        return "parsed (jsonschema not installed)"
    cls = validators.validator_for(schema)
    errors = list(cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(value))
    return "valid" if not errors else f"invalid: {errors[0].message[:60]}"


def profile_decc(lm: Any, prompt_ids: list[int], params: Beam, rules: StepRules, constraint: Any) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    run_decc(lm, prompt_ids, params, rules, constraint)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(25)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=4, help="beam width")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help="warm-up runs per side and prompt")
    parser.add_argument("--prompts", type=int, default=3, help=f"how many chat prompts (1..{len(PROMPTS)})")
    parser.add_argument(
        "--schema", type=Path, help="JSON schema file for the constrained case (default: inline)"
    )
    parser.add_argument("--no-constrained", action="store_true", help="skip the constrained (decc-only) case")
    parser.add_argument("--profile", action="store_true", help="cProfile one decc beam search of each case")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--smoke", action="store_true", help="one prompt, width 2, 4 tokens: check it runs (CI)"
    )
    args = parser.parse_args()
    if args.smoke:
        args.width, args.new_tokens, args.repeats, args.warmup, args.prompts = 2, 4, 1, 0, 1
    if not 1 <= args.prompts <= len(PROMPTS):
        parser.error(f"--prompts must be 1..{len(PROMPTS)}")

    lm = load_language_model("default")
    n, width = args.new_tokens, args.width
    params = Beam(width=width, length_penalty=1.0, early_stopping=False)
    forced = StepRules(max_tokens=n, eos_ids=lm.eos_ids, min_tokens=n)
    prompts = [chat_ids(lm, p) for p in PROMPTS[: args.prompts]]

    # -- unconstrained: decc vs transformers -------------------------------------------------------
    per_prompt: list[dict[str, Any]] = []
    for p, ids in enumerate(prompts):
        for _ in range(args.warmup):
            run_decc(lm, ids, params, forced)
            run_transformers(lm, ids, width, n)
        times: dict[str, list[float]] = {"decc": [], "transformers": []}
        outputs: dict[str, list[int]] = {}
        for i in range(args.repeats):
            # Alternate which goes first so drift (thermal, other load on the machine) hits both alike.
            order = [
                ("decc", lambda ids=ids: run_decc(lm, ids, params, forced)[:2]),
                ("transformers", lambda ids=ids: run_transformers(lm, ids, width, n)),
            ]
            for name, fn in order if i % 2 == 0 else order[::-1]:
                seconds, tokens = fn()
                times[name].append(seconds)
                outputs.setdefault(name, tokens)
                if len(tokens) != n:
                    print(f"note: {name} returned {len(tokens)} tokens on prompt {p}, expected {n}")
        same = outputs["decc"] == outputs["transformers"]
        rec = {
            "prompt": PROMPTS[p],
            "prompt_tokens": len(ids),
            "seconds": times,
            "median_tok_s": {k: n / statistics.median(v) for k, v in times.items()},
            "best_tok_s": {k: n / min(v) for k, v in times.items()},
            "identical": same,
        }
        if not same:
            d = first_diff(outputs["decc"], outputs["transformers"])
            rec["first_difference"] = d
            rec["decc_text"] = lm.tokenizer.decode(outputs["decc"])
            rec["transformers_text"] = lm.tokenizer.decode(outputs["transformers"])
        per_prompt.append(rec)

    total = {
        k: n * len(prompts) / sum(statistics.median(r["seconds"][k]) for r in per_prompt)
        for k in ("decc", "transformers")
    }
    total_best = {
        k: n * len(prompts) / sum(min(r["seconds"][k]) for r in per_prompt) for k in ("decc", "transformers")
    }

    # -- constrained: decc alone -------------------------------------------------------------------
    constrained: list[dict[str, Any]] = []
    schema = json.loads(args.schema.read_text()) if args.schema else SCHEMA
    compile_s = 0.0
    constraint = None
    if not args.no_constrained:
        t0 = time.perf_counter()
        vocab = Vocabulary.from_tokenizer(lm.tokenizer, size=lm.vocab_size, eos_ids=lm.eos_ids)
        constraint = json_schema(schema, vocab)
        constraint.matcher()
        compile_s = time.perf_counter() - t0
        free = StepRules(max_tokens=n, eos_ids=lm.eos_ids)
        for p in range(args.prompts):
            ids = chat_ids(lm, JSON_PROMPTS[p])
            for _ in range(args.warmup):
                run_decc(lm, ids, params, free, constraint)
            runs = [run_decc(lm, ids, params, free, constraint) for _ in range(args.repeats)]
            seconds = [r[0] for r in runs]
            tokens, steps = runs[0][1], runs[0][2]
            text = lm.tokenizer.decode(tokens)
            constrained.append(
                {
                    "prompt": JSON_PROMPTS[p],
                    "prompt_tokens": len(ids),
                    "seconds": seconds,
                    "tokens": len(tokens),
                    "steps": steps,
                    "median_tok_s": len(tokens) / statistics.median(seconds),
                    "best_tok_s": len(tokens) / min(seconds),
                    "median_steps_s": steps / statistics.median(seconds),
                    "same_every_run": all(r[1] == tokens for r in runs),
                    "check": check_value(text, schema),
                    "text": text,
                }
            )

    # -- report ------------------------------------------------------------------------------------
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"model: {lm.name} ({lm.device}, torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, "
        f"load {load:.1f}), beam width {width}, {n} new tokens, {args.repeats} repeats after "
        f"{args.warmup} warm-up per side and prompt"
    )
    print("\nunconstrained (forced to exactly the new tokens), new tokens/s:")
    print(f"{'prompt':>6} {'tokens':>6} {'decc':>9} {'transformers':>13} {'ratio':>7}  identical")
    for p, r in enumerate(per_prompt):
        m = r["median_tok_s"]
        note = "yes" if r["identical"] else f"NO (first difference at token {r['first_difference']})"
        print(
            f"{p:>6} {r['prompt_tokens']:>6} {m['decc']:8.2f}/s {m['transformers']:11.2f}/s "
            f"{m['decc'] / m['transformers']:7.3f}  {note}"
        )
    print(
        f"{'all':>6} {'':>6} {total['decc']:8.2f}/s {total['transformers']:11.2f}/s "
        f"{total['decc'] / total['transformers']:7.3f}  (median)"
    )
    print(
        f"{'all':>6} {'':>6} {total_best['decc']:8.2f}/s {total_best['transformers']:11.2f}/s "
        f"{total_best['decc'] / total_best['transformers']:7.3f}  (best)"
    )
    for p, r in enumerate(per_prompt):
        if not r["identical"]:
            print(
                f"\nprompt {p} differs:\n  decc:         {r['decc_text']!r}\n  transformers: {r['transformers_text']!r}"
            )

    if constrained:
        print(f"\nconstrained, decc only (JSON schema, compiled in {compile_s:.2f} s outside the timing):")
        print(f"{'prompt':>6} {'tokens':>6} {'steps':>5} {'tok/s':>9} {'best':>9} {'steps/s':>9}  check")
        for p, r in enumerate(constrained):
            print(
                f"{p:>6} {r['tokens']:>6} {r['steps']:>5} {r['median_tok_s']:7.2f}/s {r['best_tok_s']:7.2f}/s "
                f"{r['median_steps_s']:7.2f}/s  {r['check']}{'' if r['same_every_run'] else ' (runs differ!)'}"
            )
        c_total = sum(r["tokens"] for r in constrained) / sum(
            statistics.median(r["seconds"]) for r in constrained
        )
        print(f"{'all':>6} {'':>6} {'':>5} {c_total:7.2f}/s  (median)")
        for p, r in enumerate(constrained):
            print(f"  {p}: {r['text']!r}")

    if args.profile:
        print("\nprofile: one decc beam search, unconstrained (prompt 0)")
        print(profile_decc(lm, prompts[0], params, forced, None))
        if constraint is not None:
            print("profile: one decc beam search, constrained (JSON prompt 0)")
            free = StepRules(max_tokens=n, eos_ids=lm.eos_ids)
            print(profile_decc(lm, chat_ids(lm, JSON_PROMPTS[0]), params, free, constraint))

    if args.json:
        meta = {
            "model": lm.name,
            "device": str(lm.device),
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "load": load,
            "width": width,
            "new_tokens": n,
            "repeats": args.repeats,
            "warmup": args.warmup,
        }
        result = {
            "meta": meta,
            "unconstrained": {
                "median_tok_s": total,
                "best_tok_s": total_best,
                "ratio_median": total["decc"] / total["transformers"],
                "per_prompt": per_prompt,
            },
            "constrained": {"schema": schema, "compile_s": compile_s, "per_prompt": constrained},
        }
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
