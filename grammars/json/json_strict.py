"""Strict objects: a JSON schema rewritten so that objects hold only the properties they declare.

JSON Schema lets an object without `additionalProperties` carry any other key, so a model constrained by a
default pydantic schema may add keys until it runs out of tokens. Strict mode (what OpenAI's structured
outputs and XGrammar do by default) adds `"additionalProperties": false` to every object schema (`"type":
"object"` or with `properties`; a `required` name counts as declared) that has no `additionalProperties`,
`unevaluatedProperties` or `patternProperties` of its own. It is a rewrite of the schema, not of its compiler, so `jsonschema` and
hypothesis-jsonschema judge and generate exactly what the automaton allows.

Objects put together with `allOf` (or a `$ref` beside other keywords, or anyOf/oneOf branches merged with
their parent's keywords) are left as written: closing one part would refuse the others' properties.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

OPEN_KEYWORDS = ("additionalProperties", "unevaluatedProperties", "patternProperties")
ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly",
     "writeOnly", "contentMediaType", "contentEncoding", "contentSchema", "$anchor", "$defs", "definitions",
     "$dynamicAnchor", "$vocabulary"}
)  # fmt: skip
SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
SCHEMA_ONE = (
    "items", "additionalItems", "additionalProperties", "unevaluatedProperties", "unevaluatedItems", "not",
    "if", "then", "else", "contains", "propertyNames",
)  # fmt: skip


def close_objects(schema: Any) -> tuple[Any, int]:
    """`schema` with every plain object schema closed to its declared properties, and how many were closed."""
    composed = _composed_targets(schema)
    count = [0]

    def visit(s: Any, ptr: str, in_part: bool) -> Any:
        if not isinstance(s, dict):
            return s
        rest_constrains = any(k not in ANNOTATIONS and k not in ("anyOf", "oneOf") for k in s)
        sibling_ref = "$ref" in s and any(k not in ANNOTATIONS and k != "$ref" for k in s)
        out: dict[str, Any] = {}
        for k, v in s.items():
            if k in ("enum", "const", "default", "examples"):
                out[k] = v
            elif k in SCHEMA_MAPS and isinstance(v, dict):
                out[k] = {n: visit(x, f"{ptr}/{k}/{_esc(n)}", False) for n, x in v.items()}
            elif k in SCHEMA_LISTS and isinstance(v, list):
                part = k == "allOf" or (k in ("anyOf", "oneOf") and rest_constrains)
                out[k] = [visit(x, f"{ptr}/{k}/{i}", part) for i, x in enumerate(v)]
            elif k in SCHEMA_ONE:
                out[k] = visit(v, f"{ptr}/{k}", False)
            else:
                out[k] = v
        plain = not (in_part or "allOf" in s or sibling_ref or ptr in composed)
        if plain and _is_object(s) and not any(k in s for k in OPEN_KEYWORDS):
            props = out.get("properties", {})
            named = [r for r in s.get("required", []) if isinstance(r, str) and r not in props]
            if named:  # a required name is declared too (any value), as the compiler writes it: last
                out["properties"] = {**props, **dict.fromkeys(named, True)}
            out["additionalProperties"] = False
            count[0] += 1
        return out

    return visit(schema, "", False), count[0]


def _is_object(s: dict) -> bool:
    t = s.get("type")
    return "properties" in s or t == "object" or (isinstance(t, list) and "object" in t)


def _composed_targets(schema: Any) -> set[str]:
    """JSON pointers of the `$ref` targets that some allOf (or `$ref` with siblings) puts together with
    other schemas: closing them would refuse the other parts' properties."""
    found: set[str] = set()

    def refs_in(s: Any) -> None:
        if isinstance(s, dict) and isinstance(s.get("$ref"), str) and s["$ref"].startswith("#"):
            found.add(unquote(s["$ref"][1:]))

    def walk(s: Any) -> None:
        if isinstance(s, dict):
            if isinstance(s.get("allOf"), list):
                for x in s["allOf"]:
                    refs_in(x)
            if "$ref" in s and any(k not in ANNOTATIONS and k != "$ref" for k in s):
                refs_in(s)
            for k, v in s.items():
                if k not in ("enum", "const", "default", "examples"):
                    walk(v)
        elif isinstance(s, list):
            for x in s:
                walk(x)

    walk(schema)
    return found


def _esc(k: str) -> str:
    return k.replace("~", "~0").replace("/", "~1")
