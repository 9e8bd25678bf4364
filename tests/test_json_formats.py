"""String `format`s against jsonschema's FormatChecker (with the format extras of the `test` extra).

Two directions per format: strings drawn from decc's language all pass the checker (decc never accepts what
the checker rejects), and independently made near-miss strings are accepted by decc iff the checker accepts
them (exact formats) or only if it does (formats listed in `REFUSED_VALID`).
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc import testing
from decc.compiler.pipeline import compile_program
from decc.dsl import parse
from decc.errors import DeccError, DeccWarning
from decc.grammars import ByteDFA, compile_json_schema
from decc.grammars.json.json_formats import FORMATS, REFUSED_VALID, UNENFORCED_FORMATS
from decc.grammars.json.json_schema import IgnoredKeyword, UnsupportedSchema

CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER
EXACT = ("date", "time", "date-time", "ipv4", "ipv6", "json-pointer")
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def _dfa(fmt: str) -> ByteDFA:
    return compile_json_schema({"type": "string", "format": fmt})


def _decc(fmt: str, s: str) -> bool:
    return _dfa(fmt).accepts(json.dumps(s, ensure_ascii=False).encode())


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


_labels = (
    st.text("abcXYZ019-_", min_size=0, max_size=70)
    | st.text("a", min_size=60, max_size=64)
    | st.builds(
        lambda a, b: f"{a}--{b}", st.sampled_from(["xn", "XN", "ab", "a", "abc"]), st.text("ax9-", max_size=8)
    )
    | st.sampled_from(["xn--X", "xn--9n2bp8q", "xn--9t4b11yi5a", "xn--ll-0ea", "a--b"])
)


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


def test_reserved_hyphen_labels_refused() -> None:
    """Labels with '--' at characters 3-4 are reserved (RFC 5891 4.2.3.1): invalid punycode ('xn--X') is
    among them, so decc refuses them all (see json_formats); other double hyphens are ordinary."""
    for s in ("xn--X", "xn--hello-zed", "XN--aa---o47jg78q", "a.xn--9n2bp8q", "ab--c.org", "ab--", "a---b"):
        assert not _decc("hostname", s), s
    for s in ("a--b.com", "a-b--c", "abc--d.e", "abc---d", "x-n--a"):
        assert _decc("hostname", s) and _checker("hostname", s), s


# -- duration, json-pointer, uri-reference -------------------------------------------------------------------


def _rfc3339_duration(s: str) -> bool:
    """RFC 3339 appendix A, read by hand: P, then weeks alone, or a date part and/or a T time part, each a
    run of adjacent units in order (Y M D, H M S) with ASCII digits before each."""
    if not s.startswith("P"):
        return False
    date, t, time = s[1:].partition("T")
    parts = []
    for text in (date, time):
        units, digits = "", ""
        for ch in text:
            if ch in "0123456789":
                digits += ch
            elif digits:
                units, digits = units + ch, ""
            else:
                return False
        if digits:
            return False
        parts.append(units)
    date_units, time_units = parts
    if date_units == "W" and not t:
        return True
    date_ok = date_units == "" or date_units in ("D", "M", "MD", "Y", "YM", "YMD")
    time_ok = time_units in ("H", "HM", "HMS", "M", "MS", "S") if t else time_units == ""
    return date_ok and time_ok and bool(date_units or t)


_dur_tokens = st.sampled_from(["1", "12", "0", "০", "1.5", "0,5", "-1", "e2", ""]) | st.sampled_from(
    list("YMWDHS")
)


@SETTINGS
@given(
    st.sampled_from(["P", "P", "", "-P", " P"]),
    st.lists(
        st.tuples(st.sampled_from(["1", "12", "0", "007"]), st.sampled_from(list("YMWDHS"))), max_size=4
    ),
    st.sampled_from(["", "T"]),
    st.lists(st.tuples(st.sampled_from(["3", "45"]), st.sampled_from(list("HMSDY"))), max_size=3),
    st.lists(_dur_tokens, max_size=2),
)
def test_duration_exact_to_rfc3339(prefix: str, date: list, t: str, time: list, noise: list) -> None:
    s = prefix + "".join(n + u for n, u in date) + t + "".join(n + u for n, u in time) + "".join(noise)
    assert _decc("duration", s) == _rfc3339_duration(s), s
    _agree("duration", s)


def test_duration_boundaries() -> None:
    for s in ("P4DT12H30M5S", "P4Y", "PT0S", "P2W", "PT36H", "P1Y2M", "P01D", "P" + "9" * 80 + "Y"):
        assert _decc("duration", s) and _checker("duration", s), s
    for s in ("P", "PT", "P1YT", "PT1D", "P2D1Y", "P1D2H", "P1Y2W", "P0Y1W", "P1WT1H", "PT0.5S", "P1Y2D"):
        assert not _decc("duration", s), s


@SETTINGS
@given(st.text('/~01a%^|\\" é😎\n', max_size=12) | st.sampled_from(["", "/", "#/a", "a/b", "/~2", "/~"]))
def test_json_pointer_exact(s: str) -> None:
    _agree("json-pointer", s)


@SETTINGS
@given(
    st.sampled_from(
        ["", "a:", "//", "///", "/", "./", "?", "#", "a/b:", "//[::1]", "//u@h:80", "x://[v1.a]"]
    ),
    st.text(_uri_chars + "0123456789abcdefABCDEF", max_size=24),
)
def test_uri_reference_sound(prefix: str, rest: str) -> None:
    _agree("uri-reference", prefix + rest)


def test_uri_reference_relative_forms() -> None:
    for s in ("", "a", "a/b:c", "/a/b", "//h/p?q#f", "?q", "#f", "../x", "%41", "a:b"):
        assert _decc("uri-reference", s) and _checker("uri-reference", s), s
    for s in ("a b", ":a", "a:b c", "%4", "//h/\\", "#a#b"):
        assert not _decc("uri-reference", s), s


# -- formats decc does not enforce: refused, or a positioned warning under lenient -------------------------

UNENFORCED = sorted(UNENFORCED_FORMATS)


@pytest.mark.parametrize("fmt", UNENFORCED)
def test_unenforced_format_is_refused_with_its_pointer(fmt: str) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "format": fmt}}}
    with pytest.raises(UnsupportedSchema, match=f"format '{fmt}'") as e:
        compile_json_schema(schema)
    assert e.value.keyword == "format" and e.value.pointer == "/properties/a/format"
    with pytest.warns(IgnoredKeyword, match=f"format '{fmt}'.*'/properties/a/format'"):
        assert compile_json_schema(schema, lenient=True).accepts(b'{"a": "anything"}')


# -- formats no draft defines: annotations (any string), with a warning --------------------------------------

KNOWN = set(FORMATS) | set(UNENFORCED_FORMATS) | set(CHECKER.checkers)
UNKNOWN_NAMES = st.one_of(
    st.sampled_from(
        ["path", "byte", "url", "mongoId", "full-date", "text", "relative-uri", ".+, .+", "Date"]
    ),
    st.text(alphabet="abcxyz-.+ ", min_size=1, max_size=8),
).filter(lambda f: f not in KNOWN)
STRING_KEYWORDS = st.fixed_dictionaries(
    {},
    optional={
        "minLength": st.integers(0, 3),
        "maxLength": st.integers(3, 5),
        "pattern": st.sampled_from(["^a", "b$", "[0-9]", "^x*$"]),
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=UNKNOWN_NAMES,
    extra=STRING_KEYWORDS,
    values=st.lists(st.one_of(st.text(alphabet="abx09/ ", max_size=5), st.integers(0, 3)), max_size=8),
)
def test_unknown_format_is_an_annotation(fmt: str, extra: dict, values: list) -> None:
    """A format no draft defines asserts nothing (jsonschema with its format checker is the oracle): decc
    accepts exactly the values the other keywords allow, and warns once, naming the format and pointer."""
    schema = {"type": "object", "properties": {"a": {"type": "string", "format": fmt, **extra}}}
    with pytest.warns(IgnoredKeyword) as caught:
        dfa = compile_json_schema(schema)
    (w,) = [str(c.message) for c in caught if issubclass(c.category, IgnoredKeyword)]
    assert f"format '{fmt}' is not a known format" in w and "'/properties/a/format'" in w
    check = jsonschema.Draft202012Validator(schema, format_checker=CHECKER)
    for v in values:
        assert dfa.accepts(json.dumps({"a": v}).encode()) == check.is_valid({"a": v}), (schema, v)


def test_unknown_format_under_not_is_an_annotation() -> None:
    """Under `not`, an annotation format leaves the complement exact: not(any string of length 2)."""
    schema = {"not": {"type": "string", "format": "path", "maxLength": 1}}
    with pytest.warns(IgnoredKeyword, match="format 'path'"):
        dfa = compile_json_schema(schema)
    assert dfa.accepts(b'"ab"') and dfa.accepts(b"1") and not dfa.accepts(b'"a"')


def test_unknown_format_in_a_program_is_a_positioned_warning() -> None:
    src = 'gen x {\n  where: json(r"""{"type": "string", "format": "path"}""")\n}\n'
    module = compile_program(parse(src, "f.dec"))
    (w,) = module.warnings
    assert isinstance(w, DeccWarning) and "format 'path' is not a known format" in w.message
    assert w.span is not None and w.span.line == 2 and w.span.start == src.index('"format"')


def test_formats_of_non_strings_are_not_refused() -> None:
    """`format` constrains strings only: a schema that admits no string has nothing to enforce."""
    assert compile_json_schema({"type": "integer", "format": "iri"}).accepts(b"12")


def test_unenforced_format_in_a_program_is_positioned() -> None:
    src = 'gen x {\n  where: json(r"""{"type": "string", "format": "iri"}""")\n}\n'
    with pytest.raises(DeccError, match="format 'iri'") as e:
        compile_program(parse(src, "f.dec"))
    key = '"format"'
    assert e.value.span is not None and (e.value.span.start, e.value.span.end) == (
        src.index(key),
        src.index(key) + len(key),
    )
    lenient = src.replace('""")', '""", lenient=true)')
    module = compile_program(parse(lenient, "f.dec"))
    (w,) = module.warnings
    assert isinstance(w, DeccWarning) and "format 'iri'" in w.message and w.span.line == 2


FORMAT_SUITE = (
    Path(__file__).resolve().parents[2]
    / "shared/data/json-schema-test-suite/tests/draft2020-12/optional/format"
)
COMPLETE = ("date", "duration", "ipv4", "ipv6", "json-pointer", "uri", "uri-reference", "uuid", "unknown")


@pytest.mark.skipif(not FORMAT_SUITE.is_dir(), reason="JSON Schema Test Suite not found")
@pytest.mark.parametrize(
    "path", sorted(FORMAT_SUITE.glob("*.json")) if FORMAT_SUITE.is_dir() else [], ids=lambda p: p.stem
)
def test_the_suites_format_cases(path: Path) -> None:
    """The official suite's format cases (draft 2020-12, optional/format): a schema decc compiles never
    accepts an instance the suite calls invalid, and for the formats decc enforces completely, accepts
    every valid one; every other schema is refused (an unenforced format, never ignored), but for the
    suite's `unknown` format, an annotation that decc (as the suite) takes for any value."""
    fmt = path.stem
    for group in json.loads(path.read_text()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", IgnoredKeyword)
                dfa = compile_json_schema(group["schema"])
        except UnsupportedSchema:
            assert fmt not in FORMATS and fmt != "unknown", group["description"]
            continue
        assert fmt in FORMATS or fmt == "unknown", group["description"]
        for test in group["tests"]:
            got = dfa.accepts(json.dumps(test["data"], ensure_ascii=False).encode())
            assert got == test["valid"] or (not got and fmt not in COMPLETE), (fmt, test["data"])
