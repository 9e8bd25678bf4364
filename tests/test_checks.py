"""Static checks of the compiler (model-free): each mistake gets a positioned diagnostic, with hints."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decc.compiler.pipeline import compile_program
from decc.dsl import parse
from decc.errors import DeccError


def check(src: str) -> None:
    compile_program(parse(src, "c.dec"))


CASES = [
    ("gen x { max_token: 3 }", 1, 9, "unknown option 'max_token' for gen", "did you mean 'max_tokens'?"),
    ("gen x { max_tokens: 0 }", 1, 21, "max_tokens must be at least 1, not 0", None),
    ('gen x { max_tokens: "3" }', 1, 21, "max_tokens must be an integer, not a string", None),
    ("gen x { max_tokens: 3, max_tokens: 4 }", 1, 24, "option 'max_tokens' given twice", None),
    ('gen x { where: regx(r"a") }', 1, 16, "unknown constraint 'regx'", "did you mean 'regex'?"),
    ('gen x { where: "a" }', 1, 16, "'where' takes a constraint such as regex", None),
    ("gen x { search: greedyy }", 1, 17, "unknown search policy 'greedyy'", "did you mean 'greedy'?"),
    (
        "gen x { search: sample(temprature=0.5) }",
        1,
        24,
        "unknown argument 'temprature' for sample",
        "did you mean 'temperature'?",
    ),
    ("gen x { search: sample(top_p=1.5) }", 1, 30, "top_p must be in (0, 1], not 1.5", None),
    ("gen x { search: sample(temperature=-1) }", 1, 36, "temperature must be at least 0, not -1", None),
    ('gen x { stop: "" }', 1, 15, "a stop string cannot be empty", None),
    ('"{nme}"\ninput name: str', 1, 2, "unknown variable 'nme'", "did you mean 'name'?"),
    ('"{later}"\ngen later', 1, 2, "'later' is used before it is generated", None),
    ("input a: str\ngen a", 2, 5, "'a' is already defined", None),
    ("gen a\ngen a", 2, 5, "'a' is already defined", None),
    ("input a: strng", 1, 10, "unknown input type 'strng'", "did you mean 'str'?"),
    ('input a: int = "x"', 1, 16, "default must be of type int, not a string", None),
    ('user "hi"\ngen x', 2, 1, "a generation outside a chat turn", None),
    ('user "hi"\n"more"', 2, 1, "text outside a chat turn", None),
    ("user { gen x }", 1, 8, "generation inside a 'user' turn", None),
    ("model default\nmodel other", 2, 1, "a program declares one model", None),
    ('gen x { where: regex(r"ab(c") }', 1, 26, "invalid regex", None),
    (
        'gen x { where: json(r"""{"type": "object",, }""") }',
        1,
        43,
        "invalid JSON in schema: Expecting property name",
        None,
    ),
    (
        'gen x { where: json(r"""{"type": "array", "uniqueItems": true}""") }',
        1,
        43,  # the keyword, not the whole schema
        "unsupported JSON schema: ",
        "json(..., lenient=true) ignores unsupported keywords with a warning",
    ),
    ('gen x { where: json(r"""{"type": "strin"}""") }', 1, 26, "invalid JSON schema", None),
    ('gen x { where: json(file="nope.json") }', 1, 26, "cannot read 'nope.json'", None),
    (
        'gen x { where: grammar("arithm") }',
        1,
        24,
        "unknown built-in grammar 'arithm'",
        "did you mean 'arith'?",
    ),
    ("gen x { where: grammar() }", 1, 16, "grammar(...) takes one grammar", None),
    ('gen x { where: grammar("json", strat="x") }', 1, 32, "unknown argument 'strat' for grammar", None),
    ('gen x { where: json("{}", file="a.json") }', 1, 16, "json(...) takes one schema", None),
    (
        'gen x { where: json("{}", whitespce="any") }',
        1,
        27,
        "unknown argument 'whitespce' for json",
        "did you mean 'whitespace'?",
    ),
    ('gen x { where: json("{}", whitespace="none") }', 1, 38, "unknown whitespace mode 'none'", None),
    ('gen x { where: regex(r"a{3,1}") }', 1, 25, "invalid regex: min repeat greater than max repeat", None),
    ('gen x { where: regex(r"(?=a)b") }', 1, 24, "invalid regex: lookahead is not supported", None),
    ('gen x { where: regex(r"[^\\x00-\\U0010FFFF]") }', 1, 22, "this regex matches nothing", None),
    ('gen x {\n  where: regex(r"[z-a]")\n}', 2, 19, "invalid regex: bad character range z-a", None),
    # the constraint forms, policies, rewards and stopping rules of the full language
    ("gen x { where: choice() }", 1, 16, "choice(...) needs at least one string", None),
    ('gen x { where: choice("a", "a") }', 1, 28, 'choice "a" is listed twice', None),
    ('gen x { where: choice("a", 1) }', 1, 28, "a choice must be a string, not a number", None),
    ("gen x { where: int(min=5, max=1) }", 1, 16, "int(...) with min 5 above max 1 matches nothing", None),
    ("gen x { where: int(min=1.5) }", 1, 24, "an integer bound must be an integer, not a number", None),
    (
        "gen x { where: int(1, 2) }",
        1,
        20,
        "int(...) takes keyword arguments only, e.g. int(min=0, max=10)",
        None,
    ),
    ("gen x { where: length() }", 1, 16, "length(...) needs min=, max= or both", None),
    ('gen x { where: length(max=3, unit="words") }', 1, 35, "unknown unit 'words'", "known: chars, tokens"),
    (
        'gen x { where: length(min=5, max=2, unit="tokens") }',
        1,
        16,
        "length(...) with min 5 above max 2 matches nothing",
        None,
    ),
    (
        'gen x { where: length(min=50, unit="tokens"), max_tokens: 10 }',
        1,
        9,
        "at least 50 tokens are required but max_tokens is 10",
        None,
    ),
    (
        'gen x { where: grammar("json") & regex(r"a") }',
        1,
        24,
        "a grammar cannot be combined with other constraints",
        None,
    ),
    (
        'gen x { where: json(model="nocolon") }',
        1,
        27,
        "a pydantic model must be written 'module:name', not \"nocolon\"",
        None,
    ),
    ("gen x { search: beam() }", 1, 17, "beam(...) needs width=", None),
    ("gen x { search: beam(width=0) }", 1, 28, "width must be at least 1, not 0", None),
    (
        "gen x { search: diverse_beam(width=5, groups=2) }",
        1,
        46,
        "width 5 must be a multiple of groups 2",
        None,
    ),
    (
        "gen x { search: beam(width=4, widht=2) }",
        1,
        31,
        "unknown argument 'widht' for beam",
        "did you mean 'width'?",
    ),
    (
        "gen x { search: best_of(n=4, score=logprb) }",
        1,
        36,
        "unknown reward 'logprb'",
        "did you mean 'logprob'?",
    ),
    (
        'gen x { search: smc(particles=4, resampling="stratified") }',
        1,
        45,
        "unknown resampling scheme 'stratified'",
        "known: multinomial, systematic",
    ),
    (
        "gen x { search: smc(particles=4, ess_threshold=1.5) }",
        1,
        48,
        "ess_threshold must be in [0, 1], not 1.5",
        None,
    ),
    ("gen x { search: sample(min_p=1) }", 1, 30, "min_p must be in [0, 1), not 1", None),
    (
        'gen x { where: regex(r"a+"), search: sample(top_k=5, top_p=0.9), mode: aligned }',
        1,
        72,
        "mode: aligned samples the model's own distribution; top_k, top_p would cut it",
        "keep temperature, drop the truncations, or use mode: masked",
    ),
    ("gen x { mode: aligned }", 1, 15, "mode: aligned needs a constraint to align to", "add 'where: ...'"),
    ("gen x { mode: alined }", 1, 15, "unknown constraint mode 'alined'", "did you mean 'aligned'?"),
    (
        'gen x { where: regex(r"a+"), search: beam(width=2), mode: aligned }',
        1,
        59,
        "mode: aligned is not supported with beam(...): it applies to greedy and sample(...), which draw one value",
        "smc(...) corrects the masking bias with importance weights instead",
    ),
    ("gen x { search: sample(typical_p=0) }", 1, 34, "typical_p must be in (0, 1], not 0", None),
    (
        'gen x { search: best_of(n=2, score=python("os:system")) }',
        1,
        43,
        "cannot import module 'os': it is not beside the program but installed",
        "--allow-installed (allow_installed=True) allows the standard library and installed packages",
    ),
    (
        'gen x { search: best_of(n=2, score=classifier("no/such/dir")) }',
        1,
        47,
        "no model folder at 'no/such/dir'",
        None,
    ),
    ('gen x { stop_regex: r"a(" }', 1, 24, "invalid stop regex: missing ), unterminated subpattern", None),
    ('gen x { stop_regex: r"a*" }', 1, 21, "a stop regex must not match the empty string", None),
    (
        "gen x { stop_entropy: 3 }",
        1,
        23,
        "stop_entropy takes above(threshold, steps=k) or below(threshold, steps=k)",
        None,
    ),
    ("gen x { stop_entropy: above(-1) }", 1, 29, "an entropy threshold must be at least 0, not -1", None),
    ("gen x { eos: 1 }", 1, 14, "eos must be true or false, not a number", None),
    ("gen x { search: greedy(1) }", 1, 24, "greedy takes no arguments", None),
]


@pytest.mark.parametrize(("src", "line", "col", "message", "hint"), CASES)
def test_static_check(src: str, line: int, col: int, message: str, hint: str | None) -> None:
    with pytest.raises(DeccError) as info:
        check(src)
    err = info.value
    assert err.span is not None
    assert message in err.message
    assert (err.span.line, err.span.col) == (line, col), err.render()
    if hint is not None:
        assert hint in err.hints


def test_valid_programs_pass() -> None:
    check('input n: int = 2\n"Count to {n}: "\ngen c { where: regex(r"[0-9 ]+"), max_tokens: 8 }')
    check('system "s"\nuser "u"\nassistant { gen a }\nuser "again {a}"\nassistant { gen b }')


def test_temperature_zero_runs_greedy() -> None:
    from decc.runtime.executor import sampling_params

    module = compile_program(parse("gen x { search: sample(temperature=0, seed=1) }", "t.dec"))
    params = sampling_params(module.generates()[0].search)
    assert params.greedy


def test_json_schema_file_errors_point_into_the_schema_file(tmp_path) -> None:
    from decc.dsl import parse_file

    (tmp_path / "s.json").write_text('{\n  "type": "object"\n  "x": 1\n}')
    prog = tmp_path / "p.dec"
    prog.write_text('gen x { where: json(file="s.json") }')
    with pytest.raises(DeccError) as info:
        compile_program(parse_file(prog))
    err = info.value
    assert err.span is not None and err.span.path.endswith("s.json")
    assert (err.span.line, err.span.col) == (3, 3)
    assert "invalid JSON in schema: Expecting ',' delimiter" in err.message


def test_unsupported_keyword_names_its_pointer() -> None:
    with pytest.raises(DeccError) as info:
        check('gen x { where: json(r"""{"properties": {"a": {"type": "array", "uniqueItems": true}}}""") }')
    assert "/properties/a/uniqueItems" in info.value.message


def test_lenient_json_compiles() -> None:
    import warnings

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        check('gen x { where: json(r"""{"type": "array", "uniqueItems": true}""", lenient=true) }')


def test_grammar_file_errors_point_into_the_grammar_file(tmp_path) -> None:
    from decc.dsl import parse_file

    (tmp_path / "g.lark").write_text('start: item+\nitem: "a" | undefined_rule\n')
    prog = tmp_path / "p.dec"
    prog.write_text('gen x { where: grammar(file="g.lark") }')
    with pytest.raises(DeccError) as info:
        compile_program(parse_file(prog))
    err = info.value
    assert err.message.startswith("invalid grammar: ") and "undefined_rule" in err.message
    assert err.span is not None and err.span.path.endswith("g.lark") and err.span.line == 2


@given(
    st.sampled_from(["../", "./", "/tmp/", "sub/", ".", "..", ""]),
    st.from_regex(r"zz[a-z0-9_]{0,8}", fullmatch=True),  # no such module is installed
    st.sampled_from(["", ".py"]),
    st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
)
def test_python_reference_that_is_a_path(prefix: str, stem: str, ext: str, func: str) -> None:
    """A python(...) reward written as a path ("../x:f", "x.py:f") gets decc's own error at the string,
    saying what form is accepted, not importlib's wording; a plain "module:function" is not refused so."""
    ref = f"{prefix}{stem}{ext}:{func}"
    src = f'gen x {{ search: best_of(n=2, score=python("{ref}")) }}'
    path_like = bool(prefix or ext)
    with pytest.raises(DeccError) as info:
        check(src)
    e = info.value
    assert e.span is not None and (e.span.line, e.span.col) == (1, 43)
    assert ("takes 'module:function'" in e.message) == path_like, e.message
    if path_like:
        assert f'write python("{stem}:{func}")' in e.hints[0]
        assert "relative import" not in e.render() and "No module named" not in e.render()
