"""When two JSON schemas accept no value in common, so that a `oneOf` of them is exactly their `anyOf`.

Real `oneOf`s are mostly disjoint by a discriminator: different types, a required property whose value
schemas are disjoint (`const`/`enum`/`pattern` tags), a property one branch requires and the other forbids,
numeric ranges or lengths that do not overlap. Each rule here is a proof: `False` means only "not proven",
and every shortcut drops constraints (a superset accepts more), never adds any, so a proof stays sound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from decc.errors import DeccError

from ..automata.dfa import ByteDFA
from ..limits import check_time
from .regex_ops import intersection

# JSON types, with numbers split so that `integer` is a part of `number`
_ALL = frozenset({"null", "boolean", "integer", "fraction", "string", "array", "object"})
_TYPE_PARTS = {"number": {"integer", "fraction"}, "integer": {"integer"}}
MAX_DEPTH = 6  # nested property schemas and branch alternatives compared (a recursive schema stops here)
MAX_ALTERNATIVES = 64  # anyOf/oneOf branches expanded inside one side
MAX_ALTERNATIVE_DEPTH = 2  # ... at most this many comparisons deep (each one multiplies the work)


def json_type(v: Any) -> str:
    """The JSON Schema type of a JSON value (an integral float is an integer)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "integer" if v.is_integer() else "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _part(v: Any) -> str:
    t = json_type(v)
    return "fraction" if t == "number" else t


def same_value(x: Any, y: Any) -> bool:
    """JSON equality: `1 == 1.0`, but `true != 1`."""
    return x == y and _part(x) == _part(y)


@dataclass(frozen=True)
class Oracle:
    """What the rules need from the compiler: `$ref` resolution, a jsonschema validity check of a value
    against a subschema (None: could not tell), and the DFA of the JSON strings a pattern matches (None:
    not available); all read-only."""

    resolve: Callable[[str, str], tuple[Any, str]]
    valid: Callable[[Any, Any], bool | None]
    pattern_dfa: Callable[[str], ByteDFA | None]
    ref_siblings: bool = True  # False up to draft-07: the keywords beside a `$ref` are ignored


def conjuncts(s: Any, oracle: Oracle, seen: frozenset[str] = frozenset()) -> list[Any]:
    """The schemas that all hold of a value `s` accepts: `s` itself, its `allOf` members and `$ref`
    targets, flattened (a recursive `$ref` is left out: fewer constraints)."""
    if not isinstance(s, dict):
        return [s]
    ref = s.get("$ref")
    if isinstance(ref, str) and not oracle.ref_siblings:
        s = {"$ref": ref}
    out: list[Any] = [{k: v for k, v in s.items() if k not in ("allOf", "$ref")}]
    if isinstance(ref, str) and ref not in seen:
        try:
            target, _ = oracle.resolve(ref, "")
        except DeccError:
            target = True
        out += conjuncts(target, oracle, seen | {ref})
    for sub in s.get("allOf", []) if isinstance(s.get("allOf"), list) else []:
        out += conjuncts(sub, oracle, seen)
    return out


def _types(cs: list[Any]) -> set[str]:
    """The types a value meeting every schema of `cs` can have (formats of `const`/`enum` included)."""
    out = set(_ALL)
    for c in cs:
        if c is False:
            return set()
        if not isinstance(c, dict):
            continue
        t = c.get("type")
        if isinstance(t, (str, list)):
            names = [t] if isinstance(t, str) else t
            out &= {p for n in names if isinstance(n, str) for p in _TYPE_PARTS.get(n, {n})}
        if "const" in c:
            out &= {_part(c["const"])}
        if isinstance(c.get("enum"), list):
            out &= {_part(v) for v in c["enum"]}
    return out


def _values(cs: list[Any]) -> list[Any] | None:
    """The values `cs` allows at most, when one of them is a `const` or `enum` (None: not finite)."""
    out: list[Any] | None = None
    for c in cs:
        if not isinstance(c, dict):
            continue
        for vals in ([c["const"]] if "const" in c else None, c.get("enum")):
            if isinstance(vals, list):
                out = list(vals) if out is None else [v for v in out if any(same_value(v, w) for w in vals)]
    return out


def _alternatives(cs: list[Any]) -> tuple[int, list[Any]] | None:
    """The first conjunct with `anyOf`/`oneOf` (a value meets one of their branches), and its branches."""
    for i, c in enumerate(cs):
        if isinstance(c, dict):
            for key in ("anyOf", "oneOf"):
                if isinstance(c.get(key), list) and c[key]:
                    return i, c[key]
    return None


def disjoint(a: Any, b: Any, oracle: Oracle, depth: int = 0) -> bool:
    """Is it proven that no JSON value is valid under both `a` and `b`?"""
    if depth > MAX_DEPTH:
        return False
    check_time("proving oneOf branches disjoint")
    ca, cb = conjuncts(a, oracle), conjuncts(b, oracle)
    common = _types(ca) & _types(cb)
    if not common:
        return True
    for mine, other in ((ca, b), (cb, a)):
        vals = _values(mine)
        if vals is not None and all(oracle.valid(v, other) is False for v in vals):
            return True
    for mine, other in ((ca, b), (cb, a)):
        found = _alternatives(mine)
        if found is not None and len(found[1]) <= MAX_ALTERNATIVES and depth < MAX_ALTERNATIVE_DEPTH:
            i, branches = found
            rest = [
                {k: v for k, v in c.items() if k not in ("anyOf", "oneOf")} if j == i else c
                for j, c in enumerate(mine)
            ]
            if all(disjoint({"allOf": [*rest, br]}, other, oracle, depth + 1) for br in branches):
                return True
    return all(_part_disjoint(t, ca, cb, oracle, depth) for t in common)


def _part_disjoint(t: str, ca: list[Any], cb: list[Any], oracle: Oracle, depth: int) -> bool:
    """Are the values of type `t` of the two sides disjoint?"""
    if t in ("integer", "fraction"):
        return _apart(_number_range(ca), _number_range(cb))
    if t == "string":
        return _apart(
            _count_range(ca, "minLength", "maxLength"), _count_range(cb, "minLength", "maxLength")
        ) or (_patterns_disjoint(ca, cb, oracle))
    if t == "array":
        return _apart(_count_range(ca, "minItems", "maxItems"), _count_range(cb, "minItems", "maxItems"))
    if t == "object":
        return _objects_disjoint(ca, cb, oracle, depth)
    return False


Bound = tuple[float, bool]  # a value and whether it is excluded


def _number_range(cs: list[Any]) -> tuple[Bound | None, Bound | None]:
    lo: Bound | None = None
    hi: Bound | None = None
    for c in cs:
        if not isinstance(c, dict):
            continue
        if isinstance(c.get("exclusiveMinimum"), bool) or isinstance(c.get("exclusiveMaximum"), bool):
            return None, None  # draft 4 booleans, which later drafts read as numbers: no proof either way
        for key, strict, upper in (
            ("minimum", False, False),
            ("maximum", False, True),
            ("exclusiveMinimum", True, False),
            ("exclusiveMaximum", True, True),
        ):
            v = c.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if upper:
                hi = (v, strict) if hi is None or v < hi[0] or (v == hi[0] and strict) else hi
            else:
                lo = (v, strict) if lo is None or v > lo[0] or (v == lo[0] and strict) else lo
    return lo, hi


def _count_range(cs: list[Any], low: str, high: str) -> tuple[Bound | None, Bound | None]:
    lo = max((c[low] for c in cs if isinstance(c, dict) and _count(c.get(low))), default=None)
    hi = min((c[high] for c in cs if isinstance(c, dict) and _count(c.get(high))), default=None)
    return (None if lo is None else (lo, False)), (None if hi is None else (hi, False))


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _apart(a: tuple[Bound | None, Bound | None], b: tuple[Bound | None, Bound | None]) -> bool:
    """Do two intervals (bounds: value, excluded) have no point in common?"""
    for (_, hi), (lo, _) in ((a, b), (b, a)):
        if hi is not None and lo is not None and (hi[0] < lo[0] or (hi[0] == lo[0] and (hi[1] or lo[1]))):
            return True
    return False


def _patterns_disjoint(ca: list[Any], cb: list[Any], oracle: Oracle) -> bool:
    """No string matches a pattern of each side (every pattern of both, intersected as automata)."""
    pa = [c["pattern"] for c in ca if isinstance(c, dict) and isinstance(c.get("pattern"), str)]
    pb = [c["pattern"] for c in cb if isinstance(c, dict) and isinstance(c.get("pattern"), str)]
    if not pa or not pb:
        return False
    dfas = [oracle.pattern_dfa(p) for p in dict.fromkeys(pa + pb)]
    if any(d is None for d in dfas):
        return False
    try:
        return intersection([d for d in dfas if d is not None], "a oneOf's patterns").is_empty()
    except DeccError:
        return False


def _objects_disjoint(ca: list[Any], cb: list[Any], oracle: Oracle, depth: int) -> bool:
    req_a, req_b = _required(ca), _required(cb)
    for p in dict.fromkeys([*req_a, *req_b]):
        if (p in req_a and _forbids(cb, p)) or (p in req_b and _forbids(ca, p)):
            return True
        sa, sb = _property(ca, p), _property(cb, p)
        if sa is not None and sb is not None and disjoint(sa, sb, oracle, depth + 1):
            return True
    for mine, req in ((ca, req_b), (cb, req_a)):
        most = min(
            (c["maxProperties"] for c in mine if isinstance(c, dict) and _count(c.get("maxProperties"))),
            default=None,
        )
        least = max(
            [len(req)]
            + [
                c["minProperties"]
                for c in (cb if mine is ca else ca)
                if isinstance(c, dict) and _count(c.get("minProperties"))
            ]
        )
        if most is not None and least > most:
            return True
    return False


def _required(cs: list[Any]) -> list[str]:
    return list(
        dict.fromkeys(
            n
            for c in cs
            if isinstance(c, dict) and isinstance(c.get("required"), list)
            for n in c["required"]
            if isinstance(n, str)
        )
    )


def _property(cs: list[Any], name: str) -> Any:
    """The conjunction of the schemas `cs` give property `name` (None: none names it)."""
    subs = [
        c["properties"][name]
        for c in cs
        if isinstance(c, dict) and isinstance(c.get("properties"), dict) and name in c["properties"]
    ]
    return None if not subs else subs[0] if len(subs) == 1 else {"allOf": subs}


def _forbids(cs: list[Any], name: str) -> bool:
    """Does some schema of `cs` reject every object that has property `name`?"""
    for c in cs:
        if not isinstance(c, dict):
            continue
        props = c.get("properties") if isinstance(c.get("properties"), dict) else {}
        if props.get(name) is False:
            return True
        if c.get("additionalProperties") is False and name not in props and not c.get("patternProperties"):
            return True
        neg = c.get("not")
        if isinstance(neg, dict):
            options = neg["anyOf"] if isinstance(neg.get("anyOf"), list) else [neg]
            for o in options:
                if isinstance(o, dict) and set(o) == {"required"} and o["required"] == [name]:
                    return True
    return False


__all__ = ["MAX_DEPTH", "Oracle", "conjuncts", "disjoint", "json_type", "same_value"]
