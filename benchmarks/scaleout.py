"""Scaling out (issue 22): rows/s of one dataset through `decc run --inputs` (plain), on a local Ray actor
pool (`--ray --actors 2`) and through vLLM (`--engine vllm`), measured side by side in one run.

The dataset is `--rows` inputs of an example program (default `examples/hello.dec`, 200 varied events).
Each mode is the command a user types, run as its own process and timed wall to wall (start-up, model or
engine loads and decoding: what a user waits for); rows/s counts the rows in its results file, and each
mode's rows are compared token for token (the whole context: prompt and values) with the plain run's. A
mode whose extra is not importable (`ray`; `vllm` with decc.runtime.vllm_engine) is reported as skipped,
not failed. vLLM may live in its own virtual environment (`make vllm-env`): `--vllm-python
/work/vllm-venv/bin/python` runs that mode there while the others run here.

    .venv/bin/python benchmarks/scaleout.py [--modes plain ray vllm] [--rows 200] [--actors 2]
        [--program examples/hello.dec] [--batch-size N] [--vllm-python PY] [--json out.json] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODES = ("plain", "ray", "vllm")
NEEDS = {"plain": "import decc", "ray": "import ray", "vllm": "import vllm, decc.runtime.vllm_engine"}
EVENTS = [
    "the first crewed Moon landing",
    "the fall of the Berlin Wall",
    "the signing of the Magna Carta",
    "the storming of the Bastille",
    "the sinking of the Titanic",
    "the first flight of the Wright brothers",
    "the founding of the United Nations",
    "the end of the Second World War in Europe",
    "the launch of Sputnik 1",
    "the assassination of Archduke Franz Ferdinand",
    "the Declaration of Independence of the United States",
    "the opening of the Suez Canal",
    "the first ascent of Mount Everest",
    "the Chernobyl disaster",
    "the release of Nelson Mandela from prison",
    "the reunification of Germany",
    "the opening of the Channel Tunnel",
    "the launch of the Hubble Space Telescope",
    "the first public demonstration of television",
    "the eruption of Mount St. Helens",
    "the first successful human heart transplant",
    "the start of the French Revolution",
    "the coronation of Queen Elizabeth II",
    "the Wall Street Crash",
    "the attack on Pearl Harbor",
]
FRAMINGS = [
    "{e}",
    "{e}, as history books record it",
    "{e} (give the day it began)",
    "the well-known event: {e}",
    "{e}, according to encyclopedias",
    "{e}, in the Gregorian calendar",
    "{e} (the official date)",
    "{e}, as newspapers reported it",
]


def dataset(rows: int) -> list[dict[str, str]]:
    """`rows` distinct inputs for examples/hello.dec's `event` (events x framings, then numbered)."""
    pairs = [f.format(e=e) for f in FRAMINGS for e in EVENTS]
    return [
        {"event": pairs[i % len(pairs)] + (f" #{i // len(pairs)}" if i >= len(pairs) else "")}
        for i in range(rows)
    ]


def available(python: str, mode: str) -> str | None:
    """None when `python` can run `mode`, else why not."""
    out = subprocess.run([python, "-c", NEEDS[mode]], capture_output=True, text=True, timeout=600)
    return None if out.returncode == 0 else (out.stderr.strip().splitlines() or ["import failed"])[-1]


def command(args: argparse.Namespace, mode: str, data: Path, out: Path) -> list[str]:
    python = args.vllm_python if mode == "vllm" else sys.executable
    cmd = [python, "-m", "decc", "run", str(args.program), "--inputs", str(data), "--out", str(out)]
    if args.batch_size is not None:
        cmd += ["--batch-size", str(args.batch_size)]
    if args.max_tokens is not None:
        cmd += ["--max-tokens", str(args.max_tokens)]
    if mode == "ray":
        cmd += ["--ray", "--actors", str(args.actors)]
    if mode == "vllm":
        cmd += ["--engine", "vllm"]
    return cmd


def rows_of(path: Path) -> dict[int, list[int]]:
    """Each written row's token ids (its whole context: prompt and generated values), by input index."""
    rows: dict[int, list[int]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            rows[row["index"]] = row["token_ids"]
    return rows


def measure(args: argparse.Namespace, mode: str, data: Path, work: Path, n: int) -> dict[str, Any]:
    python = args.vllm_python if mode == "vllm" else sys.executable
    record: dict[str, Any] = {"mode": mode, "rows": n, "python": python}
    why = available(python, mode)
    if why is not None:
        return {**record, "status": f"skipped: {why}"}
    out = work / f"{mode}.jsonl"
    out.unlink(missing_ok=True)
    cmd = command(args, mode, data, out)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if mode == "vllm":
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
    seconds = time.perf_counter() - start
    rows = rows_of(out)
    record |= {"command": " ".join(cmd), "seconds": round(seconds, 2), "written": len(rows)}
    record["rows_per_s"] = round(len(rows) / seconds, 3)
    if done.returncode != 0 or len(rows) != n:
        tail = done.stderr.strip().splitlines()[-5:]
        return {**record, "status": f"failed (exit {done.returncode})", "stderr": tail}
    record["status"] = "ok"
    record["token_ids"] = rows
    return record


def table(records: list[dict[str, Any]]) -> str:
    head = f"{'mode':<6} {'rows':>5} {'seconds':>8} {'rows/s':>8} {'same tokens as plain':>21}  status"
    lines = [head, "-" * len(head)]
    for r in records:
        same = r.get("same_as_plain", "")
        lines.append(
            f"{r['mode']:<6} {r.get('written', 0):>5} {r.get('seconds', ''):>8} {r.get('rows_per_s', ''):>8} "
            f"{same:>21}  {r['status']}"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modes", nargs="+", choices=MODES, help="which to run (default: all; --smoke: plain)")
    p.add_argument("--rows", type=int, default=200, help="dataset rows (200)")
    p.add_argument("--program", type=Path, default=ROOT / "examples" / "hello.dec")
    p.add_argument("--actors", type=int, default=2, help="Ray actors (2)")
    p.add_argument("--batch-size", type=int, help="decc run --batch-size (default: decc's, by engine)")
    p.add_argument("--max-tokens", type=int, help="decc run --max-tokens (default: the program's)")
    p.add_argument(
        "--vllm-python", default=sys.executable, help="the Python whose vLLM and decc run --engine vllm"
    )
    p.add_argument("--timeout", type=float, default=3600, help="seconds per mode (3600)")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument(
        "--keep", type=Path, help="a folder for the dataset and results files (default: a temporary one)"
    )
    p.add_argument("--smoke", action="store_true", help="4 rows, plain only: check the script runs (CI)")
    args = p.parse_args()
    if args.smoke:
        args.rows = 4
        args.modes = args.modes or ["plain"]
    modes = args.modes or list(MODES)
    with tempfile.TemporaryDirectory(prefix="decc-scaleout-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = work / "data.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in dataset(args.rows)))
        records = [measure(args, mode, data, work, args.rows) for mode in modes]
    plain = next((r["token_ids"] for r in records if r["mode"] == "plain" and "token_ids" in r), None)
    for r in records:
        ids = r.pop("token_ids", None)
        if plain is not None and ids is not None and r["mode"] != "plain":
            r["same_as_plain"] = f"{sum(ids.get(i) == t for i, t in plain.items())}/{len(plain)}"
    print(f"{args.program.name}, {args.rows} rows, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}")
    print(table(records))
    for r in records:
        for line in r.get("stderr", []):
            print(f"  {r['mode']}: {line}")
    if args.json:
        args.json.write_text(
            json.dumps({"program": str(args.program), "rows": args.rows, "modes": records}, indent=2)
        )
    return 1 if any(r["status"].startswith("failed") for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
