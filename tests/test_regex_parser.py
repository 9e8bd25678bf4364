"""The regex parser: AST shapes, `re`-compatible syntax corners, and exact error offsets."""

from __future__ import annotations

import re

import pytest

from decc.errors import DeccError, Source, Span
from decc.grammars import RegexError, compile_regex
from decc.grammars.regexes.regex_ast import DOT, EMPTY, Alt, CharSet, Concat, Repeat, char
from decc.grammars.regexes.regex_parser import parse_regex


def test_ast_shapes() -> None:
    a, b = char(ord("a")), char(ord("b"))
    assert parse_regex("ab") == Concat((a, b))
    assert parse_regex("a|b") == Alt((a, b))
    assert parse_regex("(?:a|b)") == Alt((a, b))
    assert parse_regex("(?P<x>a)") == a
    assert parse_regex("a{2,}") == Repeat(a, 2, None)
    assert parse_regex("a{,3}") == Repeat(a, 0, 3)
    assert parse_regex("a*?") == Repeat(a, 0, None)
    assert parse_regex("") == EMPTY
    assert parse_regex("^$") == EMPTY
    assert parse_regex(".") == DOT
    assert parse_regex(r"[a-c\d]") == CharSet(((0x30, 0x39), (0x61, 0x63)))
    assert parse_regex(r"\s") == CharSet(((9, 13), (32, 32)))


def test_classes_and_shorthands_cover_unicode() -> None:
    (ranges,) = [parse_regex(r"\W").ranges]
    assert any(lo <= ord("é") <= hi for lo, hi in ranges)
    assert not any(lo <= ord("_") <= hi for lo, hi in ranges)
    dot = DOT.ranges
    assert not any(lo <= 10 <= hi for lo, hi in dot)
    assert not any(lo <= 0xD800 <= hi for lo, hi in dot)  # surrogates have no UTF-8 encoding
    assert dot[-1][1] == 0x10FFFF


# Patterns Python's `re` also accepts, with the same meaning under full matching.
VALID = [
    r"^abc$",
    r"\Aabc\Z",
    r"^a|^b$",
    r"(?:^a)b",
    r"(a|b$)",
    r"a{,3}",
    r"a{",
    r"a{,}",
    r"x{}",
    r"a{1",
    r"[]a]",
    r"[^]a]",
    r"[a-]",
    r"[-a]",
    r"[\d-]",
    r"\101\0",
    r"[\1\b]",
    r"\N{EURO SIGN}+",
    r"(?#comment)a",
    r"a{2,3}?",
    r"\.\é\-",
    r"[a\]b]",
    r"(?P<x>a)(?P<y>b)",
    r"\x41\u00e9\U0001F600",
    r"[ab]*+c",
    r"\d++",
    r"é{2}",
    r"()",
    r"(|a)",
    r"\t\n\r\f\v\a\\",
]
SAMPLES = [
    "",
    "a",
    "b",
    "ab",
    "abc",
    "aa",
    "aaa",
    "aaaa",
    "a{",
    "a{,}",
    "x{}",
    "a{1",
    "]",
    "a",
    "-",
    "5-",
    "A\0",
    "\x01",
    "\x08",
    "€",
    "€€",
    "comment",
    "a",
    "aa",
    "aaa",
    ".é-",
    "]",
    "ab",
    "Aé😀",
    "abc",
    "c",
    "12",
    "éé",
    "\t\n\r\f\v\a\\",
]


@pytest.mark.parametrize("pattern", VALID)
def test_valid_patterns_agree_with_re(pattern: str) -> None:
    dfa = compile_regex(pattern)
    for s in SAMPLES:
        expected = re.fullmatch(pattern, s, re.ASCII) is not None
        assert dfa.accepts(s.encode()) == expected, (pattern, s)


# (pattern, offset, end, words in the message)
ERRORS = [
    ("a)", 1, 2, "unbalanced parenthesis"),
    ("x(ab", 1, 2, "unbalanced parenthesis"),
    ("*a", 0, 1, "nothing to repeat"),
    ("a|{2}", 2, 5, "nothing to repeat"),
    ("^*", 1, 2, "nothing to repeat"),
    ("a**", 2, 3, "multiple repeat"),
    ("a{2}{3}", 4, 7, "multiple repeat"),
    ("ab(?=c)", 2, 5, "lookahead is not supported"),
    ("x(?!c)", 1, 4, "lookahead is not supported"),
    ("(?<!x)y", 0, 4, "lookbehind is not supported"),
    (r"a\1", 1, 3, "backreferences are not supported"),
    ("(?P<n>a)(?P=n)", 8, 14, "backreferences are not supported"),
    (r"x\bfoo", 1, 3, "word boundaries"),
    ("[z-a]", 1, 4, "bad character range z-a"),
    (r"[a-\d]", 1, 5, "bad character range"),
    ("a{3,2}", 1, 6, "min repeat greater than max repeat"),
    ("ab[cd", 2, 3, "unterminated character set"),
    ("[]", 0, 1, "unterminated character set"),
    (r"a\q", 1, 3, r"bad escape \q"),
    ("ab\\", 2, 3, "bad escape (end of pattern)"),
    (r"\x4g", 0, 3, r"incomplete escape \x4"),
    (r"\777", 0, 4, "octal escape value"),
    ("(?i)abc", 0, 4, "inline flags are not supported"),
    ("(?(1)a|b)", 0, 3, "conditional groups are not supported"),
    ("(?>ab)", 0, 3, "atomic groups are not supported"),
    ("(?<n>a)", 0, 3, "unknown extension"),
    ("(?P<1>a)", 4, 5, "bad character in group name"),
    ("(?P<n>a)(?P<n>b)", 12, 13, "redefinition of group name"),
    ("a^b", 1, 2, "'^' is only supported at the start"),
    (r"a\Ab", 1, 3, r"'\A' is only supported at the start"),
    ("a$b", 1, 2, "'$' is only supported at the end"),
    ("(a$)b", 2, 3, "'$' is only supported at the end"),
    ("(a$)*", 2, 3, "anchor inside a repeated group"),
    ("a*+a", 1, 3, "possessive quantifier"),
    ("(?:ab)++", 6, 8, "possessive quantifier"),
    ("\\ud800", 0, 6, "surrogate"),
    (r"\N{NO SUCH CHAR}", 0, 16, "undefined character name"),
]


@pytest.mark.parametrize(("pattern", "offset", "end", "words"), ERRORS)
def test_error_offsets(pattern: str, offset: int, end: int, words: str) -> None:
    with pytest.raises(RegexError) as info:
        compile_regex(pattern)
    err = info.value
    assert isinstance(err, DeccError)
    assert err.pattern == pattern
    assert (err.offset, err.end) == (offset, end), err.message
    assert words in err.message


def test_error_renders_pattern_with_carets_and_can_be_located() -> None:
    with pytest.raises(RegexError) as info:
        compile_regex("ab(?=c)d")
    text = info.value.render()
    assert "lookahead is not supported" in text
    assert "  ab(?=c)d\n    ^^^" in text
    source = Source("prog.dec", 'x = regex("ab(?=c)d")\n')
    located = info.value.at(Span.of(source, 13, 16))
    assert located.render().startswith("prog.dec:1:14: error: lookahead is not supported")
    assert (located.offset, located.end) == (2, 5)


def test_possessive_accepted_only_when_language_is_unchanged() -> None:
    for pattern in [r"[ab]*+c", r"\d++-\d++", r"a?+b", r"(?:x[ab]++)*"]:
        dfa = compile_regex(pattern)
        for s in ["c", "abc", "12-3", "1-", "b", "ab", "x", "xab", "xaxb", "xaa"]:
            assert dfa.accepts(s.encode()) == (re.fullmatch(pattern, s) is not None), (pattern, s)
    for pattern in [r"a*+a", r"[ab]*+b", r"(?:x[ab]++)*a", r"(?:a|ab)++"]:
        with pytest.raises(RegexError, match="possessive"):
            compile_regex(pattern)


def test_unicode_property_escapes_follow_unicodedata() -> None:
    """`\\p{..}`/`\\P{..}` (ECMAScript with the u flag, the `regex` module): general categories by short or
    long name, checked against `unicodedata.category` on a sample of code points."""
    import unicodedata

    for pattern, pred in [
        (r"\p{L}", lambda c: unicodedata.category(c).startswith("L")),
        (r"\p{Lu}", lambda c: unicodedata.category(c) == "Lu"),
        (r"\p{Letter}", lambda c: unicodedata.category(c).startswith("L")),
        (r"\p{gc=Nd}", lambda c: unicodedata.category(c) == "Nd"),
        (r"\pN", lambda c: unicodedata.category(c).startswith("N")),
        (r"\P{L}", lambda c: not unicodedata.category(c).startswith("L")),
        (r"[\p{Ll}\d_]", lambda c: unicodedata.category(c) == "Ll" or c in "0123456789_"),
    ]:
        dfa = compile_regex(pattern)
        for cp in [*range(0, 0x300, 3), 0x3B1, 0x416, 0x5D0, 0x660, 0x4E2D, 0x1F600, 0x10400, 0xE000]:
            c = chr(cp)
            assert dfa.accepts(c.encode()) == pred(c), (pattern, hex(cp))
    with pytest.raises(RegexError, match="unknown Unicode property 'Foo'") as e:
        parse_regex(r"a\p{Foo}")
    assert (e.value.offset, e.value.end) == (1, 8)
