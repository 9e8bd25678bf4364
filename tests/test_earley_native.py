"""The compiled Earley step (grammars/contextfree/earley_c.c) against the Python recognizer it replaces.

Oracle: `Recognizer(rtn, native=False)`, each on its own lazily grown RTN of the same grammar. Along random
walks through the grammar (each byte chosen among those the Python recognizer takes, so that charts grow
long, with left recursion, nullable callees and completions reaching far back), every set must be equal
element for element and in the same order (items, scan, waiting, accept), and both RTNs must build the
same rules in the same order (the compiled closure calls `enter` back exactly where the Python one does).
"""

from __future__ import annotations

import gc
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from _grammars import ALPHABET, fresh_rtn, grammars
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars import Vocabulary
from decc.grammars.contextfree import earley
from decc.grammars.contextfree.cfg_grammar import parse_grammar
from decc.grammars.contextfree.cfg_loops import joined_words
from decc.grammars.contextfree.cfg_matcher import CFGConstraint
from decc.grammars.contextfree.cfg_rows import vocab_order
from decc.grammars.contextfree.earley import ESet, Recognizer
from decc.grammars.tokens.token_automaton import set_bits

needs_native = pytest.mark.skipif(earley.compiled is None, reason="earley_c is not built")


def _assert_same(a: ESet | None, b: ESet | None) -> None:
    assert (a is None) == (b is None)
    if a is None or b is None:
        return
    assert a.items == b.items and list(a.items) == list(b.items)
    assert a.scan == b.scan
    assert a.waiting == b.waiting and list(a.waiting) == list(b.waiting)
    assert a.accept is b.accept


def test_the_compiled_step_is_built_and_used() -> None:
    """`make test` sets DECC_REQUIRE_NATIVE=1: a broken build fails there instead of testing Python twice."""
    if earley.compiled is None:
        if os.environ.get("DECC_REQUIRE_NATIVE") == "1":
            pytest.fail("earley_c is not built (pip install -e . compiles it; is there a C compiler?)")
        pytest.skip("the C extension earley_c is not built in this install")
    pure = os.environ.get("DECC_PURE_PYTHON", "") not in ("", "0")
    assert earley.NATIVE != pure
    assert Recognizer(fresh_rtn('start: "a"\n')).native == earley.NATIVE


@needs_native
def test_decc_pure_python_turns_the_compiled_step_off() -> None:
    code = "from decc.grammars.contextfree import earley; print(earley.NATIVE)"
    env = {**os.environ, "DECC_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


@needs_native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammars(lexemes=True), st.lists(st.integers(0, 255), max_size=40))
def test_compiled_steps_build_the_python_sets(text: str, choices: list[int]) -> None:
    py_rtn, c_rtn = fresh_rtn(text), fresh_rtn(text)
    py, native = Recognizer(py_rtn, native=False), Recognizer(c_rtn, native=True)
    assert native.native and not py.native
    pc, cc = py.initial(), native.initial()
    _assert_same(pc[0], cc[0])
    walked: list[int] = []
    for k in choices:
        live = [b for b in ALPHABET.encode() if py.step(pc, b) is not None]
        for b in ALPHABET.encode():  # the refused bytes too
            _assert_same(py.step(pc, b), native.step(cc, b))
        if not live:
            break
        b = live[k % len(live)]
        walked.append(b)
        pc.append(py.step(pc, b))  # type: ignore[arg-type]
        cc.append(native.step(cc, b))  # type: ignore[arg-type]
        assert py_rtn.built == c_rtn.built
    assert py_rtn.built == c_rtn.built
    data = bytes(walked) + b"a("  # advance_bytes (its own loop), then bytes maybe refused
    pa, ca = py.advance_bytes(pc[:1], data), native.advance_bytes(cc[:1], data)
    assert (pa is None) == (ca is None)
    for a, b in zip(pa or [], ca or [], strict=True):
        _assert_same(a, b)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammars(lexemes=True), st.lists(st.binary(min_size=1, max_size=4), max_size=12), st.booleans())
def test_extend_in_place_is_advance_bytes(text: str, tokens: list[bytes], native: bool) -> None:
    """`extend` (what a matcher does with its own chart) appends what `advance_bytes` would return, and
    leaves the chart as it was where that is None: the same sets, token after token."""
    rec = Recognizer(fresh_rtn(text), native=native)
    chart = rec.initial()
    alphabet = ALPHABET.encode()
    for tok in tokens:
        data = bytes(alphabet[b % len(alphabet)] for b in tok)
        want = rec.advance_bytes(chart, data)
        before = list(chart)
        ok = rec.extend(chart, data)
        assert ok == (want is not None)
        after = want if want is not None else before
        assert len(chart) == len(after) and all(
            a is b for a, b in zip(chart[: len(before)], before, strict=False)
        )
        for a, b in zip(chart, after, strict=True):
            _assert_same(a, b)


@needs_native
def test_compiled_step_rejects_malformed_input() -> None:
    rec = Recognizer(fresh_rtn('start: "a" start?\n'), native=True)
    chart = rec.initial()
    with pytest.raises(ValueError):
        rec.step(chart, 256)
    with pytest.raises(ValueError):
        rec.step([], ord("a"))
    assert rec.step(chart, ord("b")) is None
    assert rec.is_prefix(b"aaa") and rec.accepts(b"aa") and not rec.accepts(b"")


TOKEN_ALPHABET = ALPHABET  # the tokens' bytes: the grammars' literals


@st.composite
def vocabularies(draw: st.DrawFn) -> list[bytes]:
    """Random tokens over the alphabet (every single byte included), many sharing prefixes."""
    words = draw(st.lists(st.text(alphabet=TOKEN_ALPHABET, min_size=2, max_size=6), min_size=5, max_size=80))
    return sorted({c.encode() for c in TOKEN_ALPHABET} | {w.encode() for w in words})


def _constraint(text: str, words: list[bytes], native: bool) -> CFGConstraint:
    rtn = fresh_rtn(text)
    vocab = Vocabulary.from_token_bytes([None, *words], eos_id=0)
    order = vocab_order(vocab)
    eos = np.array([0], dtype=np.int32)
    rec = Recognizer(rtn, native=native)
    return CFGConstraint(parse_grammar(text), rtn, vocab, rec, order.rank_to_id, order.rank_bytes, eos)


def _simulate_both(py: CFGConstraint, cc: CFGConstraint, pc: list, ccs: list, ranks: list[int]) -> None:
    words = py.rank_bytes
    expected = py._simulate_py(pc, ranks)
    assert expected == cc.recognizer.simulate(ccs, ranks, words)
    assert expected == cc.recognizer.simulate(ccs, ranks, *joined_words(words))  # one buffer
    memo: dict = {}
    assert expected == cc.recognizer.simulate(ccs, ranks, *joined_words(words), memo)  # the walk made, kept
    assert expected == cc.recognizer.simulate(ccs, ranks, *joined_words(words), memo)  # and taken again
    assert expected == cc._simulate(ccs, ranks) == py._simulate(pc, ranks)  # as _compute_mask calls them


@needs_native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammars(lexemes=True), vocabularies(), st.lists(st.integers(0, 255), max_size=25), st.randoms())
def test_compiled_simulation_takes_the_python_tokens(
    text: str, words: list[bytes], choices: list[int], rnd: random.Random
) -> None:
    """Every token (and random subsets: the common prefixes then skip sets) simulated from every chart of a
    random walk: the same ranks, and the same rules built in the same order."""
    py, cc = _constraint(text, words, False), _constraint(text, words, True)
    assert cc.recognizer.native and not py.recognizer.native
    pc, ccs = py.recognizer.initial(), cc.recognizer.initial()
    every = list(range(len(py.rank_bytes)))
    for k in [*choices, -1]:
        _simulate_both(py, cc, pc, ccs, every)
        _simulate_both(py, cc, pc, ccs, sorted(rnd.sample(every, rnd.randint(1, len(every)))))
        assert py.rtn.built == cc.rtn.built
        if k < 0:
            break
        # (stepped in both: a step builds the rules it predicts, which the simulation may not have built)
        live = [
            b
            for b in TOKEN_ALPHABET.encode()
            if py.recognizer.step(pc, b) is not None and cc.recognizer.step(ccs, b) is not None
        ]
        if not live:
            break
        b = live[k % len(live)]
        pc.append(py.recognizer.step(pc, b))  # type: ignore[arg-type]
        ccs.append(cc.recognizer.step(ccs, b))  # type: ignore[arg-type]


@needs_native
def test_compiled_simulation_rejects_malformed_words() -> None:
    """Joined words: offsets must be int64 within the bytes, ranks within the offsets; a tuple takes none."""
    rec = Recognizer(fresh_rtn('start: "a" start?\n'), native=True)
    chart = rec.initial()
    blob, offsets = joined_words((b"a", b"aa", b"b"))
    assert rec.simulate(chart, [0, 1, 2], blob, offsets) == [0, 1]
    assert rec.simulate(chart, [0, 1, 2], (b"a", b"aa", b"b")) == [0, 1]
    with pytest.raises(IndexError):
        rec.simulate(chart, [3], blob, offsets)
    with pytest.raises(ValueError):
        rec.simulate(chart, [0], blob, np.array([0, 1, 9], dtype=np.int64))
    with pytest.raises(ValueError):
        rec.simulate(chart, [0], blob, offsets.astype(np.int32))
    with pytest.raises(IndexError):
        rec.simulate(chart, [1], blob, np.array([0, 2, 1, 4], dtype=np.int64))
    with pytest.raises(TypeError):
        rec.simulate(chart, [0], (b"a",), offsets)
    with pytest.raises(TypeError):
        rec.simulate(chart, [0], blob)


@needs_native
@given(st.integers(1, 700), st.sets(st.integers(0, 699), max_size=300), st.randoms())
def test_compiled_set_ranks_is_set_bits(n: int, ranks: set[int], rnd: random.Random) -> None:
    """Setting the simulation's ranks in C sets the same bits as `set_bits` of their token ids."""
    rank_to_id = np.array(rnd.sample(range(n + 40), n), dtype=np.int64)
    words = (n + 40 + 31) // 32
    start = np.array([rnd.getrandbits(32) for _ in range(words)], dtype=np.uint32).view(np.int32)
    rl = sorted(r % n for r in ranks)
    got, want = start.copy(), start.copy()
    Recognizer.set_ranks(got, rl, rank_to_id)
    set_bits(want, rank_to_id[rl] if rl else [])
    assert np.array_equal(got, want)


@needs_native
def test_compiled_set_ranks_rejects_malformed_input() -> None:
    mask = np.zeros(2, dtype=np.int32)
    r2i = np.arange(10, dtype=np.int64)
    with pytest.raises(IndexError):
        Recognizer.set_ranks(mask, [10], r2i)
    with pytest.raises(IndexError):
        Recognizer.set_ranks(mask, [0], np.array([64], dtype=np.int64))
    with pytest.raises(TypeError):
        Recognizer.set_ranks(mask.astype(np.int64), [0], r2i)
    with pytest.raises(TypeError):
        Recognizer.set_ranks(mask, (0,), r2i)


@needs_native
def test_compiled_sets_are_left_out_of_the_cyclic_collector() -> None:
    """Their containers hold only ints and pairs of ints, never changed once built: no cycle can go
    through them, and every full collection would walk every set of every live chart."""
    rec = Recognizer(fresh_rtn('start: "[" (start ("," start)*)? "]" | "a"\n'), native=True)
    chart = rec.advance_bytes(rec.initial(), b"[[a,[")
    assert chart is not None and any(s.waiting for s in chart)
    for s in chart:
        containers = [s.items, s.scan, s.waiting, *s.waiting.values(), *s.items, *s.scan]
        assert not any(gc.is_tracked(x) for x in containers)


@needs_native
def test_compiled_sets_themselves_are_left_out_of_the_cyclic_collector() -> None:
    """The ESet objects too (a young collection's objects were mostly sets): what is hung on them later (a
    mask, its tensor, contexts) cannot refer back, so no cycle is missed."""
    rec = Recognizer(fresh_rtn('start: "[" (start ("," start)*)? "]" | "a"\n'), native=True)
    chart = rec.advance_bytes(rec.initial(), b"[[a,[")
    assert chart is not None
    assert not any(gc.is_tracked(s) for s in chart)
    assert rec.step(chart, ord("a")) is not None and not gc.is_tracked(rec.step(chart, ord("a")))
    assert rec.step(chart, ord("}")) is None
    assert not gc.is_tracked(rec.initial()[0])
