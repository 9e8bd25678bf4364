"""decc: a declarative language and compiler for LLM decoding programs.

The public API is small and imported lazily, so `import decc` (and the CLI) start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from decc.errors import DeccError, DeccWarning, InternalError

if TYPE_CHECKING:
    from decc.api import Program, Result

__all__ = [
    "DeccError",
    "DeccWarning",
    "InternalError",
    "Program",
    "Result",
    "load",
    "load_tokenizer",
    "loads",
]
__version__ = "0.1.0"


def load(path: str, **kwargs: Any) -> Program:
    """Parse and compile a `.dec` file; the model loads on first run."""
    from decc.api import load as _load

    return _load(path, **kwargs)


def loads(text: str, path: str = "<string>", **kwargs: Any) -> Program:
    """Like `load`, from source text."""
    from decc.api import loads as _loads

    return _loads(text, path, **kwargs)


def load_tokenizer(model: str | None = None) -> Any:
    """The tokenizer of `model` (default: the embedded model; or a folder, or a tokenizer family such as
    `qwen2`, see decc/vocabs.py), no weights: for constraints on their own."""
    from decc.api import load_tokenizer as _load_tokenizer

    return _load_tokenizer(model)


def __getattr__(name: str) -> Any:
    if name in ("Program", "Result"):
        import decc.api

        return getattr(decc.api, name)
    if name in ("dsl", "compiler", "grammars", "runtime"):
        import importlib

        return importlib.import_module(f"decc.{name}")
    raise AttributeError(name)
