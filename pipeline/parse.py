"""`python -m pipeline parse`: ingest + segment in memory, one JSON object per paragraph."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pipeline import io
from pipeline.config import IngestSettings, SegmentSettings
from pipeline.ingest.stage import find_sources, ingest
from pipeline.segment import Segmenter, paragraph_rows

PARSE_FIELDS = ("para_id", "doc_id", "title", "date", "source", "doc_type", "url", "extra", "kind", "level",
                "order", "heading_path", "text")


@dataclass
class ParseResult:
    documents: int
    paragraphs: int
    rejected: list[dict]
    duplicates: list[dict]
    warnings: list[dict] = field(default_factory=list)


class _NothingParsed(Exception):
    """Raised inside the output's temp-file block, so that a run without documents replaces nothing."""

    def __init__(self, result: ParseResult):
        super().__init__()
        self.result = result


def write_paragraphs(paths: list[str], ingest_settings: IngestSettings, segment_settings: SegmentSettings,
                     output: str | None) -> ParseResult:
    """Parse `paths` into JSON lines on `output` (standard output when None). A file is written to a
    temp file renamed over `output` only when the run parsed some document: a run that fails or finds
    nothing usable leaves an existing `output` as it was."""
    if output is None:
        return parse_paths(paths, ingest_settings, segment_settings, sys.stdout.write, encode=_json_line)
    try:
        with io.atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8") as out:
            result = parse_paths(paths, ingest_settings, segment_settings, out.write, encode=_json_line)
            if not result.documents:
                raise _NothingParsed(result)
    except _NothingParsed as nothing:
        return nothing.result
    return result


_ENCODER = json.JSONEncoder(ensure_ascii=False)  # one encoder: json.dumps with options makes one per call


def _json_line(row: dict) -> str:
    return _ENCODER.encode(row) + "\n"


def parse_paths(paths: list[str], ingest_settings: IngestSettings, segment_settings: SegmentSettings,
                emit: Callable, encode: Callable[[dict], Any] | None = None) -> ParseResult:
    """`emit` each paragraph of `paths`, in order: a dict of its file's `path` and PARSE_FIELDS, or what
    `encode` (a module-level function, as it may run in a worker process) makes of that dict."""
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"no such file or directory: {', '.join(missing)}")
    counted = {"paragraphs": 0}

    def sink(paragraphs: list) -> None:
        for paragraph in paragraphs:
            emit(paragraph)
        counted["paragraphs"] += len(paragraphs)

    sources = find_sources(paths, ingest_settings.metadata_csv)
    # segmented (and encoded) where the document is read: with ingest.workers processes, in parallel
    result = ingest(sources.files, ingest_settings, sink, unusable=sources.unusable,
                    then=partial(_paragraphs, segmenter=Segmenter(segment_settings), encode=encode))
    return ParseResult(result.documents, counted["paragraphs"], result.rejected, result.duplicates,
                       result.warnings)


def _paragraphs(document: dict, segmenter: Segmenter, encode: Callable[[dict], Any] | None) -> list:
    rows = [{"path": document["path"], **{k: row[k] for k in PARSE_FIELDS}}
            for row in paragraph_rows(document, segmenter)]
    return rows if encode is None else [encode(row) for row in rows]
