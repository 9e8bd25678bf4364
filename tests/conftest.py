"""Shared test set-up. Triton kernels run on CPU tensors through the interpreter, so set it before import."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def lm():
    """The embedded model, loaded once per test session (from the decc cache: well under a second)."""
    from decc.runtime.model import load_language_model

    return load_language_model("default")
