"""String `format`s against jsonschema's FormatChecker (with the format extras of the `test` extra).

Two directions per format: strings drawn from decc's language all pass the checker (decc never accepts what
the checker rejects), and independently made near-miss strings are accepted by decc iff the checker accepts
them (exact formats) or only if it does (formats listed in `REFUSED_VALID`).
"""

from __future__ import annotations

import functools
import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc import testing
from decc.grammars import ByteDFA, compile_json_schema
from decc.grammars.json_formats import FORMATS, REFUSED_VALID

CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER
EXACT = ("date", "time", "date-time", "ipv4", "ipv6")
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def _dfa(fmt: str) -> ByteDFA:
    return compile_json_schema({"type": "string", "format": fmt})


def _decc(fmt: str, s: str) -> bool:
    return _dfa(fmt).accepts(json.dumps(s).encode())


def _checker(fmt: str, s: str) -> bool:
    return CHECKER.conforms(s, fmt)


def _agree(fmt: str, s: str) -> None:
    decc, checker = _decc(fmt, s), _checker(fmt, s)
    if fmt in EXACT:
        assert decc == checker, (fmt, s, decc, checker)
    else:
        assert checker or not decc, (fmt, s, "decc accepts what the checker rejects")


def test_every_format_has_a_checker() -> None:
    """Without the extras (rfc3339-validator, fqdn, rfc3987) jsonschema checks fewer formats: the tests
    below would pass vacuously."""
    assert set(FORMATS) <= set(CHECKER.checkers)
    assert set(REFUSED_VALID) | set(EXACT) == set(FORMATS)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_drawn_strings_pass_the_checker(fmt: str) -> None:
    @settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(testing.from_constraint(_dfa(fmt), max_bytes=300))
    def check(text: str) -> None:
        value = json.loads(text)
        assert _checker(fmt, value), (fmt, value)

    check()


# -- independent near-misses: date and time parts with every boundary --------------------------------------

_years = st.one_of(
    st.integers(0, 9999),
    st.sampled_from([0, 1, 4, 100, 200, 400, 1600, 1900, 2000, 2024, 2100, 2400, 9996, 9999]),
    st.integers(0, 99).map(lambda c: c * 100),
)
_dates = st.builds(
    lambda y, m, d, w: f"{y:0{w}d}-{m:02d}-{d:02d}",
    _years,
    st.integers(0, 13),
    st.integers(0, 32),
    st.sampled_from([4, 4, 4, 3, 5]),
)
_two = st.integers(0, 61).map(lambda n: f"{n:02d}") | st.sampled_from(["0", "7", "123"])
_offsets = st.sampled_from(["Z", "z", "", "+00:00", "-00:00"]) | st.builds(
    lambda sign, h, m: f"{sign}{h}:{m}", st.sampled_from("+-"), _two, _two
)
_times = st.builds(
    lambda h, m, s, f, o: f"{h}:{m}:{s}{f}{o}",
    _two,
    _two,
    _two,
    st.sampled_from(["", ".5", ".123456", ".", ".x"]),
    _offsets,
)


@SETTINGS
@given(_dates)
def test_date_exact(s: str) -> None:
    _agree("date", s)


@SETTINGS
@given(_times)
def test_time_exact(s: str) -> None:
    _agree("time", s)


@SETTINGS
@given(_dates, st.sampled_from("Tt _"), _times)
def test_date_time_exact(d: str, sep: str, t: str) -> None:
    _agree("date-time", f"{d}{sep}{t}")


def test_impossible_dates_refused() -> None:
    for s in ("2024-02-30", "2023-02-29", "2024-04-31", "0000-01-01", "1900-02-29", "2100-02-29"):
        assert not _decc("date", s), s
        assert not _decc("date-time", f"{s}T00:00:00Z"), s
    for s in ("2024-02-29", "2000-02-29", "0004-02-29", "0400-02-29", "0001-01-01", "9999-12-31"):
        assert _decc("date", s), s


def test_leap_seconds_refused() -> None:
    """Second 60 is refused everywhere (see json_formats' docstring), as jsonschema's checker does."""
    for s in ("23:59:60Z", "15:59:60-08:00", "12:00:60Z"):
        assert not _decc("time", s) and not _checker("time", s), s


@pytest.mark.parametrize("fmt", ["date-time", "time", "hostname", "uri"])
def test_trailing_newline_refused(fmt: str) -> None:
    """The checkers' `$` lets one trailing newline through; decc keeps the format's own strings only."""
    s = {"date-time": "2024-01-01T00:00:00Z", "time": "00:00:00Z", "hostname": "a.org", "uri": "a:b"}[fmt]
    assert _decc(fmt, s) and _checker(fmt, s + "\n") and not _decc(fmt, s + "\n")


# -- independent near-misses: addresses, names --------------------------------------------------------------

_octet = st.integers(0, 300).map(str) | st.sampled_from(["00", "01", "001", "255", "256", ""])
_ipv4 = st.lists(_octet, min_size=3, max_size=5).map(".".join)
_group = st.text("0123456789abcdefABCDEFg", min_size=0, max_size=5)


@st.composite
def _ipv6(draw: st.DrawFn) -> str:
    groups = draw(st.lists(_group, min_size=0, max_size=9))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(groups)))
        groups = [*groups[:at], "", *groups[at:]]  # a '::' somewhere (an empty group)
        if len(groups) == 1:
            groups = ["", ""]
    tail = draw(st.sampled_from(["", "", ":1.2.3.4", ":255.0.0.1", ":01.2.3.4", ":1.2.3"]))
    return ":".join(groups) + tail


@SETTINGS
@given(_ipv4)
def test_ipv4_exact(s: str) -> None:
    _agree("ipv4", s)


@SETTINGS
@given(
    _ipv6() | st.sampled_from(["::", "::1", "1::", "::ffff:1.2.3.4", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8"])
)
def test_ipv6_exact(s: str) -> None:
    _agree("ipv6", s)


@SETTINGS
@given(
    st.lists(st.text("0123456789abcdefABCDEFg-", min_size=3, max_size=13), min_size=4, max_size=6).map(
        "-".join
    )
    | st.sampled_from(["12345678-1234-1234-1234-123456789abc"])
)
def test_uuid_sound(s: str) -> None:
    _agree("uuid", s)


_labels = st.text("abcXYZ019-_", min_size=0, max_size=70) | st.text("a", min_size=60, max_size=64)


@SETTINGS
@given(st.lists(_labels, min_size=1, max_size=6).map(".".join))
def test_hostname_sound(s: str) -> None:
    _agree("hostname", s)


def test_hostname_length_limit() -> None:
    label = "a" * 63
    at_limit = ".".join([label] * 3 + ["b" * 61])  # 253 characters
    assert len(at_limit) == 253 and _decc("hostname", at_limit) and _checker("hostname", at_limit)
    assert not _decc("hostname", at_limit + "b") and not _checker("hostname", at_limit + "b")
    assert not _decc("hostname", "a" * 64) and _decc("hostname", "a" * 63)


@SETTINGS
@given(st.text('ab.@-_+ "', max_size=20))
def test_email_sound(s: str) -> None:
    _agree("email", s)


_uri_chars = "aZ09+.-:/?#[]@!$&'()*,;=%~_ \"<>{}^|\\`vV"


@SETTINGS
@given(
    st.sampled_from(["", "http:", "a+b.c-d:", "1a:", "urn:", "http://", "x://[", "x://[v1.a]", "x://[::1]"]),
    st.text(_uri_chars + "0123456789abcdefABCDEF", max_size=24),
)
def test_uri_sound(prefix: str, rest: str) -> None:
    _agree("uri", prefix + rest)
