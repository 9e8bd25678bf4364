"""Greedy decode throughput: decc's `DecodeSession.generate` against transformers' `model.generate`.

Both decode the same prompt at batch 1 on the embedded model, forced to exactly `--tokens` new tokens
(decc with `ignore_eos=True`, transformers with `min_new_tokens`, which both mask EOS), so they must produce
identical tokens; the script checks that. Runs alternate between the two after a warm-up, and the median (and best)
of the timed repeats is reported in tokens/s, prefill included in both. The machine may be shared, so
the best run is the least disturbed figure.

    .venv/bin/python benchmarks/decode.py [--tokens 128] [--repeats 7] [--context 0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from decc.runtime.decode import DecodeSession
from decc.runtime.model import load_language_model
from decc.runtime.sampling import GREEDY

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def run_decc(lm, prompt_ids: list[int], n: int) -> tuple[float, list[int]]:
    start = time.perf_counter()
    session = DecodeSession(lm)
    session.append(prompt_ids)
    gen = session.generate(max_tokens=n, sampling=GREEDY, ignore_eos=True)
    return time.perf_counter() - start, list(gen.token_ids)


def run_transformers(lm, prompt_ids: list[int], n: int) -> tuple[float, list[int]]:
    start = time.perf_counter()
    with torch.inference_mode():
        input_ids = torch.tensor([prompt_ids], device=lm.device)
        out = lm.model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=False,
            max_new_tokens=n,
            min_new_tokens=n,
            pad_token_id=lm.tokenizer.pad_token_id,
        )
    return time.perf_counter() - start, out[0, len(prompt_ids) :].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--context", type=int, default=0, help="pad the prompt to about this many tokens")
    parser.add_argument(
        "--smoke", action="store_true", help="4 tokens, one repeat: check the script runs (CI)"
    )
    args = parser.parse_args()
    if args.smoke:
        args.tokens, args.repeats, args.warmup = 4, 1, 0

    lm = load_language_model("default")
    content = PROMPT
    while len(lm.tokenizer(content)["input_ids"]) < args.context:
        content = f"{PROMPT} Here is some background. {content}"
    messages = [{"role": "user", "content": content}]
    text = lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prompt_ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    n = args.tokens

    for _ in range(args.warmup):
        run_decc(lm, prompt_ids, n)
        run_transformers(lm, prompt_ids, n)
    times: dict[str, list[float]] = {"decc": [], "transformers": []}
    outputs: dict[str, list[int]] = {}
    for i in range(args.repeats):
        # Alternate which goes first so drift (thermal, other load on the machine) hits both alike.
        order = [("decc", run_decc), ("transformers", run_transformers)]
        for name, fn in order if i % 2 == 0 else order[::-1]:
            seconds, tokens = fn(lm, prompt_ids, n)
            times[name].append(seconds)
            outputs.setdefault(name, tokens)
            if len(tokens) != n:
                raise SystemExit(f"{name} produced {len(tokens)} tokens, expected {n}")

    median = {k: n / statistics.median(v) for k, v in times.items()}
    best = {k: n / min(v) for k, v in times.items()}
    same = outputs["decc"] == outputs["transformers"]
    print(
        f"model: {lm.name} (batch 1, {lm.device}, torch threads {torch.get_num_threads()}), "
        f"prompt {len(prompt_ids)} tokens, {n} new tokens, {args.repeats} repeats after {args.warmup} warm-up"
    )
    print(f"{'':30} {'median':>10} {'best':>10}")
    print(f"{'decc DecodeSession.generate':30} {median['decc']:8.2f}/s {best['decc']:8.2f}/s")
    print(f"{'transformers model.generate':30} {median['transformers']:8.2f}/s {best['transformers']:8.2f}/s")
    print(
        f"{'ratio decc/transformers':30} {median['decc'] / median['transformers']:10.3f} "
        f"{best['decc'] / best['transformers']:10.3f}"
    )
    print(f"identical tokens: {same}")
    if not same:
        raise SystemExit("greedy outputs differ")


if __name__ == "__main__":
    main()
