"""The compiled subset construction (grammars/automata/subset_c.c) against the Python one it replaces.

Oracle: `dfa.subset_construction`, through `dfa.subset_table(..., native=False)`. Both must give the same
table (the same states numbered in the same order: the order the Python walks each subset's frozenset in),
the same accepting states, and the same limit errors (states, work, deadline). Inputs: random NFAs (epsilon
cycles, runs that coincide, nest or partly overlap, call symbols past the bytes, state numbers large enough
that CPython's set layouts reorder the subsets), random grammars' rules (both rule builders), MaskBench-like
schemas' grammars (benchmarks/schemas) and regexes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from _grammars import fresh_rtn, grammars
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.errors import DeccError
from decc.grammars.automata import dfa
from decc.grammars.contextfree.rtn import RTN
from decc.grammars.errors import GrammarLimitError
from decc.grammars.json.json_schema import compile_json_schema
from decc.grammars.limits import DEFAULT_LIMITS, Limits, check_time, deadline
from decc.grammars.regexes.nfa import NFA, build_nfa
from decc.grammars.regexes.regex_parser import parse_regex

needs_native = pytest.mark.skipif(dfa.compiled is None, reason="subset_c is not built")
SCHEMAS = Path(__file__).resolve().parent.parent / "benchmarks" / "schemas"


def test_the_compiled_construction_is_built_and_used() -> None:
    """`make test` sets DECC_REQUIRE_NATIVE=1: a broken build fails there instead of testing Python twice."""
    if dfa.compiled is None:
        if os.environ.get("DECC_REQUIRE_NATIVE") == "1":
            pytest.fail("subset_c is not built (pip install -e . compiles it; is there a C compiler?)")
        pytest.skip("the C extension subset_c is not built in this install")
    pure = os.environ.get("DECC_PURE_PYTHON", "") not in ("", "0")
    assert dfa.NATIVE != pure


@needs_native
def test_decc_pure_python_turns_the_compiled_construction_off() -> None:
    code = "from decc.grammars.automata import dfa; print(dfa.NATIVE)"
    env = {**os.environ, "DECC_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


def _outcome(
    nfa: NFA, classes: list[int], n_classes: int, limits: Limits, native: bool
) -> tuple[list[list[int]], list[bool]] | str:
    try:
        trans, accepting = dfa.subset_table(nfa, classes, n_classes, limits, "grammar rule", native=native)
    except GrammarLimitError as e:
        return str(e)
    assert trans.dtype == np.int64 and trans.shape == (len(accepting), n_classes)
    return trans.tolist(), accepting.tolist()


def _assert_same(nfa: NFA, classes: list[int], n_classes: int, limits: Limits = DEFAULT_LIMITS) -> None:
    assert _outcome(nfa, classes, n_classes, limits, True) == _outcome(nfa, classes, n_classes, limits, False)


@st.composite
def _classes(draw: st.DrawFn) -> tuple[list[int], int, int]:
    """(symbol -> class, byte classes, callees): runs of bytes, then one class per callee symbol."""
    cuts = sorted(set(draw(st.lists(st.integers(1, 255), max_size=8))))
    classes = [sum(b >= c for c in cuts) for b in range(256)]
    callees = draw(st.integers(0, 3))
    return classes + [len(cuts) + 1 + r for r in range(callees)], len(cuts) + 1, callees


@st.composite
def _nfas(draw: st.DrawFn) -> tuple[NFA, list[int], int]:
    """A random NFA over a random class map. The states that matter are drawn from a few spread over up
    to 300 numbers, so that subsets of several states have CPython set layouts other than sorted order."""
    classes, n_bytes, callees = draw(_classes())
    n = draw(st.integers(1, 300))
    live = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=12, unique=True))
    state = st.sampled_from(live)
    byte_range = st.tuples(st.integers(0, 255), st.sampled_from([0, 0, 1, 7, 60, 255])).map(
        lambda t: (t[0], min(255, t[0] + t[1]))
    )
    symbols = st.one_of(byte_range, st.integers(0, callees - 1).map(lambda r: (256 + r, 256 + r)))
    symbols = symbols if callees else byte_range
    edges: list[list[tuple[int, int, int]]] = [[] for _ in range(n)]
    eps: list[list[int]] = [[] for _ in range(n)]
    for q in live:
        edges[q] = [(lo, hi, t) for (lo, hi), t in draw(st.lists(st.tuples(symbols, state), max_size=4))]
        eps[q] = draw(st.lists(state, max_size=3))  # cycles included
    nfa = NFA(eps, edges, draw(state), draw(state))
    return nfa, classes, n_bytes + callees


@needs_native
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_nfas())
def test_random_nfas_give_the_python_dfa(case: tuple[NFA, list[int], int]) -> None:
    _assert_same(*case)


@needs_native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_nfas(), st.integers(1, 12), st.integers(0, 400))
def test_random_nfas_pass_the_limits_where_the_python_does(
    case: tuple[NFA, list[int], int], max_states: int, max_work: int
) -> None:
    """The same error, with the same state count in its message: the same work, row after row."""
    limits = dataclasses.replace(DEFAULT_LIMITS, max_dfa_states=max_states, max_subset_work=max_work)
    _assert_same(*case, limits)


def _rule_outcome(
    nfa: NFA, callees: list[int], limits: Limits, native: bool
) -> tuple[list[list[int]], list[bool], list[int]] | str:
    try:
        trans, accepting, starts = dfa.rule_subset_table(nfa, callees, limits, native=native)
    except GrammarLimitError as e:
        return str(e)
    assert trans.shape == (len(accepting), len(starts) + len(callees))
    return trans.tolist(), accepting.tolist(), starts


@needs_native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_nfas(), st.lists(st.integers(0, 9), max_size=3, unique=True), st.integers(1, 40), st.booleans())
def test_rule_nfas_give_the_python_classes_and_dfa(
    case: tuple[NFA, list[int], int], callees: list[int], max_states: int, limited: bool
) -> None:
    """`rule_subset_table` (the classes made in C from the edges, callees at 256 + r): the Python's."""
    nfa = case[0]
    callees = sorted(callees)
    calls = [(256 + r, 256 + r) for r in callees]
    for q, out in enumerate(nfa.edges):  # the drawn call symbols renamed to these callees'
        nfa.edges[q] = [
            (*calls[(lo - 256) % len(calls)], t) if lo >= 256 and calls else (lo, min(hi, 255), t)
            for lo, hi, t in out
            if lo < 256 or calls
        ]
    limits = dataclasses.replace(DEFAULT_LIMITS, max_dfa_states=max_states) if limited else DEFAULT_LIMITS
    assert _rule_outcome(nfa, callees, limits, True) == _rule_outcome(nfa, callees, limits, False)


def _rtn_tables(text: str, native: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list, list, list]:
    with monkeypatch.context() as m:
        m.setattr(dfa, "NATIVE", native)
        rtn = fresh_rtn(text).build_all()
    return rtn.table.tolist(), rtn.accepting.tolist(), list(rtn.calls)


@needs_native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammars(lexemes=True))
def test_random_grammars_rules_give_the_python_dfas(text: str) -> None:
    """Every rule of a random grammar (`rule_dfa`'s NFA, calls, trimming) built both ways."""
    with pytest.MonkeyPatch.context() as m:
        assert _rtn_tables(text, True, m) == _rtn_tables(text, False, m)


def _schemas() -> list[str]:
    names = sorted(p.name for p in SCHEMAS.glob("*.json") if p.name.count(".") == 1)
    return names[::3]  # a third of them: about 17 schemas, every kind of rule body


@needs_native
@pytest.mark.parametrize("name", _schemas())
def test_schema_grammars_rules_give_the_python_dfas(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rule of a MaskBench-like schema's grammar (property chains, shared tails, nested objects)."""
    schema = json.loads((SCHEMAS / name).read_text())
    try:
        grammar = compile_json_schema(schema, engine="grammar")
    except DeccError:
        pytest.skip("not compiled to a grammar")
    rtns = []
    for native in (True, False):
        monkeypatch.setattr(dfa, "NATIVE", native)
        rtns.append(RTN(grammar).build_all())
    a, b = rtns
    assert a.table.tolist() == b.table.tolist() and a.accepting.tolist() == b.accepting.tolist()
    assert list(a.calls) == list(b.calls)


@needs_native
@pytest.mark.parametrize(
    "pattern",
    [
        r"[a-m]x|[h-z]y",
        r"(a|[a-c]b|[b-d]c)*d",
        r"[\x00-\x7f]*z[a-y]|[^z]+",
        r"(ab|a[b-f]|[a-c]f)+",
        r"",
        r"\w+@\w+",
    ],
)
def test_regex_dfas_are_the_python_ones(pattern: str) -> None:
    nfa = build_nfa(parse_regex(pattern), DEFAULT_LIMITS)
    got = dfa.subset_table(nfa, list(range(256)), 256, DEFAULT_LIMITS, native=True)
    expected = dfa.subset_table(nfa, list(range(256)), 256, DEFAULT_LIMITS, native=False)
    assert got[0].tolist() == expected[0].tolist() and got[1].tolist() == expected[1].tolist()


@needs_native
def test_an_exploding_regex_is_refused_with_the_python_message() -> None:
    nfa = build_nfa(parse_regex("(a|b)*a(a|b){14}"), DEFAULT_LIMITS)
    messages = []
    for native in (True, False):
        limits = dataclasses.replace(DEFAULT_LIMITS, max_dfa_states=2000)
        with pytest.raises(GrammarLimitError) as err:
            dfa.subset_table(nfa, list(range(256)), 256, limits, native=native)
        messages.append((str(err.value), err.value.hints))
    assert messages[0] == messages[1] and "regex too complex: its DFA grows past 2,0" in messages[0][0]


def _chain(n: int) -> NFA:
    """A chain of n + 1 DFA states (one byte each)."""
    return NFA([[] for _ in range(n + 1)], [[(97, 97, q + 1)] for q in range(n)] + [[]], 0, n)


@needs_native
def test_the_deadline_is_checked_every_64_rows() -> None:
    calls: list[str] = []
    n, table, accepting = dfa.compiled.subset_table(
        [[]] * 201, _chain(200).edges, 0, 200, list(range(256)), 256, 10**6, 10**9, calls.append, "msg"
    )
    assert n == 201 and len(table) == 201 * 256 * 8 and list(accepting) == [0] * 200 + [1]
    assert calls == ["msg"] * 4  # rows 0, 64, 128, 192


@needs_native
def test_a_passed_deadline_stops_both_alike() -> None:
    nfa = _chain(100)
    messages = []
    for native in (True, False):
        with deadline(1e-9):
            time.sleep(0.001)  # (so that the deadline has passed)
            with pytest.raises(GrammarLimitError) as err:
                dfa.subset_table(nfa, list(range(256)), 256, DEFAULT_LIMITS, native=native)
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "building the DFA took longer" in messages[0]
    check_time("outside a deadline")  # (no limit left running)


@needs_native
def test_errors_free_what_they_built() -> None:
    """An exception from the deadline callback, or from malformed input, leaks no memory (PyMem_* blocks
    are traced by tracemalloc)."""

    def stop(_: str) -> None:
        if len(seen) == 1:
            raise KeyError("stop")
        seen.append(1)

    nfa = _chain(150)
    bad = NFA([[]] * 3, [[(0, 0, 1)], [(5, 2, 2)], []], 0, 2)  # a range backwards
    seen: list[int] = []

    def run() -> None:
        seen.clear()
        try:
            dfa.compiled.subset_table(
                nfa.eps, nfa.edges, 0, 150, list(range(256)), 256, 10**6, 10**9, stop, ""
            )
        except KeyError:
            pass
        try:
            dfa.compiled.subset_table(bad.eps, bad.edges, 0, 2, list(range(256)), 256, 10**6, 10**9, len, "")
        except ValueError:
            pass

    for _ in range(20):
        run()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(300):
            run()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000  # a leak would be 300 times a call's tables (its table alone is 300 KB)


@needs_native
@pytest.mark.parametrize(
    "args",
    [
        ([[]], [[(0, 0)]], 0, 0),  # an edge of two numbers
        ([[]], [[(0, 0, 1)]], 0, 0),  # a target out of range
        ([[5]], [[]], 0, 0),  # an epsilon target out of range
        ([[]], [[(0, 300, 0)]], 0, 0),  # a symbol past the class map
        ([[]], [[]], 1, 0),  # a start out of range
        ([[]], [[], []], 0, 0),  # eps and edges of different lengths
        ([None], [[]], 0, 0),
    ],
)
def test_malformed_input_is_refused(args: tuple) -> None:
    with pytest.raises((ValueError, TypeError)):
        dfa.compiled.subset_table(*args, list(range(256)), 256, 10, 10, len, "")
