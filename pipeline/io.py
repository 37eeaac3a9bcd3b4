"""The one place that writes files: every output is written to a temp file beside it, then renamed.

An interrupted stage therefore leaves the last good output in place, never a half-written one.
"""
from __future__ import annotations

import contextlib
import json
import lzma
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: `parse` writes JSON lines and should not load them (0.4 s)
    import pandas as pd
    import pyarrow as pa


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds.

    The temp file is created with the mode a plain `open()` gives (0666 less the umask), not mkstemp's
    0600, so that outputs in a shared report folder stay readable by the group, as the user expects."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp_path = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:  # another writer's temp file of the same name: draw again
            continue
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def replaced_dir(directory: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp folder beside `directory`; swap it in for `directory` only if the block succeeds.
    The previous folder stays whole until the new one is complete, so an interrupted write keeps it."""
    directory = Path(directory)
    tmp, old = directory.with_name(f".{directory.name}.tmp"), directory.with_name(f".{directory.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def leftover_temp_files(folder: str | os.PathLike, name: str = "*") -> list[Path]:
    """The temp files `atomic_path` left in `folder` for outputs named `name` when its process was killed
    (sorted). Only whoever owns the folder's writes may delete them, and only while no write is running."""
    return sorted(Path(folder).glob(f".{name}.*.tmp"))


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False) + "\n")


def append_record(path: str | os.PathLike, record: dict) -> None:
    """Add one record to a JSON list file (benchmark results), rewriting it atomically."""
    path = Path(path)
    records = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    write_json(path, records + [record])


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one line to a log. A rename cannot append, so this is the one non-atomic write: the line
    goes out in a single O_APPEND write, so concurrent writers never interleave within a line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def write_parquet(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


class ParquetStream:
    """Write rows to parquet in batches (bounded memory), atomically on close.

    Usage: `with ParquetStream(path, schema) as out: out.write(row)`.
    """

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, batch_rows: int = 2000):
        self.path, self.schema, self.batch_rows = Path(path), schema, batch_rows
        self._rows: list[dict] = []
        self.count = 0

    def __enter__(self) -> "ParquetStream":
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        import pyarrow.parquet as pq

        self._writer = pq.ParquetWriter(tmp, self.schema)
        return self

    def write(self, row: dict) -> None:
        self._rows.append(row)
        self.count += 1
        if len(self._rows) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            import pyarrow as pa

            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
            self._rows = []

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self._flush()
        self._writer.close()
        return self._ctx.__exit__(exc_type, exc, tb)


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; raise ValueError naming the file and line
    for a line that is not UTF-8, not JSON (NaN and Infinity, which Python writes, are not), or not an
    object. A `.xz` file is read through lzma (a corpus packed to travel: scripts/pack_for_device.py)."""
    with (lzma.open if str(path).endswith(".xz") else open)(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not valid UTF-8 (undecodable byte at column {err.start + 1}); "
                                 "save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line, parse_constant=_not_json)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: malformed JSON ({err.msg}, column {err.colno})") from None
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: {err}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def _not_json(constant: str):
    raise ValueError(f"{constant} is not valid JSON: write null for a missing value")
