"""Typed reading of `where:` constraints from AST expressions.

`regex(...)`, `json(...)` (inline, `file=`, or a pydantic `model="module:Class"`), `grammar(...)`,
`choice(...)`, `int(min=, max=)`, `number(min=, max=)`, `length(min=, max=, unit=)` and conjunctions
`a & b`. A token-count `length` is not a constraint on the text: `where()` hands it back as bounds for the
step (`min_tokens`/`max_tokens`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decc.compiler import ir
from decc.compiler.options import (
    as_bool,
    as_choice,
    as_int,
    as_number,
    as_str,
    describe,
    folder_of,
    kwargs_of,
)
from decc.compiler.trust import IMPORTS_HINT, Trust, check_file_allowed, import_object, resolve_module
from decc.dsl import ast
from decc.errors import DeccError, Source, Span, unknown
from decc.grammars.json.json_strict import close_objects

CONSTRAINTS = ("regex", "json", "grammar", "choice", "int", "number", "length")
GRAMMAR_ARGS = ("file", "start")
JSON_ARGS = ("file", "model", "whitespace", "lenient", "extra_keys")
WHITESPACE = ("compact-or-default", "any")
LENGTH_ARGS = ("min", "max", "unit")
UNITS = ("chars", "tokens")


@dataclass(frozen=True)
class TokenBounds:
    """`length(..., unit="tokens")`: bounds on the step's token count, not on its text."""

    lo: int
    hi: int | None
    span: Span


@dataclass(frozen=True)
class Where:
    constraint: ir.Constraint | None
    min_tokens: int = 0
    max_tokens: int | None = None


def where(e: ast.Expr, base_dir: Path, trust: Trust) -> Where:
    """A `where:` value: the text constraint (None if only token bounds are given) and token bounds."""
    parts = e.items if isinstance(e, ast.And) else (e,)
    read = [constraint(p, base_dir, trust) for p in parts]
    bounds = [r for r in read if isinstance(r, TokenBounds)]
    text = [r for r in read if not isinstance(r, TokenBounds)]
    lo = max((b.lo for b in bounds), default=0)
    his = [b.hi for b in bounds if b.hi is not None]
    hi = min(his) if his else None
    if hi is not None and hi < lo:
        raise DeccError(f"token bounds exclude every length: at least {lo} and at most {hi}", e.span)
    if not text:
        return Where(None, lo, hi)
    c = text[0] if len(text) == 1 else ir.All(tuple(text), e.span)  # type: ignore[arg-type]
    return Where(c, lo, hi)


def constraint(e: ast.Expr, base_dir: Path, trust: Trust) -> ir.Constraint | TokenBounds:
    if isinstance(e, ast.And):
        raise DeccError("a conjunction inside a conjunction", e.span)  # the grammar never builds one
    if not isinstance(e, ast.Call):
        raise DeccError(
            f"'where' takes a constraint such as regex(r\"...\") or json(...), not {describe(e)}",
            e.span,
        )
    name = e.func.value
    if name not in CONSTRAINTS:
        raise unknown("constraint", name, e.func.span, CONSTRAINTS)
    if name == "json":
        return json_constraint(e, base_dir, trust)
    if name == "grammar":
        return grammar_constraint(e, base_dir, trust)
    if name == "choice":
        return choice(e)
    if name in ("int", "number"):
        return number_range(e)
    if name == "length":
        return length(e)
    if e.kwargs or len(e.args) != 1:
        raise DeccError("regex(...) takes exactly one pattern string", e.span)
    pattern = as_str(e.args[0], "a regex pattern")
    return ir.Regex(pattern.value, pattern.span, offsets=pattern.offsets)


def choice(e: ast.Call) -> ir.Choice:
    """`choice("a", "b")` or `choice(["a", "b"])`."""
    if e.kwargs:
        raise DeccError("choice(...) takes the strings only", e.kwargs[0].span)
    args: tuple[ast.Expr, ...] = e.args
    if len(args) == 1 and isinstance(args[0], ast.ListLit):
        args = args[0].items
    if not args:
        raise DeccError("choice(...) needs at least one string", e.span)
    seen: dict[str, ast.StrLit] = {}
    for a in args:
        lit = as_str(a, "a choice")
        if lit.value in seen:
            raise DeccError(f"choice {json.dumps(lit.value)} is listed twice", lit.span)
        seen[lit.value] = lit
    return ir.Choice(tuple(seen), e.span)


def number_range(e: ast.Call) -> ir.Range:
    """`int(min=1, max=10)` or `number(min=0, max=1)`: either bound may be left out."""
    name = e.func.value
    kw = kwargs_of(e, ("min", "max"), name)
    if e.args:
        raise DeccError(
            f"{name}(...) takes keyword arguments only, e.g. {name}(min=0, max=10)", e.args[0].span
        )
    what = "an integer bound" if name == "int" else "a number bound"
    lo = _bound(kw["min"].value, name, what) if "min" in kw else None
    hi = _bound(kw["max"].value, name, what) if "max" in kw else None
    if lo is not None and hi is not None and hi < lo:
        raise DeccError(
            f"{name}(...) with min {lo} above max {hi} matches nothing", e.span, hints=["swap min and max"]
        )
    return ir.Range(name, lo, hi, e.span)


def _bound(e: ast.Expr, name: str, what: str) -> int | float:
    if name == "int":
        return as_int(e, what)
    return as_number(e, what)


def length(e: ast.Call) -> ir.Length | TokenBounds:
    """`length(max=40)`, `length(min=3, max=40)`; `unit="chars"` (the default) or `"tokens"`."""
    kw = kwargs_of(e, LENGTH_ARGS, "length")
    if e.args:
        raise DeccError("length(...) takes keyword arguments only, e.g. length(max=40)", e.args[0].span)
    if "min" not in kw and "max" not in kw:
        raise DeccError("length(...) needs min=, max= or both", e.span)
    lo = as_int(kw["min"].value, "min", minimum=0) if "min" in kw else 0
    hi = as_int(kw["max"].value, "max", minimum=0) if "max" in kw else None
    if hi is not None and hi < lo:
        raise DeccError(
            f"length(...) with min {lo} above max {hi} matches nothing", e.span, hints=["swap min and max"]
        )
    unit = as_choice(kw["unit"].value, "unit", UNITS) if "unit" in kw else "chars"
    if unit == "tokens":
        return TokenBounds(lo, hi, e.span)
    return ir.Length(lo, hi, e.span)


def json_constraint(e: ast.Call, base_dir: Path, trust: Trust) -> ir.JsonSchema:
    """`json(r\"\"\"{...}\"\"\")` (inline schema), `json(file="schema.json")` (in the program's folder) or
    `json(model="module:Class")` (a pydantic model beside the program: see `pydantic_schema`)."""
    kwargs = kwargs_of(e, JSON_ARGS, "json")
    given = len(e.args) + ("file" in kwargs) + ("model" in kwargs)
    if given != 1:
        raise DeccError(
            'json(...) takes one schema: inline JSON text, file="schema.json" or model="module:Class"', e.span
        )
    written: Source | None = None  # the schema's text as written, for errors that point at a keyword
    offsets: tuple[int, ...] = ()
    if e.args:
        lit = as_str(e.args[0], "a JSON schema")
        schema = _load_json(lit.value, lambda pos: lit.span_of(pos, pos + 1))
        origin, span = "inline", lit.span
        written, offsets = Source(lit.span.path, lit.value), lit.offsets
    elif "file" in kwargs:
        lit = as_str(kwargs["file"].value, "file")
        path = folder_of(lit, base_dir) / lit.value
        text = read_file(check_file_allowed(path, lit, base_dir, trust, "schema file"), lit)
        schema, written = _schema_file(text, path, lit)
        origin, span = lit.value, lit.span
    else:
        lit = as_str(kwargs["model"].value, "model")
        schema = pydantic_schema(lit, base_dir, trust)
        origin, span = f"model:{lit.value}", lit.span
    whitespace = "compact-or-default"
    if "whitespace" in kwargs:
        whitespace = as_choice(kwargs["whitespace"].value, "whitespace mode", WHITESPACE)
    lenient = as_bool(kwargs["lenient"].value, "lenient") if "lenient" in kwargs else False
    extra = as_bool(kwargs["extra_keys"].value, "extra_keys") if "extra_keys" in kwargs else False
    closed = 0
    if not extra:  # objects hold their declared properties only (the schema itself, rewritten, says so)
        schema, closed = close_objects(schema)
    text = json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
    return ir.JsonSchema(
        text, span, origin, whitespace, lenient, extra, closed, written=written, offsets=offsets
    )


def pydantic_schema(lit: ast.StrLit, base_dir: Path, trust: Trust) -> Any:
    """The JSON schema of a pydantic model. Building it imports the model's module (running its code), so
    that happens only with `allow_imports`; `decc check` without it verifies the module and class
    statically and checks the rest of the program against any JSON."""
    if not trust.allow_imports:
        resolve_module(lit, base_dir, trust, "a pydantic model")
        if trust.check_only:
            return {}
        raise DeccError(
            f"json(model=...) builds its schema by importing '{lit.value.partition(':')[0]}', and this "
            "command runs none of the program's code",
            lit.span,
            hints=[IMPORTS_HINT, "decc run and decc.load(...) import it; decc check checks it without"],
        )
    cls = import_object(lit, base_dir, trust, "a pydantic model")
    make = getattr(cls, "model_json_schema", None)
    if not callable(make):
        raise DeccError(f"'{lit.value}' is not a pydantic model (it has no model_json_schema())", lit.span)
    try:
        return make()
    except Exception as err:  # noqa: BLE001 - the user's model failing to produce a schema
        raise DeccError(f"'{lit.value}' gives no JSON schema: {err}", lit.span) from None


def grammar_constraint(e: ast.Call, base_dir: Path, trust: Trust) -> ir.Grammar:
    """`grammar("json")` (a built-in: json, arith, sql_select) or `grammar(file="g.lark", start="start")`."""
    from decc.grammars import BUILTIN_GRAMMARS, builtin_grammar

    kwargs = kwargs_of(e, GRAMMAR_ARGS, "grammar")
    if len(e.args) > 1 or bool(e.args) == ("file" in kwargs):
        raise DeccError('grammar(...) takes one grammar: a built-in name, or file="grammar.lark"', e.span)
    if e.args:
        lit = as_str(e.args[0], "a built-in grammar name")
        if lit.value not in BUILTIN_GRAMMARS:
            raise unknown("built-in grammar", lit.value, lit.span, BUILTIN_GRAMMARS)
        text, origin = builtin_grammar(lit.value), f"builtin:{lit.value}"
    else:
        lit = as_str(kwargs["file"].value, "file")
        path = folder_of(lit, base_dir) / lit.value
        text, origin = (
            read_file(check_file_allowed(path, lit, base_dir, trust, "grammar file"), lit),
            str(path),
        )
    start = as_str(kwargs["start"].value, "start").value if "start" in kwargs else "start"
    return ir.Grammar(text, lit.span, origin, start)


MAX_FILE_BYTES = 16 << 20  # a schema or grammar file; more is refused rather than read without bound


def read_file(path: Path, lit: ast.StrLit) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise DeccError(
                f"cannot read '{lit.value}': larger than {MAX_FILE_BYTES >> 20} MiB", lit.span
            ) from None
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text's newlines
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise DeccError(f"cannot read '{lit.value}': {reason}", lit.span) from None


_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", type(None): "null"}


def _schema_file(text: str, path: Path, lit: ast.StrLit) -> tuple[Any, Source | None]:
    """A schema file's JSON, and its text for errors that point into it. A file that is not a JSON
    object or boolean is not a schema: its errors point at the `file=` string and never show its text."""
    head = text.lstrip()[:5]
    if head.startswith("{"):
        written = Source(str(path), text)
        return _load_json(text, lambda pos: Span.of(written, pos, pos + 1)), written
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as err:
        raise DeccError(
            f"'{lit.value}' is not a JSON schema (not JSON: {err.msg} at line {err.lineno}, column {err.colno})",
            lit.span,
            hints=["a JSON schema file holds one JSON object"],
        ) from None
    except RecursionError:  # nested deeper than Python's parser goes: no schema either way
        raise DeccError(f"'{lit.value}' is not a JSON schema (nested too deep)", lit.span) from None
    if not isinstance(schema, bool):
        raise DeccError(
            f"'{lit.value}' is not a JSON schema (a JSON {_JSON_TYPES.get(type(schema), 'value')}, not an object)",
            lit.span,
        )
    return schema, None


MAX_JSON_DEPTH = 100  # nesting levels ({ and [) of a schema: deeper ones would overflow the recursive passes
_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|-?Infinity|NaN")


def _load_json(text: str, span_at: Callable[[int], Span]) -> Any:
    """The schema's JSON; too deep nesting and numbers out of float range (1e400, Infinity) are errors."""
    _check_depth(text, span_at)
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_finite)
    except json.JSONDecodeError as err:
        raise DeccError(f"invalid JSON in schema: {err.msg}", span_at(err.pos)) from None
    except _NotFinite as err:
        for m in _NUMBER.finditer(text):
            if m.group() == err.args[0]:
                raise DeccError(
                    f"number {m.group()} in schema is out of range (not a finite float)",
                    span_at(m.start()),
                    hints=["floats reach about 1.8e308: use a smaller bound, or leave it out"],
                ) from None
        raise DeccError(
            f"number {err.args[0]} in schema is out of range (not a finite float)", span_at(0)
        ) from None


class _NotFinite(Exception):
    """A JSON number that is no finite float."""


def _finite(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise _NotFinite(raw)
    return value


def _check_depth(text: str, span_at: Callable[[int], Span]) -> None:
    """A positioned error at the first bracket nested more than MAX_JSON_DEPTH deep (strings skipped)."""
    depth = 0
    for m in _BRACKET.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise DeccError(
                    f"schema nested too deep: more than {MAX_JSON_DEPTH} levels", span_at(m.start())
                )
        elif c in "]}":
            depth -= 1
