"""The `decc` command line: run, check and compile `.dec` programs.

Exit codes: 0 success, 2 a user error (rendered diagnostics, never a traceback), 70 an internal error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from decc.errors import DeccError, DeccWarning

EMIT_STAGES = ("ast", "ir", "opt", "plan")


def _parser() -> argparse.ArgumentParser:
    from decc import __version__

    p = argparse.ArgumentParser(
        prog="decc", description="A declarative language and compiler for LLM decoding."
    )
    p.add_argument("--version", action="version", version=f"decc {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a .dec program and print what it generated")
    run.add_argument("file")
    run.add_argument(
        "--input", "-i", action="append", default=[], metavar="NAME=VALUE", help="an input value"
    )
    run.add_argument(
        "--json", action="store_true", help="print one JSON object (with timings and forward passes)"
    )
    run.add_argument(
        "--max-tokens", type=int, metavar="N", help="override max_tokens of every gen step (at least 1)"
    )
    run.add_argument("--seed", type=int, metavar="S", help="the seed of every sampling step (0 <= S < 2**64)")
    run.add_argument(
        "--stream", action="store_true", help="print values as they are decoded (the default on a terminal)"
    )
    run.add_argument("--inputs", metavar="FILE", help="a JSONL file of inputs, one run per line (batched)")
    run.add_argument(
        "--out", metavar="FILE", help="with --inputs: append result rows here; reruns skip done rows"
    )
    run.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help=f"with --inputs: runs decoded together ({BATCH_SIZES['decc']}; --engine vllm: {BATCH_SIZES['vllm']})",
    )
    run.add_argument(
        "--ray", action="store_true", help="with --inputs: run the rows on a Ray actor pool (decc[ray])"
    )
    run.add_argument("--address", metavar="HOST:PORT", help="with --ray: the cluster (default: a local Ray)")
    run.add_argument("--actors", type=int, metavar="N", help="with --ray: actors, each a model (2)")
    run.add_argument(
        "--gpus-per-actor",
        type=float,
        metavar="G",
        help="with --ray: GPUs each actor asks for (0)",
    )
    run.add_argument(
        "--cpus-per-actor",
        type=float,
        metavar="C",
        help="with --ray: CPUs each actor asks for (1)",
    )
    run.add_argument(
        "--model", help="override the program's model (a local transformers folder or 'default')"
    )
    run.add_argument(
        "--device",
        metavar="D",
        help="auto (default: CUDA when torch sees a GPU, else the CPU), cpu, cuda or cuda:N",
    )
    run.add_argument(
        "--dtype",
        metavar="T",
        help="auto (default: bfloat16 on CUDA, float32 on the CPU), float32, bfloat16, float16",
    )
    run.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch's CPU threads (default: OMP_NUM_THREADS if set, else the physical cores)",
    )

    check = sub.add_parser("check", help="run every static check; exit 0, or 2 with diagnostics")
    check.add_argument("files", nargs="+")
    check.add_argument(
        "--model-free",
        action="store_true",
        help="skip the checks that need the model's tokenizer (max_tokens against the shortest output)",
    )
    check.add_argument("--model", help="the model whose tokenizer to check with (default: the program's)")

    test = sub.add_parser("test", help="property-test every constraint of a program on its tokenizer")
    test.add_argument("file")
    test.add_argument("--draws", type=int, default=100, help="draws per check (default 100)")
    test.add_argument("--seed", type=int, default=0)
    test.add_argument("--model", help="the model whose tokenizer to test with (default: the program's)")

    fmt = sub.add_parser("fmt", help="format .dec files canonically, in place (comments kept)")
    fmt.add_argument(
        "files", nargs="+", metavar="FILE", help="files to format; '-' reads stdin, writes stdout"
    )
    fmt.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    fmt.add_argument("--diff", action="store_true", help="write nothing; print what would change")

    comp = sub.add_parser("compile", help="print a compiler stage")
    comp.add_argument("file")
    comp.add_argument("--emit", choices=EMIT_STAGES, default="opt")
    comp.add_argument(
        "--print-after-all", action="store_true", help="print the IR after lowering and each pass"
    )
    comp.add_argument("--model", help="the model whose tokenizer the plan is built for")
    from decc.compiler.passes.check_engine import ENGINES
    from decc.compiler.pipeline import OPTIMIZATIONS

    for sp in (run, check, test, comp):
        _trust_flags(sp, imports=sp is not run)
    for sp in (run, check, comp):
        sp.add_argument(
            "--engine",
            choices=ENGINES,
            default="decc",
            help="what runs the program: decc's own loop (default) or vLLM (decc[vllm]); "
            "vllm refuses, at their positions, the features vLLM cannot run",
        )
    for sp in (run, comp):
        sp.add_argument(
            "--no-opt",
            action="append",
            default=[],
            metavar="PASS",
            help="skip an optimization pass (repeatable; outputs stay the same): " + ", ".join(OPTIMIZATIONS),
        )
    return p


def _trust_flags(sp: argparse.ArgumentParser, imports: bool) -> None:
    """What an untrusted program may reach (docs/language.md, "Modules and files")."""
    sp.add_argument(
        "--python-path",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder to find python(...) and json(model=...) modules in, besides the program's (repeatable)",
    )
    sp.add_argument(
        "--allow-installed",
        action="store_true",
        help="let python(...) and json(model=...) name the standard library and installed packages",
    )
    sp.add_argument(
        "--allow-files-outside",
        action="store_true",
        help="let file= name schema and grammar files outside the program's folder",
    )
    if imports:
        sp.add_argument(
            "--allow-imports",
            action="store_true",
            help="import the program's modules (run its code) now, as decc run does",
        )


def _trust(args: argparse.Namespace, **more: bool) -> Any:
    from pathlib import Path

    from decc.compiler.trust import Trust

    return Trust(
        tuple(Path(p) for p in args.python_path),
        args.allow_installed,
        args.allow_files_outside,
        getattr(args, "allow_imports", True),
        **more,
    )


def _trust_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The allowances as `decc.load` keyword arguments."""
    t = _trust(args)
    return {
        "python_path": t.python_path,
        "allow_installed": t.allow_installed,
        "allow_files_outside": t.allow_files_outside,
        "allow_imports": t.allow_imports,
    }


def _inputs(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise DeccError(f"--input expects NAME=VALUE, got {pair!r}")
        out[name.strip()] = value
    return out


def _warn(warnings: Sequence[DeccWarning]) -> None:
    for w in warnings:
        print(w.render(), file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    import decc

    if args.max_tokens is not None and args.max_tokens < 1:
        raise DeccError(f"--max-tokens must be at least 1, not {args.max_tokens}")
    if args.seed is not None and not 0 <= args.seed < 2**64:
        raise DeccError(f"--seed must be in [0, 2**64), not {args.seed}")
    if args.threads is not None and args.threads < 1:
        raise DeccError(f"--threads must be at least 1, not {args.threads}")
    _check_where(args)
    _check_ray_flags(args)
    start = time.perf_counter()
    where = {"device": args.device, "dtype": args.dtype, "threads": args.threads, "engine": args.engine}
    program = decc.load(args.file, model=args.model, no_opt=args.no_opt, **where, **_trust_kwargs(args))
    _warn(program.warnings)
    if args.max_tokens is not None or args.seed is not None:
        program = program.with_overrides(max_tokens=args.max_tokens, seed=args.seed)
    compiled = time.perf_counter()
    try:
        return _run_compiled(program, args, start, compiled)
    finally:
        program.close()  # a vLLM engine, if one started, shuts down before the process ends


def _run_compiled(program: Any, args: argparse.Namespace, start: float, compiled: float) -> int:
    """`decc run` once the program is compiled: a dataset, a stream, or one run printed."""
    if args.inputs is not None:
        return _run_batch(program, args)
    if args.out is not None:
        raise DeccError("--out goes with --inputs (a JSONL file of inputs)")
    inputs = _inputs(args.input)
    if not args.json and (args.stream or sys.stdout.isatty()):
        return _run_streaming(program, inputs)
    program.plan()  # the tokenizer and the token automata
    if program.engine == "vllm":
        program.vllm_runner()  # the vLLM engine starts (minutes)
    else:
        program.language_model()
    loaded = time.perf_counter()
    result = program.run(**inputs)
    done = time.perf_counter()
    _warn_cut(program, result)
    if args.json:
        timings = {"compile_s": compiled - start, "load_s": loaded - compiled, "decode_s": done - loaded}
        row = {**result.to_json(), "forward_passes": result.forward_passes, "timings": timings}
        print(json.dumps(row, ensure_ascii=False))
    else:
        for name, value in result.values.items():
            print(f"{name}: {value}")
    return 0


def _check_where(args: argparse.Namespace) -> None:
    """--device and --dtype spelled right, before anything is compiled."""
    from decc.devices import device_error, dtype_error

    for flag, value, check in (("--device", args.device, device_error), ("--dtype", args.dtype, dtype_error)):
        err = check(value) if value is not None else None
        if err is not None:
            raise DeccError(f"{flag}: {err.message}", hints=err.hints)


def _run_streaming(program: Any, inputs: dict[str, str]) -> int:
    """`name: value` lines as `run` prints them, each value written as it is decoded."""
    started = False
    for event in program.stream(**inputs):
        if not isinstance(event, tuple):
            _warn_cut(program, event)
            break
        name, piece = event
        if not piece:  # a step starts
            sys.stdout.write(("\n" if started else "") + f"{name}: ")
            started = True
        sys.stdout.write(piece)
        sys.stdout.flush()
    if started:
        sys.stdout.write("\n")
    return 0


def _warn_cut(program: Any, result: Any, where: str = "") -> None:
    """A `warning:` on stderr for each step whose constrained value max_tokens cut before it was valid."""
    from decc.compiler.plan import plan_gens

    if not result.cut:  # the usual case, every row of a batch: no walk of the plan
        return
    ops = {g.name: g for g in plan_gens(program.plan().steps)}
    for name in result.cut:
        op = ops.get(name)
        warning = DeccWarning(
            f"{where}max_tokens ({op.rules.max_tokens if op else '?'}) cut the value of '{name}' before its "
            "constraint accepted it: the value is incomplete",
            (op.max_tokens_span or op.span) if op else None,
            hints=["raise max_tokens, or tighten the constraint's length"],
        )
        print(warning.render(), file=sys.stderr)


def _run_batch(program: Any, args: argparse.Namespace) -> int:
    from decc.batch_io import ResultsFile, read_inputs

    batch_size = BATCH_SIZES[program.engine] if args.batch_size is None else args.batch_size
    if batch_size < 1:
        raise DeccError(f"--batch-size must be at least 1, not {batch_size}")
    common = _inputs(args.input)
    rows = [{**common, **row} for row in read_inputs(args.inputs)]
    out = ResultsFile(args.out, args.inputs) if args.out is not None else None
    todo = [i for i in range(len(rows)) if out is None or i not in out.done]
    if out is not None and len(todo) < len(rows):
        print(f"decc: {len(rows) - len(todo)} of {len(rows)} rows already in {args.out}", file=sys.stderr)
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="row", file=sys.stderr, disable=not todo)
    tokens = 0
    start = time.perf_counter()

    def done(k: int, result: Any, index: int | None = None) -> None:
        nonlocal tokens
        index = todo[k] if index is None else index
        tokens += sum(len(s.token_ids) for s in result.steps.values())
        row = result.to_json()
        _warn_cut(program, result, f"input row {index + 1}: ")
        if out is not None:
            out.write(index, row)
        else:
            print(json.dumps({"index": index, **row}, ensure_ascii=False), flush=True)
        bar.set_postfix_str(f"{tokens / max(time.perf_counter() - start, 1e-9):.1f} tok/s")
        bar.update(1)

    try:
        if args.ray:
            return _run_on_ray(program, args, {i: rows[i] for i in todo}, done, batch_size)
        program.run_batch([rows[i] for i in todo], batch_size=batch_size, on_result=done)
    finally:
        bar.close()
        if out is not None:
            out.close()
    return 0


BATCH_SIZES = {"decc": 8, "vllm": 64}  # --batch-size by engine: vLLM schedules big batches itself
RAY_FLAGS = {"address": None, "actors": 2, "gpus_per_actor": 0, "cpus_per_actor": 1}  # flag: its default


def _check_ray_flags(args: argparse.Namespace) -> None:
    """--ray with --inputs, and the Ray flags with --ray, before anything is compiled."""
    if args.ray and args.inputs is None:
        raise DeccError("--ray goes with --inputs (a JSONL file of inputs)")
    if args.ray and args.engine == "vllm":
        raise DeccError(
            "--ray does not go with --engine vllm: each Ray actor runs decc's own engine",
            hints=[
                "drop --ray: vLLM batches the rows itself",
                "or drop --engine vllm to run them on Ray actors",
            ],
        )
    for name in RAY_FLAGS:
        if getattr(args, name) is not None and not args.ray:
            raise DeccError(f"--{name.replace('_', '-')} goes with --ray")


def _run_on_ray(
    program: Any, args: argparse.Namespace, rows: dict[int, Any], done: Callable[..., None], batch_size: int
) -> int:
    """The rows on a Ray actor pool (decc/distributed.py); a failed row is reported and left for a rerun."""
    from tqdm import tqdm

    from decc.distributed import run_on_ray

    failed = internal = 0

    def error(e: Any) -> None:
        nonlocal failed, internal
        failed += 1
        internal += e.internal
        tqdm.write(e.message, file=sys.stderr)  # above the progress bar

    flags = {k: d if getattr(args, k) is None else getattr(args, k) for k, d in RAY_FLAGS.items()}
    run_on_ray(
        program,
        rows,
        **flags,
        batch_size=batch_size,
        on_result=lambda index, result: done(0, result, index),
        on_error=error,
        quiet=True,
    )
    if failed:
        where = "; a rerun with the same --out runs only them" if args.out else ""
        print(f"decc: {_count(failed, 'row')} of {len(rows)} failed{where}", file=sys.stderr)
        return 70 if internal else 2
    return 0


def _each_file(files: Sequence[str], handle: Callable[[str], None], failure: str) -> int:
    """Run `handle` on every file, rendering each one's error and going on; 2 if any failed, else 0."""
    failed = 0
    for path in files:
        try:
            handle(path)
        except DeccError as e:
            print(e.render(), file=sys.stderr)
            failed += 1
    if failed:
        print(f"{failed} of {len(files)} file(s) {failure}", file=sys.stderr)
        return 2
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Every static check; on success one line per file says what was checked (stdout)."""
    from decc.api import Program
    from decc.compiler import ir
    from decc.compiler.pipeline import compile_program
    from decc.dsl import parse_file
    from decc.grammars.limits import compile_seconds, deadline

    def check(path: str) -> None:
        with deadline(compile_seconds()):  # compiling and fitting to the vocabulary: one time limit
            checked(path)

    def checked(path: str) -> None:
        tree = parse_file(path)
        module = compile_program(tree, trust=_trust(args, check_only=True), engine=args.engine)
        found = module.warnings
        _warn(found)
        gens = [op for op in ir.walk(module.body) if isinstance(op, ir.Generate)]
        constrained = sum(op.constraint is not None for op in gens)
        what = f"{_count(len(gens), 'step')}, {_count(constrained, 'constraint')}"
        if args.model_free:
            tail = "compiled (model-free: the tokenizer checks were skipped)"
        else:
            program = Program(tree, module, args.model)
            program.plan()
            tail = f"compiled for the {_model_name(program.model)} tokenizer"
        warned = f", {_count(len(found), 'warning')}" if found else ""
        models = [
            op
            for op in gens
            if isinstance(op.constraint, ir.JsonSchema) and op.constraint.origin[:6] == "model:"
        ]
        if models and not args.allow_imports:
            warned += f"; {_count(len(models), 'pydantic model')} checked without importing (--allow-imports)"
        engine = f"; every step runs under --engine {args.engine}" if args.engine != "decc" else ""
        print(f"ok: {path} — {what} {tail}{warned}{engine}")

    return _each_file(args.files, check, "failed")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _model_name(spec: str) -> str:
    from decc.runtime.model import EMBEDDED_ALIASES, EMBEDDED_NAME

    return EMBEDDED_NAME if spec in EMBEDDED_ALIASES else spec


def cmd_test(args: argparse.Namespace) -> int:
    """Exit 0 when every check passes, 1 when one fails (with a minimal counterexample), 2 on bad input."""
    import decc
    from decc.proptest import check_program, render

    if args.draws < 1:
        raise DeccError("--draws must be at least 1")
    program = decc.load(args.file, model=args.model, **_trust_kwargs(args))
    reports = check_program(program, draws=args.draws, seed_value=args.seed)
    print(render(reports, args.file, args.draws, args.seed))
    return 0 if all(r.ok for r in reports) else 1


def cmd_fmt(args: argparse.Namespace) -> int:
    """Exit 0 when done, 1 when --check finds a file to reformat, 2 when a file does not parse (left untouched)."""
    import difflib

    from decc.dsl import read_source
    from decc.dsl.format import format_source
    from decc.errors import Source

    changed: list[str] = []

    def fmt(path: str) -> None:
        source = Source("<stdin>", sys.stdin.read()) if path == "-" else read_source(path)
        out = format_source(source)
        if path == "-" and not (args.check or args.diff):
            sys.stdout.write(out)
            return
        if out == source.text:
            return
        changed.append(path)
        if args.diff:
            lines = difflib.unified_diff(
                source.text.splitlines(True),
                out.splitlines(True),
                source.path,
                f"{source.path} (formatted)",
            )
            sys.stdout.writelines(lines)
        if args.check:
            print(f"would reformat {source.path}", file=sys.stderr)
        elif not args.diff:
            _replace_file(path, out)
            print(f"reformatted {path}", file=sys.stderr)

    if _each_file(args.files, fmt, "could not be formatted"):
        return 2
    return 1 if args.check and changed else 0


def _replace_file(path: str, text: str) -> None:
    """Write through a temporary file and `os.replace`, so the file is always either the old or the new text."""
    import tempfile

    target = os.path.realpath(path)  # a symlink stays a symlink: its target is rewritten
    folder, name = os.path.split(target)
    try:
        mode = os.stat(target).st_mode & 0o7777
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise DeccError(f"cannot write '{path}': {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise DeccError(f"cannot write '{path}': {e.strerror or e}") from None
        raise


def cmd_compile(args: argparse.Namespace) -> int:
    from decc.compiler.pipeline import check_optimizations, compile_program
    from decc.compiler.printer import print_ast, print_ir
    from decc.dsl import parse_file

    tree = parse_file(args.file)
    if args.emit == "ast":
        sys.stdout.write(print_ast(tree))
        return 0

    def dump(stage: str, module: object) -> None:
        if args.print_after_all:
            sys.stdout.write(f"// after {stage}\n{print_ir(module)}")  # type: ignore[arg-type]

    notes: list[str] = []
    module = compile_program(
        tree,
        dump=dump,
        stop_after="ir" if args.emit == "ir" else None,
        disabled=check_optimizations(args.no_opt),
        remarks=notes,
        trust=_trust(args),
        engine=args.engine,
    )
    _warn(module.warnings)
    if args.print_after_all:
        return 0
    if args.emit == "ir":
        sys.stdout.write(print_ir(module))
        return 0
    if args.emit == "opt":
        sys.stdout.write(print_ir(module) + "".join(f"// {line}\n" for line in notes))
        return 0
    from decc.api import Program
    from decc.compiler.plan import print_plan

    sys.stdout.write(print_plan(Program(tree, module, args.model).plan()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = {"run": cmd_run, "check": cmd_check, "test": cmd_test, "compile": cmd_compile, "fmt": cmd_fmt}[
        args.command
    ]
    try:
        return handler(args)
    except DeccError as e:
        print(e.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("decc: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug in decc: say so plainly; the traceback only on request
        if os.environ.get("DECC_TRACEBACK"):
            raise
        print(f"decc: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        print("  (this is a bug in decc; set DECC_TRACEBACK=1 to see the traceback)", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
