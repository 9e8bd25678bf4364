"""Model-free drafts for speculative decoding: tokens guessed without the model, checked by it in one pass.

The decode loop (decode.py) feeds `[token, d1, ..., dk]` in one forward pass and then draws each next token
as it always does, from that position's logits, its mask and its key; a drawn token equal to the next
draft token is accepted and the following position's logits are already there. The first mismatch ends
the run: the unchecked draft's cache entries are cropped and the drawn token is fed. Since the draw is
the same function of (logits, mask, key) as without a draft, greedy and seeded sampled values are the
same tokens with drafts or without (up to float differences between a one-token and a k-token forward
pass); drafts only change how many forward passes it takes.

The sources, in order, while the draft is shorter than `max_draft`:

- forced tokens: the constraint allows exactly one token and not EOS (a key's quotes, a schema's fixed
  punctuation once a tokenization is underway): that token, certain to be drawn;
- forced text: from the constraint's DFA state, the bytes every match must continue with (a unique byte
  path through non-accepting states: a JSON key with its quotes and colon), tokenized the way the
  tokenizer writes that text alone; several tokens may spell it, and the model's choice is checked;
- prompt lookup (Saxena's prompt lookup decoding; SuffixDecoding / Token Recycling generalize it): the
  last `n` tokens (n from `max_ngram` down to `min_ngram`) also occur earlier in the context; the tokens
  that followed their latest earlier occurrence. Extraction copies spans of its input, so these hit.
- suffix match over earlier values (SuffixDecoding's idea: a store of past outputs, matched on the current
  suffix; an n-gram index stands in for its suffix tree): the same step's values from earlier runs of the
  program, each stored after the tail of the context it followed. Runs of one extraction program repeat
  their structure (key order, formats, common values), which the prompt does not hold.

Every draft token must be allowed by a clone of the matcher; the draft stops before the first that is not.

For sampled steps this is the speculative-sampling acceptance rule (Leviathan et al.; Chen et al.) for a
draft that puts all its mass q on one token x: accept with probability min(1, p(x)/q(x)) = p(x), and on a
rejection draw from max(0, p - q) normalized, which is p without x. The decode loop's draw is a sample of
p (Gumbel-max with the step's key): it equals x with probability p(x), and given that it does not, it is a
sample of p without x. So drafts keep the distribution exactly, and with a seed even the values.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from decc.grammars.tokens.matcher import Matcher
from decc.grammars.tokens.token_automaton import TokenAutomaton

__all__ = ["Drafter", "SuffixStore"]


class SuffixStore:
    """Earlier token sequences of one gen step, indexed by their n-grams for suffix-match drafts.

    A sequence is the tail of the context a value followed (so a value's first tokens can be drafted)
    and the value itself. The index maps each n-gram (n = `min_ngram` .. `max_ngram`) to its latest
    occurrence; past `capacity` tokens the oldest half of the sequences is dropped and the index rebuilt.
    """

    def __init__(self, max_ngram: int = 6, min_ngram: int = 2, capacity: int = 16_384) -> None:
        self.max_ngram, self.min_ngram, self.capacity = max_ngram, min_ngram, capacity
        self._seqs: list[list[int]] = []
        self._index: dict[tuple[int, ...], tuple[int, int]] = {}
        self._size = 0

    def __len__(self) -> int:
        return len(self._seqs)

    def add(self, context: list[int], value: list[int]) -> None:
        if not value:
            return
        seq = context[len(context) - self.max_ngram :] + list(value) if context else list(value)
        self._seqs.append(seq)
        self._size += len(seq)
        if self._size > self.capacity and len(self._seqs) > 1:
            self._seqs = self._seqs[len(self._seqs) // 2 :]
            self._size = sum(map(len, self._seqs))
            self._index.clear()
            for i in range(len(self._seqs)):
                self._add_index(i)
        else:
            self._add_index(len(self._seqs) - 1)

    def _add_index(self, i: int) -> None:
        seq = self._seqs[i]
        for end in range(1, len(seq)):  # n-grams that something follows
            for n in range(self.min_ngram, min(self.max_ngram, end) + 1):
                self._index[tuple(seq[end - n : end])] = (i, end)

    def propose(self, context: list[int], limit: int) -> list[int]:
        """The tokens that followed the latest stored occurrence of the longest suffix of `context`."""
        for n in range(min(self.max_ngram, len(context)), self.min_ngram - 1, -1):
            hit = self._index.get(tuple(context[len(context) - n :]))
            if hit is not None:
                i, end = hit
                return self._seqs[i][end : end + limit]
        return []


@dataclass(frozen=True)
class Drafter:
    forced: bool = True
    lookup: bool = True
    max_draft: int = 8
    max_ngram: int = 4
    min_ngram: int = 2
    encode: Callable[[str], list[int]] | None = field(default=None, compare=False)  # forced text drafts
    suffix: SuffixStore | None = field(default=None, compare=False)  # earlier values of this step

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
        if len(draft) < limit and (self.lookup or self.suffix is not None):
            rest, ahead = limit - len(draft), context + draft
            found = ngram_lookup(ahead, rest, self.max_ngram, self.min_ngram) if self.lookup else []
            if not found and self.suffix is not None:
                found = self.suffix.propose(ahead, rest)
            for t in found:
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


def ngram_lookup(tokens: list[int], limit: int, max_ngram: int, min_ngram: int) -> list[int]:
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
