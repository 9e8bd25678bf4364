"""Tokenizer families without weights: the vocabulary-only GGUFs that llama.cpp ships for its tests.

decc's constraints depend on a model only through its vocabulary, so checking them on every tokenizer family
(byte-level BPE: Llama-3, Qwen2, GPT-2, DeepSeek; SentencePiece with byte fallback: Llama-2, Phi-3) needs
no weights. The llama-cpp-python source distribution on PyPI carries `ggml-vocab-<family>.gguf` files;
`fetch` (`make vocabs`, `python -m decc.vocabs fetch`) downloads it once with pip, extracts them into
`$DECC_CACHE/vocabs/` and converts each to a transformers tokenizer folder there, which later loads read in
about a second (the GGUF conversion takes up to 15 s). Nothing here is ever committed or fetched implicitly
by a load: a missing family is a `VocabsMissingError` that names `make vocabs`.

This module is a leaf (only decc.errors): the model loader imports it, so it owns the cache root too.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from decc.errors import DeccError

SDIST = "llama-cpp-python==0.3.36"
# The families issue 20 names first; the others are every GGUF in that sdist that transformers loads.
CORE_FAMILIES = ("llama-bpe", "llama-spm", "qwen2", "phi-3", "gpt-2", "deepseek-coder")
EXTRA_FAMILIES = ("deepseek-llm", "falcon", "aquila", "starcoder", "qwen35")
FAMILIES = CORE_FAMILIES + EXTRA_FAMILIES
FETCH_HINT = "run `make vocabs` (or `python -m decc.vocabs fetch`) once; it needs PyPI"
_LOCK = threading.Lock()


class VocabsMissingError(DeccError):
    """A tokenizer family's vocabulary is not in the cache (decc never downloads it during a load)."""


def cache_dir() -> Path:
    """decc's cache root: `$DECC_CACHE`, default `~/.cache/decc` (models, vocabularies, constraints)."""
    return Path(os.environ.get("DECC_CACHE") or Path.home() / ".cache" / "decc")


def vocabs_dir() -> Path:
    return cache_dir() / "vocabs"


def gguf_name(family: str) -> str:
    return f"ggml-vocab-{family}.gguf"


def gguf_path(family: str) -> Path:
    return vocabs_dir() / gguf_name(family)


def is_family(spec: str) -> bool:
    return spec in FAMILIES


def cached_families() -> tuple[str, ...]:
    """The families whose GGUF is in the cache."""
    return tuple(f for f in FAMILIES if gguf_path(f).is_file())


def tokenizer_dir(family: str) -> Path:
    """The family's converted transformers tokenizer folder, converted from its GGUF on first use."""
    if family not in FAMILIES:
        raise VocabsMissingError(
            f"'{family}' is not a tokenizer family", hints=[f"the families: {', '.join(FAMILIES)}"]
        )
    target = vocabs_dir() / family
    if (target / "tokenizer_config.json").is_file():
        return target
    gguf = gguf_path(family)
    if not gguf.is_file():
        raise VocabsMissingError(
            f"the '{family}' tokenizer family is not in decc's cache ({gguf} is missing)", hints=[FETCH_HINT]
        )
    with _LOCK:
        if not (target / "tokenizer_config.json").is_file():
            _convert(gguf, target)
    return target


def load_family_tokenizer(family: str) -> Any:
    """The transformers tokenizer of a family (from its converted folder; offline)."""
    folder = tokenizer_dir(family)  # first: a missing family is reported before transformers is imported
    _quiet()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


def _quiet() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _convert(gguf: Path, target: Path) -> None:
    """GGUF -> tokenizer files, written into a temporary sibling and renamed, so a crash or a concurrent
    process never leaves a half-written folder."""
    _quiet()
    from transformers import AutoTokenizer

    with contextlib.redirect_stderr(io.StringIO()):  # the GGUF converter's progress bars
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with published(target, "tokenizer_config.json") as tmp:
        tok.save_pretrained(tmp)


@contextlib.contextmanager
def published(target: Path, marker: str) -> Iterator[Path]:
    """A temporary sibling of `target` to write into, renamed onto `target` (replacing it) when the block
    ends, so a crash or a concurrent process never leaves a half-written folder; when a concurrent process
    published first (its `marker` file is there), its folder is kept."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield tmp
        shutil.rmtree(target, ignore_errors=True)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / marker).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def extract(sdist: Path, families: Iterable[str] = FAMILIES) -> list[Path]:
    """Copy the families' GGUFs out of a llama-cpp-python sdist into the cache; returns the files written."""
    wanted = {f"vendor/llama.cpp/models/{gguf_name(f)}": f for f in families}
    out = vocabs_dir()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(sdist) as tar:
        for member in tar:
            tail = member.name.split("/", 1)[-1]
            if tail not in wanted or not member.isfile():
                continue
            src = tar.extractfile(member)
            if src is None:
                continue
            dest = gguf_path(wanted[tail])
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}-", dir=out)
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(src, f)
            os.replace(tmp, dest)
            shutil.rmtree(out / wanted[tail], ignore_errors=True)  # a stale conversion of an older file
            written.append(dest)
    return written


def download_sdist(folder: Path) -> Path:
    """`pip download` the llama-cpp-python source distribution into `folder` (no build, no dependencies)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q"]
    cmd += ["--retries", "1", "--timeout", "30", "-d"]  # fail in seconds, not minutes, without a network
    done = subprocess.run([*cmd, str(folder), SDIST], capture_output=True, text=True)
    found = sorted(folder.glob("llama_cpp_python-*.tar.gz"))
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise VocabsMissingError(
            f"could not download {SDIST} from PyPI: {last}",
            hints=["with a copy of the sdist at hand: python -m decc.vocabs fetch --sdist FILE"],
        )
    return found[-1]


def fetch(families: Sequence[str] = FAMILIES, sdist: Path | None = None, convert: bool = True) -> list[str]:
    """Make the families available offline (skipping those already cached); returns the ones now cached.

    A family transformers cannot convert is left out with a note on stderr, not an error."""
    missing = [f for f in families if not gguf_path(f).is_file()]
    if missing:
        if sdist is not None:
            extract(sdist, missing)
        else:
            with tempfile.TemporaryDirectory(prefix="decc-vocabs-") as tmp:
                extract(download_sdist(Path(tmp)), missing)
    ready = []
    for family in families:
        if not gguf_path(family).is_file():
            print(f"decc: {gguf_name(family)} is not in {sdist or SDIST}", file=sys.stderr)
            continue
        if convert:
            try:
                tokenizer_dir(family)
            except Exception as e:  # noqa: BLE001 -- a converter limit of transformers, reported per family
                print(f"decc: transformers cannot load {family}: {type(e).__name__}: {e}", file=sys.stderr)
                continue
        ready.append(family)
    return ready


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m decc.vocabs", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download and convert the tokenizer families into $DECC_CACHE/vocabs")
    f.add_argument("families", nargs="*", metavar="FAMILY", help=f"default: all ({', '.join(FAMILIES)})")
    f.add_argument("--sdist", type=Path, help="a llama-cpp-python .tar.gz already at hand (no download)")
    sub.add_parser("list", help="the families and whether each is cached")
    args = p.parse_args(argv)
    if args.command == "list":
        for family in FAMILIES:
            state = "cached" if gguf_path(family).is_file() else "missing"
            print(f"{family:16} {state:8} {gguf_path(family)}")
        return 0
    unknown = [x for x in args.families if x not in FAMILIES]
    try:
        if unknown:
            raise VocabsMissingError(
                f"unknown tokenizer famil{'ies' if len(unknown) > 1 else 'y'}: {', '.join(unknown)}",
                hints=[f"the families: {', '.join(FAMILIES)}"],
            )
        ready = fetch(args.families or FAMILIES, args.sdist)
    except DeccError as e:
        print(e.render(), file=sys.stderr)
        return 2
    print(f"decc: {len(ready)} tokenizer families in {vocabs_dir()}: {', '.join(ready)}")
    return 0 if set(ready) >= set(args.families or CORE_FAMILIES) else 1


if __name__ == "__main__":
    sys.exit(main())
