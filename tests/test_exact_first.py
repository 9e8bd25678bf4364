"""The simulation's last-byte probe (Recognizer.probe, earley_c's sim_probe) and the exact first bytes it trusts.

Oracles: a rule's first bytes stepped for real (the closed set of its start item, each byte tried), and the
full simulation, which closes the set after a token's next-to-last byte (building the rules it predicts):
the probe must take exactly its tokens, and build no rule it would not.
"""

from __future__ import annotations

import numpy as np
import pytest
from _grammars import ALPHABET, fresh_rtn, grammars
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars import Vocabulary
from decc.grammars.contextfree import earley
from decc.grammars.contextfree.cfg_grammar import parse_grammar
from decc.grammars.contextfree.cfg_matcher import CFGConstraint
from decc.grammars.contextfree.cfg_rows import vocab_order
from decc.grammars.contextfree.earley import ESet, Recognizer
from decc.grammars.contextfree.exact_first import ExactFirst
from decc.grammars.contextfree.rtn import EMPTY_LANGUAGE

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _stepped_first(rtn, r: int) -> set[int]:  # type: ignore[no-untyped-def]
    """The bytes some string of rule r starts with: its start item closed, then each byte stepped."""
    rec = Recognizer(rtn, native=False)
    chart = [rec._close([], ESet(), [(rtn.enter(r), 0)])]
    return {b for b in range(256) if rec.step(chart, b) is not None}


@SETTINGS
@given(grammars(lexemes=True))
def test_exact_first_bytes_are_the_stepped_ones(text: str) -> None:
    rtn = fresh_rtn(text)
    first = ExactFirst(rtn)
    exact = 0
    for r, body in enumerate(rtn.bodies):
        bits = first(r)
        if bits is None or body is EMPTY_LANGUAGE:
            continue
        exact += 1
        claimed = {b for b in range(256) if bits[b >> 3] >> (b & 7) & 1}
        assert claimed == _stepped_first(rtn, r), rtn.names[r]
    assert exact or any(first(r) is None for r in range(len(rtn.bodies)))


def test_an_empty_part_makes_first_bytes_inexact() -> None:
    """'a' then a rule that derives nothing: `RTN.first` says 'a', though no string starts with it."""
    rtn = fresh_rtn('start: x | "b"\nx: "a" y | "d"\ny: y "c"\n')  # y never finishes: unproductive
    assert rtn.first[0] >> ord("a") & 1  # (x inlined: "a" followed by the empty language)
    assert _stepped_first(rtn, 0) == {ord("b"), ord("d")}
    assert ExactFirst(rtn)(0) is None


def test_a_lexeme_whose_counter_kills_a_first_byte_is_inexact_only_then() -> None:
    rtn = fresh_rtn("start: /[ab]{2}/ | /a[ab]*/\n")
    first = ExactFirst(rtn)
    for r in range(len(rtn.bodies)):
        bits = first(r)
        if bits is not None:
            assert {b for b in range(256) if bits[b >> 3] >> (b & 7) & 1} == _stepped_first(rtn, r)


def _constraint(text: str, words: list[bytes], native: bool, probing: bool) -> CFGConstraint:
    rtn = fresh_rtn(text)
    vocab = Vocabulary.from_token_bytes([None, *words], eos_id=0)
    order = vocab_order(vocab)
    rec = Recognizer(rtn, native=native)
    rec.probing = probing
    eos = np.array([0], dtype=np.int32)
    return CFGConstraint(parse_grammar(text), rtn, vocab, rec, order.rank_to_id, order.rank_bytes, eos)


@st.composite
def vocabularies(draw: st.DrawFn) -> list[bytes]:
    words = draw(st.lists(st.text(alphabet=ALPHABET, min_size=2, max_size=5), min_size=5, max_size=60))
    return sorted({c.encode() for c in ALPHABET} | {w.encode() for w in words})


@SETTINGS
@given(grammars(lexemes=True), vocabularies(), st.lists(st.integers(0, 255), max_size=20))
def test_the_probe_takes_the_tokens_of_the_full_simulation(
    text: str, words: list[bytes], choices: list[int]
) -> None:
    """Every token simulated from every chart of a random walk: the probing simulation (Python and compiled)
    takes the same tokens as the one that closes every set, and builds a subset of its rules."""
    full = _constraint(text, words, False, probing=False)
    probed = [_constraint(text, words, False, probing=True)]
    if earley.compiled is not None:
        probed.append(_constraint(text, words, True, probing=True))
    charts = [c.recognizer.initial() for c in (full, *probed)]
    every = list(range(len(full.rank_bytes)))
    for k in [*choices, -1]:
        expected = full._simulate_py(charts[0], every)
        for c, chart in zip(probed, charts[1:], strict=True):
            assert c._simulate(chart, every) == expected
            assert set(c.rtn.built) <= set(full.rtn.built)
        if len(probed) == 2:
            assert probed[0].rtn.built == probed[1].rtn.built  # the compiled probe builds what Python's does
        if k < 0:
            break
        live = [b for b in ALPHABET.encode() if full.recognizer.step(charts[0], b) is not None]
        if not live:
            break
        b = live[k % len(live)]
        for c, chart in zip((full, *probed), charts, strict=True):
            nxt = c.recognizer.step(chart, b)
            assert nxt is not None
            chart.append(nxt)


@pytest.mark.skipif(earley.compiled is None, reason="earley_c is not built")
def test_the_compiled_simulation_without_a_probe_closes_every_set() -> None:
    """`probe=None` (Recognizer.probing False): the compiled simulation builds what the full one does."""
    text = 'start: "x" b?\nb: "y" d | "[" b "]"\nd: "z" | "(" d ")"\n'
    words = [b"x", b"y", b"xy"]
    full, probed = _constraint(text, words, True, probing=False), _constraint(text, words, True, probing=True)
    for c in (full, probed):
        c._simulate(c.recognizer.initial(), list(range(len(c.rank_bytes))))
    b = full.rtn.names.index("b")
    assert full.rtn.starts[b] >= 0 and probed.rtn.starts[b] < 0


def test_a_rule_the_probe_builds_is_read_from_the_moved_table() -> None:
    """The probe builds a rule whose first bytes are not exact (an unproductive branch), large enough that
    the RTN's table moves: its start state must be read from the new table (the compiled probe read the
    old one once, where the new rows below the old capacity are dead, and refused the token)."""
    long = '"' + "a" * 1100 + '"'  # (more states than the RTN's first capacity)
    text = (
        f'start: "x" big\nbig: "y" {long} | "z" dead | "[" big "]"\ndead: dead "c"\n'  # (recursive: a rule)
    )
    for native in (False, True) if earley.compiled is not None else (False,):
        c = _constraint(text, [b"x", b"y", b"xy"], native, probing=True)
        big = c.rtn.names.index("big")
        assert c.recognizer.first(big) is None
        chart, table = c.recognizer.initial(), c.rtn.flat
        assert c._simulate(chart, [c.rank_bytes.index(b"xy")]) == [c.rank_bytes.index(b"xy")]
        assert c.rtn.starts[big] >= 0 and c.rtn.flat is not table  # built by the probe: the table moved
