"""Hypothesis strategies for property-testing constraints: strings in a constraint's language, and
non-canonical tokenizations of a text.

`from_constraint(c)` walks the constraint's byte DFA with hypothesis choices, so draws spread over the
automaton's paths (every outgoing edge group is equally likely, not every byte) and shrink toward short,
simple strings: the shrunk choice at every step is "stop here" or "take the edge closest to acceptance".

    from hypothesis import given
    from decc import grammars, testing

    @given(testing.from_constraint(grammars.compile_regex(r"\\d{4}-\\d{2}")))
    def test_my_parser(s): ...
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from hypothesis import strategies as st

from decc.grammars import ByteDFA

__all__ = [
    "SchemaOrderError",
    "from_constraint",
    "from_json_schema",
    "from_program",
    "from_regex",
    "to_schema_order",
    "tokenizations",
]


@dataclass(frozen=True, eq=False)
class _Walk:
    """Per state: edge groups (lo, hi, target) sorted by the target's distance to acceptance."""

    start: int
    accepting: tuple[bool, ...]
    groups: tuple[tuple[tuple[int, int, int], ...], ...]
    dist: tuple[int, ...]


@lru_cache(maxsize=64)
def _walk_info(dfa: ByteDFA) -> _Walk:
    trans = dfa.transitions
    n = dfa.n_states
    # Distance (in bytes) from each state to acceptance: BFS over reversed edges.
    dist = np.full(n, np.iinfo(np.int32).max, dtype=np.int64)
    rev: list[set[int]] = [set() for _ in range(n)]
    for s in range(n):
        for t in np.unique(trans[s][trans[s] >= 0]):
            rev[int(t)].add(s)
    queue = deque(int(s) for s in np.nonzero(dfa.accepting)[0])
    for s in queue:
        dist[s] = 0
    while queue:
        t = queue.popleft()
        for s in rev[t]:
            if dist[s] > dist[t] + 1:
                dist[s] = dist[t] + 1
                queue.append(s)
    groups = []
    for s in range(n):
        row = trans[s]
        runs: list[tuple[int, int, int]] = []
        b = 0
        while b < 256:
            t = int(row[b])
            e = b
            while e + 1 < 256 and int(row[e + 1]) == t:
                e += 1
            if t >= 0:
                runs.append((b, e, t))
            b = e + 1
        runs.sort(key=lambda r: (dist[r[2]], r[0]))
        groups.append(tuple(runs))
    return _Walk(dfa.start, tuple(bool(a) for a in dfa.accepting), tuple(groups), tuple(int(d) for d in dist))


def _dfa_of(constraint: Any) -> ByteDFA:
    if isinstance(constraint, ByteDFA):
        return constraint
    dfa = getattr(constraint, "dfa", None)
    if isinstance(dfa, ByteDFA):
        return dfa
    raise TypeError(f"from_constraint needs a compiled constraint or a ByteDFA, not {type(constraint).__name__}")


def from_constraint(constraint: Any, *, max_bytes: int = 256) -> st.SearchStrategy[str]:
    """Strings in the language of `constraint` (a `TokenConstraint`, or a model-free `ByteDFA`).

    Past `max_bytes` the walk takes the shortest way to acceptance, so every draw terminates.
    """
    dfa = _dfa_of(constraint)
    if dfa.is_empty():
        raise ValueError("the constraint's language is empty: there is nothing to draw")
    info = _walk_info(dfa)

    @st.composite
    def walk(draw: Any) -> str:
        # One draw of a byte blob holds every choice: hypothesis draws bytes in bulk (one integer draw per
        # step costs ~20 µs), and shrinking the blob toward shorter / zero bytes gives shorter strings that
        # stop as early and take edges as close to acceptance as the language allows.
        size = draw(st.integers(0, 3 * max_bytes))
        blob = draw(st.binary(min_size=size, max_size=size))
        return _decode_walk(info, blob, max_bytes)

    return walk()


def _decode_walk(info: _Walk, blob: bytes, max_bytes: int) -> str:
    out = bytearray()
    s = info.start
    pos = 0
    n = len(blob)
    while True:
        groups = info.groups[s]
        if info.accepting[s]:
            if not groups or len(out) >= max_bytes or pos >= n:
                break
            pos += 1
            if blob[pos - 1] < 64:  # stop with probability 1/4; a zero byte (shrunk) stops
                break
        if pos >= n or len(out) >= max_bytes:
            lo, _, t = groups[0]  # out of choices: the shortest way home
            out.append(lo)
        else:
            lo, hi, t = groups[blob[pos] % len(groups)]
            pos += 1
            if hi > lo:
                out.append(lo + (blob[pos] % (hi - lo + 1) if pos < n else 0))
                pos += 1
            else:
                out.append(lo)
        s = t
    return out.decode("utf-8")


def from_program(program: Any, step: str, **kwargs: Any) -> st.SearchStrategy[str]:
    """Strings that generation step `step` of a `.dec` program may produce (needs only its tokenizer)."""
    from decc.compiler.plan import PlanGen

    for plan_step in program.plan().steps:
        if isinstance(plan_step, PlanGen) and plan_step.name == step:
            if plan_step.constraint is None:
                raise ValueError(f"step '{step}' has no constraint: any text is allowed")
            return from_constraint(plan_step.constraint, **kwargs)
    raise ValueError(f"the program has no generation step named '{step}'")


def from_regex(pattern: str, **kwargs: Any) -> st.SearchStrategy[str]:
    """Full matches of `pattern`, drawn from decc's own automaton for it."""
    from decc.grammars import compile_regex

    return from_constraint(compile_regex(pattern), **kwargs)


def from_json_schema(schema: Any, **kwargs: Any) -> st.SearchStrategy[str]:
    """JSON texts valid under `schema`, as decc would let a model write them."""
    from decc.grammars import compile_json_schema

    return from_constraint(compile_json_schema(schema), **kwargs)


def tokenizations(text: str, vocab: Any) -> st.SearchStrategy[list[int]]:
    """Token id sequences whose bytes concatenate to `text`: canonical or not (any split into vocab tokens).

    Draws choose, at each position, among the vocabulary tokens that match the bytes there; shrinking tends
    toward the longest tokens (the fewest pieces).
    """
    data = text.encode("utf-8")
    index = _token_index(vocab)
    max_len = max((len(b) for b in index), default=0)
    # Which positions can still reach the end: a split must exist from every position we stop at.
    n = len(data)
    ok = [False] * (n + 1)
    ok[n] = True
    for i in range(n - 1, -1, -1):
        ok[i] = any(ok[i + k] and data[i : i + k] in index for k in range(1, min(max_len, n - i) + 1))
    if not ok[0]:
        raise ValueError(f"{text!r} cannot be split into tokens of this vocabulary")

    @st.composite
    def split(draw: Any) -> list[int]:
        ids: list[int] = []
        i = 0
        while i < n:
            options = [
                (k, t)
                for k in range(min(max_len, n - i), 0, -1)
                if ok[i + k] and data[i : i + k] in index
                for t in index[data[i : i + k]]
            ]
            k, t = options[draw(st.integers(0, len(options) - 1))] if len(options) > 1 else options[0]
            ids.append(t)
            i += k
        return ids

    return split()


@lru_cache(maxsize=8)
def _token_index(vocab: Any) -> dict[bytes, tuple[int, ...]]:
    """Text tokens by their bytes (several ids may share bytes)."""
    index: dict[bytes, list[int]] = {}
    for i, b in enumerate(vocab.token_bytes):
        if b and i not in vocab.special_ids:
            index.setdefault(b, []).append(i)
    return {b: tuple(ids) for b, ids in index.items()}


class SchemaOrderError(ValueError):
    """The instance has no single order decc would write it in (e.g. several keys under anyOf)."""


def _resolve(root: Any, s: Any, depth: int = 0) -> Any:
    while isinstance(s, dict) and "$ref" in s and depth < 20:
        ref = s["$ref"]
        if not ref.startswith("#/") and ref != "#":
            raise SchemaOrderError
        t = root
        for part in ref[2:].split("/") if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            t = t[int(part)] if isinstance(t, list) else t[part]
        s = t
        depth += 1
    return s


def _order(root: Any, s: Any) -> list[str]:
    """Property names in the order decc writes them: own properties, then those of allOf branches."""
    s = _resolve(root, s)
    if not isinstance(s, dict):
        return []
    names = list(s.get("properties", {}))
    for sub in s.get("allOf", []):
        names += [n for n in _order(root, sub) if n not in names]
    for n in s.get("required", []):
        if n not in names:
            names.append(n)
    return names


def _reorder(root: Any, s: Any, v: Any) -> Any:
    if isinstance(v, float):
        if not math.isfinite(v):
            raise SchemaOrderError
        return int(v) if v.is_integer() else v
    s = _resolve(root, s)
    if isinstance(v, list):
        if not isinstance(s, dict):
            return [_reorder(root, True, x) for x in v]
        prefix = s.get("prefixItems", s.get("items") if isinstance(s.get("items"), list) else [])
        rest = (
            s.get("items", True) if not isinstance(s.get("items"), list) else s.get("additionalItems", True)
        )
        return [_reorder(root, prefix[i] if i < len(prefix) else rest, x) for i, x in enumerate(v)]
    if isinstance(v, dict):
        if not isinstance(s, dict):
            if len(v) > 1:
                raise SchemaOrderError
            return {k: _reorder(root, True, x) for k, x in v.items()}
        if len(v) > 1 and any(k in s for k in ("anyOf", "oneOf")):
            raise SchemaOrderError
        order = _order(root, s)
        consts = [s["const"]] if "const" in s else list(s.get("enum", []))
        for c in consts:
            if isinstance(c, dict) and set(c) == set(v):
                order = list(c)
                break
        keys = [k for k in order if k in v] + [k for k in v if k not in order]
        props = s.get("properties", {})
        return {k: _reorder(root, props.get(k, True), v[k]) for k in keys}
    return v



def to_schema_order(instance: Any, schema: Any) -> Any:
    """`instance` with object keys in the order decc writes them for `schema` (declared properties first).

    decc's JSON constraints fix property order, so an instance from another generator must be reordered
    before it can be compared with what decc accepts. Integral floats become ints (`1.0` → `1`), as JSON
    does not distinguish them. Raises `SchemaOrderError` when no single order applies.
    """
    return _reorder(schema, schema, instance)
