"""The on-disk constraint cache (grammars/disk_cache.py): round trips, keys, corrupt files, switching off."""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decc.grammars import (
    CFGConstraint,
    Limits,
    TokenConstraint,
    Vocabulary,
    cfg,
    cfg_builtin,
    disk_cache,
    json_schema,
    regex,
)

js = importlib.import_module(
    "decc.grammars.json.json_schema"
)  # the module (the package re-exports a function)
constraint_mod = importlib.import_module("decc.grammars.tokens.constraint")
cfg_mod = importlib.import_module("decc.grammars.contextfree.cfg_matcher")

COUNTED = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 40}, "n": {"type": "integer"}},
    "required": ["name", "n"],
}
TREE = {
    "type": "object",
    "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#"}}},
    "required": ["v"],
}
COUNTED_TEXT = b'{"name": "' + b"abc def " * 4 + b'", "n": 12}'
TREE_TEXT = b'{"v": 1, "kids": [{"v": 2, "kids": []}, {"v": 3}]}'


def _clear_memory() -> None:
    """Forget every in-memory cache of compiled constraints, as a new process would start."""
    for fn in (js._bind, js._compile, constraint_mod._regex, cfg_mod._cfg, cfg_mod.cfg_from_grammar):
        fn.cache_clear()


def _fresh(vocab: Vocabulary) -> Vocabulary:
    """An equal vocabulary object with none of the per-object caches (packed tables, loop classes)."""
    return Vocabulary(vocab.token_bytes, vocab.size, vocab.eos_ids, vocab.special_ids)


def _small_vocab() -> Vocabulary:
    toks = [bytes([c]) for c in range(32, 127)]
    toks += [
        b'"a',
        b"ab",
        b'{"',
        b'":',
        b'": ',
        b", ",
        b"true",
        b"null",
        b"12",
        b"  ",
        b"abc",
        b"\xc3",
        b"\xa9",
    ]
    toks += [None]  # EOS
    return Vocabulary.from_token_bytes(toks, eos_id=len(toks) - 1)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(disk_cache.ENV, str(tmp_path))
    _clear_memory()
    yield tmp_path
    _clear_memory()


def _tokenize(vocab: Vocabulary, text: bytes) -> list[int]:
    """Greedy longest-match tokenization over the vocabulary's text tokens."""
    by_bytes = {b: i for i, b in enumerate(vocab.token_bytes) if b and i not in vocab.special_ids}
    longest = max(map(len, by_bytes))
    out, i = [], 0
    while i < len(text):
        for n in range(min(longest, len(text) - i), 0, -1):
            t = by_bytes.get(text[i : i + n])
            if t is not None:
                out.append(t)
                i += n
                break
        else:
            raise AssertionError(f"no token for {text[i:]!r}")
    return out


def _assert_same(a, b, vocab: Vocabulary, walks: list[list[int]], seed: int = 0) -> None:
    """Masks, allowed ids and advances agree along the given token walks and a few random ones."""
    rng = np.random.default_rng(seed)
    eos = sorted(vocab.eos_ids)
    for walk in [*walks, None, None, None]:
        ma, mb = a.matcher(), b.matcher()
        ra = torch.zeros(vocab.n_words, dtype=torch.int32)
        rb = torch.zeros(vocab.n_words, dtype=torch.int32)
        steps = walk + eos if walk is not None else [None] * 40
        for tok in steps:
            ma.fill_bitmask(ra)
            mb.fill_bitmask(rb)
            assert torch.equal(ra, rb)
            allowed = ma.allowed_token_ids()
            assert np.array_equal(allowed, mb.allowed_token_ids())
            assert ma.is_accepting() == mb.is_accepting()
            if tok is None:  # random walk: any allowed token, sometimes a refused one
                if not len(allowed):
                    break
                tok = int(rng.choice(allowed)) if rng.random() < 0.9 else int(rng.integers(vocab.size))
            ok = ma.advance(tok)
            assert ok == mb.advance(tok)
            if walk is not None:
                assert ok, f"token {tok} of a valid walk refused"


def _rewrite_meta(path: Path, **changes) -> None:
    """Rewrite a cache file with some of its metadata (version, key) changed, arrays kept."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta.update(changes)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _round_trip(make, vocab: Vocabulary, walks: list[list[int]], loaded=None):
    before = dict(disk_cache.stats)
    first = make(vocab)
    assert disk_cache.stats["writes"] == before["writes"] + 1
    _clear_memory()
    vocab2 = _fresh(vocab)
    second = make(vocab2)
    assert disk_cache.stats["hits"] == before["hits"] + 1
    assert second is not first and second.vocab is vocab2
    assert type(second) is type(first)
    if loaded is not None:
        loaded(first, second)
    _assert_same(first, second, vocab, walks)
    return first, second


def test_regex_round_trip(cache_dir):
    v = _small_vocab()
    walk = _tokenize(v, b"abc12")
    first, second = _round_trip(lambda vocab: regex(r"[a-z]{1,5}\d+", vocab), v, [walk])
    assert second.source == first.source and second.n_states == first.n_states
    assert second.automaton.flat.tolist() == first.automaton.flat.tolist()
    assert len(list(cache_dir.glob("*.npz"))) == 1


def test_json_schema_counted_round_trip(cache_dir):
    v = _small_vocab()
    first, second = _round_trip(
        lambda vocab: json_schema(COUNTED, vocab, engine="automaton"), v, [_tokenize(v, COUNTED_TEXT)]
    )
    assert isinstance(second, TokenConstraint)


def test_json_schema_recursive_round_trip(cache_dir):
    v = _small_vocab()

    def loaded(first, second):
        assert isinstance(second, CFGConstraint)
        assert second.rank_bytes == first.rank_bytes and not second._masks and not second._interned

    _round_trip(lambda vocab: json_schema(TREE, vocab), v, [_tokenize(v, TREE_TEXT)], loaded)


def test_cfg_round_trip(cache_dir):
    v = _small_vocab()
    walk = _tokenize(v, b'{"a": [1, true, null]}')
    _round_trip(lambda vocab: cfg_builtin("json", vocab), v, [walk])
    _round_trip(lambda vocab: cfg('start: "a"+ "b"?', vocab), v, [_tokenize(v, b"aaab")])


def test_cfg_round_trip_after_an_equal_grammar_built_the_rtn(cache_dir):
    """`build_rtn` is memoized by equality: a constraint may hold the RTN of an equal grammar built before
    (another caller parsed the same text), and still loads from disk (it was a miss, by identity)."""
    v = _small_vocab()
    text = 'start: "a"+ "c"?'
    rtn_mod = importlib.import_module("decc.grammars.contextfree.rtn")
    grammar_mod = importlib.import_module("decc.grammars.contextfree.cfg_grammar")
    rtn_mod.build_rtn(grammar_mod.parse_grammar(text, "start"), Limits())  # as cfg_from_grammar calls it
    _round_trip(lambda vocab: cfg(text, vocab), v, [_tokenize(v, b"aaac")])


def test_keys_differ_by_vocabulary_and_options():
    v = _small_vocab()
    key = disk_cache.cache_key("json_schema", ("{}", False, "compact-or-default", Limits()), v)
    assert key == disk_cache.cache_key(
        "json_schema", ("{}", False, "compact-or-default", Limits()), _fresh(v)
    )
    other_tokens = Vocabulary.from_token_bytes(
        [*v.token_bytes[:-2], b"zz", None], eos_id=len(v.token_bytes) - 1
    )
    others = [
        disk_cache.cache_key("regex", ("{}", False, "compact-or-default", Limits()), v),
        disk_cache.cache_key("json_schema", ("{ }", False, "compact-or-default", Limits()), v),
        disk_cache.cache_key("json_schema", ("{}", False, "any", Limits()), v),
        disk_cache.cache_key("json_schema", ("{}", True, "compact-or-default", Limits()), v),
        disk_cache.cache_key("json_schema", ("{}", False, "compact-or-default", Limits(max_dfa_states=9)), v),
        disk_cache.cache_key("json_schema", ("{}", False, "compact-or-default", Limits()), other_tokens),
        disk_cache.cache_key(
            "json_schema",
            ("{}", False, "compact-or-default", Limits()),
            Vocabulary(v.token_bytes, v.size + 32, v.eos_ids, v.special_ids),
        ),
        disk_cache.cache_key(
            "json_schema",
            ("{}", False, "compact-or-default", Limits()),
            Vocabulary(v.token_bytes, v.size, v.eos_ids | {0}, v.special_ids),
        ),
    ]
    assert len({key, *others}) == len(others) + 1


def test_different_options_are_different_files(cache_dir):
    v = _small_vocab()
    a = json_schema(COUNTED, v)
    b = json_schema(COUNTED, v, whitespace="any")
    assert len(list(cache_dir.glob("*.npz"))) == 2
    _clear_memory()
    reloaded = json_schema(COUNTED, _fresh(v), whitespace="any")
    size = lambda c: c.rtn.build_all().n_states  # noqa: E731  (a grammar's RTN grows lazily)
    assert size(reloaded) == size(b) != size(a)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "foreign"])
def test_corrupt_file_is_ignored_and_replaced(cache_dir, damage):
    v = _small_vocab()
    first = regex(r"[a-c]+x", v)
    (path,) = cache_dir.glob("*.npz")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        mid = len(data) // 2  # inside the arrays (the zip headers at the start are partly redundant)
        path.write_bytes(data[:mid] + b"\x00garbage" + data[mid + 8 :])
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # another format version's file under this key
        _rewrite_meta(path, version=disk_cache.FORMAT_VERSION + 1)
    _clear_memory()
    before = dict(disk_cache.stats)
    second = regex(r"[a-c]+x", _fresh(v))
    assert disk_cache.stats["misses"] == before["misses"] + 1
    assert disk_cache.stats["writes"] == before["writes"] + 1
    assert path.read_bytes() != b"" and len(path.read_bytes()) == len(data)
    _assert_same(first, second, v, [_tokenize(v, b"abcx")])
    _clear_memory()
    regex(r"[a-c]+x", _fresh(v))
    assert disk_cache.stats["hits"] == before["hits"] + 1


def test_disabled_cache_writes_nothing(cache_dir, monkeypatch):
    v = _small_vocab()
    disk_cache.set_disk_cache(False)
    try:
        regex(r"q+", v)
        json_schema(COUNTED, v)
        assert disk_cache.cache_dir() is None
    finally:
        disk_cache.set_disk_cache(None)
    monkeypatch.setenv(disk_cache.ENV, "off")
    _clear_memory()
    regex(r"q+", v)
    assert list(cache_dir.iterdir()) == []


def test_unwritable_cache_dir_is_ignored(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(disk_cache.ENV, str(blocker / "constraints"))
    monkeypatch.setattr(disk_cache, "_warned", False)
    _clear_memory()
    try:
        with pytest.warns(RuntimeWarning, match="constraint cache"):
            c = regex(r"z+", _small_vocab())
        assert c.n_states == 2
    finally:
        _clear_memory()


def test_errors_are_not_cached(cache_dir):
    v = _small_vocab()
    with pytest.raises(Exception, match="no string"):
        regex(r"[^\x00-\U0010FFFF]", v)
    with pytest.raises(Exception, match="no JSON value"):
        json_schema({"type": "string", "minLength": 3, "maxLength": 2}, v)
    assert list(cache_dir.iterdir()) == []


@pytest.mark.model
def test_round_trip_on_the_embedded_tokenizer(cache_dir, decc_vocab, decc_tokenizer):
    def walk(text: bytes) -> list[int]:
        return decc_tokenizer.encode(text.decode(), add_special_tokens=False)

    a1, a2 = _round_trip(
        lambda vocab: json_schema(COUNTED, vocab, engine="automaton"), decc_vocab, [walk(COUNTED_TEXT)]
    )
    assert isinstance(a2, TokenConstraint) and a2.automaton.counts is not None
    assert a2.automaton.loops  # string bodies: loop classes come back through the vocabulary's loop cache
    assert all(lp is a2.vocab.loop_cache[k] for k, lp in a2.vocab.loop_cache.items())
    b1, b2 = _round_trip(lambda vocab: json_schema(TREE, vocab), decc_vocab, [walk(TREE_TEXT)])
    assert isinstance(b2, CFGConstraint)


# -- hostile files: nothing read back from the cache may run code ------------------------------------------


class _Payload:
    """Unpickling this runs `exec`, which creates the marker file: the attack a cache file must not allow."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _planted(kind: str, path: Path, marker: Path, other: bytes) -> bytes:
    """The bytes of one kind of planted file; `other` is a valid file written under another key."""
    payload = pickle.dumps(_Payload(marker), protocol=5)
    if kind == "pickle":
        return b"decc-constraint\n" + payload  # the magic the pickle format (version 1) looked for
    if kind == "bare-pickle":
        return payload
    if kind == "object-array":  # a well-formed cache file whose array holds pickled objects
        meta = {"magic": disk_cache.MAGIC, "version": disk_cache.FORMAT_VERSION, "key": path.stem}
        meta["value"] = {"t": "array", "v": 0}
        buf = io.BytesIO()
        arr = np.array([_Payload(marker), None], dtype=object)
        np.savez(buf, a0=arr, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
        return buf.getvalue()
    if kind == "random":
        return np.random.default_rng(len(path.stem)).bytes(3000)
    if kind == "truncated":
        return other[: len(other) * 2 // 3]
    return other  # "other-key": a valid file, written for another constraint


@pytest.mark.parametrize(
    "kind",
    ["pickle", "bare-pickle", "object-array", "random", "truncated", "other-key", "future", "tampered"],
)
def test_planted_file_is_a_miss_and_runs_nothing(cache_dir, tmp_path_factory, kind):
    marker = tmp_path_factory.mktemp("marker") / "pwned"
    v = _small_vocab()
    regex(r"[a-c]+x", v)
    regex(r"q\d{2,5}", v)
    (target,) = [
        p for p in cache_dir.iterdir() if p.stem == disk_cache.cache_key("regex", (r"[a-c]+x", Limits()), v)
    ]
    (other,) = [p for p in cache_dir.iterdir() if p != target]
    if kind == "future":
        _rewrite_meta(target, version=disk_cache.FORMAT_VERSION + 1)
    elif kind == "tampered":  # the right key and format; next states out of the DFA's range
        with np.load(target, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays["meta"].tobytes())
        name = f"a{meta['value']['v']['automaton']['v']['next_state']['v']}"
        arrays[name] = arrays[name] + 1000
        with open(target, "wb") as f:
            np.savez(f, **arrays)
    else:
        planted = _planted(kind, target, marker, other.read_bytes())
        for suffix in (".pkl", ".npz"):  # where this and earlier versions of decc look
            target.with_suffix(suffix).write_bytes(planted)
    _clear_memory()
    before = dict(disk_cache.stats)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a warning: a miss is silent
        got = regex(r"[a-c]+x", _fresh(v))
    assert not marker.exists(), "a planted cache file ran code"
    assert disk_cache.stats["misses"] == before["misses"] + 1 and disk_cache.stats["hits"] == before["hits"]
    disk_cache.set_disk_cache(False)
    try:
        _clear_memory()
        fresh = regex(r"[a-c]+x", _fresh(v))
    finally:
        disk_cache.set_disk_cache(None)
    _assert_same(got, fresh, v, [_tokenize(v, b"abcx")])


_PIECES = ["a", "b", "ab", "[a-c]", r"\d", "(ab|c)", "x{2,4}", '[^"]{0,3}', "(a|bb)*", "c+", "é", "."]
_SCHEMAS = [
    COUNTED,
    TREE,
    {"type": "array", "items": {"enum": ["ab", 12, None]}, "maxItems": 3},
    {"type": "object", "properties": {"k": {"type": "string", "minLength": 2, "maxLength": 5}}},
]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.lists(st.sampled_from(_PIECES), min_size=1, max_size=4).map(lambda p: ("regex", "".join(p))),
        st.sampled_from(range(len(_SCHEMAS))).map(lambda i: ("schema", i)),
    ),
    st.integers(0, 2**16),
)
def test_cached_constraint_masks_equal_a_fresh_compile(case, seed):
    kind, what = case

    def make(vocab: Vocabulary):
        return regex(what, vocab) if kind == "regex" else json_schema(_SCHEMAS[what], vocab)

    v = _small_vocab()
    with tempfile.TemporaryDirectory() as d:
        old = os.environ.get(disk_cache.ENV)
        os.environ[disk_cache.ENV] = d
        try:
            _clear_memory()
            make(v)
            _clear_memory()
            before = disk_cache.stats["hits"]
            loaded = make(_fresh(v))
            assert disk_cache.stats["hits"] == before + 1
            disk_cache.set_disk_cache(False)
            _clear_memory()
            fresh = make(_fresh(v))
        finally:
            disk_cache.set_disk_cache(None)
            _clear_memory()
            if old is None:
                os.environ.pop(disk_cache.ENV, None)
            else:
                os.environ[disk_cache.ENV] = old
    _assert_same(loaded, fresh, v, [], seed)
