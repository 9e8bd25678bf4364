"""IR → executable plan, for one tokenizer: chat turns rendered with the model's template, and regexes turned
into token automata over its vocabulary. The plan is what the runtime executes, and all it reads: typed
generation steps (a policy, stop rules, a bound constraint) with no IR node inside, so runtime/ never
imports compiler.ir."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from decc import grammars
from decc.compiler import ir, policies
from decc.compiler.printer import branch_lines, gen_attrs, loc, q, test_text
from decc.errors import DeccError, Span
from decc.grammars.tokens.lazy_product import Conjunction
from decc.grammars.tokens.lazy_product import bind as bind_conjunction


class MatcherFactory(Protocol):
    """A constraint bound to the plan's vocabulary: each generation asks it for a fresh matcher (a
    `grammars.TokenConstraint`, a lazy CFG or JSON constraint, a lazy conjunction)."""

    def matcher(self) -> Any: ...


@dataclass(frozen=True)
class Var:
    """`{name}` in a text step or a test: the input's or earlier value's text at run time."""

    name: str


@dataclass(frozen=True)
class Input:
    """A declared input: its type ('str', 'int', 'float', 'bool') and default (None: required)."""

    name: str
    type: str
    default: Any
    span: Span


@dataclass(frozen=True)
class Test:
    """Does `var`'s text equal / differ from / belong to / not belong to `values`?"""

    var: Var
    op: str  # "==", "!=", "in", "not in"
    values: tuple[str, ...]
    shown: str = field(default="", compare=False, repr=False)  # as `decc plan` prints it

    def holds(self, value: str) -> bool:
        inside = value in self.values
        return inside if self.op in ("==", "in") else not inside


# The search policies, shared with the IR (compiler/policies.py); the runtime reads them from here.
SMC = policies.SMC
Beam = policies.Beam
BestOfN = policies.BestOfN
Entropy = policies.Entropy
FirstFinish = policies.FirstFinish
Reward = policies.Reward
Sampling = policies.Sampling
Search = policies.Search
Policy = Search  # one plan type per policy


@dataclass(frozen=True)
class Rules:
    """How a value may grow and end, apart from its policy (the runtime adds the model's EOS ids)."""

    max_tokens: int
    min_tokens: int = 0
    eos: bool = True  # False: the model's end-of-sequence token does not end the value
    stop: tuple[str, ...] = ()
    stop_regex: str | None = None
    stop_entropy: Entropy | None = None


@dataclass(frozen=True)
class PlanText:
    """Text appended to the context: literal pieces and variables, tokenized together at run time."""

    parts: tuple[str | Var, ...]


@dataclass(frozen=True)
class PlanGen:
    """One generation step: the value `name`, drawn by `policy` under `rules`, matched by `constraint`."""

    name: str
    policy: Policy
    rules: Rules
    constraint: MatcherFactory | None
    span: Span
    heal: bool = True  # token healing of a text-then-gen boundary
    aligned: bool = False  # `mode: aligned`: ASAp sampling
    draft: tuple[str, ...] = ()  # draft sources: "forced", "text", "lookup", "suffix"
    max_tokens_span: Span | None = field(default=None, compare=False, repr=False)
    shown: str = field(default="", compare=False, repr=False)  # the step's attributes, as `decc plan` prints


@dataclass(frozen=True)
class PlanBranch:
    """The steps of the first case whose test holds, else `otherwise` (empty when there is no `else`)."""

    cases: tuple[tuple[Test, tuple[Step, ...]], ...]
    otherwise: tuple[Step, ...]


Step = PlanText | PlanGen | PlanBranch


def plan_gens(steps: tuple[Step, ...]) -> list[PlanGen]:
    """Every generation step, inside branches too."""
    out: list[PlanGen] = []
    for s in steps:
        if isinstance(s, PlanGen):
            out.append(s)
        elif isinstance(s, PlanBranch):
            for _, body in s.cases:
                out.extend(plan_gens(body))
            out.extend(plan_gens(s.otherwise))
    return out


@dataclass(frozen=True)
class Plan:
    model: str
    inputs: tuple[Input, ...]
    steps: tuple[Step, ...]
    add_special_tokens: (
        bool  # plain prompts start with the tokenizer's own BOS handling; chat templates carry it
    )
    vocab: grammars.Vocabulary


def lower_to_plan(module: ir.Module, tokenizer: Any, vocab: Any) -> Plan:
    body = _render_chat(module, tokenizer) if module.chat else list(module.body)
    inputs = tuple(Input(i.name, i.type, i.default, i.span) for i in module.inputs)
    return Plan(module.model, inputs, _steps(body, vocab), not module.chat, vocab)


def _steps(body: list[str | ir.Op] | tuple[ir.Op, ...], vocab: Any) -> tuple[Step, ...]:
    steps: list[Step] = []
    pending: list[str | Var] = []

    def flush() -> None:
        if pending:
            steps.append(PlanText(_merge(pending)))
            pending.clear()

    for op in body:
        if isinstance(op, str):
            pending.append(op)
        elif isinstance(op, ir.Emit):
            pending.extend(p.text if isinstance(p, ir.Lit) else Var(p.name) for p in op.parts)
        elif isinstance(op, ir.Generate):
            flush()
            constraint = _bound(op.constraint, vocab) if op.constraint else None
            if constraint is not None:
                _check_max_tokens(op, constraint)
            steps.append(_gen(op, constraint))
        elif isinstance(op, ir.Branch):
            flush()
            cases = tuple((_test(c.test), _steps(c.body, vocab)) for c in op.cases)
            steps.append(PlanBranch(cases, _steps(op.otherwise or (), vocab)))
    flush()
    return tuple(steps)


def _gen(op: ir.Generate, constraint: MatcherFactory | None) -> PlanGen:
    rules = Rules(op.max_tokens, op.min_tokens, op.eos, op.stop, op.stop_regex, op.stop_entropy)
    return PlanGen(
        op.name,
        op.search,
        rules,
        constraint,
        op.span,
        heal=op.heal,
        aligned=op.aligned,
        draft=op.draft,
        max_tokens_span=op.max_tokens_span,
        shown=gen_attrs(op),
    )


def _test(t: ir.Test) -> Test:
    return Test(Var(t.var.name), t.op, t.values, test_text(t))


def _bound(c: ir.Constraint, vocab: Any) -> Any:
    """`_bind`, its errors (limits reached lifting to the vocabulary) pointing at the constraint."""
    try:
        return _bind(c, vocab)
    except DeccError as e:
        if e.span is not None:
            raise
        raise DeccError(e.message, c.span, notes=e.notes, hints=e.hints) from None


def _bind(c: ir.Constraint, vocab: Any) -> Any:
    """The token-level constraint for one vocabulary. Regexes and JSON schemas the optimizer left as the
    compilers give them go through grammars' caches (memory and disk), keyed by their source; any other
    DFA is lifted as compiled, and a conjunction the `product` pass left apart is intersected lazily."""
    from decc.compiler.printer import constraint_text

    compiled = c.compiled
    plain = isinstance(compiled, grammars.ByteDFA) and compiled.minimal and compiled.trimmed
    if isinstance(c, ir.Regex) and plain:
        return grammars.regex(c.pattern, vocab)
    if isinstance(c, ir.Grammar):
        return grammars.cfg(c.text, vocab, start=c.start)
    if isinstance(c, ir.JsonSchema):
        with warnings.catch_warnings():  # compile-constraints warned about ignored keywords, positioned
            warnings.simplefilter("ignore", grammars.IgnoredKeyword)
            return grammars.json_schema(
                c.schema, vocab, lenient=c.lenient, whitespace=c.whitespace, engine=c.engine
            )
    if isinstance(compiled, Conjunction):
        return bind_conjunction(compiled, vocab, constraint_text(c))
    return grammars.from_dfa(compiled, vocab, constraint_text(c))


def _check_max_tokens(op: ir.Generate, constraint: Any) -> None:
    """A `max_tokens` below the fewest tokens of any complete output cuts every output short."""
    automaton = getattr(constraint, "automaton", None)
    if automaton is None:
        return
    from decc.grammars.tokens.token_paths import shortest_tokens

    fewest = shortest_tokens(automaton)
    if fewest is not None and fewest > op.max_tokens:
        written = op.max_tokens_span is not None
        raise DeccError(
            f"max_tokens is {op.max_tokens}, but every valid output of '{op.name}' takes at least "
            f"{fewest} tokens",
            op.max_tokens_span or op.span,
            notes=[] if written else [f"{op.max_tokens} is the default max_tokens"],
            hints=[f"raise max_tokens to at least {fewest}"],
        )


def _merge(parts: list[str | Var]) -> tuple[str | Var, ...]:
    out: list[str | Var] = []
    for p in parts:
        if isinstance(p, str) and out and isinstance(out[-1], str):
            out[-1] += p
        elif p != "":
            out.append(p)
    return tuple(out)


def _sentinel(i: int) -> str:
    return f"@@DECC_TURN_{i}@@"


# Turns for a model without a chat template (base models such as GPT-2): the start token, then each turn as
# a paragraph "Role:" + newline + text (a value follows "Assistant:\n": no prompt that ends in a space token).
PLAIN_CHAT_TEMPLATE = (
    "{{ bos_token or '' }}"
    "{% for m in messages %}{{ m['role'] | capitalize }}:\n{{ m['content'] }}\n\n{% endfor %}"
)


def _render_chat(module: ir.Module, tokenizer: Any) -> list[str | ir.Op]:
    """Replace turn markers by the template's own text around each turn's content.

    The template is rendered once with a sentinel as each turn's content; the text between sentinels is the
    scaffolding. The closing scaffolding of a final assistant turn is dropped: generation ends the program.
    A tokenizer without a chat template gets `PLAIN_CHAT_TEMPLATE`.
    """
    template = None if getattr(tokenizer, "chat_template", None) else PLAIN_CHAT_TEMPLATE
    turns = [op for op in module.body if isinstance(op, ir.TurnStart)]
    roles = [op.role for op in turns]
    messages = [{"role": r, "content": _sentinel(i)} for i, r in enumerate(roles)]
    try:
        rendered = tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False, add_generation_prompt=False
        )
    except Exception as e:  # templates are user-supplied Jinja: any failure is reported, not raised
        raise DeccError(f"the chat template of model '{module.model}' failed: {e}", module.span) from None
    pieces: list[str] = []
    rest = rendered
    for i in range(len(roles)):
        before, sep, rest = rest.partition(_sentinel(i))
        if not sep:  # e.g. Phi-3's template drops system turns
            raise DeccError(
                f"the chat template of model '{module.model}' leaves out this {roles[i]} turn's text "
                "(or does not keep it verbatim)",
                turns[i].span,
                hints=["write its text into another turn (a system prompt into the first user turn)"],
            )
        pieces.append(before)
    out: list[str | ir.Op] = []
    turn = -1
    for op in module.body:
        if isinstance(op, ir.TurnStart):
            turn += 1
            out.append(pieces[turn])
        elif isinstance(op, ir.TurnEnd):
            continue
        else:
            out.append(op)
    if roles and roles[-1] != "assistant":
        out.append(rest)
    return out


def print_plan(plan: Plan) -> str:
    vocab = plan.vocab
    eos = sorted(vocab.eos_ids)
    lines = [f"plan model={q(plan.model)} vocab={vocab.size} eos={eos}"]
    for inp in plan.inputs:
        lines.append(f"  input {inp.name}: {inp.type}")
    _print_steps(plan.steps, 1, lines)
    return "\n".join(lines) + "\n"


def _print_steps(steps: tuple[Step, ...], depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    for step in steps:
        if isinstance(step, PlanText):
            shown = " + ".join(q(p) if isinstance(p, str) else "{" + p.name + "}" for p in step.parts)
            lines.append(f"{pad}text {shown}")
        elif isinstance(step, PlanBranch):
            cases = [(test.shown, body) for test, body in step.cases]
            otherwise = step.otherwise or None  # a plan has () where the program has no else
            branch_lines(pad, cases, otherwise, partial(_print_steps, depth=depth + 1, lines=lines), lines)
        else:
            c = step.constraint
            auto = ""
            if c is not None and hasattr(c, "automaton"):
                a = c.automaton
                auto = f" automaton(states={a.n_states}, edges={int(a.n_allowed.sum())})"
            lines.append(f"{pad}gen {step.name} {step.shown}{auto}  {loc(step.span)}")
