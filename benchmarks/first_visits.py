"""Per-step mask times of the lazy grammar engine on MaskBench schemas, and what its first visits cost.

A *first visit* is a step whose mask needs an RTN state whose token rows were never computed
(grammars/contextfree/cfg_rows.py): the trie walk with the shared loop walks (`--walk trie`, the default),
or the pair walk over every (state, token) pair (`--walk reference`, what decc did before). Each schema's
valid and invalid instances are walked token by token (fill, then advance, as masks.py counts a step),
one thread, one process; the shared loop walks stay warm across schemas, as in a serving process.

    OMP_NUM_THREADS=1 python benchmarks/first_visits.py --maskbench /work/maskbench/data --sample 100 \\
        --seed 1 --walk reference --tokenizer llama-bpe

prints the per-step p50 / p90 / p99, the share of steps that are first visits, their cost, the
costliest states by rule, and what the slowest 1% of masks (fills alone, the p99 of masks.py) were doing:
building lexeme rows, building rules (in the simulation), walking several new states or one, simulating
uncertain tokens only, or a collection of the cyclic garbage collector; and the p99 of the work itself
(walks, lexeme rows, simulations, signatures) without the glue around it, a floor for the fills' p99 as
long as that work is done on the step. `--out FILE` keeps one JSON line per schema.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SMOKE = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["name"],
}


class _Timeout(Exception):
    pass


def _alarm(*_: Any) -> None:
    raise _Timeout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maskbench", type=Path, default=os.environ.get("DECC_MASKBENCH"))
    ap.add_argument("--sample", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tokenizer", default="default")
    ap.add_argument("--walk", choices=["trie", "reference"], default="trie")
    ap.add_argument("--timeout", type=int, default=60, help="seconds per compile")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--smoke", action="store_true", help="one small built-in schema (CI)")
    args = ap.parse_args()
    os.environ.update({"OMP_NUM_THREADS": "1", "DECC_COMPILE_SECONDS": "none"})
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.simplefilter("ignore")
    import torch

    from benchmarks.maskbench.data import Instance, Row, load_rows, sample_files
    from benchmarks.maskbench.engines import Unsupported, encode, make_engine
    from benchmarks.maskbench.worker import load_tokenizer
    from decc.grammars.contextfree import cfg_matcher, cfg_rows, earley, rtn

    torch.set_num_threads(1)
    causes = _count_causes(cfg_rows, cfg_matcher, rtn, earley)
    cfg_rows.StateRows.reference = args.walk == "reference"
    visits: list[tuple[str, float, list[str]]] = []
    walk, lexeme = cfg_rows.StateRows._walk, cfg_rows.StateRows._lexeme

    def timed_walk(self: Any, states: Any) -> None:
        t = time.perf_counter()
        walk(self, states)
        rtn = self.rtn
        names = [rtn.names[int(rtn.rule_of[g])] for g in states]
        visits.append(("walk", time.perf_counter() - t, names))

    def timed_lexeme(self: Any, r: int) -> None:
        t = time.perf_counter()
        lexeme(self, r)
        visits.append(("lexeme", time.perf_counter() - t, [self.rtn.names[r]]))

    cfg_rows.StateRows._walk, cfg_rows.StateRows._lexeme = timed_walk, timed_lexeme
    tok, size, eos_ids = load_tokenizer(args.tokenizer)
    engine = make_engine("decc", tok, size, frozenset(eos_ids), (",", ":"))
    eos = min(eos_ids)
    row = torch.zeros((size + 31) // 32, dtype=torch.int32)
    words = row.numpy()
    if args.smoke:
        texts = ['{"name":"ab","tags":["x","yz"]}', '{"tags":[]}']
        rows = [Row("smoke", SMOKE, tuple(Instance(i == 0, t, None, False) for i, t in enumerate(texts)))]
    else:
        if args.maskbench is None:
            ap.error("--maskbench DIR (or $DECC_MASKBENCH) is needed")
        rows, _ = load_rows(sample_files(args.maskbench, args.sample, args.seed), (",", ":"))
    # as masks.py's workers do (maskbench/worker.py): what is loaded so far is frozen out of the collector
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGALRM, _alarm)
    steps: list[tuple[float, bool]] = []  # (seconds, first visit)
    fills: list[tuple[float, dict[str, int]]] = []  # (seconds, what it did)
    out = args.out.open("w") if args.out else None
    for r in rows:
        engine.clear_cache()
        signal.alarm(args.timeout)
        try:
            factory = engine.compile(r.schema)
            factory().fill(row)
        except (Unsupported, _Timeout) as e:
            if out:
                out.write(json.dumps({"file": r.file, "skipped": str(e)[:200]}) + "\n")
            continue
        finally:
            signal.alarm(0)
        mine = []
        for inst in r.instances:
            m = factory()
            for t in [*encode(tok, inst.text), eos]:
                before = len(visits)
                causes.clear()
                t0 = time.perf_counter()
                m.fill(row)
                t1 = time.perf_counter()
                fills.append((t1 - t0, dict(causes)))
                ok = bool((int(words[t >> 5]) >> (t & 31)) & 1) and m.advance(t)
                mine.append((time.perf_counter() - t0, len(visits) > before))
                if not ok:
                    break
        steps += mine
        if out:
            out.write(json.dumps({"file": r.file, "steps": mine}) + "\n")
    _report(steps, visits, args)
    _report_tail(fills)


def _count_causes(cfg_rows: Any, cfg_matcher: Any, rtn: Any, earley: Any) -> dict[str, int]:
    """Counters of what a fill does, kept by wrapping the engine's methods (cleared before each fill)."""
    causes: dict[str, int] = {}

    def counting(owner: Any, name: str, key: str, size: Any = None) -> None:
        method = getattr(owner, name)

        def counted(self: Any, *args: Any) -> Any:
            causes[key] = causes.get(key, 0) + (1 if size is None else size(*args))
            return method(self, *args)

        setattr(owner, name, counted)

    counting(cfg_rows.StateRows, "_walk", "states", len)
    counting(cfg_rows.StateRows, "_lexeme", "lexeme")
    counting(rtn.RTN, "_build", "build")
    counting(cfg_matcher.CFGConstraint, "_simulate", "simulated", lambda chart, ranks: len(ranks))
    gc.callbacks.append(lambda phase, info: phase == "start" and causes.__setitem__("gc", 1))
    # the work itself, in microseconds: state walks, lexeme rows, the simulation (with the rule builds it
    # calls) and the signature, outermost calls only; what a fill spends besides is glue around them
    depth = [0]
    for owner, name in (
        (cfg_rows.StateRows, "_walk"),
        (cfg_rows.StateRows, "_lexeme"),
        (earley.Recognizer, "simulate"),
        (earley.Recognizer, "signature"),
    ):
        method = getattr(owner, name)

        def timed(self: Any, *args: Any, _method: Any = method) -> Any:
            if depth[0]:
                return _method(self, *args)
            depth[0] += 1
            t = time.perf_counter()
            try:
                return _method(self, *args)
            finally:
                depth[0] -= 1
                causes["work_us"] = causes.get("work_us", 0) + int((time.perf_counter() - t) * 1e6)

        setattr(owner, name, timed)
    return causes


def _cause(c: dict[str, int]) -> str:
    if c.get("gc"):
        return "a collection of the cyclic GC"
    if c.get("lexeme"):
        return "lexeme rows (a token automaton)"
    if c.get("build"):
        return "rule builds"
    if c.get("states", 0) > 1:
        return "several new states walked"
    if c.get("states"):
        return "one new state walked" + (" and a simulation" if c.get("simulated") else "")
    if c.get("simulated"):
        return "a simulation only (a mask-cache miss)"
    return "other"


def _report_tail(fills: list[tuple[float, dict[str, int]]]) -> None:
    """What the slowest 1% of fills did (each counted under its first cause in `_cause`'s order)."""
    import numpy as np

    if not fills:
        return
    t = np.array([s for s, _ in fills])
    p99 = float(np.percentile(t, 99))
    tail = [c for s, c in fills if s >= p99]
    print(f"masks (fills alone): p50 {np.percentile(t, 50) * 1e6:.1f} us, p99 {p99 * 1e6:.0f} us; the "
          f"{len(tail)} at or past p99:")  # fmt: skip
    counts: dict[str, int] = {}
    for c in tail:
        counts[_cause(c)] = counts.get(_cause(c), 0) + 1
    for cause, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {cause}: {n} ({n / len(tail):.0%})")
    # a floor for the design: the fills' p99 were the glue around the work free
    work = np.array([c.get("work_us", 0) for _, c in fills], dtype=np.float64)
    print(f"the work itself (walks, lexeme rows, simulations with their rule builds, signatures): p99 "
          f"{np.percentile(work, 99):.0f} us; {int((work > 31).sum())} masks ({(work > 31).mean():.1%}) "
          f"spend over 31 us in it (1/4 of llguidance's p99 on SmolLM2 in issue 20's runs)")  # fmt: skip


def _report(steps: list[tuple[float, bool]], visits: list[tuple[str, float, list[str]]], args: Any) -> None:
    import numpy as np

    if not steps:
        print("no steps walked")
        return
    t = np.array([s for s, _ in steps])
    first = np.array([f for _, f in steps])
    walks = np.array([v[1] for v in visits if v[0] == "walk"] or [0.0])
    p = lambda a, q: np.percentile(a, q) * 1e6  # noqa: E731
    print(f"walk={args.walk} tokenizer={args.tokenizer}: {len(t)} steps, p50 {p(t, 50):.1f} us, "
          f"p90 {p(t, 90):.0f} us, p99 {p(t, 99):.0f} us, mean {t.mean() * 1e6:.0f} us")  # fmt: skip
    rest = p(t[~first], 99) if (~first).any() else 0.0
    print(f"first visits: {int(first.sum())} steps ({first.mean():.1%}), {t[first].sum():.2f} s of "
          f"{t.sum():.2f} s; state walks p50 {p(walks, 50):.0f} us, p90 {p(walks, 90):.0f} us, p99 "
          f"{p(walks, 99):.0f} us; steps without one: p99 {rest:.0f} us")  # fmt: skip
    by_rule: dict[str, list[float]] = {}
    for kind, sec, names in visits:
        key = kind + ":" + names[0].rstrip("0123456789_")
        by_rule.setdefault(key, []).append(sec)
    for key, secs in sorted(by_rule.items(), key=lambda kv: -sum(kv[1]))[:6]:
        print(f"  {key}: {len(secs)} visits, {sum(secs):.2f} s, max {max(secs) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
