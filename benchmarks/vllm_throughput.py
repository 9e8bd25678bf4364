"""vLLM figures, measured in one process (run it in the vLLM environment: `.venv-vllm/bin/python
benchmarks/vllm_throughput.py`):

1. tokens/s of vLLM on the same prompts unconstrained and under a decc constraint (the decc logits
   processor, a JSON Schema through `decc_json_schema`), every request running to max_tokens where it can;
   (after one warm-up request: the worker's vocabulary and the schema are built once);
2. rows/s of a 200-row dataset of examples/hello.dec through `VllmRunner.run_batch` (start-up apart), and
   with `--decc` the same rows through decc's own `Program.run_batch` first, on the same machine.

`--smoke` runs a few tiny requests (and prints a line and exits 0 where vllm is not installed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 8},
    },
    "required": ["name", "age", "tags"],
}
TOPICS = ["a painter", "a sailor", "a chemist", "a farmer", "a pilot", "a poet", "a judge", "a baker"]
EVENTS = [
    "the first crewed Moon landing",
    "the fall of the Berlin Wall",
    "the signing of the Magna Carta",
    "the storming of the Bastille",
    "the first powered flight of the Wright brothers",
    "the end of the Second World War in Europe",
    "the launch of Sputnik 1",
    "the opening of the Suez Canal",
]


def tokens_per_second(
    llm: object, prompts: list[str], max_tokens: int, extra: dict | None
) -> tuple[float, int]:
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, temperature=0.8, seed=1, extra_args=extra)
    start = time.perf_counter()
    outs = llm.generate(prompts, params, use_tqdm=False)  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    return tokens / elapsed, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=32, help="prompts for the tokens/s comparison")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rows", type=int, default=200, help="rows of examples/hello.dec through the runner")
    ap.add_argument("--decc", action="store_true", help="also time decc's own run_batch on the rows")
    ap.add_argument("--smoke", action="store_true", help="a few tiny requests")
    args = ap.parse_args()
    if args.smoke:
        args.prompts, args.max_tokens, args.rows = 2, 4, 2
    try:
        import vllm  # noqa: F401
    except ImportError:
        print("vllm is not installed here: skipped (run it in .venv-vllm, `make vllm-env`)")
        return
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    import decc
    from decc.runtime.vllm_engine import VllmRunner

    program = decc.load("examples/hello.dec")
    rows = [{"event": EVENTS[i % len(EVENTS)]} for i in range(args.rows)]
    report: dict[str, object] = {"rows": args.rows, "prompts": args.prompts, "max_tokens": args.max_tokens}
    if args.decc:
        start = time.perf_counter()
        program.run_batch(rows, batch_size=8)
        report["decc_rows_per_s"] = round(args.rows / (time.perf_counter() - start), 3)
    start = time.perf_counter()
    runner = VllmRunner(program.plan(), program.model)
    report["vllm_startup_s"] = round(time.perf_counter() - start, 1)
    try:
        prompts = [f"Describe {TOPICS[i % len(TOPICS)]} as a JSON object:\n" for i in range(args.prompts)]
        schema = {"decc_json_schema": json.dumps(SCHEMA)}
        # warm-up: the worker builds its vocabulary and compiles the schema on the first such request
        tokens_per_second(runner.llm, prompts[:1], 2, schema)
        free, n_free = tokens_per_second(runner.llm, prompts, args.max_tokens, None)
        held, n_held = tokens_per_second(runner.llm, prompts, args.max_tokens, schema)
        report.update(
            unconstrained_tok_s=round(free, 1),
            unconstrained_tokens=n_free,
            constrained_tok_s=round(held, 1),
            constrained_tokens=n_held,
        )
        start = time.perf_counter()
        results = runner.run_batch(rows)
        report["vllm_rows_per_s"] = round(args.rows / (time.perf_counter() - start), 3)
        report["vllm_rows_complete"] = sum(not r.cut for r in results)
    finally:
        runner.close()
    print(json.dumps(report))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
