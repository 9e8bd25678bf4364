"""The built-in grammars (json, arith, sql_select): against Lark model-free, then on the real tokenizer."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from _lark import lark_accepts, lark_parser
from lark import Lark

from decc.grammars import GrammarError, Vocabulary, builtin_grammar, cfg_builtin
from decc.grammars.contextfree.cfg_grammar import parse_grammar
from decc.grammars.contextfree.earley import Recognizer
from decc.grammars.contextfree.rtn import build_rtn

VALID = {
    "json": [
        '{"name": "Ada", "age": 36, "tags": ["a", "b"], "x": {"y": [1.5e3, true, null]}}',
        '[1, -2.5, 3E+7, "\\u00e9\\n", [], {}]',
        '"just a string é"',
        "0",
        ' { "a" : [ false ] } ',
    ],
    "arith": ["(a + 12.5) * -b / 3 - foo_bar", "1", "x*(y+(z-1))/2", "--3 + 4"],
    "sql_select": [
        "SELECT name, COUNT(*) AS n FROM users AS u LEFT JOIN orders AS o ON u.id = o.uid "
        "WHERE age >= 18 AND name IS NOT NULL GROUP BY name ORDER BY n DESC LIMIT 10;",
        "select * from t",
        "SELECT DISTINCT a FROM t WHERE b IN (1, 2, 'x') OR NOT c <> 2.5 ORDER BY a",
    ],
}
INVALID = {
    "json": ['{"a": 1,}', "[1 2]", '{"a"}', "01", '"\\x"', "tru"],
    "arith": ["1 +", "(1", "1 2", "a b", "*3"],
    "sql_select": ["SELECT FROM t", "SELECT a", "SELECT a FROM", "SELECT a FROM t LIMIT x"],
}


def _lark(name: str) -> Lark:
    return lark_parser(builtin_grammar(name))


@pytest.mark.parametrize("name", sorted(VALID))
def test_builtin_recognizer_matches_lark(name: str) -> None:
    parser = _lark(name)
    rec = Recognizer(build_rtn(parse_grammar(builtin_grammar(name))))
    for s in VALID[name]:
        assert lark_accepts(parser, s) and rec.accepts(s.encode()), s
    for s in INVALID[name]:
        assert not lark_accepts(parser, s) and not rec.accepts(s.encode()), s
    # Random edits of the valid examples: the recognizer agrees with Lark either way.
    rng = random.Random(name)
    chars = sorted(set("".join(VALID[name])))
    for _ in range(150):
        s = list(rng.choice(VALID[name]))
        for _ in range(rng.randint(1, 2)):
            i = rng.randrange(len(s) + 1)
            if rng.random() < 0.5 and i < len(s):
                del s[i]
            else:
                s.insert(i, rng.choice(chars))
        text = "".join(s)
        assert rec.accepts(text.encode()) == lark_accepts(parser, text), text


def test_builtin_names() -> None:
    assert "value" in builtin_grammar("json")
    with pytest.raises(GrammarError, match="unknown built-in grammar"):
        builtin_grammar("yaml")


@pytest.fixture(scope="module")
def real():
    from decc.runtime.model import load_tokenizer, model_facts

    tok = load_tokenizer("default")
    size, eos_ids = model_facts("default")
    return tok, Vocabulary.from_tokenizer(tok, size=size, eos_ids=eos_ids)


def _allowed(bits_row: torch.Tensor, size: int) -> np.ndarray:
    bits = np.unpackbits(bits_row.numpy().view(np.uint8), bitorder="little")[:size]
    return np.flatnonzero(bits)


@pytest.mark.model
@pytest.mark.parametrize("name", sorted(VALID))
def test_builtin_on_real_tokenizer(real, name: str) -> None:
    tok, vocab = real
    constraint = cfg_builtin(name, vocab)
    eos = next(iter(vocab.eos_ids))
    row = torch.zeros(vocab.n_words, dtype=torch.int32)
    for text in VALID[name]:
        m = constraint.matcher()
        for t in tok.encode(text, add_special_tokens=False):
            m.fill_bitmask(row)
            assert (int(row[t >> 5]) >> (t & 31)) & 1, (text, tok.decode([t]))
            assert m.advance(t), (text, t)
        assert m.is_accepting(), text
        m.fill_bitmask(row)
        assert (int(row[eos >> 5]) >> (eos & 31)) & 1
        assert m.advance(eos) and m.is_terminated()
    for text in INVALID[name]:
        m = constraint.matcher()
        ids = tok.encode(text, add_special_tokens=False)
        ok = all(m.advance(t) for t in ids)
        assert not (ok and m.is_accepting() and m.advance(eos)), text


@pytest.mark.model
@pytest.mark.parametrize("name", sorted(VALID))
def test_random_masked_walks_parse(real, name: str) -> None:
    tok, vocab = real
    constraint = cfg_builtin(name, vocab)
    parser = _lark(name)
    rec = constraint.recognizer
    eos = next(iter(vocab.eos_ids))
    rng = random.Random(name)
    row = torch.zeros(vocab.n_words, dtype=torch.int32)
    finished = 0
    for _ in range(5):
        m = constraint.matcher()
        text = b""
        for _ in range(40):
            m.fill_bitmask(row)
            allowed = _allowed(row, vocab.size)
            assert len(allowed) and m.can_continue(), text
            # Spot-check the mask against the recognizer on a sample of tokens, allowed or not.
            allowed_set = set(allowed.tolist())
            for t in rng.sample(vocab.text_ids.tolist(), 10) + rng.sample(sorted(allowed_set - {eos}), 3):
                viable = rec.advance_bytes(m.chart, vocab.token_bytes[t]) is not None
                assert (t in allowed_set) == viable, (text, t)
            if eos in allowed and rng.random() < 0.4:
                assert m.advance(eos)
                break
            text_allowed = allowed[allowed != eos]
            t = int(rng.choice(text_allowed))
            assert m.advance(t)
            text += vocab.token_bytes[t]
        if m.is_terminated():
            finished += 1
            assert lark_accepts(parser, text.decode("utf-8")), text
        else:
            assert rec.is_prefix(text)
    if name != "sql_select":  # random SQL rarely closes within 40 tokens
        assert finished >= 1
