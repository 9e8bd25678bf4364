"""What a vLLM request's `decc_*` extra args ask for, and the decc constraint they name, bound to a vocabulary.

Kept apart from the processor (processor.py) so that it needs no vLLM: the frontend validates requests with
`request_constraint(..., vocab=None)` (compile only), the worker binds them over its tokenizer's vocabulary,
and tests call it directly.

The keys are flat strings so that they work both as `SamplingParams(extra_args=...)` and as `vllm_xargs` in an
OpenAI-compatible request:

| key | value |
|---|---|
| `decc_program` | a .dec program's source text |
| `decc_gen` | the name of the gen step whose constraint applies |
| `decc_gen_at` | optional: the gen's character offset in the source (two branches may reuse a name) |
| `decc_path` | optional: the program's path (its folder holds its modules and files; trusted engines only) |
| `decc_regex` | instead of a program: a regular expression |
| `decc_json_schema` | instead of a program: a JSON Schema (JSON text) |
| `decc_min_tokens` | EOS held back for that many tokens (vLLM's own `min_tokens` would mask EOS where the |
|                   | constraint allows nothing else) |
| `decc_ignore_eos` | EOS never ends the value, except where the constraint allows nothing more |
| `decc_trace` | optional: a label; with `DECC_VLLM_TRACE=FILE` in the engine's environment each masked step |
|              | of the request is appended to FILE (tests compare the masks with decc's own) |
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from decc.errors import DeccError

KEYS = frozenset(
    {
        "decc_program",
        "decc_gen",
        "decc_gen_at",
        "decc_path",
        "decc_regex",
        "decc_json_schema",
        "decc_min_tokens",
        "decc_ignore_eos",
        "decc_trace",
    }
)
# Set by VllmRunner for its own engine: request programs may import their modules and name their path.
TRUSTED_ENV = "DECC_VLLM_TRUSTED"
TRACE_ENV = "DECC_VLLM_TRACE"


@dataclass(frozen=True)
class RequestConstraint:
    """One request's constraint source and EOS rules, read from its extra args."""

    program: str | None
    gen: str | None
    gen_at: int | None
    path: str
    regex: str | None
    json_schema: str | None
    min_tokens: int
    ignore_eos: bool
    trace: str | None


def wanted(extra: Mapping[str, Any] | None) -> bool:
    """Whether a request opts into decc's processor."""
    return bool(extra) and any(k in extra for k in ("decc_program", "decc_regex", "decc_json_schema"))


def read_args(extra: Mapping[str, Any]) -> RequestConstraint:
    """The request's `decc_*` args, checked (ValueError: vLLM answers it as a bad request)."""
    unknown = sorted(k for k in extra if k.startswith("decc_") and k not in KEYS)
    if unknown:
        raise ValueError(f"unknown decc argument(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
    forms = [k for k in ("decc_program", "decc_regex", "decc_json_schema") if extra.get(k) is not None]
    if len(forms) != 1:
        raise ValueError("give exactly one of decc_program (with decc_gen), decc_regex, decc_json_schema")
    program = _text(extra, "decc_program")
    gen = _text(extra, "decc_gen")
    if program is not None and not gen:
        raise ValueError("decc_program needs decc_gen, the name of the gen step whose constraint applies")
    trusted = os.environ.get(TRUSTED_ENV) == "1"
    return RequestConstraint(
        program=program,
        gen=gen,
        gen_at=_int(extra, "decc_gen_at", None),
        path=(_text(extra, "decc_path") if trusted else None) or "<request>",
        regex=_text(extra, "decc_regex"),
        json_schema=_text(extra, "decc_json_schema"),
        min_tokens=_int(extra, "decc_min_tokens", 0) or 0,
        ignore_eos=_flag(extra.get("decc_ignore_eos", False)),
        trace=_text(extra, "decc_trace"),
    )


def _text(extra: Mapping[str, Any], key: str) -> str | None:
    value = extra.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a string, not {type(value).__name__}")
    return value


def _int(extra: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = extra.get(key, default)
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be an integer, not {value!r}") from None
    if number < 0:
        raise ValueError(f"{key} must be at least 0, not {number}")
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"decc_ignore_eos must be true or false, not {value!r}")
        return value.lower() in ("true", "1")
    return bool(value)


def factory(args: RequestConstraint, vocab: Any) -> Any:
    """The request's constraint bound to `vocab` (a `MatcherFactory`, or None for an unconstrained gen);
    with `vocab=None` only compiled, to validate a request (None). DeccError is re-raised as ValueError with the
    rendered diagnostic."""
    try:
        if args.program is not None:
            return _program_gen(args.program, args.path, args.gen or "", args.gen_at, vocab)
        if vocab is None:
            return None if args.regex is not None else _schema(args.json_schema or "")
        from decc import grammars

        if args.regex is not None:
            return grammars.regex(args.regex, vocab)
        return grammars.json_schema(_schema(args.json_schema or ""), vocab)
    except DeccError as e:
        raise ValueError(e.render() if hasattr(e, "render") else str(e)) from None


def _schema(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"decc_json_schema is not JSON: {e}") from None


@lru_cache(maxsize=64)
def compiled_module(text: str, path: str) -> Any:
    """The program's IR module, compiled once per distinct text (requests of one program share it), through
    the public API (runtime/ reads only the plan of the compiler)."""
    from pathlib import Path

    from decc.api import loads

    trusted = os.environ.get(TRUSTED_ENV) == "1"
    if path != "<request>" and not Path(path).parent.is_dir():
        path = "<request>"
    return loads(text, path, allow_imports=trusted).ir


def _program_gen(text: str, path: str, gen: str, gen_at: int | None, vocab: Any) -> Any:
    """The gen's constraint bound to `vocab`; with `vocab=None` the program is only compiled (the gen is
    looked up where the constraint is bound, in vLLM's worker)."""
    from decc.compiler.plan import lower_to_plan, plan_gens

    module = compiled_module(text, path)
    if vocab is None:
        return None
    plan = lower_to_plan(module, _PlainTokenizer(), vocab)
    return _pick(plan_gens(plan.steps), gen, gen_at).constraint


def _pick(gens: list[Any], name: str, at: int | None) -> Any:
    named = [g for g in gens if g.name == name]
    if at is not None:
        named = [g for g in named if g.span is not None and g.span.start == at]
    if not named:
        known = ", ".join(sorted({g.name for g in gens})) or "none"
        raise ValueError(f"the program has no gen step '{name}'" + (f" at offset {at}" if at else "")
                         + f" (its gens: {known})")  # fmt: skip
    return named[0]


class _PlainTokenizer:
    """What `lower_to_plan` asks of a tokenizer when only a gen's constraint is wanted: a chat program's
    turns render with decc's plain template (the text steps are the runner's business, not the
    processor's; the constraints do not depend on them)."""

    chat_template = None

    def apply_chat_template(self, messages: list[dict[str, str]], **kwargs: Any) -> str:
        from jinja2 import Template

        return Template(kwargs["chat_template"]).render(messages=messages, bos_token="")
