"""Pass: compile each constraint to a byte-level DFA (model-free), mapping constraint errors into the source."""

from __future__ import annotations

from dataclasses import replace

from decc import grammars
from decc.compiler import ir
from decc.errors import DeccError

LENIENT_HINT = "json(..., lenient=true) ignores unsupported keywords with a warning"


def compile_constraints(module: ir.Module) -> ir.Module:
    body = tuple(_compile(op) if isinstance(op, ir.Generate) else op for op in module.body)
    return replace(module, body=body)


def _compile(gen: ir.Generate) -> ir.Generate:
    c = gen.constraint
    if c is None or c.compiled is not None:
        return gen
    if isinstance(c, ir.Grammar):
        return replace(gen, constraint=_grammar(c))
    try:
        if isinstance(c, ir.Regex):
            dfa = grammars.compile_regex(c.pattern)
        else:
            dfa = grammars.compile_json_schema(c.schema, lenient=c.lenient, whitespace=c.whitespace)
    except grammars.RegexError as e:
        span = c.span.within(c.offsets, e.offset, e.end) if isinstance(c, ir.Regex) else c.span
        raise DeccError(f"invalid regex: {e.message}", span, hints=e.hints) from None
    except grammars.UnsupportedSchema as e:
        raise DeccError(f"unsupported JSON schema: {e.message}", c.span, hints=[LENIENT_HINT]) from None
    except grammars.InvalidSchema as e:
        raise DeccError(f"invalid JSON schema: {e.message}", c.span) from None
    except grammars.GrammarLimitError as e:
        raise DeccError(e.message, c.span, hints=e.hints) from None
    if dfa.n_states == 0:
        what = "regex" if isinstance(c, ir.Regex) else "JSON schema"
        raise DeccError(f"this {what} matches nothing", c.span)
    return replace(gen, constraint=replace(c, compiled=dfa, n_states=dfa.n_states))


def _grammar(c: ir.Grammar) -> ir.Grammar:
    """Check a grammar model-free (its rules and terminals); the token-level engine is built per vocabulary."""
    from decc.grammars.cfg_grammar import parse_grammar

    try:
        parsed = parse_grammar(c.text, c.start, c.origin)
    except grammars.GrammarError as e:
        # Errors inside a grammar file point into that file; for built-ins, at the call in the program.
        span = e.span if e.span is not None and not c.origin.startswith("builtin:") else c.span
        raise DeccError(f"invalid grammar: {e.message}", span, hints=e.hints) from None
    return replace(c, compiled=parsed, n_states=len(parsed.rules))
