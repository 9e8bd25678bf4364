"""The Python API: `decc.load(path) -> Program`, `Program.run(**inputs) -> Result`, `Program.stream`."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decc.compiler import ir
from decc.compiler.pipeline import check_optimizations, compile_program
from decc.compiler.plan import Plan, lower_to_plan
from decc.dsl import ast, parse, parse_file
from decc.errors import Source
from decc.runtime.executor import Result

__all__ = ["Program", "Result", "load", "loads"]


class Program:
    """A parsed, checked and compiled `.dec` program. The tokenizer and model load lazily, once."""

    def __init__(self, tree: ast.Program, module: ir.Module, model: str | None = None) -> None:
        self.ast = tree
        self.ir = module
        self.model = model or module.model
        self._plan: Plan | None = None
        self._aligned: dict = {}  # ASAp estimates of `mode: aligned` steps, shared by every run
        self._suffixes: dict = {}  # each step's earlier values, for suffix-match drafts (speed only)

    @property
    def path(self) -> str:
        return self.ast.source.path

    def plan(self) -> Plan:
        if self._plan is None:
            from decc.grammars import Vocabulary
            from decc.runtime.model import load_tokenizer, model_facts

            tokenizer = load_tokenizer(self.model)
            size, eos = model_facts(self.model)
            vocab = Vocabulary.from_tokenizer(tokenizer, size=size, eos_ids=eos)
            self._plan = lower_to_plan(self.ir, tokenizer, vocab)
        return self._plan

    def run(self, **inputs: Any) -> Result:
        from decc.runtime.executor import execute
        from decc.runtime.model import load_language_model

        plan = self.plan()
        return execute(plan, load_language_model(self.model), inputs, self._aligned, self._suffixes)

    def stream(self, **inputs: Any) -> Iterator[tuple[str, str] | Result]:
        """Run as `run` does, yielding each value's text as it is decoded: `(name, piece)` pairs, the first
        of each step empty, then the `Result` (the same as `run`'s). The pieces of a value add up to it:
        text a stop string may still cut is held back (with a stop regex, the whole value waits for its
        end), and a search policy (beam, best-of, SMC, ...) gives its value in one piece once chosen."""
        from decc.runtime.executor import execute
        from decc.runtime.model import load_language_model

        plan = self.plan()
        lm = load_language_model(self.model)
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
        included); `on_result(index, result)` is called as results arrive."""
        from decc.runtime.batch import execute_batch
        from decc.runtime.model import load_language_model

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        plan = self.plan()
        lm = load_language_model(self.model)
        return execute_batch(
            plan,
            lm,
            inputs,
            batch_size=batch_size,
            aligned=self._aligned,
            on_result=on_result,
            suffixes=self._suffixes,
        )


class _Closed(Exception):
    """Raised in a streaming run's worker once its caller has stopped iterating."""


@dataclass(frozen=True)
class _Failed:
    """A streaming run's error, carried to the caller's thread."""

    error: BaseException


def load(path: str | Path, *, model: str | None = None, no_opt: Collection[str] = ()) -> Program:
    """Parse and compile a .dec file. `no_opt` names optimization passes to skip (outputs stay the same;
    see `decc.compiler.pipeline.OPTIMIZATIONS`)."""
    tree = parse_file(path)
    return Program(tree, compile_program(tree, disabled=check_optimizations(no_opt)), model)


def loads(
    text: str, path: str = "<string>", *, model: str | None = None, no_opt: Collection[str] = ()
) -> Program:
    tree = parse(Source(path, text))
    return Program(tree, compile_program(tree, disabled=check_optimizations(no_opt)), model)
