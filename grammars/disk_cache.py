"""On-disk cache of compiled constraints, keyed by constraint and tokenizer.

`json_schema`, `regex` and `cfg` keep their results in an in-memory LRU cache; behind it, this module keeps
them on disk so that a new process skips the compile (seconds for a large schema over a 49k vocabulary)
and only loads the arrays (milliseconds).

Where: `$DECC_CONSTRAINT_CACHE` if set (a folder; `off`, `0`, `false`, `no` or `none` disables the cache),
else `constraints/` under decc's cache folder (`$DECC_CACHE`, default `~/.cache/decc`, shared with the model
cache). `set_disk_cache(False)` disables it for this process, `set_disk_cache(None)` goes back to the
environment.

Key: sha256 over FORMAT_VERSION, a hash of this package's source (so a changed compiler never reads files
an older one wrote), numpy's version, the kind of constraint, its canonical text and every option that
changes the result, and the vocabulary's fingerprint (token bytes, size, EOS and special ids).

Value: a pickle (protocol 5) of the constraint in which the vocabulary (tens of thousands of tokens) is
not stored but re-attached from the caller's on load, and the per-vocabulary self-loop token classes
(token_loops.Loop) are stored by their key and shared through `Vocabulary.loop_cache`. Derived views
(memoryviews, tensors, the recognizer's Python lists) are rebuilt by the classes' `__setstate__`.

The cache never raises: an unreadable, truncated or foreign file is a miss (recomputed and overwritten), an
unwritable folder is skipped (with one warning per process). Errors are never cached. Files are written to
a temporary name in the same folder and renamed into place, so readers never see half a file. Nothing
is evicted: delete the folder to reclaim the space.

The files are pickles: like any pickle, only load a cache folder that only you can write to.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .vocab import Vocabulary

FORMAT_VERSION = 1
ENV = "DECC_CONSTRAINT_CACHE"
_OFF = ("off", "0", "false", "no", "none")
_MAGIC = b"decc-constraint\n"

T = TypeVar("T")

_enabled: bool | None = None  # set_disk_cache override; None: follow the environment
_warned = False
stats = {"hits": 0, "misses": 0, "writes": 0}  # this process's disk cache traffic (for tests and tuning)


def set_disk_cache(enabled: bool | None) -> None:
    """Turn the on-disk constraint cache on or off for this process (None: as the environment says)."""
    global _enabled
    _enabled = enabled


def cache_dir() -> Path | None:
    """The folder of cached constraints, or None when the disk cache is off."""
    if _enabled is False:
        return None
    env = os.environ.get(ENV, "").strip()
    if env:
        return None if env.lower() in _OFF else Path(env).expanduser()
    from decc.runtime.model import cache_dir as decc_cache  # the root the model cache uses

    return decc_cache() / "constraints"


def cached(kind: str, parts: tuple, vocab: Vocabulary, build: Callable[[], T]) -> T:
    """`build()`, or its result from the disk cache under (kind, parts, vocab); stored there after a build.

    `parts`: the canonical constraint text and every option that changes the result (their reprs must be
    deterministic: strings, numbers, frozen dataclasses of those). Exceptions from `build` propagate and
    are not cached.
    """
    root = cache_dir()
    if root is None:
        return build()
    try:
        key = cache_key(kind, parts, vocab)
    except Exception:
        return build()
    path = root / f"{key}.pkl"
    hit = _load(path, key, vocab)
    if hit is not None:
        stats["hits"] += 1
        return hit
    stats["misses"] += 1
    value = build()
    _store(root, path, key, value, vocab)
    return value


def cache_key(kind: str, parts: tuple, vocab: Vocabulary) -> str:
    h = hashlib.sha256()
    for p in (FORMAT_VERSION, _source_hash(), np.__version__, kind, parts, vocab.fingerprint):
        data = repr(p).encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


@cache
def _source_hash() -> str:
    """sha256 of the grammars package's source files: any change to the compiler makes new keys."""
    h = hashlib.sha256()
    here = Path(__file__).parent
    for p in sorted([*here.glob("*.py"), *here.glob("*.lark")]):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


# -- pickling with the vocabulary (and its loop classes) kept out of the file ----------------------------


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, vocab: Vocabulary) -> None:
        super().__init__(file, protocol=5)
        self.vocab = vocab
        self.loops = {id(loop): key for key, loop in vocab.__dict__.get("loop_cache", {}).items()}

    def persistent_id(self, obj: Any) -> Any:
        if obj is self.vocab:
            return ("vocab",)
        key = self.loops.get(id(obj))
        if key is not None:
            return ("loop", key)
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, vocab: Vocabulary) -> None:
        super().__init__(file)
        self.vocab = vocab

    def persistent_load(self, pid: Any) -> Any:
        if pid == ("vocab",):
            return self.vocab
        if isinstance(pid, tuple) and len(pid) == 2 and pid[0] == "loop" and isinstance(pid[1], bytes):
            return _loop_for_key(self.vocab, pid[1])
        raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")

    def find_class(self, module: str, name: str) -> Any:
        if not (module.startswith(("decc.", "numpy", "torch", "builtins", "itertools", "collections"))):
            raise pickle.UnpicklingError(f"unexpected class {module}.{name} in a constraint cache file")
        return super().find_class(module, name)


def _loop_for_key(vocab: Vocabulary, key: bytes) -> Any:
    """The vocabulary's Loop for a loop_cache key (token_loops.loop_classes), built if this process lacks it."""
    from .token_loops import _loop

    loop = vocab.loop_cache.get(key)
    if loop is None:
        bits = np.unpackbits(np.frombuffer(key, dtype=np.uint8)).astype(bool)
        if len(bits) != 512:
            raise pickle.UnpicklingError("bad loop key")
        loop = vocab.loop_cache[key] = _loop(vocab, bits[:256], bits[256:])
    return loop


def _load(path: Path, key: str, vocab: Vocabulary) -> Any:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        if not data.startswith(_MAGIC):
            return None
        buf = io.BytesIO(data)
        buf.seek(len(_MAGIC))
        version, stored_key, value = _Unpickler(buf, vocab).load()
        if version != FORMAT_VERSION or stored_key != key or getattr(value, "vocab", None) is not vocab:
            return None
        return value
    except Exception:  # truncated, corrupt, from another version: a miss
        return None


def _store(root: Path, path: Path, key: str, value: Any, vocab: Vocabulary) -> None:
    try:
        buf = io.BytesIO()
        buf.write(_MAGIC)
        _Pickler(buf, vocab).dump((FORMAT_VERSION, key, value))
    except Exception:  # something unpicklable (or too deep): just not cached
        return
    tmp = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=root)
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getbuffer())
        os.replace(tmp, path)
        tmp = None
        stats["writes"] += 1
    except OSError as e:
        _warn_once(
            f"decc: cannot write the constraint cache in {root} ({e}); compiled constraints are not cached on disk"
        )
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=4)


__all__ = ["FORMAT_VERSION", "cache_dir", "cache_key", "cached", "set_disk_cache"]
