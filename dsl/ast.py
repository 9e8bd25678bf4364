"""The `.dec` abstract syntax tree: frozen dataclasses, each keeping the span it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from decc.errors import Source, Span


@dataclass(frozen=True)
class Name:
    value: str
    span: Span


@dataclass(frozen=True)
class StrLit:
    """A string literal, escapes decoded; `offsets[i]` is the source offset of `value[i]`."""

    value: str
    span: Span
    raw: bool = False
    offsets: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def span_of(self, start: int, end: int) -> Span:
        """The source span of `value[start:end]` (for errors inside a regex or template)."""
        return self.span.within(self.offsets, start, end)


@dataclass(frozen=True)
class NumLit:
    value: int | float
    span: Span


@dataclass(frozen=True)
class BoolLit:
    value: bool
    span: Span


@dataclass(frozen=True)
class ListLit:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class NameRef:
    name: str
    span: Span


@dataclass(frozen=True)
class KwArg:
    name: Name
    value: Expr
    span: Span


@dataclass(frozen=True)
class Call:
    func: Name
    args: tuple[Expr, ...]
    kwargs: tuple[KwArg, ...]
    span: Span


@dataclass(frozen=True)
class And:
    """`a & b & ...`: a conjunction (of constraints)."""

    items: tuple[Expr, ...]
    span: Span


Expr = Union[StrLit, NumLit, BoolLit, ListLit, NameRef, Call, And]


@dataclass(frozen=True)
class TextPart:
    text: str
    span: Span


@dataclass(frozen=True)
class Interp:
    """`{name}` inside a text template."""

    name: str
    span: Span


@dataclass(frozen=True)
class Text:
    """A text statement: a template appended to the context."""

    parts: tuple[TextPart | Interp, ...]
    span: Span


@dataclass(frozen=True)
class Option:
    key: Name
    value: Expr
    span: Span


@dataclass(frozen=True)
class Gen:
    """A generation step: the model writes the variable `name`."""

    name: Name
    options: tuple[Option, ...]
    span: Span


@dataclass(frozen=True)
class Cond:
    """`name == value`, `name != value`, `name in [...]`, `name not in [...]`: a test of a variable's value."""

    var: Name
    op: str  # "==", "!=", "in", "not in"
    value: Expr
    span: Span


@dataclass(frozen=True)
class Case:
    cond: Cond
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True)
class If:
    """`if c { ... } elif c { ... } else { ... }`: the first case whose test holds runs."""

    cases: tuple[Case, ...]
    otherwise: tuple[Stmt, ...] | None
    span: Span
    else_span: Span | None = None


Stmt = Union[Text, Gen, If]


@dataclass(frozen=True)
class Turn:
    role: Name
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True)
class ModelDecl:
    """`model SPEC` or `model SPEC { device: D, dtype: T }` (each option at most once, spelled right: the
    parser checks). `offsets` are the source offsets (start, end) of SPEC as written."""

    spec: str
    span: Span
    options: tuple[Option, ...] = ()
    offsets: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def option(self, key: str) -> Option | None:
        """The option named `key` (`device` or `dtype`), if written."""
        return next((o for o in self.options if o.key.value == key), None)


@dataclass(frozen=True)
class InputDecl:
    name: Name
    type: Name | None
    default: Expr | None
    span: Span


@dataclass(frozen=True)
class ImportName:
    name: Name
    alias: Name | None
    span: Span

    @property
    def local(self) -> Name:
        return self.alias or self.name


@dataclass(frozen=True)
class Import:
    """`import "lib.dec"` (every definition) or `from "lib.dec" import a, b as c`."""

    path: StrLit
    names: tuple[ImportName, ...] | None
    span: Span


@dataclass(frozen=True)
class Let:
    """`let name = expr`: a named expression (a constraint, a policy, a reward, a string, ...)."""

    name: Name
    value: Expr
    span: Span


Item = Union[ModelDecl, InputDecl, Import, Let, Turn, Text, Gen, If]


@dataclass(frozen=True)
class Program:
    items: tuple[Item, ...]
    span: Span
    source: Source = field(repr=False, compare=False)
