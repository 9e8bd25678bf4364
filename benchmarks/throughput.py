"""Batched decode throughput: tokens/s at several batch sizes, unconstrained and under a JSON schema,
through `decc.runtime.batch.generate_rows` (the path `decc run --inputs` uses).

Every row decodes greedily. Under the schema a row stops where its value completes (or at `--tokens`);
the unconstrained run then makes exactly as many tokens per row (EOS kept out with `min_tokens`, the
row's count as its budget), so both runs shrink the batch at the same steps and the ratio, constrained
tokens/s over unconstrained tokens/s for the same tokens, is the constraint's cost alone. The two runs
alternate; figures are medians over `--repeats`.

The model is the embedded SmolLM2 (`--model default`), a local folder, or `--model random`: a
random-weight Llama built from a config (`--config smollm2`: SmolLM2-135M's shape; `tiny`: 2 layers of
width 64) for any tokenizer (`--tokenizer`: a folder with tokenizer files or a decc tokenizer name such
as `default` or `llama-bpe`), so that a GPU run needs only tokenizer files, not weights. Greedy decoding
of random weights makes junk text, but the same amount of work per token as trained weights.

    .venv/bin/python benchmarks/throughput.py [--batches 1,8,32] [--tokens 32] [--repeats 3]
        [--model default|random|DIR] [--config smollm2|tiny] [--tokenizer default|llama-bpe|DIR]
        [--device auto|cpu|cuda] [--dtype auto|float32|bfloat16] [--schema bounded,free]
        [--loop auto|host|device] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from decc.grammars import Vocabulary
from decc.grammars.json.json_schema import json_schema
from decc.runtime.batch import RowSpec, generate_rows
from decc.runtime.device_loop import eligible
from decc.runtime.model import LanguageModel, load_language_model, load_tokenizer
from decc.runtime.sampling import GREEDY
from decc.runtime.step import StepRules

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
# `bounded` has length counters, so its rows decode in the host loop; `free` is a counter-free token
# automaton, which the device loop (runtime/device_loop.py) runs without a host round trip per step.
SCHEMAS = {
    "bounded": SCHEMA,
    "free": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "city": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "city", "tags"],
        "additionalProperties": False,
    },
}
PROMPTS = [
    "Describe a person as JSON with name, city and tags.",
    "Give me a JSON record of a famous painter: name, city, tags.",
    "Invent a character and return JSON with name, city and tags.",
    "Return JSON about a chef: name, city and a few tags.",
]
# Llama shapes for `--model random`: SmolLM2-135M's (its config.json) and a tiny one for smoke runs.
CONFIGS: dict[str, dict[str, Any]] = {
    "smollm2": {
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "max_position_embeddings": 8192,
        "rope_theta": 100000.0,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": True,
    },
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
    },
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def tokenizer_for(spec: str) -> Any:
    """A folder's tokenizer, or the one decc loads by that name."""
    if Path(spec).is_dir():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(spec, local_files_only=True)
    return load_tokenizer(spec)


def random_model(config: str, tok: Any, device: torch.device, dtype: torch.dtype) -> LanguageModel:
    """A random-weight Llama of shape `config` over `tok` (logits width: the tokenizer's length rounded up
    to a multiple of 64, as real checkpoints pad), seeded, built on `device`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    eos = tok.eos_token_id if tok.eos_token_id is not None else len(tok) - 1
    width = -(-len(tok) // 64) * 64
    cfg = LlamaConfig(vocab_size=width, eos_token_id=eos, bos_token_id=tok.bos_token_id, **CONFIGS[config])
    torch.manual_seed(0)
    with device:
        model = LlamaForCausalLM(cfg)
    model.to(dtype).eval()
    return LanguageModel(f"random-{config}", model, tok, frozenset({eos}), width, device)


def language_model(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> LanguageModel:
    if args.model == "random":
        return random_model(args.config, tokenizer_for(args.tokenizer), device, dtype)
    lm = load_language_model(args.model)  # float32 on the CPU; moved here, so the cached one is not shared
    if device.type == "cpu" and dtype == torch.float32:
        return lm
    model = lm.model.to(device=device, dtype=dtype)
    return LanguageModel(lm.name, model, lm.tokenizer, lm.eos_ids, lm.vocab_size, device)


def prompt_ids(tok: Any, prompt: str) -> list[int]:
    """The prompt in the tokenizer's chat template where it has one, else the plain text."""
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return tok(text, add_special_tokens=False)["input_ids"]
    return tok(prompt + "\n")["input_ids"]


def rows(lm: LanguageModel, batch: int, budgets: list[int], constraint: Any) -> list[RowSpec]:
    out = []
    for i in range(batch):
        ids = prompt_ids(lm.tokenizer, PROMPTS[i % len(PROMPTS)])
        if constraint is None:
            rules = StepRules(budgets[i], lm.eos_ids, min_tokens=budgets[i])
        else:
            rules = StepRules(budgets[i], lm.eos_ids)
        out.append(RowSpec(ids, rules, GREEDY, constraint.matcher() if constraint else None, None))
    return out


def timed(
    lm: LanguageModel, batch: int, budgets: list[int], constraint: Any, on_device: bool | None
) -> tuple[float, list[int]]:
    specs = rows(lm, batch, budgets, constraint)
    cuda = lm.device is not None and lm.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    gens = generate_rows(lm, specs, on_device=on_device)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, [len(g.token_ids) + (g.finish_reason == "eos") for g in gens]


def measure(
    lm: LanguageModel, batch: int, constraint: Any, tokens: int, repeats: int, on_device: bool | None
) -> tuple[list[int], dict[str, float]]:
    """Tokens per row (set by the constrained run) and the median tokens/s of each run."""
    timed(lm, batch, [4] * batch, None, on_device)  # warm-up
    _, made = timed(lm, batch, [tokens] * batch, constraint, on_device)
    runs: dict[str, list[float]] = {"unconstrained": [], "json": []}
    for _ in range(repeats):
        for name, c in (("unconstrained", None), ("json", constraint)):
            seconds, counts = timed(lm, batch, made, c, on_device)
            if counts != made:
                raise RuntimeError(f"{name} made {counts} tokens per row, expected {made}")
            runs[name].append(sum(made) / seconds)
    return made, {name: statistics.median(v) for name, v in runs.items()}


def pick_device(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here")
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return torch.device(device), DTYPES[dtype]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="default", help="default (embedded), random, or a model folder")
    ap.add_argument("--config", default="smollm2", choices=sorted(CONFIGS), help="--model random's shape")
    ap.add_argument("--tokenizer", default="default", help="--model random's tokenizer: folder or name")
    ap.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    ap.add_argument("--dtype", default="auto", choices=["auto", *DTYPES], help="auto: bfloat16 on CUDA")
    ap.add_argument(
        "--schema", default="bounded", help="comma list of bounded (host loop), free (device loop)"
    )
    ap.add_argument(
        "--loop", default="auto", choices=["auto", "host", "device"], help="generate_rows' on_device"
    )
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument(
        "--smoke", action="store_true", help="batches 1 and 2, 4 tokens: check the script runs (CI)"
    )
    args = ap.parse_args()
    if args.smoke:
        args.batches, args.tokens, args.repeats = "1,2", 4, 1
    schemas = args.schema.split(",")
    for name in schemas:
        if name not in SCHEMAS:
            raise SystemExit(f"unknown --schema {name!r} (one of {', '.join(SCHEMAS)})")
    device, dtype = pick_device(args.device, args.dtype)
    on_device = {"auto": None, "host": False, "device": True}[args.loop]
    lm = language_model(args, device, dtype)
    vocab = Vocabulary.from_tokenizer(lm.tokenizer, size=lm.vocab_size, eos_ids=lm.eos_ids)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {where}; model {lm.name} ({str(dtype).removeprefix('torch.')}), logits width "
        f"{lm.vocab_size}, tokenizer {args.tokenizer if args.model == 'random' else args.model}\n"
    )
    columns = ["schema", "batch", "tokens/row", "unconstrained tok/s", "json tok/s", "json / unconstrained"]
    columns.append("loop (unconstrained / json)")
    print("| " + " | ".join(columns) + " |\n|" + " --- |" * len(columns))
    report: dict[str, Any] = {"device": where, "model": lm.name, "dtype": str(dtype), "vocab": lm.vocab_size,
                              "tokenizer": args.tokenizer, "rows": []}  # fmt: skip
    errors: list[dict[str, Any]] = []
    for schema in schemas:
        # `free` as the token automaton a program's (healing) gen step gets for it (json_engine.HEALING_MAX_NFA);
        # json_schema alone would put its ~200 NFA states on the grammar engine (AUTOMATON_MAX_NFA)
        constraint = json_schema(SCHEMAS[schema], vocab, engine="automaton" if schema == "free" else "auto")
        loops = {
            name: args.loop
            if args.loop != "auto"
            else "device"
            if eligible(rows(lm, 1, [1], c)[0])
            else "host"
            for name, c in (("unconstrained", None), ("json", constraint))
        }
        for batch in (int(b) for b in args.batches.split(",")):
            row: dict[str, Any] = {"schema": schema, "batch": batch, "loops": loops}
            try:
                made, figures = measure(lm, batch, constraint, args.tokens, args.repeats, on_device)
            except Exception as exc:  # one failing row (a CUDA path never run before) costs only that row
                traceback.print_exc()
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                errors.append(row)
                print(f"| {schema} | {batch} | error: {row['error'][:120]} | | | | |", flush=True)
            else:
                ratio = figures["json"] / figures["unconstrained"]
                row.update(tokens_per_row=made, ratio=ratio, **figures)
                print(
                    f"| {schema} | {batch} | {sum(made) / batch:.1f} | {figures['unconstrained']:.1f} "
                    f"| {figures['json']:.1f} | {ratio:.3f} | {loops['unconstrained']} / {loops['json']} |",
                    flush=True,
                )
            report["rows"].append(row)
            if args.json:  # after every row: a run cut short keeps what it measured
                with open(args.json, "w") as f:
                    json.dump(report, f, indent=2)
    if errors:
        raise SystemExit(f"{len(errors)} rows failed")


if __name__ == "__main__":
    main()
