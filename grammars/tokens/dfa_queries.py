"""Questions a static checker asks of a byte DFA's language L (and of its viable prefixes).

Every state of a compiled DFA is reachable and can still reach acceptance, which makes these exact for
plain DFAs. Counters are ignored: the answers are about a superset of L, so a "never"/"every" claim made
here also holds for L itself, and a checker built on them reports no false errors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..automata.dfa import ByteDFA


def language(compiled: Any) -> ByteDFA | None:
    """A trimmed DFA of a compiled constraint's language, whichever optimizer passes ran (None: not a
    regular constraint). The queries below are exact on it; the checks must not depend on the passes."""
    from ..automata.automata import trim
    from .lazy_product import Conjunction

    if isinstance(compiled, ByteDFA):
        return trim(compiled)
    if isinstance(compiled, Conjunction):
        return compiled.language()
    return None


def is_viable_prefix(dfa: ByteDFA, text: str) -> bool:
    """Can some string of L start with `text` (a complete output, or one cut short)?"""
    return dfa.n_states > 0 and dfa.step(dfa.start, text.encode()) >= 0


def can_contain(dfa: ByteDFA, needle: str) -> bool:
    """Can `needle` occur inside some viable prefix? (From some state, its bytes keep the walk alive.)"""
    states = np.arange(dfa.n_states)
    for b in needle.encode():
        states = dfa.transitions[states, b]
        states = states[states >= 0]
    return bool(states.size)


def all_contain(dfa: ByteDFA, needle: str) -> bool:
    """Does every string of L contain `needle`? (No accepting state is reachable while avoiding it.)"""
    if dfa.n_states == 0:
        return True
    pat = needle.encode()
    kmp = _kmp_table(pat)
    m = len(pat)
    seen = np.zeros((dfa.n_states, m), dtype=bool)
    q = np.array([dfa.start])
    k = np.array([0])
    seen[q, k] = True
    while q.size:
        if dfa.accepting[q].any():
            return False
        nq, nk = [], []
        for b in range(256):
            q2 = dfa.transitions[q, b]
            k2 = kmp[k, b]
            ok = (q2 >= 0) & (k2 < m)
            nq.append(q2[ok])
            nk.append(k2[ok])
        q, k = np.concatenate(nq), np.concatenate(nk)
        pairs = np.unique(q.astype(np.int64) * m + k)
        q, k = pairs // m, pairs % m
        fresh = ~seen[q, k]
        q, k = q[fresh], k[fresh]
        seen[q, k] = True
    return True


def _kmp_table(pat: bytes) -> np.ndarray:
    """The string-matching automaton of `pat`: [len(pat) + 1, 256] → matched-prefix length after a byte."""
    m = len(pat)
    table = np.zeros((m + 1, 256), dtype=np.int64)
    table[0, pat[0]] = 1
    fallback = 0
    for i in range(1, m + 1):
        table[i] = table[fallback]
        if i < m:
            table[i, pat[i]] = i + 1
            fallback = table[fallback, pat[i]]
    return table
