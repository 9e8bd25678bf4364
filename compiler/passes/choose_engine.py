"""Pass: pick the engine of each JSON-schema constraint (grammars/json/json_engine.py), before it is compiled.

A small regular schema runs as one token automaton (built eagerly; the fastest masks; larger ones too on a
step that heals its boundary, which only an automaton can); a recursive or large one on the lazy grammar engine (compiled in O(schema); masks computed as generation visits states). A schema
inside a conjunction is intersected as an automaton. `decc compile --emit opt` prints each choice and why.
A schema that fails to compile keeps "auto": compile-constraints reports the error at its keyword.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

from decc import grammars
from decc.compiler import ir
from decc.errors import DeccError
from decc.grammars.errors import GrammarLimitError

CONJUNCTION = "a conjunction's parts are intersected as automata"


def choose_engine(module: ir.Module) -> ir.Module:
    return replace(module, body=ir.map_ops(module.body, _rewrite))


def _rewrite(op: ir.Op) -> ir.Op:
    if not isinstance(op, ir.Generate) or op.constraint is None:
        return op
    c = op.constraint
    if isinstance(c, ir.JsonSchema) and c.engine == "auto":
        heals = op.heal and isinstance(op.search, ir.Sampling) and not op.aligned
        return replace(op, constraint=_choose(c, heals))
    if isinstance(c, ir.All) and any(isinstance(p, ir.JsonSchema) for p in c.parts):
        parts = tuple(
            replace(p, engine="automaton", engine_reason=CONJUNCTION) if isinstance(p, ir.JsonSchema) else p
            for p in c.parts
        )
        return replace(op, constraint=replace(c, parts=parts))
    return op


def _choose(c: ir.JsonSchema, heals: bool) -> ir.JsonSchema:
    try:
        with warnings.catch_warnings():  # ignored keywords: positioned warnings come from compile-constraints
            warnings.simplefilter("ignore", grammars.IgnoredKeyword)
            choice = grammars.json_schema_engine(
                c.schema, lenient=c.lenient, whitespace=c.whitespace, heals=heals
            )
    except (DeccError, GrammarLimitError, grammars.RegexError):
        return c
    return replace(c, engine=choice.engine, engine_reason=choice.reason)
