"""The independent side of `decc test`: oracles that judge a text (Python's `re` or the `regex` module,
`jsonschema` with the draft's format checker, Lark, plain Python) and generators that draw texts
(hypothesis' `from_regex`, `hypothesis-jsonschema`, decc's grammar walk where nothing outside fits).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from decc.compiler import ir
from decc.testing import SchemaOrderError, to_schema_order

Oracle = Callable[[str], str | None]  # None when valid, else the reason


class Unjudgeable(Exception):
    """The oracle cannot judge this text fairly (e.g. its Unicode version differs from decc's)."""


class Unsupported(Exception):
    """A check that cannot run on this constraint (no generator or oracle for one of its features)."""


# -- oracles ----------------------------------------------------------------------------------------------

_PROPERTY = re.compile(r"\\[pP]")
# `re.ASCII` shorthands spelled out, for the `regex` module (whose ASCII flag would also narrow `\p{..}`).
_ASCII_SETS = {
    "d": r"0-9",
    "w": r"0-9A-Z_a-z",
    "s": r"\t-\r ",
    "D": r"\x00-/:-\U0010ffff",
    "W": r"\x00-/:-@\[-\^`{-\U0010ffff",
    "S": r"\x00-\x08\x0e-\x1f!-\U0010ffff",
}


def rewrite_escapes(pattern: str, rewrite: Callable[[str, bool], str | None]) -> str:
    """`pattern` with each escape (`\\d`, `\\p{L}`, `\\N{...}`) replaced by `rewrite(escape, in_class)`,
    where it returns text (None keeps it)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class, first = False, 0  # inside [...]; where its first member is (a `]` there is literal)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            j = i + 2
            if pattern[i + 1] in "pPN" and pattern[j : j + 1] == "{":
                close = pattern.find("}", j)
                j = n if close < 0 else close + 1
            elif pattern[i + 1] in "pP":
                j = min(n, j + 1)
            escape = pattern[i:j]
            new = rewrite(escape, in_class)
            out.append(escape if new is None else new)
            i = j
            continue
        if in_class and c == "]" and i > first:
            in_class = False
        elif not in_class and c == "[":
            in_class, first = True, i + 1 + (pattern[i + 1 : i + 2] == "^")
        out.append(c)
        i += 1
    return "".join(out)


def _regex_oracle(pattern: str) -> Oracle:
    """Python's `re` (ASCII shorthands, as decc reads them); the `regex` module when the pattern has Unicode
    properties (`\\p{L}`), which `re` does not know."""
    if not _PROPERTY.search(pattern):
        compiled = re.compile(pattern, re.ASCII)
        return lambda s: None if compiled.fullmatch(s) else "does not match the regex (re.fullmatch)"
    import regex

    def ascii_shorthand(escape: str, in_class: bool) -> str | None:
        body = _ASCII_SETS.get(escape[1:])
        return None if body is None else body if in_class else f"[{body}]"

    unicode = regex.compile(rewrite_escapes(pattern, ascii_shorthand), regex.V0)

    def judge(s: str) -> str | None:
        if unicode.fullmatch(s):
            return None
        if any(unicodedata.category(ch) == "Cn" for ch in s):  # decc reads properties by `unicodedata`
            raise Unjudgeable(
                f"code points unassigned in Python's Unicode {unicodedata.unidata_version}, which the regex "
                "module's newer Unicode may class otherwise"
            )
        return "does not match the regex (regex.fullmatch)"

    return judge


def oracle_for(c: ir.Constraint) -> Oracle:
    """An independent judge of validity: Python's `re` (or `regex`), `jsonschema`, Lark, or plain Python."""
    if isinstance(c, ir.Choice):
        options = set(c.options)
        return lambda s: None if s in options else "is not one of the choices"
    if isinstance(c, ir.Length):
        lo, hi = c.lo, c.hi

        def length(s: str) -> str | None:
            if len(s) < lo or (hi is not None and len(s) > hi):
                return f"has {len(s)} characters, outside [{lo}, {'' if hi is None else hi}]"
            return None

        return length
    if isinstance(c, ir.All):
        judges = [oracle_for(p) for p in c.parts]
        return lambda s: next((r for r in (j(s) for j in judges) if r), None)
    if isinstance(c, ir.Regex):
        return _regex_oracle(c.pattern)
    if isinstance(c, ir.Grammar):
        from lark import Lark
        from lark.exceptions import LarkError

        parser = Lark(c.text, start=c.start, parser="earley", lexer="dynamic_complete")

        def parses(s: str) -> str | None:
            try:
                parser.parse(s)
            except LarkError as e:
                return f"Lark's Earley parser rejects it: {str(e).splitlines()[0]}"
            return None

        return parses
    import jsonschema

    schema = json.loads(c.schema)
    # The schema's own draft's format checker: a bare `FormatChecker()` mixes every draft's checkers and, for
    # one, judges "time" by draft 3's rules (no fractions, no offsets).
    cls = jsonschema.validators.validator_for(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)

    def judge(s: str) -> str | None:
        try:
            value = json.loads(s)
        except json.JSONDecodeError as e:
            return f"not JSON: {e.msg}"
        error = next(iter(validator.iter_errors(value)), None)
        return None if error is None else f"jsonschema: {error.message}"

    return judge


# -- independent generators -------------------------------------------------------------------------------


def _spelled_properties(pattern: str) -> str:
    """`pattern` with `\\p{..}`/`\\P{..}` spelled out as code point ranges (from decc's regex parser), which
    hypothesis' `from_regex` (built on `re`) can read."""
    from decc.grammars.regexes.regex_parser import parse_regex

    def spell(escape: str, in_class: bool) -> str | None:
        if escape[1] not in "pP":
            return None
        negated = escape[1] == "P" and not in_class  # `[^...]`: hypothesis is slow on ranges up to U+10FFFF
        node = parse_regex("\\p" + escape[2:] if negated else escape)
        body = "".join(
            f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}"
            for lo, hi in node.ranges  # type: ignore[union-attr]
        )
        if negated:
            return f"[^{body}\\ud800-\\udfff]"  # no surrogates: decc's sets have none (no UTF-8)
        return body if in_class else f"[{body}]"

    return rewrite_escapes(pattern, spell)


def independent(c: ir.Constraint) -> tuple[st.SearchStrategy[str], str]:
    """(valid texts from a generator that shares nothing with decc's token-level machinery, its name).

    For grammars (and recursive schemas, which `hypothesis-jsonschema` cannot resolve) there is no outside
    generator: sentences come from `decc.testing`'s walk of the grammar's RTN, which shares the grammar's
    normalization with the matcher but none of its token classification, mask cache or Earley charts (the
    soundness check judges the normalization against the oracle). Raises `Unsupported` when nothing fits.
    """
    if isinstance(c, ir.Grammar):
        return _walk_of(c), "decc's grammar walk"
    if isinstance(c, ir.Regex):
        pattern = _spelled_properties(c.pattern) if _PROPERTY.search(c.pattern) else c.pattern
        try:
            compiled = re.compile(pattern, re.ASCII)
        except re.error as e:
            raise Unsupported(f"hypothesis' from_regex cannot read this regex ({e})") from None
        return st.from_regex(compiled, fullmatch=True), "hypothesis' from_regex"
    if isinstance(c, ir.Choice):
        return st.sampled_from(c.options), "the choices"
    if isinstance(c, ir.Length):
        return st.text(min_size=c.lo, max_size=c.hi if c.hi is not None else c.lo + 40), "hypothesis' text"
    if isinstance(c, ir.All):  # draws of the most selective part (the oracle then judges them on every part)
        order = (ir.Choice, ir.Regex, ir.Range, ir.JsonSchema, ir.Length)
        first = min(c.parts, key=lambda p: next(i for i, t in enumerate(order) if isinstance(p, t)))
        return independent(first)
    if isinstance(c, ir.JsonSchema) and not _is_regular(c):
        return _walk_of(c), "decc's grammar walk (hypothesis-jsonschema cannot resolve recursive $refs)"
    import hypothesis_jsonschema

    schema = json.loads(c.schema)

    def serialize(pair: tuple[Any, bool]) -> str:
        value, compact = pair
        return json.dumps(value, ensure_ascii=False, separators=(",", ":") if compact else None)

    # `uuid` is a format hypothesis-jsonschema does not know (it would draw any string): hypothesis' own uuids.
    formats = {"uuid": st.uuids().map(str)}
    instances = hypothesis_jsonschema.from_schema(schema, custom_formats=formats)
    return st.tuples(instances.map(lambda v: _in_schema_order(v, schema)), st.booleans()).map(serialize), (
        "hypothesis-jsonschema"
    )


def _is_regular(c: ir.JsonSchema) -> bool:
    from decc.grammars import ByteDFA

    return c.compiled is None or isinstance(c.compiled, ByteDFA)


def _walk_of(c: ir.Constraint) -> st.SearchStrategy[str]:
    from decc.testing import from_constraint

    if c.compiled is None:
        raise Unsupported("the constraint was not compiled: nothing to walk")
    return from_constraint(c, max_bytes=96)


class SetAside(Exception):
    """An instance decc writes differently by design (key order, nesting of `true` values)."""


def _in_schema_order(value: Any, schema: Any) -> Any:
    try:
        return to_schema_order(value, schema)
    except SchemaOrderError as e:
        raise SetAside(str(e) or "no single key order") from None
