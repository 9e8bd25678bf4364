"""Incremental detokenization and stop-string search, so checking stop strings costs O(1) per token.

Decoding the whole generation after every token is quadratic; instead (as vLLM does) decode a short window
of recent tokens twice, with and without the new token, and take the difference. Text that ends in an
incomplete UTF-8 sequence (a U+FFFD at the end) is held back until the next token completes it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from decc.grammars.tokens.vocab import decode_in_context

_REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    """Accumulates `text` for a growing list of token ids, one token at a time."""

    __slots__ = ("_decode", "_prefix", "_read", "ids", "text")

    def __init__(self, tokenizer: Any) -> None:
        self._decode = partial(decode_in_context, tokenizer)  # mid-context: SentencePiece spaces kept
        self.ids: list[int] = []
        self.text = ""
        self._prefix = 0  # window start: decoding from here gives the same text as from 0
        self._read = 0  # tokens before this are already in `text`

    def push(self, token_id: int) -> str:
        """Add one token; return the newly completed text (possibly empty)."""
        ids = self.ids
        ids.append(token_id)
        prefix_text = self._decode(ids[self._prefix : self._read]) if self._read > self._prefix else ""
        new_text = self._decode(ids[self._prefix :])
        if len(new_text) <= len(prefix_text) or new_text.endswith(_REPLACEMENT):
            return ""
        delta = new_text[len(prefix_text) :]
        self._prefix, self._read = self._read, len(ids)
        self.text += delta
        return delta

    def clone(self) -> IncrementalDetokenizer:
        """A copy that goes on independently (a forked beam or particle)."""
        twin = IncrementalDetokenizer.__new__(IncrementalDetokenizer)
        twin._decode, twin.ids, twin.text = self._decode, list(self.ids), self.text
        twin._prefix, twin._read = self._prefix, self._read
        return twin


class StopScanner:
    """Finds stop strings (and matches of a stop regex) in text that grows at the end; for strings it
    rescans only the part a new match can touch. The first `skip` characters are not the value's (a healed
    step's re-spelled prompt text): no stop is looked for there."""

    __slots__ = ("_overlap", "pattern", "skip", "stops")

    def __init__(self, stops: Sequence[str], pattern: str | None = None, skip: int = 0) -> None:
        self.stops = tuple(stops)
        self._overlap = max((len(s) for s in self.stops), default=1) - 1
        self.pattern = re.compile(pattern) if pattern is not None else None
        self.skip = skip

    def scan(self, text: str, new_chars: int) -> bool:
        """Whether `text`, whose last `new_chars` characters are new, now contains a stop."""
        start = max(self.skip, len(text) - new_chars - self._overlap)
        tail = text[start:]
        if any(s in tail for s in self.stops):
            return True
        return self.pattern is not None and self.pattern.search(text[self.skip :]) is not None

    def first(self, text: str) -> int:
        """Index of the earliest stop string or stop-regex match in `text`, or -1."""
        hits = [i for s in self.stops if (i := text.find(s, self.skip)) >= 0]
        if self.pattern is not None and (m := self.pattern.search(text[self.skip :])) is not None:
            hits.append(m.start() + self.skip)
        return min(hits, default=-1)


class TextStream:
    """A value's text handed out as it is decoded (`emit` gets each new piece), never text that a stop
    could still cut: the longest end of the text that begins some stop string is held back, and with a
    stop regex (whose match may begin anywhere) everything waits for the end. The first `skip`
    characters (a healed step's re-spelled prompt text) are not the value's and never sent."""

    __slots__ = ("_emit", "_stops", "_hold_all", "_skip", "sent")

    def __init__(
        self, emit: Callable[[str], None], stops: Sequence[str] = (), stop_regex: bool = False, skip: int = 0
    ) -> None:
        self._emit = emit
        self._stops = tuple(stops)
        self._hold_all = stop_regex
        self._skip = skip
        self.sent = ""

    def update(self, text: str) -> None:
        """The value's text so far (the detokenizer's, with the skipped part) has grown."""
        if self._hold_all:
            return
        value = text[self._skip :]
        end = len(value) - held_back(value, self._stops)
        if end > len(self.sent) and value.startswith(self.sent):
            self._send(value[len(self.sent) : end])

    def finish(self, value: str) -> None:
        """The value is complete (`value`, without the skipped part): send what is left of it."""
        if value.startswith(self.sent) and len(value) > len(self.sent):
            self._send(value[len(self.sent) :])

    def _send(self, piece: str) -> None:
        self.sent += piece
        self._emit(piece)


def held_back(text: str, stops: Sequence[str]) -> int:
    """The length of the longest end of `text` that is a proper beginning of a stop string."""
    longest = min(len(text), max((len(s) for s in stops), default=1) - 1)
    for k in range(longest, 0, -1):
        end = text[-k:]
        if any(s.startswith(end) for s in stops):
            return k
    return 0
