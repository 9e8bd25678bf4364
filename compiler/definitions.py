"""Definitions: `let name = expr` and `import`s of other `.dec` files, resolved into one name → expression
table, and the AST rewrite that replaces each use of a defined name by its expression.

Definitions are lexical: a `let` sees the definitions above it (in its own file), so there are no cycles
among names; import cycles between files are reported. An imported file holds definitions only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from decc.compiler.options import folder_of
from decc.compiler.search import MODES, POLICIES, REWARDS
from decc.dsl import ast
from decc.errors import DeccError, did_you_mean


@dataclass(frozen=True)
class Definition:
    name: str
    value: ast.Expr  # already expanded: it names no other definition
    span: ast.Span  # where it was defined (a `let`, or the import that brought it in)


Table = dict[str, Definition]

# Names that mean something without a definition: policies and rewards written without parentheses, and
# the constraint modes.
BARE_NAMES = (*POLICIES, *REWARDS, *MODES)


def collect(program: ast.Program) -> Table:
    """The definitions a program's expressions may use: its own `let`s and what it imports."""
    return _collect(program, ())


def _collect(program: ast.Program, stack: tuple[Path, ...]) -> Table:
    table: Table = {}
    later = {i.name.value: i for i in program.items if isinstance(i, ast.Let)}
    for item in program.items:
        if isinstance(item, ast.Import):
            for name, d in _imported(item, program, stack).items():
                _define(table, name, d)
        elif isinstance(item, ast.Let):
            value = expand(item.value, table, later)
            _define(table, item.name.value, Definition(item.name.value, value, item.name.span))
    return table


def _define(table: Table, name: str, d: Definition) -> None:
    first = table.get(name)
    if first is not None and first == d and first.span.path == d.span.path:
        return  # the same definition, reached through two imports
    if first is not None:
        raise DeccError(
            f"'{name}' is already defined",
            d.span,
            notes=[f"first defined at {first.span}"],
            hints=['rename one of them (an import can rename: from "x.dec" import a as b)'],
        )
    table[name] = d


def _imported(item: ast.Import, program: ast.Program, stack: tuple[Path, ...]) -> Table:
    from decc.dsl import parse_file

    path = (folder_of(program, Path.cwd()) / item.path.value).resolve()
    if not item.path.value.endswith(".dec"):
        raise DeccError("only .dec files can be imported", item.path.span)
    if path in stack or path == _own_path(program):
        raise DeccError(
            f"import cycle: '{item.path.value}' imports this file again",
            item.path.span,
            hints=["move the shared definitions into a third file that both import"],
        )
    if not path.exists():
        raise DeccError(f"cannot import '{item.path.value}': no such file", item.path.span)
    lib = parse_file(path)
    for lib_item in lib.items:
        if not isinstance(lib_item, (ast.Let, ast.Import)):
            raise DeccError(
                "an imported file may hold only definitions ('let' and 'import')",
                lib_item.span,
                notes=[f"imported at {item.span}"],
            )
    table = _collect(lib, (*stack, _own_path(program)))
    if item.names is None:
        return table
    out: Table = {}
    for n in item.names:
        if n.name.value not in table:
            raise DeccError(
                f"'{item.path.value}' defines no '{n.name.value}'",
                n.name.span,
                hints=did_you_mean(n.name.value, table)
                or [f"it defines: {', '.join(table)}" if table else "it defines nothing"],
            )
        out[n.local.value] = replace(table[n.name.value], name=n.local.value)
    return out


def _own_path(program: ast.Program) -> Path:
    return Path(program.source.path).resolve()


def expand(e: ast.Expr, table: Table, later: dict[str, ast.Let] | None = None) -> ast.Expr:
    """`e` with every name of a definition replaced by its expression."""
    if isinstance(e, ast.NameRef):
        if e.name in table:
            return table[e.name].value
        if later and e.name in later:
            raise DeccError(
                f"'{e.name}' is used before it is defined",
                e.span,
                notes=[f"'{e.name}' is defined at {later[e.name].name.span}"],
                hints=["move the 'let' above its first use"],
            )
        # A near-miss of a built-in gets the error of where it is used ("unknown search policy").
        near_definition = did_you_mean(e.name, table)
        if near_definition or (e.name not in BARE_NAMES and not did_you_mean(e.name, BARE_NAMES)):
            raise DeccError(
                f"unknown name '{e.name}'",
                e.span,
                hints=near_definition or [f"define it first: let {e.name} = ..."],
            )
        return e
    if isinstance(e, ast.Call):
        args = tuple(expand(a, table, later) for a in e.args)
        kwargs = tuple(replace(k, value=expand(k.value, table, later)) for k in e.kwargs)
        return replace(e, args=args, kwargs=kwargs)
    if isinstance(e, ast.ListLit):
        return replace(e, items=tuple(expand(i, table, later) for i in e.items))
    if isinstance(e, ast.And):  # a defined conjunction inside another one joins it, flat
        items: list[ast.Expr] = []
        for i in e.items:
            x = expand(i, table, later)
            items.extend(x.items if isinstance(x, ast.And) else (x,))
        return replace(e, items=tuple(items))
    return e
