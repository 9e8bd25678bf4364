"""Issue 21: every search policy x stop rule x constraint x option combination, single runs and batched,
either is refused by `decc check` at the source position of what the user wrote, naming what clashes, or
runs on a real (tiny, random-weight GPT-2) model with every value valid under its constraint and options.

The oracle for "runs" is the runtime itself; the values are judged by tests/test_examples.py's
`check_values` (Python's `re`, `jsonschema`, Lark, plain Python: independent of decc's automata). A refusal
must carry a span on the gen step's line, inside one of the options the generated program wrote.
tests/test_policy_rules.py does the same for the rules alone on the toy model."""

from __future__ import annotations

import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_examples import check_values

import decc
from decc.errors import DeccError

POLICIES = (
    "greedy",
    "sample(seed=1)",
    "sample(seed=2, top_p=0.9, typical_p=0.8)",
    "beam(width=2)",
    "diverse_beam(width=2, groups=2)",
    "best_of(n=2)",
    'best_of(n=2, score=keyword("a"))',
    "first_finish(n=2)",
    "smc(particles=2)",
    'smc(particles=2, potential=regex(r"[0-9]"))',
)
RULES = (
    'stop: ["a", "\\n"]',
    'stop_regex: r"[0-9]{2}"',
    "stop_entropy: above(0.5)",
    "stop_entropy: below(3.0, steps=2)",
    "eos: false",
    "mode: aligned",
    "heal: false",
)
CONSTRAINTS = (
    "",
    'where: regex(r"[a-z]{1,5}")',
    'where: choice("yes", "no", "maybe")',
    "where: int(min=-5, max=99)",
    "where: number(min=0, max=9)",
    "where: length(max=5)",
    'where: length(min=1, max=3, unit="tokens")',
    'where: regex(r"[a-z ]+") & length(max=6)',
    'where: json(r"""{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}""")',
    'where: grammar("arith")',
)

pytestmark = pytest.mark.usefixtures("one_thread")


def program(policy: str, rules: tuple[str, ...], constraint: str) -> str:
    """A prompt ending in a space (so the step heals unless told not to), the step on line 2, and a second
    step after it, so that what the first one leaves behind (cache, tracks, drafts) is used again."""
    return f'"Q: "\ngen x {{ {constraint} search: {policy} {" ".join(rules)} max_tokens: 6 }}\n"."\ngen y {{ max_tokens: 2 }}\n'


def check_or_run(folder: str, src: str, batch: bool) -> None:
    try:  # what `decc check` does: compile, then fit the plan to the model's tokenizer and config
        prog = decc.loads(src, "p.dec", model=folder)
        prog.plan()
    except DeccError as e:  # refused: inside an option the program wrote on the step's line
        span = e.span
        assert span is not None and span.line == 2 and span.source is not None, e.render()
        line = src.splitlines()[1]
        assert 0 < span.col <= len(line), e.render()
        assert "hint:" in e.render() or e.hints or e.notes, e.render()
        return
    if batch:
        results = prog.run_batch([{}, {}], batch_size=2)
    else:
        results = [prog.run()]
    for result in results:
        check_values(prog, result)


@pytest.fixture(scope="module")
def gpt2(tiny_model) -> str:
    return tiny_model("gpt2")


@pytest.mark.parametrize("i", range(len(POLICIES)), ids=lambda i: POLICIES[i].split("(")[0])
def test_every_policy_with_every_rule_and_constraint(gpt2: str, i: int) -> None:
    """A covering grid: each policy meets each rule and each constraint (the constraint rotating with the
    rule), once as a single run and once batched."""
    for j, rule in enumerate((*RULES, "")):
        for k in (j, j + len(RULES) + 1):
            constraint = CONSTRAINTS[(i + k) % len(CONSTRAINTS)]
            check_or_run(gpt2, program(POLICIES[i], (rule,) if rule else (), constraint), batch=k > j)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(POLICIES),
    st.lists(st.sampled_from(RULES), max_size=3, unique_by=lambda r: r.split(":")[0]),
    st.sampled_from(CONSTRAINTS),
    st.booleans(),
)
def test_what_check_accepts_runs_and_is_valid(
    gpt2: str, policy: str, rules: list[str], constraint: str, batch: bool
) -> None:
    check_or_run(gpt2, program(policy, tuple(rules), constraint), batch)


REFUSED = (
    ("beam(width=2)", "mode: aligned", "beam"),
    ("diverse_beam(width=2, groups=2)", "mode: aligned", "diverse_beam"),
    ("best_of(n=2)", "mode: aligned", "best_of"),
    ("first_finish(n=2)", "mode: aligned", "first_finish"),
    ("smc(particles=2)", "mode: aligned", "smc"),
    ("beam(width=2)", "stop_entropy: above(1.0)", "beam"),
    ("diverse_beam(width=4, groups=2)", "stop_entropy: below(1.0)", "diverse_beam"),
)


@pytest.mark.parametrize("via_let", [False, True])
@pytest.mark.parametrize(("policy", "rule", "name"), REFUSED)
def test_a_refusal_names_both_parts(policy: str, rule: str, name: str, via_let: bool) -> None:
    """The error sits on the rule, names the policy as the language spells it (also when a `let` named the
    policy otherwise), and a note points at the policy (its `let` if it has one)."""
    head = f"let wide = {policy}\n" if via_let else ""
    written = "wide" if via_let else policy
    src = f'{head}"Q: "\ngen x {{ where: regex(r"[a-z]+")\n  search: {written}\n  {rule} }}\n'
    with pytest.raises(DeccError) as info:
        decc.loads(src, "p.dec")
    e, key = info.value, rule.split(":")[0]
    shown = "mode: aligned" if key == "mode" else key
    assert e.span is not None and e.span.source is not None
    assert (e.span.line, e.span.col) == (4 + bool(via_let), 3 + len(key) + 2 if key == "mode" else 3)
    assert f"{shown} is not supported with {name}(...)" in e.message, e.message
    where = "p.dec:1:12" if via_let else "p.dec:3:11"  # the policy: its definition, or the option's value
    assert any(where in n for n in e.notes), e.notes
    assert e.hints, e.render()


HEADS = {
    "prompt": '"Q: "\n',
    "after-branch": 'input a: str = "c"\n"Q: "\nif a == "b" { "more text here" }\n',
    "first-gen": "",
}


@pytest.mark.parametrize(
    ("head", "policy"),
    [
        ("prompt", "greedy"),
        ("prompt", "beam(width=2)"),
        ("after-branch", "greedy"),
        ("first-gen", "smc(particles=2)"),
    ],
)
def test_max_tokens_past_the_context_is_refused_at_check(gpt2: str, head: str, policy: str) -> None:
    """The tiny GPT-2 reads 1024 positions. A step whose max_tokens cannot fit after the prompt was accepted
    by check and failed at run time, with no position, once the model wrote that long; now check refuses
    it at its max_tokens. The largest max_tokens that fits is accepted, and (once) runs to its end with
    eos: false, single and batched: the runtime is the oracle for where the limit lies."""
    before = len(decc.load_tokenizer(gpt2).encode("Q: ")) if HEADS[head] else 1  # 1: the start token
    fits = 1024 - before + 1
    for max_tokens in (fits, fits + 1):
        src = f"{HEADS[head]}gen x {{ max_tokens: {max_tokens} eos: false search: {policy} }}\n"
        prog = decc.loads(src, "p.dec", model=gpt2)
        if max_tokens > fits:
            with pytest.raises(DeccError) as info:
                prog.plan()
            span = info.value.span
            assert span is not None and span.source is not None
            assert span.source.text[span.start : span.end] == str(max_tokens), info.value.render()
            assert f"at most {fits}" in info.value.render()
        elif (head, policy) == ("prompt", "greedy"):  # the costly part (1021 tokens), once
            results = [prog.run(), *prog.run_batch([{}, {}])]
            assert all(r.steps["x"].finish_reason == "length" for r in results)
        else:
            prog.plan()


@pytest.mark.parametrize(
    ("config", "call", "at", "message"),
    [
        (
            {"id2label": {"0": "only"}},
            'classifier("clf")',
            'classifier("clf")',
            "has 1 labels; label 1 is not",
        ),
        (
            {"id2label": {"0": "neg", "1": "pos"}},
            'classifier("clf", label=2)',
            "2",
            "label 2 is not one of them",
        ),
        ({}, 'classifier("clf", label=5)', "5", "has 2 labels; label 5"),  # transformers' default: 2
        (None, 'classifier("clf")', '"clf"', "no config.json in the classifier folder 'clf'"),
        ("[1]", 'classifier("clf")', '"clf"', "config.json of the classifier 'clf' is not a JSON object"),
    ],
)
def test_a_classifier_label_it_lacks_is_refused_at_check(tmp_path, config, call: str, at: str, message: str):
    """The label was only checked when the run loaded the classifier (an error with no position); its
    config.json says what labels there are, so check refuses it at the label (or the call, for the
    default label 1). A label the classifier has compiles, with no weights in the folder."""
    folder = tmp_path / "clf"
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    src = f'"Q: "\ngen x {{ search: best_of(n=2, score={call}) }}\n'
    with pytest.raises(DeccError) as info:
        decc.loads(src, str(tmp_path / "p.dec"))
    span = info.value.span
    assert span is not None and span.source is not None and span.line == 2, info.value.render()
    assert span.source.text[span.start : span.end] == at, info.value.render()
    assert message in info.value.message, info.value.message
    if config is not None and not isinstance(config, str):
        fine = (
            call.replace("label=2", "label=1")
            .replace("label=5", "label=0")
            .replace('"clf")', '"clf", label=0)')
        )
        decc.loads(src.replace(call, fine), str(tmp_path / "p.dec"))


@pytest.fixture(scope="module")
def no_start_token(gpt2: str, tmp_path_factory) -> str:
    """The tiny GPT-2 with its tokenizer's BOS removed: a model with no start token."""
    folder = tmp_path_factory.mktemp("models") / "nobos"
    shutil.copytree(gpt2, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "bos_token": None}))
    return str(folder)


@pytest.mark.parametrize(
    ("src", "refused"),
    [
        ("gen x { max_tokens: 2 }\n", True),
        ('input a: str = "b"\nif a == "b" { gen x { max_tokens: 2 } }\n', True),
        ('"Q"\ngen x { max_tokens: 2 }\n', False),
        ('input a: str = "b"\n"{a}"\ngen x { max_tokens: 2 }\n', False),  # a text, even one with a variable
    ],
)
def test_a_first_gen_without_a_start_token_is_refused_at_check(no_start_token: str, src: str, refused: bool):
    """A program that opens with a gen needs the model's start token; on a model without one the run
    refused it, check did not. Now check does, at the gen; with text before it, it runs."""
    prog = decc.loads(src, "p.dec", model=no_start_token)
    if refused:
        with pytest.raises(DeccError) as info:
            prog.plan()
        span = info.value.span
        assert span is not None and span.source is not None
        assert span.source.text[span.start : span.end] == "x", info.value.render()
        assert "no start token" in info.value.message
    else:
        assert prog.run().steps["x"].finish_reason in ("eos", "length")


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ("search: beam(width=2)", "beam(...)"),
        ("search: smc(particles=2)", "smc(...)"),
        ('where: regex(r"[a-z]+") mode: aligned', "mode: aligned"),
        ("search: sample(seed=1)", None),
        ("search: best_of(n=2) heal: false", None),
    ],
)
def test_heal_true_where_it_does_nothing_is_a_positioned_warning(options: str, why: str | None) -> None:
    """`heal: true` written on a step that is never healed ran silently unhealed; now check warns at it."""
    written = "" if "heal:" in options else " heal: true"
    prog = decc.loads(f'"Q: "\ngen x {{ {options}{written} }}\n', "p.dec")
    found = [w for w in prog.warnings if "heal" in w.message]
    if why is None:
        assert not found, [w.render() for w in found]
        return
    (w,) = found
    assert w.span is not None and w.span.source is not None and w.span.line == 2
    assert w.span.source.text[w.span.start : w.span.end] == "heal"
    assert f"no effect with {why}" in w.message and w.hints
