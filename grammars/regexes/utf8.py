"""Code-point ranges to UTF-8 byte-range sequences (the construction of Rust regex-automata's `Utf8Sequences`).

Each sequence is a tuple of inclusive byte ranges, one per byte; together they match exactly the UTF-8
encodings of the code points in the input ranges, surrogates excluded, and nothing else (no overlongs).
"""

from __future__ import annotations

from functools import lru_cache

from .regex_ast import Ranges

ByteSeq = tuple[tuple[int, int], ...]

_SURROGATE_LO, _SURROGATE_HI = 0xD800, 0xDFFF
_LENGTH_LIMITS = (0x7F, 0x7FF, 0xFFFF)


@lru_cache(maxsize=4096)
def utf8_sequences(ranges: Ranges) -> tuple[ByteSeq, ...]:
    out: list[ByteSeq] = []
    for lo, hi in ranges:
        _split(lo, hi, out)
    return tuple(out)


def _split(lo: int, hi: int, out: list[ByteSeq]) -> None:
    if lo > hi:
        return
    if lo <= _SURROGATE_HI and hi >= _SURROGATE_LO:
        _split(lo, _SURROGATE_LO - 1, out)
        _split(_SURROGATE_HI + 1, hi, out)
        return
    # Split where the encoded length changes.
    for limit in _LENGTH_LIMITS:
        if lo <= limit < hi:
            _split(lo, limit, out)
            _split(limit + 1, hi, out)
            return
    if hi <= 0x7F:
        out.append(((lo, hi),))
        return
    # Split until every continuation byte spans its full 0x80..0xBF range below the first differing byte.
    for k in (1, 2, 3):
        mask = (1 << (6 * k)) - 1
        if lo & ~mask != hi & ~mask:
            if lo & mask:
                _split(lo, lo | mask, out)
                _split((lo | mask) + 1, hi, out)
                return
            if hi & mask != mask:
                _split(lo, (hi & ~mask) - 1, out)
                _split(hi & ~mask, hi, out)
                return
    a, b = chr(lo).encode(), chr(hi).encode()
    out.append(tuple(zip(a, b, strict=True)))


def state_count(ranges: Ranges) -> int:
    """NFA states needed for one character of `ranges` with shared suffixes (see `nfa._charset`)."""
    return 2 + len({seq[k:] for seq in utf8_sequences(ranges) for k in range(1, len(seq))})
