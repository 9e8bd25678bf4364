"""`decc test`'s oracles and generators for regexes with Unicode properties (`\\p{L}`), model-free: the oracle
(the `regex` module) reads properties as Unicode and shorthands as ASCII, like decc; the generator (hypothesis'
`from_regex` on the pattern with properties spelled out) draws only what the oracle accepts."""

from __future__ import annotations

import unicodedata

import pytest
import regex as re_module
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.compiler import ir
from decc.errors import Span
from decc.proptest_oracles import Unjudgeable, independent, oracle_for, rewrite_escapes

SPAN = Span(0, 0, 1, 1, 1, 1)


def regex(pattern: str) -> ir.Regex:
    return ir.Regex(pattern, SPAN)


def assigned(ch: str) -> bool:
    """Assigned in this Python's Unicode (the `regex` module may know a newer version)."""
    return unicodedata.category(ch) != "Cn"


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(st.text(st.characters(codec="utf-8").filter(assigned), min_size=1, max_size=6))
def test_letter_oracle_agrees_with_unicodedata(s: str) -> None:
    letters = all(unicodedata.category(ch).startswith("L") for ch in s)
    assert (oracle_for(regex(r"\p{L}+"))(s) is None) == letters


def test_shorthands_stay_ascii_next_to_properties() -> None:
    judge = oracle_for(regex(r"\p{Lu}[\d_]\w\s"))
    assert judge("Ä7a ") is None
    assert judge("Ä٣a ") is not None  # an Arabic-Indic digit is not `\d` in decc (re.ASCII)
    assert judge("Ä7é ") is not None
    assert judge("ä7a ") is not None


PATTERNS = [r"\p{L}+", r"[\p{Lu}\d_]+\P{L}", r"\pN{2}", r"[^\p{L}\s]x", r"[\]\p{Ll}]\\p"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_generated_texts_satisfy_the_oracle(pattern: str) -> None:
    generator, _ = independent(regex(pattern))
    judge = oracle_for(regex(pattern))

    @settings(max_examples=60, deadline=None, database=None, derandomize=True)
    @given(generator)
    def check(s: str) -> None:
        try:
            assert judge(s) is None, (pattern, s)
        except Unjudgeable:  # decc's Unicode (unicodedata) is older than the regex module's
            assert not all(map(assigned, s)), s

    check()


def test_letters_of_a_newer_unicode_are_not_held_against_decc() -> None:
    """decc reads `\\p{..}` by this Python's `unicodedata`; the `regex` module may know a newer Unicode. A
    code point unassigned here but a letter there is in decc's `\\P{L}`: the oracle must decline to judge
    it (a skip), not call it a violation."""
    newer = [
        ch
        for ch in map(chr, range(0x20000, 0x40000))
        if unicodedata.category(ch) == "Cn" and re_module.fullmatch(r"\p{L}", ch)
    ]
    if not newer:
        pytest.skip(f"the regex module's Unicode adds no letters to {unicodedata.unidata_version} here")
    judge = oracle_for(regex(r"\P{L}"))
    assert judge("1") is None and judge("a") is not None
    for ch in newer[:50]:
        with pytest.raises(Unjudgeable):
            judge(ch)


def test_rewrite_escapes_knows_classes() -> None:
    seen: list[tuple[str, bool]] = []

    def note(escape: str, in_class: bool) -> None:
        seen.append((escape, in_class))

    rewrite_escapes(r"\d[]\w\p{L}]\pN[^]\s]\\[\N{BULLET}]", note)  # type: ignore[arg-type]
    assert seen == [
        (r"\d", False),
        (r"\w", True),
        (r"\p{L}", True),
        (r"\pN", False),
        (r"\s", True),
        ("\\\\", False),
        (r"\N{BULLET}", True),
    ]
