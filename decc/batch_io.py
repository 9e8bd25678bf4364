"""`decc run FILE --inputs data.jsonl --out results.jsonl`: reading input rows and writing result rows so
that an interrupted run loses nothing already written and a rerun skips the rows that are done."""

from __future__ import annotations

import fcntl
import json
import os
import stat
from pathlib import Path
from typing import Any

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


ROW_START = b'{"index": '  # how every row `write` writes begins


class ResultsFile:
    """An append-only JSONL file of {"index": i, ...} rows, written and flushed one row at a time.

    Opened (and locked) before any decoding, so a folder it cannot be written in fails at once and a second
    run on the same file fails fast. It never drops what the user wrote: only a torn last row of decc's own
    (no newline, after decc rows only) is cut; any other line makes it refuse the file. A pipe or a device
    (`/dev/stdout`, `/dev/null`) is written to as a stream: nothing read back, nothing fsynced, no lock."""

    def __init__(self, path: str, inputs_path: str | None = None) -> None:
        self.path = Path(path)
        self.done: set[int] = set()
        if inputs_path is not None and _same_file(path, inputs_path):
            raise DeccError(f"--out {path} is the inputs file; results would overwrite it")
        self._regular = not self.path.exists() or stat.S_ISREG(os.stat(path).st_mode)
        flags = (os.O_RDWR | os.O_CREAT if self._regular else os.O_WRONLY) | os.O_APPEND
        try:
            self._fd: int | None = os.open(path, flags, 0o666)
        except OSError as err:
            raise DeccError(f"cannot write results to {path}: {err.strerror or err}") from None
        if not self._regular:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.close()
            raise DeccError(
                f"{path} is being written by another decc run",
                hints=["wait for it to finish, or choose another --out file"],
            ) from None
        try:
            self._recover()
        except BaseException:
            self.close()
            raise

    def _recover(self) -> None:
        """Read the rows already written; a last row cut short by an interrupt (ours) is dropped."""
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size, 0) if size else b""
        lines = data.splitlines(keepends=True)
        first: dict[int, int] = {}
        good = 0
        for number, line in enumerate(lines, 1):
            row = _row(line)
            if row is None:
                ours = line.startswith(ROW_START) or ROW_START.startswith(line)
                if number == len(lines) and not line.endswith(b"\n") and ours:  # torn by an interrupt
                    break
                raise DeccError(
                    f"{self.path} is not a decc results file (line {number} is not a result row); "
                    "decc appends only to its own results",
                    hints=["choose another --out file"],
                )
            index = row["index"]
            if index in first:
                raise DeccError(
                    f"{self.path} holds row {index} twice (lines {first[index]} and {number}): two runs "
                    "wrote to it at once",
                    hints=["keep one of the two lines, then rerun"],
                )
            first[index] = number
            self.done.add(index)
            good += len(line)
        if good < len(data):
            os.ftruncate(self._fd, good)

    def write(self, index: int, row: dict[str, Any]) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        data = (json.dumps({"index": index, **row}, ensure_ascii=False) + "\n").encode()
        try:
            while data:
                data = data[os.write(self._fd, data) :]
            if self._regular:
                os.fsync(self._fd)
        except OSError as err:
            raise DeccError(f"cannot write results to {self.path}: {err.strerror or err}") from None
        self.done.add(index)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


def _row(line: bytes) -> dict[str, Any] | None:
    """A complete result row (one JSON object with an integer index, ending in a newline), else None."""
    if not line.endswith(b"\n"):
        return None
    try:
        row = json.loads(line)
    except ValueError:
        return None
    ok = isinstance(row, dict) and isinstance(row.get("index"), int) and not isinstance(row["index"], bool)
    return row if ok else None


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (hard links and symlinks included: compared by device and inode)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
