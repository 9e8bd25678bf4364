"""One family of user errors, each rendered as `file:line:col: error: message` with the source line and carets.

Every layer (dsl, compiler, grammars, runtime) raises `DeccError` (or a subclass) for mistakes a user can fix,
and `InternalError` for bugs in decc itself, so the CLI can print the first cleanly and report the second apart.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True)
class Source:
    """A source text and the name it is reported under."""

    path: str
    text: str

    @cached_property
    def _line_starts(self) -> tuple[int, ...]:
        starts = [0]
        for i, ch in enumerate(self.text):
            if ch == "\n":
                starts.append(i + 1)
        return tuple(starts)

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        import bisect

        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def line_text(self, line: int) -> str:
        starts = self._line_starts
        if not 1 <= line <= len(starts):
            return ""
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[starts[line - 1] : end].rstrip("\r")


@dataclass(frozen=True)
class Span:
    """Where a node came from: character offsets plus 1-based line/column of both ends."""

    start: int
    end: int
    line: int
    col: int
    end_line: int
    end_col: int
    source: Source | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, source: Source, start: int, end: int) -> Span:
        line, col = source.position(start)
        end_line, end_col = source.position(end)
        return cls(start, end, line, col, end_line, end_col, source)

    @property
    def path(self) -> str:
        return self.source.path if self.source else "<unknown>"

    def sub(self, start: int, end: int) -> Span:
        """A span for absolute offsets `start..end` in the same source."""
        if self.source is None:
            return self
        return Span.of(self.source, start, end)

    def within(self, offsets: tuple[int, ...], start: int, end: int) -> Span:
        """The span of characters `start..end` of a decoded literal whose i-th char sits at `offsets[i]`."""
        if not offsets:
            return self
        start = min(max(start, 0), len(offsets) - 1)
        last = min(max(end - 1, start), len(offsets) - 1)
        return self.sub(offsets[start], offsets[last] + 1)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


class DeccError(Exception):
    """A mistake in what the user wrote or asked for; rendered, never shown as a traceback."""

    kind = "error"

    def __init__(
        self,
        message: str,
        span: Span | None = None,
        *,
        hints: Iterable[str] = (),
        notes: Iterable[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.hints = tuple(hints)
        self.notes = tuple(notes)

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        span = self.span
        if span is None:
            head = f"decc: {self.kind}: {self.message}"
            lines = [head]
        else:
            lines = [f"{span.path}:{span.line}:{span.col}: {self.kind}: {self.message}"]
            if span.source is not None:
                text = span.source.line_text(span.line)
                if text or span.col == 1:
                    # Carets under the span (clipped to its first line); keep tabs so carets line up.
                    col = span.col
                    last = span.end_col if span.end_line == span.line else len(text) + 1
                    if len(text) > MAX_SHOWN:  # a very long line: show a window around the span
                        lo = max(0, col - 1 - MAX_SHOWN // 2)
                        hi = min(len(text), lo + MAX_SHOWN)
                        text = ("..." if lo else "") + text[lo:hi] + ("..." if hi < len(text) else "")
                        shift = lo - (3 if lo else 0)
                        col, last = col - shift, min(last - shift, len(text) + 1)
                    prefix = "".join(ch if ch == "\t" else " " for ch in text[: col - 1])
                    width = max(1, last - col)
                    lines.append(f"  {text}")
                    lines.append(f"  {prefix}{'^' * width}")
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  hint: {h}" for h in self.hints]
        return "\n".join(lines)


class DeccWarning(DeccError):
    """A positioned diagnostic about a run that went on (rendered like an error, as `warning:`); printed,
    never raised."""

    kind = "warning"


MAX_SHOWN = 160  # characters of a source line shown under a diagnostic


class InternalError(Exception):
    """A bug in decc itself, not in the user's input."""


def did_you_mean(name: str, candidates: Iterable[str]) -> list[str]:
    """A 'did you mean' hint, or nothing when no candidate is close."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return [f"did you mean '{close[0]}'?"] if close else []


def unknown(what: str, name: str, span: Span | None, known: Iterable[str], *, where: str = "") -> DeccError:
    """`unknown <what> '<name>'[ for <where>]`, hinting the closest known name or else listing them all."""
    known = list(known)
    suffix = f" for {where}" if where else ""
    listing = f"known: {', '.join(known)}" if known else f"there is no {what} here"
    return DeccError(f"unknown {what} '{name}'{suffix}", span, hints=did_you_mean(name, known) or [listing])
