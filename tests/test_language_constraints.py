"""The constraint forms of the language beyond regex/json/grammar: choice, int/number ranges, length (in
characters: counted; in tokens: step bounds), conjunctions (one product automaton) and pydantic models.
Languages are checked against Python oracles; token masks against a brute-force walk of the DFA."""

from __future__ import annotations

import random
import re
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.compiler import ir
from decc.compiler.pipeline import compile_program
from decc.compiler.trust import Trust
from decc.dsl import parse
from decc.errors import DeccError
from decc.grammars import TokenAutomaton, Vocabulary, choice_dfa, compile_regex, conjunction, length_dfa
from decc.grammars.tokens.matcher import Matcher


def gen_of(src: str, path: str = "c.dec", trust: Trust | None = None) -> ir.Generate:
    module = compile_program(parse(src, path), trust=trust)
    return module.generates()[0]


def test_choice_accepts_exactly_its_strings() -> None:
    g = gen_of('gen x { where: choice("yes", "no", "ça va", "y") }')
    assert isinstance(g.constraint, ir.Choice)
    dfa = g.constraint.compiled
    for text, ok in [("yes", True), ("no", True), ("ça va", True), ("y", True), ("ye", False), ("", False)]:
        assert dfa.accepts(text.encode()) == ok, text
    assert gen_of('gen x { where: choice(["a", "b"]) }').constraint.options == ("a", "b")


@pytest.mark.parametrize(
    ("src", "valid", "invalid"),
    [
        ("int(min=-3, max=12)", ["-3", "0", "12", "7"], ["-4", "13", "1.0", "+1", "01"]),
        ("int(min=5)", ["5", "123456"], ["4", "-5"]),
        ("number(min=0, max=1)", ["0", "1", "0.5", "1.0", "0.25"], ["1.5", "-0.1", ".5"]),
        (
            "number(min=0, max=100000)",
            ["1e3", "2.5E3", "1.5e-2", "1E+05", "0.00001e5", "100e-2", "0e99"],
            ["1e6", "1.5e5", "-1e0", "1e", "1e3.5"],
        ),
        ("number(min=-2.5, max=0.5)", ["-25e-1", "5E-1", "-0.25e+1", "-1e-999"], ["-2.6e0", "0.6e0", "1e0"]),
    ],
)
def test_ranges_are_json_numbers_within_bounds(src: str, valid: list[str], invalid: list[str]) -> None:
    dfa = gen_of(f"gen x {{ where: {src} }}").constraint.compiled
    for t in valid:
        assert dfa.accepts(t.encode()), t
    for t in invalid:
        assert not dfa.accepts(t.encode()), t


@settings(max_examples=60, deadline=None)
@given(lo=st.integers(0, 40), span=st.integers(0, 40), text=st.text(max_size=90))
def test_length_in_characters_matches_len(lo: int, span: int, text: str) -> None:
    dfa = length_dfa(lo, lo + span)
    # st.text() draws no surrogates, so every text encodes as UTF-8
    assert dfa.accepts(text.encode()) == (lo <= len(text) <= lo + span)


@pytest.mark.parametrize("pattern", [r"(ab|c)*", r"(ab|c)*d", r" [a-c ]+\."])
@settings(max_examples=60, deadline=None)
@given(
    text=st.one_of(
        st.from_regex(r"[a-d .]{0,30}", fullmatch=True),
        st.from_regex(r"(ab|c){5,16}d?", fullmatch=True),
        st.from_regex(r" [a-c ]{12,20}\.", fullmatch=True),
    ),
    lo=st.integers(0, 20),
    hi=st.integers(16, 30),
)
def test_conjunction_of_regex_and_counted_length(pattern: str, text: str, lo: int, hi: int) -> None:
    # Patterns ending in a literal end the text in a state with no way on: it is still inside the count
    # (the last character counts; once a 17-character ' a b c.' slipped under max=16).
    dfa = conjunction([compile_regex(pattern)], (lo, hi))
    expected = re.fullmatch(pattern, text) is not None and lo <= len(text) <= hi
    assert dfa.accepts(text.encode()) == expected


def test_the_last_character_of_a_counted_text_counts() -> None:
    dfa = conjunction([compile_regex(r" [a-z ]+\.")], (0, 16))
    assert dfa.accepts(b" high include i.") and not dfa.accepts(b" high include in.")
    assert dfa.advance(dfa.start, 0, b" high include in")[0] < 0  # 16 characters and no room for the '.'


def test_conjunction_is_one_product_so_no_dead_ends() -> None:
    """'ab' & 'a.' is just 'ab'; 'ab' & 'ac' is empty and refused at compile time, with both parts named."""
    g = gen_of('gen x { where: regex(r"ab") & regex(r"a.") }')
    assert isinstance(g.constraint, ir.All) and g.constraint.compiled.accepts(b"ab")
    assert not g.constraint.compiled.accepts(b"ac")
    with pytest.raises(DeccError) as e:
        gen_of('gen x { where: regex(r"ab") & regex(r"ac") }')
    assert "this conjunction matches nothing" in e.value.render()
    assert e.value.notes == ("part: c.dec:1:22", "part: c.dec:1:37")


def test_token_length_becomes_step_bounds() -> None:
    g = gen_of('gen x { where: regex(r"[a-z ]+") & length(min=2, max=9, unit="tokens") }')
    assert isinstance(g.constraint, ir.Regex) and (g.min_tokens, g.max_tokens) == (2, 9)
    g = gen_of('gen x { where: length(max=30, unit="tokens"), max_tokens: 20 }')
    assert g.constraint is None and g.max_tokens == 20


COUNTED = [
    "length(min=3, max=20)",
    'regex(r"[ab ]*") & length(max=17)',
    'choice("a", "b") & length(min=1, max=2)',
    'regex(r"[ab ]+\\.") & length(max=16)',
]


@pytest.mark.parametrize("src", COUNTED)
def test_counted_length_token_masks_match_brute_force(src: str) -> None:
    """Counted segments that end the text (not followed by a quote, as JSON strings are): masks, EOS and
    steps agree with walking every token's bytes through the counter-aware DFA."""
    dfa = gen_of(f"gen x {{ where: {src} }}").constraint.compiled
    toks: list[bytes | None] = [
        b"a",
        b"b",
        b"ab",
        b" ",
        b"aaaa",
        b"\xc3\xa9",
        b"\xc3",
        b"\xa9",
        b"bbbbbbbb",
        None,
    ]
    eos = len(toks) - 1
    vocab = Vocabulary.from_token_bytes(toks, eos_id=eos)
    auto = TokenAutomaton.build(dfa, vocab)
    rng = random.Random(0)
    for _ in range(30):
        m, q, c = Matcher(auto), dfa.start, 0
        for _ in range(30):
            want = {t for t, b in enumerate(toks) if b and dfa.advance(q, c, b)[0] >= 0}
            if dfa.is_accepting(q, c):
                want.add(eos)
            row = torch.zeros(vocab.n_words, dtype=torch.int32)
            m.fill_bitmask(row)
            assert {t for t in range(len(toks)) if (int(row[t >> 5]) >> (t & 31)) & 1} == want, (src, q, c)
            text = sorted(want - {eos})
            if not text:
                break
            t = rng.choice(text)
            assert m.advance(t)
            q, c = dfa.advance(q, c, toks[t])


def test_pydantic_model_as_schema(tmp_path) -> None:
    (tmp_path / "shapes.py").write_text(
        textwrap.dedent(
            """
            from pydantic import BaseModel

            class Point(BaseModel):
                x: int
                y: int
            """
        )
    )
    src = 'gen p { where: json(model="shapes:Point") }'
    path = tmp_path / "p.dec"
    path.write_text(src)
    trust = Trust(allow_imports=True, allow_installed=True)
    g = gen_of(src, str(path), trust)
    assert isinstance(g.constraint, ir.JsonSchema) and g.constraint.origin == "model:shapes:Point"
    assert g.constraint.compiled.accepts(b'{"x":1,"y":-2}')
    assert not g.constraint.compiled.accepts(b'{"x":1}')
    for bad, message in [
        ('json(model="shapes")', "a pydantic model must be written 'module:name'"),
        ('json(model="nosuchmodule:X")', "cannot import module 'nosuchmodule'"),
        ('json(model="shapes:Nope")', "module 'shapes' has no 'Nope'"),
        ('json(model="json:dumps")', "'json:dumps' is not a pydantic model"),
    ]:
        path.write_text(f"gen p {{ where: {bad} }}")
        with pytest.raises(DeccError, match=re.escape(message)):
            gen_of(path.read_text(), str(path), trust)


def test_choice_dfa_public() -> None:
    dfa = choice_dfa(["x", ""])
    assert dfa.accepts(b"x") and dfa.accepts(b"") and not dfa.accepts(b"xx")
