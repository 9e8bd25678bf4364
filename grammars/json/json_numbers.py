"""JSON numbers as regex AST: integer ranges (digit-range regexes), sign-bounded numbers, and `multipleOf`.

Integer ranges follow the classic construction (split by digit count, then by leading digit), like
outlines-core's `json_schema` module. `multipleOf` is an exact automaton over decimal digits tracking the
remainder; it is an `Automaton` node that `json_schema` builds into the NFA next to the ordinary AST nodes.
"""

from __future__ import annotations

from decimal import Decimal

from ..regexes.regex_ast import EMPTY, Alt, Automaton, CharSet, Concat, Node, Repeat, char

DIGIT = CharSet(((0x30, 0x39),))
NONZERO = CharSet(((0x31, 0x39),))
MINUS = char(0x2D)


def lit(text: str) -> Node:
    """`text` as a sequence of one-character sets (each set shared: keys and literals are most of a
    schema's nodes, and `char` sorts ranges on every call)."""
    chars = _CHARS
    if len(text) == 1:
        return chars.get(text) or _char(text)
    return Concat(tuple([chars.get(c) or _char(c) for c in text]))


_CHARS: dict[str, CharSet] = {}


def _char(c: str) -> CharSet:
    found = _CHARS[c] = char(ord(c))
    return found


def seq(*items: Node) -> Node:
    flat: list[Node] = []
    for i in items:
        if isinstance(i, Concat):
            flat.extend(i.items)
        else:
            flat.append(i)
    return flat[0] if len(flat) == 1 else Concat(tuple(flat))


def alt(*items: Node) -> Node:
    if len(items) == 1:  # nothing to deduplicate: no hash of a fresh subtree
        return items[0]
    uniq = list(dict.fromkeys(items))
    return uniq[0] if len(uniq) == 1 else Alt(tuple(uniq))


def opt(item: Node) -> Node:
    return Repeat(item, 0, 1)


def _digit_set(lo: int, hi: int, base: int) -> Node:
    """Digits lo..hi in `base` (hex accepts both cases)."""
    ranges: list[tuple[int, int]] = []
    for d in range(lo, hi + 1):
        if d < 10:
            ranges.append((0x30 + d, 0x30 + d))
        else:
            ranges += [(0x61 + d - 10, 0x61 + d - 10), (0x41 + d - 10, 0x41 + d - 10)]
    from ..regexes.regex_ast import normalize

    return CharSet(normalize(ranges))


def fixed_width_range(lo: int, hi: int, width: int, base: int = 10) -> Node:
    """Strings of exactly `width` digits (leading zeros allowed) whose value lies in [lo, hi]."""
    if width == 0:
        return EMPTY
    unit = base ** (width - 1)
    lo_d, lo_rest = divmod(lo, unit)
    hi_d, hi_rest = divmod(hi, unit)
    if lo_d == hi_d:
        return seq(_digit_set(lo_d, lo_d, base), fixed_width_range(lo_rest, hi_rest, width - 1, base))
    full = Repeat(_digit_set(0, base - 1, base), width - 1, width - 1) if width > 1 else EMPTY
    parts: list[Node] = []
    first = lo_d
    if lo_rest != 0:
        parts.append(seq(_digit_set(lo_d, lo_d, base), fixed_width_range(lo_rest, unit - 1, width - 1, base)))
        first += 1
    last = hi_d
    tail: Node | None = None
    if hi_rest != unit - 1:
        tail = seq(_digit_set(hi_d, hi_d, base), fixed_width_range(0, hi_rest, width - 1, base))
        last -= 1
    if first <= last:
        parts.append(seq(_digit_set(first, last, base), full))
    if tail is not None:
        parts.append(tail)
    return alt(*parts)


def natural_range(lo: int, hi: int | None) -> Node | None:
    """Decimal naturals without leading zeros in [lo, hi] (hi None: unbounded); None when empty."""
    lo = max(lo, 0)
    if hi is not None and hi < lo:
        return None
    parts: list[Node] = []
    if lo == 0:
        parts.append(lit("0"))
        lo = 1
        if hi == 0:
            return parts[0]
    n_lo = len(str(lo))
    n_hi = len(str(hi)) if hi is not None else n_lo
    for n in range(n_lo, n_hi + 1):
        a = max(lo, 10 ** (n - 1))
        b = 10**n - 1 if hi is None else min(hi, 10**n - 1)
        if a <= b:
            parts.append(fixed_width_range(a, b, n))
    if hi is None:
        parts.append(seq(NONZERO, Repeat(DIGIT, n_lo, None)))
    return alt(*parts) if parts else None


def integer_range(lo: int | None, hi: int | None) -> Node | None:
    """JSON integers (no leading zeros, no -0) in [lo, hi]; None bounds are open. None when empty."""
    if lo is not None and hi is not None and lo > hi:
        return None
    parts: list[Node] = []
    # negatives: -hi' .. -lo' with hi' = min(hi, -1)
    if lo is None or lo < 0:
        neg_hi = -1 if hi is None else min(hi, -1)
        if lo is None or lo <= neg_hi:
            mags = natural_range(-neg_hi, None if lo is None else -lo)
            if mags is not None:
                parts.append(seq(MINUS, mags))
    if hi is None or hi >= 0:
        pos = natural_range(0 if lo is None else max(lo, 0), hi)
        if pos is not None:
            parts.append(pos)
    return alt(*parts) if parts else None


def integer_multiple(m: int) -> Node:
    """JSON integers (either sign) that are multiples of `m`, as an exact remainder automaton; bounds are
    intersected in by the caller."""
    if m == 1:
        return alt(
            seq(MINUS, NONZERO, Repeat(DIGIT, 0, None)), lit("0"), seq(NONZERO, Repeat(DIGIT, 0, None))
        )
    # states: 0 start, 1 zero, 2 after '-', 3..3+m positive remainders, 3+m..3+2m negative remainders
    pos0, neg0 = 3, 3 + m
    edges: list[tuple[int, int, int, int]] = [(0, 0x30, 0x30, 1), (0, 0x2D, 0x2D, 2)]
    for base, src in ((pos0, 0), (neg0, 2)):
        for d in range(1, 10):
            edges.append((src, 0x30 + d, 0x30 + d, base + d % m))
        for r in range(m):
            for d in range(10):
                edges.append((base + r, 0x30 + d, 0x30 + d, base + (r * 10 + d) % m))
    return Automaton(3 + 2 * m, 0, frozenset({1, pos0, neg0}), tuple(edges))


def decimal_step(m: Decimal) -> tuple[int, int]:
    """(d, k) with m = d * 10**-k, d a positive integer and k >= 0 as small as possible."""
    _, digits, exp = m.normalize().as_tuple()
    assert isinstance(exp, int)
    return int("".join(map(str, digits))) * 10 ** max(0, exp), max(0, -exp)


def decimal_multiple(m: Decimal) -> Node:
    """JSON numbers without an exponent that are multiples of the positive decimal `m` = d * 10**-k.

    x is a multiple iff x * 10**k is an integer multiple of d: track that integer's remainder mod d over
    the integer digits and the first k fractional digits (fewer digits: pad with zeros, i.e. multiply the
    remainder by 10 per missing digit); past k fractional digits only zeros may follow.
    """
    d, k = decimal_step(m)
    # 0 start, 1 after '-', 2 after a leading '0'; then per remainder r: the integer part, after '.',
    # after i = 1..k fractional digits; then trailing zeros
    whole, point = 3, 3 + d
    frac0 = point + d
    tail = frac0 + d * k

    def frac(r: int, i: int) -> int:
        return frac0 + (i - 1) * d + r

    def on(src: int, digit: int, dst: int) -> tuple[int, int, int, int]:
        return (src, 0x30 + digit, 0x30 + digit, dst)

    edges = [(0, 0x2D, 0x2D, 1), (2, 0x2E, 0x2E, point), on(tail, 0, tail)]
    accepting = {2, tail}
    for src in (0, 1):
        edges.append(on(src, 0, 2))
        edges += [on(src, dg, whole + dg % d) for dg in range(1, 10)]
    for r in range(d):
        edges += [on(whole + r, dg, whole + (r * 10 + dg) % d) for dg in range(10)]
        edges.append((whole + r, 0x2E, 0x2E, point + r))
        if r * 10**k % d == 0:
            accepting.add(whole + r)
        if k:
            edges += [on(point + r, dg, frac((r * 10 + dg) % d, 1)) for dg in range(10)]
        elif r == 0:
            edges.append(on(point, 0, tail))
        for i in range(1, k + 1):
            if r * 10 ** (k - i) % d == 0:
                accepting.add(frac(r, i))
            if i < k:
                edges += [on(frac(r, i), dg, frac((r * 10 + dg) % d, i + 1)) for dg in range(10)]
            elif r == 0:
                edges.append(on(frac(r, i), 0, tail))
    return Automaton(tail + 1, 0, frozenset(accepting), tuple(edges))


# JSON number pieces
INT_PART = alt(lit("0"), seq(NONZERO, Repeat(DIGIT, 0, None)))
FRAC = seq(lit("."), Repeat(DIGIT, 1, None))
EXP = seq(
    CharSet(((0x45, 0x45), (0x65, 0x65))), opt(CharSet(((0x2B, 0x2B), (0x2D, 0x2D)))), Repeat(DIGIT, 1, None)
)
UNSIGNED = seq(INT_PART, opt(FRAC), opt(EXP))
NUMBER = seq(opt(MINUS), UNSIGNED)
# a nonzero mantissa: any exponent keeps it nonzero
_NONZERO_MANTISSA = alt(
    seq(NONZERO, Repeat(DIGIT, 0, None), opt(FRAC)),
    seq(lit("0."), Repeat(DIGIT, 0, None), NONZERO, Repeat(DIGIT, 0, None)),
)
POSITIVE = seq(_NONZERO_MANTISSA, opt(EXP))
_ZERO = seq(lit("0"), opt(seq(lit("."), Repeat(lit("0"), 1, None))), opt(EXP))


def signed_number(allow_neg: bool, allow_zero: bool, allow_pos: bool) -> Node | None:
    """JSON numbers restricted by sign only (what `minimum: 0`, `exclusiveMaximum: 0`, ... mean)."""
    parts: list[Node] = []
    if allow_neg:
        parts.append(seq(MINUS, POSITIVE))
    if allow_zero:
        parts.append(seq(opt(MINUS), _ZERO))
    if allow_pos:
        parts.append(POSITIVE)
    return alt(*parts) if parts else None


_ZERO_FRAC = seq(lit("."), Repeat(lit("0"), 1, None))
_NONZERO_FRAC = seq(lit("."), Repeat(lit("0"), 0, None), NONZERO, Repeat(DIGIT, 0, None))


def _split(x: Decimal) -> tuple[int, str]:
    """A non-negative bound as (integer part, fraction digits without trailing zeros; "" for none)."""
    i = int(x)
    frac = format(x - i, "f").partition(".")[2].rstrip("0")
    return i, frac


def frac_range(a: str | None, a_x: bool, b: str | None, b_x: bool, allow_empty: bool = True) -> Node | None:
    """Digit strings s with 0.a <= 0.s <= 0.b (`_x`: strict; None: no bound on that side; "": zero).

    Split on the first digit: a digit strictly between the bounds' first digits frees the rest, an equal
    one carries the bound on. Each step shortens a non-empty bound, so the recursion ends."""
    if a == "" and not a_x:
        a = None  # 0.s >= 0 always holds
    if b == "":  # at most zero: zeros only (never, when strict)
        if b_x or a is not None:
            return None
        return Repeat(lit("0"), 0 if allow_empty else 1, None)
    if b is None and a is None:
        return Repeat(DIGIT, 0 if allow_empty else 1, None)
    if b is None and a == "":  # strictly above zero: some nonzero digit
        return seq(Repeat(lit("0"), 0, None), NONZERO, Repeat(DIGIT, 0, None))
    parts: list[Node] = []
    if allow_empty and a is None:  # the empty string is 0 < 0.b
        parts.append(EMPTY)
    groups: dict[tuple, list[int]] = {}
    for d in range(10):
        ra: str | None = None
        if a is not None:
            a1 = int(a[0]) if a else 0
            if d < a1:
                continue
            ra = (a[1:] if a else "") if d == a1 else None
        rb: str | None = None
        if b is not None:
            b1 = int(b[0])
            if d > b1:
                continue
            rb = b[1:] if d == b1 else None
        groups.setdefault((ra, rb), []).append(d)
    for (ra, rb), ds in groups.items():
        rest = frac_range(ra, a_x, rb, b_x)
        if rest is not None:
            for lo, hi in digit_runs(ds):
                parts.append(seq(CharSet(((0x30 + lo, 0x30 + hi),)), rest))
    return alt(*parts) if parts else None


def digit_runs(ds: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for d in ds:
        if out and out[-1][1] == d - 1:
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def json_frac(a: str | None, a_x: bool, b: str | None, b_x: bool) -> Node | None:
    """The optional JSON fraction part (`.` digits) whose value 0.s lies between the bounds."""
    parts: list[Node] = []
    zero_ok = (a is None or (a == "" and not a_x)) and (b is None or b != "" or not b_x)
    if zero_ok:
        parts.append(EMPTY)
    tail = frac_range(a, a_x, b, b_x, allow_empty=False)
    if tail is not None:
        parts.append(seq(lit("."), tail))
    return alt(*parts) if parts else None


def _unsigned_decimal_range(lo: Decimal, lo_x: bool, hi: Decimal | None, hi_x: bool) -> Node | None:
    """Unsigned decimals `INT(.FRAC)?` (no exponent) with value in the range; decimal bounds, 0 <= lo."""
    if hi is not None and (hi < lo or (hi == lo and (lo_x or hi_x))):
        return None
    li, lf = _split(lo)
    parts: list[Node] = []
    if hi is not None:
        hi_i, hf = _split(hi)
        if hi_i == li:
            f = json_frac(lf, lo_x, hf, hi_x)
            return None if f is None else seq(natural_range(li, li) or EMPTY, f)
    f = json_frac(lf, lo_x, None, False)
    if f is not None:
        parts.append(seq(natural_range(li, li) or EMPTY, f))
    middle = natural_range(li + 1, None if hi is None else hi_i - 1)
    if middle is not None:
        parts.append(seq(middle, opt(FRAC)))
    if hi is not None:
        f = json_frac(None, False, hf, hi_x)
        if f is not None:
            parts.append(seq(natural_range(hi_i, hi_i) or EMPTY, f))
    return alt(*parts) if parts else None


def decimal_range(lo: Decimal | None, lo_x: bool, hi: Decimal | None, hi_x: bool) -> Node | None:
    """JSON numbers written without an exponent whose value lies between decimal bounds (None: open).

    Exact on that notation; json_exponents adds the exponent forms (`1e3`).
    """
    parts: list[Node] = []
    # negative side: -m with m > 0
    if lo is None or lo < 0:
        if hi is not None and hi < 0:
            m_lo, m_lo_x = -hi, hi_x
        else:
            m_lo, m_lo_x = Decimal(0), True
        neg = _unsigned_decimal_range(m_lo, m_lo_x, None if lo is None else -lo, lo_x)
        if neg is not None:
            parts.append(seq(MINUS, neg))
    if hi is None or hi >= 0:
        if lo is None or lo < 0:
            pos = _unsigned_decimal_range(Decimal(0), False, hi, hi_x)
        else:
            pos = _unsigned_decimal_range(lo, lo_x, hi, hi_x)
        if pos is not None:
            parts.append(pos)
    zero_in = (lo is None or lo < 0 or (lo == 0 and not lo_x)) and (
        hi is None or hi > 0 or (hi == 0 and not hi_x)
    )
    if zero_in:
        parts.append(seq(MINUS, lit("0"), opt(_ZERO_FRAC)))  # -0 and -0.0 are zero too
    return alt(*parts) if parts else None
