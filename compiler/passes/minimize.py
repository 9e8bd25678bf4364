"""Optimization pass: automaton minimization. Equivalent states of each constraint's DFA (those no
continuation tells apart) merge, and so do those of a conjunction's parts while they are kept apart.

The language is the same, so the same tokens are allowed; the runtime lifts fewer states to the
vocabulary (each state is a bitmask row and a walk of the vocabulary trie when the automaton is built).
"""

from __future__ import annotations

from dataclasses import replace

from decc.compiler import ir
from decc.errors import DeccError
from decc.grammars import ByteDFA, GrammarLimitError
from decc.grammars.automata.automata import minimize as minimal_dfa
from decc.grammars.limits import DEFAULT_LIMITS, deadline
from decc.grammars.tokens.lazy_product import Conjunction


def minimize(module: ir.Module) -> ir.Module:
    return replace(module, body=ir.map_ops(module.body, _rewrite))


def _rewrite(op: ir.Op) -> ir.Op:
    if not isinstance(op, ir.Generate) or op.constraint is None:
        return op
    with deadline(DEFAULT_LIMITS.max_seconds):  # minimizing is quadratic in a long chain's length
        try:
            return replace(op, constraint=_constraint(op.constraint))
        except GrammarLimitError as err:
            raise DeccError(err.message, op.constraint.span, hints=err.hints) from None


def _constraint(c: ir.Constraint) -> ir.Constraint:
    if isinstance(c, ir.All):  # the parts too: what --emit shows of them, and the lazy runtime's automata
        c = replace(c, parts=tuple(_constraint(p) for p in c.parts))
        if isinstance(c.compiled, Conjunction):
            return replace(c, compiled=Conjunction(tuple(minimal_dfa(p) for p in c.compiled.parts)))
    if not isinstance(c.compiled, ByteDFA) or (c.compiled.minimal and c.compiled.trimmed):
        return c
    dfa = minimal_dfa(c.compiled)
    return replace(c, compiled=dfa, n_states=dfa.n_states)
