"""Hostile inputs for `decc check`: each case runs in a subprocess under a memory cap (RLIMIT_AS) and a time
cap, and must end with exit 0 (legitimately fine) or 2 with a positioned error, never 70, never killed.

    python benchmarks/hostile.py            # full-size cases, the default 120 s compile limit
    python benchmarks/hostile.py --compile-seconds 20   # full size, a shorter compile limit
    python benchmarks/hostile.py --smoke    # a few small cases (tests/test_hostile_limits.py runs them all)

Prints one line per case and a summary: tried / positioned error / internal error / over limit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

GIB = 1 << 30
# file:line:col, or a whole-file error that names the file (an encoding, a size)
POSITIONED = re.compile(r"^(\S+\.(dec|json|lark):\d+:\d+: error: |decc: error: '[^']+' )", re.M)


@dataclass(frozen=True)
class Case:
    """One hostile program: its source (built at run time, never committed) and files beside it."""

    name: str
    source: Callable[[int], bytes]  # given the scale: 1 full size, else a divisor for the tests
    expect: int | None = 2  # 2: a positioned error; 0: fine; None: either (fine at small sizes)
    model_free: bool = True
    files: dict[str, Callable[[int], bytes]] = field(default_factory=dict)


def _gen(where: str, extra: str = "") -> bytes:
    return f"gen x {{ where: {where}{extra} }}\n".encode()


def _schema(schema: object) -> bytes:
    return _gen('json(r"""' + json.dumps(schema) + '""")')


def _nested_objects(depth: int) -> bytes:
    head = '{"type": "object", "properties": {"a": ' * depth
    return _gen('json(r"""' + head + '{"type": "string"}' + '}, "required": ["a"]}' * depth + '""")')


def _nested_arrays(depth: int) -> bytes:
    return _gen(
        'json(r"""' + '{"type": "array", "items": ' * depth + '{"type": "integer"}' + "}" * depth + '""")'
    )


def _chain(n: int) -> bytes:
    rules = [f'r{i}: r{i + 1} | "a"' for i in range(n)] + [f'r{n}: "b"']
    return ("start: r0\n" + "\n".join(rules) + "\n").encode()


def _chain_file(scale: int) -> bytes:
    return _chain(500)


def _lines(n: int) -> bytes:
    out = []
    for i in range(n // 2):
        out += [f'"line {i}\\n"', f'let d{i} = regex(r"[0-9]{{1,3}}")']
    return ("\n".join(out) + "\ngen x { where: d1 }\n").encode()


CASES: list[Case] = [
    Case("regex a{20000} (minimize)", lambda s: _gen('regex(r"a{20000}")'), expect=None),
    Case("regex a{99999}", lambda s: _gen('regex(r"a{99999}")')),
    Case("regex 250 nested parens", lambda s: _gen('regex(r"' + "(" * 250 + "a" + ")" * 250 + '")')),
    # once refused (one automaton too large); the lazy grammar engine compiles it (within the limit or not)
    Case("arrays nested 30 deep", lambda s: _nested_arrays(30), expect=None),
    Case("arrays nested 100 deep", lambda s: _nested_arrays(100)),
    Case("objects nested 100 deep", lambda s: _nested_objects(100)),
    Case("inline schema nested 1000 deep", lambda s: _nested_arrays(1000)),
    Case(
        "enum of N strings",
        lambda s: _schema({"enum": [f"value-{i}" for i in range(100_000 // s)]}),
        expect=None,
    ),
    Case(
        "prefixItems of 200",
        lambda s: _schema({"type": "array", "prefixItems": [{"type": "integer"}] * 200}),
    ),
    Case("integer maximum 1e300", lambda s: _schema({"type": "integer", "maximum": 1e300})),
    Case("maximum 1e400", lambda s: _gen('json(r"""{"type": "number", "maximum": 1e400}""")')),
    Case("maximum Infinity", lambda s: _gen('json(r"""{"type": "number", "maximum": Infinity}""")')),
    Case("number(max=1e400)", lambda s: _gen("number(max=1e400)")),
    Case("temperature=1e999", lambda s: b"gen x { search: sample(temperature=1e999), max_tokens: 3 }\n"),
    Case("lone surrogate", lambda s: b'"\\ud800"\ngen x { max_tokens: 3 }\n'),
    Case(
        "lark %declare then start",
        lambda s: _gen('grammar(file="g.lark")'),
        files={"g.lark": lambda s: b"%declare X\nstart: X\n"},
    ),
    Case(
        "grammar chain of 500",
        lambda s: _gen('grammar(file="g.lark")'),
        expect=0,
        files={"g.lark": _chain_file},
    ),
    Case(
        "start: start",
        lambda s: _gen('grammar(file="g.lark")'),
        files={"g.lark": lambda s: b"start: start\n"},
    ),
    Case("regex .{1000} too large for the vocabulary", lambda s: _gen('regex(r".{1000}")'), model_free=False),
    Case("10 MB string literal", lambda s: b'"' + b"a" * (10_000_000 // s) + b'"\ngen x\n', expect=None),
    Case("unterminated 10 MB string", lambda s: b'"' + b"a" * (10_000_000 // s) + b"\ngen x\n"),
    Case(
        "json(file=/dev/zero)",
        lambda s: _gen('json(file="/dev/zero")'),
    ),
    Case("CR-only line endings", lambda s: b"# comment\rgen x { max_tokns: 3 }\r"),
    Case("UTF-32 file", lambda s: 'gen x\n"\u00e9t\u00e9"\n'.encode("utf-32"), expect=2),
    Case("50,000-line program", lambda s: _lines(50_000 // s), expect=0),
    Case(
        "10,000-part conjunction",
        lambda s: _gen(" & ".join(['regex(r"[a-z]+")'] * (10_000 // s))),
        expect=0,
    ),
]


@dataclass(frozen=True)
class Outcome:
    case: str
    code: int  # -9 and the like: killed
    seconds: float
    first_line: str
    verdict: str  # "ok", "positioned error", "unpositioned error", "internal error", "over limit"


def _cap(memory: int) -> Callable[[], None]:
    def set_limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return set_limits


def run_case(
    case: Case, scale: int, compile_seconds: float | None, wall: float, memory: int = 2 * GIB
) -> Outcome:
    """Run `decc check` on the case in a fresh process under the caps."""
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "p.dec").write_bytes(case.source(scale))
        for name, make in case.files.items():
            (folder / name).write_bytes(make(scale))
        env = dict(os.environ, OMP_NUM_THREADS="1")
        if compile_seconds is not None:
            env["DECC_COMPILE_SECONDS"] = str(compile_seconds)
        cmd = [sys.executable, "-m", "decc", "check", *(["--model-free"] if case.model_free else []), "p.dec"]
        start = time.monotonic()
        try:
            done = subprocess.run(
                cmd,
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=wall,
                preexec_fn=_cap(memory),
                errors="replace",
            )
        except subprocess.TimeoutExpired:
            return Outcome(case.name, -1, time.monotonic() - start, "", "over limit")
        seconds = time.monotonic() - start
    err = done.stderr
    first = err.splitlines()[0] if err.strip() else done.stdout.strip()[:120]
    if done.returncode == 70 or "Traceback" in err:
        verdict = "internal error"
    elif done.returncode < 0 or "MemoryError" in err:
        verdict = "over limit"
    elif done.returncode == 2:
        verdict = "positioned error" if POSITIONED.search(err) else "unpositioned error"
    elif done.returncode == 0:
        verdict = "ok"
    else:
        verdict = f"exit {done.returncode}"
    return Outcome(case.name, done.returncode, seconds, first[:160], verdict)


def summary(outcomes: list[Outcome]) -> str:
    count = {
        v: sum(o.verdict == v for o in outcomes) for v in ("positioned error", "internal error", "over limit")
    }
    return (
        f"tried {len(outcomes)} / positioned error {count['positioned error']} / "
        f"internal error {count['internal error']} / over limit {count['over limit']} / "
        f"ok {sum(o.verdict == 'ok' for o in outcomes)}"
    )


SMOKE = ("number(max=1e400)", "lone surrogate", "CR-only line endings", "UTF-32 file")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few small cases and a 3 s compile limit")
    parser.add_argument("-k", default="", help="only the cases whose name contains this")
    parser.add_argument("--compile-seconds", type=float, help="the compile limit (DECC_COMPILE_SECONDS)")
    args = parser.parse_args()
    scale, limit, wall = (20, 3.0, 30.0) if args.smoke else (1, None, 200.0)
    limit = args.compile_seconds if args.compile_seconds is not None else limit
    outcomes = []
    for case in CASES:
        if args.k.lower() not in case.name.lower() or (args.smoke and case.name not in SMOKE):
            continue
        o = run_case(case, scale, limit, wall)
        outcomes.append(o)
        print(f"{o.verdict:18} exit {o.code:3} {o.seconds:6.1f} s  {o.case}: {o.first_line}", flush=True)
    print(summary(outcomes))
    bad = sum(o.verdict in ("internal error", "over limit", "unpositioned error") for o in outcomes)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
