"""Budget-aware masks (grammars/tokens/budget.py): with `budget` tokens left a matcher allows exactly the tokens after
which some completion fits the budget, checked against a brute-force oracle over token sequences."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from functools import cache

import numpy as np
import pytest
import regex as pyregex
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import decc
from decc.compiler.ir import Beam
from decc.grammars import Vocabulary, cfg, choice_dfa, compile_regex, conjunction, from_dfa, regex
from decc.grammars.automata.automata import minimize, product
from decc.grammars.tokens.budget import NO_LIMIT
from decc.grammars.tokens.lazy_product import Conjunction, bind
from decc.grammars.tokens.matcher import Matcher
from decc.grammars.tokens.token_paths import shortest_tokens
from decc.runtime.batch import RowSpec, generate_rows
from decc.runtime.beam import beam_search
from decc.runtime.decode import DecodeSession
from decc.runtime.device_tables import DeviceTables
from decc.runtime.particles import BestOfRun, FirstFinishRun, ParticlePolicy, SMCRun, run_particles
from decc.runtime.sampling import SamplingParams, make_generator
from decc.runtime.step import StepRules

EOS = 9
TOKENS = [b"a", b"b", b"c", b"ab", b"ba", b"abc", b"bc", b"cab", b"bb", b"</s>"]
VOCAB = Vocabulary.from_token_bytes(TOKENS, eos_id=EOS)
TEXT = [t.decode() for t in TOKENS[:EOS]]

WORDS = st.text("abc", min_size=1, max_size=6)
LEAVES = st.sampled_from(["a", "b", "c", "ab", "[ab]", "[bc]", "abc"])
REGEXES = st.recursive(
    LEAVES,
    lambda kids: st.one_of(
        st.tuples(kids, kids).map(lambda t: t[0] + t[1]),
        st.tuples(kids, kids).map(lambda t: f"(?:{t[0]}|{t[1]})"),
        st.tuples(kids, st.sampled_from(["*", "+", "?", "{2}", "{1,3}"])).map(lambda t: f"(?:{t[0]}){t[1]}"),
    ),
    max_leaves=5,
)


def _constraint(kind: str, spec):  # type: ignore[no-untyped-def]
    if kind == "choice":
        return from_dfa(choice_dfa(tuple(spec)), VOCAB), "|".join(pyregex.escape(w) for w in spec)
    return regex(spec, VOCAB), spec


def _oracle(pattern: str):  # type: ignore[no-untyped-def]
    """finishes(text, k): some sequence of at most k text tokens after `text` makes a full match; straight
    from the pattern (`regex` partial matches prune dead prefixes), not from any automaton."""
    compiled = pyregex.compile(pattern)

    @cache
    def finishes(text: str, k: int) -> bool:
        if compiled.fullmatch(text):
            return True
        if k == 0 or not compiled.fullmatch(text, partial=True):
            return False
        return any(finishes(text + t, k - 1) for t in TEXT)

    return compiled, finishes


def _allowed(m, budget: int) -> set[int]:  # type: ignore[no-untyped-def]
    row = torch.zeros(VOCAB.n_words, dtype=torch.int32)
    m.fill_bitmask(row, budget)
    bits = np.unpackbits(row.numpy().view(np.uint8), bitorder="little")
    return {int(t) for t in np.flatnonzero(bits[: len(TOKENS)])}


def _check_walks(kind: str, spec, extra: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    constraint, pattern = _constraint(kind, spec)
    fewest = shortest_tokens(constraint.automaton)
    assert fewest is not None
    compiled, finishes = _oracle(pattern)
    rng = random.Random(seed)
    max_tokens = max(fewest, 1) + extra
    for _ in range(4):
        m, text = constraint.matcher(), ""
        for step in range(max_tokens):
            budget = max_tokens - step
            got = _allowed(m, budget)
            want = {i for i, t in enumerate(TEXT) if finishes(text + t, budget - 1)}
            if compiled.fullmatch(text):
                want.add(EOS)
            assert got == want, (pattern, text, budget, sorted(got), sorted(want))
            token = rng.choice(sorted(got))
            if token == EOS:
                break
            assert m.advance(token)
            text += TEXT[token]
        assert compiled.fullmatch(text), (pattern, max_tokens, text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(WORDS, min_size=1, max_size=5, unique=True), st.integers(0, 3), st.integers(0, 2**16))
def test_choice_walks_finish_within_the_budget_and_masks_match_the_oracle(words, extra, seed) -> None:
    _check_walks("choice", words, extra, seed)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REGEXES, st.integers(0, 3), st.integers(0, 2**16))
def test_regex_walks_finish_within_the_budget_and_masks_match_the_oracle(pattern, extra, seed) -> None:
    _check_walks("regex", pattern, extra, seed)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(REGEXES, min_size=2, max_size=3), st.integers(0, 3), st.integers(0, 2**16))
def test_a_lazy_conjunction_masks_like_its_product_automaton(patterns, extra, seed) -> None:
    """The parts kept apart (the `product` pass off) give the budgeted rows of the product's automaton."""
    parts = tuple(compile_regex(p) for p in patterns)
    small = minimize(product(parts))
    if small.n_states == 0:
        return
    exact, lazy = from_dfa(small, VOCAB), bind(Conjunction(parts), VOCAB)
    fewest = shortest_tokens(exact.automaton)
    if fewest is None:  # no whole-token spelling at all
        return
    rng = random.Random(seed)
    max_tokens = max(fewest, 1) + extra
    for _ in range(4):
        a, b = exact.matcher(), lazy.matcher()
        for step in range(max_tokens):
            got = _allowed(b, max_tokens - step)
            assert got == _allowed(a, max_tokens - step), (patterns, step)
            token = rng.choice(sorted(got))
            if token == EOS:
                break
            assert a.advance(token) and b.advance(token)
        assert b.is_accepting() or b.is_terminated(), patterns


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REGEXES, st.integers(0, 20), st.integers(16, 26), st.integers(0, 3), st.integers(0, 2**16))
def test_a_counted_length_masks_like_its_unrolled_automaton(pattern, lo, hi, extra, seed) -> None:
    """A length of 16+ characters is counted (state, counter), not unrolled: its budgeted rows must be the
    rows of the same language unrolled into plain states (whose budgets the oracle above checks)."""
    lo = min(lo, hi)
    counted = from_dfa(conjunction([compile_regex(pattern)], (lo, hi)), VOCAB)
    if not counted.dfa.has_counters:
        return
    unrolled = from_dfa(conjunction([compile_regex(pattern), compile_regex(f"[abc]{{{lo},{hi}}}")]), VOCAB)
    fewest = shortest_tokens(unrolled.automaton)
    assert shortest_tokens(counted.automaton) == fewest  # the static max_tokens check reads it
    if fewest is None:
        return
    rng = random.Random(seed)
    max_tokens = max(fewest, 1) + extra
    for _ in range(3):
        a, b = unrolled.matcher(), counted.matcher()
        for step in range(max_tokens):
            got = _allowed(b, max_tokens - step)
            assert got == _allowed(a, max_tokens - step), (pattern, lo, hi, step)
            token = rng.choice(sorted(got))
            if token == EOS:
                break
            assert a.advance(token) and b.advance(token)
        assert b.is_accepting() or b.is_terminated(), (pattern, lo, hi)


def test_the_issues_spelling_is_refused_when_it_cannot_finish() -> None:
    """choice("billing", "shipping"): "billing" is 1 token, ship|ping 2, shi|pp|ing 3, s|hi|pp|ing 4."""
    toks = [b"s", b"hi", b"pp", b"ing", b"ship", b"ping", b"billing", b"shi", b"</s>"]
    vocab = Vocabulary.from_token_bytes(toks, eos_id=8)
    m = from_dfa(choice_dfa(("billing", "shipping")), vocab).matcher()
    row = torch.zeros(vocab.n_words, dtype=torch.int32)
    for budget, allowed in [
        (None, {"s", "ship", "billing", "shi"}),
        (9, {"s", "ship", "billing", "shi"}),
        (4, {"s", "ship", "billing", "shi"}),
        (3, {"ship", "billing", "shi"}),
        (2, {"ship", "billing"}),
        (1, {"billing"}),
    ]:
        m.fill_bitmask(row, budget)
        bits = int(row[0])
        assert {toks[t].decode() for t in range(8) if bits >> t & 1} == allowed, budget


def test_a_dead_end_of_the_vocabulary_is_refused_whatever_the_budget() -> None:
    """With no "ping" or "p" token, "ship" can never finish "shipping": the plain mask allows it (its bytes
    stay completable), a budgeted one never does, and a budget that cannot be met keeps the rest."""
    toks = [b"s", b"hi", b"pp", b"ing", b"ship", b"billing", b"</s>"]
    vocab = Vocabulary.from_token_bytes(toks, eos_id=6)
    m = from_dfa(choice_dfa(("billing", "shipping")), vocab).matcher()
    row = torch.zeros(vocab.n_words, dtype=torch.int32)
    for budget, allowed in [(None, {"s", "ship", "billing"}), (99, {"s", "billing"}), (1, {"billing"})]:
        m.fill_bitmask(row, budget)
        assert {toks[t].decode() for t in range(6) if int(row[0]) >> t & 1} == allowed, budget
    assert m.advance(0)  # "s": 3 more tokens needed, so a budget of 2 cannot be met
    m.fill_bitmask(row, 2)
    assert int(row[0]) == 1 << 1  # "hi", as without a budget


def test_device_tables_hold_rows_without_dead_ends() -> None:
    """The device loop's tables give what the host's budgeted masks give when the budget does not bind."""
    toks = [b"s", b"hi", b"pp", b"ing", b"ship", b"billing", b"</s>"]
    vocab = Vocabulary.from_token_bytes(toks, eos_id=6)
    m = from_dfa(choice_dfa(("billing", "shipping")), vocab).matcher()
    tables = DeviceTables([m.automaton], len(toks), frozenset({6}), "cpu")
    for state in range(m.automaton.n_states):
        row = torch.zeros(vocab.n_words, dtype=torch.int32)
        Matcher(m.automaton, state).fill_bitmask(row, NO_LIMIT)
        got = tables.masks(torch.tensor([tables.offsets[id(m.automaton)] + state]), torch.tensor([False]))[0]
        assert torch.equal(got, row), state


# -- every decode path passes the budget: values complete on the toy model ------------------------------

TOY_BOS = 3
TOY_PATTERNS = [r"a+b", r"(ab|b)+a?", r"[ab]*c", r"a[bc]{0,3}", r"(abc)+", r"c|aab"]


def _toy_constraint(lm, pattern: str):  # type: ignore[no-untyped-def]
    c = regex(pattern, lm.tokenizer.vocabulary())
    fewest = shortest_tokens(c.automaton)
    assert fewest is not None
    return c, fewest


def _valid(pattern: str, text: str) -> bool:
    return pyregex.fullmatch(pattern, text) is not None


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("pattern", TOY_PATTERNS)
def test_sampled_values_always_finish_within_max_tokens(toy_lm, pattern: str) -> None:
    """Hot sampling over tight budgets: without budget masks `a+b` in 3 tokens is `aaa` most of the time."""
    c, fewest = _toy_constraint(toy_lm, pattern)
    for extra in range(3):
        for seed in range(8):
            session = DecodeSession(toy_lm)
            session.append([TOY_BOS])
            sampling = SamplingParams(greedy=False, temperature=3.0, seed=seed)
            gen = session.generate(max_tokens=max(fewest, 1) + extra, sampling=sampling, matcher=c.matcher())
            assert _valid(pattern, gen.text) and gen.complete, (pattern, extra, seed, gen)


@pytest.mark.usefixtures("one_thread")
def test_batched_rows_finish_on_the_host_and_on_the_device_alike(toy_lm) -> None:
    vocab = toy_lm.tokenizer.vocabulary()
    rules = [StepRules(3, toy_lm.eos_ids), StepRules(4, toy_lm.eos_ids, min_tokens=2)]
    rules += [StepRules(3, toy_lm.eos_ids, ignore_eos=True), StepRules(5, toy_lm.eos_ids)]

    def specs() -> list[RowSpec]:
        out = []
        for i in range(12):
            pattern = TOY_PATTERNS[i % len(TOY_PATTERNS)]
            sampling = SamplingParams(greedy=False, temperature=3.0, seed=i)
            r = rules[i % len(rules)]
            c = regex(pattern, vocab)
            r = replace(r, max_tokens=max(r.max_tokens, shortest_tokens(c.automaton) or 0))
            out.append(RowSpec([TOY_BOS, i % 3], r, sampling, c.matcher(), make_generator(i)))
        return out

    host = generate_rows(toy_lm, specs(), on_device=False)
    device = generate_rows(toy_lm, specs(), on_device=True)
    for i, (a, b) in enumerate(zip(host, device, strict=True)):
        assert (a.token_ids, a.text, a.finish_reason, a.complete) == (
            b.token_ids,
            b.text,
            b.finish_reason,
            b.complete,
        )
        pattern, r = TOY_PATTERNS[i % len(TOY_PATTERNS)], rules[i % len(rules)]
        if not r.ignore_eos:  # EOS held back for good may leave no way to end in an accepting state
            assert _valid(pattern, a.text) and a.complete, (i, a)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("pattern", [r"a+b", r"(abc)+", r"[ab]*c"])
def test_search_policies_return_complete_values_under_tight_budgets(toy_lm, pattern: str) -> None:
    """Narrow beams and few particles at the shortest budget: without budget masks most of them end cut."""
    c, fewest = _toy_constraint(toy_lm, pattern)
    rules = StepRules(fewest, toy_lm.eos_ids)
    hot = SamplingParams(greedy=False, temperature=3.0)
    runs = [
        lambda s, seed: beam_search(s, Beam(1), rules, c.matcher()),
        lambda s, seed: beam_search(s, Beam(2, groups=2, diversity=1.0), rules, c.matcher()),
    ]
    for kind in ("best_of", "first_finish", "smc"):
        policies: dict[str, ParticlePolicy] = {
            "best_of": BestOfRun(2, hot, lambda t, text: 0.0),
            "first_finish": FirstFinishRun(2, hot),
            "smc": SMCRun(2, hot),
        }
        params = policies[kind]
        runs.append(lambda s, seed, p=params: run_particles(s, p, rules, c.matcher(), make_generator(seed)))
    for run in runs:
        for prompt, seed in [([], 0), ([0], 1), ([1, 2], 2), ([2], 3)]:
            session = DecodeSession(toy_lm)
            session.append([TOY_BOS, *prompt])
            winner, hyps = run(session, seed)
            gen = winner.generation(toy_lm.tokenizer)
            assert _valid(pattern, gen.text) and gen.complete, (pattern, prompt, gen)
            assert all(_valid(pattern, h.text) and h.complete for h in hyps), hyps


@pytest.mark.usefixtures("one_thread")
def test_a_grammar_value_cut_by_max_tokens_is_reported_as_cut(toy_lm) -> None:
    """CFG masks take no budget: a cut value comes back with `complete` False, never as a valid one."""
    c = cfg('start: "a" start "b" | "c"', toy_lm.tokenizer.vocabulary())
    seen = set()
    for seed in range(16):
        session = DecodeSession(toy_lm)
        session.append([TOY_BOS])
        sampling = SamplingParams(greedy=False, temperature=3.0, seed=seed)
        gen = session.generate(max_tokens=3, sampling=sampling, matcher=c.matcher())
        assert gen.complete == bool(
            pyregex.fullmatch(r"a*cb*", gen.text) and gen.text.count("a") == gen.text.count("b")
        )
        seen.add(gen.complete)
    assert seen == {True, False}


# -- the embedded model -----------------------------------------------------------------------------------

ISSUE = """
input msg: str = "my package never arrived"
user "Which team handles this support message: {msg}? Answer billing, shipping, account or refund."
assistant {
  gen topic {
    where: choice("billing", "shipping", "account", "refund")
    max_tokens: 3
    search: sample(temperature=4.0, seed=SEED)
  }
}
"""
TOPICS = {"billing", "shipping", "account", "refund"}


@pytest.mark.model
def test_the_issues_choice_always_completes_on_the_embedded_model() -> None:
    """Issue 18: `shipp`, `acc`, `ship` came back (exit 0) on several of 12 seeds; the budget leaves none."""
    for seed in range(12):
        r = decc.loads(ISSUE.replace("SEED", str(seed)), "issue.dec").run()
        assert r.values["topic"] in TOPICS and r.cut == () and r.steps["topic"].complete, (seed, r.values)
    program = decc.loads(ISSUE.replace("SEED", "5"), "issue.dec")
    msgs = ["the parcel is late", "I was charged twice", "reset my password", "where is my money"] * 3
    for r in program.run_batch([{"msg": m} for m in msgs], batch_size=12):
        assert r.values["topic"] in TOPICS and r.cut == ()


CUT = """
user "Write a JSON object describing a cat, with many fields."
assistant {
  gen data { where: grammar("json") max_tokens: 3 }
}
"""


@pytest.mark.model
def test_a_cut_grammar_value_is_reported_in_result_json_and_stderr(tmp_path, capsys) -> None:
    from decc.cli import main

    r = decc.loads(CUT, "cut.dec").run()
    assert r.cut == ("data",) and not r.steps["data"].complete
    assert r.to_json()["cut"] == ["data"]
    path = tmp_path / "cut.dec"
    path.write_text(CUT)
    assert main(["run", str(path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["cut"] == ["data"]
    assert f"{path}:4:" in err and "warning: max_tokens (3) cut the value of 'data'" in err
    rows = tmp_path / "rows.jsonl"
    rows.write_text("{}\n{}\n")
    assert main(["run", str(path), "--inputs", str(rows)]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["cut"] for line in out.splitlines()] == [["data"], ["data"]]
    assert "warning: input row 2: max_tokens (3) cut the value of 'data'" in err


COUNTED = r'''
user "Describe a city as JSON."
assistant {
  gen city {
    where: json(r"""{"type": "object", "properties": {"name": {"type": "string", "minLength": 20,
                 "maxLength": 40}}, "required": ["name"]}""")
    max_tokens: 7
    search: sample(temperature=2.0, seed=SEED)
  }
}
'''


@pytest.mark.model
def test_a_counted_json_string_completes_within_a_tight_budget() -> None:
    """minLength 20 in 7 tokens (the fewest is 5): without the counter in the budget every seed was cut."""
    for seed in range(3):
        r = decc.loads(COUNTED.replace("SEED", str(seed)), "city.dec").run()
        assert r.cut == () and 20 <= len(json.loads(r.values["city"])["name"]) <= 40, r.values
