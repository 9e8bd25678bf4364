"""Where a JSON pointer sits in a schema's text as written, so that a diagnostic about one keyword can put
its caret on that key (in the `.dec` literal or in the schema file) instead of under the whole schema."""

from __future__ import annotations

import json

from decc.compiler import ir
from decc.errors import Span

WS = " \t\n\r"


def key_spans(text: str) -> dict[str, tuple[int, int]]:
    """JSON pointer -> (start, end) character offsets in `text` (valid JSON) of that member's key (quotes
    included), or of the whole element for an array item. A later duplicate key wins, as in `json.loads`."""
    out: dict[str, tuple[int, int]] = {}
    n = len(text)

    def ws(i: int) -> int:
        while i < n and text[i] in WS:
            i += 1
        return i

    def string_end(i: int) -> int:  # text[i] is the opening quote
        i += 1
        while text[i] != '"':
            i += 2 if text[i] == "\\" else 1
        return i + 1

    def value(i: int, ptr: str) -> int:
        i = ws(i)
        if text[i] == "{":
            i = ws(i + 1)
            while text[i] != "}":
                end = string_end(i)
                p = f"{ptr}/{escape(json.loads(text[i:end]))}"
                out[p] = (i, end)
                i = ws(value(ws(end) + 1, p))  # past the colon, then the value
                i = ws(i + 1) if text[i] == "," else i
            return i + 1
        if text[i] == "[":
            i, k = ws(i + 1), 0
            while text[i] != "]":
                start = i
                i = value(i, f"{ptr}/{k}")
                out[f"{ptr}/{k}"] = (start, i)
                i, k = ws(i), k + 1
                i = ws(i + 1) if text[i] == "," else i
            return i + 1
        if text[i] == '"':
            return string_end(i)
        while i < n and text[i] not in ",]}" + WS:
            i += 1
        return i

    value(0, "")
    return out


def escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def pointer_span(c: ir.JsonSchema, pointer: str) -> tuple[Span, list[str]]:
    """The span of the key `pointer` names (or of its nearest enclosing key) in the schema as written, and
    notes: for a schema file, where the program names it; where nothing was written (a pydantic model),
    the model's name in the program."""
    if c.written is None:
        return c.span, []
    spans = key_spans(c.written.text)
    p = pointer
    while p and p not in spans:
        p = p[: p.rfind("/")]
    if not p:
        return c.span, []
    start, end = spans[p]
    if c.origin == "inline":
        return c.span.within(c.offsets, start, end), []
    return Span.of(c.written, start, end), [f"the schema file is named at {c.span}"]
