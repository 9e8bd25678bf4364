"""A fast sufficient check that a schema is valid under the draft-07 (or -06, or -04) meta-schema.

Meta-validation with `jsonschema` walks every subschema through the meta-schema's `$ref`s, about a
millisecond per ordinary schema, a fair part of compiling one. Most schemas are valid; this walk proves it
directly from the draft-07 meta-schema's rules (keyword by keyword), and says False whenever it is not
sure, so that the caller runs `jsonschema` for the verdict and its positioned error. Draft 06 constrains
nothing draft 07 does not; draft 04 gets its own few rules (`draft4=True`): no boolean schemas but
`additionalItems`/`additionalProperties: false`, boolean exclusive bounds next to their bound, non-empty
`required`/`enum` lists of distinct items.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Conforms = Callable[[Any, str], bool]  # (instance, format name) -> does the format checker accept it
SIMPLE_TYPES = frozenset({"array", "boolean", "integer", "null", "number", "object", "string"})
_STRINGS = frozenset({"$comment", "title", "description", "format", "contentMediaType", "contentEncoding"})
_NUMBERS = frozenset({"maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"})
_COUNTS = frozenset({"maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties"})
_SCHEMAS = frozenset(
    {"additionalItems", "contains", "additionalProperties", "propertyNames", "if", "then", "else", "not"}
)
_SCHEMA_MAPS = frozenset({"definitions", "properties"})
_SCHEMA_ARRAYS = frozenset({"allOf", "anyOf", "oneOf"})
_FORMATS = {"$id": "uri-reference", "$ref": "uri-reference", "$schema": "uri", "pattern": "regex"}


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _count(v: Any) -> bool:
    """A non-negative integer as jsonschema counts one (1.0 included)."""
    return _number(v) and v >= 0 and (isinstance(v, int) or v.is_integer())


def _string_array(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v) and len(set(v)) == len(v)


def surely_valid(schema: Any, conforms: Conforms, draft4: bool = False) -> bool:
    """True only when `schema` is valid under the draft-07 meta-schema, or the draft-04 one (False: not
    known). `conforms`: the format checker of that draft's validator."""
    stack: list[tuple[Any, bool]] = [(schema, not draft4)]  # (subschema, may it be a boolean)
    while stack:
        s, boolean_ok = stack.pop()
        if isinstance(s, bool):
            if not boolean_ok:
                return False
            continue
        if not isinstance(s, dict):
            return False
        kids: list[Any] = []
        for k, v in s.items():
            if draft4 and not _draft4(k, v, s):
                return False
            if k in _SCHEMAS:
                if not (draft4 and isinstance(v, bool) and k.startswith("additional")):
                    kids.append(v)  # draft 04: `additionalItems`/`additionalProperties` may be booleans
            elif k in _SCHEMA_MAPS:
                if not isinstance(v, dict):
                    return False
                kids.extend(v.values())
            elif k in _SCHEMA_ARRAYS:
                if not isinstance(v, list) or not v:
                    return False
                kids.extend(v)
            elif k in _STRINGS:
                if not isinstance(v, str):
                    return False
            elif k in _FORMATS:
                if not isinstance(v, str) or not (draft4 and k != "pattern" or conforms(v, _FORMATS[k])):
                    return False
            elif k in _NUMBERS:
                if not (_number(v) or draft4 and isinstance(v, bool)):
                    return False
            elif k in _COUNTS:
                if not _count(v):
                    return False
            elif not _other(k, v, kids, conforms):
                return False
        stack.extend((kid, not draft4) for kid in kids)
    return True


def _draft4(k: str, v: Any, s: dict) -> bool:
    """Draft 04's rules that draft 07's do not imply (the caller checks the rest as draft 07's)."""
    if k == "id":
        return isinstance(v, str)
    if k in _COUNTS:  # draft 04's integers are ints (1.0 is not one)
        return isinstance(v, int) and not isinstance(v, bool)
    if k in ("exclusiveMaximum", "exclusiveMinimum"):
        return isinstance(v, bool) and ("maximum" if k == "exclusiveMaximum" else "minimum") in s
    if k in ("maximum", "minimum"):
        return _number(v)
    if k in ("required", "enum"):
        return isinstance(v, list) and bool(v) and _distinct(v)
    if k == "dependencies" and isinstance(v, dict):
        return all(not isinstance(d, list) or d for d in v.values())
    return True


def _distinct(items: list) -> bool:
    """No two items equal as JSON values (scalars only; False when not sure)."""
    keys = set()
    for x in items:
        if isinstance(x, bool) or x is None or isinstance(x, str):
            keys.add((type(x).__name__, x))
        elif _number(x):
            keys.add(("number", float(x)))  # 1 and 1.0 are one value (a float collision says: not sure)
        else:
            return False
    return len(keys) == len(items)


def _other(k: str, v: Any, kids: list[Any], conforms: Conforms) -> bool:
    """The remaining draft-07 keywords (anything else is not constrained by the meta-schema)."""
    if k == "type":
        if isinstance(v, str):
            return v in SIMPLE_TYPES
        return (
            isinstance(v, list)
            and bool(v)
            and all(isinstance(t, str) and t in SIMPLE_TYPES for t in v)
            and len(set(v)) == len(v)
        )
    if k == "items":
        if isinstance(v, list):
            kids.extend(v)
            return bool(v)
        kids.append(v)
        return True
    if k == "required":
        return _string_array(v)
    if k in ("enum", "examples"):
        return isinstance(v, list)
    if k in ("readOnly", "uniqueItems"):
        return isinstance(v, bool)
    if k == "multipleOf":
        return _number(v) and v > 0
    if k == "patternProperties":
        if not isinstance(v, dict) or not all(conforms(p, "regex") for p in v):
            return False
        kids.extend(v.values())
        return True
    if k == "dependencies":
        if not isinstance(v, dict):
            return False
        for d in v.values():
            if isinstance(d, list):
                if not _string_array(d):
                    return False
            else:
                kids.append(d)
        return True
    return True
