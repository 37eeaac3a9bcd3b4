"""Archive layouts (`ingest.sources`): JSON-API dumps and headline CSVs here, feeds in feeds.py.

A layout is chosen by the file's path (its glob), not its suffix, so a folder of per-day dumps is
described once in params.yaml. Every record is read on its own: a bad record becomes a rejection row
naming the file and record number (`file#n`) with the reason, and the rest of the file is still read.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from pipeline.config import IngestSettings, SourceLayout
from pipeline.ingest.feeds import read_feed
from pipeline.ingest.layouts import DocumentMaker, match_layout
from pipeline.ingest.normalize import count_cjk
from pipeline.ingest.readers import RawDocument, Rejected, RejectedRecord, _jsonl_rows, decode_bytes

JSON_LINES = (".jsonl", ".ndjson")


def read_layout(path: Path, rel: str, settings: IngestSettings) -> Iterator[RawDocument | RejectedRecord] | None:
    """The documents of `path` read by the first `ingest.sources` layout whose glob matches it, or None
    when none does (the file is then read by its suffix)."""
    layout = match_layout(path.absolute(), settings.sources)
    if layout is None:
        return None
    reader = {"feed": read_feed, "json_records": read_json_records, "headlines_csv": read_headlines_csv}
    return reader[layout.kind](path, rel, layout, settings)


def lookup(record, dotted: str):
    """`record` at a dotted path ('video_detail.content'; a number indexes a list), None if absent."""
    value = record
    for key in dotted.split("."):
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value


def first_value(record, alternatives: str):
    """The first non-empty value of 'a.b|c|d' in `record`."""
    for dotted in alternatives.split("|"):
        value = lookup(record, dotted.strip())
        if value not in (None, "", [], {}):
            return value
    return None


def read_json_records(path: Path, rel: str, layout: SourceLayout, settings: IngestSettings
                      ) -> Iterator[RawDocument | RejectedRecord]:
    """A JSON file's records (the list at `records_path`), or a JSON-lines file's lines, as documents
    with the values `layout.fields` points at; other record fields are not kept."""
    maker = DocumentMaker(layout, "json_records")
    if path.suffix.lower() in JSON_LINES:
        records = _jsonl_rows(path)
    else:
        records = enumerate(_record_list(path, layout.records_path), 1)
    body_from = f"'{layout.fields['text']}'"
    for number, record in records:
        where = f"{rel}#{number}"
        if isinstance(record, str) and path.suffix.lower() in JSON_LINES:  # the line's parse error
            yield RejectedRecord(where, record)
        elif not isinstance(record, dict):
            yield RejectedRecord(where, f"record {number} is a {type(record).__name__}, not a JSON object")
        else:
            values = {name: first_value(record, alternatives) for name, alternatives in layout.fields.items()}
            yield maker.make(values, where, number, body_from)


def _record_list(path: Path, records_path: str) -> list:
    try:  # NaN and Infinity (not JSON, but written by Python and pandas for a missing value): missing
        data = json.loads(path.read_bytes().decode("utf-8-sig"), parse_constant=lambda _: None)
    except RecursionError:
        raise Rejected("JSON nested too deeply to read (a hostile or broken file)") from None
    except UnicodeDecodeError as err:
        raise Rejected(f"not UTF-8 JSON (undecodable byte at {err.start})") from None
    except json.JSONDecodeError as err:
        raise Rejected(f"malformed JSON at line {err.lineno} column {err.colno} ({err.msg})") from None
    records = lookup(data, records_path) if records_path else data
    if isinstance(records, dict) and not records_path:
        return [records]  # a file holding one record
    if not isinstance(records, list):
        keys = ", ".join(list(data)[:8]) if isinstance(data, dict) else type(data).__name__
        raise Rejected(f"no list of records at records_path '{records_path}' (the file holds: {keys}); "
                       "set records_path of its ingest.sources entry in params.yaml")
    return records


def read_headlines_csv(path: Path, rel: str, layout: SourceLayout, settings: IngestSettings
                       ) -> Iterator[RawDocument | RejectedRecord]:
    """One document of one paragraph per row (a headline is its own title unless fields.title says
    otherwise), or with `per: date` one per date (`_per_date`), streamed line by line: a row that cannot
    be used (too few columns, undecodable bytes, a stray quote) is rejected alone and the rows after it
    are still read."""
    encoding = _stream_encoding(path)
    maker = DocumentMaker(layout, "headlines_csv", encoding.removesuffix("-sig"))
    body_from = f"column '{layout.fields['text']}'"
    rows = _headline_rows(path, rel, layout, encoding)
    if layout.per == "date":
        yield from _per_date(rows, rel, maker, layout, settings)
        return
    for item in rows:
        if isinstance(item, RejectedRecord):
            yield item
            continue
        number, values = item
        values.setdefault("title", values["text"])
        yield maker.make(values, f"{rel}#{number}", number, body_from)


def _headline_rows(path: Path, rel: str, layout: SourceLayout, encoding: str
                   ) -> Iterator[tuple[int, dict] | RejectedRecord]:
    """(line number, field → value) of each usable row, or the rejection of a row that is not."""
    lines = _decoded_lines(path, encoding)
    names = layout.columns
    if layout.header:
        names = next(([n.strip() for n in _csv_row(line)] for _, line in lines if line and line.strip()), [])
        missing = sorted(set(layout.fields.values()) - set(names))
        if missing:
            raise Rejected(f"no column(s) {missing} in the header {names}; fix fields of its ingest.sources "
                           "entry in params.yaml")
    positions = {field: names.index(column) for field, column in layout.fields.items()}
    width = max(positions.values()) + 1
    for number, line in lines:
        where = f"{rel}#{number}"
        if line is None:
            yield RejectedRecord(where, f"undecodable bytes (not {encoding})")
            continue
        if not line.strip():
            continue
        row = _csv_row(line)
        if len(row) < width:
            yield RejectedRecord(where, f"{len(row)} column(s) where {width} are needed "
                                        f"({', '.join(names[:width])}): a stray quote or separator?")
            continue
        yield number, {field: row[position] for field, position in positions.items()}


def _per_date(rows: Iterator[tuple[int, dict] | RejectedRecord], rel: str, maker: DocumentMaker,
              layout: SourceLayout, settings: IngestSettings) -> Iterator[RawDocument | RejectedRecord]:
    """A document per date of the file: that day's headlines, one per line, in file order (trends then
    resample days, not headlines of one front page as if independent). Rows are checked one by one, as
    with a document per row: an empty or too short headline, or one repeated on the same date (a
    doubled file), is rejected with the reason."""
    minimum = layout.min_chinese_chars if layout.min_chinese_chars >= 0 else settings.min_chinese_chars
    days: dict[str, list[tuple[int, str]]] = {}
    first_row: dict[tuple[str, str], int] = {}
    for item in rows:
        if isinstance(item, RejectedRecord):
            yield item
            continue
        number, values = item
        date, text = values["date"].strip(), values["text"].strip()
        where, cjk = f"{rel}#{number}", count_cjk(text)
        if cjk < minimum:
            yield RejectedRecord(where, f"no usable Chinese text ({cjk} Chinese characters; its layout's "
                                        f"min_chinese_chars={minimum})")
        elif (date, text) in first_row:
            yield RejectedRecord(where, f"repeats row {first_row[date, text]}: the same headline on the same date")
        else:
            first_row[date, text] = number
            days.setdefault(date, []).append((number, text))
    for date, headlines in days.items():
        number = headlines[0][0]
        values = {"text": "\n".join(text for _, text in headlines), "date": date or None,
                  "title": " ".join(filter(None, [layout.source, date])) or None}
        yield maker.make(values, f"{rel}#{number}", number, body_from=f"the headlines of {date or 'no date'}")


def _csv_row(line: str) -> list[str]:
    """One physical line as a CSV row: headline files hold one record per line, so a stray quote
    spoils only its own row."""
    return next(csv.reader([line.rstrip("\r\n")]), [])


def _stream_encoding(path: Path) -> str:
    """The encoding of a file read as a stream, from its first 64 KiB of whole lines: UTF-8 when most
    lines are (a few lines of stray bytes are rejected one by one), else what `decode_bytes` detects."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # before cutting at b"\n": a UTF-16 newline is two bytes
        return "utf-16"
    cut = head.rfind(b"\n") + 1
    head = head[:cut] if cut else head
    lines = head.splitlines()
    if sum(map(_not_utf8, lines)) * 4 < len(lines):
        return "utf-8-sig"
    _, encoding = decode_bytes(head)
    return "utf-8-sig" if encoding == "utf-8" else encoding


def _not_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _decoded_lines(path: Path, encoding: str) -> Iterator[tuple[int, str | None]]:
    """(line number, text or None where the line's bytes do not decode)."""
    if encoding.startswith("utf-16"):  # a newline is two bytes there: decode as one stream
        with open(path, encoding=encoding, newline=None) as fh:
            yield from enumerate(fh, 1)
        return
    with open(path, "rb") as fh:  # GB18030, Big5 and UTF-8 never use the newline byte inside a character
        for number, raw in enumerate(fh, 1):
            try:
                yield number, raw.decode(encoding)
            except UnicodeDecodeError:
                yield number, None
