"""Canonical spellings of JSON values, and when a subschema's language holds all of them: what taking a
complement of a JSON schema language needs (json_negation.py).

Complementing a language of *spellings* is only right when that language holds every spelling of every value
it accepts. decc's languages do not: numbers and strings have spellings a subschema never writes (`1e3`,
`"\u0061"`), objects come in schema order. So a complement is cut down to the canonical spellings
(`canonical_value`: json.dumps-style strings, integers and short plain decimals), which every subschema
writes for every value it accepts, and the subtracted subschema must not depend on the order of keys
(`order_problem`), or must be compiled merged with the surrounding schema after that schema declares the
keys it names (`declare`: then both write one order).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ..automata.dfa import ByteDFA
from ..regexes.regex_ast import Node, Repeat
from ..regexes.regex_parser import parse_regex
from .json_formats import is_known_format
from .json_numbers import alt, lit, opt, seq
from .regex_ops import dfa_of, expand_counted, has_call, node_of


class NotExact(Exception):
    """A subschema whose complement decc cannot take exactly: why, and the JSON pointer of the cause."""

    def __init__(self, message: str, pointer: str) -> None:
        super().__init__(message)
        self.message = message
        self.pointer = pointer


# formats whose regex is exactly jsonschema's checker (json_formats.py); the others reject valid strings
EXACT_FORMATS = frozenset({"date", "ipv4", "ipv6", "json-pointer"})
_OBJECT_KEYWORDS = ("properties", "required", "dependentRequired", "dependentSchemas", "dependencies")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUBSCHEMA_ONE = ("not", "if", "then", "else", "additionalProperties", "additionalItems", "contains")


def admits_objects(s: dict) -> bool:
    t = s.get("type")
    return t is None or t == "object" or (isinstance(t, list) and "object" in t)


def _ordered_value(v: Any) -> bool:
    """Does the JSON value `v` hold an object of two or more keys (whose literal fixes an order)?"""
    if isinstance(v, dict):
        return len(v) > 1 or any(_ordered_value(x) for x in v.values())
    if isinstance(v, list):
        return any(_ordered_value(x) for x in v)
    return False


def _closed_single(s: dict) -> bool:
    names = set(s.get("properties", {})) | set(s.get("required", []))
    return s.get("additionalProperties", True) is False and not s.get("patternProperties") and len(names) <= 1


def order_problem(
    s: Any,
    ptr: str,
    resolve: Callable[[str, str], tuple[Any, str]],
    names: frozenset[str] | None = None,
    seen: frozenset[str] = frozenset(),
    objects: bool = True,
    keep: Any = None,
) -> NotExact | None:
    """Why the language decc compiles for `s` may miss a canonical spelling of a value `s` accepts, or None.

    `names`: the surrounding schema's declared properties, which `s` may constrain at its top level when it
    is compiled merged with that schema (same key order); None: `s` is compiled on its own. `objects=False`:
    that schema takes no objects, so what `s` says about them at its top level does not count. `keep`: that
    schema itself, whose declared property schemas the values of `s`'s properties are merged into."""
    if not isinstance(s, dict):
        return None
    if "$ref" in s:
        ref = s["$ref"]
        if ref in seen:
            return NotExact("the subschema recurses", f"{ptr}/$ref")
        target, _ = resolve(ref, f"{ptr}/$ref")
        found = order_problem(target, f"{ptr}/$ref", resolve, names, seen | {ref}, objects, keep)
        if found:
            return found
    for key in ("enum", "const"):
        values = s.get(key, []) if key == "enum" else [s.get(key)]
        if key in s and any(_ordered_value(v) for v in values):
            return NotExact(f"'{key}' lists an object of several keys, which decc writes in one order", ptr)
    fmt = s.get("format")
    if isinstance(fmt, str) and fmt not in EXACT_FORMATS and is_known_format(fmt):  # others: annotations
        return NotExact(f"format '{fmt}' is not enforced exactly", f"{ptr}/format")
    mult = s.get("multipleOf")
    if mult is not None and not float(mult).is_integer():
        return NotExact("a fractional multipleOf (jsonschema divides floats)", f"{ptr}/multipleOf")
    if objects and admits_objects(s) and not _closed_single(s):
        for key in _OBJECT_KEYWORDS:
            if not s.get(key):
                continue
            if names is None:
                return NotExact(f"'{key}' fixes an order of object keys", f"{ptr}/{key}")
            if not isinstance(s[key], (dict, list)):
                return NotExact(f"'{key}' fixes an order of object keys", f"{ptr}/{key}")
            # names the key's condition and lists mention; the dependent schemas are checked below
            mentioned = set(s[key]) | {
                n
                for v in (s[key].values() if isinstance(s[key], dict) else [])
                if isinstance(v, list)
                for n in v
            }
            if not mentioned <= names:
                return NotExact(
                    f"'{key}' names a property the surrounding schema does not declare", f"{ptr}/{key}"
                )
        if names is not None and ("patternProperties" in s or "additionalProperties" in s):
            return NotExact("a subschema constraining undeclared properties", ptr)
    # (subschema, pointer, at this object's level: the same value, so the same key names and order)
    children = [
        (sub, f"{ptr}/{key}/{i}", key != "prefixItems")
        for key in _SUBSCHEMA_LISTS
        for i, sub in enumerate(s.get(key, []) if isinstance(s.get(key), list) else [])
    ]
    children += [
        (s[key], f"{ptr}/{key}", key in ("not", "if", "then", "else")) for key in _SUBSCHEMA_ONE if key in s
    ]
    children += [  # a dependent schema applies to the object itself
        (sub, f"{ptr}/{key}/{k}", True)
        for key in ("dependentSchemas", "dependencies")
        if isinstance(s.get(key), dict)
        for k, sub in s[key].items()
        if isinstance(sub, (dict, bool))
    ]
    for sub, where, level in children:
        if not objects and where == f"{ptr}/additionalProperties":
            continue  # constrains objects at this level, which the surrounding schema does not take
        found = order_problem(
            sub,
            where,
            resolve,
            names if level else None,
            seen,
            objects or not level,
            keep if level else None,
        )
        if found:
            return found
    items = s.get("items")
    for i, sub in enumerate(items if isinstance(items, list) else [items] if items is not None else []):
        found = order_problem(
            sub, f"{ptr}/items" + (f"/{i}" if isinstance(items, list) else ""), resolve, None, seen
        )
        if found:
            return found
    for key in ("properties", "patternProperties") if objects else ():
        for k, sub in (s.get(key) or {}).items() if isinstance(s.get(key), dict) else []:
            inner = declared_schema(keep, k) if key == "properties" and names is not None else None
            if isinstance(inner, dict):  # merged into the kept schema's own property (`_prepare`)
                inner_names = frozenset(inner.get("properties", {}))
                found = order_problem(
                    sub, f"{ptr}/{key}/{k}", resolve, inner_names, seen, admits_objects(inner), inner
                )
            else:
                found = order_problem(sub, f"{ptr}/{key}/{k}", resolve, None, seen)
            if found:
                return found
    return None


# -- canonical spellings ------------------------------------------------------------------------------------


_CONTROL_ESCAPES = r'\\["\\bfnrt]|\\u00(0[0-7]|0b|0e|0f|1[0-9a-f])'


# json.dumps(ensure_ascii=False), and json.dumps with ASCII escapes (no astral characters: a pattern's
# language spells those raw, not as surrogate pairs)
_CANON_STRING = (
    rf'"([^"\\\x00-\x1f]|{_CONTROL_ESCAPES})*"'
    rf'|"([\x20-\x21\x23-\x5b\x5d-\x7e]|{_CONTROL_ESCAPES}|\\u007f|\\u00[89a-f][0-9a-f]'
    rf'|\\u0[1-9a-f][0-9a-f]{{2}}|\\u[1-9a-c][0-9a-f]{{3}}|\\ud[0-7][0-9a-f]{{2}}|\\u[ef][0-9a-f]{{3}})*"'
)


_CANON_INT = r"0|-?[1-9][0-9]*"


# plain decimals with at most 15 significant digits, from 1e-4 up: what `json.dumps` writes for such a float
# (and such a decimal reads back as the float that prints as itself)
_CANON_DEC = (
    "-?("
    + "|".join(
        [rf"[1-9][0-9]{{{i - 1}}}\.[0-9]{{0,{14 - i}}}[1-9]" for i in range(1, 15)]
        + [r"0\.0{0,3}([1-9]|[1-9][0-9]{0,13}[1-9])"]
    )
    + ")"
)


@lru_cache(maxsize=8)
def canonical_value(comma: Node, colon: Node, ws: Node, depth: int) -> ByteDFA:
    """The canonical spellings of JSON values nested at most `depth` containers deep, with the compiler's
    separators: strings as `json.dumps(ensure_ascii=False)`, integers, short plain decimals."""
    string = parse_regex(_CANON_STRING)
    value = alt(
        lit("null"), lit("true"), lit("false"), parse_regex(_CANON_INT), parse_regex(_CANON_DEC), string
    )
    for _ in range(depth):
        inner = node_of(dfa_of(value))
        member = seq(string, colon, inner)
        arrays = seq(lit("["), ws, opt(seq(inner, Repeat(seq(comma, inner), 0, None))), ws, lit("]"))
        objects = seq(lit("{"), ws, opt(seq(member, Repeat(seq(comma, member), 0, None))), ws, lit("}"))
        value = alt(
            lit("null"),
            lit("true"),
            lit("false"),
            parse_regex(_CANON_INT),
            parse_regex(_CANON_DEC),
            string,
            arrays,
            objects,
        )
    return dfa_of(value)


# -- helpers for the compiler hooks ---------------------------------------------------------------------------


CANONICAL_DEPTH = 3  # json_schema.ANY_DEPTH: `true` inside a subtracted subschema spells values this deep


def regular_dfa(node: Any, pointer: str, comp: Any = None) -> ByteDFA:
    """The plain DFA of a compiled subschema (counted strings unrolled, the structure rules of the compiler
    `comp` expanded); `NotExact` when it recurses."""
    if comp is not None:
        node = comp.expand(node, pointer)
    if has_call(node):
        raise NotExact("the subschema recurses, so its language is not regular", pointer)
    return dfa_of(expand_counted(node))


def universe(comp: Any) -> ByteDFA:
    """The canonical values with the compiler `comp`'s separators and whitespace."""
    return canonical_value(comp.comma, comp.colon, comp.ws, CANONICAL_DEPTH)


def top_names(
    s: Any, resolve: Callable[[str, str], tuple[Any, str]], seen: frozenset[str] = frozenset()
) -> list[str]:
    """The property names `s` mentions (`properties`, `required`) for the object it applies to itself, in
    the order met."""
    if not isinstance(s, dict):
        return []
    out = [*s.get("properties", {}), *s.get("required", [])]
    ref = s.get("$ref")
    if isinstance(ref, str) and ref not in seen:
        out += top_names(resolve(ref, "")[0], resolve, seen | {ref})
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in s.get(key, []) if isinstance(s.get(key), list) else []:
            out += top_names(sub, resolve, seen)
    for key in ("not", "if", "then", "else"):
        out += top_names(s.get(key), resolve, seen)
    return list(dict.fromkeys(out))


def declare(keep: Any, order: list[str]) -> Any:
    """`keep` with every name of `order` declared after its own properties (in schema order, as an allOf
    merge with the schema naming them writes them too), each with the schema it gives such a key anyway:
    the same values, only their spelling fixes the order of these keys, as decc does for declared ones.
    Unchanged when `keep` has patternProperties (they pick the schema)."""
    if not isinstance(keep, dict) or keep.get("patternProperties") or not admits_objects(keep):
        return keep
    props = keep.get("properties", {})
    addl = keep.get("additionalProperties", True)
    names = dict.fromkeys([*props, *order, *keep.get("required", [])])
    return {**keep, "properties": {n: props[n] if n in props else addl for n in names}}


def declared_schema(keep: Any, name: str) -> Any:
    """The schema `keep` declares for property `name` (None: not declared, or `keep` is no dict)."""
    if not isinstance(keep, dict) or not isinstance(keep.get("properties"), dict):
        return None
    return keep["properties"].get(name)
