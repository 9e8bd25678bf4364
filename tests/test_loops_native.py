"""The compiled loop lookup (loops_c.c) against the Python one it replaces (cfg_loops.py): the same
components numbered alike, the same members and funnels, the same region keys and exits, and a layout key
that tells loops apart exactly when the Python's digest does."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.grammars.contextfree import cfg_loops
from decc.grammars.contextfree.cfg_loops import (
    Loops,
    Region,
    loop_classes,
    loop_key,
    region_key,
    region_key_py,
)

needs_native = pytest.mark.skipif(cfg_loops.compiled is None, reason="the C extension loops_c is not built")


def test_the_compiled_loop_lookup_is_built_and_used() -> None:
    """`make test` sets DECC_REQUIRE_NATIVE=1: a broken build fails there instead of testing Python twice."""
    if cfg_loops.compiled is None:
        if os.environ.get("DECC_REQUIRE_NATIVE") == "1":
            pytest.fail("loops_c is not built (pip install -e . compiles it; is there a C compiler?)")
        pytest.skip("the C extension loops_c is not built in this install")
    pure = os.environ.get("DECC_PURE_PYTHON", "") not in ("", "0")
    assert cfg_loops.NATIVE != pure


@needs_native
def test_decc_pure_python_turns_the_compiled_loop_lookup_off() -> None:
    code = "from decc.grammars.contextfree import cfg_loops as c; print(c.NATIVE)"
    env = {**os.environ, "DECC_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


@st.composite
def rules(draw: st.DrawFn) -> tuple[np.ndarray, int, int, int, int]:
    """A rule's states lo..hi-1 inside a larger table (`dead` past its end): wide states (many live bytes)
    and narrow ones, each byte led to one of a few targets in the rule, so that loops, states off loops
    leading into them (funnels) and states leading into several appear."""
    lo = draw(st.integers(0, 3))
    n = draw(st.integers(1, 14))
    hi = lo + n
    dead = hi + draw(st.integers(0, 3))
    table = np.full((dead + 1, 256), dead, dtype=np.int32)
    for g in range(lo, hi):
        live = draw(st.sampled_from([0, 1, 2, 5, 15, 16, 17, 40, 256]))
        targets = draw(st.lists(st.integers(lo, hi - 1), min_size=1, max_size=3))
        first = draw(st.integers(0, 256 - live))
        for b in range(live):
            table[g, first + b] = targets[b % len(targets)]
    return table, dead, lo, hi, draw(st.sampled_from([1, 2, 8, 16]))


@needs_native
@settings(max_examples=400, deadline=None)
@given(rules(), st.booleans())
def test_compiled_loops_are_the_pythons(case: tuple[np.ndarray, int, int, int, int], give_live: bool) -> None:
    """Same components (numbered alike) and the same `members` of every state, funnels included; the states
    flagged at once (`off_loops`) are those whose `members` is None."""
    table, dead, lo, hi, wide = case
    live = (table[lo:hi] != dead).sum(axis=1) if give_live else None
    got, want = (
        Loops(table, dead, lo, hi, wide, live, native=True),
        Loops(table, dead, lo, hi, wide, live, False),
    )
    assert got.comp.tolist() == want.comp.tolist()
    assert got.any_loop == want.any_loop
    for s in range(lo, hi):
        a, b = got.members(s), want.members(s)
        assert (a is None) == (b is None), s
        if a is not None:
            assert a.dtype == b.dtype and a.tolist() == b.tolist(), s

    flags = got.off_loops()
    assert flags.dtype == bool and flags.tolist() == want.off_loops().tolist()
    assert flags.tolist() == [want.members(s) is None for s in range(lo, hi)]


ALPHA = b'abc"'


@st.composite
def loops(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """A loop's members 0..n-1 (copies of 1-3 prototype rows, some equivalent) over a few bytes, exit
    states n..n+2 and the dead state n+3, with exit flags and entering bytes."""
    n_proto = draw(st.integers(1, 3))
    n = draw(st.integers(n_proto, 8))
    proto_of = [
        *range(n_proto),
        *draw(st.lists(st.integers(0, n_proto - 1), min_size=n - n_proto, max_size=n - n_proto)),
    ]
    exits, dead = [n, n + 1, n + 2], n + 3
    target = st.one_of(st.tuples(st.just("p"), st.integers(0, n_proto - 1)), st.sampled_from([*exits, dead]))
    byte = st.sampled_from([*ALPHA, 0, 255])
    protos = [
        (draw(st.lists(st.tuples(byte, target), min_size=1, max_size=6)), draw(st.booleans()),
         draw(st.lists(byte, max_size=3)))
        for _ in range(n_proto)
    ]  # fmt: skip
    table = np.full((dead + 1, 256), dead, dtype=np.int32)
    table[exits] = ord("a")
    exit_point = np.zeros(dead + 1, dtype=bool)
    enters = np.zeros((dead + 1, 256), dtype=bool)
    for g in range(n):
        row, flag, enter = protos[proto_of[g]]
        exit_point[g] = flag
        enters[g, enter] = True
        for b, t in row:
            if isinstance(t, tuple):
                t = draw(st.sampled_from([x for x in range(n) if proto_of[x] == t[1]]))
            table[g, b] = t
    return np.arange(n, dtype=np.int64), table, exit_point, enters, dead


@needs_native
@settings(max_examples=300, deadline=None)
@given(loops())
def test_compiled_region_keys_are_the_pythons(
    case: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int],
) -> None:
    """Same classes (numbered alike), and from every member the same digest and exits."""
    members, table, exit_point, enters, dead = case
    classes = cfg_loops.compiled.classes(table, members, dead, exit_point, enters)
    assert (
        np.frombuffer(classes, dtype=np.int64).tolist()
        == loop_classes(members, table, dead, exit_point, enters).tolist()
    )
    for g in members.tolist():
        assert region_key(g, members, table, dead, exit_point, enters, native=True) == region_key_py(
            g, members, table, dead, exit_point, enters
        )


def _placed(case: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], at: int, size: int) -> tuple:
    """The loop (members, exits; not its dead state) copied to states at.., in a table of `size` states."""
    members, table, exit_point, enters, dead = case
    big = np.full((size + 1, 256), size, dtype=np.int32)
    flags, into = np.zeros(size + 1, dtype=bool), np.zeros((size + 1, 256), dtype=bool)
    n = dead  # members and exits
    big[at : at + n] = np.where(table[:n] == dead, size, table[:n] + at)
    flags[at : at + n], into[at : at + n] = exit_point[:n], enters[:n]
    return members + at, big, flags, into, size


@needs_native
@settings(max_examples=300, deadline=None)
@given(
    loops(), st.integers(0, 5), st.integers(0, 5),
    st.sampled_from(["none", "target", "flag", "enter", "exit"]), st.data(),
)  # fmt: skip
def test_compiled_layouts_tell_loops_apart_as_the_digest_does(
    case: tuple, a: int, b: int, change: str, data: st.DataObject
) -> None:
    """Two copies of a loop (at different places, one maybe changed in one spot): from any member of each,
    the layouts are equal exactly when the Python's digests are, and `loop_key` gives the Python's key and
    exits, memoized or not."""
    n = len(case[0])
    size = 2 * (n + 3) + 10
    one = _placed(case, a, size)
    other = _placed(case, n + 3 + b, size)
    members, table, flags, into, dead = other
    table, flags, into = table.copy(), flags.copy(), into.copy()
    at = int(members[data.draw(st.integers(0, n - 1))])
    byte = data.draw(st.sampled_from([*ALPHA, 0, 255]))
    if change == "target":
        table[at, byte] = data.draw(st.sampled_from([dead, *members.tolist(), int(members[-1]) + 1, 0]))
    elif change == "flag":
        flags[at] = not flags[at]
    elif change == "enter":
        into[at, byte] = not into[at, byte]
    elif change == "exit":
        table[at, byte] = int(members[-1]) + 3  # an exit no copy has
    other = (members, table, flags, into, dead)
    for g1 in one[0].tolist():
        for g2 in other[0].tolist():
            lay = [
                cfg_loops.compiled.layout(x[1], x[0], g, x[4], x[2], x[3])
                for x, g in ((one, g1), (other, g2))
            ]
            dig = [
                cfg_loops.layout_digest(g, x[0], x[1], x[4], x[2], x[3]) for x, g in ((one, g1), (other, g2))
            ]
            assert (lay[0] == lay[1]) == (dig[0] == dig[1]), (g1, g2)
    for x in (one, other):
        for g in x[0].tolist():
            want = region_key_py(g, x[0], x[1], x[4], x[2], x[3])
            for _ in range(2):  # a miss, then a hit
                assert loop_key(g, x[0], x[1], x[4], x[2], x[3], native=True) == want
                assert loop_key(g, x[0], x[1], x[4], x[2], x[3], native=False) == want


@st.composite
def regions(draw: st.DrawFn) -> tuple[Region, bytes, np.ndarray, int]:
    """A region over a vocabulary of ranks in byte order (bounds per first byte, some bytes with no token),
    with sorted inside, uncertain and leaving ranks drawn from it; a set of first bytes; a rank -> id map."""
    sizes = draw(st.lists(st.sampled_from([0, 0, 1, 2, 5]), min_size=256, max_size=256))
    bounds = np.zeros(257, dtype=np.int64)
    np.cumsum(sizes, out=bounds[1:])
    n = int(bounds[-1])
    ranks = st.lists(st.integers(0, max(n - 1, 0)), unique=True, max_size=min(n, 60)) if n else st.just([])
    inside, uncertain, leaving = (
        np.array(sorted(draw(ranks)), dtype=d) for d in (np.int32, np.int32, np.int64)
    )
    rank_to_id = np.array(draw(st.permutations(range(n))), dtype=np.int64) + draw(st.integers(0, 40))
    firsts = bytes(sorted(draw(st.sets(st.sampled_from([0, 1, 34, 92, 97, 200, 255]), max_size=7))))
    nodes = tuple((1, int(r), int(r) + 1, 0, False) for r in leaving.tolist())
    region = Region(inside, uncertain, nodes, leaving, bounds, 1)
    return region, firsts, rank_to_id, (int(rank_to_id.max(initial=0)) + 32) // 32 + draw(st.integers(0, 2))


@needs_native
@settings(max_examples=300, deadline=None)
@given(regions())
def test_compiled_first_bytes_are_the_pythons(case: tuple[Region, bytes, np.ndarray, int]) -> None:
    """The compiled slices per first byte give numpy's masks over every rank: the same bitmask, uncertain
    ranks and leaving nodes, in the same order and kinds."""
    region, firsts, rank_to_id, n_words = case
    got = region.first_bytes(firsts, rank_to_id, n_words, native=True)
    region.words.clear()  # (memoized by byte set: the Python's made afresh)
    want = region.first_bytes(firsts, rank_to_id, n_words, native=False)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and a.tolist() == b.tolist()
