"""masks.py's `--maskbench` mode: every engine over the same MaskBench rows, each in its own worker process.

The rows are read and labelled here (data.py); each engine's worker (worker.py) compiles and walks them.
Schemas go one at a time, every engine in turn, so that all engines see the same load on a busy machine.
A worker that does not answer within `timeout` seconds (compile, then again for the walk) is killed and
started afresh for the next schema: the schema's outcome is `timeout`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .data import Row, load_rows, sample_files
from .worker import ONE_THREAD, serve

OUTCOMES = ("passing", "refused", "timeout", "error", "valid rejected", "invalid accepted")
START_SECONDS = 600.0  # loading a tokenizer and building an engine's vocabulary tables


class EngineProcess:
    """One engine's worker process, restarted after a timeout or a crash."""

    def __init__(self, name: str, tokenizer: str, seps: tuple[str, str]) -> None:
        self.name, self.tokenizer, self.seps = name, tokenizer, seps
        self.proc: Any = None
        self.conn: Any = None
        self.version = "?"
        self.restarts = 0

    def start(self) -> str | None:
        """Start the worker if it is not running; None when ready, else why it cannot run."""
        if self.proc is not None:
            return None
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve, args=(child, self.name, self.tokenizer, self.seps), daemon=True)
        self.proc.start()
        child.close()
        reply = self._recv(START_SECONDS)
        if reply is None or reply[0] != "ready":
            why = reply[1] if reply else f"no answer within {START_SECONDS:g} s of starting"
            self.kill()
            return why
        self.version = reply[1]
        return None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.conn.close()
        self.proc = self.conn = None

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.conn.send(None)
                self.proc.join(10)
            except (OSError, EOFError):
                pass
            self.kill()

    def _recv(self, seconds: float) -> tuple | None:
        """The next message, ("died", ...) if the process ended, or None after `seconds`."""
        try:
            if self.conn.poll(seconds):
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        else:
            if self.proc.is_alive():
                return None
        self.proc.join(5)
        return ("died", f"worker died (exit code {self.proc.exitcode})")

    def run(self, row: Row, timeout: float) -> dict:
        """The row's record (see `record`), restarting the worker after a timeout or a crash."""
        why = self.start()
        if why is not None:
            return {"outcome": "error", "error": f"worker did not start: {why}"}
        self.conn.send((row.schema, [i.text for i in row.instances]))
        first = self._recv(timeout)
        if first is None or first[0] == "died":
            self.restarts += 1
            self.kill()
            if first is None:
                return {"outcome": "timeout", "error": f"no first mask within {timeout:g} s"}
            return {"outcome": "error", "error": first[1]}
        if first[0] in ("refused", "error"):
            return {"outcome": first[0], "error": first[1]}
        done = self._recv(timeout)
        if done is None or done[0] != "done":
            self.restarts += 1
            self.kill()
            error = f"instances not walked within {timeout:g} s" if done is None else done[1]
            return {"outcome": "timeout" if done is None else "error", "error": error, "ttfm": first[1]}
        return {"outcome": "compiled", "ttfm": first[1], "results": done[1], "fills": done[2], "adv": done[3]}


def record(engine: str, row: Row, reply: dict) -> dict:
    """The per-schema outcome written to the JSONL file (and counted in the table)."""
    rec: dict[str, Any] = {"engine": engine, "file": row.file, "outcome": reply["outcome"]}
    rec["error"] = reply.get("error", "")
    rec["compile_ms"] = reply["ttfm"] * 1e3 if "ttfm" in reply else None
    counts = Counter()
    rejected, accepted = [], []
    for inst in row.instances:
        counts["order" if inst.out_of_order else "valid" if inst.valid else "invalid"] += 1
    if reply["outcome"] == "compiled":
        for i, (inst, (why, n_tokens)) in enumerate(zip(row.instances, reply["results"], strict=True)):
            counts["tokens"] += n_tokens
            if inst.out_of_order:
                counts["order_rejected"] += why != "ok"
            elif inst.valid and why != "ok":
                counts["valid_rejected"] += 1
                rejected.append({"test": i, "why": why})
            elif not inst.valid and why == "ok":
                counts["invalid_accepted"] += 1
                accepted.append(i)
        crashed = [why for why, _ in reply["results"] if why.startswith("error:")]
        rec["outcome"] = (
            "error"
            if crashed
            else "valid rejected"
            if counts["valid_rejected"]
            else "invalid accepted"
            if counts["invalid_accepted"]
            else "passing"
        )
        rec["error"] = crashed[0] if crashed else rejected[0]["why"] if rejected else ""
    for key in (
        "valid",
        "valid_rejected",
        "invalid",
        "invalid_accepted",
        "order",
        "order_rejected",
        "tokens",
    ):
        rec[key] = counts[key]
    rec["rejected"], rec["accepted_invalid"] = rejected, accepted
    return rec


@dataclass
class Tally:
    """One engine's totals over the run."""

    outcomes: Counter = field(default_factory=Counter)
    order_rejected: int = 0
    compile_s: list[float] = field(default_factory=list)
    fills: list[float] = field(default_factory=list)
    advances: list[float] = field(default_factory=list)

    def add(self, rec: dict, reply: dict) -> None:
        self.outcomes[rec["outcome"]] += 1
        self.order_rejected += rec["order_rejected"]
        if reply["outcome"] == "compiled":
            self.compile_s.append(reply["ttfm"])
            self.fills += reply["fills"]
            self.advances += reply["adv"]


def fmt_seconds(s: float) -> str:
    if s != s:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale or unit == "µs":
            v = s / scale
            return f"{v:.1f} {unit}" if v < 10 else f"{v:.0f} {unit}"
    return "-"


def percentiles(xs: list[float], *qs: float) -> str:
    if not xs:
        return " / ".join("-" for _ in qs)
    a = np.asarray(xs)
    return " / ".join(fmt_seconds(float(np.percentile(a, q))) for q in qs)


def table(engines: list[EngineProcess], tallies: dict[str, Tally]) -> str:
    lines = [
        "| engine | " + " | ".join(OUTCOMES) + " | order | compile p50 / p90 / p99 | mask p50 / p99 "
        "| advance p50 / p99 |",
        "|" + "---|" * (len(OUTCOMES) + 5),
    ]
    for e in engines:
        t = tallies[e.name]
        cells = [str(t.outcomes[o]) for o in OUTCOMES] + [str(t.order_rejected)]
        cells += [percentiles(t.compile_s, 50, 90, 99), percentiles(t.fills, 50, 99)]
        cells += [percentiles(t.advances, 50, 99)]
        lines.append(f"| {e.name} {e.version} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tail_notes(engines: list[EngineProcess], tallies: dict[str, Tally]) -> list[str]:
    """Past the table's p99, per engine: where an engine does its work in fewer, longer steps (decc builds
    the rest of a grammar in one step after its first mask) it shows here, with the total it took."""
    out = []
    for e in engines:
        t = tallies[e.name]
        if t.fills:
            out.append(
                f"{e.name}: mask p99.9 / max {percentiles(t.fills, 99.9, 100)}, advance p99.9 / max "
                f"{percentiles(t.advances, 99.9, 100)}; masks and advances took "
                f"{fmt_seconds(sum(t.fills) + sum(t.advances))} in all"
            )
    return out


def dataset_notes(rows: list[Row]) -> list[str]:
    insts = [i for r in rows for i in r.instances]
    notes = [
        f"{len(rows)} schemas, {sum(i.valid for i in insts)} valid / {sum(not i.valid for i in insts)} "
        "invalid instances"
    ]
    order = [r.file for r in rows if any(i.out_of_order for i in r.instances)]
    if order:
        n = sum(i.out_of_order for i in insts)
        notes.append(
            f"{n} valid instances (in {len(order)} schemas) have object keys in no order the schema "
            "declares: not counted as valid rejected; column 'order' = how many of them each engine rejected"
        )
    valid_no = sum(i.valid and i.jsonschema_says is False for i in insts)
    invalid_yes = sum(not i.valid and i.jsonschema_says is True for i in insts)
    unknown = sum(i.jsonschema_says is None for i in insts)
    if valid_no or invalid_yes or unknown:
        notes.append(
            f"jsonschema and MaskBench's label disagree on {valid_no + invalid_yes} instances ({valid_no} "
            f"labelled valid, {invalid_yes} labelled invalid) and jsonschema cannot check {unknown}; "
            "the label is followed"
        )
    return notes


def run(
    folder: Path,
    sample: int,
    seed: int,
    engines: list[str],
    tokenizer: str,
    seps: tuple[str, str],
    timeout: float,
    out: Path | None,
    verbose: bool,
    stdout: TextIO = sys.stdout,
    clock: str = "wall",
) -> int:
    """Run the MaskBench mode; print the table and notes; 0, or 2 when there is nothing to run."""
    if not folder.is_dir():
        print(
            f"error: MaskBench folder {str(folder)!r} not found (--maskbench DIR or DECC_MASKBENCH)",
            file=sys.stderr,
        )
        return 2
    rows, problems = load_rows(sample_files(folder, sample, seed), seps)
    if not rows:
        print(f"error: no usable MaskBench rows in {folder}", file=sys.stderr)
        return 2
    os.environ.update(ONE_THREAD)  # inherited by the spawned workers before they import torch
    os.environ["MASKBENCH_CLOCK"] = clock
    procs = [EngineProcess(name, tokenizer, seps) for name in engines]
    tallies = {name: Tally() for name in engines}
    skipped: list[str] = []
    sink = out.open("w", encoding="utf-8") if out else None
    try:
        for p in list(procs):
            why = p.start()
            if why is not None:
                skipped.append(f"{p.name}: skipped: {why}")
                procs.remove(p)
        for k, row in enumerate(rows):
            for p in procs:
                reply = p.run(row, timeout)
                rec = record(p.name, row, reply)
                tallies[p.name].add(rec, reply)
                if sink:
                    sink.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    sink.flush()
                if verbose:
                    ms = f"{rec['compile_ms']:9.1f} ms" if rec["compile_ms"] is not None else " " * 12
                    print(
                        f"[{k + 1}/{len(rows)}] {p.name:10s} {row.file:40s} {ms} {rec['outcome']}: "
                        f"{rec['error'][:90]}",
                        file=sys.stderr,
                        flush=True,
                    )
    except KeyboardInterrupt:
        skipped.append("interrupted: the table counts the schemas done so far")
    finally:
        for p in procs:
            p.close()
        if sink:
            sink.close()
    print(
        f"MaskBench {folder} sample {sample or 'all'} seed {seed}; tokenizer {tokenizer!r}; separators "
        f"{seps!r}, no free whitespace; one thread per engine process; {timeout:g} s per schema; "
        f"{'process CPU' if clock == 'cpu' else 'wall-clock'} times\n",
        file=stdout,
    )
    print(table(procs, tallies), file=stdout)
    notes = dataset_notes(rows) + tail_notes(procs, tallies) + problems + skipped
    notes += [f"{p.name}: worker restarted {p.restarts} times" for p in procs if p.restarts]
    print("\n" + "\n".join(f"- {n}" for n in notes), file=stdout)
    return 0


def default_folder() -> str | None:
    return os.environ.get("DECC_MASKBENCH") or None
