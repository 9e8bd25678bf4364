"""Bounded JSON numbers in every spelling (exponents included) against exact decimal arithmetic and jsonschema.

Numbers are made independently of decc: a random decimal value (or one next to a bound), spelled as plain
decimals and as mantissa-exponent pairs with the mantissa's first significant digit at each position decc
supports, trailing zeros, leading exponent zeros, `E`/`e`, `+`. Random values keep at most 12 significant digits
and stay far from float limits; jsonschema reads bounds and instances as Decimal, since a bound nudged by a small
step may have more digits than a float holds.
"""

from __future__ import annotations

import functools
import json
from decimal import Decimal
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars import ByteDFA, compile_json_schema
from decc.grammars.json.json_exponents import MAX_INT_DIGITS, MAX_LEAD_ZEROS

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))

_bounds = st.one_of(
    st.none(),
    st.integers(-(10**6), 10**6),
    st.builds(lambda m, k: Decimal(m).scaleb(k), st.integers(-99999, 99999), st.integers(-6, 4)),
)


@functools.cache
def _compiled(schema_json: str) -> tuple[ByteDFA, jsonschema.Validator]:
    schema = json.loads(schema_json)
    exact = json.loads(schema_json, parse_float=Decimal)  # the oracle compares decimals, as `_in` does
    return compile_json_schema(schema), jsonschema.Draft202012Validator(exact)


def _schema(lo: Any, lo_x: bool, hi: Any, hi_x: bool, integer: bool = False) -> str:
    s: dict[str, Any] = {"type": "integer" if integer else "number"}
    for key, v, x in (("Minimum", lo, lo_x), ("Maximum", hi, hi_x)):
        if v is not None:
            name = f"exclusive{key}" if x else key.lower()
            s[name] = v if isinstance(v, int) else float(v)
    return json.dumps(s)


def _in(v: Decimal, lo: Any, lo_x: bool, hi: Any, hi_x: bool) -> bool:
    lo = None if lo is None else Decimal(repr(lo) if isinstance(lo, float) else lo)
    hi = None if hi is None else Decimal(repr(hi) if isinstance(hi, float) else hi)
    above = lo is None or (v > lo if lo_x else v >= lo)
    below = hi is None or (v < hi if hi_x else v <= hi)
    return above and below


def _spell(v: Decimal, p: int | None, zeros: int, exp_zeros: int, e: str, plus: bool) -> str:
    """`v` as JSON: plain (`p` None) or with the first significant digit of the mantissa at position p."""
    sign = "-" if v < 0 else ""
    v = abs(v)
    if p is None:
        text = format(v, "f")
        return sign + (text + "." + "0" * zeros if zeros and "." not in text else text + "0" * zeros)
    if v == 0:
        return f"{sign}0{'.' + '0' * zeros if zeros else ''}{e}{'+' if plus else ''}{'0' * exp_zeros}0"
    _, ds, _ = v.normalize().as_tuple()
    sig = "".join(map(str, ds)) + "0" * zeros
    q = v.adjusted() + 1
    k = q - p
    if p >= 1:
        sig = sig.ljust(p, "0")
        mant = sig[:p] + ("." + sig[p:] if len(sig) > p else "")
    else:
        mant = "0." + "0" * -p + sig
    exp = ("-" if k < 0 else "+" if plus else "") + "0" * exp_zeros + str(abs(k))
    return f"{sign}{mant}{e}{exp}"


_values = st.builds(lambda m, k: Decimal(m).scaleb(k), st.integers(-(10**12), 10**12), st.integers(-14, 8))


@st.composite
def _numbers(draw: st.DrawFn, near: list[Any]) -> tuple[Decimal, str]:
    """A value (random, or a bound nudged by a small step) and one of its spellings."""
    bounds = [Decimal(repr(b) if isinstance(b, float) else b) for b in near if b is not None]
    if bounds and draw(st.booleans()):
        step = Decimal(1).scaleb(draw(st.integers(-8, 2)))
        v = draw(st.sampled_from(bounds)) + draw(st.sampled_from([-1, 0, 0, 1])) * step
    else:
        v = draw(_values)
    if draw(st.integers(0, 9)) == 0:
        v = Decimal(0) * draw(st.sampled_from([1, -1]))
    p = draw(st.none() | st.integers(-MAX_LEAD_ZEROS, MAX_INT_DIGITS))
    text = _spell(
        v,
        p,
        draw(st.integers(0, 2)),
        draw(st.integers(0, 2)),
        draw(st.sampled_from("eE")),
        draw(st.booleans()),
    )
    assert Decimal(text) == v, (text, v)
    return v, text


@SETTINGS
@given(st.data(), _bounds, st.booleans(), _bounds, st.booleans())
def test_bounded_numbers_in_every_spelling(data: st.DataObject, lo, lo_x, hi, hi_x) -> None:  # type: ignore[no-untyped-def]
    dfa, validator = _compiled(_schema(lo, lo_x, hi, hi_x))
    for _ in range(12):
        v, text = data.draw(_numbers([lo, hi]))
        want = _in(v, lo, lo_x, hi, hi_x)
        # the oracle agrees with itself (read as Decimal: a bound nudged by 1e-8 may pass float precision)
        assert validator.is_valid(json.loads(text, parse_float=Decimal)) == want, (text, lo, hi)
        assert dfa.accepts(text.encode()) == want, (text, lo, lo_x, hi, hi_x)


@SETTINGS
@given(st.data(), _bounds, st.booleans(), _bounds, st.booleans())
def test_long_mantissas_with_an_exponent_are_never_wrongly_accepted(
    data: st.DataObject, lo, lo_x, hi, hi_x
) -> None:  # type: ignore[no-untyped-def]
    """Mantissas past the supported positions are refused with an exponent (not regular in general); no
    spelling decc accepts is out of range."""
    dfa, _ = _compiled(_schema(lo, lo_x, hi, hi_x))
    for _ in range(12):
        v = data.draw(_values)
        p = data.draw(st.sampled_from([-MAX_LEAD_ZEROS - 3, -MAX_LEAD_ZEROS - 1, MAX_INT_DIGITS + 1, 12]))
        text = _spell(v, p, 0, 0, "e", False)
        assert not dfa.accepts(text.encode()) or _in(v, lo, lo_x, hi, hi_x), text


@SETTINGS
@given(
    _bounds,
    st.booleans(),
    _bounds,
    st.booleans(),
    st.lists(st.text("0123456789.eE+-", max_size=9), max_size=20),
)
def test_accepted_strings_are_json_in_range(lo, lo_x, hi, hi_x, texts) -> None:  # type: ignore[no-untyped-def]
    """Arbitrary strings over the number alphabet (`1.e3`, `01e2`, `1e+-2`, ...): what decc accepts parses
    as JSON, to a value in range."""
    dfa, _ = _compiled(_schema(lo, lo_x, hi, hi_x))
    for text in texts:
        if dfa.accepts(text.encode()):
            assert isinstance(json.loads(text), (int, float)), text
            assert _in(Decimal(text), lo, lo_x, hi, hi_x), text


def test_examples_from_the_issue() -> None:
    dfa = compile_json_schema({"type": "number", "minimum": 0, "maximum": 100000})
    for text in (
        "1e3",
        "2.5E3",
        "1.5e-2",
        "1e03",
        "1.50",
        "0e999999",
        "0.000e5",
        "0.00001e5",
        "100e-2",
        "1E5",
    ):
        assert dfa.accepts(text.encode()), text
    for text in ("1e6", "1.00001e5", "-1e0", "1e+6", "2e5"):
        assert not dfa.accepts(text.encode()), text
    near_zero = compile_json_schema({"type": "number", "minimum": -1, "maximum": 1})
    assert (
        near_zero.accepts(b"5e-999") and near_zero.accepts(b"-5e-9999999") and not near_zero.accepts(b"5e999")
    )
    positive = compile_json_schema({"type": "number", "exclusiveMinimum": 0, "maximum": 1})
    assert (
        positive.accepts(b"5e-999") and not positive.accepts(b"0e-999") and not positive.accepts(b"-5e-999")
    )


def test_typical_ranges_stay_small() -> None:
    """Common ranges stay small: 48-138 states with the exponent forms (6-19 without them)."""
    for schema in (
        {"type": "number", "minimum": 0, "maximum": 100000},
        {"type": "number", "minimum": 0, "maximum": 1},
        {"type": "number", "minimum": 1.5, "exclusiveMaximum": 3},
        {"type": "number", "minimum": -273.15},
    ):
        assert compile_json_schema(schema).n_states < 400, schema
