"""decc.testing on context-free grammars: draws are sentences by Lark's own Earley parser, spread over the
grammar, terminate on recursive grammars and shrink to short ones; every way of holding a grammar works."""

from __future__ import annotations

import json

import lark
import pytest
from _lark import lark_parser
from hypothesis import find, given, settings
from hypothesis import strategies as st

from decc import grammars, testing
from decc.grammars.contextfree.cfg_grammar import parse_grammar
from decc.grammars.contextfree.earley import Recognizer
from decc.grammars.contextfree.rtn import build_rtn

# Lark's Earley parser is the slow part (sql_select sentences take ~40 ms each): fewer draws there.
DRAWS = {"json": 150, "arith": 150, "sql_select": 40}
_SEARCH = settings(max_examples=500, database=None, derandomize=True)


@pytest.mark.parametrize("name", grammars.BUILTIN_GRAMMARS)
def test_builtin_grammar_draws_parse_withlark_parser(name: str) -> None:
    text = grammars.builtin_grammar(name)
    parser = lark_parser(text)
    lengths: list[int] = []

    # Default health checks on: the strategy must not filter too much, nor be too slow or too large.
    @settings(max_examples=DRAWS[name], deadline=None, database=None, derandomize=True)
    @given(testing.from_grammar(text, max_bytes=160))
    def check(s: str) -> None:
        lengths.append(len(s))
        parser.parse(s)  # raises on a string outside the grammar
        if name == "json":
            json.loads(s)

    check()
    assert len(set(lengths)) > 10, "draws should spread, not repeat the shortest sentence"
    # Long draws exist (nested, repeated). Searched for rather than required of these 150-odd: Hypothesis
    # seeds its draws with the literals of the project's own modules, so which ones come first changes with
    # any edit of the code.
    long = find(testing.from_grammar(text, max_bytes=160), lambda s: len(s) >= 40, settings=_SEARCH)
    assert len(long) >= 40


def test_json_grammar_draws_nest_and_cover_every_kind() -> None:
    kinds: set[str] = set()
    depths: set[int] = set()

    def depth(v: object) -> int:
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        return 0

    @settings(max_examples=300, deadline=None, database=None, derandomize=True)
    @given(testing.from_grammar(grammars.builtin_grammar("json")))
    def collect(s: str) -> None:
        v = json.loads(s)
        kinds.add(type(v).__name__)
        depths.add(depth(v))

    collect()
    assert kinds == {"dict", "list", "str", "int", "float", "bool", "NoneType"}
    assert max(depths) >= 2


def test_every_form_of_a_grammar_constraint_is_accepted() -> None:
    """Dispatch is on what the object is: parsed grammar, its RTN, a CFGConstraint, a program's IR/plan."""
    text = grammars.builtin_grammar("arith")
    parsed = parse_grammar(text)
    vocab = grammars.Vocabulary.from_token_bytes([bytes([b]) for b in range(256)] + [b"</s>"], eos_id=256)
    forms = [parsed, build_rtn(parsed), grammars.cfg_builtin("arith", vocab)]
    parser = lark_parser(text)
    for form in forms:

        @settings(max_examples=30, deadline=None, database=None, derandomize=True)
        @given(testing.from_constraint(form))
        def check(s: str) -> None:
            parser.parse(s)

        check()
    with pytest.raises(TypeError, match="needs a compiled constraint"):
        testing.from_constraint("start: 'a'")


def test_compiled_program_grammar_step() -> None:
    """The compiler keeps a model-free `Grammar` for `grammar(...)`: IR constraints draw without a model."""
    import decc
    from decc.compiler import ir

    program = decc.loads('gen e { where: grammar("arith") }', "g.dec")
    (gen,) = [op for op in program.ir.body if isinstance(op, ir.Generate)]
    parser = lark_parser(grammars.builtin_grammar("arith"))

    @settings(max_examples=30, deadline=None, database=None, derandomize=True)
    @given(testing.from_constraint(gen.constraint))
    def check(s: str) -> None:
        parser.parse(s)

    check()


RECURSIVE = {
    "nested": ('start: "(" start ")" | "x"', "x"),
    "nullable cycle": ('start: a "!"\na: b a |\nb: "x" | a', "!"),
    "left recursion": ('start: e\ne: e "+" t | t\nt: t "*" f | f\nf: "(" e ")" | /[0-9]/', "0"),
    "balanced": ('start: s\ns: "(" s ")" s |', ""),
    "mutual": ('start: a\na: "a" b | "z"\nb: "b" c\nc: "c" a "c"', "z"),
}


@pytest.mark.parametrize("name", RECURSIVE)
def test_recursive_grammars_terminate_and_shrink(name: str) -> None:
    text, shortest = RECURSIVE[name]
    parser = lark_parser(text)
    lengths: list[int] = []

    @settings(max_examples=150, deadline=None, database=None, derandomize=True)
    @given(testing.from_grammar(text, max_bytes=32))
    def check(s: str) -> None:
        lengths.append(len(s))
        parser.parse(s)

    check()
    assert max(lengths) <= 32 + 16  # past max_bytes only the shortest way home, which is short here
    assert len(set(lengths)) > 3
    strategy = testing.from_grammar(text, max_bytes=32)
    assert find(strategy, lambda s: True, settings=settings(database=None)) == shortest
    longer = find(strategy, lambda s: len(s) >= 6, settings=settings(database=None))
    assert 6 <= len(longer) <= 9


def test_builtins_shrink_to_their_shortest_sentences() -> None:
    quiet = settings(database=None)
    assert find(testing.from_grammar(grammars.builtin_grammar("json")), lambda s: True, settings=quiet) == "0"
    sql = find(testing.from_grammar(grammars.builtin_grammar("sql_select")), lambda s: True, settings=quiet)
    assert sql == "SELECT*FROMA"


def test_empty_grammar_is_refused() -> None:
    with pytest.raises(grammars.GrammarError):
        testing.from_grammar('start: "a" start')


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(st.data())
def test_shortest_completion_of_any_prefix_is_a_sentence(data: st.DataObject) -> None:
    """What `decc test` uses to steer token walks on grammars home: prefix + completion parses."""
    name = data.draw(st.sampled_from(["json", "arith"]))
    text = grammars.builtin_grammar(name)
    rtn = build_rtn(parse_grammar(text))
    sentence = data.draw(testing.from_grammar(text, max_bytes=80)).encode()
    cut = data.draw(st.integers(0, len(sentence)))
    rec = Recognizer(rtn)
    chart = rec.advance_bytes(rec.initial(), sentence[:cut])
    assert chart is not None
    completed = sentence[:cut] + testing._shortest_completion(rtn, chart)
    assert rec.accepts(completed)
    _PARSERS.setdefault(name, lark_parser(text)).parse(completed.decode())


_PARSERS: dict[str, lark.Lark] = {}
