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

Value: data only, never a pickle, because a planted file must not run code. A `.npz` (loaded with
`allow_pickle=False`) holds numeric arrays `a0, a1, ...` and `meta`, UTF-8 JSON: magic, FORMAT_VERSION, the
key, and the constraint as a tree of tagged values (tuples, dicts, bytes, array references) and objects of
the classes in `_classes` only, each rebuilt from its fields (or its `__getstate__` dict). The version and
key are checked before the tree is read. The vocabulary (tens of thousands of tokens) is not stored but
re-attached from the caller's, and the per-vocabulary self-loop token classes (token_loops.Loop) are stored
by their key and shared through `Vocabulary.loop_cache`.

The cache never raises: an unreadable, truncated, foreign or future-version file is a miss (recomputed and
overwritten), an unwritable folder is skipped (with one warning per process). Errors are never cached.
Files are written to a temporary name in the same folder and renamed into place, so readers never see half a
file. Nothing is evicted: delete the folder to reclaim the space.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .tokens.vocab import Vocabulary

FORMAT_VERSION = 3  # 3: grammar rows are lazy (not stored); 1: pickles (never read: they could run code)
ENV = "DECC_CONSTRAINT_CACHE"
_OFF = ("off", "0", "false", "no", "none")
MAGIC = "decc-constraint"
SUFFIX = ".npz"

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
    path = root / f"{key}{SUFFIX}"
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
    for p in sorted([*here.rglob("*.py"), *here.rglob("*.lark")]):
        h.update(p.relative_to(here).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


# -- a data-only codec: JSON tree + numeric arrays, objects only of known classes -------------------------


class CacheFormatError(Exception):
    """A cache file (or a value to store) that the data-only format does not describe: a miss."""


@cache
def _classes() -> dict[str, type]:
    """The only classes a cache file may name, by name. Imported here: their modules import this one."""
    from .automata.dfa import ByteDFA
    from .contextfree.cfg_grammar import Call, Grammar, Lexeme
    from .contextfree.cfg_loops import Region
    from .contextfree.cfg_matcher import CFGConstraint
    from .contextfree.rtn import RTN
    from .json.json_keys import TrieEdges
    from .limits import Limits
    from .regexes.regex_ast import Alt, Automaton, CharSet, Concat, Repeat
    from .tokens.constraint import TokenConstraint
    from .tokens.token_automaton import TokenAutomaton
    from .tokens.token_counts import Counts
    from .tokens.token_loops import Loop

    kinds = (Call, Grammar, Lexeme, CFGConstraint, TokenConstraint, ByteDFA, Alt, Automaton, CharSet, Concat)
    more = (Repeat, RTN, TokenAutomaton, Counts, Loop, Limits, Region, TrieEdges)
    return {c.__name__: c for c in (*kinds, *more)}


_SCALARS = (bool, int, float, str, type(None))
_LONG = 16  # lists/tuples of more ints or bools than this go as arrays


class _Encoder:
    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self.loops = {id(loop): key for key, loop in vocab.__dict__.get("loop_cache", {}).items()}
        self.arrays: list[np.ndarray] = []
        self.seen: dict[int, int] = {}  # id of an array or object -> its index: shared, stored once
        self.keep: list[Any] = []  # what `seen` names stays alive (a freed temporary's id could be reused)
        self.n_objects = 0

    def array(self, a: np.ndarray) -> int:
        if id(a) in self.seen:
            return self.seen[id(a)]
        if a.dtype.hasobject or a.dtype.kind not in "biuf":
            raise CacheFormatError(f"array of {a.dtype}")
        self.arrays.append(np.ascontiguousarray(a))
        self.seen[id(a)] = len(self.arrays) - 1
        self.keep.append(a)
        return len(self.arrays) - 1

    def encode(self, v: Any) -> Any:
        if isinstance(v, _SCALARS):
            return v
        if v is self.vocab:
            return {"t": "vocab"}
        if id(v) in self.loops:
            return {"t": "loop", "v": self.loops[id(v)].hex()}
        if isinstance(v, np.ndarray):
            return {"t": "array", "v": self.array(v)}
        if isinstance(v, np.generic) and v.dtype.kind in "biuf":
            return {"t": "scalar", "dtype": v.dtype.str, "v": v.item()}
        if isinstance(v, bytes):
            return {"t": "bytes", "v": base64.b64encode(v).decode("ascii")}
        if isinstance(v, list | tuple):
            tag = "list" if isinstance(v, list) else "tuple"
            if len(v) > _LONG and all(type(x) is int for x in v):
                return {"t": tag, "ints": self.array(np.array(v, dtype=np.int64))}
            if len(v) > _LONG and all(type(x) is bool for x in v):
                return {"t": tag, "bools": self.array(np.array(v, dtype=bool))}
            return {"t": tag, "v": [self.encode(x) for x in v]}
        if isinstance(v, frozenset):
            return {"t": "frozenset", "v": [self.encode(x) for x in sorted(v)]}
        if isinstance(v, dict):
            return {"t": "dict", "v": [[self.encode(k), self.encode(x)] for k, x in v.items()]}
        cls = type(v)
        if _classes().get(cls.__name__) is not cls:
            raise CacheFormatError(f"cannot store a {cls.__qualname__}")
        if id(v) in self.seen:  # the same object again (the DFA of a constraint and of its automaton)
            return {"t": "ref", "v": self.seen[id(v)]}
        if "__getstate__" in cls.__dict__:
            state = v.__getstate__()
        else:
            state = {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
        fields = {k: self.encode(x) for k, x in state.items()}
        self.seen[id(v)] = ref = self.n_objects
        self.keep.append(v)
        self.n_objects += 1
        return {"t": "obj", "c": cls.__name__, "id": ref, "v": fields}


class _Decoder:
    def __init__(self, vocab: Vocabulary, arrays: Any) -> None:
        self.vocab = vocab
        self.arrays = arrays
        self.loaded: dict[int, np.ndarray] = {}
        self.objects: dict[int, Any] = {}

    def array(self, i: Any) -> np.ndarray:
        if type(i) is not int:
            raise CacheFormatError("bad array reference")
        if i not in self.loaded:
            self.loaded[i] = self.arrays[f"a{i}"]  # np.load(allow_pickle=False): object arrays raise
        return self.loaded[i]

    def decode(self, v: Any) -> Any:
        if isinstance(v, _SCALARS):
            return v
        if not isinstance(v, dict):
            raise CacheFormatError("bad value")
        t, x = v.get("t"), v.get("v")
        if t in ("list", "tuple"):
            if "ints" in v or "bools" in v:
                items = self.array(v.get("ints", v.get("bools"))).tolist()
            elif isinstance(x, list):
                items = [self.decode(e) for e in x]
            else:
                raise CacheFormatError("bad sequence")
            return items if t == "list" else tuple(items)
        if t == "vocab":
            return self.vocab
        if t == "loop":
            return loop_for_key(self.vocab, bytes.fromhex(x))
        if t == "array":
            return self.array(x)
        if t == "scalar":
            dtype = np.dtype(v["dtype"])
            if dtype.kind not in "biuf":
                raise CacheFormatError("bad scalar")
            return dtype.type(x)
        if t == "bytes":
            return base64.b64decode(x, validate=True)
        if t == "frozenset":
            return frozenset(self.decode(e) for e in x)
        if t == "dict":
            return {self.decode(k): self.decode(e) for k, e in x}
        if t == "obj":
            out = self.obj(v.get("c"), x)
            self.objects[v.get("id")] = out
            return out
        if t == "ref":
            if x not in self.objects:
                raise CacheFormatError("reference to an object not read yet")
            return self.objects[x]
        raise CacheFormatError(f"unknown tag {t!r}")

    def obj(self, name: Any, fields: Any) -> Any:
        cls = _classes().get(name) if isinstance(name, str) else None
        if cls is None or not isinstance(fields, dict):
            raise CacheFormatError(f"unknown class {name!r}")
        state = {k: self.decode(e) for k, e in fields.items()}
        out = object.__new__(cls)
        if "__setstate__" in cls.__dict__:
            out.__setstate__(state)
        else:
            if set(state) != {f.name for f in dataclasses.fields(cls)}:
                raise CacheFormatError(f"the fields of {name} do not match")
            out.__dict__.update(state)
        return out


def loop_for_key(vocab: Vocabulary, key: bytes) -> Any:
    """The vocabulary's Loop for a loop_cache key (token_loops.loop_classes), built if this process lacks
    it."""
    from .tokens.token_loops import build_loop

    loop = vocab.loop_cache.get(key)
    if loop is None:
        bits = np.unpackbits(np.frombuffer(key, dtype=np.uint8)).astype(bool)
        if len(bits) != 512:
            raise CacheFormatError("bad loop key")
        loop = vocab.loop_cache[key] = build_loop(vocab, bits[:256], bits[256:])
    return loop


def _load(path: Path, key: str, vocab: Vocabulary) -> Any:
    """The constraint stored at `path` under `key`, or None: missing, foreign, corrupt, another version."""
    try:
        data = path.read_bytes()  # one snapshot, and no file left open when the zip is bad
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            raw = z["meta"]
            if raw.dtype != np.uint8 or raw.ndim != 1:
                return None
            meta = json.loads(raw.tobytes().decode("utf-8"))
            if not isinstance(meta, dict) or meta.get("magic") != MAGIC:
                return None
            if meta.get("version") != FORMAT_VERSION or meta.get("key") != key:
                return None  # checked before anything else is read
            value = _Decoder(vocab, z).decode(meta.get("value"))
    except Exception:  # unreadable, truncated, not an npz, object arrays, a tree the classes reject: a miss
        return None
    try:
        return value if _consistent(value, vocab) else None
    except Exception:  # a field of the wrong kind: a miss
        return None


def _ints(a: Any, lo: int, hi: int, shape: tuple[int | None, ...]) -> bool:
    """`a` is an integer array of `shape` (None: any length) with every value in [lo, hi)."""
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "iu" or a.ndim != len(shape):
        return False
    if any(want is not None and got != want for got, want in zip(a.shape, shape, strict=True)):
        return False
    return a.size == 0 or (int(a.min()) >= lo and int(a.max()) < hi)


def _consistent(value: Any, vocab: Vocabulary) -> bool:
    """The core tables of a loaded constraint fit together and index within range, so that a well-formed
    file with wrong contents is a miss rather than an IndexError while decoding."""
    classes = _classes()
    if isinstance(value, classes["TokenConstraint"]):
        dfa, auto = value.dfa, value.automaton
        n = dfa.n_states
        return (
            value.vocab is vocab
            and auto.vocab is vocab
            and auto.dfa is dfa
            and _ints(dfa.transitions, -1, n, (n, 256))
            and 0 <= dfa.start < max(n, 1)
            and _ints(auto.bitmask, -(2**31), 2**31, (n, vocab.n_words))
            and _ints(auto.indptr, 0, len(auto.token_ids) + 1, (n + 1,))
            and bool(np.all(np.diff(auto.indptr) >= 0))
            and _ints(auto.token_ids, 0, vocab.size, (None,))
            and _ints(auto.next_state, 0, n, (len(auto.token_ids),))
            and _ints(auto.loop_of, -1, len(auto.loops), (n,) if len(auto.loop_of) else (0,))
        )
    if isinstance(value, classes["CFGConstraint"]):  # its RTN is rebuilt (lazily) from the grammar
        rtn = value.rtn
        # equal, not always the same object: `build_rtn` may have returned the RTN of an equal grammar
        same = rtn.grammar is value.grammar or rtn.grammar == value.grammar
        return value.vocab is vocab and same and rtn.n_rules == len(value.grammar.rules)
    if isinstance(value, classes["Region"]):  # a loop's shared walk (contextfree/cfg_loops.py)
        n = len(vocab.text_ids)
        leaving = value.leaving if value.leaving is not None else ()
        return (
            _ints(value.inside, 0, n, (None,))
            and _ints(value.uncertain, 0, n, (None,))
            and _ints(value.bounds, 0, n + 1, (257,))
            and _ints(value.leaving_lo, 0, n, (len(leaving),))
            and type(value.n_exits) is int
            and all(
                len(x) == 5 and x[0] >= 1 and 0 <= x[1] < x[2] <= n and 0 <= x[3] < value.n_exits
                for x in leaving
            )
        )
    return False


def _store(root: Path, path: Path, key: str, value: Any, vocab: Vocabulary) -> None:
    try:
        enc = _Encoder(vocab)
        tree = enc.encode(value)
        meta = json.dumps({"magic": MAGIC, "version": FORMAT_VERSION, "key": key, "value": tree})
    except (CacheFormatError, RecursionError, ValueError, TypeError):  # not describable: just not cached
        return
    arrays = {f"a{i}": a for i, a in enumerate(enc.arrays)}
    arrays["meta"] = np.frombuffer(meta.encode("utf-8"), dtype=np.uint8)
    tmp = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=root)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
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


__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "SUFFIX",
    "cache_dir",
    "cache_key",
    "cached",
    "loop_for_key",
    "set_disk_cache",
]
