"""Exact `not`, `if`/`then`/`else`, overlapping `oneOf` and `contains`, through automaton complement and
difference over canonical spellings (json_canonical.py); what cannot be made exact is refused with the
keyword and its JSON pointer (ignored with a warning when lenient)."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

from decc.errors import DeccError

from ..automata.dfa import ByteDFA
from ..regexes.regex_ast import CharSet, Node, Repeat
from .json_canonical import (
    NotExact,
    admits_objects,
    declare,
    declared_schema,
    order_problem,
    regular_dfa,
    top_names,
    universe,
)
from .json_disjoint import disjoint
from .json_keywords import is_annotation
from .json_numbers import alt, lit, opt, seq
from .regex_ops import dfa_of, difference, intersection, node_of

_EMPTY = CharSet(())


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
    """`keep` with the names `sub` mentions declared (`declare`), and likewise inside each declared
    property whose subschema in `sub` depends on key order, so that the merge writes `keep`'s orders."""
    if depth > MAX_DECLARE_DEPTH:
        raise NotExact(f"objects nested over {MAX_DECLARE_DEPTH} deep (a recursive schema?)", at)
    keep = {} if keep is True else keep
    keep = declare(keep, order if order is not None else top_names(sub, comp.resolve))
    if not isinstance(keep, dict):
        return keep
    for name, inner in _same_level_properties(sub, comp.resolve):
        own = declared_schema(keep, name)
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


def _without_implied(sub: Any, keep: Any) -> Any:
    """`sub` with each property schema that `keep`'s schema for that property implies, or of a property
    `keep` forbids, left as `true`: the values of `keep` meet it anyway, so `keep` minus `sub` is
    unchanged, and no complement has to order its keys."""
    if not (isinstance(sub, dict) and isinstance(keep, dict)):
        return sub
    mine, theirs = sub.get("properties"), keep.get("properties", {})
    if not (isinstance(mine, dict) and isinstance(theirs, dict)):
        return sub
    closed = keep.get("additionalProperties") is False and not keep.get("patternProperties")
    props = {
        n: True if (n in theirs and _implies(theirs[n], v)) or (n not in theirs and closed) else v
        for n, v in mine.items()
    }
    return {**sub, "properties": props}


def _simpler(comp: Any, sub: Any, at: str, refs: tuple[str, ...], keep: Any) -> Any:
    """`sub` without the property schemas `keep` implies (`_without_implied`); `sub` itself if none."""
    target, _, _ = comp.deref(sub, at, refs, "peek")
    simpler = _without_implied(target, keep)
    scalar = isinstance(keep, dict) and keep.get("type") in _SCALAR_TYPES
    if scalar and isinstance(simpler, dict) and not ({"type", "$ref"} & simpler.keys()):
        # keep's values are all of one scalar type: only sub's values of that type matter, and their
        # automaton is a few states, not one over every JSON value (`not: {pattern}` on a string)
        simpler = {**simpler, "type": keep["type"]}
    return sub if simpler == target else simpler


_SCALAR_TYPES = ("string", "number", "integer", "boolean", "null")


def _implies(keep: Any, sub: Any) -> bool:
    """Does every value of `keep` meet `sub`? (The same assertions, or `keep` takes no value.)"""
    if keep is False or keep == sub:
        return True
    if isinstance(keep, dict) and isinstance(sub, dict):
        return _assertions(keep) == _assertions(sub)
    return False


def _assertions(s: dict) -> dict:
    return {k: v for k, v in s.items() if not is_annotation(k)}


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
    `keep` (`declare`), which must then name every key it constrains."""
    if keep is False:
        return _EMPTY
    both = _double_negations(comp, keep, subs, ptr, refs)
    if both is not None:
        return both
    # a union subtracted branch by branch: each automaton alone, not their union over every JSON value
    # (MaskBench object7: 12,966 states for four propertyNames branches, each alone ~1,600)
    subs = _union(comp, subs, refs, 0)
    subs = [(_simpler(comp, sub, at, refs, keep), at) for sub, at in subs]
    structural = _structural(comp, keep, subs, ptr, refs)
    if structural is not None:
        return structural
    relative = [(sub, at) for sub, at in subs if order_problem(sub, at, comp.resolve) is not None]
    if relative:  # `order`: the names in the order every branch of a oneOf writes them
        mentioned = [n for sub, _ in relative for n in top_names(sub, comp.resolve)]
        keep = declare(keep, order if order is not None else mentioned)
        for sub, at in relative:
            keep = _prepare(comp, keep, comp.deref(sub, at, refs, "peek")[0], at, refs, [])
    declared = frozenset(keep.get("properties", {})) if isinstance(keep, dict) else frozenset()
    remove: list[ByteDFA] = []
    for sub, at in subs:
        if not any(sub is r for r, _ in relative):
            remove.append(regular_dfa(comp.schema(sub, at, refs), at, comp))
            continue
        target, _, _ = comp.deref(sub, at, refs, "peek")
        target, closed = _closed_within(target, keep)
        takes_objects = not isinstance(keep, dict) or admits_objects(keep)
        problem = order_problem(target, at, comp.resolve, declared, objects=takes_objects, keep=keep)
        if problem is not None:
            raise problem
        merged = _merged(comp, [keep, target], at, refs)
        if merged is False:
            continue
        if closed:
            merged = {**merged, "additionalProperties": False}
        remove.append(regular_dfa(comp.schema(merged, at, refs), at, comp))
    return _minus(comp, comp.schema(keep, ptr, refs), remove, ptr, what)


def _double_negations(
    comp: Any, keep: Any, subs: list[tuple[Any, str]], ptr: str, refs: tuple[str, ...]
) -> Node | None:
    """`keep` minus the union of schemas that are each only `not: Y` is `keep` and every Y: compiled as that
    conjunction, with no complement of a complement over every JSON value (MaskBench allany15: "not all
    not all" of string patterns, seconds of automata of ~1,700 states). None where a subtracted schema is
    not such a negation (after splitting anyOf and merging allOf), or decc cannot compile the conjunction."""
    kept: list[Any] = []
    try:
        for sub, at in _union(comp, subs, refs, 0):
            target = comp.deref(sub, at, refs, "peek")[0]
            if isinstance(target, dict) and _assertions(target).keys() == {"allOf"}:
                target = _merged(comp, [target], at, refs)
            if not (isinstance(target, dict) and "not" in target and _assertions(target).keys() == {"not"}):
                return None
            kept.append(target["not"])
        if math.prod(_alternatives(comp, y, ptr, refs) for y in kept) > MAX_DISTRIBUTED:
            return None  # the conjunction would distribute over that many anyOf branches: a complement
        return comp.schema({"allOf": [keep, *kept]}, ptr, refs)
    except DeccError:
        return None


MAX_DISTRIBUTED = 8  # branches a double negation's conjunction may distribute into (allany15: 3^3)


def _alternatives(comp: Any, s: Any, ptr: str, refs: tuple[str, ...]) -> int:
    """How many branches `s` adds to a conjunction it joins: its anyOf's (nested ones flattened), or 1."""
    return max(1, len(_union(comp, [(s, ptr)], refs, 0)))


def _union(
    comp: Any, subs: list[tuple[Any, str]], refs: tuple[str, ...], depth: int
) -> list[tuple[Any, str]]:
    """`subs` with each schema that is only an `anyOf` split into its branches (a union is subtracted
    branch by branch), a few levels deep."""
    out = []
    for sub, at in subs:
        target = comp.deref(sub, at, refs, "peek")[0]
        branches = target.get("anyOf") if isinstance(target, dict) else None
        if depth < 4 and isinstance(branches, list) and _assertions(target).keys() == {"anyOf"}:
            out += _union(comp, [(b, f"{at}/anyOf/{i}") for i, b in enumerate(branches)], refs, depth + 1)
        else:
            out.append((sub, at))
    return out


_FLAT = frozenset({"type", "properties", "required", "additionalProperties"})
MAX_TERMS = 64  # kept-schema conjunctions a structural difference may compile


def _negated_flat(sub: Any, keep: Any) -> list[Any] | None:
    """Schemas whose union is the values of `keep` that a flat object schema `sub` (type, properties,
    required, additionalProperties false) rejects: a non-object when `sub` is typed, a missing required
    name, a key `sub` does not declare when it is closed (only for a closed `keep`: then its names are
    known), a property whose value `sub`'s schema rejects. None when `sub` is not flat."""
    if not isinstance(sub, dict) or any(k not in _FLAT and not is_annotation(k) for k in sub):
        return None
    props, required = sub.get("properties", {}), sub.get("required", [])
    addl = sub.get("additionalProperties", True)
    if not isinstance(props, dict) or not isinstance(required, list) or addl not in (True, False, {}):
        return None
    if sub.get("type", "object") not in ("object", ["object"]):
        return None
    obj: dict[str, Any] = {"type": "object"}
    terms: list[Any] = [{"type": [t for t in _TYPES if t != "object"]}] if "type" in sub else []
    terms += [{**obj, "properties": {r: False}} for r in dict.fromkeys(required)]
    if addl is False:
        if not (isinstance(keep, dict) and keep.get("additionalProperties") is False):
            return None
        if keep.get("patternProperties") or not isinstance(keep.get("properties", {}), dict):
            return None
        terms += [
            {**obj, "required": [q]}
            for q, v in keep.get("properties", {}).items()
            if q not in props and v is not False
        ]
    for name, v in props.items():
        if v is False:
            terms.append({**obj, "required": [name]})
        elif v is not True and v != {}:
            terms.append({**obj, "required": [name], "properties": {name: {"not": v}}})
    return terms


_TYPES = ("null", "boolean", "object", "array", "string", "number")


def _structural(
    comp: Any, keep: Any, subs: list[tuple[Any, str]], ptr: str, refs: tuple[str, ...]
) -> Node | None:
    """`keep` minus flat object schemas, one after the other, as pieces: each piece that may overlap the
    next subtracted schema becomes its conjunctions with what that schema rejects (`_negated_flat`), those
    proven empty dropped. No automaton of the whole object, so no key order and no product of long strings.
    None when a subtracted schema is not flat or the pieces grow past `MAX_TERMS`."""
    oracle = comp.oracle()
    pieces = [keep]
    try:
        for sub, at in subs:
            target = comp.deref(sub, at, refs, "peek")[0]
            grown: list[Any] = []
            for piece in pieces:
                if disjoint(piece, target, oracle):
                    grown.append(piece)
                    continue
                terms = _negated_flat(target, piece)
                if terms is None:
                    return None
                for term in terms:
                    if not disjoint(piece, term, oracle):
                        merged = _merged(comp, [piece, term], ptr, refs)
                        if merged is not False:
                            grown.append(merged)
            if len(grown) > MAX_TERMS:
                return None
            pieces = grown
        out = [comp.schema(piece, ptr, refs) for piece in pieces]
    except DeccError:
        return None
    return alt(*out) if out else _EMPTY


def _merged(comp: Any, parts: list[Any], ptr: str, refs: tuple[str, ...]) -> Any:
    """The allOf of `parts` as one schema (False: nothing), as the compiler merges it."""
    merged, _ = comp.merge_all({"allOf": parts}, ptr, refs)
    return {} if merged is True else merged


# Per compiler: `_minus` results by (kept node, subtracted DFAs). The pieces of a structural difference
# and the branches of a oneOf subtract the same schema again and again (MaskBench o83138: 33 subtractions,
# one distinct), each two products with the canonical values. The key holds the DFAs, so ids stay unique.
_MINUS_MEMO: weakref.WeakKeyDictionary[Any, dict[tuple[Node, tuple[ByteDFA, ...]], Node]] = (
    weakref.WeakKeyDictionary()
)


def _minus(comp: Any, keep: Node, remove: list[ByteDFA], ptr: str, what: str) -> Node:
    """`keep`'s canonical spellings that no language of `remove` holds, as one automaton node (memoized
    per compiler: a pure function of its operands; `ptr` and `what` only name a failure, never cached)."""
    if keep == _EMPTY:
        return keep
    memo = _MINUS_MEMO.setdefault(comp, {})
    key = (keep, tuple(remove))
    hit = memo.get(key)
    if hit is None:
        base = intersection([regular_dfa(keep, ptr, comp), universe(comp)], what)
        hit = memo[key] = node_of(difference(base, remove, what))
    return hit


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


MAX_SUBTRACTIONS = 2 * 48  # overlapping oneOf branch pairs (each subtracted from both branches)


def one_of(comp: Any, rest: dict, subs: list, ptr: str, refs: tuple[str, ...], constrained: bool) -> Node:
    """`oneOf` with branches that may overlap: each branch minus the others that may overlap it."""

    def exact() -> Node:
        out: list[Node] = []
        order = top_names({"allOf": [rest, *subs]}, comp.resolve)
        overlaps = [
            [j for j in range(len(subs)) if j != i and not comp.disjoint([sub, subs[j]], rest)]
            for i, sub in enumerate(subs)
        ]
        n = sum(map(len, overlaps))
        if n > MAX_SUBTRACTIONS:  # each is a product over the whole branch: refused before any is built
            raise NotExact(
                f"its branches may overlap in {n // 2:,} pairs, each a subtraction of automata "
                f"(at most {MAX_SUBTRACTIONS // 2})",
                f"{ptr}/oneOf",
            )
        for i, sub in enumerate(subs):
            where = f"{ptr}/oneOf/{i}"
            others = overlaps[i]
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
        canonical = universe(comp)
        matching = regular_dfa(comp.schema(s["contains"], where, refs), where, comp)
        what = f"contains at '{ptr or '/'}'"
        hit = node_of(intersection([matching, canonical], what))
        miss = node_of(difference(canonical, [matching], what))
        comma = comp.comma
        misses = seq(miss, Repeat(seq(comma, miss), 0, None))
        block = seq(hit, Repeat(seq(comma, miss), 0, None))
        counted: Node = _EMPTY
        if hi is None or hi >= max(lo, 1):
            more = Repeat(seq(comma, block), max(lo, 1) - 1, None if hi is None else hi - 1)
            counted = seq(opt(seq(misses, comma)), block, more)
        body = alt(opt(misses), counted) if lo == 0 else counted
        if body == _EMPTY:
            return _EMPTY
        arrays = dfa_of(seq(lit("["), comp.ws, body, comp.ws, lit("]")))
        return node_of(intersection([regular_dfa(comp.array(plain, ptr, refs), ptr, comp), arrays], what))

    return _exactly(comp, "contains", where, exact, lambda: comp.array(plain, ptr, refs))
