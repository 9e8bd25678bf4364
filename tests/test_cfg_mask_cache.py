"""The per-constraint mask cache of the grammar engine (cfg_matcher): keyed by the last Earley set's
scanning items with their continuation contexts and whether it accepts, it must never serve a mask that
the chart's own computation would not give.

Many random walks share one constraint (so later walks are served from the cache); every mask is checked
against the byte-level recognizer (a token is allowed iff its bytes extend the text so far to a viable
prefix; EOS iff the text is a sentence) and against a constraint whose cache starts empty.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_lazy_engine import VOCAB, grammars

from decc.grammars import GrammarError
from decc.grammars.contextfree.cfg_grammar import parse_grammar
from decc.grammars.contextfree.cfg_matcher import cfg_from_grammar
from decc.grammars.limits import DEFAULT_LIMITS


def _bits(mask: np.ndarray) -> np.ndarray:
    return np.unpackbits(mask.view(np.uint8), bitorder="little")[: VOCAB.size]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammars(), st.data())
def test_cached_masks_equal_the_recognizer_and_an_empty_cache(text: str, data: st.DataObject) -> None:
    try:
        grammar = parse_grammar(text)
        shared = cfg_from_grammar.__wrapped__(grammar, VOCAB, DEFAULT_LIMITS, text)
    except GrammarError:
        assume(False)
    rec = shared.recognizer
    for _ in range(4):  # walks over the same constraint: the later ones meet cached signatures
        m = shared.matcher()
        so_far = b""
        for _ in range(data.draw(st.integers(0, 6))):
            got = _bits(m.mask())
            fresh = cfg_from_grammar.__wrapped__(grammar, VOCAB, DEFAULT_LIMITS, text)
            chart = fresh.recognizer.advance_bytes(fresh.recognizer.initial(), so_far)
            assert chart is not None
            assert (got == _bits(fresh.mask(chart))).all(), (text, so_far)
            for t in VOCAB.text_ids.tolist():
                assert bool(got[t]) == rec.is_prefix(so_far + VOCAB.token_bytes[t]), (text, so_far, t)
            assert bool(got[0]) == rec.accepts(so_far), (text, so_far)
            allowed = np.flatnonzero(got[1:]) + 1
            if not len(allowed):
                break
            t = int(data.draw(st.sampled_from(allowed.tolist())))
            assert m.advance(t)
            so_far += VOCAB.token_bytes[t]
