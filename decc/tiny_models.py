"""Tiny random-weight models of other architectures, paired with the real tokenizers of their families.

Only the embedded SmolLM2 (Llama architecture, 49k tokenizer) ships with decc. To show that any local
transformers causal LM runs a program end to end, the tests build, from transformers configs, a 2-layer,
64-wide model per architecture x tokenizer family (Llama + Llama-3's 128k BPE, Qwen2 + its 152k BPE, Mistral
+ Llama-2's SentencePiece with byte fallback, GPT-2 + its BPE) with a fixed seed, and `save_pretrained` it
with its tokenizer (decc/vocabs.py's cached families) into `$DECC_CACHE/tiny/<name>`. A build takes seconds
and is offline once the vocabularies are cached (`make vocabs`); `make tiny-models` or
`python -m decc.tiny_models build` builds them all. The weights are never committed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from decc import vocabs
from decc.errors import DeccError

SEED = 0
LAYERS, HIDDEN, HEADS, KV_HEADS, FFN = 2, 64, 4, 2, 128
STAMP = "decc-tiny.json"  # the recipe a folder was built from
_LOCK = threading.Lock()


@dataclass(frozen=True)
class TinySpec:
    """One architecture x tokenizer family: the transformers config class and what differs per family."""

    name: str
    architecture: str  # a transformers `model_type`
    family: str  # a tokenizer family of decc/vocabs.py
    end_of_turn: str | None = None  # the chat template's end-of-turn token, an EOS as in the real models
    pad_vocab_to: int = 1  # logits wider than the tokenizer, as real checkpoints pad them
    add_bos: bool = False  # BOS on plain prompts: the real tokenizer adds it, its GGUF does not say so


TINY = (
    TinySpec("llama3", "llama", "llama-bpe", add_bos=True),
    TinySpec("qwen2", "qwen2", "qwen2", end_of_turn="<|im_end|>", pad_vocab_to=256),  # 152064, as Qwen2-7B
    TinySpec("mistral", "mistral", "llama-spm"),
    TinySpec("gpt2", "gpt2", "gpt-2"),
)
NAMES = tuple(s.name for s in TINY)


def tiny_dir(name: str) -> Path:
    return vocabs.cache_dir() / "tiny" / name


def spec_of(name: str) -> TinySpec:
    for s in TINY:
        if s.name == name:
            return s
    raise DeccError(f"'{name}' is not a tiny model", hints=[f"the tiny models: {', '.join(NAMES)}"])


def tiny_model_dir(name: str) -> Path:
    """The folder of tiny model `name` (a transformers model folder), built on first use and again when
    its recipe (spec, sizes, seed) changed."""
    spec = spec_of(name)
    target = tiny_dir(name)
    if _built(spec, target):
        return target
    tokenizer_folder = vocabs.tokenizer_dir(spec.family)  # first: a missing family names `make vocabs`
    with _LOCK:
        if not _built(spec, target):
            _build(spec, tokenizer_folder, target)
    return target


def _recipe(spec: TinySpec) -> str:
    return json.dumps([asdict(spec), SEED, LAYERS, HIDDEN, HEADS, KV_HEADS, FFN])


def _built(spec: TinySpec, target: Path) -> bool:
    stamp = target / STAMP
    return (target / "model.safetensors").is_file() and stamp.is_file() and stamp.read_text() == _recipe(spec)


def config_for(spec: TinySpec, tokenizer: Any) -> Any:
    """The transformers config of a tiny model: its ids from the tokenizer, its sizes tiny."""
    from transformers import AutoConfig

    size = len(tokenizer)
    size += -size % spec.pad_vocab_to
    eos = [tokenizer.eos_token_id]
    if spec.end_of_turn is not None:
        eos.append(tokenizer.convert_tokens_to_ids(spec.end_of_turn))
    ids: dict[str, Any] = {
        "vocab_size": size,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": eos[0] if len(eos) == 1 else eos,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": True,  # one vocabulary-sized matrix, not two: the folder stays small
    }
    if spec.architecture == "gpt2":
        sizes = {"n_layer": LAYERS, "n_embd": HIDDEN, "n_head": HEADS, "n_inner": FFN, "n_positions": 1024}
    else:
        sizes = {
            "num_hidden_layers": LAYERS,
            "hidden_size": HIDDEN,
            "num_attention_heads": HEADS,
            "num_key_value_heads": KV_HEADS,
            "intermediate_size": FFN,
            "max_position_embeddings": 4096,
        }
    return AutoConfig.for_model(spec.architecture, **sizes, **ids)


def _build(spec: TinySpec, tokenizer_folder: Path, target: Path) -> None:
    """Config -> seeded random weights -> `save_pretrained` (model, generation config, tokenizer, its chat
    template if the family's GGUF has one), into a temporary sibling renamed into place, so a crash or a
    concurrent process never leaves a half-written folder."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_folder, local_files_only=True)
    if spec.add_bos:
        tok.add_bos_token = True
    config = config_for(spec, tok)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.eos_token_id = config.eos_token_id
    target.parent.mkdir(parents=True, exist_ok=True)
    with vocabs.published(target, "model.safetensors") as tmp:
        with contextlib.redirect_stderr(io.StringIO()):  # the shard writer's progress bar
            model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / STAMP).write_text(_recipe(spec))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m decc.tiny_models", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser(
        "build", help="build the tiny models into $DECC_CACHE/tiny (fetching the vocabularies)"
    )
    b.add_argument("names", nargs="*", metavar="NAME", help=f"default: all ({', '.join(NAMES)})")
    args = p.parse_args(argv)
    try:
        names = args.names or NAMES
        for name in names:
            spec_of(name)
        vocabs.fetch(sorted({spec_of(n).family for n in names}))
        for name in names:
            print(f"decc: {name:8} {tiny_model_dir(name)}")
    except DeccError as e:
        print(e.render(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
