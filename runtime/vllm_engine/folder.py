"""The model folder vLLM loads: decc's own, unless its checkpoint stores tied embeddings only as `lm_head`.

decc's dequantized embedded SmolLM2 (runtime/model.py) is written by safetensors' `save_model`, which keeps
one name of a tied tensor: `lm_head.weight`, with no `model.embed_tokens.weight`. transformers re-ties them
at load; vLLM instead loads `lm_head.weight` on its own and leaves the embeddings unset (every logit equal).
For such a folder a sibling is prepared once under decc's cache (`vllm/<name>`): the same files, the tensor
stored as the embeddings, which vLLM then ties to its head as the config says.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from decc.vocabs import cache_dir, published

__all__ = ["vllm_folder"]

_HEAD, _EMBED = "lm_head.weight", "model.embed_tokens.weight"
_MARKER = "model.safetensors"


def vllm_folder(folder: Path) -> Path:
    """`folder`, or its prepared sibling when its checkpoint has only the head of tied embeddings."""
    checkpoint = folder / "model.safetensors"
    config = json.loads((folder / "config.json").read_text())
    if not checkpoint.is_file() or not config.get("tie_word_embeddings"):
        return folder
    from safetensors import safe_open

    with safe_open(str(checkpoint), "pt") as f:
        names = set(f.keys())
    if _EMBED in names or _HEAD not in names:
        return folder
    target = cache_dir() / "vllm" / folder.name
    if (target / _MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import load_file, save_file

    with published(target, _MARKER) as tmp:
        for item in folder.iterdir():
            if item.is_file() and item.name != checkpoint.name:
                shutil.copy2(item, tmp / item.name)
        tensors = load_file(str(checkpoint))
        tensors[_EMBED] = tensors.pop(_HEAD)
        save_file(tensors, str(tmp / checkpoint.name), metadata={"format": "pt"})
    return target


if __name__ == "__main__":  # `python -m decc.runtime.vllm_engine.folder [MODEL]`: the folder to `vllm serve`
    import sys

    from decc.runtime.model import model_dir

    print(vllm_folder(model_dir(sys.argv[1] if len(sys.argv) > 1 else "default")))
