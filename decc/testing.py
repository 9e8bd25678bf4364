"""Hypothesis strategies for property-testing constraints: strings in a constraint's language, and
non-canonical tokenizations of a text.

`from_constraint(c)` walks the constraint's automaton with hypothesis choices, so draws spread over its
paths (every outgoing edge group is equally likely, not every byte) and shrink toward short, simple strings:
the shrunk choice at every step is "stop here" or "take the edge closest to acceptance". Regex and JSON
Schema constraints are walked on their byte DFA; context-free grammars on their recursive transition
network (RTN), with a stack of return states, under a pressure to finish that grows with the string.

    from hypothesis import given
    from decc import grammars, testing

    @given(testing.from_constraint(grammars.compile_regex(r"\\d{4}-\\d{2}")))
    def test_my_parser(s): ...

    @given(testing.from_grammar(grammars.builtin_grammar("arith")))
    def test_my_evaluator(expr): ...
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from hypothesis import strategies as st

from decc.grammars import ByteDFA

__all__ = [
    "SchemaOrderError",
    "completer",
    "from_constraint",
    "from_grammar",
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
    counted: ByteDFA | None = None  # the DFA, when it carries counters (length-bounded string bodies)


def _byte_runs(row: np.ndarray, tick: np.ndarray | None = None) -> list[tuple[int, int, int]]:
    """(lo, hi, target) for each maximal run of bytes with one live target (and one tick) in a row."""
    live = np.flatnonzero(row >= 0)
    if not len(live):
        return []
    targets = row[live]
    split = (np.diff(live) != 1) | (np.diff(targets) != 0)
    if tick is not None:
        split |= np.diff(tick[live].astype(np.int8)) != 0
    cut = (np.flatnonzero(split) + 1).tolist()
    return [
        (int(live[a]), int(live[b - 1]), int(targets[a]))
        for a, b in zip([0, *cut], [*cut, len(live)], strict=True)
    ]


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
    counted = bool(getattr(dfa, "bounds", ()))
    tick = dfa.tick if counted else None
    groups = []
    for s in range(n):
        runs = _byte_runs(trans[s], None if tick is None else tick[s])
        groups.append(tuple(sorted(runs, key=lambda r: (dist[r[2]], r[0]))))
    accepting = tuple(bool(a) for a in dfa.accepting)
    return _Walk(dfa.start, accepting, tuple(groups), tuple(int(d) for d in dist), dfa if counted else None)


def _automaton_of(constraint: Any) -> Any:
    """The byte DFA or the RTN to walk for `constraint`, by what the object is, not by how it was made.

    Accepted: a `ByteDFA` or anything with one in `.dfa` (a `TokenConstraint`), a `Conjunction` or anything
    with one in `.conj` (a `ConjunctionConstraint`: the `product` pass off); an `RTN` or anything with one
    in `.rtn` (a `CFGConstraint`, whatever built it); a model-free `cfg_grammar.Grammar` (what the compiler
    keeps for `grammar(...)`) or anything with one in `.grammar`; an IR constraint, by its `.compiled` form.
    """
    from decc.grammars.contextfree.cfg_grammar import Grammar
    from decc.grammars.contextfree.rtn import RTN
    from decc.grammars.tokens.dfa_queries import language
    from decc.grammars.tokens.lazy_product import Conjunction

    original = constraint
    for _ in range(4):
        if isinstance(constraint, (ByteDFA, Conjunction)):  # whichever optimizer passes ran
            return language(constraint)
        if isinstance(constraint, RTN):
            return constraint
        if isinstance(constraint, Grammar):
            return _rtn_of_grammar(constraint)
        for attr in ("dfa", "rtn", "grammar", "conj", "compiled"):
            inner = getattr(constraint, attr, None)
            kinds = (ByteDFA, RTN, Grammar, Conjunction)
            if isinstance(inner, kinds) or (attr == "compiled" and inner is not None):
                constraint = inner
                break
        else:
            break
    raise TypeError(
        "from_constraint needs a compiled constraint (regex, JSON schema, grammar), a ByteDFA, an RTN or a "
        f"parsed grammar, not {type(original).__name__}"
    )


@lru_cache(maxsize=32)
def _rtn_of_grammar(grammar: Any) -> Any:
    from decc.grammars.contextfree.rtn import build_rtn

    return build_rtn(grammar)


def from_constraint(constraint: Any, *, max_bytes: int = 256) -> st.SearchStrategy[str]:
    """Strings in the language of `constraint`, of any kind: a regex or JSON Schema constraint (a
    `TokenConstraint` or a model-free `ByteDFA`), a context-free grammar (a `CFGConstraint`, a parsed
    `Grammar` or its `RTN`), or the constraint of a compiled program step.

    Past `max_bytes` (and, for grammars, under a pressure that grows as the string nears it) the walk takes
    the shortest way to acceptance, so every draw terminates; a draw may end a little past `max_bytes` when
    the shortest way home is longer than what is left.
    """
    automaton = _automaton_of(constraint)
    if not isinstance(automaton, ByteDFA):
        return _from_rtn(automaton, max_bytes)
    dfa = automaton
    if dfa.is_empty():
        raise ValueError("the constraint's language is empty: there is nothing to draw")
    return _blob_walk(_decode_walk, _walk_info(dfa), max_bytes)


def _blob_walk(decode: Any, info: Any, max_bytes: int) -> st.SearchStrategy[str]:
    """`decode(info, blob, max_bytes)` over one drawn byte blob that holds every choice of the walk.

    Hypothesis draws bytes in bulk (one integer draw per step costs ~20 µs), and shrinking the blob toward
    shorter / zero bytes gives shorter strings that stop as early and take the shortest ways home.
    """

    @st.composite
    def walk(draw: Any) -> str:
        size = draw(st.integers(0, 3 * max_bytes))
        blob = draw(st.binary(min_size=size, max_size=size))
        return decode(info, blob, max_bytes)

    return walk()


def from_grammar(text: str, *, start: str = "start", max_bytes: int = 256) -> st.SearchStrategy[str]:
    """Sentences of a Lark grammar (as decc reads it: Earley semantics), model-free.

    `from_grammar(grammars.builtin_grammar("json"))` draws from a built-in grammar.
    """
    from decc.grammars.contextfree.cfg_grammar import parse_grammar

    return from_constraint(parse_grammar(text, start), max_bytes=max_bytes)


# -- grammars: walks over the recursive transition network ------------------------------------------------

# An RTN walk option: (0,) return from the rule (at the top: stop); (1, lo, hi, target) a byte in lo..hi;
# (2, callee_start, next) call a rule, then continue at `next`.
_Option = tuple[int, ...]
_INF = 1 << 60


@dataclass(frozen=True, eq=False)
class _RTNWalk:
    """Per RTN state: its options, the first one on a shortest way to finish the rule (`dist` bytes)."""

    start: int
    options: tuple[tuple[_Option, ...], ...]
    dist: tuple[int, ...]


@lru_cache(maxsize=32)
def _rtn_walk_info(rtn: Any) -> _RTNWalk:
    """Shortest completions by Knuth's generalization of Dijkstra's algorithm to grammars.

    dist[g] is the fewest bytes that take state g to the end of its rule: 0 when accepting, 1 + dist[t] over
    a byte edge, dist[start of callee] + dist[next] over a call. A state's cost is only relaxed from finalized
    states, so the option that set it depends on states finalized earlier: following these options (the
    "policy") always finishes, even through nullable or recursive rules.
    """
    import heapq

    rtn.build_all()  # the RTN grows lazily: the walks need every rule
    n = rtn.n_states
    table = rtn.table
    starts = list(rtn.starts)
    start_of_rule = {g: r for r, g in enumerate(starts)}
    byte_preds: list[set[int]] = [set() for _ in range(n)]
    groups: list[list[tuple[int, int, int]]] = []
    for g in range(n):
        runs = _byte_runs(table[g])
        for _lo, _hi, t in runs:
            byte_preds[t].add(g)
        groups.append(runs)
    next_preds: list[list[tuple[int, int]]] = [[] for _ in range(n)]  # next -> (caller state, callee)
    callers: list[list[tuple[int, int]]] = [[] for _ in starts]  # callee -> (caller state, next)
    for g, edges in enumerate(rtn.calls):
        for callee, nxt in edges:
            next_preds[nxt].append((g, callee))
            callers[callee].append((g, nxt))

    tentative = [_INF] * n
    best: list[_Option | None] = [None] * n
    dist = [_INF] * n
    heap: list[tuple[int, int, int]] = []
    tick = 0

    def relax(g: int, cost: int, option: _Option) -> None:
        nonlocal tick
        if dist[g] == _INF and cost < tentative[g]:
            tentative[g] = cost
            best[g] = option
            heapq.heappush(heap, (cost, tick, g))
            tick += 1

    for g in np.flatnonzero(rtn.accepting).tolist():
        relax(g, 0, (0,))
    while heap:
        d, _, g = heapq.heappop(heap)
        if dist[g] != _INF:
            continue
        dist[g] = d
        for p in byte_preds[g]:
            lo, hi, _t = next(run for run in groups[p] if run[2] == g)
            relax(p, d + 1, (1, lo, hi, g))
        for p, callee in next_preds[g]:
            if dist[starts[callee]] != _INF:
                relax(p, dist[starts[callee]] + d, (2, starts[callee], g))
        r = start_of_rule.get(g)
        if r is not None:
            for p, nxt in callers[r]:
                if dist[nxt] != _INF:
                    relax(p, d + dist[nxt], (2, g, nxt))

    options: list[tuple[_Option, ...]] = []
    for g in range(n):
        if dist[g] == _INF:
            options.append(())
            continue
        scored: list[tuple[int, int, _Option]] = []
        if rtn.accepting[g]:
            scored.append((0, -1, (0,)))
        for lo, hi, t in groups[g]:
            if dist[t] != _INF:
                scored.append((1 + dist[t], lo, (1, lo, hi, t)))
        for callee, nxt in rtn.calls[g]:
            s = starts[callee]
            if dist[s] != _INF and dist[nxt] != _INF:
                scored.append((dist[s] + dist[nxt], 256 + callee, (2, s, nxt)))
        scored.sort()
        policy = best[g]
        options.append((policy, *(o for _, _, o in scored if o != policy)))  # type: ignore[arg-type]
    return _RTNWalk(starts[0], tuple(options), tuple(dist))


def _from_rtn(rtn: Any, max_bytes: int) -> st.SearchStrategy[str]:
    from decc.grammars.contextfree.rtn import eager_rtn

    info = _rtn_walk_info(eager_rtn(rtn.grammar, rtn.limits))  # numbered in rule order: the same draws
    if info.dist[info.start] >= _INF:
        raise ValueError("the grammar's language is empty: there is nothing to draw")
    return _blob_walk(_decode_rtn_walk, info, max_bytes)


def _decode_rtn_walk(info: _RTNWalk, blob: bytes, max_bytes: int) -> str:
    """One derivation: each blob byte picks an option; 0 picks the policy (the shortest way to finish).

    The pressure to finish grows with `due`, the bytes written plus the fewest bytes still owed (by the rule
    in progress and every pending return): the policy is forced with probability about (due / max_bytes)²,
    and always once the blob is spent or `due` reaches `max_bytes`.
    """
    out = bytearray()
    stack: list[int] = []
    owed = 0  # the fewest bytes the pending returns still need
    dist, options = info.dist, info.options
    g = info.start
    pos = 0
    n = len(blob)
    square = max_bytes * max_bytes
    while True:
        opts = options[g]
        due = len(out) + dist[g] + owed
        free = pos < n and due < max_bytes
        if free:
            v = blob[pos]
            pos += 1
            option = opts[0] if v * square < 256 * due * due else opts[v % len(opts)]
        else:
            option = opts[0]
        kind = option[0]
        if kind == 1:
            lo, hi, t = option[1], option[2], option[3]
            if hi > lo and free and pos < n:
                out.append(lo + blob[pos] % (hi - lo + 1))
                pos += 1
            else:
                out.append(lo)
            g = t
        elif kind == 2:
            stack.append(option[2])
            owed += dist[option[2]]
            g = option[1]
        elif stack:
            g = stack.pop()
            owed -= dist[g]
        else:
            break
    return out.decode("utf-8")


def _shortest_completion(rtn: Any, chart: Any) -> bytes:
    """Bytes that complete an Earley chart over `rtn` (a grammar matcher's `.chart`) to a sentence: the
    cheapest item of the last set, its callers' return states found through the sets' `waiting` lists,
    then the shortest way home from there. Used to steer token walks home (see `decc.proptest`)."""
    info = _rtn_walk_info(rtn)
    rule_of = rtn.rule_of
    dist = info.dist
    memo: dict[tuple[int, int], tuple[int, tuple[int, ...]]] = {}

    def context(o: int, r: int) -> tuple[int, tuple[int, ...]]:
        """(fewest bytes, return states innermost first) to finish the callers of rule r started at o."""
        key = (o, r)
        hit = memo.get(key)
        if hit is not None:
            return hit
        memo[key] = (_INF, ())  # a cycle back here is no cheaper way
        best: tuple[int, tuple[int, ...]] = (0, ()) if o == 0 and r == 0 else (_INF, ())
        for g2, o2 in chart[o].waiting.get(r, ()):
            cost, chain = context(o2, int(rule_of[g2]))
            if cost + dist[g2] < best[0]:
                best = (cost + dist[g2], (g2, *chain))
        memo[key] = best
        return best

    best_cost, state, returns = _INF, -1, ()
    for g, o in chart[-1].items:
        cost, chain = context(o, int(rule_of[g]))
        if dist[g] + cost < best_cost:
            best_cost, state, returns = dist[g] + cost, g, chain
    if state < 0:
        raise ValueError("no item of the chart can be completed")
    out = bytearray()
    stack = list(reversed(returns))
    g = state
    while True:
        option = info.options[g][0]
        if option[0] == 1:
            out.append(option[1])
            g = option[3]
        elif option[0] == 2:
            stack.append(option[2])
            g = option[1]
        elif stack:
            g = stack.pop()
        else:
            return bytes(out)


def completer(constraint: Any) -> Callable[[bytes, Any], bytes | None]:
    """`complete(prefix, matcher)`: the fewest bytes that take `prefix` to a string in the language of
    `constraint` (None when no string starts with `prefix`), to steer a token walk home.

    DFAs replay `prefix` byte by byte, so length counters are honoured (the way home of a counted string
    first writes what `minLength` still asks for); grammars read the Earley chart of `matcher` (the one that
    accepted `prefix`). The completion is bytes: a walk follows it with tokens that spell a prefix of it.
    """
    automaton = _automaton_of(constraint)
    if isinstance(automaton, ByteDFA):
        dfa, info = automaton, _walk_info(automaton)
        return lambda prefix, matcher=None: _dfa_completion(dfa, info, prefix)

    def from_chart(prefix: bytes, matcher: Any) -> bytes | None:
        chart = getattr(matcher, "chart", None)
        if chart is None:
            return None
        try:
            return _shortest_completion(automaton, chart)
        except ValueError:
            return None

    return from_chart


def _dfa_completion(dfa: ByteDFA, info: _Walk, prefix: bytes) -> bytes | None:
    """Breadth-first over (state, counter) from where `prefix` leads: the shortest way to acceptance."""
    if dfa.is_empty():
        return None
    start = dfa.advance(dfa.start, 0, prefix)
    if start[0] < 0:
        return None
    back: dict[tuple[int, int], tuple[tuple[int, int], int] | None] = {start: None}
    queue = deque([start])
    while queue:
        key = queue.popleft()
        if dfa.is_accepting(*key):
            out = bytearray()
            step = back[key]
            while step is not None:
                key, byte = step
                out.append(byte)
                step = back[key]
            return bytes(reversed(out))
        for lo, _hi, _t in info.groups[key[0]]:  # a run shares its target and tick: one byte stands for it
            nxt = dfa.advance(key[0], key[1], bytes((lo,)))
            if nxt[0] >= 0 and nxt not in back:
                back[nxt] = (key, lo)
                queue.append(nxt)
    return None


def _decode_walk(info: _Walk, blob: bytes, max_bytes: int) -> str:
    if info.counted is not None:
        return _decode_counted_walk(info, info.counted, blob, max_bytes)
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


def _decode_counted_walk(info: _Walk, dfa: ByteDFA, blob: bytes, max_bytes: int) -> str:
    """`_decode_walk` on a DFA with counters: the position is (state, counter) and only the edge groups that
    keep it live are choices (a run of bytes shares its target and its tick, so one byte stands for it)."""
    moves = _counted_moves(info)
    out = bytearray()
    s, c = info.start, 0
    pos = 0
    n = len(blob)
    limit = 4 * max_bytes + 4 * len(info.groups) + 1024  # the counters make the way home longer, not endless
    while True:
        key = (s, c)
        hit = moves.get(key)
        if hit is None:
            options = []
            for lo, hi, _ in info.groups[s]:
                t, tc = dfa.advance(s, c, bytes((lo,)))
                if t >= 0:
                    options.append((lo, hi, t, tc))
            hit = moves[key] = (dfa.is_accepting(s, c), tuple(options))
        accepting, groups = hit
        if accepting:
            if not groups or len(out) >= max_bytes or pos >= n:
                break
            pos += 1
            if blob[pos - 1] < 64:
                break
        if not groups or len(out) > limit:
            raise AssertionError(f"decc.testing: dead end in a counted DFA after {bytes(out)!r}")
        if pos >= n or len(out) >= max_bytes:
            b, _, s, c = groups[0]
        else:
            lo, hi, s, c = groups[blob[pos] % len(groups)]
            pos += 1
            if hi > lo:
                b = lo + (blob[pos] % (hi - lo + 1) if pos < n else 0)
                pos += 1
            else:
                b = lo
        out.append(b)
    return out.decode("utf-8")


@lru_cache(maxsize=64)
def _counted_moves(info: _Walk) -> dict[tuple[int, int], tuple[bool, tuple[tuple[int, int, int, int], ...]]]:
    """Per (state, counter) met so far: accepting?, and the live groups with their next position."""
    return {}


def from_program(program: Any, step: str, **kwargs: Any) -> st.SearchStrategy[str]:
    """Strings that generation step `step` of a `.dec` program may produce (needs only its tokenizer)."""
    from decc.compiler.plan import plan_gens

    for plan_step in plan_gens(program.plan().steps):
        if plan_step.name == step:
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
            raise SchemaOrderError(f"a $ref outside the schema: {ref}")
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
    for key in ("dependentRequired", "dependentSchemas", "dependencies"):  # json_keywords.dependency_names
        for name, dep in (s.get(key) or {}).items():
            more = dep if isinstance(dep, list) else _order(root, dep) if isinstance(dep, dict) else []
            names += [n for n in [name, *more] if n not in names]
    for n in s.get("required", []):
        if n not in names:
            names.append(n)
    return names


# decc's documented restriction: the schema `true` (any value) means any JSON value at most this deep.
ANY_DEPTH = 3


def _depth(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + max(map(_depth, v.values()), default=0)
    if isinstance(v, list):
        return 1 + max(map(_depth, v), default=0)
    return 0


def _reorder(root: Any, s: Any, v: Any) -> Any:
    if isinstance(v, float):
        if not math.isfinite(v):
            raise SchemaOrderError("not finite: JSON has no such number")
        return int(v) if v.is_integer() else v
    s = _resolve(root, s)
    if s is True and _depth(v) > ANY_DEPTH:
        raise SchemaOrderError(f"a value for `true` nested deeper than decc's {ANY_DEPTH} containers")
    if isinstance(v, list):
        if not isinstance(s, dict):
            return [_reorder(root, True, x) for x in v]
        prefix = s.get("prefixItems", s.get("items") if isinstance(s.get("items"), list) else [])
        rest = (
            s.get("items", True) if not isinstance(s.get("items"), list) else s.get("additionalItems", True)
        )
        return [_reorder(root, prefix[i] if i < len(prefix) else rest, x) for i, x in enumerate(v)]
    if isinstance(v, dict):
        if not isinstance(s, dict):  # `true`: any value, its keys in any order
            return {k: _reorder(root, True, x) for k, x in v.items()}
        if len(v) > 1 and any(k in s for k in ("anyOf", "oneOf")):
            raise SchemaOrderError("several keys under anyOf/oneOf: no single order")
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
    does not distinguish them. Raises `SchemaOrderError` when no single order applies, or when the instance
    is outside what decc writes by design (a value for the schema `true` nested deeper than `ANY_DEPTH`).
    """
    return _reorder(schema, schema, instance)
