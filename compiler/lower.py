"""AST → IR: flattens turns into markers, types every generation option and input declaration."""

from __future__ import annotations

from pathlib import Path

from decc.compiler import constraints, ir, options, search
from decc.dsl import ast
from decc.errors import DeccError, unknown

INPUT_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def lower(program: ast.Program) -> ir.Module:
    models = [i for i in program.items if isinstance(i, ast.ModelDecl)]
    if len(models) > 1:
        raise DeccError(
            "a program declares one model", models[1].span, notes=[f"first declared at {models[0].span}"]
        )
    chat = any(isinstance(i, ast.Turn) for i in program.items)
    # Files a program names (schemas) are found next to it.
    base_dir = Path(program.source.path).parent if program.source.path != "<string>" else Path.cwd()
    inputs: list[ir.InputDef] = []
    body: list[ir.Op] = []
    for item in program.items:
        if isinstance(item, ast.InputDecl):
            inputs.append(_input(item))
        elif isinstance(item, ast.Turn):
            body.extend(_turn(item, base_dir))
        elif isinstance(item, (ast.Text, ast.Gen)):
            if chat:
                what = "text" if isinstance(item, ast.Text) else "a generation"
                raise DeccError(
                    f"{what} outside a chat turn",
                    item.span,
                    hints=["in a program with system/user/assistant turns, put everything inside a turn"],
                )
            body.append(_text(item) if isinstance(item, ast.Text) else _gen(item, base_dir))
    model = models[0].spec if models else "default"
    return ir.Module(model, chat, tuple(inputs), tuple(body), program.span)


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


def _turn(turn: ast.Turn, base_dir: Path) -> list[ir.Op]:
    role = turn.role.value
    ops: list[ir.Op] = [ir.TurnStart(role, turn.role.span)]
    for stmt in turn.body:
        if isinstance(stmt, ast.Gen) and role != "assistant":
            raise DeccError(
                f"generation inside a '{role}' turn",
                stmt.span,
                hints=["the model writes assistant turns: put 'gen' inside 'assistant { ... }'"],
            )
        ops.append(_text(stmt) if isinstance(stmt, ast.Text) else _gen(stmt, base_dir))
    ops.append(ir.TurnEnd(role, turn.span))
    return ops


def _text(text: ast.Text) -> ir.Emit:
    parts = tuple(
        ir.Lit(p.text, p.span) if isinstance(p, ast.TextPart) else ir.VarRef(p.name, p.span)
        for p in text.parts
    )
    return ir.Emit(parts, text.span)


def _gen(gen: ast.Gen, base_dir: Path) -> ir.Generate:
    seen: dict[str, ast.Option] = {}
    for opt in gen.options:
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
    bounds = constraints.where(where.value, base_dir) if where else constraints.Where(None)
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
    stop_regex = None
    if "stop_regex" in seen:
        stop_regex = _stop_regex(seen["stop_regex"].value)
    return ir.Generate(
        name=gen.name.value,
        constraint=bounds.constraint,
        max_tokens=max_tokens,
        stop=options.stop_strings(seen["stop"].value) if "stop" in seen else (),
        search=search.search(seen["search"].value, base_dir) if "search" in seen else ir.Sampling(),
        span=gen.name.span,
        examples=options.string_list(examples.value, "an example") if examples else (),
        counterexamples=options.string_list(counter.value, "a counterexample") if counter else (),
        min_tokens=bounds.min_tokens,
        stop_regex=stop_regex,
        stop_entropy=search.stop_entropy(seen["stop_entropy"].value) if "stop_entropy" in seen else None,
        eos=options.as_bool(seen["eos"].value, "eos") if "eos" in seen else True,
    )


def _stop_regex(e: ast.Expr) -> str:
    """A stop regex (Python `re` syntax): checked here, with the position of an error inside it."""
    lit, compiled = options.as_python_regex(e, "a stop regex", "stop regex")
    if compiled.match(""):
        raise DeccError("a stop regex must not match the empty string", lit.span)
    return lit.value
