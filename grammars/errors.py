"""User errors raised by the grammar layer: bad regexes and constraints too big to compile.

Both are `DeccError`s so the CLI renders them like any other user mistake. `RegexError` keeps exact
character offsets inside the pattern; the compiler maps them to source positions with `at()`.
"""

from __future__ import annotations

from collections.abc import Iterable

from decc.errors import DeccError, Span


class RegexError(DeccError):
    """A regex that decc cannot accept: malformed, or using a feature with no regular (DFA) meaning."""

    def __init__(
        self,
        message: str,
        pattern: str,
        offset: int,
        end: int | None = None,
        span: Span | None = None,
        *,
        hints: Iterable[str] = (),
        notes: Iterable[str] = (),
    ) -> None:
        super().__init__(message, span, hints=hints, notes=notes)
        self.pattern = pattern
        self.offset = offset
        self.end = max(offset, end if end is not None else offset + 1)

    def at(self, span: Span | None) -> RegexError:
        """The same error located at `span` (e.g. the offending part of the regex literal in the source)."""
        return RegexError(
            self.message, self.pattern, self.offset, self.end, span, hints=self.hints, notes=self.notes
        )

    def render(self) -> str:
        text = super().render()
        if self.span is not None:
            return text
        # No source position: show the pattern itself with carets under the offending part.
        width = max(1, min(self.end, len(self.pattern) + 1) - self.offset)
        lines = text.split("\n")
        lines[1:1] = [f"  {self.pattern}", f"  {' ' * self.offset}{'^' * width}"]
        return "\n".join(lines)


class GrammarLimitError(DeccError):
    """A constraint whose automaton would exceed a compile limit; raised early instead of hanging."""
