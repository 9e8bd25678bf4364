"""Byte-level Earley recognizer over a recursive transition network.

An item is (global RTN state, origin). Per byte: scan the byte edges of the previous set, then close the new
set under prediction (a call edge adds the callee's start item here) and completion (an item in an accepting
state advances the callers waiting for its rule at its origin). Nullable callees are stepped over at
prediction time (Aycock-Horspool), so completions never need to look at the set under construction. Left
recursion needs nothing special: the start item of a rule is added once per set. A rule is built in the RTN
the first time it is predicted (`RTN.enter`): a walk only pays for the rules it visits.

A chart is a plain list of `ESet`s, one per byte position; sets are never changed once built, so a chart
is cloned by copying the list (sharing the sets) and extended by appending.

`earley_c` (earley_c.c, built by `pip install`, optional) is the same step and closure compiled, building
equal sets in the same order; this Python one is the fallback (no C compiler at install, `DECC_PURE_PYTHON=1`
read at import) and the tests' oracle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..native import use_native
from .exact_first import ExactFirst
from .rtn import RTN

try:
    from . import earley_c as compiled
except ImportError:  # pragma: no cover - no C compiler at install
    compiled = None

NATIVE = use_native(compiled)


class ESet:
    """One Earley set: its items, the items that can scan a byte, and the callers waiting per rule."""

    __slots__ = ("items", "scan", "waiting", "accept", "_states", "mask", "tensor", "contexts")

    def __init__(
        self,
        items: set[tuple[int, int]] | None = None,
        scan: list[tuple[int, int]] | None = None,
        waiting: dict[int, list[tuple[int, int]]] | None = None,
        accept: bool = False,
    ) -> None:
        self.items: set[tuple[int, int]] = set() if items is None else items
        self.scan: list[tuple[int, int]] = [] if scan is None else scan
        self.waiting: dict[int, list[tuple[int, int]]] = {} if waiting is None else waiting
        self.accept = accept
        self._states: np.ndarray | None = None
        self.mask: np.ndarray | None = None  # the token mask of this set, filled by the matcher
        self.tensor: Any = None  # the same mask as a torch tensor (what fill_bitmask copies)
        self.contexts: dict[int, int] | None = None  # rule -> interned context (cfg_matcher), made on use

    def scan_states(self) -> np.ndarray:
        """The distinct RTN states of the scanning items, sorted."""
        if self._states is None:
            self._states = np.array(sorted({g for g, _ in self.scan}), dtype=np.int64)
        return self._states


Chart = list[ESet]


def tables_of(rtn: RTN) -> tuple:
    """The RTN's per-state lists as the compiled step, closure and walks read them (earley_c.c's `tables`)."""
    return (rtn.has_bytes, rtn.accepts_at, rtn.calls, rtn.rule_at, rtn.starts, rtn.nullable, rtn.enter)


class Recognizer:
    """`native`: use the compiled step (when built); False forces the Python one (the tests' oracle)."""

    def __init__(self, rtn: RTN, native: bool = NATIVE) -> None:
        self.rtn = rtn
        # The RTN's own per-state lists, shared: they grow in place as rules are built (`_close` enters a
        # rule the first time it predicts it). The byte table is read through `rtn.flat` (a memoryview,
        # not nested lists: unrolled lexemes make tables of ~10^4 rows), which is replaced when it grows.
        self.has_bytes = rtn.has_bytes
        self.accepting = rtn.accepts_at
        self.calls = rtn.calls
        self.rule_of = rtn.rule_at
        self.starts = rtn.starts
        self.nullable = rtn.nullable
        self.native = native and compiled is not None
        self.first = ExactFirst(rtn)  # the rules whose first bytes `probe` may trust
        self.probing = True  # the simulation asks `probe` for a token's last byte (False: the tests' oracle)
        self._tables = tables_of(rtn)

    def initial(self) -> Chart:
        """The chart before any byte: the start rule predicted at 0 and closed."""
        seeds = [(self.rtn.enter(0), 0)]
        if self.native:
            return [compiled.close([], seeds, self._tables, ESet)]
        return [self._close([], ESet(), seeds)]

    def step(self, chart: Chart, byte: int) -> ESet | None:
        """The set after reading `byte` at the end of `chart`, or None when no item can take it."""
        if self.native:
            return compiled.step(chart, byte, self.rtn.flat, self._tables, ESet)
        flat = self.rtn.flat
        seeds = []
        for g, o in chart[-1].scan:
            nxt = flat[(g << 8) | byte]
            if nxt >= 0:
                seeds.append((nxt, o))
        if not seeds:
            return None
        return self._close(chart, ESet(), seeds)

    def probe(self, chart: Chart, byte: int, final: int) -> int:
        """Whether `final` can follow `byte` after `chart`, without closing (or keeping) the set in between:
        0 when no item takes `byte`, 1 when some item of that set takes `final`, 2 when none does.

        The set's items are visited in `_close`'s order, stopping at the first that takes `final`; a rule
        they predict is not built when its first bytes are exact (`ExactFirst`): `final` is taken there
        exactly when it is one of them. A simulation's token whose last byte is all that is left asks this
        instead of `step`: the rules its next-to-last byte predicts are then built only when a walk really
        goes into them (the compiled simulation does the same, in the same order)."""
        rtn = self.rtn
        seeds = []
        for g, o in chart[-1].scan:
            nxt = rtn.flat[(g << 8) | byte]
            if nxt >= 0:
                seeds.append((nxt, o))
        if not seeds:
            return 0
        pos = len(chart)
        has_bytes, accepting, calls, rule_of = self.has_bytes, self.accepting, self.calls, self.rule_of
        starts, nullable, enter, first = self.starts, self.nullable, rtn.enter, self.first
        items = set(seeds)
        work = list(dict.fromkeys(seeds))
        while work:
            g, o = work.pop()
            if has_bytes[g] and rtn.flat[(g << 8) | final] >= 0:
                return 1
            for callee, nxt in calls[g]:
                start = starts[callee]
                if start < 0:
                    bits = first(callee)
                    if bits is None:
                        start = enter(callee)
                    elif bits[final >> 3] >> (final & 7) & 1:
                        return 1
                if start >= 0 and (start, pos) not in items:
                    items.add((start, pos))
                    work.append((start, pos))
                if nullable[callee] and (nxt, o) not in items:
                    items.add((nxt, o))
                    work.append((nxt, o))
            if accepting[g] and o != pos:  # (an empty completion: the caller stepped over the nullable rule)
                for it in chart[o].waiting.get(rule_of[g], ()):
                    if it not in items:
                        items.add(it)
                        work.append(it)
        return 2

    def simulate(
        self,
        chart: Chart,
        ranks: list[int],
        words: tuple[bytes, ...] | bytes,
        offsets: np.ndarray | None = None,
        memo: dict | None = None,
    ) -> list[int]:
        """cfg_matcher's simulation of uncertain tokens, compiled (`native` only): the same walks, groups
        and loop, its sets past `chart` kept in C (they are never seen outside); `CFGConstraint._simulate_py`
        is the oracle. `words`: the ranks' bytes, or all of them joined with their int64 `offsets` (one
        more than the ranks; read faster). `memo`: a dict where a single scanning state's walk of its
        tokens is kept (the same tokens every time: its uncertain ones), None to keep none."""
        probe = self.first if self.probing else None  # (the last-byte probe: see `probe`)
        return compiled.simulate(chart, ranks, words, self.rtn, self._tables, offsets, probe, memo)

    @staticmethod
    def compose(
        scan: list[tuple[int, int]],
        row_of: np.ndarray,
        n: int,
        buf: np.ndarray,
        uncertain: list,
        rank_to_id: np.ndarray,
        out: np.ndarray,
    ) -> list[int] | tuple[int, ...]:
        """cfg_matcher's mask assembly compiled (`native` only; `CFGConstraint._compose_py` is the oracle):
        the scanning states not classified yet (a tuple), or, with `out` set to the OR of their rows, the
        list of their uncertain ranks whose token is not set there."""
        return compiled.compose(scan, row_of, n, buf, uncertain, rank_to_id, out)

    def signature(self, chart: Chart, names: list[int], interned: dict, ids: Any) -> int | None:
        """cfg_matcher's mask-cache signature compiled (`native` only; `CFGConstraint._signature_py` is the
        oracle): the same keys interned in the same order in `interned` (ids from the counter `ids`), the
        contexts memoized in the same `ESet.contexts`; None when a context is cyclic."""
        return compiled.signature(chart, names, self.rule_of, interned, ids)

    @staticmethod
    def set_ranks(mask: np.ndarray, ranks: list[int], rank_to_id: np.ndarray) -> None:
        """Set the bits of the tokens of `ranks` in the int32 bitmask `mask`, compiled (`native` only;
        `set_bits` of the ranks' ids is the oracle)."""
        compiled.set_ranks(mask, ranks, rank_to_id)

    def _close(self, chart: Chart, s: ESet, seeds: list[tuple[int, int]]) -> ESet:
        pos = len(chart)
        items, scan, waiting = s.items, s.scan, s.waiting
        has_bytes, accepting, calls, rule_of = self.has_bytes, self.accepting, self.calls, self.rule_of
        starts, nullable, enter = self.starts, self.nullable, self.rtn.enter
        work = []
        for it in seeds:
            if it not in items:
                items.add(it)
                work.append(it)
        while work:
            g, o = work.pop()
            if has_bytes[g]:
                scan.append((g, o))
            for callee, nxt in calls[g]:
                waiting.setdefault(callee, []).append((nxt, o))
                start = starts[callee]
                it = (start if start >= 0 else enter(callee), pos)
                if it not in items:
                    items.add(it)
                    work.append(it)
                if nullable[callee]:
                    it = (nxt, o)
                    if it not in items:
                        items.add(it)
                        work.append(it)
            if accepting[g]:
                r = rule_of[g]
                if r == 0 and o == 0:
                    s.accept = True
                if o == pos:
                    continue  # an empty completion: the caller already stepped over the nullable rule
                for it in chart[o].waiting.get(r, ()):
                    if it not in items:
                        items.add(it)
                        work.append(it)
        return s

    def advance_bytes(self, chart: Chart, data: bytes) -> Chart | None:
        """`chart` extended by `data` (a new list; `chart` is unchanged), or None if some byte is refused."""
        out = list(chart)
        return out if self.extend(out, data) else None

    def extend(self, chart: Chart, data: bytes) -> bool:
        """`advance_bytes` in place: append the sets after `data` to `chart`; False, with `chart` as it was,
        when some byte is refused. (A matcher owns its chart: copying it each token cost O(its length), and
        made a new list of every set, young for the cyclic collector to walk, at each step.)"""
        n = len(chart)
        try:
            if self.native:  # `step` inlined: the call per byte is a good part of a short token's advance
                rtn, tables = self.rtn, self._tables
                for b in data:
                    got = compiled.step(chart, b, rtn.flat, tables, ESet)
                    if got is None:
                        break
                    chart.append(got)
                else:
                    return True
            else:
                for b in data:
                    s = self.step(chart, b)
                    if s is None:
                        break
                    chart.append(s)
                else:
                    return True
        except BaseException:  # (a limit hit while building a rule: the chart is left as it was)
            del chart[n:]
            raise
        del chart[n:]
        return False

    @staticmethod
    def is_accepting(chart: Chart) -> bool:
        """The bytes so far form a complete sentence of the start rule."""
        return chart[-1].accept

    def accepts(self, data: bytes) -> bool:
        chart = self.advance_bytes(self.initial(), data)
        return chart is not None and chart[-1].accept

    def is_prefix(self, data: bytes) -> bool:
        """`data` can still be completed to a sentence (every item of a live chart is viable)."""
        return self.advance_bytes(self.initial(), data) is not None
