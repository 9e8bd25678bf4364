"""Text forms of the AST and IR for `decc compile --emit` and the golden tests. Stable and line-oriented."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from functools import partial
from typing import Any

from decc import grammars
from decc.compiler import ir
from decc.errors import Span
from decc.grammars.contextfree.cfg_grammar import Grammar as CFG
from decc.grammars.tokens.lazy_product import Conjunction


def loc(span: Span) -> str:
    return f"@{span.line}:{span.col}"


def q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def print_ast(node: Any) -> str:
    """An indented tree: node kind with its position, then its fields."""
    lines: list[str] = []
    _ast(node, 0, lines, "")
    return "\n".join(lines) + "\n"


def _ast(node: Any, depth: int, lines: list[str], label: str) -> None:
    pad = "  " * depth + label
    if is_dataclass(node):
        span = getattr(node, "span", None)
        scalars = []
        children = []
        for f in fields(node):
            if f.name in ("span", "source", "offsets"):
                continue
            value = getattr(node, f.name)
            if is_dataclass(value) or (isinstance(value, tuple) and value and is_dataclass(value[0])):
                children.append((f.name, value))
            elif isinstance(value, tuple) and not value:
                continue
            elif isinstance(value, Span):
                scalars.append(f"{f.name}={loc(value)}")
            else:
                scalars.append(f"{f.name}={q(value) if isinstance(value, str) else value}")
        where = f" {loc(span)}" if isinstance(span, Span) else ""
        lines.append(f"{pad}{type(node).__name__}{where} {' '.join(scalars)}".rstrip())
        for name, value in children:
            if isinstance(value, tuple):
                for v in value:
                    _ast(v, depth + 1, lines, f"{name}: ")
            else:
                _ast(value, depth + 1, lines, f"{name}: ")
    else:
        lines.append(f"{pad}{node!r}")


def print_ir(module: ir.Module) -> str:
    engine = "" if module.engine == "decc" else f" engine={module.engine}"
    out = [f"module model={q(module.model)}{engine} {'chat' if module.chat else 'plain'}"]
    for inp in module.inputs:
        default = "" if inp.default is None else f" = {json.dumps(inp.default, ensure_ascii=False)}"
        out.append(f"  input {inp.name}: {inp.type}{default}  {loc(inp.span)}")
    _ir_body(module.body, 1, out)
    return "\n".join(out) + "\n"


def _ir_body(body: tuple[ir.Op, ...], depth: int, out: list[str]) -> None:
    for op in body:
        pad = "  " * depth
        if isinstance(op, ir.TurnStart):
            out.append(f"{pad}turn {op.role}  {loc(op.span)}")
            depth += 1
        elif isinstance(op, ir.TurnEnd):
            depth -= 1
            out.append("  " * depth + "end")
        elif isinstance(op, ir.Emit):
            out.append(f"{pad}emit {' '.join(_part(p) for p in op.parts)}  {loc(op.span)}")
        elif isinstance(op, ir.Generate):
            out.append(f"{pad}gen {op.name} {gen_attrs(op)}  {loc(op.span)}")
        elif isinstance(op, ir.Branch):
            cases = [(f"{test_text(c.test)}  {loc(c.span)}", c.body) for c in op.cases]
            branch_lines(pad, cases, op.otherwise, partial(_ir_body, depth=depth + 1, out=out), out)


def branch_lines(
    pad: str, cases: list[tuple[str, Any]], otherwise: Any, body: Callable[[Any], None], out: list[str]
) -> None:
    """`if TEST`, `elif TEST`, `else` (when `otherwise` is not None), each followed by its body, then `end`:
    the IR's branches and the plan's print alike."""
    for i, (test, b) in enumerate(cases):
        out.append(f"{pad}{'if' if i == 0 else 'elif'} {test}")
        body(b)
    if otherwise is not None:
        out.append(f"{pad}else")
        body(otherwise)
    out.append(f"{pad}end")


def test_text(t: ir.Test) -> str:
    values = q(t.values[0]) if t.op in ("==", "!=") else "[" + ", ".join(q(v) for v in t.values) + "]"
    return f"{_part(t.var)} {t.op} {values}"


def _part(p: ir.Lit | ir.VarRef) -> str:
    if isinstance(p, ir.Lit):
        return q(p.text)
    return "{" + p.name + (f":{p.kind}" if p.kind else "") + "}"


def gen_attrs(op: ir.Generate) -> str:
    attrs = [f"where={constraint_text(op.constraint)}"] if op.constraint is not None else []
    if op.min_tokens:
        attrs.append(f"min_tokens={op.min_tokens}")
    attrs.append(f"max_tokens={op.max_tokens}")
    if op.stop:
        attrs.append(f"stop=[{', '.join(q(s) for s in op.stop)}]")
    if op.stop_regex is not None:
        attrs.append(f"stop_regex={q(op.stop_regex)}")
    if op.stop_entropy is not None:
        e = op.stop_entropy
        attrs.append(f"stop_entropy={'above' if e.above else 'below'}({e.threshold:g}, steps={e.steps})")
    if not op.eos:
        attrs.append("eos=false")
    if not op.heal:
        attrs.append("heal=false")
    attrs.append(f"search={search_text(op.search)}")
    if op.aligned:
        attrs.append("mode=aligned")
    if op.draft:
        attrs.append(f"draft={'+'.join(op.draft)}")
    if op.examples:
        attrs.append(f"examples=[{', '.join(q(s) for s in op.examples)}]")
    if op.counterexamples:
        attrs.append(f"counterexamples=[{', '.join(q(s) for s in op.counterexamples)}]")
    return " ".join(attrs)


def constraint_text(c: ir.Constraint) -> str:
    """The constraint as written, with what compilation learned (state or rule counts)."""
    states = f" states={c.n_states}" if c.n_states is not None else ""
    dfa = c.compiled
    if isinstance(dfa, grammars.ByteDFA):  # what the optimizer passes have left to do
        states += "" if dfa.trimmed else " dead-states"
        states += "" if dfa.minimal else " unminimized"
    elif isinstance(dfa, Conjunction):
        states += " lazy"
    elif isinstance(dfa, CFG) and not isinstance(c, ir.Grammar):  # a recursive JSON schema
        states += f" grammar rules={len(dfa.rules)}"
    if isinstance(c, ir.Regex):
        return f"regex({q(c.pattern)}{states})"
    if isinstance(c, ir.Grammar):
        rules = f" rules={c.n_states}" if c.n_states is not None else ""
        start = f" start={q(c.start)}" if c.start != "start" else ""
        return f"grammar({q(c.origin)}{start}{rules})"
    if isinstance(c, ir.Choice):
        return f"choice({', '.join(q(o) for o in c.options)}{states})"
    if isinstance(c, ir.Range):
        bounds = [f"{k}={v}" for k, v in (("min", c.lo), ("max", c.hi)) if v is not None]
        return f"{c.kind}({', '.join(bounds)}{states})"
    if isinstance(c, ir.Length):
        bounds = [f"min={c.lo}"] if c.lo else []
        bounds += [f"max={c.hi}"] if c.hi is not None else []
        return f"length({', '.join(bounds)}{states})"
    if isinstance(c, ir.All):
        return f"all({' & '.join(constraint_text(p) for p in c.parts)}{states})"
    shown = c.schema if len(c.schema) <= 72 else c.schema[:69] + "..."
    model = c.origin.startswith("model:")
    file = f" file={q(c.origin)}" if c.origin != "inline" and not model else ""
    model_arg = f" model={q(c.origin.removeprefix('model:'))}" if model else ""
    whitespace = f" whitespace={q(c.whitespace)}" if c.whitespace != "compact-or-default" else ""
    lenient = " lenient" if c.lenient else ""
    # strict by default: say how many objects were closed to their declared properties
    keys = " extra_keys" if c.extra_keys else (f" closed-objects={c.closed}" if c.closed else "")
    return f"json({q(shown)}{file}{model_arg}{whitespace}{lenient}{keys}{states})"


def search_text(s: ir.Search) -> str:
    if isinstance(s, ir.Beam):
        args = [f"width={s.width}"]
        if s.groups > 1:
            args += [f"groups={s.groups}", f"diversity={s.diversity:g}"]
        if s.length_penalty != 1.0:
            args.append(f"length_penalty={s.length_penalty:g}")
        if s.early_stopping:
            args.append("early_stopping=true")
        return f"{'diverse_beam' if s.groups > 1 else 'beam'}({', '.join(args)})"
    if isinstance(s, ir.BestOfN):
        return f"best_of(n={s.n}, score={reward_text(s.score)}, {search_text(s.sampling)})"
    if isinstance(s, ir.FirstFinish):
        return f"first_finish(n={s.n}, {search_text(s.sampling)})"
    if isinstance(s, ir.SMC):
        potential = f", potential={reward_text(s.potential)}" if s.potential is not None else ""
        return (
            f"smc(particles={s.particles}{potential}, ess_threshold={s.ess_threshold:g}, "
            f"resampling={q(s.resampling)}, {search_text(s.sampling)})"
        )
    if s.greedy and s.temperature in (0.0, 1.0) and s.top_k == 0 and s.top_p == 1.0 and s.seed is None:
        return "greedy"
    args = [f"temperature={s.temperature:g}"]
    if s.top_k:
        args.append(f"top_k={s.top_k}")
    if s.top_p != 1.0:
        args.append(f"top_p={s.top_p:g}")
    if s.min_p:
        args.append(f"min_p={s.min_p:g}")
    if s.typical_p != 1.0:
        args.append(f"typical_p={s.typical_p:g}")
    if s.seed is not None:
        args.append(f"seed={s.seed}")
    return f"sample({', '.join(args)})"


def reward_text(r: ir.Reward) -> str:
    if not r.args:
        return r.kind
    return f"{r.kind}({', '.join(q(a) if isinstance(a, str) else str(a) for a in r.args)})"
