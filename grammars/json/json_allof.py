"""allOf as one schema: the branches merged keyword by keyword (json_schema.py compiles the result).

Exact merges: bounds take the tighter one; `type`s, `required`, `properties` and `patternProperties`
combine; several `pattern`s are kept as a tuple (the compiler intersects their languages); several
`multipleOf`s become their least common multiple (exact over fractions: the multiples of p/q and r/s are
the multiples of lcm(p, r)/gcd(q, s)); several `anyOf`/`oneOf` distribute into a product of branches (one
`oneOf` of pairs is exact: a pair holds exactly once iff each side holds exactly once); each branch's
`additionalProperties` applies to the names only the other branches declare; item lists (`prefixItems`, or
draft-07 `items` arrays) combine position by position. What cannot be written as one schema is refused
with the keyword and its pointer (`comp.hard`).
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

from .json_disjoint import json_type
from .json_formats import is_known_format
from .json_keywords import (
    dependencies_as_conditionals,
    draft4_bounds,
    is_annotation,
    merge_conditionals,
    without_dangling,
)

MAX_PRODUCT = 64  # branches of an anyOf/oneOf product (allOf of several, or anyOf next to oneOf)
OBJECT_KEYS = ("properties", "patternProperties", "additionalProperties")
ARRAY_KEYS = ("prefixItems", "items", "additionalItems")


def same_value(x: Any, y: Any) -> bool:
    """JSON equality (1 == 1.0, but true != 1)."""
    return x == y and json_type(x) == json_type(y)


def trivial(s: Any) -> bool:
    """A schema that accepts every value (`true`, `{}`, or only annotations)."""
    return s is True or (isinstance(s, dict) and all(is_annotation(k) for k in s))


def patterns_of(s: dict) -> tuple[str, ...]:
    """The `pattern`s of a (merged) string schema: one string, or a tuple after an allOf merge."""
    p = s.get("pattern")
    return () if p is None else (p,) if isinstance(p, str) else tuple(p)


def as_json_schema(s: Any) -> Any:
    """A merged schema in JSON Schema's own terms (several patterns as an allOf, at any depth), for a
    validator."""
    if isinstance(s, list):
        return [as_json_schema(x) for x in s]
    if not isinstance(s, dict):
        return s
    several = s.get("pattern") if isinstance(s.get("pattern"), tuple) else ()
    out = {
        k: v if k in ("enum", "const") else as_json_schema(v)
        for k, v in s.items()
        if not (several and k == "pattern")
    }
    if several:
        out["allOf"] = [*out.get("allOf", []), *({"pattern": p} for p in several)]
    return out


def merge_all(comp: Any, s: dict, ptr: str, refs: tuple[str, ...]) -> tuple[Any, tuple[str, ...]]:
    """The branches of `s["allOf"]` merged into one schema with the rest of `s`, and the `$ref` chain grown
    by the refs followed to them: the merged schema's subschemas come from those targets, so a `$ref` back
    into one recurses."""
    merged: Any = {k: v for k, v in s.items() if k != "allOf"}
    seen: list = []
    new: list[str] = []  # refs the branches followed, once each: an ancestor's ref counts again (unfolds)
    for i, sub in enumerate(s["allOf"]):
        if sub in seen:  # A and A is A
            continue
        seen.append(sub)
        # each branch's chain is the one that led to `s`: a target an earlier branch followed is a sibling,
        # not an ancestor (no recursion); the merged schema's chain holds every target followed
        comp.check_keywords(sub, f"{ptr}/allOf/{i}")
        sub, _, chain = comp.deref(sub, f"{ptr}/allOf/{i}", refs)
        comp.check_keywords(sub, f"{ptr}/allOf/{i}")
        if isinstance(sub, dict) and "allOf" in sub:
            sub, chain = merge_all(comp, sub, f"{ptr}/allOf/{i}", chain)
        new += [f for f in chain[len(refs) :] if f not in new]
        merged = merge(merged, sub, f"{ptr}/allOf/{i}", comp)
        if merged is False:
            return False, refs + tuple(new)
    return merged, refs + tuple(new)


def merge(a: Any, b: Any, ptr: str, comp: Any) -> Any:
    """The conjunction of two schemas as one schema, or raise (`comp.hard`) when it cannot be written."""
    if trivial(a):
        return b
    if trivial(b):
        return a
    if a is False or b is False:
        return False
    a, b = (without_dangling(dependencies_as_conditionals(draft4_bounds(x))) for x in (a, b))
    a, b = merge_conditionals(a, b)
    a, b = (_without_loose_counts(x) for x in (a, b))
    out = dict(a)
    enums: list[dict] = []
    for k, v in b.items():
        if is_annotation(k) or k in OBJECT_KEYS or k in ARRAY_KEYS:
            continue
        if k not in out:
            out[k] = v
            continue
        w = out[k]
        if w == v:
            continue
        if k == "type":
            both = _types(w) & _types(v)
            if not both:
                return False
            out[k] = sorted(both)
        elif k == "required":
            out[k] = list(dict.fromkeys(list(w) + list(v)))
        elif k in ("minimum", "minLength", "minItems", "minProperties", "exclusiveMinimum", "minContains"):
            out[k] = max(w, v)
        elif k in ("maximum", "maxLength", "maxItems", "maxProperties", "exclusiveMaximum", "maxContains"):
            out[k] = min(w, v)
        elif k == "multipleOf":
            out[k] = _lcm(w, v, ptr, comp)
        elif k == "pattern":
            out[k] = tuple(dict.fromkeys(patterns_of(a) + patterns_of(b)))
        elif k in ("enum", "const"):  # the validator filters candidates against the whole merged schema
            enums.append({k: v})
        elif k == "not":  # not A and not B: neither
            out[k] = {"anyOf": [w, v]}
        elif k in ("anyOf", "oneOf"):
            out[k] = product(w, v, k, ptr, comp)
        elif k == "propertyNames":
            out[k] = {"allOf": [w, v]}
        elif k == "uniqueItems":
            out[k] = bool(w) or bool(v)
        elif k == "format" and not (is_known_format(w) and is_known_format(v)):  # one is an annotation
            out[k] = w if is_known_format(w) else v
            if out[k] == w:
                comp.unknown_format(v, f"{ptr}/format")
            else:  # an earlier branch's: pointed at by the branch that met it
                comp.unknown_format(w, ptr)
        else:
            raise comp.hard(k, ptr, f"allOf with '{k}' in several branches is not supported")
    merge_arrays(out, a, b)
    merge_objects(out, a, b, ptr, comp)
    if enums:  # enum/const pairs: one enum of the values every list holds
        base = [out["const"]] if "const" in out else list(out.get("enum", []))
        for e in enums:
            vals = [e["const"]] if "const" in e else e["enum"]
            base = [x for x in base if any(same_value(x, y) for y in vals)]
        out.pop("const", None)
        out["enum"] = base
    return out


def _without_loose_counts(s: dict) -> dict:
    """`s` without min/maxContains when it has no `contains` (they assert nothing there; merged, they would
    count another branch's `contains`). Counts of one `contains` in both branches take the tighter one."""
    if "contains" in s or not ("minContains" in s or "maxContains" in s):
        return s
    return {k: v for k, v in s.items() if k not in ("minContains", "maxContains")}


def _types(t: Any) -> set[str]:
    ts = {t} if isinstance(t, str) else set(t)
    return ts | ({"integer"} if "number" in ts else set())


def _lcm(w: Any, v: Any, ptr: str, comp: Any) -> int | float:
    """The least common multiple of two `multipleOf`s, exactly (decimals as written, not binary floats)."""
    x, y = (Fraction(Decimal(repr(n)) if isinstance(n, float) else n) for n in (w, v))
    out = Fraction(math.lcm(x.numerator, y.numerator), math.gcd(x.denominator, y.denominator))
    if out.denominator == 1:
        return int(out)
    as_float = float(out)
    if Fraction(Decimal(repr(as_float))) != out:
        raise comp.hard("multipleOf", ptr, f"allOf with multipleOf {w} and {v}: their lcm is no float")
    return as_float


def product(w: list, v: list, key: str, ptr: str, comp: Any) -> list:
    """Two `anyOf`s (or two `oneOf`s) of one allOf as one: the branch pairs, each an allOf."""
    if len(w) * len(v) > MAX_PRODUCT:
        raise comp.hard(
            key,
            ptr,
            f"allOf with several '{key}' needs a product of {len(w) * len(v):,} branches "
            f"(limit {MAX_PRODUCT})",
        )
    return [x if x == y else {"allOf": [x, y]} for x in w for y in v]


def any_and_one(s: dict) -> dict:
    """`anyOf` next to `oneOf` as one `oneOf`: exactly one B_j and some A_i is exactly one of
    (B_j and some A_i)."""
    if "anyOf" not in s or "oneOf" not in s:
        return s
    rest = {k: v for k, v in s.items() if k not in ("anyOf", "oneOf")}
    return {**rest, "oneOf": [{"allOf": [b, {"anyOf": s["anyOf"]}]} for b in s["oneOf"]]}


def _items(s: dict) -> tuple[list | None, Any]:
    """(prefix schemas or None, the schema of the items after them), in either draft's spelling."""
    if isinstance(s.get("items"), list):  # draft-07
        return s["items"], s.get("additionalItems", True)
    return s.get("prefixItems"), s.get("items", True)


def _both(x: Any, y: Any) -> Any:
    return y if trivial(x) or x == y else x if trivial(y) else {"allOf": [x, y]}


def merge_arrays(out: dict, a: dict, b: dict) -> None:
    """The item keywords of two branches as one: the prefix as long as the longer one, position i taking
    each branch's prefix schema there or, past its prefix, its items schema; then both items schemas."""
    if not any(k in x for x in (a, b) for k in ARRAY_KEYS):
        return
    (pa, ra), (pb, rb) = _items(a), _items(b)
    for k in ARRAY_KEYS:
        out.pop(k, None)
    if pa is not None or pb is not None:
        pa, pb = pa or [], pb or []
        out["prefixItems"] = [
            _both(pa[i] if i < len(pa) else ra, pb[i] if i < len(pb) else rb)
            for i in range(max(len(pa), len(pb)))
        ]
    rest = _both(ra, rb)
    if not trivial(rest):
        out["items"] = rest


def merge_objects(out: dict, a: dict, b: dict, ptr: str, comp: Any) -> None:
    """`properties`, `patternProperties` and `additionalProperties` of two branches as one object schema.

    Patterns apply to every key they match, declared or not, so they unite (one pattern in both: an allOf);
    a branch's additionalProperties applies to the keys that branch neither declares nor matches by a
    pattern: to a name only the other declares and to the other's patterns (added to their schemas), and to
    undeclared keys (the conjunction). Refused where such a pattern also matches a key the branch declares
    or matches by a pattern of its own (its extra does not hold there).
    """
    props: dict = dict(a.get("properties", {}))
    for name, sub in b.get("properties", {}).items():
        props[name] = {"allOf": [props[name], sub]} if name in props else sub
    pats: dict = dict(a.get("patternProperties", {}))
    for p, sub in b.get("patternProperties", {}).items():
        pats[p] = {"allOf": [pats[p], sub]} if p in pats and pats[p] != sub else sub
    extras: list = []
    for x, y in ((a, b), (b, a)):
        extra = x.get("additionalProperties", True)
        if trivial(extra):
            continue
        extras.append(extra)
        own = x.get("patternProperties", {})
        for name in y.get("properties", {}):
            if name not in x.get("properties", {}) and not any(comp.matches(p, name, ptr) for p in own):
                props[name] = {"allOf": [props[name], extra]}
        # an undeclared key matching y's pattern p but none of x's takes x's extra too: exact on p's schema
        # when no key matches p and one of x's patterns (then x's pattern schema, not its extra, holds)
        for p, sub in y.get("patternProperties", {}).items():
            if p in own or sub is False:
                continue
            names = x.get("properties", {})
            if any(comp.patterns_meet(p, q, ptr) for q in own) or any(comp.matches(p, n, ptr) for n in names):
                raise comp.hard(
                    "additionalProperties",
                    ptr,
                    f"allOf with additionalProperties in one branch and patternProperties {p!r} in another "
                    "that matches keys the first one declares or matches by a pattern",
                )
            pats[p] = {"allOf": [pats[p], extra]}
    for k in OBJECT_KEYS:
        out.pop(k, None)
    if props:
        out["properties"] = props
    if pats:
        out["patternProperties"] = pats
    if extras:
        out["additionalProperties"] = extras[0] if len(extras) == 1 else {"allOf": extras}
