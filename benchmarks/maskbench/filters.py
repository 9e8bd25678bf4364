r"""The documented differences between decc's and llguidance's token masks, one named filter each.

A filter gets the bytes of a token that one engine alone allows and the step's `Context`, and says whether
its difference explains that token, by checking it, not by assuming it:

* `separator-space`: decc's whitespace policy (`compact-or-default`) also takes `json.dumps`' default
  separators, so right after a structural `,` or `:` decc alone allows tokens that start with one space;
  the filter checks that llguidance accepts the rest of the token's bytes (the compact spelling).
* `format`: the two engines' regexes for `format` differ at the edges; any disagreement inside (or at the
  start of) a string value whose schema has `format` is put down to it.
* `forced-prefix`: where the grammar forces the next bytes, llguidance allows only the canonical token(s)
  of them (its fast-forward "ff tokens"; guidance-ai/llguidance#263), decc every token that fits: decc
  alone allowing a token whose bytes are a prefix of llguidance's `compute_ff_bytes()` is that.
* `negative-zero`: decc writes an `integer` as `json.dumps` writes ints, so never `-0`; llguidance alone
  allowing `0` right after the `-` of an integer is that (decc's language is the smaller one here).
* `del-in-string`: RFC 8259 lets U+007F stand unescaped in a string; llguidance's string lexeme does not.
  decc alone allowing a token with byte 0x7F, inside a string or key, is that (llguidance is too strict).
* `pattern-escape`: decc matches `pattern`/`patternProperties` against the decoded string, so an escape
  (`\u0041` for `A`) may spell an allowed character; llguidance does not allow escapes there. decc alone
  allowing a token with a backslash inside a key or string whose schema has a pattern is that.
* `escape-spelling`: llguidance writes escapes canonically (`\"`, `\\`, `\b\f\n\r\t`, `\u0000`-`\u001f`);
  decc takes every valid JSON escape: decc alone allowing a token with `\/` or another `\uXXXX` in it,
  inside a string, is that.
* `number-spelling`: under bounds, `multipleOf`, `enum` or `const`, decc takes every spelling of an allowed
  number (`-0`, `0.0`, `5e-1`, `18` on the way to `180e-1`), llguidance the plain one: decc alone allowing
  a token of number characters inside such a number is that.
* `unicode-space`: `\s` in an ECMA-262 pattern (JSON Schema's dialect, and Python's `re`) also matches
  Unicode spaces (U+00A0, U+2000-U+200A, U+3000, ...); llguidance's `\s` does not. decc alone allowing,
  inside a string whose pattern has `\s`, a token with a character that begins such a space is that; and
  llguidance alone allowing U+0085 (a Unicode space that ECMA-262's `\s` leaves out) there.
* `added-token`: llguidance alone allowing a token that decc's vocabulary holds no text for (added and
  special tokens, such as qwen2's `[PADn]` fillers, are never text in decc).

A token that spells the instance's next bytes and then differs (`":-` where the instance has `":7`) is judged
by its differing rest, at the position where it parts from the instance.

`format` and `unicode-space` apply to both sides; `negative-zero` and `added-token` to what llguidance
alone allows, the others to what decc alone allows. A token after a structural `,`/`:` that starts with a space is explained when its
rest is explained or taken by llguidance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from .data import SchemaWalk
from .engines import encode
from .layout import Layout, Span


@dataclass(frozen=True)
class Context:
    offset: int  # bytes of the instance fed so far
    lay: Layout
    walker: SchemaWalk
    forced: bytes  # what llguidance says the grammar forces next

    def value(self, kinds: tuple[str, ...], end: bool = False) -> tuple[Span | None, list[dict]]:
        """The innermost value (or key) the prefix ends in and its subschemas; inside an array or object,
        between members, those of any member that could come next too."""
        span = self.lay.span_at(self.offset, kinds, end)
        if span is None:
            return None, []
        cands = self.walker.at(span.path[:-1] if span.kind == "key" else span.path)
        if span.kind in ("array", "object") and span.start < self.offset:
            members = [s for s in self.lay.spans if s.path[:-1] == span.path and s.kind != "key" and s.path]
            if span.kind == "array":
                subs = [x for i in range(len(members) + 1) for x in SchemaWalk.items(cands, i)]
            else:
                subs = [x for c in cands for x in _member_schemas(c)]
            cands = cands + self.walker.candidates(subs)
        return span, cands

    def has(self, kinds: tuple[str, ...], keywords: tuple[str, ...], end: bool = False) -> bool:
        return any(k in c for k in keywords for c in self.value(kinds, end)[1])

    def inside_text(self) -> bool:
        span = self.lay.span_at(self.offset, ("key", "string"))
        return span is not None and span.start < self.offset


VALUES = ("key", "string", "number", "literal", "object", "array")


def _member_schemas(s: dict) -> list[Any]:
    props = s.get("properties") if isinstance(s.get("properties"), dict) else {}
    pattern = s.get("patternProperties") if isinstance(s.get("patternProperties"), dict) else {}
    return [*props.values(), *pattern.values(), s.get("additionalProperties", True)]


def _format(b: bytes, at: Context) -> bool:
    span, cands = at.value(VALUES)
    return (
        span is not None and any("format" in c for c in cands) and (at.offset > span.start or b[:1] == b'"')
    )


def _forced_prefix(b: bytes, at: Context) -> bool:
    return bool(b) and at.forced.startswith(b)


def _del_in_string(b: bytes, at: Context) -> bool:
    return b"\x7f" in b and at.inside_text()


def _pattern_escape(b: bytes, at: Context) -> bool:
    if b"\\" not in b:
        return False
    span, cands = at.value(VALUES)
    if span is None or (at.offset == span.start and b[:1] != b'"'):
        return False
    keywords = ("patternProperties", "propertyNames", "pattern", "format")
    return any(k in c for k in keywords for c in cands)


CANONICAL_U = re.compile(rb"(0(0([01][0-9a-fA-F]?)?)?)?")


UNICODE_ESCAPE = re.compile(rb"(\\+)u([0-9a-fA-F]{0,3})$")


def _escape_spelling(b: bytes, at: Context) -> bool:
    if not at.inside_text():
        return False
    text = at.lay.text[: at.offset]
    started = UNICODE_ESCAPE.search(text)
    if started is not None and len(started.group(1)) % 2 == 1:  # inside a \u escape
        hex_digits = started.group(2) + b[: 4 - len(started.group(2))]
        return CANONICAL_U.fullmatch(hex_digits) is None
    pending = (len(text) - len(text.rstrip(b"\\"))) % 2 == 1  # the token starts right after a backslash
    return _odd_escape(b"\\" + b if pending else b)


def _odd_escape(s: bytes) -> bool:
    """`s` (bytes inside a string) has a `\\/` or a non-canonical `\\u` escape before the string ends."""
    i = 0
    while i < len(s):
        c = s[i]
        if c == 0x22:  # an unescaped quote ends the string: what follows is not text
            return False
        if c != 0x5C:
            i += 1
            continue
        nxt = s[i + 1 : i + 2]
        if nxt == b"/" or (nxt == b"u" and CANONICAL_U.fullmatch(s[i + 2 : i + 6]) is None):
            return True
        i += 6 if nxt == b"u" else 2
    return False


NUMBER_BYTES = re.compile(rb"[-+0-9.eE]+")
NUMBER_KEYWORDS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "enum",
    "const",
)


def _number_spelling(b: bytes, at: Context) -> bool:
    return NUMBER_BYTES.fullmatch(b) is not None and at.has(("number",), NUMBER_KEYWORDS, end=True)


UNICODE_SPACES = tuple(
    c.encode()
    for c in "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def _unicode_space(b: bytes, at: Context) -> bool:
    return _space_in_pattern(b, at, UNICODE_SPACES)


# U+0085 (NEL) is White_Space in Unicode, so in llguidance's `\s`, but not a space in ECMA-262's `\s`.
NEL = ("\u0085".encode(),)


def _nel_space(b: bytes, at: Context) -> bool:
    return _space_in_pattern(b, at, NEL)


def _space_in_pattern(b: bytes, at: Context, spaces: tuple[bytes, ...]) -> bool:
    r"""Some non-ASCII character of `b` begins (or is) one of `spaces`, inside a key or string whose pattern
    has `\s`."""
    if not at.inside_text():
        return False
    starts = [i for i, c in enumerate(b) if c >= 0xC0]  # where multi-byte characters begin
    if not any(w.startswith(b[i : i + len(w)]) for i in starts for w in spaces):
        return False
    span, cands = at.value(("key", "string"))
    if span is None:
        return False
    if span.kind == "key":
        patterns = [p for c in cands for p in (c.get("patternProperties") or {})]
    else:
        patterns = [c["pattern"] for c in cands if isinstance(c.get("pattern"), str)]
    return any("\\s" in p for p in patterns)


DECC_FILTERS: dict[str, Any] = {
    "format": _format,
    "forced-prefix": _forced_prefix,
    "del-in-string": _del_in_string,
    "escape-spelling": _escape_spelling,
    "pattern-escape": _pattern_escape,
    "number-spelling": _number_spelling,
    "unicode-space": _unicode_space,
}


def _negative_zero(b: bytes, at: Context) -> bool:
    """decc writes integers as `json.dumps` writes ints, never `-0` (which JSON Schema calls 0)."""
    span, cands = at.value(("number",), end=True)
    if span is None or at.lay.text[span.start : at.offset] != b"-" or not b.startswith(b"0"):
        return False
    return any(
        "integer" in (c["type"] if isinstance(c.get("type"), list) else [c.get("type")]) for c in cands
    )


DECC_ONLY = DECC_FILTERS


def _added_token(b: bytes, at: Context) -> bool:
    """A token decc's vocabulary holds no text for (an added or special token such as qwen2's `[PADn]`):
    decc never allows one, llguidance may."""
    return b == b""


LLG_ONLY: dict[str, Any] = {
    "format": _format,
    "negative-zero": _negative_zero,
    "unicode-space": _nel_space,
    "added-token": _added_token,
}


def _explain(b: bytes, at: Context, filters: dict[str, Any], g: Any, tok: Any) -> str | None:
    """The name of the filter that explains one token's disagreement, or None."""
    for name, explains in filters.items():
        if explains(b, at):
            return name
    if filters is DECC_ONLY and at.offset - 1 in at.lay.separators and b.startswith(b" "):
        rest = b[1:]  # decc's default separators: the same token without its space is explained or taken
        if not rest or _explain(rest, at, filters, g, tok) is not None or _llg_takes(rest, g, tok):
            return "separator-space"
    ahead = at.lay.text[at.offset : at.offset + len(b)]
    pairs = enumerate(zip(b, ahead, strict=False))
    k = next((i for i, (x, y) in pairs if x != y), min(len(b), len(ahead)))
    if 0 < k < len(b):  # the token spells the instance's next k bytes, then differs: judge it from there
        return _explain(b[k:], replace(at, offset=at.offset + k, forced=b""), filters, g, tok)
    return None


def _llg_takes(b: bytes, g: Any, tok: Any) -> bool:
    try:
        ids = encode(tok, b.decode())
    except UnicodeDecodeError:
        return False
    return g.validate_tokens(ids) == len(ids)


def sift(
    tokens: list[int], token_bytes: list[bytes], at: Context, filters: dict[str, Any], g: Any, tok: Any
) -> tuple[list[int], set[str]]:
    """The tokens no filter explains, and the names of the filters that explained the others."""
    rest, names = [], set()
    for t in tokens:
        name = _explain(token_bytes[t], at, filters, g, tok)
        if name is None:
            rest.append(t)
        else:
            names.add(name)
    return rest, names
