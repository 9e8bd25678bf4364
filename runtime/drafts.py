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
- forced text: from the constraint's DFA state, the bytes every match must continue with (a unique byte
  path through non-accepting states: a JSON key with its quotes and colon), tokenized the way the
  tokenizer writes that text alone; several tokens may spell it, and the model's choice is checked;
- prompt lookup (Saxena's prompt lookup decoding; SuffixDecoding / Token Recycling generalize it): the
  last `n` tokens (n from `max_ngram` down to `min_ngram`) also occur earlier in the context; the tokens
  that followed their latest earlier occurrence. Extraction copies spans of its input, so these hit.

Every draft token must be allowed by a clone of the matcher; the draft stops before the first that is not.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from decc.grammars.matcher import Matcher
from decc.grammars.token_automaton import TokenAutomaton

__all__ = ["Drafter"]


@dataclass(frozen=True)
class Drafter:
    forced: bool = True
    lookup: bool = True
    max_draft: int = 8
    max_ngram: int = 4
    min_ngram: int = 2
    encode: Callable[[str], list[int]] | None = field(default=None, compare=False)  # forced text drafts

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
        if self.encode is not None and type(m) is Matcher and len(draft) < limit:
            text = _forced_text(m.automaton, m.state)
            if text:
                for t in self.encode(text)[: limit - len(draft)]:
                    if not _allows(m, t):
                        break
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
    if type(m) is Matcher and m.n_text_allowed() != 1:
        return None  # the count is a table lookup: no need to list the allowed tokens
    ids = m.allowed_token_ids()
    return int(ids[0]) if len(ids) == 1 else None


_FORCED: weakref.WeakKeyDictionary[TokenAutomaton, dict[int, str]] = weakref.WeakKeyDictionary()
_MAX_FORCED = 64  # bytes


def _forced_text(auto: TokenAutomaton, state: int) -> str:
    """The text every match continues with from `state` (cached per automaton state); "" when the next
    byte is not forced or the forced bytes are not whole UTF-8 characters."""
    per = _FORCED.setdefault(auto, {})
    if state not in per:
        flat, accepting = auto.flat, auto.dfa.accepting
        out = bytearray()
        s = state
        while len(out) < _MAX_FORCED and not accepting[s]:
            base = s << 8
            nxt = [(b, flat[base + b]) for b in range(256) if flat[base + b] >= 0]
            if len(nxt) != 1:
                break
            out.append(nxt[0][0])
            s = nxt[0][1] >> 8
        try:
            per[state] = out.decode("utf-8")
        except UnicodeDecodeError:
            per[state] = ""
    return per[state]


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
