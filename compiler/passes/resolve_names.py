"""Pass: every `{name}` and every tested variable must name an input or an earlier generation; names are
declared once. A variable generated inside an `if` branch exists only inside that branch."""

from __future__ import annotations

from dataclasses import replace

from decc.compiler import ir
from decc.errors import DeccError, did_you_mean

Scope = dict[str, ir.InputDef | ir.Generate]


def resolve_names(module: ir.Module) -> ir.Module:
    declared: Scope = {}
    for inp in module.inputs:
        _declare(declared, inp.name, inp)
    everywhere: Scope = {}
    for op in ir.walk(module.body):
        if isinstance(op, ir.Generate):
            _declare(everywhere, op.name, op)
    return replace(module, body=_body(module.body, declared, everywhere))


def _body(body: tuple[ir.Op, ...], declared: Scope, everywhere: Scope) -> tuple[ir.Op, ...]:
    out: list[ir.Op] = []
    for op in body:
        if isinstance(op, ir.Emit):
            op = replace(op, parts=tuple(_resolve(p, declared, everywhere) for p in op.parts))
        elif isinstance(op, ir.Generate):
            _declare(declared, op.name, op)
        elif isinstance(op, ir.Branch):
            cases = tuple(
                replace(
                    c,
                    test=replace(c.test, var=_resolve(c.test.var, declared, everywhere)),
                    body=_body(c.body, dict(declared), everywhere),
                )
                for c in op.cases
            )
            otherwise = None if op.otherwise is None else _body(op.otherwise, dict(declared), everywhere)
            op = replace(op, cases=cases, otherwise=otherwise)
        out.append(op)
    return tuple(out)


def _declare(declared: Scope, name: str, node: ir.InputDef | ir.Generate) -> None:
    if name in declared:
        first = declared[name]
        what = "input" if isinstance(first, ir.InputDef) else "generated variable"
        raise DeccError(
            f"'{name}' is already defined",
            node.span,
            notes=[f"{what} '{name}' defined at {first.span}"],
            hints=["every input and generated variable needs its own name"],
        )
    declared[name] = node


def _resolve(part: ir.Lit | ir.VarRef, declared: Scope, everywhere: Scope) -> ir.Lit | ir.VarRef:
    if isinstance(part, ir.Lit):
        return part
    node = declared.get(part.name)
    if node is None:
        gen = everywhere.get(part.name)
        if gen is not None and gen.span.start > part.span.start:
            raise DeccError(
                f"'{part.name}' is used before it is generated",
                part.span,
                notes=[f"'{part.name}' is generated at {gen.span}"],
                hints=["a step sees only the values generated above it"],
            )
        if gen is not None:
            raise DeccError(
                f"'{part.name}' may not exist here: it is generated inside an 'if' branch",
                part.span,
                notes=[f"'{part.name}' is generated at {gen.span}"],
                hints=["use it inside that branch, or generate it before the 'if'"],
            )
        raise DeccError(
            f"unknown variable '{part.name}'",
            part.span,
            hints=did_you_mean(part.name, declared)
            or [f"declare it with 'input {part.name}: str', or generate it earlier"],
        )
    return replace(part, kind="input" if isinstance(node, ir.InputDef) else "gen")
