"""Byte-level DFA: subset construction over byte classes, Moore minimization in numpy, dead-state removal.

Every state of a `ByteDFA` can still reach an accepting state, so "the walk has not died" also means "the
text so far can still be completed": that is what lets the token automaton allow a token by walking it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import GrammarLimitError
from ..limits import DEFAULT_LIMITS, Limits, check_time, deadline
from ..native import use_native
from ..regexes.nfa import NFA, build_nfa
from ..regexes.regex_parser import parse_regex

try:
    from . import subset_c as compiled
except ImportError:  # pragma: no cover - no C compiler at install
    compiled = None

# The compiled subset construction (subset_c.c, built by `pip install`, optional) where built and not turned
# off (`DECC_PURE_PYTHON=1`, read at import); `subset_construction` stays the fallback and the tests' oracle.
NATIVE = use_native(compiled)

DEAD = -1


@dataclass(frozen=True, eq=False)
class ByteDFA:
    """`transitions[s, b]` is the next state on byte `b` (or -1); states are numbered from `start` = 0.

    The empty language has no states at all and `start` = -1: the walk is dead before it begins.

    A DFA may carry counters: the states of a counted segment (a length-bounded JSON string body, kept as a
    loop rather than unrolled) have `seg[s]` = its label, `bounds[label]` = (min, max) characters. The
    position is then (state, counter): a byte with `tick[s, b]` starts a character (counter + 1), leaving
    the segment needs min <= counter <= max, entering it starts the counter at 0, and `live[s][c]` says
    whether the segment can still be left within bounds from state s with counter c. Without segments the
    counter stays 0 and everything is a plain DFA.
    """

    transitions: np.ndarray  # int32 [n_states, 256]
    accepting: np.ndarray  # bool [n_states]
    start: int = 0
    seg: np.ndarray | None = None  # int32 [n_states]: counted segment label, -1 outside any
    tick: np.ndarray | None = None  # bool [n_states, 256]: the byte starts a counted character
    bounds: tuple[tuple[int, int], ...] = ()
    live: Mapping[int, np.ndarray] = field(default_factory=dict)  # segment state -> bool [max + 1]
    # What the optimizer passes (automata.py) may still do: a product keeps its dead pairs (trimmed=False:
    # states that cannot reach acceptance, which break the invariant above until `trim`); a DFA built with
    # `minimal=False` may have equivalent states (`minimize` merges them).
    trimmed: bool = True
    minimal: bool = True

    @property
    def n_states(self) -> int:
        return int(self.transitions.shape[0])

    @property
    def has_counters(self) -> bool:
        return bool(self.bounds)

    def step(self, state: int, data: bytes) -> int:
        """The state after reading `data` from `state`, or -1 once the walk dies (counters ignored)."""
        table = self.transitions
        for b in data:
            if state < 0:
                return DEAD
            state = int(table[state, b])
        return state

    def advance(self, state: int, counter: int, data: bytes) -> tuple[int, int]:
        """(state, counter) after reading `data`, or (-1, 0) once the walk dies; counters honoured."""
        if not self.bounds:
            return self.step(state, data), 0
        table, seg, tick, live = self.transitions, self.seg, self.tick, self.live
        for b in data:
            if state < 0:
                return DEAD, 0
            nxt = int(table[state, b])
            if nxt < 0:
                return DEAD, 0
            s1, s2 = int(seg[state]), int(seg[nxt])
            if s1 >= 0 and s1 == s2:
                counter += int(tick[state, b])
            else:
                if s1 >= 0 and not (self.bounds[s1][0] <= counter <= self.bounds[s1][1]):
                    return DEAD, 0
                counter = int(tick[state, b]) if s2 >= 0 else 0
            if s2 >= 0:
                row = live[nxt]
                if counter >= len(row) or not row[counter]:
                    return DEAD, 0
            state = nxt
        return state, counter

    def is_accepting(self, state: int, counter: int = 0) -> bool:
        if state < 0 or not self.accepting[state]:
            return False
        s = -1 if self.seg is None else int(self.seg[state])
        return s < 0 or self.bounds[s][0] <= counter <= self.bounds[s][1]

    def accepts(self, data: bytes) -> bool:
        state, counter = self.advance(self.start, 0, data)
        return self.is_accepting(state, counter)

    def is_empty(self) -> bool:
        """True when the language is empty (the regex matches no string)."""
        return self.n_states == 0


@lru_cache(maxsize=256)
def compile_regex(pattern: str, limits: Limits = DEFAULT_LIMITS, minimal: bool = True) -> ByteDFA:
    """The minimal byte DFA for full matches of `pattern` (Python `re` syntax, `re.ASCII` shorthands);
    with `minimal=False` the subset construction's DFA, trimmed but not minimized (the optimizer's input)."""
    with deadline(limits.max_seconds):
        return dfa_from_nfa(build_nfa(parse_regex(pattern), limits), limits, minimal)


def dfa_from_nfa(nfa: NFA, limits: Limits = DEFAULT_LIMITS, minimal: bool = True) -> ByteDFA:
    with gc_paused():
        return _dfa_from_nfa(nfa, limits, minimal)


class gc_paused:  # noqa: N801 (used as a function: `with gc_paused():`)
    """Pause the cyclic garbage collector (if on) for the duration.

    The subset construction makes many small containers that live on (subsets, runs) and no cyclic garbage,
    yet each allocation burst sets off collections that re-walk the whole NFA: up to 40% of the time. A
    class, not a generator context manager: that costs ~0.8 us a use, a good part of a small rule build or
    of a mask step (RTN.enter, CFGConstraint.mask), this ~0.25 us.
    """

    __slots__ = ("enabled",)

    def __enter__(self) -> None:
        self.enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            gc.enable()


def _dfa_from_nfa(nfa: NFA, limits: Limits, minimal: bool = True) -> ByteDFA:
    byte_class, n_classes = _byte_classes(nfa)
    if nfa.seg_of:  # counted DFAs are minimized as they are built (segment labels refine the partition)
        from .counters import counted_dfa

        return counted_dfa(nfa, byte_class, n_classes, limits)
    trans, accepting = subset_table(nfa, byte_class, n_classes, limits)
    if not minimal:
        from .automata import trim_table

        trans, accepting = trim_table(trans, accepting)
        full = np.ascontiguousarray(trans[:, byte_class], dtype=np.int32)
        full.setflags(write=False)
        accepting.setflags(write=False)
        return ByteDFA(full, accepting, 0 if len(accepting) else DEAD, minimal=False)
    trans, accepting = minimize_table(trans, accepting)
    full = np.ascontiguousarray(trans[:, byte_class], dtype=np.int32)
    full.setflags(write=False)
    accepting.setflags(write=False)
    return ByteDFA(full, accepting, 0 if len(accepting) else DEAD)


def _byte_classes(nfa: NFA) -> tuple[np.ndarray, int]:
    """Map bytes to classes that no NFA edge tells apart, so the subset construction works per class."""
    points = {x for edges in nfa.edges for lo, hi, _ in edges for x in (lo, hi + 1)}  # (numpy item writes
    points.add(0)  # cost more per edge)
    cuts = np.zeros(257, dtype=bool)
    cuts[list(points)] = True
    byte_class = np.cumsum(cuts[:256]).astype(np.int64) - 1
    return byte_class, int(byte_class[-1]) + 1


def epsilon_closure(
    eps: Sequence[Sequence[int]], important: Sequence[bool]
) -> tuple[Callable[[int], frozenset[int]], list[frozenset[int] | None]]:
    """A memoized map from an NFA state to the "important" states reachable from it by epsilon edges, and
    its memo (indexed by state, None until asked: a hot loop reads it before calling).

    Subset construction only needs those (states with real edges, or accepting).
    """
    closures: list[frozenset[int] | None] = [None] * len(eps)

    def closure(t: int) -> frozenset[int]:
        found = closures[t]
        if found is None and not eps[t]:  # the common case: a state with byte edges only
            found = closures[t] = frozenset((t,)) if important[t] else frozenset()
        elif found is None:
            seen = {t}
            stack = [t]
            while stack:
                for u in eps[stack.pop()]:
                    if u not in seen:
                        seen.add(u)
                        stack.append(u)
            found = closures[t] = frozenset(u for u in seen if important[u])
        return found

    return closure, closures


def subset_construction(
    nfa: NFA, byte_class: np.ndarray | list[int], n_classes: int, limits: Limits, what: str = "regex"
) -> tuple[np.ndarray, np.ndarray, list[frozenset[int]]]:
    """Subset construction; DFA states are frozensets of "important" NFA states (byte edges or accept).

    Returns (transitions over byte classes, accepting, each DFA state's NFA subset); the subsets let the
    counted-segment analysis (counters.py) see which NFA states a DFA state stands for.

    Most DFA states of schema rules stand for one NFA state (a property name is a chain): such a row is that
    state's runs, prepared once per NFA state with the work it counts, so only its targets are looked up.
    """
    eps = nfa.eps
    important = [bool(edges) for edges in nfa.edges]
    important[nfa.accept] = True
    for q in nfa.seg_of:  # a counted state without byte edges still says the segment goes on to here
        important[q] = True
    closure, memo = epsilon_closure(eps, important)

    # prepared[s]: (runs, the classes they cover as bits or -1 when two runs share a class, the work of a
    # row of `s` alone, its target NFA states), made on first use. A run is (first class, last class + 1,
    # closure of the target), in edge order: the order new subsets are numbered in.
    classes = byte_class if isinstance(byte_class, list) else byte_class.tolist()
    edges = nfa.edges
    prepared: list[tuple[list[_Run], int, int, set[int]] | None] = [None] * len(edges)
    start = closure(nfa.start)
    ids: dict[frozenset[int], int] = {start: 0}
    sets = [start]
    filled: list[int] = []  # (flat index into the table, length, target state) per filled run of a row
    work = 0
    max_states, max_work = limits.max_dfa_states, limits.max_subset_work
    i = 0
    while i < len(sets):
        if not i & 63:
            check_time("building the DFA")
        subset = sets[i]
        base = i * n_classes
        if len(subset) == 1 and start:  # (an empty start subset is a state: only `_intern` knows it)
            (s,) = subset
            found = prepared[s]
            if found is None:
                found = prepared[s] = _prepare(edges[s], classes, closure, memo)
            items, covered, own, _ = found  # the runs of one state, their work prepared: no union to build
        else:
            items = []
            covered = 0  # the classes of the runs so far as bits; -1 once two runs share a class
            own = 0
            targets = []
            for s in subset:
                found = prepared[s]
                if found is None:
                    found = prepared[s] = _prepare(edges[s], classes, closure, memo)
                items += found[0]
                bits = found[1]
                if covered >= 0:
                    covered = -1 if bits < 0 or covered & bits else covered | bits
                own += found[2]
                targets.append(found[3])
            if covered >= 0:
                union = frozenset().union(*targets)
                if len(union) < sum(map(len, targets)):  # a target shared by two states counts once
                    own = sum(hi - lo for lo, hi, _ in items) + sum(len(closure(t)) for t in union)
        if covered >= 0:  # no class has two runs (the usual case): each run goes to its target's subset
            work += own
            for lo, hi, target in items:
                d = ids.get(target)
                if d is None:
                    if not target:
                        continue
                    d = ids[target] = len(sets)
                    sets.append(target)
                filled += (base + lo, hi - lo, d)
        else:
            work += _overlapping_row(items, base, filled, ids, sets)
        i += 1
        if len(sets) > max_states or work > max_work:
            raise _too_complex(len(sets), limits, what)
    trans = np.full(len(sets) * n_classes, DEAD, dtype=np.int64)
    if filled:
        at, length, target = np.array(filled, dtype=np.int64).reshape(-1, 3).T
        ends = np.cumsum(length)
        trans[np.repeat(at - ends + length, length) + np.arange(ends[-1])] = np.repeat(target, length)
    trans = trans.reshape(len(sets), n_classes)
    accept = nfa.accept
    accepting = np.array([accept in s for s in sets], dtype=bool)
    return trans, accepting, sets


def subset_table(
    nfa: NFA,
    byte_class: np.ndarray | list[int],
    n_classes: int,
    limits: Limits,
    what: str = "regex",
    native: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`subset_construction`'s table and accepting states, for callers that do not need the subsets:
    compiled (subset_c.c: the same states, numbering, work and limits) where built (`native`; None:
    `NATIVE`), else the Python. Counted NFAs (`seg_of`) take the Python."""
    if not (NATIVE if native is None else native) or nfa.seg_of or compiled is None:
        trans, accepting, _ = subset_construction(nfa, byte_class, n_classes, limits, what)
        return trans, accepting
    classes = byte_class if isinstance(byte_class, list) else byte_class.tolist()
    n, table, accepting = compiled.subset_table(
        nfa.eps,
        nfa.edges,
        nfa.start,
        nfa.accept,
        classes,
        n_classes,
        limits.max_dfa_states,
        limits.max_subset_work,
        check_time,
        "building the DFA",
    )
    if table is None:
        raise _too_complex(n, limits, what)
    trans = np.frombuffer(table, dtype=np.int64).reshape(n, n_classes)
    return trans, np.frombuffer(accepting, dtype=bool)


def rule_subset_arrays(
    eps: list[list[int]],
    edges: list[list[tuple[int, int, int]]],
    start: int,
    accept: int,
    callees: list[int],
    limits: Limits,
    native: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """`rule_subset_table` of an NFA given as its lists: compiled, no NFA object made (`RTN._build`: a
    dataclass with three default containers costs a few microseconds per rule), else in Python."""
    if not ((NATIVE if native is None else native) and compiled is not None):
        return rule_subset_table(NFA(eps, edges, start, accept), callees, limits, native=False)
    (n, table, accepting), starts = compiled.rule_table(
        eps,
        edges,
        start,
        accept,
        callees,
        limits.max_dfa_states,
        limits.max_subset_work,
        check_time,
        "building the DFA",
    )
    if table is None:
        raise _too_complex(n, limits, "grammar rule")
    trans = np.frombuffer(table, dtype=np.int64).reshape(n, len(starts) + len(callees))
    return trans, np.frombuffer(accepting, dtype=bool), starts


def rule_subset_table(
    nfa: NFA, callees: list[int], limits: Limits, native: bool | None = None
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """A grammar rule's `subset_table` over its own symbol classes: bytes cut wherever an edge's range starts
    or ends, then one class per callee (symbol 256 + r, `callees` sorted). Returns (table, accepting, the
    first byte of each byte class). Compiled (`native`; None: `NATIVE`), classes included, else in Python."""
    if (NATIVE if native is None else native) and compiled is not None:
        return rule_subset_arrays(nfa.eps, nfa.edges, nfa.start, nfa.accept, callees, limits, native=True)
    # Where a class starts (a Python set: numpy item writes cost more per edge; call edges, symbols 256 + r,
    # only add points past the bytes, dropped here), as plain lists (a rule's few classes cost less in
    # Python than in numpy calls)
    points = {x for edges in nfa.edges for lo, hi, _ in edges for x in (lo, hi + 1)}
    points.add(0)
    starts = sorted(x for x in points if x < 256)
    widths = [hi - lo for lo, hi in zip(starts, [*starts[1:], 256], strict=True)]
    n_classes = len(starts)
    symbol_class = [k for k, w in enumerate(widths) for _ in range(w)]  # byte -> class
    if callees:  # then one class per callee, at symbol 256 + r
        symbol_class += [0] * (callees[-1] + 1)
        for k, c in enumerate(callees):
            symbol_class[256 + c] = n_classes + k
    trans, accepting = subset_table(
        nfa, symbol_class, n_classes + len(callees), limits, "grammar rule", native=False
    )
    return trans, accepting, starts


def _too_complex(n_states: int, limits: Limits, what: str) -> GrammarLimitError:
    """The error of a subset construction past `limits` (with `n_states` states so far)."""
    return GrammarLimitError(
        f"{what} too complex: its DFA grows past {n_states:,} states "
        f"(limits: {limits.max_dfa_states:,} states, {limits.max_subset_work:,} work)"
        + (" before the construction finishes" if what == "regex" else ""),
        hints=["nested or overlapping repeats (like (a|b)*a(a|b){20}) make DFAs explode"]
        if what == "regex"
        else [],
    )


def _prepare(
    edges: list[tuple[int, int, int]],
    classes: list[int],
    closure: Callable[[int], frozenset[int]],
    memo: list[frozenset[int] | None],
) -> tuple[list[_Run], int, int, set[int]]:
    """One NFA state's runs, their classes as bits (-1 when two share a class), the work a row of this
    state alone counts (each run's width, and the size of each distinct target: targets are distinct
    exactly when their NFA states are, as `closure` keeps one set per state), and the target NFA states."""
    runs = []
    bits = 0
    work = 0
    seen = set()
    for lo, hi, t in edges:
        target = memo[t]
        if target is None:
            target = closure(t)
        a, b = classes[lo], classes[hi] + 1
        runs.append((a, b, target))
        here = (1 << b) - (1 << a)
        bits = -1 if bits & here else bits | here  # stays -1 once set (-1 & here is here)
        work += b - a
        if t not in seen:
            seen.add(t)
            work += len(target)
    return runs, bits, work, seen


_Run = tuple[int, int, frozenset[int]]


def _intern(target: frozenset[int], ids: dict[frozenset[int], int], sets: list[frozenset[int]]) -> int:
    """The DFA state of NFA subset `target` (DEAD for the empty one), numbered on first sight."""
    if not target:
        return DEAD
    d = ids.get(target)
    if d is None:
        d = ids[target] = len(sets)
        sets.append(target)
    return d


def _overlapping_row(
    items: list[_Run],
    base: int,
    filled: list[int],
    ids: dict[frozenset[int], int],
    sets: list[frozenset[int]],
) -> int:
    """One row where runs overlap: each stretch of classes between run ends goes to the union of its runs.

    Appends (base + first class, length, target) to `filled`; subsets met for the first time get the next
    ids (and go into `sets`), stretches taken in the order their classes first occur along `items`, as a
    class-by-class scan would. Returns the work: each (class, run) pair and the size of each distinct
    target built.
    """
    groups: dict[tuple[int, int], list[frozenset[int]]] = {}
    covered = 0
    for lo, hi, target in items:
        found = groups.get((lo, hi))
        if found is not None:
            found.append(target)
            continue
        bits = (1 << hi) - (1 << lo)
        if covered & bits:  # a partial overlap: the general way below
            break
        covered |= bits
        groups[(lo, hi)] = [target]
    else:  # runs overlap only where they coincide: each distinct range is one stretch, in first-run order
        return _coinciding_row(groups, base, filled, ids, sets)
    cuts = sorted({x for lo, hi, _ in items for x in (lo, hi)})
    at = {x: j for j, x in enumerate(cuts)}
    parts: list[list[frozenset[int]]] = [[] for _ in cuts]
    first = [0] * len(cuts)
    for n, (lo, hi, target) in enumerate(items):
        for j in range(at[lo], at[hi]):
            if not parts[j]:
                first[j] = n
            parts[j].append(target)
    work = 0
    memo: dict[tuple[int, ...], int] = {}
    for _, j in sorted((first[j], j) for j in range(len(cuts) - 1) if parts[j]):
        here = parts[j]
        lo, width = cuts[j], cuts[j + 1] - cuts[j]
        work += width * len(here)
        key = tuple(map(id, here))
        d = memo.get(key)
        if d is None:
            target = here[0] if len(here) == 1 else frozenset().union(*here)
            work += len(target)
            d = memo[key] = _intern(target, ids, sets)
        if d != DEAD:
            filled += (base + lo, width, d)
    return work


def _coinciding_row(
    groups: dict[tuple[int, int], list[frozenset[int]]],
    base: int,
    filled: list[int],
    ids: dict[frozenset[int], int],
    sets: list[frozenset[int]],
) -> int:
    """`_overlapping_row` where the row's distinct class ranges are disjoint (runs that overlap share their
    range: a property name's next byte and the same byte in a key automaton): the same stretches, order,
    subsets and work, without the cut points."""
    work = 0
    memo: dict[tuple[int, ...], int] = {}
    for (lo, hi), here in groups.items():
        width = hi - lo
        work += width * len(here)
        if len(here) == 1:
            target = here[0]
            key: tuple[int, ...] = (id(target),)
        else:
            key = tuple(map(id, here))
            target = None  # type: ignore[assignment]
        d = memo.get(key)
        if d is None:
            if target is None:
                target = frozenset().union(*here)
            work += len(target)
            d = memo[key] = _intern(target, ids, sets)
        if d != DEAD:
            filled += (base + lo, width, d)
    return work


def minimize_table(
    trans: np.ndarray, accepting: np.ndarray, labels: np.ndarray | None = None, reps: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Coarsest partition with an explicit dead state, then drop the dead block and renumber.

    In a minimal DFA every state that cannot reach acceptance is equivalent to the dead state, so removing
    the dead block is exactly removing the states from which no match is possible. `labels` (optional)
    refines the initial partition: states with different labels are never merged; label 0 must mean
    "nothing special" (the dead state gets it). `reps`, if given, receives each new state's old state
    (the lowest-numbered member of its block).
    """
    n, k = trans.shape
    dead = n
    table = np.vstack([np.where(trans < 0, dead, trans), np.full((1, k), dead, dtype=trans.dtype)])
    acc = np.append(accepting, False)
    key = acc.astype(np.int64)
    if labels is not None:
        key += np.append(labels, 0).astype(np.int64) * 2
    block, first = moore_hashed(trans, key)
    if not _is_stable(table, key, block, first):  # a hash collision merged states (never seen): redo exactly
        block, first = moore_exact(table, key)
    return _renumber(table, acc, block, first, dead, reps)


@lru_cache(maxsize=8)
def _weights(size: int) -> np.ndarray:
    """Odd random 64-bit weights, one per symbol class and one more for a state's own block: at least 258
    (bytes), more for grammar rules whose columns are byte classes plus one per callee."""
    rng = np.random.default_rng(0x5EED)
    return rng.integers(1, 1 << 63, size=max(size, 258), dtype=np.uint64) * np.uint64(2) + 1


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, so that the per-round sums below do not collide in structured ways."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def moore_hashed(trans: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Moore's refinement in numpy, each round's blocks named by a 64-bit hash of (own block, successors).

    A state's hash is a linear sum over classes of weight * (successor's hash - dead state's hash), so a
    missing edge and an edge into a dead-equivalent state count alike, and it only needs the few distinct
    (state, successor) pairs (a class-weight sum each) rather than the full [n, classes] table: far fewer
    entries, and Moore's many rounds (long chains refine one step per round) stay cheap. The caller checks
    the result exactly. Returns each state's block (the dead state is index n) and each block's lowest state.
    """
    n, k = trans.shape
    src, cls = np.nonzero(trans >= 0)
    dst = trans[src, cls]
    pair = src.astype(np.int64) * (n + 1) + dst
    order = np.argsort(pair, kind="stable")
    pair, cls = pair[order], cls[order]
    starts = np.flatnonzero(np.diff(pair, prepend=-1))
    weights = _weights(k + 1)
    weight = np.add.reduceat(weights[cls], starts) if len(starts) else np.zeros(0, dtype=np.uint64)
    p_src, p_dst = pair[starts] // (n + 1), pair[starts] % (n + 1)
    s_starts = np.flatnonzero(np.diff(p_src, prepend=-1))
    owners = p_src[s_starts]
    own = weights[k]
    lab = _mix(key.astype(np.uint64))
    count = len(np.unique(lab))
    rounds = 0
    while True:
        check_time("minimizing the DFA")  # a chain of n states refines one state per round: n rounds
        contrib = weight * (lab[p_dst] - lab[n])
        lab = lab * own
        if len(owners):
            lab[owners] += np.add.reduceat(contrib, s_starts)
        lab = _mix(lab)
        rounds += 1
        if rounds % 4 == 0:  # counting blocks costs a sort: look every few rounds (extra rounds are harmless)
            srt = np.sort(lab)
            new_count = int(np.count_nonzero(srt[1:] != srt[:-1])) + 1
            if new_count == count:
                break
            count = new_count
    _, first, block = np.unique(lab, return_index=True, return_inverse=True)
    return block.reshape(-1), first


def _is_stable(table: np.ndarray, key: np.ndarray, block: np.ndarray, first: np.ndarray) -> bool:
    """Whether each block's members share the initial key and, per class, their successors' block."""
    rep = first[block]
    s = np.flatnonzero(rep != np.arange(len(block)))
    return bool((key[s] == key[rep[s]]).all() and (block[table[s]] == block[table[rep[s]]]).all())


def moore_exact(table: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plain Moore refinement on whole rows (the hash-free fallback), same result as `moore_hashed`."""
    block = np.unique(key, return_inverse=True)[1].reshape(-1)
    count = int(block.max()) + 1
    while True:
        check_time("minimizing the DFA")
        rows = np.column_stack([block, block[table]])
        uniq, first, block = np.unique(rows, axis=0, return_index=True, return_inverse=True)
        block = block.reshape(-1)
        if len(uniq) == count:
            return block, first
        count = len(uniq)


def _renumber(
    table: np.ndarray,
    acc: np.ndarray,
    block: np.ndarray,
    rep: np.ndarray,
    dead: int,
    reps: list[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Breadth-first numbering of the live blocks from the start state's block, dead block mapped to -1.

    `rep[b]` is block b's lowest-numbered state, which stands for it. The queue walks only each block's
    distinct live successors in order of first appearance along its row (a few per block, not one per class).
    """
    k = table.shape[1]
    nb = len(rep)
    dead_block, start_block = int(block[dead]), int(block[0])
    if start_block == dead_block:  # empty language: no live state at all
        return np.zeros((0, k), dtype=np.int64), np.zeros(0, dtype=bool)
    succ = block[table[rep]]
    # (block, successor) pairs, once each, ordered by block and then first column: a compact adjacency.
    pair = (np.arange(nb)[:, None] * nb + succ).reshape(-1)
    pair, col = np.unique(pair, return_index=True)
    keep = pair % nb != dead_block
    pair, col = pair[keep], col[keep]
    order = np.lexsort((col, pair // nb))
    targets = (pair[order] % nb).tolist()
    ptr = np.searchsorted(pair[order] // nb, np.arange(nb + 1)).tolist()
    number = [DEAD] * nb
    number[start_block] = 0
    queue = [start_block]
    for b in queue:  # the list grows while it is walked: a FIFO queue
        for t in targets[ptr[b] : ptr[b + 1]]:
            if number[t] < 0:
                number[t] = len(queue)
                queue.append(t)
    bfs = np.array(queue)
    out = np.array(number, dtype=np.int64)[succ[bfs]]
    accepting = acc[rep[bfs]]
    if reps is not None:
        reps[:] = rep[bfs].tolist()
    return out, accepting
