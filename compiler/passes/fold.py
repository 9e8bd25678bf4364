"""Optimization pass: constant folding and dead-step elimination. Outputs are unchanged by construction:

- text: empty literals go, neighbouring literals of one `emit` join, and consecutive `emit`s join into one
  (the context gets the same characters; the plan tokenizes an emit run together either way);
- branches: a case whose test holds whatever the model writes runs whenever it is reached, so it becomes
  the branch's `else` and the cases and `else` after it, which can never run, are dropped; a branch left
  with no case is replaced by its `else` body; one with nothing in any body disappears.

"Holds whatever the model writes" is decided as `check_branches` decides "never runs": a `!=` / `not in`
test holds always when none of its values is a viable prefix of the variable's constraint (even a value
cut short by max_tokens or a stop is a viable prefix). Grammars and unconstrained values are left alone.
"""

from __future__ import annotations

from dataclasses import replace

from decc.compiler import ir
from decc.grammars.tokens.dfa_queries import is_viable_prefix, language


def fold(module: ir.Module) -> ir.Module:
    gens = {op.name: op for op in ir.walk(module.body) if isinstance(op, ir.Generate)}
    return replace(module, body=_body(module.body, gens))


def _body(body: tuple[ir.Op, ...], gens: dict[str, ir.Generate]) -> tuple[ir.Op, ...]:
    out: list[ir.Op] = []
    for op in body:
        for o in _branch(op, gens) if isinstance(op, ir.Branch) else (op,):
            if not isinstance(o, ir.Emit):
                out.append(o)
                continue
            parts = _join(o.parts)
            if not parts:
                continue
            if out and isinstance(out[-1], ir.Emit):
                out[-1] = replace(out[-1], parts=_join(out[-1].parts + parts))
            else:
                out.append(replace(o, parts=parts))
    return tuple(out)


def _join(parts: tuple[ir.Lit | ir.VarRef, ...]) -> tuple[ir.Lit | ir.VarRef, ...]:
    out: list[ir.Lit | ir.VarRef] = []
    for p in parts:
        if isinstance(p, ir.Lit):
            if not p.text:
                continue
            if out and isinstance(out[-1], ir.Lit):
                out[-1] = replace(out[-1], text=out[-1].text + p.text)
                continue
        out.append(p)
    return tuple(out)


def _branch(op: ir.Branch, gens: dict[str, ir.Generate]) -> tuple[ir.Op, ...]:
    cases: list[ir.Case] = []
    otherwise = op.otherwise
    for case in op.cases:
        if _always(case.test, gens):
            otherwise = case.body
            break
        cases.append(replace(case, body=_body(case.body, gens)))
    otherwise = _body(otherwise, gens) if otherwise is not None else None
    if not cases:
        return otherwise or ()
    if not any(c.body for c in cases) and not otherwise:
        return ()
    return (replace(op, cases=tuple(cases), otherwise=otherwise),)


def _always(test: ir.Test, gens: dict[str, ir.Generate]) -> bool:
    if test.op not in ("!=", "not in") or test.var.kind != "gen":
        return False
    gen = gens.get(test.var.name)
    dfa = language(gen.constraint.compiled) if gen is not None and gen.constraint is not None else None
    if dfa is None:
        return False
    return not any(is_viable_prefix(dfa, v) for v in test.values)
