"""Compile limits: a compile that runs past `Limits.max_seconds` stops with a GrammarLimitError that says so
(a zero-second limit makes the first check fail, so these tests do not depend on the machine's speed)."""

from __future__ import annotations

import pytest

from decc.grammars import GrammarLimitError, Limits, Vocabulary, cfg_builtin, json_schema, regex
from decc.grammars.json.json_schema import compile_json_schema
from decc.grammars.limits import check_time, deadline

VOCAB = Vocabulary.from_token_bytes([b"a", b"b", b"{", b"}", b'"', b":", b",", b"1", b" ", None], eos_id=9)
NOW = Limits(max_seconds=0.0)


@pytest.mark.parametrize(
    "compile_it",
    [
        lambda: regex("[ab]{2,40}", VOCAB, NOW),
        lambda: json_schema({"type": "object", "properties": {"a": {"type": "string"}}}, VOCAB, limits=NOW),
        lambda: compile_json_schema({"type": "array", "items": {"type": "integer"}}, limits=NOW),
        lambda: cfg_builtin("arith", VOCAB, limits=NOW),
    ],
    ids=["regex", "json_schema", "compile_json_schema", "cfg"],
)
def test_time_limit_stops_a_compile(compile_it) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GrammarLimitError, match=r"took longer than the compile time limit \(0 s\)") as e:
        compile_it()
    assert "max_seconds" in e.value.render()


def test_default_limit_lets_compiles_finish_and_outer_deadline_wins() -> None:
    assert regex("[ab]{2,40}", VOCAB).matcher().advance(0)
    check_time("nothing")  # no compile running: no deadline
    with deadline(0.0):
        with deadline(None), deadline(3600.0):  # nested compiles keep the outer deadline
            with pytest.raises(GrammarLimitError):
                check_time("an inner step")


@pytest.mark.parametrize(("raw", "seconds"), [("0.5", 0.5), ("none", None), ("", 120.0), ("soon", 120.0)])
def test_compile_seconds_come_from_the_environment(monkeypatch, raw: str, seconds: float | None) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DECC_COMPILE_SECONDS", raw)
    assert Limits().max_seconds == seconds


def test_minimizing_checks_the_deadline() -> None:
    """Minimizing a chain of n states takes n refinement rounds: a{99999} ran for minutes past any limit."""
    from decc.grammars.automata.automata import minimize
    from decc.grammars.automata.dfa import compile_regex

    dfa = compile_regex("(ab){3}", minimal=False)
    assert not dfa.minimal
    with deadline(0.0), pytest.raises(GrammarLimitError, match="minimizing the DFA"):
        minimize(dfa)


def test_shared_subtrees_are_sized_and_hashed_once() -> None:
    """A JSON array writes its item schema twice per nesting level: 60 levels share 2**60 paths."""
    from decc.grammars.regexes.nfa import estimate_states
    from decc.grammars.regexes.regex_ast import CharSet, Concat

    leaf = node = CharSet(((0x61, 0x61),))
    for _ in range(60):
        node = Concat((node, node))
    assert estimate_states(node) == 2**60 * estimate_states(leaf)
    rebuilt = leaf
    for _ in range(60):
        rebuilt = Concat((rebuilt, rebuilt))
    assert hash(rebuilt) == hash(node)


def test_deep_nesting_is_a_limit_error_not_a_recursion_error() -> None:
    from decc.grammars.regexes.nfa import MAX_NESTING, estimate_states
    from decc.grammars.regexes.regex_ast import CharSet, Concat, Repeat

    node = CharSet(((0x61, 0x61),))
    for i in range(600):
        node = Concat((CharSet(((0x62, 0x62),)), node)) if i % 2 else Repeat(node, 0, 1)
    with pytest.raises(GrammarLimitError, match=f"nested too deep: 601 levels \\(at most {MAX_NESTING}\\)"):
        estimate_states(node)


def test_one_compile_has_one_deadline_across_its_passes(monkeypatch) -> None:
    """The time limit bounds the whole compile: the passes after compile-constraints (minimize took as long
    again under a fresh limit of its own) run under the deadline that began with the compile."""
    from decc.compiler import pipeline
    from decc.compiler.passes import minimize as minimize_pass
    from decc.dsl import parse
    from decc.grammars.limits import running_deadline

    seen: list[float | None] = []
    original = minimize_pass.minimal_dfa

    def spy(dfa):
        seen.append(running_deadline())
        return original(dfa)

    lowering = pipeline.lower

    def lower(*args):
        seen.append(running_deadline())
        return lowering(*args)

    monkeypatch.setenv("DECC_COMPILE_SECONDS", "30")
    monkeypatch.setattr(minimize_pass, "minimal_dfa", spy)
    monkeypatch.setattr(pipeline, "lower", lower)
    pipeline.compile_program(parse('gen x { where: regex(r"[a-c]+x") }', "d.dec"))
    assert len(seen) == 2 and seen[0] is not None and seen[0] == seen[1]


def test_distinct_columns_is_numpys_unique_over_columns() -> None:
    import numpy as np

    from decc.grammars.automata.automata import distinct_columns

    rng = np.random.default_rng(7)
    for n, k in [(1, 1), (5, 3), (60, 9), (400, 256)]:
        table = rng.integers(-1, n, size=(n, k))[:, rng.integers(0, k, size=256)]
        cols, inverse = np.unique(table.T, axis=0, return_inverse=True)
        mine, mine_inverse = distinct_columns(table)
        assert (cols == mine).all() and (inverse.reshape(-1) == mine_inverse).all()
