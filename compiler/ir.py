"""The IR: one small, flat, frozen program representation that passes rewrite.

A module is a list of ops. Chat structure stays as `TurnStart`/`TurnEnd` markers so the IR is model-free;
the plan lowering renders them with the model's chat template.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Union

from decc.errors import DeccWarning, Source, Span

from . import policies

# The search policies are plain values shared with the plan (`ir.Sampling` is `plan.Sampling`).
SMC = policies.SMC
Beam = policies.Beam
BestOfN = policies.BestOfN
Entropy = policies.Entropy
FirstFinish = policies.FirstFinish
Reward = policies.Reward
Sampling = policies.Sampling
Search = policies.Search


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
    extra_keys: bool = False  # `extra_keys=true`: objects may hold undeclared keys, as JSON Schema allows
    closed: int = 0  # objects closed to their declared properties (`schema` is the rewritten text)
    # "automaton", "grammar" (lazy), or "auto" until the choose-engine pass decides; and why it did
    engine: str = "auto"
    engine_reason: str = field(default="", repr=False, compare=False)
    compiled: Any = field(default=None, repr=False, compare=False)
    n_states: int | None = None
    # where the schema was written (an inline literal's value or a file), for errors at a keyword
    written: Source | None = field(default=None, repr=False, compare=False)
    offsets: tuple[int, ...] = field(default=(), repr=False, compare=False)  # the literal's, in the .dec


@dataclass(frozen=True)
class Grammar:
    """A context-free constraint in Lark syntax: a built-in grammar by name, or a `.lark` file."""

    text: str
    span: Span
    origin: str  # "builtin:NAME" or the file's path
    start: str = "start"
    compiled: Any = field(default=None, repr=False, compare=False)
    n_states: int | None = None  # rules, after compilation


@dataclass(frozen=True)
class Choice:
    """One of a fixed list of strings."""

    options: tuple[str, ...]
    span: Span
    compiled: Any = field(default=None, repr=False, compare=False)
    n_states: int | None = None


@dataclass(frozen=True)
class Range:
    """An integer (`int(min=, max=)`) or a number (`number(min=, max=)`), written as JSON writes it."""

    kind: str  # "int" or "number"
    lo: int | float | None
    hi: int | float | None
    span: Span
    compiled: Any = field(default=None, repr=False, compare=False)
    n_states: int | None = None

    @property
    def schema(self) -> str:
        """The JSON Schema with the same language (how it compiles)."""
        import json

        s: dict[str, Any] = {"type": "integer" if self.kind == "int" else "number"}
        if self.lo is not None:
            s["minimum"] = self.lo
        if self.hi is not None:
            s["maximum"] = self.hi
        return json.dumps(s, separators=(",", ":"))


@dataclass(frozen=True)
class Length:
    """Any text of `lo`..`hi` characters (`hi` None: unbounded). Token-count bounds are not constraints:
    the lowering turns `length(..., unit="tokens")` into the step's `min_tokens`/`max_tokens`."""

    lo: int
    hi: int | None
    span: Span
    compiled: Any = field(default=None, repr=False, compare=False)
    n_states: int | None = None


@dataclass(frozen=True)
class All:
    """`a & b & ...`: the strings every part accepts (one product automaton once compiled)."""

    parts: tuple[Constraint, ...]
    span: Span
    compiled: Any = field(default=None, repr=False, compare=False)
    n_states: int | None = None


Constraint = Union[Regex, JsonSchema, Grammar, Choice, Range, Length, All]


@dataclass(frozen=True)
class Generate:
    name: str
    constraint: Constraint | None
    max_tokens: int
    stop: tuple[str, ...]
    search: Search
    span: Span
    examples: tuple[str, ...] = ()  # declared valid outputs, checked by `decc test`
    counterexamples: tuple[str, ...] = ()  # declared invalid outputs
    min_tokens: int = 0  # EOS and completion are refused before this many tokens
    stop_regex: str | None = None  # the value ends before the first match
    stop_entropy: Entropy | None = None
    eos: bool = True  # False: the model's end-of-sequence token does not end the step
    heal: bool = True  # token healing of a text-then-gen boundary (grammars/tokens/healing.py)
    aligned: bool = False  # `mode: aligned`: ASAp sampling of p(value | constraint), not per-step masking
    # Draft sources the optimizer enabled (passes/speculate.py): "forced", "text", "lookup", "suffix".
    draft: tuple[str, ...] = ()
    # Where max_tokens and each stop string were written (None / () when defaulted): for diagnostics.
    max_tokens_span: Span | None = field(default=None, compare=False, repr=False)
    stop_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)
    heal_span: Span | None = field(default=None, compare=False, repr=False)  # where `heal:` was written
    # Where each written option's value is ("search", "mode", "stop_regex", ...), and each keyword argument of
    # a `search:` call ("search.typical_p"): for the checks made after lowering (passes/check_engine.py).
    option_spans: tuple[tuple[str, Span], ...] = field(default=(), compare=False, repr=False)

    def option_span(self, key: str) -> Span | None:
        """Where option (or search argument) `key` was written; None when it was not."""
        return next((span for k, span in self.option_spans if k == key), None)


@dataclass(frozen=True)
class Test:
    """Does variable `var` (its text) equal / differ from / belong to / not belong to `values`?"""

    var: VarRef
    op: str  # "==", "!=", "in", "not in"
    values: tuple[str, ...]
    span: Span

    def holds(self, value: str) -> bool:
        inside = value in self.values
        return inside if self.op in ("==", "in") else not inside


@dataclass(frozen=True)
class Case:
    test: Test
    body: tuple[Op, ...]
    span: Span


@dataclass(frozen=True)
class Branch:
    """`if`/`elif`/`else`: the body of the first case whose test holds runs, else `otherwise` (if any)."""

    cases: tuple[Case, ...]
    otherwise: tuple[Op, ...] | None
    span: Span
    else_span: Span | None = None

    def bodies(self) -> tuple[tuple[Op, ...], ...]:
        rest = () if self.otherwise is None else (self.otherwise,)
        return tuple(c.body for c in self.cases) + rest


Op = Union[Emit, TurnStart, TurnEnd, Generate, Branch]


def walk(body: tuple[Op, ...]) -> Iterator[Op]:
    """Every op, depth first, branch bodies included."""
    for op in body:
        yield op
        if isinstance(op, Branch):
            for b in op.bodies():
                yield from walk(b)


def map_ops(body: tuple[Op, ...], f: Callable[[Op], Op]) -> tuple[Op, ...]:
    """`body` with `f` applied to every non-branch op, inside branches too."""
    out: list[Op] = []
    for op in body:
        if isinstance(op, Branch):
            cases = tuple(replace(c, body=map_ops(c.body, f)) for c in op.cases)
            otherwise = None if op.otherwise is None else map_ops(op.otherwise, f)
            out.append(replace(op, cases=cases, otherwise=otherwise))
        else:
            out.append(f(op))
    return tuple(out)


@dataclass(frozen=True)
class Module:
    model: str
    chat: bool
    inputs: tuple[InputDef, ...]
    body: tuple[Op, ...]
    span: Span
    # the engine the program is compiled to run on (a compile option: "decc", or "vllm" with its refusals)
    engine: str = "decc"
    # what the passes found worth a word but not an error (the CLI prints them; `Program.ir.warnings`)
    warnings: tuple[DeccWarning, ...] = field(default=(), compare=False)

    def generates(self) -> tuple[Generate, ...]:
        return tuple(op for op in walk(self.body) if isinstance(op, Generate))
