"""decc programs on vLLM: `VllmRunner` (runner.py) runs a plan's steps as vLLM requests, and the decc logits
processor (processor.py, loaded by vLLM through its `vllm.logits_processors` entry point) masks them with
decc's matchers. vllm is imported only when a runner starts or vLLM loads the processor."""

from .folder import vllm_folder
from .runner import VllmRunner

__all__ = ["VllmRunner", "vllm_folder"]
