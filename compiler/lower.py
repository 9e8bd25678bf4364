"""AST → IR: flattens turns into markers, types every generation option and input declaration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from decc.compiler import constraints, definitions, ir, options, search
from decc.compiler.trust import Trust
from decc.dsl import ast
from decc.errors import DeccError, Span, unknown

INPUT_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def lower(program: ast.Program, trust: Trust | None = None) -> ir.Module:
    models = [i for i in program.items if isinstance(i, ast.ModelDecl)]
    if len(models) > 1:
        raise DeccError(
            "a program declares one model", models[1].span, notes=[f"first declared at {models[0].span}"]
        )
    chat = any(isinstance(i, ast.Turn) for i in program.items)
    # Files a program names (schemas) are found next to it.
    base_dir = options.folder_of(program, Path.cwd())
    low = _Lowering(definitions.collect(program), base_dir, trust or Trust())
    inputs: list[ir.InputDef] = []
    body: list[ir.Op] = []
    for item in program.items:
        if isinstance(item, ast.InputDecl):
            inputs.append(low.input(item))
        elif isinstance(item, ast.Turn):
            body.extend(low.turn(item))
        elif isinstance(item, (ast.Text, ast.Gen, ast.If)):
            if chat:
                what = {ast.Text: "text", ast.Gen: "a generation", ast.If: "an 'if'"}[type(item)]
                raise DeccError(
                    f"{what} outside a chat turn",
                    item.span,
                    hints=["in a program with system/user/assistant turns, put everything inside a turn"],
                )
            body.append(low.stmt(item))
    model = models[0].spec if models else "default"
    return ir.Module(model, chat, tuple(inputs), tuple(body), program.span)


class _Lowering:
    """The lowering of one program: its definitions table and the folder its files are read from."""

    def __init__(self, defs: definitions.Table, base_dir: Path, trust: Trust) -> None:
        self.defs = defs
        self.base_dir = base_dir
        self.trust = trust

    def expr(self, e: ast.Expr) -> ast.Expr:
        return definitions.expand(e, self.defs)

    def input(self, decl: ast.InputDecl) -> ir.InputDef:
        self._not_defined(decl.name, "an input")
        return _input(decl)

    def _not_defined(self, name: ast.Name, what: str) -> None:
        d = self.defs.get(name.value)
        if d is not None:
            raise DeccError(
                f"'{name.value}' names both a definition and {what}",
                name.span,
                notes=[f"'{name.value}' is defined at {d.span}"],
                hints=["rename one of them"],
            )

    def turn(self, turn: ast.Turn) -> list[ir.Op]:
        role = turn.role.value
        ops: list[ir.Op] = [ir.TurnStart(role, turn.role.span)]
        ops.extend(self.stmt(s, role) for s in turn.body)
        ops.append(ir.TurnEnd(role, turn.span))
        return ops

    def stmt(self, s: ast.Stmt, role: str | None = None) -> ir.Op:
        if isinstance(s, ast.Text):
            return self.text(s)
        if isinstance(s, ast.If):
            return self.branch(s, role)
        if role is not None and role != "assistant":
            raise DeccError(
                f"generation inside a '{role}' turn",
                s.span,
                hints=["the model writes assistant turns: put 'gen' inside 'assistant { ... }'"],
            )
        self._not_defined(s.name, "a generated variable")
        return _gen(s, self.expr, self.base_dir, self.trust)

    def text(self, text: ast.Text) -> ir.Emit:
        parts: list[ir.Lit | ir.VarRef] = []
        for p in text.parts:
            if isinstance(p, ast.TextPart):
                parts.append(ir.Lit(p.text, p.span))
            elif p.name in self.defs:  # a defined string is fixed text
                value = self.defs[p.name].value
                if not isinstance(value, ast.StrLit):
                    raise DeccError(
                        f"'{p.name}' is {options.describe(value)}, not text",
                        p.span,
                        notes=[f"'{p.name}' is defined at {self.defs[p.name].span}"],
                        hints=["only a string definition can be inserted into text"],
                    )
                parts.append(ir.Lit(value.value, p.span))
            else:
                parts.append(ir.VarRef(p.name, p.span))
        return ir.Emit(tuple(parts), text.span)

    def branch(self, s: ast.If, role: str | None) -> ir.Branch:
        cases = tuple(
            ir.Case(self.test(c.cond), tuple(self.stmt(b, role) for b in c.body), c.span) for c in s.cases
        )
        otherwise = None if s.otherwise is None else tuple(self.stmt(b, role) for b in s.otherwise)
        return ir.Branch(cases, otherwise, s.span, s.else_span)

    def test(self, c: ast.Cond) -> ir.Test:
        value = self.expr(c.value)
        if c.op in ("in", "not in"):
            if not isinstance(value, ast.ListLit):
                raise DeccError(
                    f"'{c.op}' tests against a list, not {options.describe(value)}",
                    c.value.span,
                    hints=[f'write {c.var.value} {c.op} ["a", "b"]'],
                )
            values = tuple(_test_value(i) for i in value.items)
        else:
            values = (_test_value(value),)
        return ir.Test(ir.VarRef(c.var.value, c.var.span), c.op, values, c.span)


def _test_value(e: ast.Expr) -> str:
    """A value a test compares a variable's text with: a string, or a number/boolean as it is written."""
    if isinstance(e, ast.StrLit):
        return e.value
    if isinstance(e, ast.BoolLit):
        return "true" if e.value else "false"
    if isinstance(e, ast.NumLit):
        return e.span.source.text[e.span.start : e.span.end] if e.span.source else str(e.value)
    raise DeccError(
        f"a test compares with a string, a number or a boolean, not {options.describe(e)}", e.span
    )


def _input(decl: ast.InputDecl) -> ir.InputDef:
    type_name = decl.type.value if decl.type else "str"
    if type_name not in INPUT_TYPES:
        assert decl.type is not None
        raise unknown("input type", type_name, decl.type.span, INPUT_TYPES)
    default = None
    if decl.default is not None:
        default = _literal(decl.default, type_name)
    return ir.InputDef(decl.name.value, type_name, default, decl.span)


def _literal(e: ast.Expr, type_name: str) -> object:
    ok = {
        "str": isinstance(e, ast.StrLit),
        "int": isinstance(e, ast.NumLit) and isinstance(e.value, int),
        "float": isinstance(e, ast.NumLit),
        "bool": isinstance(e, ast.BoolLit),
    }[type_name]
    if not ok:
        raise DeccError(f"default must be of type {type_name}, not {options.describe(e)}", e.span)
    value = e.value  # type: ignore[union-attr]
    return float(value) if type_name == "float" else value


def _gen(gen: ast.Gen, expand: Callable[[ast.Expr], ast.Expr], base_dir: Path, trust: Trust) -> ir.Generate:
    seen: dict[str, ast.Option] = {}
    for opt in (replace(o, value=expand(o.value)) for o in gen.options):
        key = opt.key.value
        if key not in options.GEN_OPTIONS:
            raise unknown("option", key, opt.key.span, options.GEN_OPTIONS, where="gen")
        if key in seen:
            raise DeccError(
                f"option '{key}' given twice", opt.key.span, notes=[f"first given at {seen[key].key.span}"]
            )
        seen[key] = opt
    where = seen.get("where")
    examples = seen.get("examples")
    counter = seen.get("counterexamples")
    if (examples or counter) and where is None:
        raise DeccError(
            "examples are checked against a constraint, and this gen has none",
            (examples or counter).key.span,  # type: ignore[union-attr]
            hints=["add 'where: ...', or remove the examples"],
        )
    bounds = constraints.where(where.value, base_dir, trust) if where else constraints.Where(None)
    max_tokens = options.DEFAULT_MAX_TOKENS
    if "max_tokens" in seen:
        max_tokens = options.as_int(seen["max_tokens"].value, "max_tokens", 1)
    if bounds.max_tokens is not None:
        max_tokens = min(max_tokens, bounds.max_tokens) if "max_tokens" in seen else bounds.max_tokens
    if bounds.min_tokens > max_tokens:
        raise DeccError(
            f"at least {bounds.min_tokens} tokens are required but max_tokens is {max_tokens}",
            where.span if where else gen.span,
        )
    stops = options.stop_strings(seen["stop"].value) if "stop" in seen else ()
    stop_regex = None
    if "stop_regex" in seen:
        stop_regex = _stop_regex(seen["stop_regex"].value)
    policy = search.search(seen["search"].value, base_dir, trust) if "search" in seen else ir.Sampling()
    search.refuse_unsupported(seen.get("search"), policy, seen.get("stop_entropy"))
    aligned = "mode" in seen and search.mode(
        seen["mode"].value, policy, bounds.constraint is not None, seen.get("search")
    )
    return ir.Generate(
        name=gen.name.value,
        constraint=bounds.constraint,
        max_tokens=max_tokens,
        stop=tuple(s.value for s in stops),
        search=policy,
        span=gen.name.span,
        examples=options.string_list(examples.value, "an example") if examples else (),
        counterexamples=options.string_list(counter.value, "a counterexample") if counter else (),
        min_tokens=bounds.min_tokens,
        stop_regex=stop_regex,
        stop_entropy=search.stop_entropy(seen["stop_entropy"].value) if "stop_entropy" in seen else None,
        eos=options.as_bool(seen["eos"].value, "eos") if "eos" in seen else True,
        heal=options.as_bool(seen["heal"].value, "heal") if "heal" in seen else True,
        aligned=aligned,
        max_tokens_span=seen["max_tokens"].value.span if "max_tokens" in seen else None,
        heal_span=seen["heal"].key.span if "heal" in seen else None,
        stop_spans=tuple(s.span for s in stops),
        option_spans=_option_spans(seen),
    )


def _option_spans(seen: dict[str, ast.Option]) -> tuple[tuple[str, Span], ...]:
    """Each option's value span by key, and a `search:` call's keyword arguments as `search.NAME`."""
    spans = [(key, opt.value.span) for key, opt in seen.items()]
    policy = seen["search"].value if "search" in seen else None
    if isinstance(policy, ast.Call):
        spans += [(f"search.{kw.name.value}", kw.span) for kw in policy.kwargs]
    return tuple(spans)


def _stop_regex(e: ast.Expr) -> str:
    """A stop regex (Python `re` syntax): checked here, with the position of an error inside it."""
    lit, compiled = options.as_python_regex(e, "a stop regex", "stop regex")
    if compiled.match(""):
        raise DeccError("a stop regex must not match the empty string", lit.span)
    return lit.value
