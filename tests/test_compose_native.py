"""A mask's assembly compiled (earley_c.c `compose`) against the numpy one it replaces.

Oracles: for synthetic tables, the definition (the OR of the distinct non-empty rows of the scanning
states, and the sorted union of their uncertain ranks less those set there; the unclassified states
named instead, nothing written); along walks through JSON schemas' instances, `CFGConstraint._compose_py`
on the same classified states, whose mask and ranks must be the very same.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.grammars import Vocabulary
from decc.grammars.contextfree import earley
from decc.grammars.contextfree.earley import Recognizer
from decc.grammars.json.json_schema import json_schema

needs_native = pytest.mark.skipif(earley.compiled is None, reason="earley_c is not built")


def _oracle(
    scan: list[tuple[int, int]],
    row_of: np.ndarray,
    n: int,
    buf: np.ndarray,
    uncertain: list[np.ndarray],
    rank_to_id: np.ndarray,
) -> tuple[int, ...] | tuple[np.ndarray, list[int]]:
    states = sorted({g for g, _ in scan})
    missing = tuple(g for g in states if g >= n or row_of[g] < 0)
    if missing:
        return missing
    mask = np.zeros(buf.shape[1], dtype=np.int32)
    for r in {int(row_of[g]) for g in states} - {0}:
        mask |= buf[r]
    ranks = sorted({int(r) for g in states for r in uncertain[g]})
    bits = mask.view(np.uint32)
    return mask, [r for r in ranks if not (bits[rank_to_id[r] >> 5] >> (rank_to_id[r] & 31)) & 1]


@needs_native
@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 40), st.integers(1, 20), st.integers(0, 70), st.randoms(), st.floats(0, 1), st.booleans()
)
def test_compose_is_its_definition(
    n_states: int, n_words: int, n_scan: int, rnd: random.Random, p: float, big: bool
) -> None:
    """Rows, states and uncertain arrays drawn at random (some states unclassified, past `n`, or sharing
    one uncertain array; `big`: long ones, whose union is taken by flags rather than a sort): the same
    answer as the definition, and `out` untouched when states are missing."""
    n_ranks = 32 * n_words - rnd.randrange(0, 31)
    rank_to_id = np.array(rnd.sample(range(32 * n_words), n_ranks), dtype=np.int64)
    buf = np.array([[rnd.getrandbits(32) for _ in range(n_words)] for _ in range(6)], dtype=np.uint32)
    buf[0] = 0
    buf = buf.view(np.int32)
    row_of = np.array([rnd.randrange(-1 if rnd.random() < p / 4 else 0, 6) for _ in range(n_states)])
    shared = np.array(sorted(rnd.sample(range(n_ranks), min(5, n_ranks))), dtype=np.int64)
    uncertain = [
        shared
        if rnd.random() < 0.3
        else np.array(
            sorted(rnd.sample(range(n_ranks), rnd.randrange(0, min(300 if big else 9, n_ranks + 1))))
        )
        for _ in range(n_states)
    ]
    uncertain = [u.astype(np.int64) for u in uncertain]
    n = n_states - (rnd.randrange(0, 3) if rnd.random() < p / 4 else 0)
    scan = [(rnd.randrange(n_states), rnd.randrange(5)) for _ in range(n_scan)]
    out = np.full(n_words, 7, dtype=np.int32)
    got = Recognizer.compose(scan, row_of.astype(np.int64), n, buf, uncertain, rank_to_id, out)
    want = _oracle(scan, row_of, n, buf, uncertain, rank_to_id)
    if isinstance(want, tuple) and not isinstance(want[0], np.ndarray):
        assert got == want and isinstance(got, tuple)
        assert (out == 7).all()
    else:
        assert isinstance(got, list)
        assert np.array_equal(out, want[0]) and got == want[1]


@needs_native
def test_compose_rejects_malformed_input() -> None:
    buf = np.zeros((2, 1), dtype=np.int32)
    r2i = np.arange(32, dtype=np.int64)
    u = [np.zeros(0, dtype=np.int64)] * 2
    out = np.zeros(1, dtype=np.int32)
    with pytest.raises(IndexError):  # a row past buf
        Recognizer.compose([(0, 0)], np.array([5, 0]), 2, buf, u, r2i, out)
    with pytest.raises(TypeError):  # rows of the wrong width
        Recognizer.compose([(0, 0)], np.array([1, 0]), 2, buf, u, r2i, np.zeros(2, dtype=np.int32))
    with pytest.raises(TypeError):  # not a pair
        Recognizer.compose([0], np.array([1, 0]), 2, buf, u, r2i, out)
    with pytest.raises(TypeError):  # uncertain ranks not int64
        Recognizer.compose([(0, 0)], np.array([1, 0]), 2, buf, [np.zeros(1, dtype=np.int32)] * 2, r2i, out)
    with pytest.raises(IndexError):  # a state past uncertain
        Recognizer.compose([(1, 0)], np.array([1, 0]), 2, buf, u[:1], r2i, out)
    with pytest.raises(IndexError):  # a rank past rank_to_id
        Recognizer.compose([(0, 0)], np.array([1, 0]), 2, buf, [np.array([40], dtype=np.int64)] * 2, r2i, out)
    with pytest.raises(IndexError):  # a token id past the mask
        Recognizer.compose(
            [(0, 0)], np.array([1, 0]), 2, buf, [np.array([0], dtype=np.int64)] * 2, r2i + 64, out
        )


SCHEMAS = [
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["name"],
    },
    {
        "type": "array",
        "items": {
            "anyOf": [{"type": "integer"}, {"type": "object", "properties": {"a": {"type": "boolean"}}}]
        },
    },
    {
        "$defs": {
            "t": {"type": "object", "properties": {"k": {"$ref": "#/$defs/t"}, "v": {"type": "number"}}}
        },
        "$ref": "#/$defs/t",
    },
]
TEXTS = [
    ['{"name":"ab","tags":["x","yz"]}', '{"name":""}'],
    ['[1,{"a":true},-20,{}]', "[]"],
    ['{"k":{"k":{"v":1.5}},"v":2}', "{}"],
]


@needs_native
@pytest.mark.parametrize("k", range(len(SCHEMAS)))
def test_compose_along_instances_is_the_numpy_assembly(k: int) -> None:
    """Byte-level tokens plus a few longer ones: at every position of each instance, the compiled assembly
    (with its classifications) and `_compose_py` on the same states give the same mask and ranks."""
    pieces = [bytes([b]) for b in range(32, 127)] + [b'{"', b'":"', b'"]', b"},", b'[{"', b"true}", b"1.5"]
    vocab = Vocabulary.from_token_bytes([None, *pieces], eos_id=0)
    con = json_schema(json.dumps(SCHEMAS[k]), vocab, engine="grammar")
    assert con.recognizer.native
    for text in TEXTS[k]:
        chart = con.recognizer.initial()
        for i in range(len(text) + 1):
            last = chart[-1]
            mask = np.full(vocab.n_words, -1, dtype=np.int32)
            ranks = con._compose(last, mask)
            want_mask, want_ranks = con._compose_py(last)
            assert np.array_equal(mask, want_mask) and ranks == want_ranks
            if i < len(text):
                nxt = con.recognizer.advance_bytes(chart, text[i].encode())
                assert nxt is not None
                chart = nxt
