"""JSON numbers with an exponent (`1e3`, `2.5E-3`, `0.5e+2`) whose value lies between decimal bounds.

A number `M e k` with a non-zero mantissa M has the value 0.s * 10**(P + k), where s is M's significant
digits (leading zeros dropped, trailing zeros kept) and P the position of its first one: the count of
integer digits (`25.0` -> 2), or minus the zeros after the point (`0.005` -> -2). Q = P + k fixes the
decade [10**(Q-1), 10**Q) of the value, so a bounded range meets finitely many decades: in the decades
strictly inside the bounds' own any s will do; in a bound's decade s is a digit range (`frac_range`). For each
position P the exponent is then an integer range (`exponent_range`), open-ended when a bound is 0 or absent
(`5e-999` lies in [-1, 1]).

Not every spelling can be exact and regular: `1000...0e-N` is 1 exactly when N counts the zeros, which no
finite automaton can check for every length. So with an exponent the mantissa has at most `MAX_INT_DIGITS`
integer digits and at most `MAX_LEAD_ZEROS` zeros after the point before its first significant digit;
longer mantissas with an exponent are refused (numbers without an exponent are exact at any length,
json_numbers.decimal_range). Zero (`0e5`, `-0.00E-7`) is any exponent on a zero mantissa.

The automaton remembers the position until the exponent is read, so each allowed position costs a few
states: `number(min=0, max=1)` has 76 states (8 without exponents), [0, 100000] 86, [123.456, 789.125] 138.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache

from ..regexes.regex_ast import CharSet, Node, Repeat
from .json_numbers import (
    DIGIT,
    EXP,
    FRAC,
    MINUS,
    alt,
    decimal_range,
    digit_runs,
    frac_range,
    json_frac,
    lit,
    natural_range,
    opt,
    seq,
)

MAX_INT_DIGITS = 4
MAX_LEAD_ZEROS = 4
E = CharSet(((0x45, 0x45), (0x65, 0x65)))
_ZEROS = Repeat(lit("0"), 0, None)
ZERO_EXP = seq(opt(MINUS), lit("0"), opt(seq(lit("."), Repeat(lit("0"), 1, None))), EXP)


def exponent_range(k1: int | None, k2: int | None) -> Node | None:
    """Exponent parts `[eE][+-]?digits` (leading zeros allowed) whose value lies in [k1, k2] (None: open)."""
    if k1 is not None and k2 is not None and k1 > k2:
        return None
    parts: list[Node] = []
    if k2 is None or k2 >= 0:
        nat = natural_range(0 if k1 is None else max(k1, 0), k2)
        if nat is not None:
            parts.append(seq(opt(lit("+")), _ZEROS, nat))
    if k1 is None or k1 < 0:
        nat = natural_range(1 if k2 is None or k2 >= 0 else -k2, None if k1 is None else -k1)
        if nat is not None:
            parts.append(seq(MINUS, _ZEROS, nat))
    if (k1 is None or k1 <= 0) and (k2 is None or k2 >= 0):
        parts.append(seq(MINUS, Repeat(lit("0"), 1, None)))  # -0, -00
    return seq(E, alt(*parts)) if parts else None


def _step(a: str | None, b: str | None, d: int) -> tuple[str | None, str | None] | None:
    """The bounds left after the digit d (None: that side is free), or None when d leaves the range."""
    ra: str | None = None
    if a is not None:
        a1 = int(a[0]) if a else 0
        if d < a1:
            return None
        ra = (a[1:] if a else "") if d == a1 else None
    rb: str | None = None
    if b is not None:
        b1 = int(b[0]) if b else 0
        if d > b1:
            return None
        rb = b[1:] if d == b1 else None
    return ra, rb


@lru_cache(maxsize=4096)
def _pointed(a: str | None, a_x: bool, b: str | None, b_x: bool, n: int) -> Node | None:
    """`n` digits, then an optional JSON fraction, whose digits s (the point left out) have 0.a <= 0.s <= 0.b
    (`_x`: strict; None: free; "": zero)."""
    if a == "" and not a_x:
        a = None
    if n == 0:
        return json_frac(a, a_x, b, b_x)
    if a is None and b is None:
        return seq(Repeat(DIGIT, n, n), opt(FRAC))
    return _digit_split(a, b, range(10), lambda ra, rb: _pointed(ra, a_x, rb, b_x, n - 1))


def _digit_split(
    a: str | None, b: str | None, digits: range, rest: Callable[[str | None, str | None], Node | None]
) -> Node | None:
    """One digit from `digits` (grouped by the bounds it leaves), then `rest(ra, rb)`."""
    groups: dict[tuple[str | None, str | None], list[int]] = {}
    for d in digits:
        left = _step(a, b, d)
        if left is not None:
            groups.setdefault(left, []).append(d)
    parts: list[Node] = []
    for (ra, rb), ds in groups.items():
        tail = rest(ra, rb)
        if tail is not None:
            parts += [seq(CharSet(((0x30 + lo, 0x30 + hi),)), tail) for lo, hi in digit_runs(ds)]
    return alt(*parts) if parts else None


def mantissa(p: int, a: str | None, a_x: bool, b: str | None, b_x: bool) -> Node | None:
    """Unsigned non-zero mantissas (`INT(.FRAC)?`) whose first significant digit is at position `p` and whose
    significant digits s have 0.a <= 0.s <= 0.b."""
    if p >= 1:
        return _digit_split(a, b, range(1, 10), lambda ra, rb: _pointed(ra, a_x, rb, b_x, p - 1))
    sig = _digit_split(a, b, range(1, 10), lambda ra, rb: frac_range(ra, a_x, rb, b_x))
    return None if sig is None else seq(lit("0."), Repeat(lit("0"), -p, -p), sig)


def _digits(x: Decimal) -> tuple[int, str]:
    """A positive decimal as (Q, s): x = 0.s * 10**Q with s its significant digits."""
    _, ds, _ = x.normalize().as_tuple()
    return x.adjusted() + 1, "".join(map(str, ds))


def magnitude_exponent_forms(a: Decimal, a_x: bool, b: Decimal | None, b_x: bool) -> Node | None:
    """Unsigned numbers with an exponent and a non-zero mantissa whose value lies between a >= 0 and b."""
    if b is not None and (b < a or (b == a and (a_x or b_x)) or b == 0):
        return None
    if a == 0 and b is None:
        pieces = [(None, None, None, False, None, False)]
    else:
        pieces = []
        qa, sa = _digits(a) if a > 0 else (None, "")
        qb, sb = _digits(b) if b is not None else (None, "")
        if qa is not None and qa == qb:
            pieces.append((qa, qa, sa, a_x, sb, b_x))
        else:
            if qa is not None:
                pieces.append((qa, qa, sa, a_x, None, False))
            q1 = None if qa is None else qa + 1
            q2 = None if qb is None else qb - 1
            if q1 is None or q2 is None or q1 <= q2:
                pieces.append((q1, q2, None, False, None, False))
            if qb is not None:
                pieces.append((qb, qb, None, False, sb, b_x))
    parts: list[Node] = []
    for p in range(-MAX_LEAD_ZEROS, MAX_INT_DIGITS + 1):
        for q1, q2, pa, pa_x, pb, pb_x in pieces:
            m = mantissa(p, pa, pa_x, pb, pb_x)
            e = exponent_range(None if q1 is None else q1 - p, None if q2 is None else q2 - p)
            if m is not None and e is not None:
                parts.append(seq(m, e))
    return alt(*parts) if parts else None


def exponent_range_number(lo: Decimal | None, lo_x: bool, hi: Decimal | None, hi_x: bool) -> Node | None:
    """JSON numbers written with an exponent whose value lies between the bounds (None: open)."""
    parts: list[Node] = []
    if lo is None or lo < 0:  # negatives: magnitudes between max(-hi, 0) and -lo
        if hi is not None and hi < 0:
            neg = magnitude_exponent_forms(-hi, hi_x, None if lo is None else -lo, lo_x)
        else:
            neg = magnitude_exponent_forms(Decimal(0), True, None if lo is None else -lo, lo_x)
        if neg is not None:
            parts.append(seq(MINUS, neg))
    if hi is None or hi > 0:
        if lo is None or lo <= 0:
            pos = magnitude_exponent_forms(Decimal(0), True, hi, hi_x)
        else:
            pos = magnitude_exponent_forms(lo, lo_x, hi, hi_x)
        if pos is not None:
            parts.append(pos)
    zero_in = (lo is None or lo < 0 or (lo == 0 and not lo_x)) and (
        hi is None or hi > 0 or (hi == 0 and not hi_x)
    )
    if zero_in:
        parts.append(ZERO_EXP)
    return alt(*parts) if parts else None


def number_range(lo: Decimal | None, lo_x: bool, hi: Decimal | None, hi_x: bool) -> Node | None:
    """JSON numbers, with or without an exponent, whose value lies between the bounds (None: open)."""
    forms = [decimal_range(lo, lo_x, hi, hi_x), exponent_range_number(lo, lo_x, hi, hi_x)]
    parts = [f for f in forms if f is not None]
    return alt(*parts) if parts else None
