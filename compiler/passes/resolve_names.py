"""Pass: every `{name}` must name an input or an earlier generation; names are declared once."""

from __future__ import annotations

from dataclasses import replace

from decc.compiler import ir
from decc.errors import DeccError, did_you_mean


def resolve_names(module: ir.Module) -> ir.Module:
    declared: dict[str, ir.InputDef | ir.Generate] = {}
    for inp in module.inputs:
        _declare(declared, inp.name, inp)
    later = {op.name: op for op in module.generates()}
    body: list[ir.Op] = []
    for op in module.body:
        if isinstance(op, ir.Emit):
            op = replace(op, parts=tuple(_resolve(p, declared, later) for p in op.parts))
        elif isinstance(op, ir.Generate):
            _declare(declared, op.name, op)
        body.append(op)
    return replace(module, body=tuple(body))


def _declare(
    declared: dict[str, ir.InputDef | ir.Generate], name: str, node: ir.InputDef | ir.Generate
) -> None:
    if name in declared:
        first = declared[name]
        what = "input" if isinstance(first, ir.InputDef) else "generated variable"
        raise DeccError(
            f"'{name}' is already defined", node.span, notes=[f"{what} '{name}' defined at {first.span}"]
        )
    declared[name] = node


def _resolve(
    part: ir.Lit | ir.VarRef, declared: dict[str, ir.InputDef | ir.Generate], later: dict[str, ir.Generate]
) -> ir.Lit | ir.VarRef:
    if isinstance(part, ir.Lit):
        return part
    node = declared.get(part.name)
    if node is None:
        if part.name in later:
            raise DeccError(
                f"'{part.name}' is used before it is generated",
                part.span,
                notes=[f"'{part.name}' is generated at {later[part.name].span}"],
            )
        raise DeccError(
            f"unknown variable '{part.name}'",
            part.span,
            hints=did_you_mean(part.name, declared)
            or [f"declare it with 'input {part.name}: str', or generate it earlier"],
        )
    return replace(part, kind="input" if isinstance(node, ir.InputDef) else "gen")
