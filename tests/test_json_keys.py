"""The trie key language (json_keys.excluding) against the generic complement-and-product it replaces."""

from __future__ import annotations

import json

import hypothesis.strategies as st
import numpy as np
from hypothesis import HealthCheck, given, settings

from decc.grammars import ByteDFA
from decc.grammars.json.json_keys import excluding, spellings
from decc.grammars.json.json_numbers import alt, lit
from decc.grammars.json.json_schema import ANY_BODY, NOTHING, compile_json_schema, string_product
from decc.grammars.json.regex_ops import byte_runs, dfa_of, difference

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# short names over characters that JSON spells in several ways: quotes, escapes, controls, non-ASCII
NAMES = st.text(
    st.sampled_from(["a", "b", '"', "\\", "\n", "\x01", "/", "é", "€", "\U0001f600"])
    | st.characters(blacklist_categories=("Cs",), max_codepoint=0x2FF),
    max_size=5,
)


def _spellings(names: list[str]) -> set[str]:
    return {json.dumps(n, ensure_ascii=a)[1:-1] for n in names for a in (True, False)}


@SETTINGS
@given(name=NAMES | st.text(max_size=4))
def test_spellings_are_json_dumps(name: str) -> None:
    """The declared names excluded from extra keys: `json.dumps`' two spellings (the shortcut for plain
    ASCII names included)."""
    assert set(spellings(name)) == _spellings([name])


@SETTINGS
@given(names=st.lists(NAMES, max_size=6), extra=st.lists(NAMES, max_size=8))
def test_trie_equals_generic_complement(names: list[str], extra: list[str]) -> None:
    spelled = _spellings(names)
    body = dfa_of(ANY_BODY)
    fast = dfa_of(excluding(body, sorted(w.encode() for w in spelled)))
    generic = string_product((), alt(*(lit(w) for w in spelled)) if spelled else NOTHING)[0]
    slow = dfa_of(generic)
    what = "test"
    assert difference(fast, [slow], what).n_states == 0
    assert difference(slow, [fast], what).n_states == 0
    # and membership, against the definition: a string body that is none of the spellings
    probes = spelled | _spellings(extra) | {w + x for w in spelled for x in ("", "a", "\\n")}
    probes |= {w[:-1] for w in spelled}
    for p in probes:
        data = p.encode()
        assert fast.accepts(data) == (body.accepts(data) and p not in spelled), p


def test_undeclared_keys_exclude_every_spelling() -> None:
    """additionalProperties: a key spelled as a declared name (either escaping) is a declared member."""
    schema = {
        "type": "object",
        "properties": {"é": {"type": "integer"}, 'a"b': {"type": "integer"}},
        "additionalProperties": {"type": "string"},
    }
    c = compile_json_schema(schema)
    assert isinstance(c, ByteDFA)
    assert c.accepts(b'{"\\u00e9": 1, "x": "s"}')
    assert c.accepts('{"é": 1, "x": "s"}'.encode())
    assert not c.accepts('{"é": "s"}'.encode())
    assert not c.accepts(b'{"\\u00e9": "s"}')
    assert not c.accepts(b'{"a\\"b": "s"}')
    assert c.accepts(b'{"a\\"bc": "s"}')
    assert c.accepts(b'{"a\\"": "s"}')


@SETTINGS
@given(
    n=st.integers(1, 6),
    cells=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 255), st.integers(0, 255), st.integers(-1, 5))
    ),
)
def test_byte_runs_rebuild_the_table(n: int, cells: list[tuple[int, int, int, int]]) -> None:
    """`byte_runs` (node_of's edges, the trie's base rows): the runs give back every live cell exactly."""
    table = np.full((n, 256), -1, dtype=np.int32)
    for q, a, b, t in cells:
        table[q % n, min(a, b) : max(a, b) + 1] = t % n if t >= 0 else -1
    rebuilt = np.full((n, 256), -1, dtype=np.int32)
    runs = byte_runs(table)
    for q, lo, hi, t in runs:
        assert (rebuilt[q, lo : hi + 1] == -1).all() and t >= 0
        rebuilt[q, lo : hi + 1] = t
    assert (rebuilt == table).all()
    pairs = zip(runs, runs[1:], strict=False)
    assert all(a[3] != b[3] or a[2] + 1 < b[1] or a[0] != b[0] for a, b in pairs)  # runs are maximal


def test_the_key_automaton_lists_its_edges_on_first_read_and_keeps_them_lazy_in_a_pickle() -> None:
    """`excluding` leaves its edge list for the rule build to make (most generations never enter the extra
    keys' rule); hashing, comparing and pickling the automaton must not make it."""
    import pickle

    from decc.grammars.json.json_keys import TrieEdges

    body = dfa_of(ANY_BODY)
    auto = excluding(body, [b"ab", b"b"])
    edges = auto.edges
    assert isinstance(edges, TrieEdges) and edges._edges is None
    twin = excluding(body, [b"ab", b"b"])
    assert hash(auto) == hash(twin) and auto == twin and edges._edges is None
    assert auto != excluding(body, [b"ab"])
    copy = pickle.loads(pickle.dumps(auto))
    assert edges._edges is None and copy == auto and hash(copy) == hash(auto)
    listed = tuple(edges)  # now made: the same automaton as the eager walk over the same words
    assert len(edges) == len(listed) and edges[0] == listed[0]
    assert all(0 <= s < auto.n and 0 <= d < auto.n and 0 <= lo <= hi <= 255 for s, lo, hi, d in listed)
    assert dfa_of(auto).accepts(b"a") and not dfa_of(auto).accepts(b"ab") and dfa_of(auto).accepts(b"abc")
