"""The three engines of masks.py behind one interface, and the token walk that checks and times them.

Each engine: `compile(schema)` -> a factory of fresh matchers (the compiled grammar); `matcher.fill(row)`
writes the int32 bitmask row (torch, [words]); `matcher.advance(token)` -> bool. All engines take the same
(tokenizer, vocabulary size, EOS ids, separators), no free whitespace, and run on one thread.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
import torch


class Unsupported(Exception):
    """The engine declined the schema (a feature it does not implement, or one of its size limits)."""


class CompileTimeout(Exception):
    """masks.py's corpus mode: a compile ran past `--timeout` (SIGALRM)."""


class DeccEngine:
    name = "decc"
    eager = False  # `precompute()` in the compile (DeccEagerEngine)

    def __init__(self, tok: Any, size: int, eos: frozenset[int], seps: tuple[str, str]) -> None:
        import importlib

        from decc import grammars

        js = importlib.import_module(
            "decc.grammars.json.json_schema"
        )  # the module (the package re-exports a function)

        self._g = grammars
        self._js = js
        self.vocab = grammars.Vocabulary.from_tokenizer(tok, size=size, eos_ids=eos)
        _ = self.vocab.packed  # per-vocabulary precomputation, shared by all schemas (not per-schema work)
        # Cold compiles: no constraint cache on disk either (grammars/disk_cache.py)
        importlib.import_module("decc.grammars.disk_cache").set_disk_cache(False)
        self.version = _workspace_version()

    def clear_cache(self) -> None:
        # Only the per-schema caches: the building blocks (format regexes, JSON string pieces) stay warm,
        # as they would in a serving process.
        import importlib

        per_schema = [
            (self._js, name)
            for name in (
                "_compile",
                "_bind",
                "intersect_nodes",
                "string_product",
                "_rules",
                "_choice",
                "_lexemes",
                "_not_names",
            )
        ]
        per_schema += [
            (importlib.import_module("decc.grammars.contextfree.cfg_matcher"), "cfg_from_grammar"),
            (importlib.import_module("decc.grammars.contextfree.rtn"), "build_rtn"),
            (importlib.import_module("decc.grammars.json.regex_ops"), "dfa_of"),
            (importlib.import_module("decc.grammars.json.json_engine"), "call_graph"),
        ]
        for module, fn in per_schema:
            cached = getattr(module, fn, None)
            if hasattr(cached, "cache_clear"):
                cached.cache_clear()

    def compile(self, schema: dict) -> Any:
        from decc.errors import DeccError

        try:
            constraint = self._g.json_schema(schema, self.vocab)
            if self.eager:
                constraint = constraint.precompute()
        except DeccError as e:  # every user-facing refusal (unsupported, limits, invalid schema)
            raise Unsupported(f"{type(e).__name__}: {e}") from None
        return lambda: _DeccMatcher(constraint.matcher())


class DeccEagerEngine(DeccEngine):
    """decc with every rule built and every state classified at compile (`precompute()`): the eager trade,
    compile time for no first visits in the masks, measured beside the lazy default in one run."""

    name = "decc-eager"
    eager = True


class _DeccMatcher:
    __slots__ = ("m",)

    def __init__(self, m: Any) -> None:
        self.m = m

    def fill(self, row: torch.Tensor) -> None:
        self.m.fill_bitmask(row)

    def advance(self, token: int) -> bool:
        return self.m.advance(token)


class XGrammarEngine:
    name = "xgrammar"

    def __init__(self, tok: Any, size: int, eos: frozenset[int], seps: tuple[str, str]) -> None:
        import xgrammar as xgr

        self.xgr = xgr
        self.seps = seps
        info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=size, stop_token_ids=sorted(eos))
        self.compiler = xgr.GrammarCompiler(info, max_threads=1, cache_enabled=False)
        self.version = _version("xgrammar")

    def clear_cache(self) -> None:
        pass  # compiler built with cache_enabled=False

    def compile(self, schema: dict) -> Any:
        try:
            compiled = self.compiler.compile_json_schema(
                json.dumps(schema), any_whitespace=False, separators=self.seps, strict_mode=True
            )
        except Exception as e:  # XGrammar raises RuntimeError/ValueError on what it does not support
            raise Unsupported(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        return lambda: _XGrammarMatcher(self.xgr.GrammarMatcher(compiled))


class _XGrammarMatcher:
    __slots__ = ("m",)

    def __init__(self, m: Any) -> None:
        self.m = m

    def fill(self, row: torch.Tensor) -> None:
        self.m.fill_next_token_bitmask(row.unsqueeze(0), 0)

    def advance(self, token: int) -> bool:
        return self.m.accept_token(token)


class LLGuidanceEngine:
    name = "llguidance"

    def __init__(self, tok: Any, size: int, eos: frozenset[int], seps: tuple[str, str]) -> None:
        import llguidance
        import llguidance.hf
        import llguidance.torch

        self.llg = llguidance
        self.fill_fn = llguidance.torch.fill_next_token_bitmask
        self.tokenizer = llguidance.hf.from_tokenizer(tok, n_vocab=size, eos_token=sorted(eos))
        self.defaults = {"whitespace_flexible": False, "item_separator": seps[0], "key_separator": seps[1]}
        self.version = _version("llguidance")

    def clear_cache(self) -> None:
        pass  # no schema cache

    def compile(self, schema: dict) -> Any:
        try:
            grammar = self.llg.LLMatcher.grammar_from_json_schema(schema, defaults=self.defaults)
        except Exception as e:
            raise Unsupported(f"{type(e).__name__}: {e}") from None
        m = self.llg.LLMatcher(self.tokenizer, grammar, log_level=0)
        if m.is_error():
            raise Unsupported(m.get_error().splitlines()[0])
        # LLMatcher's constructor is where the grammar is built: later matchers are copies of this one
        return lambda: _LLGuidanceMatcher(m.deep_copy(), self.fill_fn)


class _LLGuidanceMatcher:
    __slots__ = ("m", "fill_fn")

    def __init__(self, m: Any, fill_fn: Any) -> None:
        self.m = m
        self.fill_fn = fill_fn

    def fill(self, row: torch.Tensor) -> None:
        self.fill_fn(self.m, row.unsqueeze(0), 0)

    def advance(self, token: int) -> bool:
        return self.m.consume_token(token)


ENGINES = {
    "decc": DeccEngine,
    "decc-eager": DeccEagerEngine,
    "xgrammar": XGrammarEngine,
    "llguidance": LLGuidanceEngine,
}
PACKAGES = {"decc": "decc", "decc-eager": "decc", "xgrammar": "xgrammar", "llguidance": "llguidance"}


def _workspace_version() -> str:
    """decc is benchmarked from its working tree: name the commit (and `+` when files differ from it)."""
    import subprocess
    from pathlib import Path

    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True
        )
    except OSError:
        return "workspace"
    if head.returncode != 0:
        return "workspace"
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


CONTEXT = "\n"  # what precedes the instance in context: the end of a prompt


def encode(tok: Any, text: str) -> list[int]:
    """`text`'s tokens as a model writes it after a prompt. Usually `tok.encode(text)`; a SentencePiece
    tokenizer adds a prefix space (`▁`) to a text encoded alone, which a model writing JSON after a prompt
    does not produce, so there `text` is encoded after `CONTEXT` and the context's tokens are dropped."""
    ids = tok.encode(text, add_special_tokens=False)
    if not adds_prefix_space(tok):
        return ids
    pre = tok.encode(CONTEXT, add_special_tokens=False)
    full = tok.encode(CONTEXT + text, add_special_tokens=False)
    if full[: len(pre)] == pre and tok.decode(full[len(pre) :]) == text:
        return full[len(pre) :]
    return ids


def adds_prefix_space(tok: Any) -> bool:
    """Whether encoding a text alone starts it with SentencePiece's prefix space (`▁`)."""
    if id(tok) not in _PREFIX_SPACE:
        pieces = tok.convert_ids_to_tokens(tok.encode("{", add_special_tokens=False))
        _PREFIX_SPACE[id(tok)] = bool(pieces) and str(pieces[0]).startswith("\u2581")
    return _PREFIX_SPACE[id(tok)]


_PREFIX_SPACE: dict[int, bool] = {}


def make_engine(name: str, tok: Any, size: int, eos: frozenset[int], seps: tuple[str, str]) -> Any:
    """The engine called `name` (ImportError when its package is not installed)."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")
    return ENGINES[name](tok, size, eos, seps)


def allowed(words: np.ndarray, token: int) -> bool:
    return bool((int(words[token >> 5]) >> (token & 31)) & 1)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def bench_clock() -> Any:
    """The clock the workers time with: `MASKBENCH_CLOCK=cpu` (masks.py `--clock cpu`) is the process's CPU
    time, all its threads counted, so figures taken on a shared, loaded machine are not its scheduling."""
    return CLOCKS[os.environ.get("MASKBENCH_CLOCK", "wall")]


def walk(
    matcher: Any,
    tokens: list[int],
    eos: int,
    row: torch.Tensor,
    fills: list[float] | None = None,
    advances: list[float] | None = None,
) -> str:
    """Walk `tokens` then EOS: 'ok', or why it stopped. Appends each fill's and each advance's seconds to
    `fills` / `advances` when given (the final fill, where EOS is checked, is a fill too)."""
    words = row.numpy()
    clock = bench_clock()
    for pos, t in enumerate(tokens):
        t0 = clock()
        matcher.fill(row)
        t1 = clock()
        if fills is not None:
            fills.append(t1 - t0)
        if not allowed(words, t):
            return f"token {pos} ({t}) not in mask"
        t0 = clock()
        ok = matcher.advance(t)
        t1 = clock()
        if advances is not None:
            advances.append(t1 - t0)
        if not ok:
            return f"token {pos} ({t}) in mask but refused by advance"
    t0 = clock()
    matcher.fill(row)
    t1 = clock()
    if fills is not None:
        fills.append(t1 - t0)
    if not allowed(words, eos):
        return "EOS not allowed at the end"
    if not matcher.advance(eos):
        return "EOS in mask but refused by advance"
    return "ok"
