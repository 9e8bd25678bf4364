"""`decc run FILE --inputs data.jsonl --out results.jsonl`: reading input rows and writing result rows so
that an interrupted run loses nothing already written and a rerun skips the rows that are done."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TextIO

from decc.errors import DeccError, Source, Span

__all__ = ["ResultsFile", "read_inputs"]


def read_inputs(path: str) -> list[dict[str, Any]]:
    """One JSON object per non-blank line: the inputs of one run. Errors point into the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DeccError(f"cannot read inputs from {path}: {getattr(err, 'strerror', None) or err}") from None
    source = Source(path, text)
    rows = []
    offset = 0
    for line in text.splitlines(keepends=True):
        start, offset = offset, offset + len(line)
        body = line.rstrip("\r\n")
        if not body.strip():
            continue
        try:
            row = json.loads(body)
        except json.JSONDecodeError as err:
            at = start + err.pos
            raise DeccError(f"not valid JSON: {err.msg}", Span.of(source, at, at + 1)) from None
        if not isinstance(row, dict):
            raise DeccError(
                "each line must be a JSON object of inputs", Span.of(source, start, start + len(body))
            )
        rows.append(row)
    return rows


class ResultsFile:
    """An append-only JSONL file of {"index": i, ...} rows, written and flushed one row at a time."""

    def __init__(self, path: str, inputs_path: str | None = None) -> None:
        self.path = Path(path)
        if inputs_path is not None and self.path.resolve() == Path(inputs_path).resolve():
            raise DeccError(f"--out {path} is the inputs file; results would overwrite it")
        self.done: set[int] = set()
        if self.path.exists():
            self._recover()
        self._file: TextIO | None = None

    def _recover(self) -> None:
        """Read the rows already written; a last line cut short by an interrupt (ours) is dropped."""
        data = self.path.read_bytes()
        good = 0
        for line in data.splitlines(keepends=True):
            try:
                row = json.loads(line)
            except ValueError:
                break
            if not line.endswith(b"\n") or not isinstance(row, dict) or not isinstance(row.get("index"), int):
                break
            self.done.add(row["index"])
            good += len(line)
        if good < len(data):
            rest = data[good:]
            if b"\n" in rest.rstrip(b"\n"):  # more than one bad line: not a file we were writing
                raise DeccError(
                    f"{self.path} holds lines that are not decc results; choose another --out file"
                )
            with open(self.path, "r+b") as f:
                f.truncate(good)

    def write(self, index: int, row: dict[str, Any]) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across rows
        self._file.write(json.dumps({"index": index, **row}, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done.add(index)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
