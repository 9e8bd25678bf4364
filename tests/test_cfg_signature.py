"""The mask cache's chart signature compiled (earley_c.c `signature`) against the Python one it replaces
(`CFGConstraint._signature_py`, the oracle).

Both make the same keys in the same order, in the same interning dict with the same id counter, so along
any sequence of charts they must give the very same ids (hence partition charts alike), the same None for
cyclic contexts (left recursion), and leave the same per-set context memos (`ESet.contexts`). Charts are
walked byte by byte with cuts (`rollback`) and copies (`clone`) sharing their sets, so later charts meet
the memos that earlier ones left; then every set's memo is cleared and the same charts are signed again in
Python, on a twin constraint with a fresh interning dict.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
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
from decc.grammars.contextfree.cfg_matcher import CFGConstraint, cfg_builtin
from decc.grammars.contextfree.cfg_rows import vocab_order
from decc.grammars.contextfree.earley import Chart, ESet, Recognizer
from decc.grammars.json.json_schema import json_schema

needs_native = pytest.mark.skipif(earley.compiled is None, reason="earley_c is not built")

JSON_BYTES = b'{}[]",:-.0123456789 abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_\\'
JSON_VOCAB = Vocabulary.from_token_bytes(
    [None, *(bytes([b]) for b in JSON_BYTES), b'{"', b'":', b'","', b"true", b"null", b"[{"], eos_id=0
)


def _constraint(text: str) -> CFGConstraint:
    rtn = fresh_rtn(text)
    vocab = Vocabulary.from_token_bytes([None, *(c.encode() for c in ALPHABET)], eos_id=0)
    order = vocab_order(vocab)
    eos = np.array([0], dtype=np.int32)
    rec = Recognizer(rtn, native=True)
    return CFGConstraint(parse_grammar(text), rtn, vocab, rec, order.rank_to_id, order.rank_bytes, eos)


def _walk(con: CFGConstraint, alphabet: bytes, choices: list[int], rnd: random.Random) -> list[Chart]:
    """Charts along a random walk (each byte among those the recognizer takes), now and then cut back or
    copied (as `CFGMatcher.rollback` and `clone` do: the sets are shared), each signed when met."""
    rec = con.recognizer
    chart = rec.initial()
    charts = [list(chart)]
    con._signature(chart)
    for k in choices:
        if rnd.random() < 0.15 and len(chart) > 1:
            del chart[rnd.randint(1, len(chart) - 1) :]  # a rollback
        elif rnd.random() < 0.15:
            chart = list(chart)  # a clone
        else:
            live = [s for b in alphabet if (s := rec.step(chart, b)) is not None]
            if not live:
                break
            chart.append(live[k % len(live)])
        charts.append(list(chart))
        con._signature(chart)
    return charts


def _assert_python_agrees(con: CFGConstraint, charts: list[Chart]) -> list[int | None]:
    """`charts` signed in C, in order (with the memos the walk left), then with no memos in Python on a twin
    with a fresh interning dict: the same partition (ids renumbered by first appearance), the same Nones."""
    assert con.recognizer.native
    ids = [con._signature(c) for c in charts]
    for s in {id(s): s for c in charts for s in c}.values():
        s.contexts = None
    twin = dataclasses.replace(con, _masks={}, _tensors={}, _interned={}, _ids=itertools.count())
    twin_ids = [twin._signature_py(c, twin.canon.names()) for c in charts]
    first = dict.fromkeys(ids)  # each id renumbered by first appearance: the partition, as a list
    twin_first = dict.fromkeys(twin_ids)
    assert [list(first).index(i) for i in ids] == [list(twin_first).index(i) for i in twin_ids]
    assert [i is None for i in ids] == [i is None for i in twin_ids]
    return ids


def _assert_same_from_scratch(con: CFGConstraint, charts: list[Chart]) -> None:
    """Signed in order from no memos and an empty dict, in C and in Python: the very same ids and memos."""
    sets = list({id(s): s for c in charts for s in c}.values())
    results = []
    for native in (True, False):
        for s in sets:
            s.contexts = None
        twin = dataclasses.replace(con, _masks={}, _tensors={}, _interned={}, _ids=itertools.count())
        if native:
            ids = [
                twin.recognizer.signature(c, twin.canon.names(), twin._interned, twin._ids) for c in charts
            ]
        else:
            ids = [twin._signature_py(c, twin.canon.names()) for c in charts]
        results.append((ids, [s.contexts for s in sets], twin._interned))
    assert results[0] == results[1]


@needs_native
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammars(lexemes=True), st.lists(st.integers(0, 255), max_size=40), st.randoms())
def test_compiled_signature_is_the_python_one(text: str, choices: list[int], rnd: random.Random) -> None:
    con = _constraint(text)
    charts = _walk(con, ALPHABET.encode(), choices, rnd)
    _assert_python_agrees(con, charts)
    _assert_same_from_scratch(con, charts)


@needs_native
@pytest.mark.parametrize(
    "text",
    [
        'start: r0\nr0: r1 "a" | "b"\nr1: r0 | "(" \n',  # left recursion through another rule
        'start: r0\nr0: r1? r0 "a" | "b"\nr1: "("\n',  # through a nullable prefix
        'start: r0\nr0: r0 r0 | "a" | "b" r0\n',
    ],
)
def test_cyclic_contexts_give_none_in_both(text: str) -> None:
    con = _constraint(text)
    charts = _walk(con, ALPHABET.encode(), list(range(12)), random.Random(0))
    ids = _assert_python_agrees(con, charts)
    assert None in ids
    _assert_same_from_scratch(con, charts)
    for c in charts:  # no memo of a context left half made (-1) by a cyclic one
        assert all(v >= 0 for s in c for v in (s.contexts or {}).values())


@needs_native
def test_the_context_cache_resets_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past `_CONTEXT_LIMIT` interned keys the dict (and the masks) are dropped in both, at the same call."""
    monkeypatch.setattr(cfg_matcher, "_CONTEXT_LIMIT", 6)
    con = _constraint('start: r0\nr0: ("(" r0 ")" | "a")*\n')
    charts = _walk(con, ALPHABET.encode(), list(range(40)), random.Random(1))
    results, made = [], []
    for native in (True, False):
        for s in {id(s): s for c in charts for s in c}.values():
            s.contexts = None
        twin = dataclasses.replace(con, _masks={}, _tensors={}, _interned={}, _ids=itertools.count())
        twin.recognizer.native = native
        try:
            results.append([twin._signature(c) for c in charts])
        finally:
            twin.recognizer.native = True
        made.append((next(twin._ids), len(twin._interned)))
    assert results[0] == results[1] and made[0] == made[1]
    assert made[0][0] > made[0][1] + cfg_matcher._CONTEXT_LIMIT  # (keys were dropped)


SCHEMAS: list[tuple[dict[str, Any], list[Any]]] = [
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
    ),
    (
        {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "tags": {"type": "array", "items": {"enum": ["x", "yy", "zzz"]}},
                "meta": {"type": "object", "additionalProperties": {"type": ["string", "number", "null"]}},
            },
        },
        [{"id": -12, "tags": ["x", "zzz"], "meta": {"k": "v", "n": 1.5, "z": None}}],
    ),
]


@needs_native
@pytest.mark.parametrize("case", range(len(SCHEMAS) + 1))
def test_real_charts_sign_alike(case: int) -> None:
    """JSON schemas' grammars and the built-in JSON grammar: valid texts walked byte by byte, then random
    walks from their prefixes."""
    if case < len(SCHEMAS):
        schema, values = SCHEMAS[case]
        con = json_schema(schema, JSON_VOCAB, engine="grammar")
    else:
        con, values = cfg_builtin("json", JSON_VOCAB), [{"a": [1, {"b": [[], {}]}], "c": "d"}, [True, None]]
    assert isinstance(con, CFGConstraint)
    fresh = {"_masks": {}, "_tensors": {}, "_interned": {}, "_ids": itertools.count()}
    con = dataclasses.replace(con, recognizer=Recognizer(con.rtn, native=True), **fresh)  # (pure Python too)
    rec = con.recognizer
    rnd = random.Random(case)
    charts: list[Chart] = []
    for v in values:
        chart = rec.initial()
        for b in json.dumps(v, separators=(",", ":")).encode():
            charts.append(list(chart))
            con._signature(chart)
            nxt = rec.step(chart, b)
            assert nxt is not None
            chart.append(nxt)
            if rnd.random() < 0.1:
                charts += _walk_from(con, list(chart), rnd)
    _assert_python_agrees(con, charts)
    _assert_same_from_scratch(con, charts)


def _walk_from(con: CFGConstraint, chart: Chart, rnd: random.Random) -> list[Chart]:
    out = []
    for _ in range(20):
        live = [s for b in JSON_BYTES if (s := con.recognizer.step(chart, b)) is not None]
        if not live:
            break
        chart.append(rnd.choice(live))
        out.append(list(chart))
        con._signature(chart)
    return out


@needs_native
def test_compiled_signature_rejects_malformed_input() -> None:
    con = _constraint('start: "a" start?\n')
    chart = con.recognizer.initial()
    names, interned, ids = con.canon.names(), con._interned, con._ids
    with pytest.raises(ValueError):
        con.recognizer.signature([], names, interned, ids)
    with pytest.raises(IndexError):
        con.recognizer.signature(chart, [], interned, ids)
    bad = ESet(scan=[(0, 5)])
    with pytest.raises(IndexError):  # an origin past the chart
        con.recognizer.signature([*chart, bad], names, interned, ids)
    bad = ESet(scan=[(0,)])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        con.recognizer.signature([bad], names, interned, ids)
    assert con.recognizer.signature(chart, names, interned, ids) == con._signature_py(chart, names)


@needs_native
def test_deeply_nested_charts_need_no_recursion_limit() -> None:
    """A chart advanced over deeply nested text with no mask in between has no memos along the way: the
    compiled contexts are found on a stack of their own, not by recursion (the Python ones recurse: with a
    raised limit, the same ids)."""
    con = cfg_builtin("json", JSON_VOCAB)
    con = dataclasses.replace(
        con, recognizer=Recognizer(con.rtn, native=True), _interned={}, _ids=itertools.count()
    )
    chart = con.recognizer.advance_bytes(con.recognizer.initial(), b"[" * 3000)
    assert chart is not None
    ids = [con._signature(chart[:n]) for n in (3001, 2000, 3001)]
    assert None not in ids and ids[0] == ids[2]
    _assert_same_from_scratch(con, [chart[:200]])  # (within the default limit of the Python recursion)
