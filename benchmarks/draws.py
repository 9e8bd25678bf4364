"""How fast decc.testing draws strings: 1,000 hypothesis examples from a medium JSON schema.

.venv/bin/python benchmarks/draws.py [--draws 1000] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jsonschema
from hypothesis import given, settings

from decc import testing

SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "examples" / "schemas" / "person.json").read_text()
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--smoke", action="store_true", help="20 draws: check the script runs (CI)")
    args = ap.parse_args()
    n = 20 if args.smoke else args.draws
    strategy = testing.from_json_schema(SCHEMA)  # compiles the schema and the walk tables, outside the timing
    drawn: list[str] = []

    @settings(max_examples=n, database=None, deadline=None)
    @given(strategy)
    def collect(text: str) -> None:
        drawn.append(text)

    start = time.perf_counter()
    collect()
    elapsed = time.perf_counter() - start
    for text in drawn:
        jsonschema.validate(json.loads(text), SCHEMA)
    print(
        f"{len(drawn)} draws in {elapsed:.3f} s ({len(set(drawn))} distinct, all valid), "
        f"mean length {statistics.mean(map(len, drawn)):.1f} chars"
    )


if __name__ == "__main__":
    main()
