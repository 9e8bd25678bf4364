"""JSON Schema `pattern`s are ECMA-262: `\\s`, `\\S` and `.` follow ECMAScript's whitespace and line
terminators there (grammars/regexes/regex_parser.py, `ecma=True`), while a `.dec` `regex(...)` keeps Python's `re`
(ASCII shorthands). The oracle is ECMA-262's own definition, from Unicode categories, not decc's tables."""

from __future__ import annotations

import functools
import json
import string
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.grammars import ByteDFA, compile_json_schema
from decc.grammars.automata.dfa import compile_regex
from decc.grammars.contextfree.cfg_grammar import Grammar
from decc.grammars.contextfree.earley import Recognizer
from decc.grammars.contextfree.rtn import build_rtn
from decc.grammars.json.json_schema import InvalidSchema, UnsupportedSchema

LINE_TERMINATORS = "\n\r\u2028\u2029"  # ECMA-262 LineTerminator


def ecma_space(ch: str) -> bool:
    """ECMA-262 WhiteSpace (TAB, VT, FF, ZWNBSP, any Zs) or LineTerminator: what `\\s` matches."""
    return ch in "\t\v\f\ufeff" or unicodedata.category(ch) == "Zs" or ch in LINE_TERMINATORS


ORACLES = {
    r"\s": ecma_space,
    r"\S": lambda ch: not ecma_space(ch),
    r"[\s]": ecma_space,
    r"[^\s]": lambda ch: not ecma_space(ch),
    ".": lambda ch: ch not in LINE_TERMINATORS,
    r"\d": lambda ch: ch in string.digits,
    r"\w": lambda ch: ch in string.ascii_letters + string.digits + "_",
}
# Whitespace in one engine and not the other (Python's str `\s` takes U+001C-U+001F and U+0085, not U+FEFF).
BOUNDARY = (
    "\t\n\v\f\r \x1c\x1d\x1e\x1f\x85\xa0\u1680\u180e\u2000\u200a\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_chars = st.characters(exclude_categories=["Cs"]) | st.sampled_from(BOUNDARY + "a0_٣")


@functools.cache
def _pattern_dfa(pattern: str) -> ByteDFA:
    return compile_json_schema({"type": "string", "pattern": f"^{pattern}$"})


def _accepts(dfa: ByteDFA, value: object) -> bool:
    return dfa.accepts(json.dumps(value, ensure_ascii=False).encode())


@settings(max_examples=400, deadline=None)
@given(_chars, st.sampled_from(sorted(ORACLES)))
def test_schema_pattern_shorthands_follow_ecma(ch: str, pattern: str) -> None:
    assert _accepts(_pattern_dfa(pattern), ch) == ORACLES[pattern](ch), (pattern, hex(ord(ch)))


def test_every_boundary_code_point() -> None:
    for ch in BOUNDARY:
        for pattern, oracle in ORACLES.items():
            assert _accepts(_pattern_dfa(pattern), ch) == oracle(ch), (pattern, hex(ord(ch)))


def test_non_space_refused_where_ecma_says_space() -> None:
    """The issue's examples: `\\S` must refuse U+00A0, U+2003, U+2029 and U+FEFF."""
    dfa = compile_json_schema({"type": "string", "pattern": r"^\S+$"})
    assert _accepts(dfa, "abc")
    for ch in "\u00a0\u2003\u2029\ufeff":
        assert not _accepts(dfa, f"a{ch}b"), hex(ord(ch))


def test_pattern_properties_match_names_the_ecma_way() -> None:
    """A declared property whose name matches a `patternProperties` key only under ECMA's `\\s` (U+FEFF)
    or only under Python's Unicode `\\d` (U+0663) gets the pattern's schema in the first case only."""
    schema = {
        "type": "object",
        "properties": {"\ufeffa": {}, "\u0663": {}},
        "patternProperties": {r"^\s": {"type": "integer"}, r"^\d": {"type": "integer"}},
        "required": ["\ufeffa", "\u0663"],
    }
    dfa = compile_json_schema(schema)
    assert _accepts(dfa, {"\ufeffa": 1, "\u0663": "x"})
    assert not _accepts(dfa, {"\ufeffa": "x", "\u0663": "x"})


@settings(max_examples=200, deadline=None)
@given(_chars)
def test_dec_regexes_keep_python_ascii_shorthands(ch: str) -> None:
    data = ch.encode()
    assert compile_regex(r"\s").accepts(data) == (ch in " \t\n\r\f\v")
    assert compile_regex(".").accepts(data) == (ch != "\n")


@settings(max_examples=100, deadline=None)
@given(_chars)
def test_empty_classes_follow_ecma(ch: str) -> None:
    """ECMAScript's `[]` matches nothing and `[^]` any character; Python would read `[]x]` as a class."""
    dfa = _pattern_dfa(r"(a[]x]|b[^]|c[^]x])")
    assert _accepts(dfa, "b" + ch)
    assert not _accepts(dfa, "a" + ch) and not _accepts(dfa, f"a{ch}x]") and not _accepts(dfa, "ax]")
    assert _accepts(dfa, f"c{ch}x]")


ECMA_SUITE = Path(__file__).resolve().parents[2] / "shared/data/json-schema-test-suite/tests/draft2020-12"
ECMA_SUITE_FILE = ECMA_SUITE / "optional" / "ecmascript-regex.json"


@pytest.mark.skipif(not ECMA_SUITE_FILE.is_file(), reason="JSON Schema Test Suite not found")
def test_the_suites_ecmascript_regex_cases() -> None:
    """The official suite's ECMA-262 regex cases: each schema decc compiles gives the suite's verdict on
    every instance (refusing a schema, as for `\\\\cC`, is allowed; a wrong answer is not)."""
    wrong, compiled = [], 0
    for group in json.loads(ECMA_SUITE_FILE.read_text()):
        try:
            dfa = compile_json_schema(group["schema"])
        except (UnsupportedSchema, InvalidSchema):
            continue
        compiled += 1
        for test in group["tests"]:
            text = json.dumps(test["data"], ensure_ascii=False).encode()
            got = Recognizer(build_rtn(dfa)).accepts(text) if isinstance(dfa, Grammar) else dfa.accepts(text)
            if got != test["valid"]:
                wrong.append(f"{group['description']} / {test['description']}")
    assert compiled >= 15 and not wrong, wrong
