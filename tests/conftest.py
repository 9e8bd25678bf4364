"""Shared test set-up. Triton kernels run on CPU tensors through the interpreter, so set it before import."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
