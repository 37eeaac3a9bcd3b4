"""Readers: one function per format, each turning a file into raw documents or a rejection reason.

A reader raises `Rejected(reason)` for a file it cannot use; record files (.jsonl/.csv) yield a
`Rejected` per bad record and go on with the rest.
"""
from __future__ import annotations

import csv
import io
import json
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import charset_normalizer

from pipeline.config import IngestSettings

TEXT_FORMATS = {".txt": "txt", ".md": "txt", ".text": "txt"}
FORMATS = {**TEXT_FORMATS, ".html": "html", ".htm": "html", ".docx": "docx", ".pdf": "pdf",
           ".jsonl": "records", ".csv": "records"}
_SENTENCE_END = ("。", "！", "？", "：", "；", "”", "」", "）", "…", "!", "?", ":", ";")


class Rejected(Exception):
    """A file or record that cannot be ingested; the message is the reason shown to the user."""


@dataclass
class RawDocument:
    path: str
    format: str
    text: str
    record: int = -1  # line/row number inside a record file, -1 for whole files
    encoding: str | None = None
    fields: dict = field(default_factory=dict)  # metadata the source itself carries


@dataclass
class RejectedRecord:
    path: str
    reason: str


def read_source(path: Path, rel: str, settings: IngestSettings) -> Iterator[RawDocument | RejectedRecord]:
    """All raw documents of one file; a file-level problem becomes a single RejectedRecord."""
    fmt = FORMATS.get(path.suffix.lower())
    try:
        size = path.stat().st_size
        if size == 0:
            raise Rejected("empty file (0 bytes)")
        if size > settings.max_file_mb * 2**20:
            raise Rejected(f"file of {size / 2**20:.1f} MB exceeds ingest.max_file_mb={settings.max_file_mb}")
        if fmt == "records":
            yield from _read_records(path, rel, settings)
        elif fmt == "txt":
            text, encoding = decode_bytes(path.read_bytes())
            yield RawDocument(rel, "txt", text, encoding=encoding)
        elif fmt == "html":
            yield _read_html(path, rel)
        elif fmt == "docx":
            yield _read_docx(path, rel, settings)
        elif fmt == "pdf":
            yield _read_pdf(path, rel)
        else:
            raise Rejected(f"unsupported file type '{path.suffix}'")
    except Rejected as err:
        yield RejectedRecord(rel, str(err))
    except (OSError, MemoryError) as err:
        yield RejectedRecord(rel, f"unreadable: {type(err).__name__}: {err}")


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Decode text bytes: UTF-8 (with or without BOM), else the detected GB18030/Big5/UTF-16 encoding."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise Rejected("undecodable bytes (UTF-16 BOM but invalid UTF-16)") from None
    head = data[:65536]
    if b"\x00" in head:
        raise Rejected("binary content (NUL bytes), not text")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    match = charset_normalizer.from_bytes(
        data[:200_000], cp_isolation=["gb18030", "big5", "utf_8"]).best()
    if match is None:
        raise Rejected("undecodable bytes: not UTF-8, GB18030 or Big5")
    encoding = "gb18030" if match.encoding in ("gb2312", "gbk", "gb18030") else match.encoding
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError as err:
        raise Rejected(f"undecodable bytes as {encoding} at byte {err.start}") from None


def _field(record: dict, names: list[str]):
    for name in names:
        value = record.get(name)
        if value not in (None, ""):
            return value
    return None


def _read_records(path: Path, rel: str, settings: IngestSettings) -> Iterator[RawDocument | RejectedRecord]:
    names = settings.records
    if path.suffix.lower() == ".jsonl":
        rows = _jsonl_rows(path)
    else:
        rows = _csv_rows(path)
    for number, record in rows:
        where = f"{rel}#{number}"
        if isinstance(record, str):  # a parse error message
            yield RejectedRecord(where, record)
            continue
        text = _field(record, names.text)
        if not isinstance(text, str) or not text.strip():
            yield RejectedRecord(where, f"record has no text field (tried {names.text}; "
                                        "set ingest.records.text in params.yaml)")
            continue
        fields = {key: _field(record, getattr(names, key))
                  for key in ("title", "date", "year", "source", "doc_type", "id")}
        yield RawDocument(where, "records", text, record=number, encoding="utf-8",
                          fields={k: v for k, v in fields.items() if v is not None})


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict | str]]:
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                yield number, f"malformed JSON line ({type(err).__name__})"
                continue
            yield number, record if isinstance(record, dict) else "JSON line is not an object"


def _csv_rows(path: Path) -> Iterator[tuple[int, dict | str]]:
    text, _ = decode_bytes(path.read_bytes())
    csv.field_size_limit(2**31 - 1)
    try:
        for number, row in enumerate(csv.DictReader(io.StringIO(text, newline="")), 2):
            yield number, row
    except csv.Error as err:
        raise Rejected(f"malformed CSV: {err}") from None


def _read_html(path: Path, rel: str) -> RawDocument:
    import trafilatura

    html, encoding = decode_bytes(path.read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        doc = trafilatura.bare_extraction(html, with_metadata=True, include_comments=False,
                                          include_tables=True)
    text = (doc.text if doc is not None else "") or ""
    if not text.strip():
        raise Rejected("no main text found in HTML (only scripts, navigation or boilerplate)")
    title = doc.title
    lines = text.split("\n")
    if title and lines and lines[0].strip() == title.strip():
        text = "\n".join(lines[1:])  # the <h1> repeats the title
    fields = {"title": title, "date": doc.date, "source": doc.sitename}
    return RawDocument(rel, "html", text, encoding=encoding,
                       fields={k: v for k, v in fields.items() if v})


def _check_zip(path: Path, settings: IngestSettings) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile:
        raise Rejected("corrupt docx (not a valid zip archive)") from None
    total = sum(info.file_size for info in infos)
    limit = settings.max_docx_uncompressed_mb * 2**20
    if total > limit:
        raise Rejected(f"docx unpacks to {total / 2**20:.0f} MB (zip bomb?); limit "
                       f"ingest.max_docx_uncompressed_mb={settings.max_docx_uncompressed_mb}")
    for info in infos:
        if info.compress_size and info.file_size / info.compress_size > 1000 and info.file_size > 2**20:
            raise Rejected(f"docx member '{info.filename}' has compression ratio "
                           f"{info.file_size // info.compress_size}:1 (zip bomb?)")


def _read_docx(path: Path, rel: str, settings: IngestSettings) -> RawDocument:
    import docx
    from docx.table import Table

    _check_zip(path, settings)
    try:
        document = docx.Document(str(path))
    except Exception as err:  # python-docx raises many types for broken packages
        raise Rejected(f"corrupt docx ({type(err).__name__})") from None
    lines, title = [], document.core_properties.title or None
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = [c.text.strip() for c in row.cells]
                lines.append(" | ".join(dict.fromkeys(c for c in cells if c)))  # merged cells repeat
        else:
            if title is None and block.style is not None and block.style.name in ("Title", "Heading 1"):
                title = block.text.strip() or None
                continue
            lines.append(block.text)
    fields = {"title": title} if title else {}
    return RawDocument(rel, "docx", "\n".join(lines), encoding=None, fields=fields)


def _read_pdf(path: Path, rel: str) -> RawDocument:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as err:
        raise Rejected(f"corrupt pdf ({err})") from None
    try:
        pages = [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
    except pdfium.PdfiumError as err:
        raise Rejected(f"corrupt pdf page ({err})") from None
    finally:
        pdf.close()
    return RawDocument(rel, "pdf", "\n".join(pages), encoding=None)


def join_wrapped_lines(lines: list[str]) -> list[str]:
    """Undo PDF line wrapping: a line as wide as the page's text that does not end a sentence
    continues on the next line; shorter lines (headings, paragraph ends) stand alone."""
    if not lines:
        return lines
    widths = sorted(len(line) for line in lines)
    full_width = widths[int(0.9 * (len(widths) - 1))]
    out: list[str] = []
    wrapped = False
    for line in lines:
        if wrapped:
            out[-1] += line
        else:
            out.append(line)
        wrapped = len(line) >= 0.85 * full_width and not line.endswith(_SENTENCE_END)
    return out
