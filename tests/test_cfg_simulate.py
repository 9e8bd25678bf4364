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
    vocab = Vocabulary.from_token_bytes([None, b"x", b"y", b"z", b"xy", b"(", b"["], eos_id=0)
    constraint = cfg(GRAMMAR, vocab)
    m = constraint.matcher()
    allowed = set(m.allowed_token_ids().tolist())
    assert allowed == {1, 4}  # "x" and "xy" ("xy" goes into b: an uncertain token, simulated)
    rtn = constraint.rtn
    assert rtn.starts[rtn.names.index("b")] >= 0  # predicted after the simulation's "x"
    assert rtn.starts[rtn.names.index("d")] < 0  # "y", the last byte, is only scanned
    assert m.advance(4) and np.array_equal(m.allowed_token_ids(), [3, 5])  # "z", "(": now d is built
    assert rtn.starts[rtn.names.index("d")] >= 0
