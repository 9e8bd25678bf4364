"""Pass (a check; the module comes back unchanged): every `if`/`elif`/`else` branch must be able to run.

A case is unreachable when the values its test accepts are values the variable cannot take, or were all
taken by earlier cases; an `else` is unreachable when the earlier cases leave no value. A generated value
may be cut short (max_tokens, a stop), so "can take" means "is a viable prefix of the constraint": a
branch reported here can never run, whatever the model does.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from decc.compiler import ir
from decc.errors import DeccError, did_you_mean
from decc.grammars.tokens.dfa_queries import is_viable_prefix, language


def check_branches(module: ir.Module) -> ir.Module:
    gens = {op.name: op for op in ir.walk(module.body) if isinstance(op, ir.Generate)}
    for op in ir.walk(module.body):
        if isinstance(op, ir.Branch):
            _branch(op, gens)
    return module


def _branch(op: ir.Branch, gens: dict[str, ir.Generate]) -> None:
    # Per tested variable: the values earlier cases took, and None (any other value may still arrive) or
    # the finite set of values still left.
    taken: dict[str, set[str]] = {}
    left: dict[str, set[str] | None] = {}
    for case in op.cases:
        t = case.test
        name = t.var.name
        possible = _possible(gens.get(name) if t.var.kind == "gen" else None)
        still, took = left.get(name), taken.setdefault(name, set())
        values = {v for v in t.values if possible(v) and v not in took and (still is None or v in still)}
        if t.op in ("==", "in"):
            if not values:
                raise DeccError("this branch can never run", t.span, **_why(t, gens, possible))
            left[name] = None if still is None else still - values
            took |= values
        else:
            if still is not None and not (still - set(t.values)):
                raise DeccError("this branch can never run", t.span, **_why(t, gens, possible))
            left[name] = values  # what this case lets through: only its own values
    covered = next((n for n, v in left.items() if v == set()), None)  # a variable no value of escapes
    if op.otherwise is not None and covered is not None:
        raise DeccError(
            "this 'else' can never run: the cases above take every value",
            op.else_span or op.span,
            notes=[f"'{covered}' reaches an earlier case whatever its value"],
            hints=["remove the 'else', or turn the last case into it"],
        )


def _possible(gen: ir.Generate | None) -> Callable[[str], bool]:
    dfa = language(gen.constraint.compiled) if gen is not None and gen.constraint is not None else None
    if dfa is None:
        return lambda v: True
    return lambda v: is_viable_prefix(dfa, v)  # type: ignore[arg-type]


def _why(t: ir.Test, gens: dict[str, ir.Generate], possible: Callable[[str], bool]) -> dict[str, list[str]]:
    name = t.var.name
    if t.op in ("==", "in") and not any(possible(v) for v in t.values):
        gen = gens[name]
        assert gen.constraint is not None
        shown = " or ".join(json.dumps(v, ensure_ascii=False) for v in t.values)
        hints = []
        if isinstance(gen.constraint, ir.Choice):
            hints = did_you_mean(t.values[0], gen.constraint.options)
        return {
            "notes": [f"'{name}' can never be {shown}: its constraint is at {gen.constraint.span}"],
            "hints": hints or ["test a value the constraint allows, or remove this branch"],
        }
    return {
        "notes": [f"earlier cases already take every value of '{name}' this one could match"],
        "hints": ["remove this case: the cases above it catch these values first"],
    }
