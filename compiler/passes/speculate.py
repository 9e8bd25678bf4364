"""Optimization pass: turn on model-free drafts (runtime/drafts.py) for the steps that can use them.

A greedy or sampled step checks drafted tokens in the forward pass of its last drawn token and keeps one
only when the ordinary draw picks it, so the value is the same tokens either way; what changes is how many
forward passes it takes. Under a constraint the drafts are the tokens it forces, then its forced text
(a key's quotes and colon), then prompt lookup, then a suffix match over the step's values in earlier runs of
the program; without one, the last two. Search policies (beams,
particles) and `mode: aligned` (which learns from every single draw) are left alone.
"""

from __future__ import annotations

from dataclasses import replace

from decc.compiler import ir


def speculate(module: ir.Module) -> ir.Module:
    def rewrite(op: ir.Op) -> ir.Op:
        if not isinstance(op, ir.Generate) or not isinstance(op.search, ir.Sampling) or op.aligned:
            return op
        sources = (
            ("forced", "text", "lookup", "suffix") if op.constraint is not None else ("lookup", "suffix")
        )
        return replace(op, draft=sources)

    return replace(module, body=ir.map_ops(module.body, rewrite))
