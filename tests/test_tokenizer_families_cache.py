"""Fetching, caching and loading the tokenizer families (decc/vocabs.py): what `make vocabs` does, and the
clear errors a user gets without it (never a traceback, never a download during a load)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import decc
from decc import vocabs
from decc.errors import DeccError
from decc.runtime.model import ModelNotFoundError, model_dir, model_facts

ROOT = Path(__file__).resolve().parent.parent
MODELS = "llama_cpp_python-0.3.36/vendor/llama.cpp/models"


def _sdist(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _run(args: list[str], cache: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "DECC_CACHE": str(cache), **env}
    return subprocess.run(args, capture_output=True, text=True, env=full, cwd=ROOT, timeout=300)


def test_fetch_extracts_only_the_families_from_the_sdist(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DECC_CACHE", str(tmp_path / "cache"))
    sdist = _sdist(
        tmp_path / "llama_cpp_python-0.3.36.tar.gz",
        {
            f"{MODELS}/ggml-vocab-qwen2.gguf": b"qwen2 bytes",
            f"{MODELS}/ggml-vocab-qwen2.gguf.inp": b"not a vocabulary",
            "llama_cpp_python-0.3.36/elsewhere/ggml-vocab-phi-3.gguf": b"outside the models folder",
        },
    )
    assert vocabs.fetch(["qwen2", "phi-3"], sdist=sdist, convert=False) == ["qwen2"]
    assert vocabs.gguf_path("qwen2").read_bytes() == b"qwen2 bytes"
    assert sorted(p.name for p in vocabs.vocabs_dir().iterdir()) == ["ggml-vocab-qwen2.gguf"]
    assert vocabs.cached_families() == ("qwen2",)


def test_a_missing_family_names_make_vocabs(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DECC_CACHE", str(tmp_path))
    with pytest.raises(vocabs.VocabsMissingError) as e:
        vocabs.load_family_tokenizer("phi-3")
    assert "make vocabs" in e.value.render() and not (tmp_path / "vocabs").exists()
    with pytest.raises(DeccError, match="not a tokenizer family"):
        vocabs.tokenizer_dir("phi-4")


def test_the_cli_reports_a_missing_family_without_a_traceback(tmp_path) -> None:
    decc_bin = str(Path(sys.executable).parent / "decc")
    done = _run([decc_bin, "check", "--model", "llama-spm", "examples/hello.dec"], tmp_path)
    assert done.returncode == 2, done.stderr
    assert "make vocabs" in done.stderr and "Traceback" not in done.stderr


def test_fetch_without_pypi_is_an_error_not_a_traceback(tmp_path) -> None:
    offline = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_CACHE_DIR": "1", "PIP_RETRIES": "0"}
    done = _run([sys.executable, "-m", "decc.vocabs", "fetch", "gpt-2"], tmp_path, **offline)
    assert done.returncode == 2, done.stderr
    assert "could not download" in done.stderr and "Traceback" not in done.stderr
    done = _run([sys.executable, "-m", "decc.vocabs", "fetch", "gpt-5"], tmp_path)
    assert done.returncode == 2 and "unknown tokenizer family: gpt-5" in done.stderr


def test_a_family_loads_as_a_tokenizer_but_not_as_a_model(tokenizer_family) -> None:
    tok, vocab = tokenizer_family("gpt-2")
    assert decc.load_tokenizer("gpt-2").get_vocab() == tok.get_vocab()
    assert model_facts("gpt-2") == (50257, frozenset({50256})) == (vocab.size, vocab.eos_ids)
    with pytest.raises(ModelNotFoundError, match="tokenizer family .* cannot generate"):
        model_dir("gpt-2")


def test_the_conversion_is_the_gguf_tokenizer(tokenizer_family, tmp_path, monkeypatch) -> None:
    """The converted folder (what every later load reads) tokenizes as the GGUF itself does."""
    from transformers import AutoTokenizer

    tokenizer_family("llama-spm")
    gguf = vocabs.gguf_path("llama-spm")
    monkeypatch.setenv("DECC_CACHE", str(tmp_path))
    vocabs.vocabs_dir().mkdir(parents=True)
    shutil.copy(gguf, vocabs.gguf_path("llama-spm"))
    converted = vocabs.load_family_tokenizer("llama-spm")
    assert (tmp_path / "vocabs" / "llama-spm" / "tokenizer_config.json").is_file()
    direct = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    text = "Hello  wörld\n\n\t😀 <s> x"
    assert converted.get_vocab() == direct.get_vocab()
    assert converted(text)["input_ids"] == direct(text)["input_ids"]
