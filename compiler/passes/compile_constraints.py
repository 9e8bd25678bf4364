"""Pass: compile each constraint to a byte-level DFA (model-free), mapping constraint errors into the source.

The DFAs are trimmed but, for regexes, choices and lengths, not minimized, and a conjunction's parts stay
apart: the optimizer passes `product`, `prune` and `minimize` finish the job (and can each be turned off).
JSON schemas and number ranges come minimal from the schema compiler, which minimizes as it composes.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

from decc import grammars
from decc.compiler import ir
from decc.compiler.json_positions import pointer_span
from decc.errors import DeccError, DeccWarning
from decc.grammars.contextfree.cfg_grammar import Grammar as CFG
from decc.grammars.tokens.lazy_product import Conjunction

LENIENT_HINT = "json(..., lenient=true) ignores unsupported keywords with a warning"


def compile_constraints(module: ir.Module) -> ir.Module:
    body = ir.map_ops(module.body, lambda op: _compile(op) if isinstance(op, ir.Generate) else op)
    found = [w for op in ir.walk(body) if isinstance(op, ir.Generate) for w in _ignored(op.constraint)]
    return replace(module, body=body, warnings=module.warnings + tuple(found))


IGNORED_HINT = "outputs need not satisfy this keyword: check them after generation"
ANNOTATION_HINT = "no validator asserts a format it does not know: name a known one or add a 'pattern'"


def _ignored(c: ir.Constraint | None) -> list[DeccWarning]:
    """One positioned warning per keyword that `lenient=true` ignored, or that is an annotation (a format
    no draft defines: any string), its caret on the keyword."""
    parts = c.parts if isinstance(c, ir.All) else (c,)
    out = []
    for p in parts:
        if not isinstance(p, ir.JsonSchema) or not (p.lenient or '"format"' in p.schema):
            continue
        for i in grammars.ignored_keywords(p.schema, whitespace=p.whitespace, lenient=p.lenient):
            span, notes = pointer_span(p, i.pointer)
            message = i.message if i.annotation else f"{i.message}; ignored (lenient=true)"
            hint = ANNOTATION_HINT if i.annotation else IGNORED_HINT
            where = (f"at JSON pointer '{i.pointer or '/'}'", *notes)
            out.append(DeccWarning(message, span, notes=where, hints=(hint,)))
    return sorted(out, key=lambda w: (w.span.path, w.span.start) if w.span else ("", 0))


def _compile(gen: ir.Generate) -> ir.Generate:
    c = gen.constraint
    if c is None or c.compiled is not None:
        return gen
    return replace(gen, constraint=_constraint(c))


def _constraint(c: ir.Constraint) -> ir.Constraint:
    if isinstance(c, ir.Grammar):
        return _grammar(c)
    if isinstance(c, ir.All):
        return _all(c)
    dfa = _dfa(c)
    if isinstance(dfa, CFG):  # a recursive or large JSON schema: a grammar, run by the lazy CFG engine
        return replace(c, compiled=dfa, n_states=None)
    if dfa.n_states == 0:
        raise DeccError(
            f"this {_what(c)} matches nothing",
            c.span,
            hints=["no output could ever satisfy it: the step could never produce a value"],
        )
    return replace(c, compiled=dfa, n_states=dfa.n_states)


def _what(c: ir.Constraint) -> str:
    return {
        ir.Regex: "regex",
        ir.JsonSchema: "JSON schema",
        ir.Choice: "choice",
        ir.Range: "range",
        ir.Length: "length",
        ir.All: "conjunction",
    }.get(type(c), "constraint")


def _dfa(c: ir.Constraint) -> grammars.ByteDFA | CFG:
    """The byte DFA of a regular constraint (a grammar for a recursive JSON schema), with constraint errors
    mapped into the source."""
    try:
        if isinstance(c, ir.Regex):
            return grammars.compile_regex(c.pattern, minimal=False)
        if isinstance(c, ir.JsonSchema):
            with warnings.catch_warnings():  # ignored keywords: positioned warnings (`_ignored`) instead
                warnings.simplefilter("ignore", grammars.IgnoredKeyword)
                return grammars.compile_json_schema(
                    c.schema, lenient=c.lenient, whitespace=c.whitespace, engine=c.engine
                )
        if isinstance(c, ir.Range):
            return grammars.compile_json_schema(c.schema)
        if isinstance(c, ir.Choice):
            return grammars.choice_dfa(c.options, minimal=False)
        if isinstance(c, ir.Length):
            return grammars.length_dfa(c.lo, c.hi, minimal=False)
    except grammars.RegexError as e:
        span = c.span.within(c.offsets, e.offset, e.end) if isinstance(c, ir.Regex) else c.span
        raise DeccError(f"invalid regex: {e.message}", span, hints=e.hints) from None
    except grammars.UnsupportedSchema as e:
        span, notes = pointer_span(c, e.pointer) if isinstance(c, ir.JsonSchema) else (c.span, [])
        raise DeccError(
            f"unsupported JSON schema: {e.message}", span, notes=notes, hints=[LENIENT_HINT]
        ) from None
    except grammars.InvalidSchema as e:
        span, notes = pointer_span(c, e.pointer) if isinstance(c, ir.JsonSchema) else (c.span, [])
        raise DeccError(
            e.message if e.message.startswith("invalid JSON schema") else f"invalid JSON schema: {e.message}",
            span,
            notes=notes,
            hints=["schemas are checked against the JSON Schema meta-schema (draft 2020-12) before use"],
        ) from None
    except grammars.GrammarLimitError as e:
        raise DeccError(e.message, c.span, hints=e.hints) from None
    raise DeccError(f"a {_what(c)} cannot be part of a conjunction", c.span)


def _all(c: ir.All) -> ir.All:
    """Each part compiled, kept apart (a `Conjunction`: the `product` pass combines them); a grammar cannot
    join (yet). Length parts merge into one character bound; a bound long enough to be counted joins as
    a counted segment around the product at once (combine.conjunction), as a counter cannot be split."""
    parts = []
    for p in c.parts:
        if isinstance(p, ir.Grammar):
            raise DeccError(
                "a grammar cannot be combined with other constraints",
                p.span,
                hints=["write the other conditions into the grammar itself"],
            )
        part = _constraint(p)
        if isinstance(part.compiled, CFG):
            raise DeccError(
                "a recursive JSON schema cannot be combined with other constraints",
                p.span,
                hints=["its recursive $ref makes it a grammar; write the other conditions into the schema"],
            )
        parts.append(part)
    lengths = [p for p in parts if isinstance(p, ir.Length)]
    regular = [p.compiled for p in parts if not isinstance(p, ir.Length)]
    bound = None
    if lengths:
        lo = max(p.lo for p in lengths)
        his = [p.hi for p in lengths if p.hi is not None]
        bound = (lo, min(his) if his else None)
    compiled: grammars.ByteDFA | Conjunction
    try:
        if (bound is not None and grammars.is_counted(*bound)) or any(d.has_counters for d in regular):
            compiled = grammars.conjunction(regular, bound)
            empty = compiled.n_states == 0
        else:
            if bound is not None:
                regular.append(grammars.length_dfa(*bound, minimal=False))
            compiled = Conjunction(tuple(regular))
            empty = any(d.n_states == 0 for d in regular) or not compiled.is_live(compiled.start)
    except grammars.GrammarLimitError as e:
        raise DeccError(e.message, c.span, hints=e.hints) from None
    if empty:
        raise DeccError(
            "this conjunction matches nothing: no text satisfies all its parts at once",
            c.span,
            notes=[f"part: {p.span}" for p in parts],
            hints=["each part alone matches some text; drop or loosen the part that excludes the others"],
        )
    n_states = compiled.n_states if isinstance(compiled, grammars.ByteDFA) else None
    return replace(c, parts=tuple(parts), compiled=compiled, n_states=n_states)


def _grammar(c: ir.Grammar) -> ir.Grammar:
    """Check a grammar model-free (its rules and terminals); the token-level engine is built per vocabulary."""
    from decc.grammars.contextfree.cfg_grammar import parse_grammar

    try:
        parsed = parse_grammar(c.text, c.start, c.origin)
    except grammars.GrammarError as e:
        # Errors inside a grammar file point into that file; for built-ins, at the call in the program.
        in_file = e.span is not None and not c.origin.startswith("builtin:")
        notes = [f"the grammar file is named at {c.span}"] if in_file else []
        raise DeccError(
            f"invalid grammar: {e.message}", e.span if in_file else c.span, notes=notes, hints=e.hints
        ) from None
    return replace(c, compiled=parsed, n_states=len(parsed.rules))
