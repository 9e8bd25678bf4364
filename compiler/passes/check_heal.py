"""Pass (a check; the module comes back unchanged but for its warnings): `heal: true` written on a step
that is never healed (a search policy other than greedy / sample, or `mode: aligned`) runs without
healing; say so at the option rather than let it do nothing silently."""

from __future__ import annotations

from dataclasses import replace

from decc.compiler import ir
from decc.compiler.search import policy_name
from decc.errors import DeccWarning


def check_heal(module: ir.Module) -> ir.Module:
    found: list[DeccWarning] = []
    for op in ir.walk(module.body):
        if not (isinstance(op, ir.Generate) and op.heal and op.heal_span is not None):
            continue
        if not isinstance(op.search, ir.Sampling):
            why = f"{policy_name(op.search)}(...)"
        elif op.aligned:
            why = "mode: aligned"
        else:
            continue
        found.append(
            DeccWarning(
                f"heal: true has no effect with {why}: token healing applies to greedy and sample(...)",
                op.heal_span,
                hints=("remove it; the step runs without healing",),
            )
        )
    return replace(module, warnings=module.warnings + tuple(found)) if found else module
