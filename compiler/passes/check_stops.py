"""Pass (a check; the module comes back unchanged but for its warnings): a stop string that no output of
the step's constraint can contain is dead weight (harmless: a warning), and one that every complete output
contains cuts every output short of validity (an error). Both are decided on the constraint's byte DFA (grammars are not
checked)."""

from __future__ import annotations

import json
from dataclasses import replace

from decc import grammars
from decc.compiler import ir
from decc.errors import DeccError, DeccWarning, Span
from decc.grammars.tokens.dfa_queries import all_contain, can_contain, language


def check_stops(module: ir.Module) -> ir.Module:
    found: list[DeccWarning] = []
    for op in ir.walk(module.body):
        if isinstance(op, ir.Generate) and op.stop and op.constraint is not None:
            dfa = language(op.constraint.compiled)
            if dfa is not None:
                for i, stop in enumerate(op.stop):
                    found += _check(op, dfa, stop, op.stop_spans[i] if i < len(op.stop_spans) else op.span)
    return replace(module, warnings=module.warnings + tuple(found)) if found else module


def _check(op: ir.Generate, dfa: grammars.ByteDFA, stop: str, span: Span) -> list[DeccWarning]:
    assert op.constraint is not None
    shown = json.dumps(stop, ensure_ascii=False)
    where = [f"the constraint of '{op.name}' is at {op.constraint.span}"]
    if not can_contain(dfa, stop):
        return [
            DeccWarning(
                f"stop string {shown} can never occur: no output of '{op.name}' contains it",
                span,
                notes=tuple(where),
                hints=("remove it: the constraint already decides where the value ends",),
            )
        ]
    if all_contain(dfa, stop):
        raise DeccError(
            f"stop string {shown} would cut every output of '{op.name}': each valid output contains it",
            span,
            notes=where,
            hints=["remove it, or change the constraint so the value ends before it"],
        )
    return []
