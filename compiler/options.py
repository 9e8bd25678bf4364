"""Typed reading of generation options (`where`, `max_tokens`, `stop`, `search`) from AST expressions."""

from __future__ import annotations

from decc.compiler import ir
from decc.dsl import ast
from decc.errors import DeccError, unknown

DEFAULT_MAX_TOKENS = 128
GEN_OPTIONS = ("where", "max_tokens", "stop", "search")
CONSTRAINTS = ("regex",)
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


def constraint(e: ast.Expr) -> ir.Constraint:
    if not isinstance(e, ast.Call):
        raise DeccError(
            f"'where' takes a constraint such as regex(r\"...\"), not {describe(e)}",
            e.span,
        )
    name = e.func.value
    if name not in CONSTRAINTS:
        raise unknown("constraint", name, e.func.span, CONSTRAINTS)
    if e.kwargs or len(e.args) != 1:
        raise DeccError("regex(...) takes exactly one pattern string", e.span)
    pattern = as_str(e.args[0], "a regex pattern")
    return ir.Regex(pattern.value, pattern.span, offsets=pattern.offsets)


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
        raise DeccError(f"{name}(...) takes keyword arguments only, e.g. sample(temperature=0.7)", args[0].span)
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
