"""JSON schemas as grammars with structure as rules: the same language as the one-automaton form.

For schemas that compile both ways, the grammar (run by the byte-level Earley recognizer) and the DFA
agree on instances drawn from the schema (hypothesis-jsonschema) and on mutations of them. Values nest at
most `ANY_DEPTH` deep, the one place where the forms differ by design (any JSON value is unbounded in a
grammar).
"""

from __future__ import annotations

import importlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from decc.grammars import ByteDFA, compile_json_schema
from decc.grammars.contextfree.cfg_grammar import Grammar
from decc.grammars.contextfree.earley import Recognizer
from decc.grammars.contextfree.rtn import build_rtn

js = importlib.import_module("decc.grammars.json.json_schema")

_leaf = st.sampled_from(
    [
        {"type": "integer"},
        {"type": "integer", "minimum": -3, "maximum": 40},
        {"type": "string"},
        {"type": "string", "maxLength": 20},
        {"type": "string", "minLength": 2, "maxLength": 3},
        {"type": "boolean"},
        {"enum": ["x", 1, None]},
        {},
        {"type": ["string", "null"]},
    ]
)


def _schemas() -> st.SearchStrategy:
    def extend(inner: st.SearchStrategy) -> st.SearchStrategy:
        arrays = st.builds(
            lambda it, hi: {"type": "array", "items": it, **({"maxItems": hi} if hi is not None else {})},
            inner,
            st.none() | st.integers(0, 3),
        )
        objects = st.builds(
            lambda props, req, addl: {
                "type": "object",
                "properties": props,
                "required": [k for k in props if k in req],
                "additionalProperties": addl,
            },
            st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
            st.sets(st.sampled_from(["a", "b", "c"])),
            st.sampled_from([False, True, {"type": "integer"}]),
        )
        return arrays | objects

    return st.recursive(_leaf, extend, max_leaves=5)


def _depth(v: object) -> int:
    if isinstance(v, list):
        return 1 + max(map(_depth, v), default=0)
    if isinstance(v, dict):
        return 1 + max(map(_depth, v.values()), default=0)
    return 0


def _mutations(t: str) -> list[str]:
    out = [t[:-1], t + "x", t + "}", t.replace(":", "", 1), t.replace(",", "", 1), t.replace('"', "", 1)]
    if len(t) > 2:
        out.append(t[: len(t) // 2] + "1" + t[len(t) // 2 :])
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(_schemas(), st.data())
def test_grammar_and_automaton_forms_agree(schema: dict, data: st.DataObject) -> None:
    dfa = compile_json_schema(schema, engine="automaton")
    grammar = compile_json_schema(schema, engine="grammar")
    assert isinstance(dfa, ByteDFA) and isinstance(grammar, Grammar)
    rec = Recognizer(build_rtn(grammar))
    values = data.draw(st.lists(from_schema(schema), min_size=1, max_size=3))
    for v in values:
        if _depth(v) > js.ANY_DEPTH:
            continue
        for sep in ((", ", ": "), (",", ":")):
            t = json.dumps(v, separators=sep)
            for text in (t, *_mutations(t)):
                data_b = text.encode()
                assert dfa.accepts(data_b) == rec.accepts(data_b), (schema, text)


def test_any_value_is_unbounded_in_grammar_mode() -> None:
    """`true` nests at any depth on the grammar engine (the automaton form stops at ANY_DEPTH)."""
    deep = "[" * 12 + "]" * 12
    grammar = compile_json_schema({"type": "array", "items": True}, engine="grammar")
    assert Recognizer(build_rtn(grammar)).accepts(deep.encode())
    assert not compile_json_schema({"type": "array", "items": True}).accepts(deep.encode())


def test_repeated_refs_share_one_rule() -> None:
    """A definition used in many places is one rule (hash-consed by its language)."""
    point = {"type": "object", "properties": {"x": {"type": "integer"}}, "additionalProperties": False}
    schema = {
        "$defs": {"p": point},
        "type": "object",
        "properties": {k: {"$ref": "#/$defs/p"} for k in "abcdefgh"},
        "additionalProperties": False,
    }
    grammar = compile_json_schema(schema, engine="grammar")
    assert isinstance(grammar, Grammar)
    alone = dict(compile_json_schema(point, engine="grammar").rules)
    body = alone[alone["start"].rule]  # the point's object rule
    assert [b for _, b in grammar.rules].count(body) == 1
    assert len(grammar.rules) < 8


@pytest.mark.parametrize("n", [60])
def test_large_schema_runs_on_the_grammar_engine(n: int) -> None:
    """A schema too large for one automaton goes to the lazy grammar engine (it was refused or slow)."""
    closed = {"type": "object", "additionalProperties": False}  # open objects take any value: grammar anyway
    props = {
        f"k{i}": {**closed, "properties": {f"v{j}": {"type": "string"} for j in range(8)}} for i in range(n)
    }
    choice = js.json_schema_engine({**closed, "properties": props})
    assert choice.engine == "grammar" and "NFA states" in choice.reason
    assert isinstance(compile_json_schema({**closed, "properties": props}, engine="auto"), Grammar)


def test_a_schema_free_value_runs_on_the_grammar_engine_at_any_depth() -> None:
    """`true`/`{}` is any JSON value, however deep: such a schema takes the grammar engine, not the token
    automaton whose any-value is bounded."""
    schema = {"type": "object", "properties": {"x": {}}, "required": ["x"], "additionalProperties": False}
    choice = js.json_schema_engine(schema)
    assert choice.engine == "grammar" and "any depth" in choice.reason
    deep = {"x": [[[[[[{"a": [1]}]]]]]]}
    assert compile_json_schema(schema, engine="auto").accepts(
        json.dumps(deep, separators=(",", ":")).encode()
    )


def test_string_lexeme_is_shared_and_its_rows_are_disk_cached(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """Every schema's plain strings are one Lexeme DFA, whose token rows are built once per vocabulary."""
    from decc.grammars import Vocabulary, disk_cache
    from decc.grammars.contextfree.cfg_grammar import Lexeme
    from decc.grammars.contextfree.cfg_rows import lexeme_automaton
    from decc.grammars.limits import DEFAULT_LIMITS

    monkeypatch.setenv(disk_cache.ENV, str(tmp_path))
    monkeypatch.setattr(disk_cache, "_enabled", None)

    def lexemes(schema: dict) -> list:
        grammar = compile_json_schema(schema, engine="grammar")
        return [body.dfa for _, body in grammar.rules if isinstance(body, Lexeme)]

    a = lexemes({"type": "object", "properties": {"s": {"type": "string"}}})
    b = lexemes({"type": "array", "items": {"type": "string"}})
    assert len(a) == 1 and a[0] is b[0]
    vocab = Vocabulary.from_token_bytes([None, b'"', b"a", b'a"', b"\\", b'\\"', b"ab"], eos_id=0)
    lexeme_automaton.cache_clear()
    before = dict(disk_cache.stats)
    first = lexeme_automaton(a[0], vocab, DEFAULT_LIMITS)
    lexeme_automaton.cache_clear()
    second = lexeme_automaton(a[0], vocab, DEFAULT_LIMITS)
    assert disk_cache.stats["writes"] == before["writes"] + 1
    assert disk_cache.stats["hits"] == before["hits"] + 1
    assert (first.bitmask == second.bitmask).all()


def _program(schema: dict, extra: str = "") -> str:
    return f'gen v {{ where: json(r"""{json.dumps(schema)}"""){extra} }}\n'


def test_choose_engine_pass_says_which_engine_and_why() -> None:
    """The choose-engine pass records each JSON schema's engine; the remarks say which and why, and the
    bound constraint is of that kind."""
    from decc.compiler.pipeline import compile_program
    from decc.dsl.parser import parse

    tree = {"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"}
    big = {"type": "object", "properties": {f"k{i}": {"type": "string"} for i in range(40)}}
    small = {"enum": ["a", "b"]}
    cases = [(tree, "grammar", "grammar (lazy) because the schema recurses"), (big, "grammar", "NFA states")]
    cases.append((small, "automaton", "token automaton because it is regular and small"))
    for schema, engine, said in cases:
        notes: list[str] = []
        module = compile_program(parse(_program(schema), "p.dec"), remarks=notes)
        c = module.generates()[0].constraint
        assert c.engine == engine
        assert isinstance(c.compiled, Grammar if engine == "grammar" else ByteDFA)
        assert any(line.startswith("choose-engine: 'v': engine: ") and said in line for line in notes), notes
    notes = []
    module = compile_program(parse(_program(big, " & length(max=900)"), "p.dec"), remarks=notes)
    part = module.generates()[0].constraint.parts[0]
    assert part.engine == "automaton" and "conjunction" in part.engine_reason


def test_inline_expands_a_subschema_into_one_regex() -> None:
    """`_Compiler.inline` (for keywords that complement or intersect a subschema) gives a call-free node
    with the language of the automaton form; recursion is refused."""
    from decc.grammars.automata.dfa import dfa_from_nfa
    from decc.grammars.json.json_canonical import NotExact
    from decc.grammars.json.json_engine import calls_in

    sub = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}}}}
    comp = js._Compiler(sub, False, False)
    node = comp.inline(sub, "", ())
    assert not calls_in(node)
    dfa = dfa_from_nfa(js.counted_nfa(node, js.DEFAULT_LIMITS))
    want = compile_json_schema(sub)
    for text in ('{"a": [1, 2]}', '{"a":[]}', "{}", '{"a": [1, "x"]}', '{"b": {"c": [[1]]}}', '{"a": 1}'):
        assert dfa.accepts(text.encode()) == want.accepts(text.encode()), text
    tree = {"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"}
    with pytest.raises(NotExact):
        js._Compiler(tree, False, False).inline(tree, "", ())


def test_a_healing_step_keeps_the_automaton_for_a_mid_sized_schema() -> None:
    """A schema past AUTOMATON_MAX_NFA but within HEALING_MAX_NFA runs as an automaton on a step that heals
    its text-then-gen boundary (only an automaton can be positioned inside a token), and on the grammar
    engine where the step does not heal (`heal: false`) or through `json_schema` alone."""
    from decc.compiler.pipeline import compile_program
    from decc.dsl.parser import parse
    from decc.grammars.json.json_engine import AUTOMATON_MAX_NFA, HEALING_MAX_NFA

    props = {"name": {"type": "string"}, "age": {"type": "integer"}}
    mid = {"type": "object", "properties": props, "additionalProperties": False}
    n = js.json_schema_engine(mid).reason
    assert js.json_schema_engine(mid).engine == "grammar", n
    assert js.json_schema_engine(mid, heals=True).engine == "automaton"
    size = int(n.split("need ")[1].split(" NFA")[0].replace(",", ""))
    assert AUTOMATON_MAX_NFA < size <= HEALING_MAX_NFA
    text = f'"Person:" gen v {{ where: json(r"""{json.dumps(mid)}""") }}\n'
    healed = compile_program(parse(text, "p.dec")).generates()[0].constraint
    assert healed.engine == "automaton" and "heals" in healed.engine_reason
    text = f'"Person:" gen v {{ where: json(r"""{json.dumps(mid)}"""), heal: false }}\n'
    assert compile_program(parse(text, "p.dec")).generates()[0].constraint.engine == "grammar"
