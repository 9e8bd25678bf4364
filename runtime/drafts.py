"""Model-free drafts for speculative decoding: tokens guessed without the model, checked by it in one pass.

The decode loop (decode.py) feeds `[token, d1, ..., dk]` in one forward pass and then draws each next token
as it always does, from that position's logits, its mask and its key; a drawn token equal to the next
draft token is accepted and the following position's logits are already there. The first mismatch ends
the run: the unchecked draft's cache entries are cropped and the drawn token is fed. Since the draw is
the same function of (logits, mask, key) as without a draft, greedy and seeded sampled values are the
same tokens with drafts or without (up to float differences between a one-token and a k-token forward
pass); drafts only change how many forward passes it takes.

Two sources, in order, while the draft is shorter than `max_draft`:

- forced tokens: the constraint allows exactly one token and not EOS (a key's quotes, a schema's fixed
  punctuation once a tokenization is underway): that token, certain to be drawn;
- prompt lookup (Saxena's prompt lookup decoding; SuffixDecoding / Token Recycling generalize it): the
  last `n` tokens (n from `max_ngram` down to `min_ngram`) also occur earlier in the context; the tokens
  that followed their latest earlier occurrence. Extraction copies spans of its input, so these hit.

Every draft token must be allowed by a clone of the matcher; the draft stops before the first that is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from decc.grammars.matcher import Matcher

__all__ = ["Drafter"]


@dataclass(frozen=True)
class Drafter:
    forced: bool = True
    lookup: bool = True
    max_draft: int = 8
    max_ngram: int = 4
    min_ngram: int = 2

    def propose(self, context: list[int], matcher: Any | None, limit: int) -> list[int]:
        """Up to `limit` draft tokens to follow `context` (which ends with the last drawn token)."""
        limit = min(limit, self.max_draft)
        if limit <= 0:
            return []
        m = matcher.clone() if matcher is not None else None
        draft: list[int] = []
        if self.forced and m is not None:
            while len(draft) < limit:
                t = _forced(m)
                if t is None:
                    break
                m.advance(t)
                draft.append(t)
        if self.lookup and len(draft) < limit:
            for t in _lookup(context + draft, limit - len(draft), self.max_ngram, self.min_ngram):
                if m is not None and not _allows(m, t):
                    break
                draft.append(t)
        return draft


def _forced(m: Any) -> int | None:
    """The one token `m` allows, if it allows exactly one and EOS is not allowed."""
    if m.is_terminated() or m.is_accepting():
        return None
    if type(m) is Matcher and m.automaton.n_text_allowed(m.state, m._counter) != 1:
        return None  # the count is a table lookup: no need to list the allowed tokens
    ids = m.allowed_token_ids()
    return int(ids[0]) if len(ids) == 1 else None


def _allows(m: Any, token: int) -> bool:
    """Advance `m` by `token` if it allows it (an EOS draft terminates the clone: nothing follows it)."""
    return not m.is_terminated() and bool(m.advance(token))


def _lookup(tokens: list[int], limit: int, max_ngram: int, min_ngram: int) -> list[int]:
    """The tokens after the latest earlier occurrence of the longest matching suffix n-gram."""
    size = len(tokens)
    for n in range(min(max_ngram, size - 1), min_ngram - 1, -1):
        suffix = tokens[size - n :]
        first = suffix[0]
        for start in range(size - n - 1, -1, -1):
            if tokens[start] == first and tokens[start : start + n] == suffix:
                follow = tokens[start + n : start + n + limit]
                if follow:
                    return follow
    return []
