"""Optimization pass: dead-state pruning. A state that cannot reach acceptance (a product's tuple whose
parts can never all accept) or that nothing reaches is dropped from its DFA.

Without it the runtime cuts the edges into dead states when it lifts the DFA to tokens (automata.cut_dead)
and still builds a token-automaton row for each of them: the same tokens are allowed, at a higher cost.
"""

from __future__ import annotations

from dataclasses import replace

from decc.compiler import ir
from decc.grammars import ByteDFA
from decc.grammars.automata.automata import trim


def prune(module: ir.Module) -> ir.Module:
    return replace(module, body=ir.map_ops(module.body, _rewrite))


def _rewrite(op: ir.Op) -> ir.Op:
    if not isinstance(op, ir.Generate) or op.constraint is None:
        return op
    c = op.constraint
    if not isinstance(c.compiled, ByteDFA) or c.compiled.trimmed:
        return op
    dfa = trim(c.compiled)
    return replace(op, constraint=replace(c, compiled=dfa, n_states=dfa.n_states))
