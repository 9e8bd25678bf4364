"""Compile limits for grammars, so pathological patterns fail fast with a `GrammarLimitError`."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    """Upper bounds on automaton sizes; frozen so it can be part of a cache key."""

    max_nfa_states: int = 200_000
    # ~100k DFA states take a few seconds in pure Python (subset construction + minimization).
    max_dfa_states: int = 100_000
    # Work bound on the subset construction (sizes of the NFA-state sets it unions): stops blow-ups like
    # `(\w+\s?){1,300}` within a few seconds even when the state count stays small.
    max_subset_work: int = 30_000_000
    # (state, token) pairs a token automaton stores (8 bytes each); reached after ~1-2 s of building.
    max_token_transitions: int = 20_000_000
    # Wall-clock seconds for one whole compile (schema/regex/grammar to token masks); None: no limit.
    # The environment variable DECC_COMPILE_SECONDS sets it (tests and CI use a small one).
    max_seconds: float | None = field(default_factory=lambda: compile_seconds())


def compile_seconds(default: float = 120.0) -> float | None:
    """The compile time limit: DECC_COMPILE_SECONDS when set to a positive number ("none": no limit)."""
    raw = os.environ.get("DECC_COMPILE_SECONDS", "").strip()
    if not raw:
        return default
    if raw.lower() == "none":
        return None
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if math.isfinite(value) and value >= 0 else default


DEFAULT_LIMITS = Limits()


# The compile-time limit: a deadline for the whole compile, set by the entry points (`deadline`) and checked
# by the long loops (`check_time`), so a pathological constraint fails with a clear error instead of hanging.
# A context variable, not an argument, so that every builder reaches it without plumbing; nested compiles
# (a schema's format regexes, products) run under the outermost deadline.
_DEADLINE: ContextVar[tuple[float, float] | None] = ContextVar("decc_compile_deadline", default=None)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Run a compile under a time limit of `seconds` (None: none), unless an outer one is running."""
    if seconds is None or _DEADLINE.get() is not None:
        yield
        return
    token = _DEADLINE.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def running_deadline() -> float | None:
    """When the running compile's time is up (`time.monotonic()` seconds), or None outside a limit."""
    current = _DEADLINE.get()
    return None if current is None else current[0]


def check_time(what: str) -> None:
    """Raise GrammarLimitError once the running compile has passed its time limit."""
    current = _DEADLINE.get()
    if current is not None and time.monotonic() > current[0]:
        from .errors import GrammarLimitError

        raise GrammarLimitError(
            f"{what} took longer than the compile time limit ({current[1]:g} s)",
            hints=[
                "simplify the constraint, or raise the limit (DECC_COMPILE_SECONDS, or Limits(max_seconds=...))"
            ],
        )
