"""Regexes (full match, Python `re` syntax) for the string `format`s decc asserts.

Each is checked against jsonschema's FormatChecker (with its format extras) in tests/test_json_formats.py:
decc never accepts a string the checker rejects. `date`, `time`, `date-time`, `ipv4`, `ipv6` are exact
(but for a trailing newline, which the `$` of the time and hostname checkers lets through: decc refuses
it); the others refuse some strings the checker takes (see `REFUSED_VALID`).

* `date`: year 0001-9999, month lengths, Feb 29 only in leap years (divisible by 4, centuries only when
  divisible by 400), the leap-year rule spelled out as alternatives on the last two digits of the year
  (and on the century for years ending in 00).
* `time` (and the time of `date-time`): second 60 is refused everywhere. RFC 3339 allows a leap second at
  23:59:60 UTC (the local time minus the offset); being exact needs the automaton to remember the local
  hour and minute until the offset is read (over 1,440 states), and jsonschema's checker
  (rfc3339-validator) refuses every second 60 anyway.
* `hostname`: at most 253 characters (`MAX_LENGTHS`, applied as a maxLength), labels of 1-63.
"""

from __future__ import annotations

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
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
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
_URI = rf"[A-Za-z][A-Za-z0-9+.-]*:{_HIER_PART}(\?({_PCHAR}|[/?])*)?(#({_PCHAR}|[/?])*)?"

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
}

MAX_LENGTHS: dict[str, int] = {"hostname": 253}
"""Formats with a length limit, enforced as a `maxLength` (a counted length, not unrolled in the regex)."""

REFUSED_VALID: dict[str, str] = {
    "email": "the checker takes any string with an '@'; decc asks for a dot-atom local part and a domain name",
    "uuid": "the checker also takes extra hyphens ('12345678-1234-1234-1234-12345678-9abc'); decc: 8-4-4-4-12",
    "hostname": "a trailing dot ('example.com.'), and non-ASCII digits and letters Python's re matches",
    "uri": "nothing else known",
}
"""Strings jsonschema's checker accepts that decc refuses, per format (exact formats are not listed)."""
