"""Automaton passes benchmark: what `product`, `prune` and `minimize` save, on the embedded model's vocabulary.

For each constraint, compiled with every pass and with one pass turned off: automaton states, the time to
lift the constraint to the 49,152-token vocabulary (plan building: a token-automaton row per state) and
the mean time per mask along a fixed walk of `--steps` tokens (the lazy product builds each row on first
use, so its first walk is timed, as a decode would meet it). The allowed tokens are the same in every
configuration; the walk checks it.

    .venv/bin/python benchmarks/automata.py [--steps 24]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

import decc
from decc.compiler.plan import plan_gens
from decc.grammars.disk_cache import set_disk_cache

CASES = {
    "word&len": 'gen x { where: regex(r"[A-Za-z]+( [A-Za-z]+)*") & length(min=3, max=15), max_tokens: 8 }',
    "id&choice": 'gen x { where: regex(r"[a-z]+-[0-9]+") & choice(["abc-12", "abd-123", "xy-9", "q-1", '
    '"zz-77"]), max_tokens: 8 }',
    "date&not": 'gen x { where: regex(r"20[0-9]{2}-[01][0-9]-[0-3][0-9]") & regex(r"2024-.*|.*-(01|02)-.*"), '
    "max_tokens: 12 }",
    "choice": 'gen x { where: choice(["alpha", "alphabet", "alpine", "beta", "betamax", "gamma", "gammaray", '
    '"delta", "deltawing"]), max_tokens: 6 }',
    "regex": 'gen x { where: regex(r"(ab|ac|ad)*(x|y)[0-9]{1,3}"), max_tokens: 12 }',
}
CONFIGS = {"all passes": [], "no product": ["product"], "no prune": ["prune"], "no minimize": ["minimize"]}


def measure(source: str, no_opt: list[str], steps: int, seed: int = 0) -> dict[str, Any]:
    prog = decc.loads(source, no_opt=no_opt)
    gen = prog.ir.generates()[0]
    states = gen.constraint.n_states if gen.constraint is not None else None
    start = time.perf_counter()
    plan = prog.plan()
    lift = time.perf_counter() - start
    constraint = plan_gens(plan.steps)[0].constraint
    m = constraint.matcher()
    row = torch.zeros((plan.vocab.size + 31) // 32, dtype=torch.int32)
    rng = np.random.default_rng(seed)
    walk, spent = [], 0.0
    for _ in range(steps):
        t0 = time.perf_counter()
        m.fill_bitmask(row)
        spent += time.perf_counter() - t0
        allowed = [t for t in m.allowed_token_ids().tolist() if t not in plan.vocab.eos_ids]
        walk.append(row.clone())
        if not allowed:
            break
        m.advance(int(rng.choice(allowed)))
    return {"states": states, "lift": lift, "mask": spent / len(walk), "walk": walk}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--smoke", action="store_true", help="one case, 2 steps: check the script runs (CI)")
    args = ap.parse_args()
    cases = dict(list(CASES.items())[:1]) if args.smoke else CASES
    if args.smoke:
        args.steps = 2
    set_disk_cache(False)  # every configuration lifts its automata from scratch
    measure('gen x { where: regex(r"[0-9]+"), max_tokens: 2 }', [], 2)  # load the tokenizer, warm up
    print(f"{'case':<10} {'config':<12} {'states':>7} {'lift ms':>8} {'mask us':>8}")
    for name, source in cases.items():
        base = None
        for config, off in CONFIGS.items():
            f = measure(source, off, args.steps)
            if base is None:
                base = f["walk"]
            same = len(base) == len(f["walk"]) and all(
                torch.equal(a, b) for a, b in zip(base, f["walk"], strict=True)
            )
            states = "lazy" if f["states"] is None else str(f["states"])
            print(
                f"{name:<10} {config:<12} {states:>7} {f['lift'] * 1e3:>8.1f} {f['mask'] * 1e6:>8.1f}"
                + ("" if same else "  MASKS DIFFER")
            )


if __name__ == "__main__":
    main()
