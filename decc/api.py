"""The Python API: `decc.load(path) -> Program`, `Program.run(**inputs) -> Result`."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
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
