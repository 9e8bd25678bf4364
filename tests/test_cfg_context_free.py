"""The context-free part of a mask, memoized by the last set's scanning states (cfg_matcher `_compute_mask`).

A simulated token's verdict reads the chart before the last set only where an item that started there
completes (`chart[o].waiting`); the simulation reports those tokens (`tainted`), and the verdicts of the
others depend on the last set's distinct scanning states alone. Checked three ways: (1) along random walks
(left recursion, nullable callees, rollbacks and clones), every untainted verdict is the same in every chart
whose last set has the same scanning states; (2) the compiled simulation reports the Python one's tainted
tokens; (3) masks with the memo equal masks without it, on random grammars and on JSON schemas walked along
valid and invalid texts.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
from typing import Any

import numpy as np
import pytest
from _grammars import ALPHABET, fresh_rtn, grammars
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars import Vocabulary
from decc.grammars.contextfree import cfg_matcher, earley
from decc.grammars.contextfree.cfg_grammar import parse_grammar
from decc.grammars.contextfree.cfg_matcher import CFGConstraint, CFGMatcher, FreeMemo, cfg_builtin
from decc.grammars.contextfree.cfg_rows import vocab_order
from decc.grammars.contextfree.earley import Chart, Recognizer
from decc.grammars.json.json_schema import json_schema

NATIVE = (False, True) if earley.compiled is not None else (False,)
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def vocabularies(draw: st.DrawFn) -> list[bytes]:
    """Random tokens over the alphabet (every single byte included), many sharing prefixes."""
    words = draw(st.lists(st.text(alphabet=ALPHABET, min_size=2, max_size=6), min_size=5, max_size=60))
    return sorted({c.encode() for c in ALPHABET} | {w.encode() for w in words})


def _constraint(text: str, words: list[bytes], native: bool, probing: bool = True) -> CFGConstraint:
    rtn = fresh_rtn(text)
    vocab = Vocabulary.from_token_bytes([None, *words], eos_id=0)
    order = vocab_order(vocab)
    rec = Recognizer(rtn, native=native)
    rec.probing = probing
    eos = np.array([0], dtype=np.int32)
    return CFGConstraint(parse_grammar(text), rtn, vocab, rec, order.rank_to_id, order.rank_bytes, eos)


def _walk(rec: Recognizer, choices: list[int], rnd: random.Random) -> list[Chart]:
    """Charts along a random walk, now and then cut back (a rollback) or copied (a clone): sets shared."""
    chart = rec.initial()
    charts = [list(chart)]
    for k in choices:
        if rnd.random() < 0.15 and len(chart) > 1:
            del chart[rnd.randint(1, len(chart) - 1) :]
        elif rnd.random() < 0.1:
            chart = list(chart)
        else:
            live = [s for b in ALPHABET.encode() if (s := rec.step(chart, b)) is not None]
            if not live:
                break
            chart.append(live[k % len(live)])
        charts.append(list(chart))
    return charts


def _lcps(words: tuple[bytes, ...], ranks: list[int]) -> list[int]:
    return [0, *(len(os.path.commonprefix([words[a], words[b]])) for a, b in itertools.pairwise(ranks))]


@SETTINGS
@given(
    grammars(lexemes=True),
    vocabularies(),
    st.lists(st.integers(0, 255), max_size=30),
    st.booleans(),
    st.randoms(),
)
def test_untainted_verdicts_depend_only_on_the_scanning_states(
    text: str, words: list[bytes], choices: list[int], probing: bool, rnd: random.Random
) -> None:
    """Every token simulated from every chart of a walk (Python, the oracle): a verdict reported as not
    reading the chart before the last set is the same in every chart whose last set scans the same states;
    the compiled simulation takes the same tokens and reports the same tainted ones."""
    con = _constraint(text, words, False, probing)
    twin = Recognizer(con.rtn, native=True) if earley.compiled is not None else None  # (the same RTN)
    if twin is not None:
        twin.probing = probing
    every = list(range(len(con.rank_bytes)))
    lcps = _lcps(con.rank_bytes, every)
    free: dict[bytes, dict[int, bool]] = {}  # scanning states -> rank -> verdict, untainted only
    for chart in _walk(con.recognizer, choices, rnd):
        tainted: list[int] = []
        ok = set(con._simulate_py(chart, every, lcps, tainted))
        for _ in range(10):  # the taint depends on the rules built so far: compared once none is built
            built = len(con.rtn.built)
            tainted = []
            assert set(con._simulate_py(chart, every, lcps, tainted)) == ok
            if len(con.rtn.built) == built:
                break
        else:
            continue
        if twin is not None:
            taint: list[int] = []
            assert twin.simulate(chart, every, None, con.rank_bytes, tainted=taint) == sorted(ok)
            assert taint == tainted
        known = free.setdefault(chart[-1].scan_states().tobytes(), {})
        dep = set(tainted)
        for r in every:
            if r not in dep:
                assert known.setdefault(r, r in ok) == (r in ok)
        for r in dep & known.keys():  # a tainted verdict may differ, a known one must still hold
            if known[r]:
                assert r in ok


def test_a_token_that_leaves_the_rule_is_tainted_one_that_enters_a_callee_is_not() -> None:
    """After "((x" and "[(x" the last sets scan the same states (`m` before ")", `n` before "<") in different
    contexts: `))` and `)]` complete the `m` that started before the last set (its caller decides: tainted),
    while `<x` enters `n`, predicted there, and `xx` dies before any completion (not tainted)."""
    text = 'start: m\nm: "(" m ")" | "[" m "]" | "x" n?\nn: "<" m ">"\n'
    words = [b"(", b")", b"[", b"]", b"x", b"<", b">", b"))", b")]", b"<x", b"xx"]
    for native in NATIVE:
        con = _constraint(text, words, native)
        rec = con.recognizer
        charts = [rec.advance_bytes(rec.initial(), t) for t in (b"((x", b"[(x")]
        assert charts[0] is not None and charts[1] is not None
        assert charts[0][-1].scan_states().tolist() == charts[1][-1].scan_states().tolist()
        ranks = sorted(con.rank_bytes.index(w) for w in (b")", b"x", b"))", b")]", b"<x", b"xx"))
        got = []
        for chart in charts:
            tainted: list[int] = []
            ok = con._simulate(chart, ranks, tainted)
            got.append(({con.rank_bytes[r] for r in ok}, {con.rank_bytes[r] for r in tainted}))
        assert got[0] == ({b")", b"))", b"<x"}, {b"))", b")]"})
        assert got[1] == ({b")", b")]", b"<x"}, {b"))", b")]"})


def _assert_memo_agrees(con: CFGConstraint, chart: Chart) -> np.ndarray:
    want = con._compute_mask(chart, memo=False)
    got = con._compute_mask(chart)
    assert np.array_equal(got, want) and not got.flags.writeable
    return got


@SETTINGS
@given(grammars(lexemes=True), vocabularies(), st.lists(st.integers(0, 255), max_size=30), st.randoms())
def test_masks_with_the_memo_are_the_masks_without(
    text: str, words: list[bytes], choices: list[int], rnd: random.Random
) -> None:
    for native in NATIVE:
        con = _constraint(text, words, native)
        for chart in _walk(con.recognizer, choices, random.Random(rnd.random())):
            _assert_memo_agrees(con, chart)


def test_the_memo_is_bounded_and_not_pickled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cfg_matcher, "_FREE_MEMO", 3)
    con = _constraint(
        'start: r0\nr0: ("(" r0 ")" | "a" | "b")*\n', [b"(", b")", b"a", b"b", b"a)", b")("], True
    )
    for chart in _walk(con.recognizer, list(range(60)), random.Random(3)):
        _assert_memo_agrees(con, chart)
        assert len(con._free) <= 3
    assert "_free" not in con.__getstate__()


JSON_BYTES = b'{}[]",:-.0123456789 abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_\\'
JSON_WORDS = [
    *(bytes([b]) for b in JSON_BYTES),
    *(b'{"', b'":', b'","', b'",', b'"}', b"},", b"}]", b"],", b'":"', b'":[', b'":{', b"[{", b"[]"),
    *(b"true", b"null", b"1,", b"0}", b"a,", b'a"', b'x"}', b'\\"', b"e1", b".5,", b"-1]", b'"a', b'b"'),
]
JSON_VOCAB = Vocabulary.from_token_bytes([None, *JSON_WORDS], eos_id=0)

SCHEMAS: list[tuple[dict[str, Any], list[Any], list[str]]] = [
    (
        {
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                    },
                    "required": ["name"],
                }
            },
            "$ref": "#/$defs/node",
        },
        [{"name": "a", "kids": [{"name": "b", "kids": []}, {"name": "c", "kids": [{"name": "d"}]}]}],
        ['{"name":"a","kids":[{"kids":[]}]}', '{"name":1}'],
    ),
    (
        {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "tags": {"type": "array", "items": {"enum": ["x", "yy", "zzz"]}},
                "meta": {"type": "object", "additionalProperties": {"type": ["string", "number", "null"]}},
                "m": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            },
        },
        [
            {
                "id": -12,
                "tags": ["x", "zzz"],
                "meta": {"k": "v", "n": 1.5, "z": None},
                "m": [[1, 2.5], [], [-1]],
            }
        ],
        ['{"id":1.5}', '{"tags":["x","y"]}', '{"meta":{"a":true}}', '{"m":[[1],["a"]]}'],
    ),
]


def _token(con: CFGConstraint, b: int) -> int:
    return int(con.vocab.token_bytes.index(bytes([b])))


@pytest.mark.parametrize("native", NATIVE)
@pytest.mark.parametrize("case", range(len(SCHEMAS) + 1))
def test_json_masks_with_the_memo_are_the_masks_without(case: int, native: bool) -> None:
    """JSON schemas' grammars and the built-in JSON grammar walked byte by byte (one-byte tokens) along valid
    and invalid texts through `CFGMatcher`, with rollbacks and clones: every mask (the matcher's, cached, and
    each recomputed with and without the memo) is the one computed without the memo; the memo was used."""
    if case < len(SCHEMAS):
        schema, values, invalid = SCHEMAS[case]
        made = json_schema(schema, JSON_VOCAB, engine="grammar")
        texts = [json.dumps(v, separators=(",", ":")) for v in values] + invalid
    else:
        made = cfg_builtin("json", JSON_VOCAB)
        texts = ['{"a":[1,{"b":[[],{}]}],"c":"d"}', "[true,null,-1.5e3]", '{"a":[1,}', '[{"b":[[]]}]]']
    assert isinstance(made, CFGConstraint)
    fresh = {"_masks": {}, "_tensors": {}, "_interned": {}, "_ids": itertools.count(), "_free": FreeMemo()}
    con = dataclasses.replace(made, recognizer=Recognizer(made.rtn, native=native), **fresh)
    rnd = random.Random(case)
    computed = 0
    for text in texts:
        m = CFGMatcher(con)
        for b in text.encode():
            assert np.array_equal(m.mask(), con._compute_mask(m.chart, memo=False))
            _assert_memo_agrees(con, m.chart)
            computed += 1
            if rnd.random() < 0.1 and m._history:
                twin = m.clone()
                twin.rollback(rnd.randint(1, len(twin._history)))
                _assert_memo_agrees(con, twin.chart)
            if not m.advance(_token(con, b)):
                break
    assert len(con._free) < computed  # (charts met scanning states seen before)
    assert any(con._free.rest.values())
    assert len(con._free.raw) < len(con._free)  # (met again, and cleared)
