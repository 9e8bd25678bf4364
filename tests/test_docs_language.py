"""Every program in docs/language.md parses and passes the model-free checks (the reference cannot rot)."""

from __future__ import annotations

import re
from pathlib import Path

from decc.compiler.pipeline import compile_program
from decc.dsl import parse_file

DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"


def blocks() -> list[str]:
    return re.findall(r"^```\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def test_every_program_in_the_reference_compiles(tmp_path: Path) -> None:
    found = blocks()
    assert len(found) >= 4
    for i, text in enumerate(found):
        first = text.splitlines()[0]
        if first.startswith("# lib/common.dec"):  # the library the next block imports
            (tmp_path / "lib").mkdir(exist_ok=True)
            path = tmp_path / "lib" / "common.dec"
        else:
            path = tmp_path / f"block{i}.dec"
        path.write_text(text)
        compile_program(parse_file(path))
