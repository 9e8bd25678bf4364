"""Where the official JSON Schema Test Suite (draft 2020-12) lies, shared by the byte- and token-level tests."""

from __future__ import annotations

from pathlib import Path

SUITE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "json-schema-test-suite"
    / "tests"
    / "draft2020-12"
)
SKIP_FILES = {"format.json"}  # in 2020-12 `format` is an annotation, while decc asserts it


def suite_files() -> list[Path]:
    if not SUITE.is_dir():
        return []
    return sorted(p for p in SUITE.glob("*.json") if p.name not in SKIP_FILES)
