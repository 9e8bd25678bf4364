"""Typed reading of AST expressions: the shared helpers of the option readers (constraints.py, search.py).

Each helper either returns a plain value or raises a positioned `DeccError` naming what was expected.
"""

from __future__ import annotations

import re
from pathlib import Path

from decc.dsl import ast
from decc.errors import DeccError, unknown

DEFAULT_MAX_TOKENS = 128
GEN_OPTIONS = (
    "where",
    "max_tokens",
    "stop",
    "stop_regex",
    "stop_entropy",
    "eos",
    "heal",
    "search",
    "mode",
    "examples",
    "counterexamples",
)


def folder_of(node: ast.StrLit | ast.Program, default: Path) -> Path:
    """The folder of the file `node` was written in (`default` for a program given as a string): files named
    in an imported definition are found next to the file that defines it, not next to the program."""
    src = node.span.source
    return Path(src.path).parent if src is not None and src.path != "<string>" else default


def describe(e: ast.Expr) -> str:
    return {
        ast.StrLit: "a string",
        ast.NumLit: "a number",
        ast.BoolLit: "a boolean",
        ast.ListLit: "a list",
        ast.NameRef: "a name",
        ast.Call: "a call",
        ast.And: "a conjunction",
    }[type(e)]


def as_int(e: ast.Expr, what: str, minimum: int | None = None) -> int:
    if not isinstance(e, ast.NumLit) or not isinstance(e.value, int):
        raise DeccError(
            f"{what} must be an integer, not {describe(e)}", e.span, hints=["write a whole number, e.g. 16"]
        )
    if minimum is not None and e.value < minimum:
        raise DeccError(
            f"{what} must be at least {minimum}, not {e.value}", e.span, hints=[f"use {minimum} or more"]
        )
    return e.value


def as_float(e: ast.Expr, what: str) -> float:
    return float(as_number(e, what))


def as_number(e: ast.Expr, what: str) -> int | float:
    if not isinstance(e, ast.NumLit):
        raise DeccError(
            f"{what} must be a number, not {describe(e)}", e.span, hints=["write a number, e.g. 0.5"]
        )
    return e.value


def as_bool(e: ast.Expr, what: str) -> bool:
    if not isinstance(e, ast.BoolLit):
        raise DeccError(
            f"{what} must be true or false, not {describe(e)}", e.span, hints=["write true or false"]
        )
    return e.value


def as_str(e: ast.Expr, what: str) -> ast.StrLit:
    if not isinstance(e, ast.StrLit):
        raise DeccError(
            f"{what} must be a string, not {describe(e)}", e.span, hints=['write it in double quotes: "..."']
        )
    return e


def as_python_regex(e: ast.Expr, what: str, kind: str) -> tuple[ast.StrLit, re.Pattern[str]]:
    """A string holding a Python `re` pattern, compiled; an error ("invalid KIND: ...") points inside it."""
    lit = as_str(e, what)
    try:
        return lit, re.compile(lit.value)
    except re.error as err:
        at = lit.span_of(err.pos, err.pos + 1) if err.pos is not None else lit.span
        raise DeccError(f"invalid {kind}: {err.msg}", at) from None


def as_choice(e: ast.Expr, what: str, allowed: tuple[str, ...]) -> str:
    lit = as_str(e, what)
    if lit.value not in allowed:
        raise unknown(what, lit.value, lit.span, allowed)
    return lit.value


def kwargs_of(e: ast.Call, allowed: tuple[str, ...], func: str) -> dict[str, ast.KwArg]:
    out: dict[str, ast.KwArg] = {}
    for kw in e.kwargs:
        if kw.name.value not in allowed:
            raise unknown("argument", kw.name.value, kw.name.span, allowed, where=func)
        if kw.name.value in out:
            raise DeccError(f"argument '{kw.name.value}' given twice", kw.name.span)
        out[kw.name.value] = kw
    return out


def keywords_only(e: ast.Call, allowed: tuple[str, ...], example: str) -> dict[str, ast.Expr]:
    """The keyword arguments of a call that takes no positional ones, by name."""
    if e.args:
        raise DeccError(f"{e.func.value}(...) takes keyword arguments only, e.g. {example}", e.args[0].span)
    return {k: kw.value for k, kw in kwargs_of(e, allowed, e.func.value).items()}


def string_list(e: ast.Expr, what: str) -> tuple[str, ...]:
    items = e.items if isinstance(e, ast.ListLit) else (e,)
    return tuple(as_str(item, what).value for item in items)


def stop_strings(e: ast.Expr) -> tuple[ast.StrLit, ...]:
    items = e.items if isinstance(e, ast.ListLit) else (e,)
    out = []
    for item in items:
        s = as_str(item, "a stop string")
        if not s.value:
            raise DeccError("a stop string cannot be empty", item.span)
        out.append(s)
    return tuple(out)
