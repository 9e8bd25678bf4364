"""The simulation of uncertain tokens (cfg_matcher) builds no rule that only a token's last byte reaches.

Rules are built the first time an Earley set predicts them; a token's last byte only has to be taken by
some item, so closing the set after it (and predicting, and building, what follows) is wasted work, paid
inside a mask step. Masks themselves are checked against the recognizer in test_cfg.py.
"""

from __future__ import annotations

import numpy as np

from decc.grammars import Vocabulary, cfg

GRAMMAR = """
start: "x" b?
b: "y" d | "[" b "]"
d: "z" | "(" d ")"
"""  # b and d recurse, so they stay rules of their own


def test_a_tokens_last_byte_predicts_nothing() -> None:
    vocab = Vocabulary.from_token_bytes([None, b"x", b"y", b"z", b"xy", b"(", b"[", b"xy("], eos_id=0)
    constraint = cfg(GRAMMAR, vocab)
    m = constraint.matcher()
    allowed = set(m.allowed_token_ids().tolist())
    assert allowed == {1, 4, 7}  # "x", "xy" and "xy(" (into b, then d: uncertain tokens, simulated)
    rtn = constraint.rtn
    b, d = rtn.names.index("b"), rtn.names.index("d")
    # "xy(" goes on after the "y" of b: b is built; only "(" is left after it, one of d's first bytes (and
    # "y", all that is left of "xy" after "x", one of b's): d is not built
    assert rtn.starts[b] >= 0 and rtn.starts[d] < 0
    assert m.advance(4) and np.array_equal(m.allowed_token_ids(), [3, 5])  # "z", "(": now d is built
    assert rtn.starts[d] >= 0


def test_a_rule_entered_for_the_last_byte_alone_is_not_built() -> None:
    """ "xy": after "x" only "y" is left, one of b's (exact) first bytes: the mask builds no rule."""
    vocab = Vocabulary.from_token_bytes([None, b"x", b"y", b"xy", b"xz"], eos_id=0)
    constraint = cfg(GRAMMAR + "\n", vocab)  # (not the RTN the test above built rules of: RTNs are shared)
    m = constraint.matcher()
    assert set(m.allowed_token_ids().tolist()) == {1, 3}  # "xz": "z" is not one of b's first bytes
    rtn = constraint.rtn
    assert rtn.starts[rtn.names.index("b")] < 0
    assert m.advance(3) and rtn.starts[rtn.names.index("b")] >= 0  # the walk goes into b: built now
