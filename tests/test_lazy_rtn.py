"""The lazy RTN (contextfree/rtn.py): a rule's DFA is built the first time the recognizer enters it.

Oracles: the same grammar's RTN built eagerly (`build_all` before any walk: rule order numbering) must
accept the same strings and prefixes as one grown by the walk itself; both against Lark's Earley parser for
complete strings. The rules' nullability and first bytes, taken from their bodies, against the same
properties computed from the built DFAs (the fixpoint over states the eager RTN used before).
"""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch
from _grammars import ALPHABET, fresh_rtn, grammars
from _lark import lark_accepts, lark_parser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars import GrammarLimitError, Vocabulary, cfg
from decc.grammars.contextfree import rtn as rtn_module
from decc.grammars.contextfree.cfg_grammar import parse_grammar
from decc.grammars.contextfree.earley import Recognizer
from decc.grammars.contextfree.rtn import RTN


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammars(), st.lists(st.text(alphabet=ALPHABET, max_size=7), min_size=1, max_size=25))
def test_lazy_and_eager_rtns_accept_the_same_strings(text: str, samples: list[str]) -> None:
    lazy = fresh_rtn(text)
    eager = fresh_rtn(text).build_all()
    built = len(eager.built)
    lazy_rec, eager_rec = Recognizer(lazy), Recognizer(eager)
    parser = lark_parser(text)
    for s in samples:
        data = s.encode()
        assert lazy_rec.accepts(data) == eager_rec.accepts(data) == lark_accepts(parser, s), (text, s)
        for k in range(len(data) + 1):
            assert lazy_rec.is_prefix(data[:k]) == eager_rec.is_prefix(data[:k]), (text, data[:k])
    assert len(eager.built) == built  # the eager RTN had everything already
    assert set(lazy.built) <= set(eager.built)


def _dfa_nullable(rtn: RTN) -> list[bool]:
    """Per rule: its start state reaches acceptance through calls of nullable rules (over built DFAs)."""
    nullable = [False] * rtn.n_rules
    changed = True
    while changed:
        changed = False
        for r in rtn.built:
            if nullable[r]:
                continue
            stack, seen = [rtn.starts[r]], {rtn.starts[r]}
            while stack:
                g = stack.pop()
                if rtn.accepts_at[g]:
                    nullable[r] = changed = True
                    break
                for callee, nxt in rtn.calls[g]:
                    if nullable[callee] and nxt not in seen:
                        seen.add(nxt)
                        stack.append(nxt)
    return nullable


def _dfa_first(rtn: RTN, nullable: list[bool]) -> list[int]:
    """Per rule: the bytes on which some state reachable from its start by nullable calls steps, or that
    start a callee called there (a fixpoint over built DFAs), as 256-bit ints."""
    first = [0] * rtn.n_rules
    changed = True
    while changed:
        changed = False
        for r in rtn.built:
            bits, stack, seen = 0, [rtn.starts[r]], {rtn.starts[r]}
            while stack:
                g = stack.pop()
                for b in np.flatnonzero(rtn.table[g] >= 0).tolist():
                    bits |= 1 << b
                for callee, nxt in rtn.calls[g]:
                    bits |= first[callee]
                    if nullable[callee] and nxt not in seen:
                        seen.add(nxt)
                        stack.append(nxt)
            if bits != first[r]:
                first[r], changed = bits, True
    return first


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammars())
def test_rule_nullability_and_first_bytes_from_bodies_match_the_dfas(text: str) -> None:
    rtn = fresh_rtn(text).build_all()
    nullable = _dfa_nullable(rtn)
    first = _dfa_first(rtn, nullable)
    for r in rtn.built:
        assert rtn.nullable[r] == nullable[r], (text, rtn.names[r])
        assert first[r] & ~rtn.first[r] == 0, (text, rtn.names[r])  # never fewer bytes than the DFA's
    assert rtn.nullable[0] == Recognizer(rtn).accepts(b"")


def test_rule_first_bytes_are_exact_for_productive_rules_with_utf8() -> None:
    text = 'start: r0 | "z"\nr0: "é" r0 | "\u4e2d" | r1? "x"\nr1: "(" r1 ")" | "ä"\n'
    rtn = fresh_rtn(text).build_all()
    first = _dfa_first(rtn, _dfa_nullable(rtn))
    assert [first[r] for r in rtn.built] == [rtn.first[r] for r in rtn.built]
    assert {b for b in range(256) if rtn.first[0] >> b & 1} == {ord("z"), 0xC3, 0xE4, ord("x"), ord("(")}


def _keyed(n: int) -> str:
    """n recursive rules (kept as calls), each reached after its own key: `start: "k0:" r0 | "k1:" r1 ...`."""
    alts = " | ".join(f'"k{i}:" r{i}' for i in range(n))
    rules = "\n".join(f'r{i}: "[" r{i} "]" | "v{i}"' for i in range(n))
    return f"start: {alts}\n{rules}\n"


def test_a_walk_builds_only_the_rules_it_enters() -> None:
    text = _keyed(200)
    rtn = fresh_rtn(text)
    assert rtn.n_rules == 201 and rtn.built == [0]  # binding builds the start rule only
    rec = Recognizer(rtn)
    assert rec.accepts(b"k42:[[v42]]") and not rec.accepts(b"k42:[v41]")
    assert sorted(rtn.names[r] for r in rtn.built) == ["r42", "start"]
    visited = rtn.n_states
    rtn.build_all()
    assert len(rtn.built) == 201 and rtn.n_states >= visited + 199 * 3  # each rule has 3 states or more


_TOKENS = [None, *[bytes([b]) for b in range(32, 127)], b"k1", b"7:[", b"[[", b"]]"]


@pytest.mark.parametrize("batch", [True, False])
def test_masks_build_rules_as_generation_reaches_them_and_survive_pickling(
    batch: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the token matcher: the first mask builds only the start rule; after it, a rule is built when
    a token enters it, bringing every unbuilt rule with it when they fit `BATCH_STATES` (`batch`), else
    alone; a pickled constraint (what the disk cache and worker processes get) starts over from the start
    rule and gives the same masks."""
    monkeypatch.setattr(rtn_module, "BATCH_STATES", rtn_module.BATCH_STATES if batch else 10)
    vocab = Vocabulary.from_token_bytes(_TOKENS, eos_id=0)
    constraint = pickle.loads(pickle.dumps(cfg(_keyed(30), vocab)))  # a fresh RTN (`cfg` is memoized)
    rtn = constraint.rtn
    ids = {vocab.token_bytes[i]: i for i in vocab.text_ids.tolist()}
    row = torch.zeros(vocab.n_words, dtype=torch.int32)
    m = constraint.matcher()
    masks = []
    for tok in (b"k1", b"7:[", b"[[", b"v", b"1", b"7", b"]]", b"]"):
        m.fill_bitmask(row)
        masks.append(row.clone())
        assert m.advance(ids[tok]), tok
        assert constraint.rows.n == rtn.n_states  # the step that built rules took them into the rows too
        entered = {rtn.names[r] for r in rtn.built}
        if tok == b"k1":  # the first mask and a token that enters no rule: the start rule alone
            assert entered == {"start"}
        elif batch:  # "7:[" entered r17, which brought the other 29 rules
            assert len(entered) == rtn.n_rules == 31
        else:
            assert entered == {"start", "r17"}
    assert m.is_accepting()
    twin = pickle.loads(pickle.dumps(constraint))
    assert twin.rtn.built == [0]
    m2 = twin.matcher()
    for tok, mask in zip((b"k1", b"7:[", b"[[", b"v", b"1", b"7", b"]]", b"]"), masks, strict=True):
        m2.fill_bitmask(row)
        assert torch.equal(row, mask), tok
        assert m2.advance(ids[tok])
    assert m2.is_accepting()


def test_an_armed_rtn_builds_the_rest_with_the_next_rule_once_and_only_within_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`arm`: the next rule built brings every unbuilt one, once; later arms do nothing; a grammar whose
    unbuilt rules are estimated past BATCH_STATES stays one rule at a time; and a rule the batch cannot
    build (a limit) is left unbuilt for the walk that enters it, the others built, nothing refused."""
    rtn = fresh_rtn(_keyed(40))
    rec = Recognizer(rtn)
    rtn.arm()
    assert rtn.built == [0]  # arming builds nothing
    assert rec.is_prefix(b"k3:[")
    assert len(rtn.built) == rtn.n_rules == 41
    rtn.arm()  # (armed once)
    assert rtn.batch == 2

    monkeypatch.setattr(rtn_module, "BATCH_STATES", sum(fresh_rtn(_keyed(40)).sizes) // 2)
    rtn = fresh_rtn(_keyed(40))
    Recognizer(rtn).is_prefix(b"k3:[")
    assert len(rtn.built) == 2  # over the budget: the start rule and r3
    monkeypatch.setattr(rtn_module, "BATCH_STATES", 10**9)

    rtn = fresh_rtn(_keyed(40))
    build = RTN._build
    failing = rtn.index["r7"]

    def refuse_r7(self: RTN, r: int) -> None:
        if self is rtn and r == failing:
            raise GrammarLimitError("r7 is too large")
        build(self, r)

    monkeypatch.setattr(RTN, "_build", refuse_r7)
    rtn.arm()
    assert Recognizer(rtn).is_prefix(b"k3:[")  # r3 built, and the batch past r7, quietly
    assert [rtn.names[r] for r in range(rtn.n_rules) if rtn.starts[r] < 0] == ["r7"]
    with pytest.raises(GrammarLimitError):  # the walk that enters r7 gets the refusal
        Recognizer(rtn).is_prefix(b"k7:[")


def test_lazy_rtn_on_a_recursive_json_schema_grammar_matches_its_eager_form() -> None:
    """The grammar a recursive schema compiles to (lexemes, nullable rules): lazy and eager agree."""
    from decc.grammars.json.json_schema import compile_json_schema

    schema = {
        "$defs": {"node": {"type": "object", "properties": {"v": {"type": "string", "maxLength": 3},
                                                           "kids": {"type": "array",
                                                                    "items": {"$ref": "#/$defs/node"}}}}},
        "$ref": "#/$defs/node",
    }  # fmt: skip
    grammar = compile_json_schema(schema, engine="grammar")
    lazy, eager = RTN(grammar), RTN(grammar).build_all()
    lazy_rec, eager_rec = Recognizer(lazy), Recognizer(eager)
    rng = random.Random(7)
    samples = [b'{"v":"ab","kids":[{"kids":[]},{"v":""}]}', b'{"v":"abcd"}', b'{"kids":[{"v":"x"}]}', b"{}"]
    pieces = [b"{", b"}", b'"v":', b'"kids":', b"[", b"]", b",", b'"ab"', b'"abcd"']
    samples += [b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 9))) for _ in range(200)]
    for data in samples:
        assert lazy_rec.accepts(data) == eager_rec.accepts(data), data
        assert lazy_rec.is_prefix(data) == eager_rec.is_prefix(data), data
    assert lazy_rec.accepts(samples[0]) and not lazy_rec.accepts(samples[1])
    assert len(lazy.built) < len(eager.built)


def test_concurrent_walks_share_one_growing_rtn() -> None:
    """Streams on threads enter rules of one constraint at once: each rule is built once, masks agree with
    a walk on one thread."""
    from concurrent.futures import ThreadPoolExecutor

    vocab = Vocabulary.from_token_bytes([None, *[bytes([b]) for b in range(32, 127)]], eos_id=0)
    constraint = cfg(_keyed(24), vocab)
    walks = [f"k{i}:[[v{i}]]".encode() for i in range(24)] * 2

    def masks(c, data: bytes) -> list[bytes]:  # noqa: ANN001
        m, out = c.matcher(), []
        for b in data:
            out.append(m.mask().tobytes())
            assert m.advance(b - 31)  # token id of byte b
        assert m.is_accepting()
        return out

    expected = [masks(pickle.loads(pickle.dumps(constraint)), w) for w in walks]
    shared = pickle.loads(pickle.dumps(constraint))  # a fresh RTN: only the start rule built
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda w: masks(shared, w), walks))
    assert got == expected
    rtn = shared.rtn
    assert sorted(rtn.built) == list(range(rtn.n_rules))  # every rule once
    assert rtn.n_states == sum(hi - lo for lo, hi in map(rtn.span, rtn.built))


def test_a_rule_too_large_is_refused_at_compile_time_although_never_entered() -> None:
    """Rules are built lazily, but their NFA sizes are estimated when the grammar is bound: a rule over the
    limit is a compile error, not an error in the middle of generation (MaskBench o56008 raised mid-walk)."""
    from decc.grammars.errors import GrammarLimitError
    from decc.grammars.limits import Limits

    text = 'start: "a" | "b" big\nbig: "z" | "[" big "]" ' + " ".join(f'"x{i}"' for i in range(60)) + "\n"
    small = Limits(max_nfa_states=100)
    with pytest.raises(GrammarLimitError, match="grammar rule too large"):
        RTN(parse_grammar(text), small)
    rtn = RTN(parse_grammar(text))  # within the default limits: still only the start rule is built
    assert rtn.built == [0]
