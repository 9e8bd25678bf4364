"""Which JSON Schema keywords assert something: every other keyword (titles, `x-...` extensions, vendor
keywords such as `nullable` or `tsType`) is an annotation, which validation ignores, so decc ignores it too
(in `allOf` branches, next to `$ref`, ...) instead of refusing the schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from decc.errors import DeccError

from .dfa import ByteDFA
from .json_numbers import alt, lit, opt, seq
from .regex_ast import Automaton, CharSet, Node, Repeat
from .regex_ops import dfa_of, difference, expand_counted, has_call, intersection, node_of
from .regex_parser import parse_regex

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


# -- exact negation: `not`, `if`/`then`/`else`, overlapping `oneOf` -----------------------------------------
#
# These need the complement of a subschema's language, and complementing a language of *spellings* is only
# right when that language holds every spelling of every value it accepts. decc's languages do not: numbers
# and strings have spellings a subschema never writes (`1e3`, `"\u0061"`), objects come in schema order.
# So the result is cut down to the canonical spellings (`canonical_value`: json.dumps-style strings,
# integers and short plain decimals), which every subschema writes for every value it accepts, and the
# subtracted subschema must not depend on the order of keys (`order_problem`), or be compiled merged with
# the surrounding schema when it only names that schema's declared properties (then both write the same
# order). What cannot be made exact is refused with the keyword and its pointer.


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


def _admits_objects(s: dict) -> bool:
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
    if isinstance(fmt, str) and fmt not in EXACT_FORMATS:
        return NotExact(f"format '{fmt}' is not enforced exactly", f"{ptr}/format")
    mult = s.get("multipleOf")
    if mult is not None and not float(mult).is_integer():
        return NotExact("a fractional multipleOf (jsonschema divides floats)", f"{ptr}/multipleOf")
    if objects and _admits_objects(s) and not _closed_single(s):
        for key in _OBJECT_KEYWORDS:
            if not s.get(key):
                continue
            if names is None:
                return NotExact(f"'{key}' fixes an order of object keys", f"{ptr}/{key}")
            if key in ("properties", "required"):
                if not set(s[key]) <= names:
                    return NotExact(
                        f"'{key}' names a property the surrounding schema does not declare", f"{ptr}/{key}"
                    )
            else:
                return NotExact(f"'{key}' fixes an order of object keys", f"{ptr}/{key}")
        if names is not None and ("patternProperties" in s or "additionalProperties" in s):
            return NotExact("a subschema constraining undeclared properties", ptr)
    for key in _SUBSCHEMA_LISTS:
        for i, sub in enumerate(s.get(key, []) if isinstance(s.get(key), list) else []):
            level = key != "prefixItems"
            found = order_problem(
                sub,
                f"{ptr}/{key}/{i}",
                resolve,
                names if level else None,
                seen,
                objects or not level,
                keep if level else None,
            )
            if found:
                return found
    for key in _SUBSCHEMA_ONE:
        if key in s:
            level = key in ("not", "if", "then", "else")
            found = order_problem(
                s[key],
                f"{ptr}/{key}",
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
    for key in ("properties", "patternProperties", "dependentSchemas"):
        for k, sub in (s.get(key) or {}).items() if isinstance(s.get(key), dict) else []:
            inner = _declared_schema(keep, k) if key == "properties" and names is not None else None
            if isinstance(inner, dict):  # merged into the kept schema's own property (`_prepare`)
                inner_names = frozenset(inner.get("properties", {}))
                found = order_problem(
                    sub, f"{ptr}/{key}/{k}", resolve, inner_names, seen, _admits_objects(inner), inner
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


# -- the compiler hooks -------------------------------------------------------------------------------------

CANONICAL_DEPTH = 3  # json_schema.ANY_DEPTH: `true` inside a subtracted subschema spells values this deep
_EMPTY = CharSet(())


def _regular(node: Any, pointer: str) -> ByteDFA:
    if has_call(node):
        raise NotExact("the subschema recurses, so its language is not regular", pointer)
    return dfa_of(expand_counted(node))


def _universe(comp: Any) -> ByteDFA:
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


def _declare(keep: Any, order: list[str]) -> Any:
    """`keep` with every name of `order` declared, in that order (then its other properties), each with the
    schema it gives such a key anyway: the same values, only their spelling fixes the order of these keys,
    as decc does for declared ones. Unchanged when `keep` has patternProperties (they pick the schema)."""
    if not isinstance(keep, dict) or keep.get("patternProperties") or not _admits_objects(keep):
        return keep
    props = keep.get("properties", {})
    addl = keep.get("additionalProperties", True)
    names = dict.fromkeys([*order, *props, *keep.get("required", [])])
    return {**keep, "properties": {n: props[n] if n in props else addl for n in names}}


def _declared_schema(keep: Any, name: str) -> Any:
    """The schema `keep` declares for property `name` (None: not declared, or `keep` is no dict)."""
    if not isinstance(keep, dict) or not isinstance(keep.get("properties"), dict):
        return None
    return keep["properties"].get(name)


def _same_level_properties(
    s: Any, resolve: Callable[[str, str], tuple[Any, str]], seen: frozenset[str] = frozenset()
) -> list[tuple[str, Any]]:
    """(name, subschema) of every `properties` entry that applies to the object `s` itself."""
    if not isinstance(s, dict):
        return []
    out = list(s["properties"].items()) if isinstance(s.get("properties"), dict) else []
    ref = s.get("$ref")
    if isinstance(ref, str) and ref not in seen:
        out += _same_level_properties(resolve(ref, "")[0], resolve, seen | {ref})
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in s.get(key, []) if isinstance(s.get(key), list) else []:
            out += _same_level_properties(sub, resolve, seen)
    for key in ("not", "if", "then", "else"):
        out += _same_level_properties(s.get(key), resolve, seen)
    return out


MAX_DECLARE_DEPTH = 8  # nested objects declared for a subtraction (a recursive schema would go on forever)


def _prepare(
    comp: Any, keep: Any, sub: Any, at: str, refs: tuple[str, ...], order: list[str] | None, depth: int = 0
) -> Any:
    """`keep` with the names `sub` mentions declared (`_declare`), and likewise inside each declared
    property whose subschema in `sub` depends on key order, so that the merge writes `keep`'s orders."""
    if depth > MAX_DECLARE_DEPTH:
        raise NotExact(f"objects nested over {MAX_DECLARE_DEPTH} deep (a recursive schema?)", at)
    keep = {} if keep is True else keep
    keep = _declare(keep, order if order is not None else top_names(sub, comp.resolve))
    if not isinstance(keep, dict):
        return keep
    for name, inner in _same_level_properties(sub, comp.resolve):
        own = _declared_schema(keep, name)
        if own is None or own is False or order_problem(inner, at, comp.resolve) is None:
            continue
        own, _, _ = comp.deref(own, at, refs, "peek")
        keep = {
            **keep,
            "properties": {**keep["properties"], name: _prepare(comp, own, inner, at, refs, None, depth + 1)},
        }
    return keep


def _closed_within(sub: Any, keep: Any) -> Any:
    """A closed `sub` (additionalProperties false) as the properties of `keep` it forbids, so that merging
    it into `keep` does not meet decc's refusal of additionalProperties in one allOf branch."""
    if not (isinstance(sub, dict) and sub.get("additionalProperties") is False and isinstance(keep, dict)):
        return sub, False
    if sub.get("patternProperties") or not isinstance(sub.get("properties", {}), dict):
        return sub, False
    props = dict(sub.get("properties", {}))
    props.update({n: False for n in keep.get("properties", {}) if n not in props})
    return {**{k: v for k, v in sub.items() if k != "additionalProperties"}, "properties": props}, True


def _difference(
    comp: Any,
    keep: Any,
    subs: list[tuple[Any, str]],
    ptr: str,
    refs: tuple[str, ...],
    what: str,
    order: list[str] | None = None,
) -> Node:
    """The canonical spellings of `keep` (a merged schema) whose values no schema of `subs` accepts.

    A subtracted schema whose language does not depend on key order is compiled alone; otherwise it is
    merged into `keep` (both then write `keep`'s key order), after the names it mentions are declared in
    `keep` (`_declare`), which must then name every key it constrains."""
    if keep is False:
        return _EMPTY
    relative = [(sub, at) for sub, at in subs if order_problem(sub, at, comp.resolve) is not None]
    if relative:  # `order`: the names in the order every branch of a oneOf writes them
        mentioned = [n for sub, _ in relative for n in top_names(sub, comp.resolve)]
        keep = _declare(keep, order if order is not None else mentioned)
        for sub, at in relative:
            keep = _prepare(comp, keep, comp.deref(sub, at, refs, "peek")[0], at, refs, [])
    declared = frozenset(keep.get("properties", {})) if isinstance(keep, dict) else frozenset()
    remove: list[ByteDFA] = []
    for sub, at in subs:
        if not any(sub is r for r, _ in relative):
            remove.append(_regular(comp.schema(sub, at, refs), at))
            continue
        target, _, _ = comp.deref(sub, at, refs, "peek")
        target, closed = _closed_within(target, keep)
        takes_objects = not isinstance(keep, dict) or _admits_objects(keep)
        problem = order_problem(target, at, comp.resolve, declared, objects=takes_objects, keep=keep)
        if problem is not None:
            raise problem
        merged = _merged(comp, [keep, target], at, refs)
        if merged is False:
            continue
        if closed:
            merged = {**merged, "additionalProperties": False}
        remove.append(_regular(comp.schema(merged, at, refs), at))
    return _minus(comp, comp.schema(keep, ptr, refs), remove, ptr, what)


def _merged(comp: Any, parts: list[Any], ptr: str, refs: tuple[str, ...]) -> Any:
    """The allOf of `parts` as one schema (False: nothing), as the compiler merges it."""
    merged = comp.merge_all({"allOf": parts}, ptr, refs)
    return {} if merged is True else merged


def _minus(comp: Any, keep: Node, remove: list[ByteDFA], ptr: str, what: str) -> Node:
    """`keep`'s canonical spellings that no language of `remove` holds, as one automaton node."""
    if keep == _EMPTY:
        return keep
    base = intersection([_regular(keep, ptr), _universe(comp)], what)
    return node_of(difference(base, remove, what))


def _exactly(
    comp: Any, keyword: str, ptr: str, exact: Callable[[], Node], fallback: Callable[[], Node]
) -> Node:
    try:
        return exact()
    except NotExact as e:
        comp.unsupported(keyword, e.pointer, f"'{keyword}' cannot be enforced exactly here: {e.message}")
        return fallback()  # lenient: the keyword was recorded as ignored


def _lacking(sub: Any) -> dict | None:
    """`not: {required: [names]}` as a schema of its own: objects lacking one of the names (and, when the
    negated schema says `type: object`, every non-object), so that no key order is involved."""
    if not isinstance(sub, dict) or not isinstance(sub.get("required"), list) or not sub["required"]:
        return None
    if any(not is_annotation(k) and k not in ("required", "type") for k in sub):
        return None
    if sub.get("type", "object") not in ("object", ["object"]):
        return None
    options: list[Any] = [
        {"type": "object", "properties": {n: False}} for n in dict.fromkeys(sub["required"])
    ]
    if "type" in sub:
        options.append({"type": ["null", "boolean", "number", "string", "array"]})
    return options[0] if len(options) == 1 else {"anyOf": options}


def negations(comp: Any, s: dict, ptr: str, refs: tuple[str, ...]) -> Node:
    """`if`/`then`/`else` and `not`: (T and A and B) | (T and C, minus A), and T minus the `not` schema."""
    if "if" in s:
        rest = {k: v for k, v in s.items() if k not in ("if", "then", "else")}
        if "then" not in s and "else" not in s:
            return comp.schema(rest, ptr, refs)
        cond, then, other = s["if"], s.get("then", True), s.get("else", True)

        def exact_if() -> Node:
            yes = comp.schema({"allOf": [rest, cond, then]}, ptr, refs)
            lacking = _lacking(cond)
            if lacking is not None:  # `if required [...]`: the else part is the objects lacking one
                try:
                    return alt(yes, comp.schema({"allOf": [rest, other, lacking]}, ptr, refs))
                except DeccError:
                    pass
            keep = _merged(comp, [rest, other], ptr, refs)
            no = _difference(comp, keep, [(cond, f"{ptr}/if")], ptr, refs, f"the 'if' at '{ptr or '/'}'")
            return alt(yes, no)

        def lenient_if() -> Node:
            return alt(
                comp.schema({"allOf": [rest, cond, then]}, ptr, refs),
                comp.schema({"allOf": [rest, other]}, ptr, refs),
            )

        return _exactly(comp, "if", f"{ptr}/if", exact_if, lenient_if)
    rest = {k: v for k, v in s.items() if k != "not"}
    lacking = _lacking(s["not"])
    if lacking is not None:
        try:
            return comp.schema({"allOf": [rest, lacking]}, ptr, refs)
        except DeccError:  # a merge decc does not do (two anyOf): the complement may still work
            pass

    def exact_not() -> Node:
        return _difference(comp, rest, [(s["not"], f"{ptr}/not")], ptr, refs, f"the 'not' at '{ptr or '/'}'")

    return _exactly(comp, "not", f"{ptr}/not", exact_not, lambda: comp.schema(rest, ptr, refs))


def one_of(comp: Any, rest: dict, subs: list, ptr: str, refs: tuple[str, ...], constrained: bool) -> Node:
    """`oneOf` with branches that may overlap: each branch minus the others that may overlap it."""

    def exact() -> Node:
        out: list[Node] = []
        order = top_names({"allOf": [rest, *subs]}, comp.resolve)
        for i, sub in enumerate(subs):
            where = f"{ptr}/oneOf/{i}"
            others = [j for j in range(len(subs)) if j != i and not comp.disjoint([sub, subs[j]], ptr, refs)]
            if not others:
                out.append(comp.schema({"allOf": [rest, sub]} if constrained else sub, where, refs))
                continue
            keep = _merged(comp, [rest, sub], where, refs)
            remove = [(subs[j], f"{ptr}/oneOf/{j}") for j in others]
            out.append(_difference(comp, keep, remove, where, refs, f"the oneOf at '{ptr or '/'}'", order))
        return alt(*out) if out else _EMPTY

    def lenient() -> Node:
        return alt(
            *(
                comp.schema({"allOf": [rest, sub]} if constrained else sub, f"{ptr}/oneOf/{i}", refs)
                for i, sub in enumerate(subs)
            )
        )

    return _exactly(comp, "oneOf", f"{ptr}/oneOf", exact, lenient)


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


def dependencies_as_conditionals(s: Any) -> Any:
    """`dependentRequired`, `dependentSchemas` and draft-07 `dependencies` as the conditionals they mean:
    {a: [b]} is `if required [a] then required [b]`, {a: S} is `if required [a] then S`; several nest
    (merge_conditionals), so that `negations` compiles them exactly."""
    if not isinstance(s, dict) or not any(k in s for k in DEPENDENCY_KEYWORDS):
        return s
    out: Any = _declare({k: v for k, v in s.items() if k not in DEPENDENCY_KEYWORDS}, dependency_names(s))
    for key in DEPENDENCY_KEYWORDS:
        for name, dep in (s.get(key) or {}).items():
            if isinstance(dep, list):
                if not dep:
                    continue
                cond = {"if": {"required": [name]}, "then": {"required": list(dep)}}
            else:
                cond = {"if": {"required": [name]}, "then": dep}
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
    parts = [_regular(comp.array(plain, ptr, refs), ptr)]
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
        key_dfa = _regular(keys, where)
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
            limited.append(node_of(intersection([_regular(e, where), member_of_key], "propertyNames")))
        except NotExact as err:
            comp.unsupported("propertyNames", err.pointer, f"propertyNames cannot be enforced: {err.message}")
            return decl, extras
    return kept, [e for e in limited if e != NOTHING_NODE]


# -- contains / minContains / maxContains ---------------------------------------------------------------------


def contains(comp: Any, s: dict, ptr: str, refs: tuple[str, ...]) -> Node:
    """`contains` with `minContains`/`maxContains`: arrays of canonical items in which lo..hi items match
    the contains schema (each item either matches, or is a canonical value it rejects), intersected with
    the array's own language. The contains schema must not depend on key order (its complement is taken)."""
    plain = {k: v for k, v in s.items() if k not in ("contains", "minContains", "maxContains")}
    lo, hi = int(s.get("minContains", 1)), None if s.get("maxContains") is None else int(s["maxContains"])
    if lo == 0 and hi is None:
        return comp.array(plain, ptr, refs)
    where = f"{ptr}/contains"

    def exact() -> Node:
        problem = order_problem(s["contains"], where, comp.resolve)
        if problem is not None:
            raise problem
        universe = _universe(comp)
        matching = _regular(comp.schema(s["contains"], where, refs), where)
        what = f"contains at '{ptr or '/'}'"
        hit = node_of(intersection([matching, universe], what))
        miss = node_of(difference(universe, [matching], what))
        comma = comp.comma
        misses = seq(miss, Repeat(seq(comma, miss), 0, None))
        block = seq(hit, Repeat(seq(comma, miss), 0, None))
        counted: Node = NOTHING_NODE
        if hi is None or hi >= max(lo, 1):
            more = Repeat(seq(comma, block), max(lo, 1) - 1, None if hi is None else hi - 1)
            counted = seq(opt(seq(misses, comma)), block, more)
        body = alt(opt(misses), counted) if lo == 0 else counted
        if body == NOTHING_NODE:
            return NOTHING_NODE
        arrays = dfa_of(seq(lit("["), comp.ws, body, comp.ws, lit("]")))
        return node_of(intersection([_regular(comp.array(plain, ptr, refs), ptr), arrays], what))

    return _exactly(comp, "contains", where, exact, lambda: comp.array(plain, ptr, refs))


def additional_across(out: dict, x: dict, y: dict) -> bool:
    """allOf branch `x`'s additionalProperties applied to the properties only branch `y` declares (each
    must satisfy both); False when that is not enough (`y` has patternProperties, or `x` has patterns that
    might pick another schema for those names)."""
    extra = [n for n in y.get("properties", {}) if n not in x.get("properties", {})]
    if "patternProperties" in y or (extra and x.get("patternProperties")):
        return False
    if extra:
        props = dict(out.get("properties", {}))
        for n in extra:
            props[n] = {"allOf": [props.get(n, True), x["additionalProperties"]]}
        out["properties"] = props
    return True
