"""Typed reading of generation options (`where`, `max_tokens`, `stop`, `search`) from AST expressions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from decc.compiler import ir
from decc.dsl import ast
from decc.errors import DeccError, Source, Span, unknown

DEFAULT_MAX_TOKENS = 128
GEN_OPTIONS = ("where", "max_tokens", "stop", "search", "examples", "counterexamples")
CONSTRAINTS = ("regex", "json", "grammar")
GRAMMAR_ARGS = ("file", "start")
JSON_ARGS = ("file", "whitespace", "lenient")
WHITESPACE = ("compact-or-default", "any")
POLICIES = ("greedy", "sample")
SAMPLE_ARGS = ("temperature", "top_k", "top_p", "seed")


def describe(e: ast.Expr) -> str:
    return {
        ast.StrLit: "a string",
        ast.NumLit: "a number",
        ast.BoolLit: "a boolean",
        ast.ListLit: "a list",
        ast.NameRef: "a name",
        ast.Call: "a call",
    }[type(e)]


def as_int(e: ast.Expr, what: str, minimum: int | None = None) -> int:
    if not isinstance(e, ast.NumLit) or not isinstance(e.value, int):
        raise DeccError(f"{what} must be an integer, not {describe(e)}", e.span)
    if minimum is not None and e.value < minimum:
        raise DeccError(f"{what} must be at least {minimum}, not {e.value}", e.span)
    return e.value


def as_float(e: ast.Expr, what: str) -> float:
    if not isinstance(e, ast.NumLit):
        raise DeccError(f"{what} must be a number, not {describe(e)}", e.span)
    return float(e.value)


def as_str(e: ast.Expr, what: str) -> ast.StrLit:
    if not isinstance(e, ast.StrLit):
        raise DeccError(f"{what} must be a string, not {describe(e)}", e.span)
    return e


def constraint(e: ast.Expr, base_dir: Path) -> ir.Constraint:
    if not isinstance(e, ast.Call):
        raise DeccError(
            f"'where' takes a constraint such as regex(r\"...\") or json(...), not {describe(e)}",
            e.span,
        )
    name = e.func.value
    if name not in CONSTRAINTS:
        raise unknown("constraint", name, e.func.span, CONSTRAINTS)
    if name == "json":
        return json_constraint(e, base_dir)
    if name == "grammar":
        return grammar_constraint(e, base_dir)
    if e.kwargs or len(e.args) != 1:
        raise DeccError("regex(...) takes exactly one pattern string", e.span)
    pattern = as_str(e.args[0], "a regex pattern")
    return ir.Regex(pattern.value, pattern.span, offsets=pattern.offsets)


def json_constraint(e: ast.Call, base_dir: Path) -> ir.JsonSchema:
    """`json(r\"\"\"{...}\"\"\")` (inline schema) or `json(file="schema.json")`, relative to the program."""
    kwargs = _kwargs(e, JSON_ARGS, "json")
    if len(e.args) > 1 or bool(e.args) == ("file" in kwargs):
        raise DeccError('json(...) takes one schema: inline JSON text, or file="schema.json"', e.span)
    if e.args:
        lit = as_str(e.args[0], "a JSON schema")
        schema = _load_json(lit.value, lambda pos: lit.span_of(pos, pos + 1))
        origin, span = "inline", lit.span
    else:
        lit = as_str(kwargs["file"].value, "file")
        path = base_dir / lit.value
        text = _read(path, lit)
        source = Source(str(path), text)
        schema = _load_json(text, lambda pos: Span.of(source, pos, pos + 1))
        origin, span = lit.value, lit.span
    whitespace = "compact-or-default"
    if "whitespace" in kwargs:
        ws = as_str(kwargs["whitespace"].value, "whitespace")
        if ws.value not in WHITESPACE:
            raise unknown("whitespace mode", ws.value, ws.span, WHITESPACE)
        whitespace = ws.value
    lenient = False
    if "lenient" in kwargs:
        value = kwargs["lenient"].value
        if not isinstance(value, ast.BoolLit):
            raise DeccError(f"lenient must be true or false, not {describe(value)}", value.span)
        lenient = value.value
    text = json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
    return ir.JsonSchema(text, span, origin, whitespace, lenient)


def grammar_constraint(e: ast.Call, base_dir: Path) -> ir.Grammar:
    """`grammar("json")` (a built-in: json, arith, sql_select) or `grammar(file="g.lark", start="start")`."""
    from decc.grammars import BUILTIN_GRAMMARS, builtin_grammar

    kwargs = _kwargs(e, GRAMMAR_ARGS, "grammar")
    if len(e.args) > 1 or bool(e.args) == ("file" in kwargs):
        raise DeccError('grammar(...) takes one grammar: a built-in name, or file="grammar.lark"', e.span)
    if e.args:
        lit = as_str(e.args[0], "a built-in grammar name")
        if lit.value not in BUILTIN_GRAMMARS:
            raise unknown("built-in grammar", lit.value, lit.span, BUILTIN_GRAMMARS)
        text, origin = builtin_grammar(lit.value), f"builtin:{lit.value}"
    else:
        lit = as_str(kwargs["file"].value, "file")
        text, origin = _read(base_dir / lit.value, lit), str(base_dir / lit.value)
    start = as_str(kwargs["start"].value, "start").value if "start" in kwargs else "start"
    return ir.Grammar(text, lit.span, origin, start)


def _kwargs(e: ast.Call, allowed: tuple[str, ...], func: str) -> dict[str, ast.KwArg]:
    out: dict[str, ast.KwArg] = {}
    for kw in e.kwargs:
        if kw.name.value not in allowed:
            raise unknown("argument", kw.name.value, kw.name.span, allowed, where=func)
        if kw.name.value in out:
            raise DeccError(f"argument '{kw.name.value}' given twice", kw.name.span)
        out[kw.name.value] = kw
    return out


def _read(path: Path, lit: ast.StrLit) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise DeccError(f"cannot read '{lit.value}': {reason}", lit.span) from None


def _load_json(text: str, span_at: Callable[[int], Span]) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DeccError(f"invalid JSON in schema: {err.msg}", span_at(err.pos)) from None


def string_list(e: ast.Expr, what: str) -> tuple[str, ...]:
    items = e.items if isinstance(e, ast.ListLit) else (e,)
    return tuple(as_str(item, what).value for item in items)


def stop_strings(e: ast.Expr) -> tuple[str, ...]:
    items = e.items if isinstance(e, ast.ListLit) else (e,)
    out = []
    for item in items:
        s = as_str(item, "a stop string").value
        if not s:
            raise DeccError("a stop string cannot be empty", item.span)
        out.append(s)
    return tuple(out)


def search(e: ast.Expr) -> ir.Sampling:
    if isinstance(e, ast.NameRef):
        name, args, kwargs, span = e.name, (), (), e.span
    elif isinstance(e, ast.Call):
        name, args, kwargs, span = e.func.value, e.args, e.kwargs, e.func.span
    else:
        raise DeccError(f"'search' takes a policy such as greedy or sample(...), not {describe(e)}", e.span)
    if name not in POLICIES:
        raise unknown("search policy", name, span, POLICIES)
    if args:
        raise DeccError(
            f"{name}(...) takes keyword arguments only, e.g. sample(temperature=0.7)", args[0].span
        )
    if name == "greedy":
        if kwargs:
            raise DeccError("greedy takes no arguments", kwargs[0].span)
        return ir.Sampling()
    values: dict[str, object] = {}
    for kw in kwargs:
        key = kw.name.value
        if key not in SAMPLE_ARGS:
            raise unknown("argument", key, kw.name.span, SAMPLE_ARGS, where="sample")
        if key in values:
            raise DeccError(f"argument '{key}' given twice", kw.name.span)
        values[key] = _sample_arg(key, kw.value)
    temperature = float(values.get("temperature", 1.0))  # type: ignore[arg-type]
    return ir.Sampling(
        greedy=temperature == 0.0,
        temperature=temperature,
        top_k=int(values.get("top_k", 0)),  # type: ignore[call-overload]
        top_p=float(values.get("top_p", 1.0)),  # type: ignore[arg-type]
        seed=values.get("seed"),  # type: ignore[arg-type]
    )


def _sample_arg(key: str, e: ast.Expr) -> float | int:
    if key == "temperature":
        t = as_float(e, "temperature")
        if t < 0:
            raise DeccError(f"temperature must be at least 0, not {t:g}", e.span)
        return t
    if key == "top_p":
        p = as_float(e, "top_p")
        if not 0 < p <= 1:
            raise DeccError(f"top_p must be in (0, 1], not {p:g}", e.span)
        return p
    if key == "top_k":
        return as_int(e, "top_k", minimum=0)
    return as_int(e, "seed", minimum=0)
