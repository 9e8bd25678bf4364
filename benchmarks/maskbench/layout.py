"""An instance serialized as every engine sees it (compact `json.dumps`), with where each value, key and
structural separator lies, so that a step of a token walk can be placed in the instance and its schema."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SEPS = (",", ":")


@dataclass(frozen=True)
class Span:
    """Bytes [start, end) of one value or key of the serialized instance: kind "key", "string", "number",
    "literal" (true, false, null), "object" or "array"."""

    start: int
    end: int
    kind: str
    path: tuple[str | int, ...]


@dataclass
class Layout:
    """An instance serialized compactly, with where its scalars and structural separators lie."""

    text: bytes
    spans: list[Span] = field(default_factory=list)
    separators: set[int] = field(default_factory=set)  # byte offsets of structural ',' and ':'

    def span_at(self, offset: int, kinds: tuple[str, ...], end: bool = False) -> Span | None:
        """The innermost span of one of `kinds` that a prefix of `offset` bytes ends in: at its start or
        inside it (or at its end, with `end`)."""
        inside = [s for s in self.spans if s.kind in kinds and s.start <= offset < s.end + end]
        return min(inside, key=lambda s: s.end - s.start, default=None)


def layout(value: Any) -> Layout:
    """`json.dumps(value, separators=SEPS, ensure_ascii=False)` as bytes, with its spans."""
    out = Layout(b"")
    parts: list[bytes] = []
    size = 0

    def put(b: bytes) -> int:
        nonlocal size
        parts.append(b)
        size += len(b)
        return size

    def scalar(v: Any, kind: str, path: tuple[str | int, ...]) -> None:
        start = size
        put(json.dumps(v, ensure_ascii=False).encode())
        out.spans.append(Span(start, size, kind, path))

    def walk(v: Any, path: tuple[str | int, ...]) -> None:
        start = size
        if isinstance(v, dict):
            put(b"{")
            for i, (k, x) in enumerate(v.items()):
                if i:
                    out.separators.add(put(b",") - 1)
                scalar(k, "key", (*path, k))
                out.separators.add(put(b":") - 1)
                walk(x, (*path, k))
            put(b"}")
            out.spans.append(Span(start, size, "object", path))
        elif isinstance(v, list):
            put(b"[")
            for i, x in enumerate(v):
                if i:
                    out.separators.add(put(b",") - 1)
                walk(x, (*path, i))
            put(b"]")
            out.spans.append(Span(start, size, "array", path))
        elif isinstance(v, str):
            scalar(v, "string", path)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            scalar(v, "number", path)
        else:
            scalar(v, "literal", path)

    walk(value, ())
    out.text = b"".join(parts)
    if out.text != json.dumps(value, separators=SEPS, ensure_ascii=False).encode():
        raise AssertionError("layout() does not write what json.dumps writes")
    return out
