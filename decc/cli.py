"""The `decc` command line: run, check and compile `.dec` programs.

Exit codes: 0 success, 2 a user error (rendered diagnostics, never a traceback), 70 an internal error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from decc.errors import DeccError

EMIT_STAGES = ("ast", "ir", "opt", "plan")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="decc", description="A declarative language and compiler for LLM decoding."
    )
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a .dec program and print what it generated")
    run.add_argument("file")
    run.add_argument(
        "--input", "-i", action="append", default=[], metavar="NAME=VALUE", help="an input value"
    )
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument(
        "--model", help="override the program's model (a local transformers folder or 'default')"
    )

    check = sub.add_parser("check", help="run every static check; exit 0, or 2 with diagnostics")
    check.add_argument("files", nargs="+")

    test = sub.add_parser("test", help="property-test every constraint of a program on its tokenizer")
    test.add_argument("file")
    test.add_argument("--draws", type=int, default=100, help="draws per check (default 100)")
    test.add_argument("--seed", type=int, default=0)
    test.add_argument("--model", help="the model whose tokenizer to test with (default: the program's)")

    comp = sub.add_parser("compile", help="print a compiler stage")
    comp.add_argument("file")
    comp.add_argument("--emit", choices=EMIT_STAGES, default="opt")
    comp.add_argument(
        "--print-after-all", action="store_true", help="print the IR after lowering and each pass"
    )
    comp.add_argument("--model", help="the model whose tokenizer the plan is built for")
    return p


def _inputs(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise DeccError(f"--input expects NAME=VALUE, got {pair!r}")
        out[name.strip()] = value
    return out


def cmd_run(args: argparse.Namespace) -> int:
    import decc

    program = decc.load(args.file, model=args.model)
    result = program.run(**_inputs(args.input))
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        for name, value in result.values.items():
            print(f"{name}: {value}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from decc.compiler.pipeline import compile_program
    from decc.dsl import parse_file

    failed = 0
    for path in args.files:
        try:
            compile_program(parse_file(path))
        except DeccError as e:
            print(e.render(), file=sys.stderr)
            failed += 1
    if failed:
        print(f"{failed} of {len(args.files)} file(s) failed", file=sys.stderr)
        return 2
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    """Exit 0 when every check passes, 1 when one fails (with a minimal counterexample), 2 on bad input."""
    import decc
    from decc.proptest import check_program, render

    if args.draws < 1:
        raise DeccError("--draws must be at least 1")
    program = decc.load(args.file, model=args.model)
    reports = check_program(program, draws=args.draws, seed_value=args.seed)
    print(render(reports, args.file, args.draws, args.seed))
    return 0 if all(r.ok for r in reports) else 1


def cmd_compile(args: argparse.Namespace) -> int:
    from decc.compiler.pipeline import compile_program
    from decc.compiler.printer import print_ast, print_ir
    from decc.dsl import parse_file

    tree = parse_file(args.file)
    if args.emit == "ast":
        sys.stdout.write(print_ast(tree))
        return 0

    def dump(stage: str, module: object) -> None:
        if args.print_after_all:
            sys.stdout.write(f"// after {stage}\n{print_ir(module)}")  # type: ignore[arg-type]

    module = compile_program(tree, dump=dump, stop_after="ir" if args.emit == "ir" else None)
    if args.print_after_all:
        return 0
    if args.emit in ("ir", "opt"):
        sys.stdout.write(print_ir(module))
        return 0
    from decc.api import Program
    from decc.compiler.plan import print_plan

    sys.stdout.write(print_plan(Program(tree, module, args.model).plan()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = {"run": cmd_run, "check": cmd_check, "test": cmd_test, "compile": cmd_compile}[args.command]
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
