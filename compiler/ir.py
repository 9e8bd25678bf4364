"""The IR: one small, flat, frozen program representation that passes rewrite.

A module is a list of ops. Chat structure stays as `TurnStart`/`TurnEnd` markers so the IR is model-free;
the plan lowering renders them with the model's chat template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from decc.errors import Span


@dataclass(frozen=True)
class Lit:
    text: str
    span: Span


@dataclass(frozen=True)
class VarRef:
    """`{name}` in a template; `kind` is set by the resolve-names pass ('input' or 'gen')."""

    name: str
    span: Span
    kind: str | None = None


@dataclass(frozen=True)
class InputDef:
    name: str
    type: str
    default: Any
    span: Span


@dataclass(frozen=True)
class Emit:
    """Fixed text appended to the context."""

    parts: tuple[Lit | VarRef, ...]
    span: Span


@dataclass(frozen=True)
class TurnStart:
    role: str
    span: Span


@dataclass(frozen=True)
class TurnEnd:
    role: str
    span: Span


@dataclass(frozen=True)
class Regex:
    """A regex constraint; `compiled` (its byte DFA) is filled in by the compile-constraints pass."""

    pattern: str
    span: Span
    offsets: tuple[int, ...] = field(default=(), repr=False, compare=False)
    compiled: Any = field(default=None, repr=False, compare=False)
    n_states: int | None = None


@dataclass(frozen=True)
class JsonSchema:
    """A JSON Schema constraint: `schema` is its compact JSON text (key order kept: it is the output order)."""

    schema: str
    span: Span
    origin: str = "inline"  # or the schema file's path
    whitespace: str = "compact-or-default"
    lenient: bool = False
    compiled: Any = field(default=None, repr=False, compare=False)
    n_states: int | None = None


@dataclass(frozen=True)
class Grammar:
    """A context-free constraint in Lark syntax: a built-in grammar by name, or a `.lark` file."""

    text: str
    span: Span
    origin: str  # "builtin:NAME" or the file's path
    start: str = "start"
    compiled: Any = field(default=None, repr=False, compare=False)
    n_states: int | None = None  # rules, after compilation


Constraint = Union[Regex, JsonSchema, Grammar]


@dataclass(frozen=True)
class Sampling:
    """The search policy of one step: greedy, or sampling with temperature / top-k / top-p and a seed."""

    greedy: bool = True
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None


@dataclass(frozen=True)
class Generate:
    name: str
    constraint: Constraint | None
    max_tokens: int
    stop: tuple[str, ...]
    search: Sampling
    span: Span
    examples: tuple[str, ...] = ()  # declared valid outputs, checked by `decc test`
    counterexamples: tuple[str, ...] = ()  # declared invalid outputs


Op = Union[Emit, TurnStart, TurnEnd, Generate]


@dataclass(frozen=True)
class Module:
    model: str
    chat: bool
    inputs: tuple[InputDef, ...]
    body: tuple[Op, ...]
    span: Span

    def generates(self) -> tuple[Generate, ...]:
        return tuple(op for op in self.body if isinstance(op, Generate))
