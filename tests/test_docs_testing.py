"""docs/testing.md cannot rot: its python blocks run, its example test file passes, the plugin loads."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "testing.md"
EXAMPLE = ROOT / "docs" / "examples" / "test_property_example.py"

pytest_plugins = ["pytester"]


def test_python_blocks_of_the_doc_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {"__name__": "docs_testing"})


def test_plugin_imports_without_loading_a_model() -> None:
    code = "import sys, decc.pytest_plugin; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_plugin_registers_option_and_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "def test_x(request):\n    assert request.config.getoption('--decc-model') == 'default'\n"
    )
    # installed decc registers the plugin through its pytest11 entry point: no -p needed
    result = pytester.runpytest_subprocess("--fixtures")
    result.stdout.fnmatch_lines(["*decc_tokenizer*", "*decc_vocab*"])
    assert pytester.runpytest_subprocess().ret == 0


def test_example_file_model_free_tests_pass(pytester: pytest.Pytester) -> None:
    """The example's model-free tests (strategies only), in a fresh pytest (the plugin loads itself)."""
    pytester.copy_example(str(EXAMPLE))
    result = pytester.runpytest_subprocess("-m", "not model", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, deselected=1)


@pytest.mark.model
def test_example_token_level_test_passes() -> None:
    """The example's tokenizer test, with the vocabulary the plugin's `decc_vocab` fixture builds."""
    import importlib.util

    from decc.grammars import Vocabulary
    from decc.runtime.model import load_tokenizer, model_facts

    spec = importlib.util.spec_from_file_location("property_example", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    size, eos = model_facts("default")
    vocab = Vocabulary.from_tokenizer(load_tokenizer("default"), size=size, eos_ids=eos)
    module.test_any_tokenization_is_accepted(decc_vocab=vocab)
