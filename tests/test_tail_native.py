"""The compiled rule NFA builder (grammars/contextfree/tail_c.c) against the Python `_TailBuilder` it replaces,
and its `spread` (a rule's DFA written into the RTN) against `rtn._spread`.

Oracle: `rtn.tail_nfa(..., native=False)`. Both must give the same NFA state for state: the same states in
the same order, each one's epsilon targets and edges in the same order, the same callees and `maybe_dead`,
and so the same sharing of repeated tails (one entry state per subtree object and state after it). Inputs:
random rule bodies (test_rule_dfa's, with wider code-point sets for the UTF-8 splits, precompiled automata,
subtrees recurring as the same objects), random grammars' rules, and every rule of the MaskBench-like
schemas' grammars (benchmarks/schemas), whose RTNs must come out identical too (tables and lists).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _grammars import fresh_rtn, grammars
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_rule_dfa import INDEX, automata, extend_bodies, leaves, shared_tails

from decc.errors import DeccError
from decc.grammars.contextfree import rtn
from decc.grammars.contextfree.cfg_grammar import EMPTY_LANGUAGE, Call, Lexeme
from decc.grammars.errors import GrammarLimitError
from decc.grammars.json.json_schema import compile_json_schema
from decc.grammars.limits import DEFAULT_LIMITS
from decc.grammars.regexes.regex_ast import Alt, Automaton, CharSet, Concat, Repeat, normalize

needs_native = pytest.mark.skipif(rtn.compiled is None, reason="tail_c is not built")
SCHEMAS = Path(__file__).resolve().parent.parent / "benchmarks" / "schemas"


def test_the_compiled_builder_is_built_and_used() -> None:
    """`make test` sets DECC_REQUIRE_NATIVE=1: a broken build fails there instead of testing Python twice."""
    if rtn.compiled is None:
        if os.environ.get("DECC_REQUIRE_NATIVE") == "1":
            pytest.fail("tail_c is not built (pip install -e . compiles it; is there a C compiler?)")
        pytest.skip("the C extension tail_c is not built in this install")
    pure = os.environ.get("DECC_PURE_PYTHON", "") not in ("", "0")
    assert rtn.NATIVE != pure


@needs_native
def test_decc_pure_python_turns_the_compiled_builder_off() -> None:
    code = "from decc.grammars.contextfree import rtn; print(rtn.NATIVE)"
    env = {**os.environ, "DECC_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


def _automata(node: object) -> Iterator[Automaton]:
    if isinstance(node, Automaton):
        yield node
    for item in getattr(node, "items", ()):
        yield from _automata(item)
    if isinstance(node, Repeat):
        yield from _automata(node.item)


def _forget(node: object) -> list[bool | None]:
    """The `all_coreachable` each automaton of `node` kept (None: none), then forgotten."""
    return [a.__dict__.pop("_all_coreachable", None) for a in _automata(node)]


def _nfa(body: object, index: dict[str, int], native: bool) -> tuple:
    nfa, callees, maybe_dead = rtn.tail_nfa(body, index, native=native)
    return nfa.eps, nfa.edges, nfa.start, nfa.accept, callees, maybe_dead


def _same_nfa(body: object, index: dict[str, int]) -> None:
    """Both builders' NFAs of `body`, each with nothing kept on its automata (the compiled one first: it
    must keep what the Python's `all_coreachable` keeps)."""
    _forget(body)
    fast = _nfa(body, index, True)
    kept = _forget(body)
    slow = _nfa(body, index, False)
    assert fast == slow
    assert kept == _forget(body)


# Code-point sets of every UTF-8 length, so that the split's shared suffixes and the surrogate gap show up.
POINTS = st.one_of(
    st.integers(0, 0x7F), st.integers(0x80, 0x7FF), st.integers(0x800, 0xFFFF), st.integers(0x10000, 0x10FFFF)
)
wide_sets = st.lists(st.tuples(POINTS, POINTS), min_size=1, max_size=4).map(
    lambda rs: CharSet(normalize((min(a, b), max(a, b)) for a, b in rs))
)
wide_bodies = st.recursive(st.one_of(leaves, automata, wide_sets), extend_bodies, max_leaves=10)


@needs_native
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(wide_bodies, shared_tails()))
def test_random_bodies_give_the_python_nfa(body: object) -> None:
    _same_nfa(body, INDEX)


@needs_native
@settings(max_examples=100, deadline=None)
@given(wide_bodies, st.integers(0, 3), st.sampled_from([None, 0, 1, 3]))
def test_repeats_of_shared_subtrees_give_the_python_nfa(body: object, lo: int, extra: int | None) -> None:
    """A subtree repeated (bounded, unbounded) and met again after the repeat: the memo's sharing."""
    rep = Repeat(body, lo, None if extra is None else lo + extra)
    _same_nfa(Alt((Concat((rep, body)), Concat((body, rep, body)), rep)), INDEX)


@needs_native
def test_a_large_automaton_and_charset_give_the_python_nfa() -> None:
    n = 300
    edges = tuple((s, 97 + s % 3, 99, (s * 7 + 1) % n) for s in range(n))
    dead = Automaton(n + 1, 0, frozenset(range(0, n, 5)), edges)  # state n reaches nothing
    body = Concat((dead, CharSet(((0x20, 0xD7FF), (0xE000, 0x10FFFF))), Call("y"), dead, Call("x")))
    _same_nfa(body, INDEX)
    assert _nfa(body, INDEX, True)[-1] is True  # maybe dead (the automaton's state n)


@needs_native
def test_errors_are_the_python_ones() -> None:
    for native in (True, False):
        with pytest.raises(KeyError):
            rtn.tail_nfa(Concat((CharSet(((97, 97),)), Call("nowhere"))), INDEX, native=native)
        with pytest.raises(TypeError):
            rtn.tail_nfa(Concat((CharSet(((97, 97),)), "not a node")), INDEX, native=native)


@needs_native
def test_a_body_nested_too_deep_is_refused_as_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recursion counts against Python's limit: a RecursionError, then `rule_dfa`'s nesting check."""
    body: object = CharSet(((97, 97),))
    for _ in range(sys.getrecursionlimit() + 100):
        body = Concat((body, CharSet(((98, 98),))))
    for native in (True, False):
        monkeypatch.setattr(rtn, "NATIVE", native)
        with pytest.raises(GrammarLimitError, match="nested too deep"):
            rtn.rule_dfa(body, INDEX, DEFAULT_LIMITS)


def _tables(r: rtn.RTN) -> tuple[list, ...]:
    """Everything `RTN._build` publishes (the compiled path writes the byte rows and the lists in C)."""
    arrays = (r.table, r.accepting, r.rule_of, r.lex_q, r.lex_c)
    return (*(a.tolist() for a in arrays), r.has_bytes, r.accepts_at, r.rule_at, r.calls, r.starts, r.ends)


@needs_native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammars(lexemes=True))
def test_random_grammars_give_the_python_nfas_and_tables(text: str) -> None:
    with pytest.MonkeyPatch.context() as m:
        tables = []
        for native in (True, False):
            m.setattr(rtn, "NATIVE", native)
            tables.append(_tables(fresh_rtn(text).build_all()))
        assert tables[0] == tables[1]
        built = fresh_rtn(text)
        for body in built.bodies:
            if body is not EMPTY_LANGUAGE and not isinstance(body, Lexeme):
                _same_nfa(body, built.index)


def _schemas() -> list[str]:
    return sorted(p.name for p in SCHEMAS.glob("*.json") if p.name.count(".") == 1)


@needs_native
@pytest.mark.parametrize("name", _schemas())
def test_schema_rules_give_the_python_nfas_and_tables(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rule of a MaskBench-like schema's grammar (property chains, shared tails, key automata)."""
    schema = json.loads((SCHEMAS / name).read_text())
    try:
        grammar = compile_json_schema(schema, engine="grammar")
    except DeccError:
        pytest.skip("not compiled to a grammar")
    built = []
    for native in (True, False):
        monkeypatch.setattr(rtn, "NATIVE", native)
        built.append(rtn.RTN(grammar).build_all())
    assert _tables(built[0]) == _tables(built[1])
    for body in built[0].bodies:
        if body is not EMPTY_LANGUAGE and not isinstance(body, Lexeme):
            _same_nfa(body, built[0].index)


LEXEME_SCHEMAS = [  # strings long enough to stay counted (shorter ones are unrolled into the grammar)
    {"type": "string", "minLength": 2, "maxLength": 50},
    {"type": "string", "maxLength": 40, "pattern": "^[a-c]+(-[0-9]{1,3})?$"},
    {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 30}, "maxItems": 4},
    {
        "type": "object",
        "properties": {"a": {"type": "string", "maxLength": 70}, "b": {"type": "string", "minLength": 30}},
        "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 20},
    },
    {
        "anyOf": [
            {"type": "string", "format": "date"},
            {"type": "string", "maxLength": 100, "pattern": "^[^x]*$"},
        ]
    },
]


@needs_native
@pytest.mark.parametrize("schema", LEXEME_SCHEMAS)
def test_unrolled_lexemes_are_the_python_ones(schema: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Length-bounded strings (`Lexeme` rules: counted DFAs) unrolled by `tail_c.unroll` and in Python."""
    grammar = compile_json_schema(schema, engine="grammar")
    assert any(isinstance(b, Lexeme) for _, b in grammar.rules)
    built = []
    for native in (True, False):
        monkeypatch.setattr(rtn, "NATIVE", native)
        built.append(rtn.RTN(grammar).build_all())
    assert _tables(built[0]) == _tables(built[1])
    assert built[0]._lexeme_states == built[1]._lexeme_states
