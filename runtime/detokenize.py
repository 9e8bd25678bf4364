"""Incremental detokenization and stop-string search, so checking stop strings costs O(1) per token.

Decoding the whole generation after every token is quadratic; instead (as vLLM does) decode a short window
of recent tokens twice, with and without the new token, and take the difference. Text that ends in an
incomplete UTF-8 sequence (a U+FFFD at the end) is held back until the next token completes it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    """Accumulates `text` for a growing list of token ids, one token at a time."""

    __slots__ = ("_decode", "_prefix", "_read", "ids", "text")

    def __init__(self, tokenizer: Any) -> None:
        self._decode = tokenizer.decode
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
    rescans only the part a new match can touch."""

    __slots__ = ("_overlap", "pattern", "stops")

    def __init__(self, stops: Sequence[str], pattern: str | None = None) -> None:
        self.stops = tuple(stops)
        self._overlap = max((len(s) for s in self.stops), default=1) - 1
        self.pattern = re.compile(pattern) if pattern is not None else None

    def scan(self, text: str, new_chars: int) -> bool:
        """Whether `text`, whose last `new_chars` characters are new, now contains a stop."""
        start = max(0, len(text) - new_chars - self._overlap)
        tail = text[start:]
        if any(s in tail for s in self.stops):
            return True
        return self.pattern is not None and self.pattern.search(text) is not None

    def first(self, text: str) -> int:
        """Index of the earliest stop string or stop-regex match in `text`, or -1."""
        hits = [i for s in self.stops if (i := text.find(s)) >= 0]
        if self.pattern is not None and (m := self.pattern.search(text)) is not None:
            hits.append(m.start())
        return min(hits, default=-1)
