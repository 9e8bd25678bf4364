"""`decc run --inputs ... --out FILE`: nothing the user wrote is lost, two runs never share a results file,
and a file that cannot be written fails before any decoding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.batch_io import ResultsFile
from decc.cli import main
from decc.errors import DeccError

ROW = st.fixed_dictionaries({"values": st.dictionaries(st.text(max_size=5), st.text(max_size=8), max_size=3)})


def rows_text(rows: list[dict]) -> str:
    """Rows as `ResultsFile.write` writes them."""
    return "".join(json.dumps({"index": i, **r}, ensure_ascii=False) + "\n" for i, r in enumerate(rows))


def is_row(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


NOT_A_ROW = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30
).filter(lambda s: not is_row(s))


@settings(max_examples=60, deadline=None)
@given(st.lists(ROW, max_size=3), NOT_A_ROW, st.booleans())
def test_a_line_that_is_not_a_row_is_kept_and_refused(tmp_path_factory, rows, note, newline) -> None:
    """A last line the user wrote (a note, a hand-added line, with or without its newline) is never cut:
    the file is refused unless the line is a torn start of decc's own row."""
    path = tmp_path_factory.mktemp("r") / "out.jsonl"
    original = (rows_text(rows) + note + ("\n" if newline else "")).encode()
    path.write_bytes(original)
    ours_torn = not newline and note != "" and '{"index": '.startswith(note)
    blank = note == "" and not newline
    if ours_torn or blank:
        ResultsFile(str(path)).close()
        assert path.read_bytes() == rows_text(rows).encode()
        return
    with pytest.raises(DeccError, match="not a decc results file"):
        ResultsFile(str(path))
    assert path.read_bytes() == original


@settings(max_examples=60, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=4), st.data())
def test_a_row_torn_by_an_interrupt_is_dropped(tmp_path_factory, rows, data) -> None:
    """The last row cut anywhere before its newline is dropped; the rows before it are kept and done."""
    path = tmp_path_factory.mktemp("t") / "out.jsonl"
    whole = rows_text(rows).encode()
    last = len(rows_text(rows[:-1]).encode())
    cut = data.draw(st.integers(last + 1, len(whole) - 1))
    path.write_bytes(whole[:cut])
    out = ResultsFile(str(path))
    out.close()
    assert path.read_bytes() == whole[:last]
    assert out.done == set(range(len(rows) - 1))


def test_notes_file_is_not_emptied(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my note\n")
    with pytest.raises(DeccError, match="not a decc results file"):
        ResultsFile(str(notes))
    assert notes.read_text() == "my note\n"


@pytest.mark.parametrize("link", [os.link, os.symlink])
def test_the_inputs_file_under_another_name_is_refused(tmp_path: Path, link) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"thing": "x"}\n')
    other = tmp_path / "hard.jsonl"
    link(inputs, other)
    with pytest.raises(DeccError, match="is the inputs file"):
        ResultsFile(str(other), str(inputs))
    assert inputs.read_text() == '{"thing": "x"}\n'


def test_a_second_writer_fails_fast(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    first = ResultsFile(str(path))
    with pytest.raises(DeccError, match="being written by another decc run"):
        ResultsFile(str(path))
    first.write(0, {"values": {}})
    first.close()
    again = ResultsFile(str(path))
    assert again.done == {0}
    again.close()


def test_duplicate_indices_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    text = rows_text([{"values": {"a": "1"}}, {"values": {}}]) + json.dumps({"index": 0, "values": {}}) + "\n"
    path.write_text(text)
    with pytest.raises(DeccError, match=r"holds row 0 twice \(lines 1 and 3\)"):
        ResultsFile(str(path))
    assert path.read_text() == text


def test_a_missing_folder_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(DeccError, match="cannot write results to .*No such file or directory"):
        ResultsFile(str(tmp_path / "no" / "out.jsonl"))


def test_devices_and_pipes_are_written_as_streams(tmp_path: Path) -> None:
    """/dev/null takes rows (no fsync error); /dev/stdout on a pipe is written, never read back (it hung)."""
    out = ResultsFile("/dev/null")
    out.write(0, {"values": {"x": "y"}})
    out.close()
    code = "from decc.batch_io import ResultsFile\nf = ResultsFile('/dev/stdout')\nf.write(3, {'v': 1})\nf.close()\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"index": 3, "v": 1}


def test_cli_refuses_an_unwritable_out_before_loading_the_model(tmp_path: Path, monkeypatch, capsys) -> None:
    import decc.runtime.model as model

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(model, "load_language_model", no_model)
    monkeypatch.setattr(model, "load_tokenizer", no_model)
    src = tmp_path / "p.dec"
    src.write_text("input thing: str\ngen x { max_tokens: 2 }\n")
    data = tmp_path / "in.jsonl"
    data.write_text('{"thing": "a"}\n')
    notes = tmp_path / "notes.txt"
    notes.write_text("my note\n")
    for out, message in (
        (tmp_path / "no" / "o.jsonl", "cannot write results"),
        (notes, "not a decc results"),
    ):
        assert main(["run", str(src), "--inputs", str(data), "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert notes.read_text() == "my note\n"
