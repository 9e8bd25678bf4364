"""Plan → tokens: runs each step of a compiled plan in one decode session (one KV cache for the program)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from decc.compiler.plan import (
    SMC,
    Beam,
    BestOfN,
    FirstFinish,
    Input,
    Plan,
    PlanBranch,
    PlanGen,
    PlanText,
    Policy,
    Rules,
    Sampling,
    Step,
    Var,
)
from decc.errors import DeccError, InternalError, did_you_mean
from decc.grammars.tokens.healing import HealingMatcher, can_heal
from decc.grammars.tokens.vocab import encode_in_context
from decc.runtime.aligned import AlignedTrie
from decc.runtime.beam import beam_search
from decc.runtime.decode import DecodeSession
from decc.runtime.drafts import Drafter, SuffixStore
from decc.runtime.model import LanguageModel
from decc.runtime.particles import BestOfRun, FirstFinishRun, ParticlePolicy, SMCRun, run_particles
from decc.runtime.rewards import scorer
from decc.runtime.sampling import GREEDY, SamplingParams, make_generator
from decc.runtime.step import Generation, Hypothesis, StepRules, Track


@dataclass(frozen=True)
class StepResult:
    """One step's value. `hypotheses` are the answers a search policy finished with: beams best first,
    best-of / first-finish / SMC samples in sample order (only those that completed, when any did); empty
    for greedy and sample. `complete` is False when max_tokens cut a constrained value before its
    constraint accepted it: `value` is then a prefix of a valid value, not one."""

    name: str
    value: str
    token_ids: tuple[int, ...]
    logprob: float
    finish_reason: str
    hypotheses: tuple[Hypothesis, ...] = ()
    # Token healing: the prompt text the first tokens re-spell (taken back from the prompt, not part of
    # `value`); `token_ids` spell it and then the value.
    healed: str = ""
    complete: bool = True


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
    forward_passes: int = 0  # model forward passes the run made (what the optimizer saves)

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    @property
    def cut(self) -> tuple[str, ...]:
        """The steps whose constrained value max_tokens cut before it was valid (`StepResult.complete`)."""
        return tuple(name for name, s in self.steps.items() if not s.complete)

    def to_json(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "text": self.text,
            "token_ids": self.token_ids,
            "logprob": self.logprob,
            "finish_reasons": {k: s.finish_reason for k, s in self.steps.items()},
            "cut": list(self.cut),
            "hypotheses": {
                k: [
                    {
                        "text": h.text,
                        "score": h.score,
                        "logprob": h.logprob,
                        "finish_reason": h.finish_reason,
                        "complete": h.complete,
                    }
                    for h in s.hypotheses
                ]
                for k, s in self.steps.items()
                if s.hypotheses
            },
        }


def bind_inputs(inputs: tuple[Input, ...], given: Mapping[str, Any]) -> dict[str, Any]:
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


def _convert(decl: Input, value: Any) -> Any:
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


def render_text(parts: tuple[str | Var, ...], env: Mapping[str, Any]) -> str:
    """A text step's text (or a branch test's variable): literal pieces and variables, booleans as
    `true`/`false`. Every engine renders through this, so a row's context is the same text on each."""
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(p)
        else:
            v = env[p.name]
            out.append(("true" if v else "false") if isinstance(v, bool) else str(v))
    return "".join(out)


def encode_text(tok: Any, piece: str, first: bool, add_special_tokens: bool) -> list[int]:
    """A text step's tokens: the start of the context is encoded as the model's own prompts are; a piece
    mid-context with no SentencePiece prefix space before it. Every engine tokenizes text through this."""
    if first:
        return list(tok.encode(piece, add_special_tokens=add_special_tokens))
    return list(encode_in_context(tok, piece))


def choose_branch(step: PlanBranch, env: Mapping[str, Any]) -> tuple[Step, ...]:
    """The steps of the first case whose test holds on the run's values, else the otherwise branch."""
    for test, body in step.cases:
        if test.holds(render_text((test.var,), env)):
            return body
    return step.otherwise


def start_token(tok: Any, op: PlanGen) -> int:
    """The token a program that opens with gen `op` starts from: the model's BOS, else a user error."""
    bos = getattr(tok, "bos_token_id", None)
    if bos is None:
        raise DeccError(
            f"'{op.name}' is generated before any text, and this model has no start token",
            op.span,
            hints=["put a prompt before the first gen"],
        )
    return bos


def sampling_params(s: Sampling) -> SamplingParams:
    """The plan's sampling → runtime parameters; `sample(temperature=0)` is greedy, as in every sampler."""
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


def execute(
    plan: Plan,
    lm: LanguageModel,
    inputs: Mapping[str, Any],
    aligned: dict[tuple[str, tuple[int, ...]], AlignedTrie] | None = None,
    suffixes: dict[str, SuffixStore] | None = None,
    on_text: Callable[[str, str], None] | None = None,
) -> Result:
    """Run `plan`. `aligned` holds the ASAp tries of `mode: aligned` steps, keyed by step and context; pass
    the same dict to every run of a program so its aligned draws converge (a fresh one otherwise).
    `suffixes` holds each step's earlier values for suffix-match drafts: shared the same way, it makes
    later runs faster (never different). `on_text(name, piece)` gets each value's text as it is decoded
    (a search policy's value once, when it is chosen), after an empty piece when its step starts; the
    pieces of a value add up to it."""
    run = ProgramRun(plan, lm, bind_inputs(plan.inputs, inputs), {} if aligned is None else aligned, suffixes)
    for step in run.walk(plan.steps):
        run.generate(step, on_text)
    return run.result()


class ProgramRun:
    """One execution: the decode session (one KV cache), the variables so far and the text so far."""

    def __init__(
        self,
        plan: Plan,
        lm: LanguageModel,
        env: dict[str, Any],
        aligned: dict[tuple[str, tuple[int, ...]], AlignedTrie],
        suffixes: dict[str, SuffixStore] | None = None,
    ) -> None:
        self.plan = plan
        self.suffixes = {} if suffixes is None else suffixes
        self.lm = lm
        self.aligned = aligned
        self.tok = lm.tokenizer
        self.session = DecodeSession(lm)
        self.env = env
        self.text: list[str] = []
        self.results: dict[str, StepResult] = {}
        self.first = True
        self.tail: list[int] = []  # the tokens of the text piece just appended ([] after a gen)

    def walk(self, steps: tuple[Step, ...]) -> Iterator[PlanGen]:
        """Run the text and branch steps; yield each gen step for the driver, which generates it (with
        `generate`, or batched with other runs and `record`) before the walk goes on."""
        for step in steps:
            if isinstance(step, PlanText):
                piece = render_text(step.parts, self.env)
                self.text.append(piece)
                self.tail = encode_text(self.tok, piece, self.first, self.plan.add_special_tokens)
                self.session.append(self.tail)
                self.first = False
            elif isinstance(step, PlanGen):
                self._start(step)
                yield step
                self.first = False
                self.tail = []
            else:
                yield from self.walk(choose_branch(step, self.env))

    def _start(self, op: PlanGen) -> None:
        if not len(self.session):  # a program that opens with a gen: the model needs a first token
            self.session.append([start_token(self.tok, op)])

    def result(self) -> Result:
        return Result(
            values={k: s.value for k, s in self.results.items()},
            text="".join(self.text),
            token_ids=list(self.session.tokens),
            logprob=sum(s.logprob for s in self.results.values()),
            steps=self.results,
            forward_passes=self.session.forward_calls,
        )

    def record(self, op: PlanGen, gen: Generation, hyps: tuple[Hypothesis, ...] = ()) -> None:
        """Keep the value (the session already holds its tokens); remember it for suffix drafts."""
        if "suffix" in op.draft:
            tokens, end = self.session.tokens, len(self.session.tokens) - len(gen.token_ids)
            store = self.suffixes.setdefault(op.name, SuffixStore())
            store.add(tokens[max(0, end - store.max_ngram) : end], gen.token_ids)
        self.env[op.name] = gen.text
        self.text.append(gen.text)
        self.results[op.name] = StepResult(
            op.name,
            gen.text,
            gen.token_ids,
            gen.logprob,
            gen.finish_reason,
            hyps,
            healed=gen.healed,
            complete=gen.complete,
        )

    def drafter(self, op: PlanGen) -> Drafter | None:
        if not op.draft:
            return None
        tok = self.lm.tokenizer
        encode = (lambda text: tok.encode(text, add_special_tokens=False)) if "text" in op.draft else None
        suffix = self.suffixes.setdefault(op.name, SuffixStore()) if "suffix" in op.draft else None
        return Drafter(forced="forced" in op.draft, lookup="lookup" in op.draft, encode=encode, suffix=suffix)

    def healer(self, op: PlanGen, matcher: Any | None) -> HealingMatcher | None:
        """Heal a text-then-gen boundary (grammars/tokens/healing.py): take the prompt's last token back out of
        the context and return the matcher whose first tokens re-spell it; None where the step is not
        healed (`heal: false`, no text just before, a search policy or `mode: aligned`, a special or added
        token, text that is not whole characters, a CFG constraint, a value already complete)."""
        tail, vocab = self.tail, self.plan.vocab
        if not (
            op.heal and tail and isinstance(op.policy, Sampling) and not op.aligned and op.rules.max_tokens
        ):
            return None
        if not can_heal(matcher) or (matcher is not None and _done(matcher)) or len(self.session) < 2:
            return None
        token = tail[-1]
        data = vocab.token_bytes[token] if token < len(vocab.token_bytes) else None
        added = getattr(self.tok, "added_tokens_decoder", None) or {}
        if not data or token in vocab.special_ids or token in added:
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if self.tok.decode([token]) != text:
            return None
        self.session.take_last()
        self.tail = []
        return HealingMatcher(data, matcher, vocab)

    def generate(self, step: PlanGen, on_text: Callable[[str, str], None] | None = None) -> None:
        """Run one gen step with the runner its policy type is registered to (`STEP_RUNNERS`)."""
        matcher = step.constraint.matcher() if step.constraint is not None else None
        emit = (lambda piece: on_text(step.name, piece)) if on_text is not None else None
        if emit is not None:
            emit("")  # the step starts: a stream names each value before its text arrives
        runner = STEP_RUNNERS.get(type(step.policy))
        if runner is None:
            raise InternalError(f"no runner for search policy {step.policy!r}")
        gen, hyps = runner(self, step, matcher, emit)
        self.record(step, gen, hyps)


Emit = Callable[[str], None] | None
StepRunner = Callable[[ProgramRun, PlanGen, Any | None, Emit], tuple[Generation, tuple[Hypothesis, ...]]]


def _sample_step(
    run: ProgramRun, step: PlanGen, matcher: Any | None, emit: Emit
) -> tuple[Generation, tuple[Hypothesis, ...]]:
    """Greedy or sampled decoding of one value (healing, aligned tries and drafts apply here only)."""
    assert isinstance(step.policy, Sampling)
    matcher = run.healer(step, matcher) or matcher
    trie = None
    if step.aligned:
        trie = run.aligned.setdefault((step.name, tuple(run.session.tokens)), AlignedTrie())
    rules = step_rules(step, run.lm.eos_ids)
    gen = run.session.generate(
        max_tokens=rules.max_tokens,
        sampling=sampling_params(step.policy),
        matcher=matcher,
        stop=rules.stops,
        ignore_eos=rules.ignore_eos,
        min_tokens=rules.min_tokens,
        stop_regex=rules.stop_regex,
        stop_entropy=rules.stop_entropy,
        aligned=trie,
        drafter=run.drafter(step),
        on_text=emit,
    )
    return gen, ()


def _search_step(
    run: ProgramRun, step: PlanGen, matcher: Any | None, emit: Emit
) -> tuple[Generation, tuple[Hypothesis, ...]]:
    """A search policy's value, known only at its end."""
    gen, found = run_search(run.session, step.policy, step_rules(step, run.lm.eos_ids), matcher)
    if emit is not None and gen.text:
        emit(gen.text)
    return gen, tuple(found)


def _done(matcher: Any) -> bool:
    return bool(matcher.is_accepting() and not matcher.can_continue())


def step_rules(step: PlanGen, eos_ids: frozenset[int]) -> StepRules:
    """How a gen step's value may grow and end, apart from its policy."""
    r: Rules = step.rules
    e = r.stop_entropy
    entropy = None if e is None else (e.above, e.threshold, e.steps)
    return StepRules(r.max_tokens, eos_ids, r.min_tokens, not r.eos, r.stop, r.stop_regex, entropy)


SearchRunner = Callable[[DecodeSession, Any, StepRules, Any | None], tuple[Track, list[Hypothesis]]]


def _beam(
    session: DecodeSession, policy: Beam, rules: StepRules, matcher: Any | None
) -> tuple[Track, list[Hypothesis]]:
    if rules.stop_entropy is not None:
        # compiler/search.py refuse_unsupported turns this away at compile time, with its position
        raise InternalError("stop_entropy reached beam search past the compiler's check")
    return beam_search(session, policy, rules, matcher)


def _particles(
    session: DecodeSession, particle: ParticlePolicy, rules: StepRules, matcher: Any | None
) -> tuple[Track, list[Hypothesis]]:
    generator = None if particle.sampling.greedy else make_generator(particle.sampling.seed)
    return run_particles(session, particle, rules, matcher, generator)


def _best_of(
    session: DecodeSession, policy: BestOfN, rules: StepRules, matcher: Any | None
) -> tuple[Track, list[Hypothesis]]:
    params = BestOfRun(policy.n, sampling_params(policy.sampling), scorer(policy.score))
    return _particles(session, params, rules, matcher)


def _first_finish(
    session: DecodeSession, policy: FirstFinish, rules: StepRules, matcher: Any | None
) -> tuple[Track, list[Hypothesis]]:
    params = FirstFinishRun(policy.n, sampling_params(policy.sampling))
    return _particles(session, params, rules, matcher)


def _smc(
    session: DecodeSession, policy: SMC, rules: StepRules, matcher: Any | None
) -> tuple[Track, list[Hypothesis]]:
    params = SMCRun(
        policy.particles,
        sampling_params(policy.sampling),
        potential=scorer(policy.potential) if policy.potential is not None else None,
        ess_threshold=policy.ess_threshold,
        resampling=policy.resampling,
    )
    return _particles(session, params, rules, matcher)


# Each search policy's runner, by its plan type (a new policy is one entry here, not another isinstance).
SEARCH_RUNNERS: dict[type, SearchRunner] = {
    Beam: _beam,
    BestOfN: _best_of,
    FirstFinish: _first_finish,
    SMC: _smc,
}
# Each policy's single-run step runner, by its plan type.
STEP_RUNNERS: dict[type, StepRunner] = {Sampling: _sample_step, **dict.fromkeys(SEARCH_RUNNERS, _search_step)}


def run_search(
    session: DecodeSession, policy: Policy, rules: StepRules, matcher: Any | None
) -> tuple[Generation, list[Hypothesis]]:
    """Beam search, best-of-n, first-finish or SMC for one step: the winner and every hypothesis."""
    tok = session.lm.tokenizer
    if rules.max_tokens == 0 or (
        matcher is not None and matcher.is_accepting() and not matcher.can_continue()
    ):
        gen = session.generate(max_tokens=rules.max_tokens, sampling=GREEDY, matcher=matcher)
        return gen, []
    runner = SEARCH_RUNNERS.get(type(policy))
    if runner is None:
        raise InternalError(f"unknown search policy {policy!r}")
    winner, hyps = runner(session, policy, rules, matcher)
    return winner.generation(tok), hyps
