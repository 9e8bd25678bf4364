"""The one pass pipeline: lower the AST, then run each pass, verifying (and optionally dumping) after each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from decc.compiler import ir
from decc.compiler.lower import lower
from decc.compiler.passes.check_branches import check_branches
from decc.compiler.passes.check_engine import check_engine, check_engine_name
from decc.compiler.passes.check_heal import check_heal
from decc.compiler.passes.check_stops import check_stops
from decc.compiler.passes.choose_engine import choose_engine
from decc.compiler.passes.compile_constraints import compile_constraints
from decc.compiler.passes.fold import fold
from decc.compiler.passes.minimize import minimize
from decc.compiler.passes.product import product
from decc.compiler.passes.prune import prune
from decc.compiler.passes.resolve_names import resolve_names
from decc.compiler.passes.speculate import speculate
from decc.compiler.remarks import remarks as describe
from decc.compiler.trust import Trust
from decc.compiler.verify import verify
from decc.dsl import ast
from decc.errors import DeccError
from decc.grammars.errors import GrammarLimitError
from decc.grammars.limits import compile_seconds, deadline


@dataclass(frozen=True)
class Pass:
    """A named, pure IR rewrite and the invariants that hold after it."""

    name: str
    run: Callable[[ir.Module], ir.Module]
    resolved: bool = False
    compiled: bool = False
    optimization: bool = False  # outputs are the same without it: `--no-opt NAME` skips it
    remark: bool = False  # say what it did in the remarks, as optimization passes do
    decc_only: bool = False  # what it adds only decc's own engine uses: skipped for another (--engine vllm)


PIPELINE: tuple[Pass, ...] = (
    Pass("resolve-names", resolve_names, resolved=True),
    Pass("check-engine", check_engine, resolved=True),
    Pass("choose-engine", choose_engine, resolved=True, remark=True),
    Pass("compile-constraints", compile_constraints, resolved=True, compiled=True),
    Pass("check-stops", check_stops, resolved=True, compiled=True),
    Pass("check-branches", check_branches, resolved=True, compiled=True),
    Pass("check-heal", check_heal, resolved=True, compiled=True),
    Pass("product", product, resolved=True, compiled=True, optimization=True),
    Pass("prune", prune, resolved=True, compiled=True, optimization=True),
    Pass("minimize", minimize, resolved=True, compiled=True, optimization=True),
    Pass("fold", fold, resolved=True, compiled=True, optimization=True),
    Pass("speculate", speculate, resolved=True, compiled=True, optimization=True, decc_only=True),
)
OPTIMIZATIONS: tuple[str, ...] = tuple(p.name for p in PIPELINE if p.optimization)

Dump = Callable[[str, ir.Module], None]


def compile_program(
    program: ast.Program,
    *,
    dump: Dump | None = None,
    stop_after: str | None = None,
    disabled: frozenset[str] = frozenset(),
    remarks: list[str] | None = None,
    trust: Trust | None = None,
    engine: str = "decc",
) -> ir.Module:
    """AST → optimized IR. `dump(stage, module)` sees the IR after lowering ('ir') and after each pass;
    the optimization passes named in `disabled` are skipped (`check_optimizations` vets the names).
    `remarks`, if given, receives a line or two per optimization pass on what it did (or "turned off").
    `trust` says what the program's references may reach; the default imports none of its modules.
    `engine` is the engine it is compiled for: "vllm" refuses what vLLM cannot run (passes/check_engine.py)
    and skips the passes whose output only decc's engine reads.

    The whole compile runs under one compile time limit (grammars/limits.py), not one per pass: a
    constraint that took most of it to build cannot take as long again to minimize."""
    check_engine_name(engine)
    with deadline(compile_seconds()):
        try:
            return _compile(program, dump, stop_after, disabled, remarks, trust, engine)
        except GrammarLimitError as e:  # a pass that had no constraint to point at
            raise DeccError(e.message, hints=e.hints) from None


def _compile(
    program: ast.Program,
    dump: Dump | None,
    stop_after: str | None,
    disabled: frozenset[str],
    remarks: list[str] | None,
    trust: Trust | None,
    engine: str,
) -> ir.Module:
    module = lower(program, trust)
    if engine != module.engine:
        module = replace(module, engine=engine)
    verify(module)
    if dump:
        dump("ir", module)
    if stop_after == "ir":
        return module
    for p in PIPELINE:
        if p.name in disabled or (p.decc_only and module.engine != "decc"):
            if remarks is not None:
                why = "" if p.name in disabled else f" (only decc's own engine uses it, not {module.engine})"
                remarks.append(f"{p.name}: turned off{why}")
            continue
        before, module = module, p.run(module)
        if remarks is not None and (p.optimization or p.remark):
            said = describe(p.name, before, module)
            # a pass that only reports (choose-engine) says nothing when it had nothing to choose
            remarks.extend(said if p.optimization else [line for line in said if "nothing to do" not in line])
        verify(module, resolved=p.resolved, compiled=p.compiled)
        if dump:
            dump(p.name, module)
        if stop_after == p.name:
            break
    return module


def check_optimizations(names: Sequence[str]) -> frozenset[str]:
    """The names as a set, or a user error naming the optimization passes there are."""
    for name in names:
        if name not in OPTIMIZATIONS:
            raise DeccError(
                f"no optimization pass named {name!r}", hints=[f"the passes are: {', '.join(OPTIMIZATIONS)}"]
            )
    return frozenset(names)
