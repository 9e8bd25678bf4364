"""Pass (a check; the module comes back unchanged but for its warnings): a program compiled for an engine
other than decc's own (`--engine vllm`) may use only what that engine runs. Every feature it cannot run
is refused at the option, policy or argument that asks for it, all of them at once (one `Refusals`), so
`decc check --engine vllm` lists everything to change before a two-minute engine start finds the first.
The table in docs/language.md ("Engines") says the same; tests/test_check_engine.py holds them together."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

from decc.compiler import ir
from decc.compiler.search import policy_name
from decc.errors import DeccError, DeccWarning, Span, unknown

ENGINES = ("decc", "vllm")
ON_DECC = "it runs on decc's own engine: drop --engine vllm"
# best_of's score under vLLM: the n samples come back with their log-probabilities; no other reward is
# computed there (a reward that picks among samples is reward-guided decoding, which runs on decc's engine)
VLLM_SCORES = ("logprob",)


class Refusals(DeccError):
    """Several positioned errors found together; it renders each one, and is the first for `span`."""

    def __init__(self, errors: Iterable[DeccError]) -> None:
        self.errors = tuple(errors)
        first = self.errors[0]
        super().__init__(first.message, first.span, hints=first.hints, notes=first.notes)

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors)


def check_engine_name(engine: str) -> str:
    """`engine` if decc has it, else a user error listing the engines."""
    if engine not in ENGINES:
        raise unknown("engine", str(engine), None, ENGINES)
    return engine


def check_engine(module: ir.Module) -> ir.Module:
    if module.engine == "decc":
        return module
    refused: list[DeccError] = []
    found: list[DeccWarning] = []
    for op in ir.walk(module.body):
        if isinstance(op, ir.Generate):
            refused += _refusals(op)
            if op.heal and op.heal_span is not None and isinstance(op.search, ir.Sampling) and not op.aligned:
                found.append(
                    DeccWarning(
                        "heal: true has no effect under --engine vllm: token healing runs on decc's own engine",
                        op.heal_span,
                        hints=("remove it; under vLLM the prompt's tokens stay as they are",),
                    )
                )
    if refused:  # a `let` policy used by several steps is refused once, at the definition
        unique = {(e.message, e.span): e for e in refused}
        raise Refusals(unique.values())
    return replace(module, warnings=module.warnings + tuple(found)) if found else module


def _refusals(op: ir.Generate) -> Iterator[DeccError]:
    """What vLLM cannot run in one step, each at the place that asks for it."""
    search_at = op.option_span("search") or op.span
    policy = op.search
    if isinstance(policy, (ir.Beam, ir.SMC)):
        why = "vLLM has no beam search" if isinstance(policy, ir.Beam) else "vLLM cannot reweight or resample"
        yield _refuse(f"{policy_name(policy)}(...) is not supported under --engine vllm: {why}", search_at)
    sampling = policy.sampling if isinstance(policy, (ir.BestOfN, ir.FirstFinish, ir.SMC)) else policy
    if isinstance(sampling, ir.Sampling) and sampling.typical_p != 1.0:
        yield _refuse(
            "typical_p is not supported under --engine vllm: vLLM has no typical sampling",
            op.option_span("search.typical_p") or search_at,
            "or drop typical_p (top_p and min_p run under vLLM)",
        )
    if isinstance(policy, ir.BestOfN) and policy.score.kind not in VLLM_SCORES:
        kind = policy.score.kind
        shown = kind if kind in ("length", "logprob") else f"{kind}(...)"
        yield _refuse(
            f"best_of(score={shown}) is not supported under --engine vllm: a reward that picks among samples "
            "runs on decc's own engine",
            policy.score.span or op.option_span("search.score") or search_at,
            "or drop score= (best_of keeps the sample with the highest logprob)",
        )
    if op.aligned:
        yield _refuse(
            "mode: aligned is not supported under --engine vllm: ASAp reweights tokens by estimates kept "
            "across runs",
            op.option_span("mode") or op.span,
            "or use mode: masked (the default)",
        )
    if op.stop_regex is not None:
        yield _refuse(
            "stop_regex is not supported under --engine vllm: vLLM stops at strings only",
            op.option_span("stop_regex") or op.span,
            "or use stop: with the strings the regex matches",
        )
    if op.stop_entropy is not None:
        yield _refuse(
            "stop_entropy is not supported under --engine vllm: vLLM does not stop on the next-token entropy",
            op.option_span("stop_entropy") or op.span,
        )


def _refuse(message: str, span: Span, other: str = "") -> DeccError:
    return DeccError(message, span, hints=[ON_DECC + (f"; {other}" if other else "")])
