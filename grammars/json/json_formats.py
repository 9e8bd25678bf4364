"""Regexes (full match, Python `re` syntax) for the string `format`s decc asserts.

Each is checked against jsonschema's FormatChecker (with its format extras) in tests/test_json_formats.py:
decc never accepts a string the checker rejects. `date`, `time`, `date-time`, `ipv4`, `ipv6` and
`json-pointer` are exact (but for a trailing newline, which the `$` of the time and hostname checkers lets
through: decc refuses it); the others refuse some strings the checker takes (see `REFUSED_VALID`).

* `date`: year 0001-9999, month lengths, Feb 29 only in leap years (divisible by 4, centuries only when
  divisible by 400), the leap-year rule spelled out as alternatives on the last two digits of the year
  (and on the century for years ending in 00).
* `time` (and the time of `date-time`): second 60 is refused everywhere. RFC 3339 allows a leap second at
  23:59:60 UTC (the local time minus the offset); being exact needs the automaton to remember the local
  hour and minute until the offset is read (over 1,440 states), and jsonschema's checker
  (rfc3339-validator) refuses every second 60 anyway.
* `hostname`: at most 253 characters (`MAX_LENGTHS`, applied as a maxLength), labels of 1-63, never with
  "--" at their third and fourth characters (RFC 5891 4.2.3.1): punycode A-labels (`xn--...`) are refused,
  since telling valid punycode and IDNA 2008 labels from invalid ones is not a regex (the checker, `fqdn`,
  takes any `xn--` label, valid or not).
* `duration`: RFC 3339 appendix A exactly (the checker, `isoduration`, also takes `PT0.5S`, `P1Y2D`, ...).
* `json-pointer`: RFC 6901 exactly. `uri-reference`: RFC 3986 (the checker, `rfc3987`, takes a little more).
* The formats JSON Schema defines that decc cannot enforce exactly (`UNENFORCED_FORMATS`) are refused by the
  schema compiler, or ignored with a warning under `lenient`: nothing is silently unchecked.
* A name no draft defines (`path`, `byte`, `url`, ...) is an annotation: JSON Schema never asserts a format
  its validator does not know, so any string is exactly right; the compiler says so in a warning.
"""

from __future__ import annotations

from typing import Any

_NONZERO_YEAR = r"(000[1-9]|00[1-9]\d|0[1-9]\d\d|[1-9]\d{3})"
_QUAD = r"(0[48]|[2468][048]|[13579][26])"  # two digits, divisible by 4, not 00
_LEAP_YEAR = rf"(\d\d{_QUAD}|{_QUAD}00)"
_MONTH_DAY = (
    r"((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])"
    r"|(0[469]|11)-(0[1-9]|[12]\d|30)"
    r"|02-(0[1-9]|1\d|2[0-8]))"
)
_DATE = rf"({_NONZERO_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_TIME = r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?([zZ]|[+-]([01]\d|2[0-3]):[0-5]\d)"
_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
_H = r"[0-9a-fA-F]{1,4}"
_LS32 = rf"({_H}:{_H}|{_IPV4})"
# RFC 3986's IPv6address, which is what Python's ipaddress reads
_IPV6 = (
    rf"(({_H}:){{6}}{_LS32}"
    rf"|::({_H}:){{5}}{_LS32}"
    rf"|({_H})?::({_H}:){{4}}{_LS32}"
    rf"|(({_H}:){{0,1}}{_H})?::({_H}:){{3}}{_LS32}"
    rf"|(({_H}:){{0,2}}{_H})?::({_H}:){{2}}{_LS32}"
    rf"|(({_H}:){{0,3}}{_H})?::{_H}:{_LS32}"
    rf"|(({_H}:){{0,4}}{_H})?::{_LS32}"
    rf"|(({_H}:){{0,5}}{_H})?::{_H}"
    rf"|(({_H}:){{0,6}}{_H})?::)"
)
# 1-63 letters, digits and inner hyphens, never "--" at the third and fourth characters (RFC 5891 4.2.3.1:
# reserved for A-labels like "xn--..."; their punycode and IDNA 2008 rules are no regex, so decc refuses them)
_A = "[A-Za-z0-9]"
_AH = "[A-Za-z0-9-]"
_LABEL = (
    rf"({_A}|{_A}{_A}|{_A}{_AH}{_A}|{_A}{_AH}{{2}}{_A}"  # 1-4 characters: the 4th is no hyphen
    rf"|{_A}{_AH}({_A}{_AH}|-{_A}){_AH}{{0,58}}{_A})"  # 5-63: the 3rd and 4th are not both hyphens
)
# RFC 3986 URI (the IPv4 host form is inside reg-name already)
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"([A-Za-z0-9._~!$&'()*+,;=:@-]|{_PCT})"
_SEGMENT_NZ = rf"{_PCHAR}+(/{_PCHAR}*)*"
_HOST = (
    rf"(\[({_IPV6}|v[0-9A-Fa-f]+\.[A-Za-z0-9._~!$&'()*+,;=:-]+)\]"
    rf"|([A-Za-z0-9._~!$&'()*+,;=-]|{_PCT})*)"
)
_AUTHORITY = rf"(([A-Za-z0-9._~!$&'()*+,;=:-]|{_PCT})*@)?{_HOST}(:\d*)?"
_HIER_PART = rf"(//{_AUTHORITY}(/{_PCHAR}*)*|/({_SEGMENT_NZ})?|{_SEGMENT_NZ}|)"
_QUERY_FRAGMENT = rf"(\?({_PCHAR}|[/?])*)?(#({_PCHAR}|[/?])*)?"
_URI = rf"[A-Za-z][A-Za-z0-9+.-]*:{_HIER_PART}{_QUERY_FRAGMENT}"
# RFC 3986 relative-ref: a first segment without ':' (path-noscheme), so that it cannot read as a scheme
_SEGMENT_NZ_NC = rf"([A-Za-z0-9._~!$&'()*+,;=@-]|{_PCT})+"
_RELATIVE_PART = rf"(//{_AUTHORITY}(/{_PCHAR}*)*|/({_SEGMENT_NZ})?|{_SEGMENT_NZ_NC}(/{_PCHAR}*)*|)"
_URI_REFERENCE = rf"({_URI}|{_RELATIVE_PART}{_QUERY_FRAGMENT})"
# RFC 3339 appendix A (ISO 8601 durations): no fractions, weeks alone, units in order, none skipped inside
# a date or time part (P1Y2D and PT1H2S are not durations)
_DUR_TIME = r"T(\d+H(\d+M(\d+S)?)?|\d+M(\d+S)?|\d+S)"
_DUR_DATE = rf"(\d+D|\d+M(\d+D)?|\d+Y(\d+M(\d+D)?)?)({_DUR_TIME})?"
_DURATION = rf"P({_DUR_DATE}|{_DUR_TIME}|\d+W)"
# RFC 6901: '/'-prefixed reference tokens, '~' only as ~0 or ~1
_JSON_POINTER = r"(/([^/~]|~[01])*)*"

FORMATS: dict[str, str] = {
    "date": _DATE,
    "time": _TIME,
    "date-time": rf"{_DATE}[Tt]{_TIME}",
    "email": r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@"
    r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+",
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "ipv4": _IPV4,
    "ipv6": _IPV6,
    "uri": _URI,
    "hostname": rf"{_LABEL}(\.{_LABEL})*",
    "duration": _DURATION,
    "json-pointer": _JSON_POINTER,
    "uri-reference": _URI_REFERENCE,
}

MAX_LENGTHS: dict[str, int] = {"hostname": 253}
"""Formats with a length limit, enforced as a `maxLength` (a counted length, not unrolled in the regex)."""

REFUSED_VALID: dict[str, str] = {
    "email": "the checker takes any string with an '@'; decc asks for a dot-atom local part and a domain name",
    "uuid": "the checker also takes extra hyphens ('12345678-1234-1234-1234-12345678-9abc'); decc: 8-4-4-4-12",
    "hostname": "a trailing dot ('example.com.'), non-ASCII digits and letters Python's re matches, and "
    "labels with '--' at characters 3-4, punycode 'xn--' labels included (valid IDNs among them)",
    "uri": "nothing else known",
    "duration": "fractions, signs, skipped units ('PT0.5S', '-P1D', 'P1Y2D'): not RFC 3339 durations",
    "uri-reference": "an IPv4 with leading zeros inside an IPv6 literal ('//[::ffff:1.2.3.01]'), as RFC 3986",
}
"""Strings jsonschema's checker accepts that decc refuses, per format (exact formats are not listed)."""

UNENFORCED_FORMATS: dict[str, str] = {
    "iri": "internationalized URIs, RFC 3987",
    "iri-reference": "internationalized URI references, RFC 3987",
    "idn-email": "internationalized addresses, RFC 6531",
    "idn-hostname": "IDNA 2008 rules",
    "regex": "ECMA-262 regex syntax",
    "uri-template": "RFC 6570 URI templates",
    "relative-json-pointer": "relative JSON pointers",
}
"""Formats JSON Schema defines that decc does not enforce: refused, or ignored with a warning when lenient
(as are formats JSON Schema does not define)."""


def is_known_format(fmt: str) -> bool:
    """True for a format JSON Schema defines (asserted by decc, or refused when it cannot be); any other name
    is an annotation, which no validator asserts."""
    return fmt in FORMATS or fmt in UNENFORCED_FORMATS


def unknown_format_note(fmt: str) -> str:
    """The warning for a format no draft defines (compiled as its plain string schema)."""
    return f"format '{fmt}' is not a known format: treated as an annotation (any string)"


def mentions_unknown_format(schema: Any) -> bool:
    """Might `schema` hold a format no draft defines? (A cheap walk, so that a compiled schema from the disk
    cache is expanded again only to note one.)"""
    if isinstance(schema, dict):
        fmt = schema.get("format")
        if isinstance(fmt, str) and not is_known_format(fmt):
            return True
        return any(mentions_unknown_format(v) for v in schema.values())
    if isinstance(schema, list):
        return any(mentions_unknown_format(v) for v in schema)
    return False
