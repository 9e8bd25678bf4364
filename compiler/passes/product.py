"""Optimization pass: a conjunction's parts become one product automaton, built ahead of time.

Without it the runtime intersects the parts lazily (grammars/tokens/lazy_product.py: each token checked against
every part, and the tuple it leads to searched for a way to accept), which allows exactly the same tokens
at a higher cost per step. The product keeps its dead tuples; the `prune` pass removes them.
"""

from __future__ import annotations

from dataclasses import replace

from decc import grammars
from decc.compiler import ir
from decc.errors import DeccError
from decc.grammars.automata.automata import product as product_dfa
from decc.grammars.tokens.lazy_product import Conjunction


def product(module: ir.Module) -> ir.Module:
    return replace(module, body=ir.map_ops(module.body, _rewrite))


def _rewrite(op: ir.Op) -> ir.Op:
    if not isinstance(op, ir.Generate) or not isinstance(op.constraint, ir.All):
        return op
    c = op.constraint
    if not isinstance(c.compiled, Conjunction):
        return op
    try:
        dfa = product_dfa(c.compiled.parts)
    except grammars.GrammarLimitError as e:
        raise DeccError(
            e.message, c.span, hints=[*e.hints, "or turn this pass off: --no-opt product"]
        ) from None
    return replace(op, constraint=replace(c, compiled=dfa, n_states=dfa.n_states))
