"""MaskBench rows for masks.py's `--maskbench` mode: a seeded sample of the folder's files, each checked and
labelled once, in the parent process, so that every engine gets exactly the same instances.

A row is `<file>.json` = {"description", "meta", "schema", "tests": [{"description", "valid", "data"}]}.
Unreadable files and rows without those keys are reported as problems and skipped (never a traceback).
Each instance keeps MaskBench's label; where `jsonschema` (formats asserted, no remote `$ref` retrieval)
says otherwise, or cannot decide, the instance is flagged so the report can count the mismatches. A valid
instance whose object keys cannot be in schema order (`keys_in_schema_order`) is flagged `order`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote


@dataclass(frozen=True)
class Instance:
    """One MaskBench test: its label, its text as every engine sees it, and the two flags."""

    valid: bool
    text: str
    jsonschema_says: bool | None  # None: jsonschema could not check it (bad schema, unresolvable $ref)
    out_of_order: bool  # a valid instance whose keys cannot come in schema order


@dataclass(frozen=True)
class Row:
    file: str
    schema: Any
    instances: tuple[Instance, ...]


def sample_files(folder: Path, sample: int, seed: int) -> list[Path]:
    """`sample` files of `folder` (0: all), drawn with `random.Random(seed)` from the sorted listing."""
    files = sorted(folder.glob("*.json"))
    if 0 < sample < len(files):
        files = random.Random(seed).sample(files, sample)
    return files


def load_rows(files: list[Path], seps: tuple[str, str]) -> tuple[list[Row], list[str]]:
    """The usable rows of `files` and one problem line per file skipped."""
    rows, problems = [], []
    for path in files:
        try:
            rows.append(load_row(path, seps))
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as e:
            problems.append(f"{path.name}: skipped: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
    return rows, problems


def load_row(path: Path, seps: tuple[str, str]) -> Row:
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or "schema" not in doc or not isinstance(doc.get("tests"), list):
        raise KeyError("not a MaskBench row: needs 'schema' and a 'tests' list")
    schema = doc["schema"]
    if not isinstance(schema, (dict, bool)):
        raise TypeError(f"schema is a {type(schema).__name__}")
    check = _validity_checker(schema)
    instances = []
    for i, test in enumerate(doc["tests"]):
        if not isinstance(test, dict) or not isinstance(test.get("valid"), bool) or "data" not in test:
            raise KeyError(f"tests[{i}] needs a boolean 'valid' and 'data'")
        data, valid = test["data"], test["valid"]
        text = json.dumps(data, separators=seps, ensure_ascii=False, allow_nan=False)
        out_of_order = valid and not keys_in_schema_order(schema, data)
        instances.append(Instance(valid, text, check(data), out_of_order))
    return Row(path.name, schema, tuple(instances))


def _validity_checker(schema: Any) -> Any:
    """data -> jsonschema's verdict, or None where jsonschema cannot decide."""
    try:
        import referencing
        from jsonschema import validators

        cls = validators.validator_for(schema, default=validators.Draft202012Validator)
        validator = cls(schema, format_checker=cls.FORMAT_CHECKER, registry=referencing.Registry())
    except Exception:
        return lambda data: None

    def check(data: Any) -> bool | None:
        try:
            return bool(validator.is_valid(data))
        except Exception:  # unresolvable $ref, a pattern Python's re rejects, a malformed keyword...
            return None

    return check


# -- key order ----------------------------------------------------------------------------------------


def keys_in_schema_order(schema: Any, data: Any) -> bool:
    """Whether every object of `data` can have its keys in the order decc writes them: the properties some
    applicable subschema declares (one subschema's `properties`, or all of them merged in order, as `allOf`
    merges them; names only `required` lists come after `properties`), in that order, before any
    undeclared key. An object that some applicable subschema takes with no declared properties (`{}`, or
    only `additionalProperties`) takes any order. Subschemas are found by walking `data` with
    the schema: local `$ref`s, `allOf`/`anyOf`/`oneOf`/`then`/`else`, `properties`/`patternProperties`/
    `additionalProperties`, `items`/`prefixItems`/`additionalItems`. An object no subschema declares
    properties for takes any order. Engine-independent, so it flags the same instances for every engine."""
    return SchemaWalk(schema).in_order([schema], data, 0)


def _declared(s: dict) -> list[str]:
    """A subschema's property names as decc orders them: `properties`, then names only `required` gives."""
    names = list(s["properties"])
    required = s.get("required") if isinstance(s.get("required"), list) else []
    return names + [r for r in required if isinstance(r, str) and r not in names]


def _any_order(s: dict) -> bool:
    """An alternative that takes objects and declares no property: their keys come in any order."""
    types = s.get("type", "object")
    takes_objects = "object" in (types if isinstance(types, list) else [types])
    return takes_objects and not ({"properties", "required", "enum", "const", *COMBINATORS} & set(s))


def _follows(keys: list[str], order: list[str]) -> bool:
    place = {k: i for i, k in enumerate(order)}
    last, undeclared_seen = -1, False
    for k in keys:
        if k not in place:
            undeclared_seen = True
        elif undeclared_seen or place[k] < last:
            return False
        else:
            last = place[k]
    return True


COMBINATORS = ("allOf", "anyOf", "oneOf", "then", "else", "$ref")


class SchemaWalk:
    """The subschemas that apply to each value of an instance, found by walking it with the schema
    (approximately: every branch of `anyOf`/`oneOf`/`if` counts)."""

    MAX_DEPTH = 64

    def __init__(self, root: Any) -> None:
        self.root = root

    def resolve(self, s: Any) -> Any:
        for _ in range(32):
            ref = s.get("$ref") if isinstance(s, dict) else None
            if not isinstance(ref, str) or not ref.startswith("#"):
                return s
            target: Any = self.root
            for part in (p for p in ref[1:].split("/") if p):
                part = unquote(part).replace("~1", "/").replace("~0", "~")
                if isinstance(target, dict) and part in target:
                    target = target[part]
                elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                    target = target[int(part)]
                else:
                    return None
            if len(s) > 1:  # sibling keywords next to $ref (2019+): both apply
                return {"allOf": [target, {k: v for k, v in s.items() if k != "$ref"}]}
            s = target
        return None

    def candidates(self, schemas: list[Any]) -> list[dict]:
        return [s for s, _ in self.tagged(schemas)]

    def tagged(self, schemas: list[Any]) -> list[tuple[dict, bool]]:
        """The subschemas that apply, each with whether it was reached through an `allOf` (a conjunct, not
        an alternative)."""
        out: list[tuple[dict, bool]] = []
        seen: set[int] = set()
        stack = [(x, False) for x in reversed(schemas)]
        while stack:
            x, conj = stack.pop()
            s = self.resolve(x)
            if not isinstance(s, dict) or id(s) in seen or len(out) > 256:
                continue
            seen.add(id(s))
            out.append((s, conj))
            for kw in ("allOf", "anyOf", "oneOf"):
                if isinstance(s.get(kw), list):
                    stack.extend((y, conj or kw == "allOf") for y in reversed(s[kw]))
            stack.extend((s[kw], conj) for kw in ("else", "then") if kw in s)
        return out

    def at(self, path: tuple[str | int, ...]) -> list[dict]:
        """The candidate subschemas of the value at `path` (keys and indices) of an instance."""
        schemas: list[Any] = [self.root]
        for part in path:
            cands = self.candidates(schemas)
            if isinstance(part, int):
                schemas = list(self.items(cands, part))
            else:
                schemas = list(self.children(cands, part))
        return self.candidates(schemas)

    def in_order(self, schemas: list[Any], data: Any, depth: int) -> bool:
        if depth > self.MAX_DEPTH or not isinstance(data, (dict, list)):
            return True
        tagged = self.tagged(schemas)
        cands = [c for c, _ in tagged]
        if isinstance(data, dict):
            orders = [_declared(c) for c in cands if isinstance(c.get("properties"), dict)]
            merged = list(dict.fromkeys(k for o in orders for k in o))
            free = any(_any_order(c) for c, conj in tagged if not conj)
            if orders and not free and not any(_follows(list(data), o) for o in [*orders, merged]):
                return False
            return all(self.in_order(list(self.children(cands, k)), v, depth + 1) for k, v in data.items())
        return all(self.in_order(list(self.items(cands, i)), v, depth + 1) for i, v in enumerate(data))

    @staticmethod
    def children(cands: list[dict], key: str) -> Iterator[Any]:
        for c in cands:
            props = c.get("properties") if isinstance(c.get("properties"), dict) else {}
            if key in props:
                yield props[key]
                continue
            matched = False
            for pattern, sub in (c.get("patternProperties") or {}).items():
                try:
                    if re.search(pattern, key):
                        matched = True
                        yield sub
                except re.error:
                    matched = True
                    yield sub
            if not matched and isinstance(c.get("additionalProperties"), dict):
                yield c["additionalProperties"]

    @staticmethod
    def items(cands: list[dict], i: int) -> Iterator[Any]:
        for c in cands:
            prefix = c.get("prefixItems")
            items = c.get("items")
            if isinstance(prefix, list):
                if i < len(prefix):
                    yield prefix[i]
                elif isinstance(items, dict):
                    yield items
            elif isinstance(items, list):
                if i < len(items):
                    yield items[i]
                elif isinstance(c.get("additionalItems"), dict):
                    yield c["additionalItems"]
            elif isinstance(items, dict):
                yield items
