"""`--engine vllm` (compiler/passes/check_engine.py): each feature vLLM cannot run is refused with exactly
this diagnostic while its corrected twin compiles; every refusal of a program is reported at once; each
example is accepted or refused at recorded positions; and `--engine decc` refuses nothing and changes
nothing. Compiling needs no model: these tests load no tokenizer and no weights."""

from __future__ import annotations

from pathlib import Path

import pytest

import decc
from decc.cli import main
from decc.compiler.passes.check_engine import Refusals
from decc.compiler.pipeline import compile_program
from decc.compiler.printer import print_ir
from decc.compiler.trust import Trust
from decc.dsl import parse, parse_file
from decc.errors import DeccError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.dec"))
TRUST = Trust((), allow_installed=False, allow_files_outside=False, allow_imports=True)  # as decc.load
ON_DECC = "  hint: it runs on decc's own engine: drop --engine vllm"

# (feature, a step vLLM cannot run, its twin that runs there, the exact error)
REFUSED = [
    (
        "beam",
        "gen x { search: beam(width=2) }",
        "gen x { search: greedy }",
        """
c.dec:1:17: error: beam(...) is not supported under --engine vllm: vLLM has no beam search
  gen x { search: beam(width=2) }
                  ^^^^^^^^^^^^^
"""
        + ON_DECC,
    ),
    (
        "diverse_beam",
        "gen x { search: diverse_beam(width=4, groups=2) }",
        "gen x { search: best_of(n=4) }",
        """
c.dec:1:17: error: diverse_beam(...) is not supported under --engine vllm: vLLM has no beam search
  gen x { search: diverse_beam(width=4, groups=2) }
                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
"""
        + ON_DECC,
    ),
    (
        "smc",
        "gen x { search: smc(particles=4, temperature=0.8) }",
        "gen x { search: first_finish(n=4, temperature=0.8) }",
        """
c.dec:1:17: error: smc(...) is not supported under --engine vllm: vLLM cannot reweight or resample
  gen x { search: smc(particles=4, temperature=0.8) }
                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
"""
        + ON_DECC,
    ),
    (
        "typical_p",
        "gen x { search: sample(temperature=0.7, typical_p=0.9) }",
        "gen x { search: sample(temperature=0.7, top_p=0.9, top_k=5, min_p=0.1, seed=1) }",
        """
c.dec:1:41: error: typical_p is not supported under --engine vllm: vLLM has no typical sampling
  gen x { search: sample(temperature=0.7, typical_p=0.9) }
                                          ^^^^^^^^^^^^^
"""
        + ON_DECC
        + "; or drop typical_p (top_p and min_p run under vLLM)",
    ),
    (
        "typical_p_in_best_of",
        "gen x { search: best_of(n=2, typical_p=0.9) }",
        "gen x { search: best_of(n=2, top_p=0.9) }",
        """
c.dec:1:30: error: typical_p is not supported under --engine vllm: vLLM has no typical sampling
  gen x { search: best_of(n=2, typical_p=0.9) }
                               ^^^^^^^^^^^^^
"""
        + ON_DECC
        + "; or drop typical_p (top_p and min_p run under vLLM)",
    ),
    (
        "best_of_reward",
        'gen x { search: best_of(n=2, score=keyword("a", "b")) }',
        "gen x { search: best_of(n=2, score=logprob) }",
        """
c.dec:1:36: error: best_of(score=keyword(...)) is not supported under --engine vllm: a reward that picks \
among samples runs on decc's own engine
  gen x { search: best_of(n=2, score=keyword("a", "b")) }
                                     ^^^^^^^^^^^^^^^^^
"""
        + ON_DECC
        + "; or drop score= (best_of keeps the sample with the highest logprob)",
    ),
    (
        "aligned",
        'gen x { where: regex(r"[ab]+"), mode: aligned, search: sample() }',
        'gen x { where: regex(r"[ab]+"), mode: masked, search: sample() }',
        """
c.dec:1:39: error: mode: aligned is not supported under --engine vllm: ASAp reweights tokens by estimates \
kept across runs
  gen x { where: regex(r"[ab]+"), mode: aligned, search: sample() }
                                        ^^^^^^^
"""
        + ON_DECC
        + "; or use mode: masked (the default)",
    ),
    (
        "stop_regex",
        'gen x { stop_regex: r"\\n" }',
        'gen x { stop: ["\\n"], eos: false, max_tokens: 9 }',
        r"""
c.dec:1:21: error: stop_regex is not supported under --engine vllm: vLLM stops at strings only
  gen x { stop_regex: r"\n" }
                      ^^^^^
"""
        + ON_DECC
        + "; or use stop: with the strings the regex matches",
    ),
    (
        "stop_entropy",
        "gen x { stop_entropy: below(0.5, steps=2) }",
        'gen x { where: regex(r"[0-9]+") & length(max=5, unit="tokens") }',
        """
c.dec:1:23: error: stop_entropy is not supported under --engine vllm: vLLM does not stop on the \
next-token entropy
  gen x { stop_entropy: below(0.5, steps=2) }
                        ^^^^^^^^^^^^^^^^^^^
"""
        + ON_DECC,
    ),
    (
        "policy_from_a_let",  # refused where the policy is written, once for every step that uses it
        "let wide = beam(width=3)\ngen x { search: wide }\ngen y { search: wide }",
        "let wide = sample(temperature=0.5)\ngen x { search: wide }\ngen y { search: wide }",
        """
c.dec:1:12: error: beam(...) is not supported under --engine vllm: vLLM has no beam search
  let wide = beam(width=3)
             ^^^^^^^^^^^^^
"""
        + ON_DECC,
    ),
]


def compiled(src: str, engine: str) -> str:
    """The optimized IR of `src` compiled for `engine`, as `decc compile --emit opt` prints it."""
    return print_ir(compile_program(parse(src, "c.dec"), engine=engine))


@pytest.mark.parametrize(("feature", "bad", "good", "expected"), REFUSED, ids=[r[0] for r in REFUSED])
def test_each_refusal_and_its_twin(feature: str, bad: str, good: str, expected: str) -> None:
    with pytest.raises(DeccError) as info:
        compiled(bad, "vllm")
    assert info.value.render() == expected.strip("\n")
    assert "engine=vllm" in compiled(good, "vllm")
    compiled(bad, "decc")  # decc's own engine runs it


def test_every_refusal_is_reported_at_once() -> None:
    """The one-step programs above as one program (steps renamed a, b, ...): each error, in source order."""
    one_step = [(bad, err) for _, bad, _, err in REFUSED if "\n" not in bad]
    names = "abcdefghijklmnopqrstuvwxyz"
    steps = [bad.replace("gen x ", f"gen {names[i]} ") for i, (bad, _) in enumerate(one_step)]
    with pytest.raises(Refusals) as info:
        compiled("\n".join(steps), "vllm")
    expected = [
        err.strip("\n").replace("c.dec:1:", f"c.dec:{i + 1}:", 1).replace("gen x ", f"gen {names[i]} ", 1)
        for i, (_, err) in enumerate(one_step)
    ]
    assert info.value.render() == "\n".join(expected)
    assert [e.span.line for e in info.value.errors if e.span] == list(range(1, len(steps) + 1))


def test_several_refusals_in_one_step_are_each_reported() -> None:
    src = 'gen x { search: smc(particles=2, typical_p=0.5), stop_regex: r"\\.", stop_entropy: above(3.0) }'
    with pytest.raises(Refusals) as info:
        compiled(src, "vllm")
    found = [(e.message.split(" ")[0], e.span.col if e.span else None) for e in info.value.errors]
    assert found == [("smc(...)", 17), ("typical_p", 34), ("stop_regex", 62), ("stop_entropy", 83)]


# Each example under --engine vllm: [] accepted, else the line:col of every refusal (a change shows here).
EXAMPLES_UNDER_VLLM = {
    "aligned.dec": ["25:11"],
    "arith.dec": [],
    "beam.dec": ["24:13"],
    "best_of.dec": ["15:32"],
    "branching.dec": [],
    "conjunction.dec": [],
    "definitions.dec": [],
    "diverse_beam.dec": ["17:13"],
    "extract_json.dec": [],
    "first_finish.dec": [],
    "grammar_file.dec": [],
    "hello.dec": [],
    "json_inline.dec": [],
    "lengths.dec": [],
    "multi_step.dec": [],
    "pydantic_model.dec": [],
    "ranges.dec": [],
    "recursive.dec": [],
    "sampling.dec": [],
    "sentiment.dec": [],
    "smc.dec": ["21:13"],
    "stopping.dec": ["13:42", "15:43"],
    "strings.dec": [],
}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_under_vllm(path: Path) -> None:
    assert path.name in EXAMPLES_UNDER_VLLM, f"record {path.name} in EXAMPLES_UNDER_VLLM"
    try:
        program = decc.load(path, engine="vllm")
    except Refusals as e:
        found = [f"{err.span.line}:{err.span.col}" for err in e.errors if err.span is not None]
        assert all(err.span is not None and err.span.path == str(path) for err in e.errors)
    else:
        found = []
        assert program.engine == "vllm"
    assert found == EXAMPLES_UNDER_VLLM[path.name]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_engine_decc_refuses_nothing_and_vllm_only_drops_drafts(path: Path) -> None:
    """--engine decc is the default, unchanged; an accepted program under vllm is the same IR with no
    drafts (the speculate pass is decc's own engine's) and its engine named."""
    tree = parse_file(path)
    default = compile_program(tree, trust=TRUST)
    assert default.engine == "decc"
    assert print_ir(compile_program(tree, trust=TRUST, engine="decc")) == print_ir(default)
    if EXAMPLES_UNDER_VLLM[path.name]:
        return
    plain = print_ir(compile_program(tree, trust=TRUST, disabled=frozenset({"speculate"})))
    under = print_ir(compile_program(tree, trust=TRUST, engine="vllm"))
    assert " engine=vllm " in under.splitlines()[0]
    assert under.replace(" engine=vllm", "", 1) == plain


def test_heal_written_under_vllm_is_a_warning() -> None:
    module = compile_program(
        parse('"Q: "\ngen x { heal: true }\ngen y { heal: false }', "c.dec"), engine="vllm"
    )
    assert [w.render() for w in module.warnings] == [
        "c.dec:2:9: warning: heal: true has no effect under --engine vllm: token healing runs on decc's own "
        "engine\n  gen x { heal: true }\n          ^^^^\n"
        "  hint: remove it; under vLLM the prompt's tokens stay as they are"
    ]
    assert not compile_program(parse('"Q: "\ngen x { heal: true }', "c.dec")).warnings


def test_an_unknown_engine_is_a_user_error() -> None:
    with pytest.raises(DeccError) as info:
        decc.loads("gen x", engine="vlm")
    assert info.value.render() == "decc: error: unknown engine 'vlm'\n  hint: did you mean 'vllm'?"
    with pytest.raises(DeccError, match="unknown engine 'tgi'"):
        compile_program(parse("gen x", "c.dec"), engine="tgi")


def test_decc_check_prints_every_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.dec"
    bad.write_text('gen a { search: beam(width=2) }\ngen b { stop_regex: r"x" }\n')
    good = tmp_path / "good.dec"
    good.write_text('gen a { search: sample(seed=1), stop: "x" }\n')
    assert main(["check", "--model-free", "--engine", "vllm", str(bad), str(good)]) == 2
    out = capsys.readouterr()
    assert f"{bad}:1:17: error: beam(...) is not supported under --engine vllm" in out.err
    assert f"{bad}:2:21: error: stop_regex is not supported under --engine vllm" in out.err
    assert out.err.count("^") > 0 and out.err.count(ON_DECC.strip()) == 2 and "Traceback" not in out.err
    assert "1 of 2 file(s) failed" in out.err
    assert f"ok: {good} — 1 step, 0 constraints" in out.out and "runs under --engine vllm" in out.out
    assert main(["check", "--model-free", str(bad)]) == 0  # decc's own engine runs both


def test_decc_compile_under_vllm(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(ROOT / "examples/hello.dec"), "--engine", "vllm", "--emit", "opt"]) == 0
    out = capsys.readouterr().out
    assert "engine=vllm" in out and "draft=" not in out
    assert "// speculate: turned off (only decc's own engine uses it, not vllm)" in out
    assert main(["compile", str(ROOT / "examples/beam.dec"), "--engine", "vllm"]) == 2
    assert "beam(...) is not supported under --engine vllm" in capsys.readouterr().err


def test_the_engines_table_lists_each_refusal() -> None:
    """docs/language.md's Engines table marks refused exactly what the pass refuses (a refusal the table
    leaves out, or a row it marks refused that compiles, fails here)."""
    text = (ROOT / "docs" / "language.md").read_text()
    section = text[text.index("## Engines") : text.index("## Checks")]
    refused_rows = [line for line in section.splitlines() if line.startswith("|") and "**refused**" in line]
    named = {
        "beam": "`beam`",
        "diverse_beam": "`diverse_beam`",
        "smc": "`smc`",
        "typical_p": "typical_p",
        "typical_p_in_best_of": "in `best_of`",
        "best_of_reward": "`best_of(score=...)`",
        "aligned": "`mode: aligned`",
        "stop_regex": "`stop_regex`",
        "stop_entropy": "`stop_entropy`",
        "policy_from_a_let": "`beam`",
    }
    assert set(named) == {feature for feature, *_ in REFUSED}
    for feature, words in named.items():
        assert any(words in row for row in refused_rows), feature
    for row in refused_rows:  # every refused row is one the pass refuses (or --ray, the CLI's)
        assert row.startswith("| `--ray`") or any(words in row for words in named.values()), row
