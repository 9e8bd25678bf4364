"""JSON Schema keyword coverage beyond the core compiler (json_schema.py): which keywords are annotations
(titles, `x-...` extensions, vendor keywords such as `nullable`: ignored, `allOf` branches included),
dependencies as conditionals, counted min/maxProperties, uniqueItems over finite domains, overlapping
patternProperties, propertyNames. Negations are in json_negation.py, canonical spellings in
json_canonical.py, allOf merges in json_allof.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..regexes.regex_ast import Automaton, CharSet, Node, Repeat
from .json_canonical import NotExact, declare, regular_dfa
from .json_numbers import alt, lit, opt, seq
from .regex_ops import dfa_of, expand_counted, has_call, intersection, node_of

# Keywords of drafts 4 to 2020-12 that take part in validation (or in finding subschemas: `$ref`, `$defs`).
ASSERTIONS = frozenset(
    {
        "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
        "maxLength", "minLength", "pattern", "format", "items", "prefixItems", "additionalItems", "contains",
        "minContains", "maxContains", "maxItems", "minItems", "uniqueItems", "properties",
        "patternProperties", "additionalProperties", "required", "maxProperties", "minProperties",
        "dependentRequired", "dependentSchemas", "dependencies", "propertyNames", "allOf", "anyOf", "oneOf",
        "not", "if", "then", "else", "$ref", "$dynamicRef", "$recursiveRef", "unevaluatedItems",
        "unevaluatedProperties",
    }
)  # fmt: skip


def is_annotation(keyword: str) -> bool:
    """True when `keyword` asserts nothing: an annotation, an extension or a keyword no draft defines."""
    return keyword not in ASSERTIONS


# -- conditionals and dependencies ------------------------------------------------------------------------


def without_dangling(s: Any) -> Any:
    """`s` without `then`/`else` when it has no `if`, and without an `if` that has neither: they assert
    nothing, and left in, an allOf merge would pair them with another branch's `if` (which they must not)."""
    if not isinstance(s, dict):
        return s
    if "if" not in s:
        drop = {"then", "else"}
    elif "then" not in s and "else" not in s:
        drop = {"if"}
    else:
        return s
    return {k: v for k, v in s.items() if k not in drop} if drop & set(s) else s


def merge_conditionals(a: Any, b: Any) -> tuple[Any, Any]:
    """Two allOf branches that both hold an `if`: b's conditional moves into a's `then` and `else`, which is
    the same conjunction ((if A then B else C) and D is if A then (B and D) else (C and D))."""
    if not (isinstance(a, dict) and isinstance(b, dict) and "if" in a and "if" in b):
        return a, b
    cond = {k: b[k] for k in ("if", "then", "else") if k in b}
    if cond == {k: a[k] for k in ("if", "then", "else") if k in a}:
        return a, b
    nested = dict(a)
    nested["then"] = {"allOf": [a.get("then", True), cond]}
    nested["else"] = {"allOf": [a.get("else", True), cond]}
    return nested, {k: v for k, v in b.items() if k not in cond}


DEPENDENCY_KEYWORDS = ("dependentRequired", "dependentSchemas", "dependencies")


def dependency_names(s: dict) -> list[str]:
    """The names the dependencies of `s` mention, in order: each key, then what it requires (or what its
    schema names). They are declared after `s`'s own properties, so that every conditional branch writes
    them in that one order (decc.testing.to_schema_order puts instances in it)."""
    names: list[str] = []
    for key in DEPENDENCY_KEYWORDS:
        for name, dep in (s.get(key) or {}).items():
            names.append(name)
            if isinstance(dep, list):
                names += dep
            elif isinstance(dep, dict):
                names += [*dep.get("properties", {}), *dep.get("required", [])]
    return [*s.get("properties", {}), *dict.fromkeys(names)]


def draft4_bounds(s: Any) -> Any:
    """Draft-04's boolean `exclusiveMinimum`/`exclusiveMaximum` (true makes `minimum`/`maximum` exclusive)
    in the numeric form of later drafts, the only one the rest of the compiler reads."""
    if not isinstance(s, dict):
        return s
    out = s
    for ex, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        flag = out.get(ex)
        if isinstance(flag, bool):
            out = {k: v for k, v in out.items() if k != ex}
            if flag and bound in out:
                out[ex] = out.pop(bound)
    return out


def dependencies_as_conditionals(s: Any) -> Any:
    """`dependentRequired`, `dependentSchemas` and draft-07 `dependencies` as the conditionals they mean:
    {a: [b]} is `if object, required [a] then required [b]`, {a: S} is `if object, required [a] then S`; several nest
    (merge_conditionals), so that `negations` compiles them exactly."""
    if not isinstance(s, dict) or not any(k in s for k in DEPENDENCY_KEYWORDS):
        return s
    out: Any = declare({k: v for k, v in s.items() if k not in DEPENDENCY_KEYWORDS}, dependency_names(s))
    for key in DEPENDENCY_KEYWORDS:
        for name, dep in (s.get(key) or {}).items():
            if isinstance(dep, list):
                if not dep:
                    continue
                cond = {"if": {"type": "object", "required": [name]}, "then": {"required": list(dep)}}
            else:  # typed: a dependent schema does not apply to non-objects (`required` alone holds of them)
                cond = {"if": {"type": "object", "required": [name]}, "then": dep}
            if "if" in out:
                out, _ = merge_conditionals(out, cond)
            else:
                out = {**out, **cond}
    return out


# -- min/maxProperties over optional properties -------------------------------------------------------------


def counted_members(
    decl: list[tuple[str, Node, bool]],
    extra: Node | None,
    lo: int,
    hi: int | None,
    comma: Node,
    ws: Node,
) -> Node:
    """An object body `{...}` whose declared members (name, member text, required) come in order, then any
    number of `extra` members, with lo..hi members in all: the declared members are walked with a count of
    those present so far (capped at `lo` when there is no upper bound), so that any number of optional
    properties costs states linear in their number, not 2^n alternatives."""
    cap = lo if hi is None else hi
    memo: dict[tuple[int, int, bool], Node] = {}

    def extras(c: int, written: bool) -> Node:
        e_lo, e_hi = max(0, lo - c), None if hi is None else hi - c
        if extra is None or e_hi == 0:
            return EMPTY_NODE if e_lo == 0 else NOTHING_NODE
        if written:
            return Repeat(seq(comma, extra), e_lo, e_hi)
        more = Repeat(seq(comma, extra), max(e_lo - 1, 0), None if e_hi is None else e_hi - 1)
        first = seq(extra, more)
        return first if e_lo > 0 else opt(first)

    def rest(i: int, c: int, written: bool) -> Node:
        key = (i, c, written)
        if key in memo:
            return memo[key]
        if i == len(decl):
            out = extras(c, written)
        else:
            _, member, required = decl[i]
            take: Node = NOTHING_NODE
            if hi is None or c < hi:
                after = rest(i + 1, min(c + 1, cap) if hi is None else c + 1, True)
                if after != NOTHING_NODE:
                    take = seq(comma, member, after) if written else seq(member, after)
            skip = NOTHING_NODE if required else rest(i + 1, c, written)
            parts = [p for p in (take, skip) if p != NOTHING_NODE]
            out = alt(*parts) if parts else NOTHING_NODE
            if take != NOTHING_NODE and skip != NOTHING_NODE and not has_call(out):
                # reached from two states: as one embedded automaton, or the regex tree doubles per level
                out = node_of(dfa_of(expand_counted(out)))
        memo[key] = out
        return out

    body = rest(0, 0, False)
    return NOTHING_NODE if body == NOTHING_NODE else seq(lit("{"), ws, body, ws, lit("}"))


EMPTY_NODE: Node = seq()


NOTHING_NODE: Node = CharSet(())


# -- uniqueItems over a finite item domain ------------------------------------------------------------------


MAX_UNIQUE_DOMAIN = 12  # distinct item values; the automaton tracks which were used (up to 2^n sets)


def _domain(s: Any) -> list[Any] | None:
    """The values a schema allows when there are finitely many that decc can list (enum, const, boolean,
    null, a bounded integer range), else None."""
    if not isinstance(s, dict):
        return None
    if "const" in s:
        return [s["const"]]
    if "enum" in s:
        return list(s["enum"])
    types = s.get("type")
    types = [types] if isinstance(types, str) else types
    if not isinstance(types, list):
        return None
    out: list[Any] = []
    for t in types:
        if t == "boolean":
            out += [True, False]
        elif t == "null":
            out.append(None)
        elif t == "integer" and isinstance(s.get("minimum"), int) and isinstance(s.get("maximum"), int):
            if s["maximum"] - s["minimum"] > MAX_UNIQUE_DOMAIN:
                return None
            out += list(range(s["minimum"], s["maximum"] + 1))
        else:
            return None
    return out


def _same_value_key(v: Any) -> str:
    """Values JSON Schema calls equal get one key (1 and 1.0; objects in any key order; not true and 1)."""

    def norm(x: Any) -> Any:
        if isinstance(x, bool) or x is None:
            return ["b", x]
        if isinstance(x, float) and x.is_integer():
            return int(x)
        if isinstance(x, list):
            return [norm(i) for i in x]
        if isinstance(x, dict):
            return {k: norm(i) for k, i in x.items()}
        return x

    return json.dumps(norm(v), sort_keys=True)


def unique_items(comp: Any, s: dict, ptr: str, refs: tuple[str, ...]) -> Node:
    """`uniqueItems`: false, or at most one item, asserts nothing; over a finite item domain, the arrays in
    which each value occurs at most once (one automaton per value, intersected); otherwise refused."""
    plain = {k: v for k, v in s.items() if k != "uniqueItems"}
    hi = s.get("maxItems")
    if s.get("uniqueItems") is not True or (hi is not None and hi <= 1):
        return comp.array(plain, ptr, refs)
    where = f"{ptr}/uniqueItems"
    items = s.get("items", True)
    if "prefixItems" in s or isinstance(items, list):
        comp.unsupported("uniqueItems", where, "uniqueItems with prefixItems is not supported")
        return comp.array(plain, ptr, refs)
    target, _, _ = comp.deref(items, f"{ptr}/items", refs, "peek")
    values = _domain(target)
    if values is not None:
        values = list({_same_value_key(v): v for v in values}.values())
    if values is None or len(values) > MAX_UNIQUE_DOMAIN:
        comp.unsupported(
            "uniqueItems",
            where,
            f"JSON Schema keyword 'uniqueItems' is not supported over items with more than {MAX_UNIQUE_DOMAIN} "
            "possible values (an enum, booleans, a small integer range)",
        )
        return comp.array(plain, ptr, refs)
    spelled = [comp.schema({"allOf": [items, {"const": v}]}, f"{ptr}/items", refs) for v in values]
    spelled = [n for n in spelled if n != NOTHING_NODE]
    parts = [regular_dfa(comp.array(plain, ptr, refs), ptr, comp)]
    for i, one in enumerate(spelled):
        others = [n for j, n in enumerate(spelled) if j != i]
        if others:
            n = alt(*others)
            run = seq(n, Repeat(seq(comp.comma, n), 0, None))
            body = alt(run, seq(opt(seq(run, comp.comma)), one, opt(seq(comp.comma, run))))
        else:
            body = one
        parts.append(dfa_of(seq(lit("["), comp.ws, opt(body), comp.ws, lit("]"))))
    return node_of(intersection(parts, f"uniqueItems at '{ptr or '/'}'"))


# -- overlapping patternProperties ---------------------------------------------------------------------------


MAX_OVERLAPPING_PATTERNS = 6  # a region per set of patterns a key matches: up to 2^n - 1


def pattern_regions(
    comp: Any,
    patterns: dict[str, Any],
    bodies: dict[str, Node],
    declared: Node,
    product: Callable[[tuple[Node, ...], Node], Node],
    ptr: str,
    refs: tuple[str, ...],
) -> list[tuple[Node, Node]]:
    """(key body, value) per set of patterns a key can match: the key matches exactly those (and is not a
    declared name), so its value must satisfy all their schemas. `product(includes, exclude)` is the
    compiler's product of string-body languages."""
    if len(patterns) > MAX_OVERLAPPING_PATTERNS:
        raise NotExact(
            f"more than {MAX_OVERLAPPING_PATTERNS} patternProperties with different schemas", f"{ptr}"
        )
    names = list(patterns)
    out: list[tuple[Node, Node]] = []
    for mask in range(1, 1 << len(names)):
        inside = [p for i, p in enumerate(names) if mask >> i & 1]
        outside = [bodies[p] for i, p in enumerate(names) if not mask >> i & 1]
        key = product(tuple(bodies[p] for p in inside), alt(declared, *outside))
        if key == NOTHING_NODE or (isinstance(key, Automaton) and not key.accepting):
            continue
        subs = [patterns[p] for p in inside]
        value = comp.schema(subs[0] if len(subs) == 1 else {"allOf": subs}, f"{ptr}/{inside[0]}", refs)
        if value != NOTHING_NODE:
            out.append((key, value))
    return out


# -- propertyNames --------------------------------------------------------------------------------------------


def property_names(
    comp: Any,
    s: dict,
    decl: list[tuple[str, Node, bool]],
    extras: list[Node],
    ptr: str,
    refs: tuple[str, ...],
) -> tuple[list[tuple[str, Node, bool]], list[Node]] | None:
    """`propertyNames`: declared names that fail it must be absent (None: a required one fails), and every
    extra member's key must be a string the names schema accepts (an intersection with its language)."""
    names = s["propertyNames"]
    if names is True or names == {} or names == {"type": "string"}:
        return decl, extras
    where = f"{ptr}/propertyNames"
    keys = comp.schema({"allOf": [names, {"type": "string"}]}, where, refs)
    try:
        key_dfa = regular_dfa(keys, where, comp)
    except NotExact as e:
        comp.unsupported("propertyNames", e.pointer, f"propertyNames cannot be enforced: {e.message}")
        return decl, extras
    kept = []
    for name, member, required in decl:
        if key_dfa.accepts(json.dumps(name).encode()):
            kept.append((name, member, required))
        elif required:
            return None
    if key_dfa.n_states == 0:
        return kept, []
    member_of_key = dfa_of(seq(node_of(key_dfa), comp.colon, Repeat(CharSet(((0, 0x10FFFF),)), 0, None)))
    limited = []
    for e in extras:
        try:
            limited.append(
                node_of(intersection([regular_dfa(e, where, comp), member_of_key], "propertyNames"))
            )
        except NotExact as err:
            comp.unsupported("propertyNames", err.pointer, f"propertyNames cannot be enforced: {err.message}")
            return decl, extras
    return kept, [e for e in limited if e != NOTHING_NODE]
