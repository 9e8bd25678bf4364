"""String literals and text templates: escapes, raw strings, and `{name}` interpolation, with exact positions."""

from __future__ import annotations

from decc.dsl.ast import Interp, StrLit, TextPart
from decc.errors import DeccError, Span

_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'", "f": "\f", "v": "\v"}
_HEX = {"x": 2, "u": 4, "U": 8}


def decode_string(token: str, start: int, span: Span) -> StrLit:
    """Decode the source text of a string token that begins at source offset `start`."""
    raw = token.startswith("r")
    body_start = 1 if raw else 0
    quote = 3 if token[body_start:].startswith('"""') else 1
    begin = body_start + quote
    body = token[begin : len(token) - quote]
    base = start + begin
    if raw:
        return StrLit(body, span, True, tuple(range(base, base + len(body))))
    out: list[str] = []
    offsets: list[int] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            offsets.append(base + i)
            i += 1
            continue
        esc = body[i + 1] if i + 1 < len(body) else ""
        if esc in _SIMPLE:
            out.append(_SIMPLE[esc])
            offsets.append(base + i)
            i += 2
        elif esc == "\n":  # a backslash at the end of a line joins lines
            i += 2
        elif esc in _HEX:
            n = _HEX[esc]
            digits = body[i + 2 : i + 2 + n]
            try:
                if len(digits) != n:
                    raise ValueError
                code = int(digits, 16)
                out.append(chr(code))
            except ValueError:
                raise DeccError(
                    f"bad escape '\\{esc}{digits}': expected {n} hex digits",
                    span.sub(base + i, base + i + 2 + len(digits)),
                ) from None
            if 0xD800 <= code <= 0xDFFF:
                raise DeccError(
                    f"'\\{esc}{digits}' is a lone surrogate, not a character",
                    span.sub(base + i, base + i + 2 + n),
                    hints=["write the character itself, or its \\U escape (e.g. \\U0001F600)"],
                )
            offsets.append(base + i)
            i += 2 + n
        else:
            raise DeccError(
                f"unknown escape '\\{esc}' in string",
                span.sub(base + i, base + i + 2),
                hints=['for a regex, use a raw string: r"..." keeps backslashes as written'],
            )
    return StrLit("".join(out), span, False, tuple(offsets))


def parse_template(lit: StrLit) -> tuple[TextPart | Interp, ...]:
    """Split a text literal into literal parts and `{name}` references; `{{`/`}}` are literal braces."""
    parts: list[TextPart | Interp] = []
    text = lit.value
    buf: list[str] = []
    buf_start = 0
    i = 0

    def flush(end: int) -> None:
        if buf:
            parts.append(TextPart("".join(buf), lit.span_of(buf_start, end)))
            buf.clear()

    while i < len(text):
        ch = text[i]
        if ch == "{" and text.startswith("{{", i) or ch == "}" and text.startswith("}}", i):
            if not buf:
                buf_start = i
            buf.append(ch)
            i += 2
        elif ch == "{":
            close = text.find("}", i)
            if close < 0:
                raise DeccError(
                    "unclosed '{' in text", lit.span_of(i, i + 1), hints=["write '{{' for a literal brace"]
                )
            name = text[i + 1 : close].strip()
            if not name.isidentifier():
                raise DeccError(
                    f"expected a variable name inside '{{...}}', found '{text[i + 1 : close]}'",
                    lit.span_of(i, close + 1),
                    hints=["write '{{' and '}}' for literal braces"],
                )
            flush(i)
            parts.append(Interp(name, lit.span_of(i, close + 1)))
            i = close + 1
        elif ch == "}":
            raise DeccError(
                "single '}' in text", lit.span_of(i, i + 1), hints=["write '}}' for a literal brace"]
            )
        else:
            if not buf:
                buf_start = i
            buf.append(ch)
            i += 1
    flush(len(text))
    return tuple(parts)
