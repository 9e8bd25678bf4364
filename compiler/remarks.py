"""What each optimization pass did, in a line or two (`decc compile --emit opt` prints them as comments).

Computed by comparing the module before and after the pass, so a pass cannot claim work it did not do.
"""

from __future__ import annotations

from decc import grammars
from decc.compiler import ir
from decc.grammars.tokens.lazy_product import Conjunction


def remarks(name: str, before: ir.Module, after: ir.Module) -> list[str]:
    out: list[str] = []
    old = {g.name: g for g in before.generates()}
    for g in after.generates():
        was = old.get(g.name)
        if was is None:
            continue
        if isinstance(g.constraint, ir.JsonSchema) and g.constraint.engine_reason:
            if not isinstance(was.constraint, ir.JsonSchema) or not was.constraint.engine_reason:
                c = g.constraint
                name_ = "grammar (lazy)" if c.engine == "grammar" else "token automaton"
                out.append(f"{name}: '{g.name}': engine: {name_} because {c.engine_reason}")
        a, b = _automaton(was.constraint), _automaton(g.constraint)
        if a != b:
            out.append(f"{name}: '{g.name}': {a} -> {b}")
        if was.draft != g.draft:
            out.append(f"{name}: '{g.name}': drafts from {', '.join(g.draft) or 'nothing'}")
    n_before, n_after = _count(before.body), _count(after.body)
    if n_before != n_after:
        out.append(f"{name}: {n_before} ops -> {n_after} ops")
    return out or [f"{name}: nothing to do"]


def _automaton(c: ir.Constraint | None) -> str:
    dfa = None if c is None else c.compiled
    if isinstance(dfa, Conjunction):
        return (
            f"{len(dfa.parts)} automata kept apart ({' x '.join(str(p.n_states) for p in dfa.parts)} states)"
        )
    if isinstance(dfa, grammars.ByteDFA):
        dead = "" if dfa.trimmed else ", not yet pruned"
        return f"{dfa.n_states} states{dead}"
    return ""


def _count(body: tuple[ir.Op, ...]) -> int:
    return sum(1 for _ in ir.walk(body))
