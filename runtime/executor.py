"""Plan → tokens: runs each step of a compiled plan in one decode session (one KV cache for the program)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from decc.compiler import ir
from decc.compiler.plan import Plan, PlanBranch, PlanGen, PlanText, Step
from decc.errors import DeccError, did_you_mean
from decc.runtime.decode import DecodeSession
from decc.runtime.model import LanguageModel
from decc.runtime.sampling import SamplingParams


@dataclass(frozen=True)
class StepResult:
    name: str
    value: str
    token_ids: tuple[int, ...]
    logprob: float
    finish_reason: str


@dataclass
class Result:
    """What a run produced: values by name, the whole text, all context token ids and the total logprob.

    `logprob` sums the model's own (unmasked, temperature-1) log-probabilities of the generated tokens.
    """

    values: dict[str, str]
    text: str
    token_ids: list[int]
    logprob: float
    steps: dict[str, StepResult] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    def to_json(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "text": self.text,
            "token_ids": self.token_ids,
            "logprob": self.logprob,
            "finish_reasons": {k: s.finish_reason for k, s in self.steps.items()},
        }


def bind_inputs(inputs: tuple[ir.InputDef, ...], given: Mapping[str, Any]) -> dict[str, Any]:
    """Check and convert the caller's inputs against the declarations (CLI strings become typed values)."""
    decls = {i.name: i for i in inputs}
    for name in given:
        if name not in decls:
            hints = did_you_mean(name, decls) or [
                f"this program's inputs: {', '.join(decls)}" if decls else "this program declares no inputs"
            ]
            raise DeccError(f"unknown input '{name}'", hints=hints)
    env: dict[str, Any] = {}
    for name, decl in decls.items():
        if name in given:
            env[name] = _convert(decl, given[name])
        elif decl.default is not None:
            env[name] = decl.default
        else:
            raise DeccError(
                f"missing input '{name}'",
                decl.span,
                hints=[f"pass it with --input {name}=VALUE or run({name}=...)"],
            )
    return env


def _convert(decl: ir.InputDef, value: Any) -> Any:
    if decl.type == "str":
        return str(value)
    if not isinstance(value, str):
        ok = isinstance(value, {"int": int, "float": (int, float), "bool": bool}[decl.type])
        if ok and not (decl.type != "bool" and isinstance(value, bool)):
            return float(value) if decl.type == "float" else value
        raise DeccError(
            f"input '{decl.name}' must be of type {decl.type}, not {type(value).__name__}", decl.span
        )
    try:
        if decl.type == "bool":
            if value.lower() not in ("true", "false"):
                raise ValueError
            return value.lower() == "true"
        return int(value) if decl.type == "int" else float(value)
    except ValueError:
        raise DeccError(
            f"input '{decl.name}' must be of type {decl.type}, not {value!r}", decl.span
        ) from None


def _render(parts: tuple[str | ir.VarRef, ...], env: Mapping[str, Any]) -> str:
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(p)
        else:
            v = env[p.name]
            out.append(("true" if v else "false") if isinstance(v, bool) else str(v))
    return "".join(out)


def sampling_params(s: ir.Search) -> SamplingParams:
    """IR policy → runtime parameters; `sample(temperature=0)` is greedy, as in every sampler."""
    if not isinstance(s, ir.Sampling):
        from decc.compiler.printer import search_text

        raise DeccError(
            f"the runtime cannot run '{search_text(s).split('(')[0]}' search yet",
            hints=["greedy and sample(...) run today; the other policies type-check and compile"],
        )
    if s.greedy:
        return SamplingParams(greedy=True, seed=s.seed)
    return SamplingParams(
        greedy=s.greedy,
        temperature=s.temperature,
        top_k=s.top_k,
        top_p=s.top_p,
        seed=s.seed,
        min_p=s.min_p,
        typical_p=s.typical_p,
    )


def execute(plan: Plan, lm: LanguageModel, inputs: Mapping[str, Any]) -> Result:
    run = _Run(plan, lm, bind_inputs(plan.inputs, inputs))
    run.steps(plan.steps)
    return Result(
        values={k: s.value for k, s in run.results.items()},
        text="".join(run.text),
        token_ids=list(run.session.tokens),
        logprob=sum(s.logprob for s in run.results.values()),
        steps=run.results,
    )


class _Run:
    """One execution: the decode session (one KV cache), the variables so far and the text so far."""

    def __init__(self, plan: Plan, lm: LanguageModel, env: dict[str, Any]) -> None:
        self.plan = plan
        self.tok = lm.tokenizer
        self.session = DecodeSession(lm)
        self.env = env
        self.text: list[str] = []
        self.results: dict[str, StepResult] = {}
        self.first = True

    def steps(self, steps: tuple[Step, ...]) -> None:
        for step in steps:
            if isinstance(step, PlanText):
                piece = _render(step.parts, self.env)
                self.text.append(piece)
                special = self.first and self.plan.add_special_tokens
                self.session.append(self.tok.encode(piece, add_special_tokens=special))
                self.first = False
            elif isinstance(step, PlanGen):
                self.generate(step)
                self.first = False
            else:
                self.branch(step)

    def branch(self, step: PlanBranch) -> None:
        for test, body in step.cases:
            if test.holds(_render((test.var,), self.env)):
                self.steps(body)
                return
        self.steps(step.otherwise)

    def generate(self, step: PlanGen) -> None:
        op = step.op
        gen = self.session.generate(
            max_tokens=op.max_tokens,
            sampling=sampling_params(op.search),
            matcher=step.constraint.matcher() if step.constraint is not None else None,
            stop=op.stop,
            ignore_eos=not op.eos,
            min_tokens=op.min_tokens,
            stop_regex=op.stop_regex,
            stop_entropy=(
                None
                if op.stop_entropy is None
                else (op.stop_entropy.above, op.stop_entropy.threshold, op.stop_entropy.steps)
            ),
        )
        self.env[op.name] = gen.text
        self.text.append(gen.text)
        self.results[op.name] = StepResult(op.name, gen.text, gen.token_ids, gen.logprob, gen.finish_reason)
