"""Token-mask benchmark for JSON schemas: decc against XGrammar and llguidance (MaskBench-style).

For every engine x schema of the corpus in `benchmarks/schemas/` (`<name>.json`, with `<name>.instances.json`
valid and `<name>.invalid.json` invalid instances, both checked with `jsonschema` first):

* time to first mask (TTFM): compile the schema for the vocabulary + make a matcher + fill the first mask,
  with every engine's schema cache cleared (decc's `lru_cache`s, XGrammar's compiler cache off);
* per token: each valid instance is serialized with `json.dumps` (separators per `--separators`) and
  tokenized canonically by the model's Hugging Face tokenizer; every step times the mask fill + the
  advance over that token; the token must be set in the mask and accepted; after the last token the
  final mask (timed as one more step) must allow EOS;
* invalid instances must be refused: some token not in the mask or not accepted, or EOS not allowed.

Whitespace policy: no free whitespace anywhere and the separators of `json.dumps` (`compact`: "," and ":";
`default`: ", " and ": "). XGrammar gets `any_whitespace=False, separators=...`, llguidance
`whitespace_flexible=False, item_separator/key_separator`; decc's own policy ("compact-or-default") accepts
both separator styles, so its language is slightly larger than the other two.

Peers are benchmark-only: an engine whose package is missing is skipped with a note. `decc-eager` is decc
with `precompute()` at compile (every rule built, every state classified): the eager trade measured beside
the lazy default in one run.

    .venv/bin/python benchmarks/masks.py [--engines decc,xgrammar,llguidance] [--schemas GLOB]
        [--repeat N] [--separators compact|default] [--timeout S] [--out results.json]

MaskBench mode (`--maskbench DIR`, DIR default $DECC_MASKBENCH; code in maskbench/): a seeded random
sample (`--sample N`, 0 = all; `--seed S`) of the data folder of guidance-ai/jsonschemabench's MaskBench,
one `<file>.json` per schema with labelled valid and invalid instances, and `--tokenizer NAME`
(`decc.load_tokenizer(NAME)`; default the embedded SmolLM2). Each engine runs in its own worker process
on one thread (OMP/MKL/OpenBLAS/Rayon threads 1, torch 1, XGrammar `max_threads=1`; decc's own compile
deadline off); schemas go one at a time through every engine. A worker that does not give its first mask
within `--timeout` seconds (default 60), or then does not finish walking the instances within as long
again, is killed and restarted: the schema is a `timeout`. Definitions:

* an instance is serialized once, with `json.dumps(data, separators, ensure_ascii=False)` (the compact
  separators by default: what decc writes, and what all three engines are configured for, with no free
  whitespace), and tokenized canonically (`tok.encode(text, add_special_tokens=False)`; with a
  SentencePiece tokenizer, in context: after a newline, without the prefix space a text alone gets);
* it is accepted when every token is set in the engine's mask and taken by its advance, and after the last
  token EOS is set in the mask (and taken);
* a schema is `passing` when it compiles and every valid instance is accepted and every invalid one
  rejected; otherwise it is `refused` (the engine declined it: unsupported keyword, size limit, invalid
  schema), `timeout`, `error` (an engine crash or exception that is not a refusal), `valid rejected`, or
  else `invalid accepted`: these six columns add up to the sample;
* compile = time to first mask: compile + matcher + first fill, per-schema caches cleared (as above);
  mask = the time of each fill (the final one where EOS is checked included), over all walked instances;
  advance = the time of each advance, reported apart;
* key order: decc writes object properties in schema order (a documented restriction; XGrammar and
  llguidance do the same). A valid instance whose keys no schema order allows (maskbench/data.py,
  `keys_in_schema_order`: the properties an applicable subschema declares, or all of them merged, in that
  order, then `required`-only names, before any undeclared key) is walked by every engine but not counted
  as valid rejected; the `order` column says how many such instances each engine rejected;
* labels: MaskBench's `valid` is followed; instances `jsonschema` (formats asserted, no remote `$ref`)
  judges otherwise, or cannot judge, are counted in a note. Unreadable files and rows without `schema`
  and `tests` are reported in a note and skipped.

The per-schema outcomes go to `--out` as JSON lines: engine, file, outcome, error (first line), compile_ms,
the instance counts (valid, valid_rejected, invalid, invalid_accepted, order, order_rejected, tokens) and
which tests were rejected or accepted.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import signal
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maskbench.engines import ENGINES, CompileTimeout, Unsupported, encode, walk
from maskbench.runner import default_folder
from maskbench.runner import run as maskbench_run

HERE = Path(__file__).resolve().parent
SCHEMAS = HERE / "schemas"
SEPARATORS = {"compact": (",", ":"), "default": (", ", ": ")}


# -- corpus -------------------------------------------------------------------------------------------


def load_corpus(pattern: str) -> list[dict]:
    """Schemas matching `pattern` (a glob on the name), each with its instances checked by jsonschema."""
    from jsonschema import validators

    out = []
    for path in sorted(SCHEMAS.glob("*.json")):
        name = path.name[: -len(".json")]
        if name.endswith((".instances", ".invalid")) or not fnmatch.fnmatch(name, pattern):
            continue
        schema = json.loads(path.read_text())
        cls = validators.validator_for(schema)
        cls.check_schema(schema)
        validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        valid, invalid, notes = [], [], []
        for suffix, want, bucket in ((".instances", True, valid), (".invalid", False, invalid)):
            p = SCHEMAS / f"{name}{suffix}.json"
            for i, inst in enumerate(json.loads(p.read_text()) if p.exists() else []):
                if validator.is_valid(inst) == want:
                    bucket.append(inst)
                else:
                    notes.append(f"{suffix[1:]}[{i}] is {'in' if want else ''}valid per jsonschema: skipped")
        out.append({"name": name, "schema": schema, "valid": valid, "invalid": invalid, "notes": notes})
    return out


# -- measuring ----------------------------------------------------------------------------------------


def _alarm(_sig: int, _frame: Any) -> None:
    raise CompileTimeout


def run_instance(
    matcher: Any, tokens: list[int], eos: int, row: torch.Tensor, times: list[float] | None
) -> str:
    """Walk `tokens` then EOS (maskbench.engines.walk): 'ok' or why it stopped. Appends each step's seconds
    (its fill plus its advance; the final fill alone) to `times` when given."""
    if times is None:
        return walk(matcher, tokens, eos, row)
    fills: list[float] = []
    advances: list[float] = []
    why = walk(matcher, tokens, eos, row, fills, advances)
    times.extend(f + (advances[i] if i < len(advances) else 0.0) for i, f in enumerate(fills))
    return why


def bench_engine(
    engine: Any,
    corpus: list[dict],
    tok: Any,
    eos: int,
    seps: tuple[str, str],
    repeat: int,
    timeout: float,
    size: int,
    verbose: bool,
) -> dict:
    n_words = (size + 31) // 32
    row = torch.zeros(n_words, dtype=torch.int32)
    # warm-up: first-call overheads (imports, lazy tables) are not any schema's compile time
    try:
        engine.compile(
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
        )().fill(row)
    except Exception:
        pass
    per_schema = []
    token_times: list[float] = []
    for item in corpus:
        rec: dict[str, Any] = {"schema": item["name"], "status": "compiled"}
        ttfms = []
        factory = None
        for _ in range(repeat):
            engine.clear_cache()
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                t0 = time.perf_counter()
                factory = engine.compile(item["schema"])
                factory().fill(row)
                ttfms.append(time.perf_counter() - t0)
            except Unsupported as e:
                rec.update(status="unsupported", reason=str(e)[:300])
                break
            except CompileTimeout:
                rec.update(status="timeout", reason=f"compile took more than {timeout:g} s")
                break
            except Exception as e:
                rec.update(status="error", reason=f"{type(e).__name__}: {e}"[:300])
                if verbose:
                    traceback.print_exc()
                break
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        if rec["status"] != "compiled":
            per_schema.append(rec)
            if verbose:
                print(
                    f"  {engine.name:10s} {item['name']:24s} {rec['status']}: {rec['reason'][:100]}",
                    file=sys.stderr,
                )
            continue
        rec["ttfm_s"] = statistics.median(ttfms)
        rec["valid_rejected"] = []
        rec["invalid_accepted"] = []
        n_tokens = 0
        try:
            for r in range(repeat):
                for i, inst in enumerate(item["valid"]):
                    tokens = encode(tok, json.dumps(inst, separators=seps, ensure_ascii=False))
                    why = run_instance(factory(), tokens, eos, row, token_times)
                    if r == 0:
                        n_tokens += len(tokens) + 1
                        if why != "ok":
                            rec["valid_rejected"].append({"instance": i, "why": why})
            for i, inst in enumerate(item["invalid"]):
                tokens = encode(tok, json.dumps(inst, separators=seps, ensure_ascii=False))
                if run_instance(factory(), tokens, eos, row, None) == "ok":
                    rec["invalid_accepted"].append({"instance": i})
        except Exception as e:
            rec.update(status="error", reason=f"while matching: {type(e).__name__}: {e}"[:300])
            if verbose:
                traceback.print_exc()
        rec["tokens"] = n_tokens
        per_schema.append(rec)
        if verbose:
            print(
                f"  {engine.name:10s} {item['name']:24s} ttfm {rec['ttfm_s'] * 1e3:9.1f} ms  "
                f"{n_tokens:4d} tok  rej {len(rec['valid_rejected'])} acc {len(rec['invalid_accepted'])}",
                file=sys.stderr,
            )
    return summarize(engine, per_schema, token_times, corpus)


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def summarize(engine: Any, per_schema: list[dict], token_times: list[float], corpus: list[dict]) -> dict:
    compiled = [r for r in per_schema if r["status"] == "compiled"]
    ttfm = [r["ttfm_s"] * 1e3 for r in compiled]
    us = [t * 1e6 for t in token_times]
    return {
        "engine": engine.name,
        "version": engine.version,
        "schemas": len(per_schema),
        "compiled": len(compiled),
        "unsupported": sum(r["status"] == "unsupported" for r in per_schema),
        "timeouts": sum(r["status"] == "timeout" for r in per_schema),
        "errors": sum(r["status"] == "error" for r in per_schema),
        "valid_instances": sum(
            len(c["valid"]) for c, r in zip(corpus, per_schema, strict=True) if r["status"] == "compiled"
        ),
        "valid_rejected": sum(len(r.get("valid_rejected", [])) for r in per_schema),
        "invalid_instances": sum(
            len(c["invalid"]) for c, r in zip(corpus, per_schema, strict=True) if r["status"] == "compiled"
        ),
        "invalid_accepted": sum(len(r.get("invalid_accepted", [])) for r in per_schema),
        "ttfm_ms": {"p50": _pct(ttfm, 50), "p90": _pct(ttfm, 90), "max": max(ttfm, default=float("nan"))},
        "token_steps": len(us),
        "per_token_us": {
            "p50": _pct(us, 50),
            "p99": _pct(us, 99),
            "max": max(us, default=float("nan")),
            "mean": float(np.mean(us)) if us else float("nan"),
        },
        "per_schema": per_schema,
    }


def table(results: list[dict]) -> str:
    head = (
        "| engine | compiled | unsupported | timeout | errors | valid rejected | invalid accepted "
        "| TTFM p50 ms | p90 ms | max ms | token p50 µs | p99 µs | max µs |"
    )
    lines = [head, "|" + "|".join(["---"] * 13) + "|"]
    for r in results:
        t, p = r["ttfm_ms"], r["per_token_us"]
        lines.append(
            f"| {r['engine']} {r['version']} | {r['compiled']}/{r['schemas']} | {r['unsupported']} | {r['timeouts']} "
            f"| {r['errors']} | {r['valid_rejected']}/{r['valid_instances']} "
            f"| {r['invalid_accepted']}/{r['invalid_instances']} "
            f"| {t['p50']:.1f} | {t['p90']:.1f} | {t['max']:.1f} | {p['p50']:.1f} | {p['p99']:.1f} | {p['max']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="decc,xgrammar,llguidance")
    ap.add_argument("--schemas", default="*", help="glob on schema names (without .json)")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="compiles per schema (median TTFM) and passes over the valid instances",
    )
    ap.add_argument("--separators", choices=sorted(SEPARATORS), default="compact")
    ap.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds per compile (pure-Python engines only); MaskBench: every engine, per phase",
    )
    ap.add_argument("--model", default="default", help="decc model name whose tokenizer to use")
    ap.add_argument(
        "--out", type=Path, help="the full results as JSON (per schema too); MaskBench mode: JSON lines"
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per engine x schema on stderr")
    ap.add_argument("--smoke", action="store_true", help="one schema, once: check the script runs (CI)")
    mb = ap.add_argument_group("MaskBench mode (module docstring)")
    mb.add_argument(
        "--maskbench",
        nargs="?",
        const=default_folder() or "",
        type=str,
        metavar="DIR",
        help="run over a MaskBench data folder instead of the corpus (DIR default: $DECC_MASKBENCH)",
    )
    mb.add_argument("--sample", type=int, default=0, help="how many files, drawn at random (0: all)")
    mb.add_argument("--seed", type=int, default=0, help="seed of the sample")
    mb.add_argument("--tokenizer", default="default", help="decc.load_tokenizer name (default: SmolLM2)")
    mb.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time with the wall clock, or each engine process's CPU time (for a shared, loaded machine)",
    )
    args = ap.parse_args(argv)
    if args.maskbench is not None:
        if not args.maskbench:
            ap.error("--maskbench needs a folder, or DECC_MASKBENCH set")
        engines = [e.strip() for e in args.engines.split(",") if e.strip()]
        if unknown := [e for e in engines if e not in ENGINES]:
            ap.error(f"unknown engine {unknown[0]!r} (known: {', '.join(ENGINES)})")
        return maskbench_run(
            Path(args.maskbench),
            args.sample,
            args.seed,
            engines,
            args.tokenizer,
            SEPARATORS[args.separators],
            args.timeout,
            args.out,
            args.verbose,
            clock=args.clock,
        )
    if args.smoke:
        args.schemas, args.repeat = "address_book_entry", 1

    from decc.runtime.model import load_tokenizer, model_facts

    tok = load_tokenizer(args.model)
    size, eos_ids = model_facts(args.model)
    eos = min(eos_ids)
    seps = SEPARATORS[args.separators]
    corpus = load_corpus(args.schemas)
    if not corpus:
        print(f"no schemas match {args.schemas!r} in {SCHEMAS}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGALRM, _alarm)

    results, notes = [], []
    for name in [e.strip() for e in args.engines.split(",") if e.strip()]:
        if name not in ENGINES:
            ap.error(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")
        try:
            engine = ENGINES[name](tok, size, frozenset(eos_ids), seps)
        except ImportError as e:
            notes.append(f"{name}: skipped, not installed ({e}); `pip install -e .[bench]` adds the peers")
            continue
        results.append(
            bench_engine(engine, corpus, tok, eos, seps, args.repeat, args.timeout, size, args.verbose)
        )

    n_valid = sum(len(c["valid"]) for c in corpus)
    n_invalid = sum(len(c["invalid"]) for c in corpus)
    print(
        f"{len(corpus)} schemas, {n_valid} valid / {n_invalid} invalid instances; tokenizer {args.model!r} "
        f"(vocab {size}); separators {seps!r}, no free whitespace; repeat {args.repeat}\n"
    )
    print(table(results))
    for c in corpus:
        notes += [f"{c['name']}: {n}" for n in c["notes"]]
    for r in results:
        for s in r["per_schema"]:
            if s["status"] != "compiled":
                notes.append(f"{r['engine']} {s['schema']}: {s['status']}: {s.get('reason', '')[:160]}")
            for v in s.get("valid_rejected", []):
                notes.append(f"{r['engine']} {s['schema']}: valid[{v['instance']}] rejected: {v['why']}")
            for v in s.get("invalid_accepted", []):
                notes.append(f"{r['engine']} {s['schema']}: invalid[{v['instance']}] accepted")
    if notes:
        print("\n" + "\n".join(f"- {n}" for n in notes))
    if args.out:
        meta = {
            "model": args.model,
            "vocab_size": size,
            "separators": seps,
            "repeat": args.repeat,
            "schemas": len(corpus),
            "valid_instances": n_valid,
            "invalid_instances": n_invalid,
        }
        args.out.write_text(json.dumps({"meta": meta, "results": results, "notes": notes}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
