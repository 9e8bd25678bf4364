"""Where the official JSON Schema Test Suite (draft 2020-12) lies, shared by the byte- and token-level tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from decc.testing import SchemaOrderError, to_schema_order

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


def serializations(data: Any, schema: Any) -> list[str] | None:
    """A suite instance as decc writes it (keys in schema order, integral floats as integers), compact and
    with `json.dumps` defaults; None when its keys cannot be put in schema order."""
    try:
        inst = to_schema_order(data, schema)
    except (SchemaOrderError, KeyError, IndexError, TypeError, ValueError):
        return None
    return [json.dumps(inst, separators=(",", ":")), json.dumps(inst)]
